/* config: parser for the user's settings file. */
#include "config.h"
#include "buf.h"
#include "xmem.h"
#include <ctype.h>
#include <limits.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const theme_names[CONFIG_THEME_COUNT] = {
	"normal", "accent", "selected", "bar", "progress", "dim", "error",
};

static const char *const color_names[8] = {
	"black", "red", "green", "yellow", "blue", "magenta", "cyan", "white",
};

/* The config file may not exist, in which case messages still need a name. */
#define CONFIG_DEFAULT_NAME "config"

struct config *config_new(void)
{
	struct config *c = xcalloc(1, sizeof(*c));
	c->normalize = true;
	c->mouse = true;
	c->mpris = true;
	c->volume = -1;
	c->offline_quota = -1;
	c->offline_min_free_mb = -1;
	for (int i = 0; i < CONFIG_THEME_COUNT; i++)
		c->theme[i] = (struct config_color){.fg = -1, .bg = -1};
	c->name = xstrdup(CONFIG_DEFAULT_NAME);
	return c;
}

void config_free(struct config *c)
{
	if (!c)
		return;
	free(c->server);
	free(c->output);
	for (int i = 0; i < c->nbinds; i++) {
		free(c->binds[i].key);
		free(c->binds[i].action);
	}
	free(c->binds);
	for (int i = 0; i < c->nerrors; i++)
		free(c->errors[i]);
	free(c->errors);
	free(c->name);
	free(c);
}

const char *config_theme_name(enum config_theme t)
{
	return (unsigned)t < CONFIG_THEME_COUNT ? theme_names[t] : NULL;
}

int config_parse_color(const char *s)
{
	if (strcmp(s, "default") == 0 || strcmp(s, "none") == 0)
		return -1;
	bool bright = strncmp(s, "bright", 6) == 0;
	const char *base = bright ? s + 6 : s;
	for (int i = 0; i < 8; i++)
		if (strcmp(base, color_names[i]) == 0)
			return bright ? i + 8 : i;
	if (*s && strspn(s, "0123456789") == strlen(s) && strlen(s) <= 3) {
		int v = atoi(s);
		if (v <= 255)
			return v;
	}
	return -2;
}

static void add_error(struct config *c, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void add_error(struct config *c, int line, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		buf_printf(&b, "%s:%d: %s", c->name, line, msg);
	else
		buf_printf(&b, "%s: %s", c->name, msg);
	c->errors = xrealloc(c->errors, (size_t)(c->nerrors + 1) * sizeof(*c->errors));
	c->errors[c->nerrors++] = buf_steal(&b);
}

static bool parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = {"on", "true", "yes", "1"}, *const no[] = {"off", "false", "no", "0"};
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return *out = true, true;
		if (strcasecmp(v, no[i]) == 0)
			return *out = false, true;
	}
	return false;
}

/* Splits "FG[,BG][,bold]" into a colour. Returns false with why set. */
static bool parse_theme_value(const char *v, struct config_color *out, char *why, size_t whylen)
{
	struct config_color col = {.fg = -1, .bg = -1, .set = true};
	char tmp[128];
	snprintf(tmp, sizeof(tmp), "%s", v);
	int n = 0;
	char *save = NULL;
	for (char *tok = strtok_r(tmp, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		if (strcmp(tok, "bold") == 0) {
			col.bold = true;
			continue;
		}
		int cv = config_parse_color(tok);
		if (cv == -2 || n >= 2) {
			snprintf(why, whylen, n >= 2 ? "too many colours in '%s'" : "unknown colour '%s'", n >= 2 ? v : tok);
			return false;
		}
		if (n++ == 0)
			col.fg = (short)cv;
		else
			col.bg = (short)cv;
	}
	*out = col;
	return true;
}

/* Removes surrounding blanks and one pair of double quotes. */
static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = 0;
	if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
		s[n - 1] = 0;
		s++;
	}
	return s;
}

/* A '#' starts a comment unless inside double quotes. */
static void strip_comment(char *s)
{
	bool q = false;
	for (; *s; s++) {
		if (*s == '"')
			q = !q;
		else if (*s == '#' && !q) {
			*s = 0;
			return;
		}
	}
}

static void parse_line(struct config *c, int lineno, char *line)
{
	strip_comment(line);
	char *s = line;
	while (isspace((unsigned char)*s))
		s++;
	if (!*s)
		return;
	char *name = s;
	while (*s && !isspace((unsigned char)*s) && *s != '=')
		s++;
	char *name_end = s;
	while (isspace((unsigned char)*s))
		s++;
	if (*s == '=')
		s++;
	*name_end = 0;
	char *val = trim(s);

	if (strcmp(name, "bind") == 0) {
		char *key = val;
		char *p = key;
		while (*p && !isspace((unsigned char)*p))
			p++;
		char *action = p;
		if (*p)
			*p++ = 0, action = trim(p);
		if (!*key || !*action) {
			add_error(c, lineno, "bind wants KEY ACTION");
			return;
		}
		c->binds = xrealloc(c->binds, (size_t)(c->nbinds + 1) * sizeof(*c->binds));
		c->binds[c->nbinds++] = (struct config_bind){xstrdup(key), xstrdup(action), lineno};
		return;
	}
	if (strncmp(name, "theme.", 6) == 0) {
		for (int i = 0; i < CONFIG_THEME_COUNT; i++) {
			if (strcmp(name + 6, theme_names[i]) == 0) {
				char why[160];
				if (!*val)
					add_error(c, lineno, "%s needs a colour", name);
				else if (!parse_theme_value(val, &c->theme[i], why, sizeof(why)))
					add_error(c, lineno, "%s: %s", name, why);
				return;
			}
		}
		add_error(c, lineno, "unknown theme element '%s'", name + 6);
		return;
	}
	bool known = strcmp(name, "server") == 0 || strcmp(name, "quality") == 0 ||
		     strcmp(name, "normalize") == 0 || strcmp(name, "output") == 0 ||
		     strcmp(name, "volume") == 0 || strcmp(name, "mouse") == 0 ||
		     strcmp(name, "mpris") == 0 || strcmp(name, "notify") == 0 ||
		     strcmp(name, "offline_quota") == 0 || strcmp(name, "offline_min_free_mb") == 0;
	if (!known) {
		add_error(c, lineno, "unknown setting '%s'", name);
		return;
	}
	if (!*val) {
		add_error(c, lineno, "%s needs a value", name);
		return;
	}
	if (strcmp(name, "server") == 0) {
		if (strncmp(val, "http://", 7) != 0 && strncmp(val, "https://", 8) != 0) {
			add_error(c, lineno, "server wants an http:// or https:// URL, not '%s'", val);
			return;
		}
		free(c->server);
		c->server = xstrdup(val);
	} else if (strcmp(name, "output") == 0) {
		free(c->output);
		c->output = xstrdup(val);
	} else if (strcmp(name, "normalize") == 0) {
		if (!parse_bool(val, &c->normalize))
			add_error(c, lineno, "normalize wants on or off, not '%s'", val);
	} else if (strcmp(name, "mouse") == 0) {
		if (!parse_bool(val, &c->mouse))
			add_error(c, lineno, "mouse wants on or off, not '%s'", val);
	} else if (strcmp(name, "mpris") == 0 || strcmp(name, "notify") == 0) {
		if (!parse_bool(val, name[0] == 'm' ? &c->mpris : &c->notify))
			add_error(c, lineno, "%s wants on or off, not '%s'", name, val);
	} else if (strcmp(name, "offline_quota") == 0) {
		if (strcmp(val, "none") == 0) {
			c->offline_quota = 0;
			return;
		}
		char *end;
		errno = 0;
		long long v = strtoll(val, &end, 10);
		int shift = *end == 'K' || *end == 'k' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;
		if (shift)
			end++;
		if (end == val || *end || errno || v < 0 || v > (LLONG_MAX >> 30))
			add_error(c, lineno, "offline_quota wants bytes (with an optional K, M or G) or none, not '%s'", val);
		else
			c->offline_quota = v << shift;
	} else if (strcmp(name, "offline_min_free_mb") == 0) {
		char *end;
		errno = 0;
		long long v = strtoll(val, &end, 10);
		if (end == val || *end || errno || v < 0 || v > (LLONG_MAX >> 21))
			add_error(c, lineno, "offline_min_free_mb wants a number of megabytes, not '%s'", val);
		else
			c->offline_min_free_mb = v;
	} else if (strcmp(name, "quality") == 0) {
		if (strcmp(val, "auto") == 0)
			c->quality = 0;
		else if (strcmp(val, "24") == 0 || strcmp(val, "96") == 0 || strcmp(val, "160") == 0 ||
			 strcmp(val, "320") == 0)
			c->quality = atoi(val);
		else
			add_error(c, lineno, "quality wants auto, 24, 96, 160 or 320, not '%s'", val);
	} else {
		char *end;
		long v = strtol(val, &end, 10);
		if (*end || v < 0 || v > 100)
			add_error(c, lineno, "volume wants 0..100, not '%s'", val);
		else
			c->volume = (int)v;
	}
}

int config_parse(struct config *c, const char *name, const char *text)
{
	const char *slash = name ? strrchr(name, '/') : NULL;
	free(c->name);
	c->name = xstrdup(slash ? slash + 1 : name ? name : CONFIG_DEFAULT_NAME);
	int before = c->nerrors;
	int lineno = 0;
	const char *p = text;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		char *line = xmalloc(n + 1);
		memcpy(line, p, n);
		line[n] = 0;
		if (n && line[n - 1] == '\r')
			line[n - 1] = 0;
		parse_line(c, ++lineno, line);
		free(line);
		p += n + (nl ? 1 : 0);
	}
	return c->nerrors - before;
}

int config_load(struct config *c, const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		if (errno == ENOENT)
			return 0;
		int err = -errno;
		const char *slash = strrchr(path, '/');
		free(c->name);
		c->name = xstrdup(slash ? slash + 1 : path);
		add_error(c, 0, "cannot read %s: %s", path, strerror(-err));
		return err;
	}
	struct buf b = BUF_INIT;
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	int rerr = ferror(f) ? -EIO : 0;
	fclose(f);
	if (rerr) {
		buf_free(&b);
		add_error(c, 0, "cannot read %s: %s", path, strerror(EIO));
		return rerr;
	}
	int bad = config_parse(c, path, b.data ? b.data : "");
	buf_free(&b);
	return bad;
}
