/* json: a streaming JSON writer and typed accessors over yajl's tree parser.
 * The writer always emits valid UTF-8: invalid bytes in input strings become U+FFFD. */
#ifndef ENCORE_JSON_H
#define ENCORE_JSON_H
#include "buf.h"
#include <stdbool.h>
#include <stdint.h>
#include <yajl/yajl_tree.h>

#define JW_MAX_DEPTH 32

struct jw {
	struct buf out;
	int depth;
	bool need_comma[JW_MAX_DEPTH];
	bool after_key;
};

void jw_init(struct jw *w);
void jw_obj(struct jw *w);
void jw_obj_end(struct jw *w);
void jw_arr(struct jw *w);
void jw_arr_end(struct jw *w);
void jw_key(struct jw *w, const char *key);
/* NULL writes null. */
void jw_str(struct jw *w, const char *s);
void jw_strn(struct jw *w, const char *s, size_t n);
void jw_int(struct jw *w, long long v);
/* Non-finite values are written as null, since JSON has no NaN. */
void jw_double(struct jw *w, double v);
void jw_bool(struct jw *w, bool v);
void jw_null(struct jw *w);
/* Inserts already-rendered JSON as one value; the caller vouches for its validity. */
void jw_raw(struct jw *w, const char *json);
/* Key/value shorthands. */
void jw_kstr(struct jw *w, const char *k, const char *s);
void jw_kint(struct jw *w, const char *k, long long v);
void jw_kdouble(struct jw *w, const char *k, double v);
void jw_kbool(struct jw *w, const char *k, bool v);
/* Returns the rendered text (caller frees); w is left empty. */
char *jw_finish(struct jw *w);
void jw_free(struct jw *w);

/* Escapes s as a JSON string literal (with quotes) onto b. */
void json_escape(struct buf *b, const char *s, size_t n);

/* Parses text (NUL-terminated). Returns NULL on error with a message in err. Free with yajl_tree_free. */
yajl_val json_parse(const char *text, char *err, size_t errlen);
/* Member of an object, or NULL if v is not an object or has no such key. Never fails otherwise. */
yajl_val json_get(yajl_val v, const char *key);
/* Typed views: NULL / false when the value has another type. */
const char *json_get_str(yajl_val obj, const char *key);
bool json_get_int(yajl_val obj, const char *key, long long *out);
bool json_get_double(yajl_val obj, const char *key, double *out);
bool json_get_bool(yajl_val obj, const char *key, bool *out);

#endif
