/* Fuzz target: the listening-event batch parser (eventlog_parse_batch) on POST bodies.
 * Differential: the streaming (yajl SAX) parser must give exactly what the tree-based
 * parser it replaced gives (kept below as the reference): the same count and events, or
 * the same error (for malformed JSON, both say so; yajl's wording is not compared). */
#include "eventlog.h"
#include "fuzz.h"
#include "json.h"
#include "xmem.h"
#include <errno.h>
#include <stdio.h>

#define TS_MIN 946684800000LL
#define TS_MAX 4102444800000LL

/* Reads an optional integer member in [lo, hi]; absent leaves *out alone. false on a bad value. */
static bool ref_opt_int(yajl_val o, const char *key, long long lo, long long hi, int64_t *out)
{
	yajl_val v = json_get(o, key);
	if (!v || YAJL_IS_NULL(v))
		return true;
	long long x;
	if (!json_get_int(o, key, &x) || x < lo || x > hi)
		return false;
	*out = x;
	return true;
}

/* Copies an optional string member of at most cap bytes; false on a bad type or length. */
static bool ref_opt_str(yajl_val o, const char *key, char *out, size_t cap)
{
	yajl_val v = json_get(o, key);
	if (!v || YAJL_IS_NULL(v))
		return true;
	if (!YAJL_IS_STRING(v))
		return false;
	const char *s = YAJL_GET_STRING(v);
	size_t n = strlen(s);
	if (n >= cap)
		return false;
	memcpy(out, s, n + 1);
	return true;
}

static int ref_bad(char *err, size_t errlen, int i, const char *msg)
{
	snprintf(err, errlen, "events[%d]: %s", i, msg);
	return -EINVAL;
}

static int ref_parse_one(yajl_val o, struct eventlog_event *e, char *err, size_t errlen, int i)
{
	memset(e, 0, sizeof(*e));
	e->ms_played = e->bitrate = e->position_ms = -1;
	if (!YAJL_IS_OBJECT(o))
		return ref_bad(err, errlen, i, "must be an object");
	const char *id = json_get_str(o, "id");
	if (!id || !id_valid(id))
		return ref_bad(err, errlen, i, "id must be 22 base62 characters");
	memcpy(e->id, id, ID_LEN + 1);
	const char *type = json_get_str(o, "type");
	int t = eventlog_type_parse(type);
	if (t < 0)
		return ref_bad(err, errlen, i, "unknown or missing type");
	e->type = (enum eventlog_type)t;
	long long ts;
	if (!json_get_int(o, "ts", &ts) || ts < TS_MIN || ts > TS_MAX)
		return ref_bad(err, errlen, i, "ts must be an integer (ms since the epoch, years 2000-2100)");
	e->ts = ts;
	const char *uri = json_get_str(o, "uri");
	char utype[16], uid[ID_LEN + 1];
	if (!uri || strlen(uri) > EVENTLOG_URI_MAX || !uri_parse(uri, utype, sizeof(utype), uid))
		return ref_bad(err, errlen, i, "uri must be an encore URI");
	strcpy(e->uri, uri);
	if (!ref_opt_int(o, "ms_played", 0, 7LL * 86400000, &e->ms_played))
		return ref_bad(err, errlen, i, "ms_played must be a non-negative integer");
	if (!ref_opt_int(o, "bitrate", 0, 10000, &e->bitrate))
		return ref_bad(err, errlen, i, "bitrate must be an integer from 0 to 10000");
	if (!ref_opt_int(o, "position_ms", 0, 7LL * 86400000, &e->position_ms))
		return ref_bad(err, errlen, i, "position_ms must be a non-negative integer");
	if (!ref_opt_str(o, "context", e->context, sizeof(e->context)))
		return ref_bad(err, errlen, i, "context must be a string of at most 256 bytes");
	if (!ref_opt_str(o, "reason", e->reason, sizeof(e->reason)))
		return ref_bad(err, errlen, i, "reason must be a string of at most 32 bytes");
	if (e->type == EV_PLAY_END && e->ms_played < 0)
		return ref_bad(err, errlen, i, "play_end needs ms_played");
	return 0;
}

static int ref_parse_batch(const char *json, int max, struct eventlog_event **out, char *err, size_t errlen)
{
	char perr[200];
	*out = NULL;
	yajl_val root = json_parse(json, perr, sizeof(perr));
	if (!root) {
		snprintf(err, errlen, "malformed JSON: %s", perr);
		return -EINVAL;
	}
	int rc = -EINVAL;
	yajl_val arr = json_get(root, "events");
	if (!YAJL_IS_OBJECT(root) || !arr || !YAJL_IS_ARRAY(arr)) {
		snprintf(err, errlen, "body must be {\"events\": [...]}");
		goto out;
	}
	size_t n = arr->u.array.len;
	if (n > (size_t)max) {
		snprintf(err, errlen, "at most %d events per batch (got %zu)", max, n);
		goto out;
	}
	struct eventlog_event *ev = xcalloc(n ? n : 1, sizeof(*ev));
	for (size_t i = 0; i < n; i++) {
		if (ref_parse_one(arr->u.array.values[i], &ev[i], err, errlen, (int)i) != 0) {
			free(ev);
			goto out;
		}
	}
	*out = ev;
	rc = (int)n;
out:
	yajl_tree_free(root);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fz_cstr(data, size);
	struct eventlog_event *ev = NULL, *ref = NULL;
	char err[300], rerr[300];
	int max = size > 0 ? data[0] % 8 + 1 : 4;
	int n = eventlog_parse_batch(text, max, &ev, err, sizeof(err));
	int rn = ref_parse_batch(text, max, &ref, rerr, sizeof(rerr));
	if (n > max || n != rn)
		abort();
	if (n < 0 && (strncmp(err, "malformed JSON", 14) != 0 || strncmp(rerr, "malformed JSON", 14) != 0) &&
	    strcmp(err, rerr) != 0)
		abort();
	for (int i = 0; i < n; i++) {
		if (!eventlog_type_name(ev[i].type) || strnlen(ev[i].uri, sizeof(ev[i].uri)) == sizeof(ev[i].uri))
			abort();
		if (strcmp(ev[i].id, ref[i].id) || ev[i].type != ref[i].type || ev[i].ts != ref[i].ts ||
		    strcmp(ev[i].uri, ref[i].uri) || ev[i].ms_played != ref[i].ms_played || ev[i].bitrate != ref[i].bitrate ||
		    ev[i].position_ms != ref[i].position_ms || strcmp(ev[i].context, ref[i].context) ||
		    strcmp(ev[i].reason, ref[i].reason))
			abort();
	}
	free(ev);
	free(ref);
	free(text);
	return 0;
}
