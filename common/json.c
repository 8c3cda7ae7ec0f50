/* json: the writer keeps a comma flag per nesting level; the reader only adds type checks
 * to yajl_tree so handlers never dereference a value of the wrong type. */
#include "json.h"
#include "xmem.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

void jw_init(struct jw *w)
{
	memset(w, 0, sizeof(*w));
}

static void before_value(struct jw *w)
{
	if (w->after_key) {
		w->after_key = false;
		return;
	}
	if (w->depth > 0) {
		if (w->need_comma[w->depth - 1])
			buf_putc(&w->out, ',');
		w->need_comma[w->depth - 1] = true;
	}
}

static void open(struct jw *w, char c)
{
	before_value(w);
	buf_putc(&w->out, c);
	if (w->depth < JW_MAX_DEPTH)
		w->need_comma[w->depth] = false;
	w->depth++;
}

static void close_(struct jw *w, char c)
{
	if (w->depth > 0)
		w->depth--;
	buf_putc(&w->out, c);
}

void jw_obj(struct jw *w) { open(w, '{'); }
void jw_obj_end(struct jw *w) { close_(w, '}'); }
void jw_arr(struct jw *w) { open(w, '['); }
void jw_arr_end(struct jw *w) { close_(w, ']'); }

void jw_key(struct jw *w, const char *key)
{
	before_value(w);
	json_escape(&w->out, key, strlen(key));
	buf_putc(&w->out, ':');
	w->after_key = true;
}

void jw_str(struct jw *w, const char *s)
{
	if (!s) {
		jw_null(w);
		return;
	}
	jw_strn(w, s, strlen(s));
}

void jw_strn(struct jw *w, const char *s, size_t n)
{
	before_value(w);
	json_escape(&w->out, s, n);
}

void jw_int(struct jw *w, long long v)
{
	before_value(w);
	buf_printf(&w->out, "%lld", v);
}

void jw_double(struct jw *w, double v)
{
	before_value(w);
	if (!isfinite(v))
		buf_puts(&w->out, "null");
	else
		buf_printf(&w->out, "%.12g", v);
}

void jw_bool(struct jw *w, bool v)
{
	before_value(w);
	buf_puts(&w->out, v ? "true" : "false");
}

void jw_null(struct jw *w)
{
	before_value(w);
	buf_puts(&w->out, "null");
}

void jw_raw(struct jw *w, const char *json)
{
	before_value(w);
	buf_puts(&w->out, json);
}

void jw_kstr(struct jw *w, const char *k, const char *s) { jw_key(w, k); jw_str(w, s); }
void jw_kint(struct jw *w, const char *k, long long v) { jw_key(w, k); jw_int(w, v); }
void jw_kdouble(struct jw *w, const char *k, double v) { jw_key(w, k); jw_double(w, v); }
void jw_kbool(struct jw *w, const char *k, bool v) { jw_key(w, k); jw_bool(w, v); }

char *jw_finish(struct jw *w)
{
	char *s = buf_steal(&w->out);
	jw_init(w);
	return s;
}

void jw_free(struct jw *w)
{
	buf_free(&w->out);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if the bytes there are not one. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	unsigned min;
	if (c < 0x80)
		return 1;
	if ((c & 0xE0) == 0xC0) { len = 2; min = 0x80; c &= 0x1F; }
	else if ((c & 0xF0) == 0xE0) { len = 3; min = 0x800; c &= 0x0F; }
	else if ((c & 0xF8) == 0xF0) { len = 4; min = 0x10000; c &= 0x07; }
	else return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3F);
	}
	if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		return 0;
	return len;
}

void json_escape(struct buf *b, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	buf_putc(b, '"');
	size_t i = 0;
	while (i < n) {
		/* A run of characters that need no escaping goes in with one append: byte by
		 * byte, a manifest's 80 KB of inline base64 took a third of the route's CPU. */
		size_t run = i;
		while (run < n && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' && s[run] != '\\')
			run++;
		if (run > i) {
			buf_append(b, s + i, run - i);
			i = run;
			continue;
		}
		unsigned char c = s[i];
		if (c >= 0x80) {
			size_t l = utf8_seq(s + i, n - i);
			if (l == 0) {
				buf_puts(b, "\xEF\xBF\xBD");
				i++;
			} else {
				buf_append(b, s + i, l);
				i += l;
			}
			continue;
		}
		switch (c) {
		case '"': buf_puts(b, "\\\""); break;
		case '\\': buf_puts(b, "\\\\"); break;
		case '\n': buf_puts(b, "\\n"); break;
		case '\r': buf_puts(b, "\\r"); break;
		case '\t': buf_puts(b, "\\t"); break;
		default:
			if (c < 0x20)
				buf_printf(b, "\\u%04x", c);
			else
				buf_putc(b, (char)c);
		}
		i++;
	}
	buf_putc(b, '"');
}

yajl_val json_parse(const char *text, char *err, size_t errlen)
{
	char e[256] = "";
	yajl_val v = yajl_tree_parse(text, e, sizeof(e));
	if (!v && err && errlen) {
		/* yajl's messages span lines and quote the input; keep the first line only. */
		char *nl = strchr(e, '\n');
		if (nl)
			*nl = 0;
		snprintf(err, errlen, "%s", e[0] ? e : "invalid JSON");
	}
	return v;
}

yajl_val json_get(yajl_val v, const char *key)
{
	if (!v || !YAJL_IS_OBJECT(v))
		return NULL;
	for (size_t i = 0; i < v->u.object.len; i++)
		if (strcmp(v->u.object.keys[i], key) == 0)
			return v->u.object.values[i];
	return NULL;
}

const char *json_get_str(yajl_val obj, const char *key)
{
	yajl_val v = json_get(obj, key);
	return v && YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
}

bool json_get_int(yajl_val obj, const char *key, long long *out)
{
	yajl_val v = json_get(obj, key);
	if (!v || !YAJL_IS_INTEGER(v))
		return false;
	*out = YAJL_GET_INTEGER(v);
	return true;
}

bool json_get_double(yajl_val obj, const char *key, double *out)
{
	yajl_val v = json_get(obj, key);
	if (!v || !YAJL_IS_NUMBER(v))
		return false;
	*out = YAJL_GET_DOUBLE(v);
	return true;
}

bool json_get_bool(yajl_val obj, const char *key, bool *out)
{
	yajl_val v = json_get(obj, key);
	if (!v || !(YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)))
		return false;
	*out = YAJL_IS_TRUE(v);
	return true;
}
