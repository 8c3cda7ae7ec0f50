/* paths: XDG base directories for the client. */
#include "paths.h"
#include "xmem.h"
#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct paths {
	char *dir[PATHS_KIND_COUNT];
};

static const char *process_env(const char *name, void *ctx)
{
	(void)ctx;
	return getenv(name);
}

/* The XDG spec says relative paths in these variables are invalid and must be ignored. */
static const char *absolute(const char *v)
{
	return (v && v[0] == '/') ? v : NULL;
}

static char *strip_trailing_slashes(char *s)
{
	size_t n = strlen(s);
	while (n > 1 && s[n - 1] == '/')
		s[--n] = 0;
	return s;
}

struct paths *paths_new(paths_env_fn env, void *ctx, unsigned uid)
{
	static const struct {
		const char *override, *xdg, *home_rel;
	} spec[PATHS_KIND_COUNT] = {
		[PATHS_CONFIG] = {"ENCORE_CONFIG_DIR", "XDG_CONFIG_HOME", ".config"},
		[PATHS_CACHE] = {"ENCORE_CACHE_DIR", "XDG_CACHE_HOME", ".cache"},
		[PATHS_DATA] = {"ENCORE_DATA_DIR", "XDG_DATA_HOME", ".local/share"},
		[PATHS_RUNTIME] = {"ENCORE_RUNTIME_DIR", "XDG_RUNTIME_DIR", NULL},
	};
	if (!env)
		env = process_env;
	const char *home = absolute(env("HOME", ctx));
	char *pw_home = NULL;
	if (!home) {
		struct passwd pw, *res = NULL;
		char tmp[4096];
		if (getpwuid_r((uid_t)uid, &pw, tmp, sizeof(tmp), &res) == 0 && res && absolute(pw.pw_dir))
			pw_home = xstrdup(pw.pw_dir);
		home = pw_home;
	}

	struct paths *p = xcalloc(1, sizeof(*p));
	for (int k = 0; k < PATHS_KIND_COUNT; k++) {
		const char *ov = env(spec[k].override, ctx);
		const char *xdg = absolute(env(spec[k].xdg, ctx));
		/* An explicit override is taken as given, even relative: the user asked for it. */
		if (ov && *ov)
			p->dir[k] = xstrdup(ov);
		else if (xdg)
			p->dir[k] = xasprintf("%s/encore", xdg);
		else if (k == PATHS_RUNTIME)
			p->dir[k] = xasprintf("/tmp/encore-%u", uid);
		else if (home)
			p->dir[k] = xasprintf("%s/%s/encore", strcmp(home, "/") == 0 ? "" : home, spec[k].home_rel);
		else
			goto fail;
		strip_trailing_slashes(p->dir[k]);
	}
	free(pw_home);
	return p;
fail:
	free(pw_home);
	paths_free(p);
	return NULL;
}

void paths_free(struct paths *p)
{
	if (!p)
		return;
	for (int k = 0; k < PATHS_KIND_COUNT; k++)
		free(p->dir[k]);
	free(p);
}

const char *paths_dir(const struct paths *p, enum paths_kind kind)
{
	return p->dir[kind];
}

char *paths_file(const struct paths *p, enum paths_kind kind, const char *name)
{
	return xasprintf("%s/%s", p->dir[kind], name);
}

int paths_mkdir_p(const char *dir)
{
	if (!dir || !*dir)
		return -EINVAL;
	char *s = xstrdup(dir);
	int rc = 0;
	for (char *c = s + 1;; c++) {
		if (*c != '/' && *c != 0)
			continue;
		char saved = *c;
		*c = 0;
		if (mkdir(s, 0700) != 0 && errno != EEXIST) {
			rc = -errno;
			goto out;
		}
		*c = saved;
		if (!saved)
			break;
	}
	struct stat st;
	if (stat(s, &st) != 0)
		rc = -errno;
	else if (!S_ISDIR(st.st_mode))
		rc = -ENOTDIR;
out:
	free(s);
	return rc;
}

int paths_ensure(const struct paths *p, enum paths_kind kind)
{
	int rc = paths_mkdir_p(p->dir[kind]);
	if (rc < 0 || kind != PATHS_RUNTIME)
		return rc;
	struct stat st;
	if (lstat(p->dir[kind], &st) != 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid())
		return -EPERM;
	if (st.st_mode & 077)
		return -EPERM;
	return 0;
}
