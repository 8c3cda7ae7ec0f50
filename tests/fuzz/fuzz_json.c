/* Fuzz target: JSON request bodies (json_parse and the typed getters every route uses). */
#include "fuzz.h"
#include "json.h"

static void walk(yajl_val v, int depth)
{
	if (!v || depth > 64)
		return;
	if (YAJL_IS_OBJECT(v)) {
		for (size_t i = 0; i < v->u.object.len; i++) {
			const char *k = v->u.object.keys[i];
			long long ll;
			double d;
			bool b;
			(void)json_get_str(v, k);
			(void)json_get_int(v, k, &ll);
			(void)json_get_double(v, k, &d);
			(void)json_get_bool(v, k, &b);
			walk(json_get(v, k), depth + 1);
		}
	} else if (YAJL_IS_ARRAY(v)) {
		for (size_t i = 0; i < v->u.array.len; i++)
			walk(v->u.array.values[i], depth + 1);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fz_cstr(data, size);
	char err[128];
	yajl_val v = json_parse(text, err, sizeof(err));
	if (v) {
		walk(v, 0);
		/* The getters must also tolerate non-objects and absent keys. */
		(void)json_get_str(v, "name");
		(void)json_get(v, "");
		/* Echo through the writer: every string must come out as valid JSON again. */
		if (YAJL_IS_STRING(v)) {
			struct jw w;
			jw_init(&w);
			jw_str(&w, YAJL_GET_STRING(v));
			char *out = jw_finish(&w);
			yajl_val back = json_parse(out, err, sizeof(err));
			if (!back)
				abort();
			yajl_tree_free(back);
			free(out);
		}
		yajl_tree_free(v);
	}
	/* Raw bytes (possibly invalid UTF-8, embedded NULs) through the writer must yield JSON. */
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "k");
	jw_strn(&w, (const char *)data, size);
	jw_obj_end(&w);
	char *out = jw_finish(&w);
	yajl_val back = json_parse(out, err, sizeof(err));
	if (!back)
		abort();
	yajl_tree_free(back);
	free(out);
	free(text);
	return 0;
}
