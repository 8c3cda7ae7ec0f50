/* eventlog: parsing and appending batches, the three consumers and their threads.
 * Every consumer step is one transaction that write-locks the consumer's own store (a file
 * of its own, see db.h), reads its offset, applies the log entries after it and writes the
 * new offset: the offset and the derived rows commit together or not at all, which is what
 * makes consumption exactly-once across crashes. The log itself is only read, so a step
 * never holds the lock ingest needs. */
#include "eventlog.h"
#include "db.h"
#include "json.h"
#include "xmem.h"
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_parse.h>

static const char *const TYPE_NAMES[EV_TYPE_COUNT] = {
	"play_start", "play_end", "pause", "resume", "seek", "skip",
	"save", "unsave", "playlist_add", "follow", "search_click",
};

static const char *const CONSUMER_NAMES[CONSUMER_COUNT] = {"royalties", "realtime", "recommendations"};

/* Device clocks are trusted within these bounds (2000-01-01 .. 2100-01-01). */
#define TS_MIN 946684800000LL
#define TS_MAX 4102444800000LL

const char *eventlog_type_name(enum eventlog_type t)
{
	return (unsigned)t < EV_TYPE_COUNT ? TYPE_NAMES[t] : NULL;
}

int eventlog_type_parse(const char *name)
{
	for (int i = 0; name && i < EV_TYPE_COUNT; i++)
		if (strcmp(name, TYPE_NAMES[i]) == 0)
			return i;
	return -1;
}

const char *eventlog_consumer_name(enum eventlog_consumer_id c)
{
	return (unsigned)c < CONSUMER_COUNT ? CONSUMER_NAMES[c] : NULL;
}

/* ---- Batch parsing ----
 * A batch is parsed with yajl's event (SAX) interface straight into the events: no value
 * tree is built, which was most of a request worker's time per batch. The parser only
 * records what each event's known keys hold; validation then runs per event in a fixed
 * order, and the whole body is read before deciding, so the answer is what checking a
 * parsed tree would give: malformed JSON first, then the body's shape, then the count,
 * then the first bad event. The first occurrence of a duplicated key counts. */

enum { F_ID, F_TYPE, F_TS, F_URI, F_MS_PLAYED, F_BITRATE, F_POSITION, F_CONTEXT, F_REASON, F_COUNT };
static const char *const FIELD_NAMES[F_COUNT] = {
	"id", "type", "ts", "uri", "ms_played", "bitrate", "position_ms", "context", "reason",
};
/* Longest string kept per field: one more than the longest valid value, so "too long" is
 * still seen. */
static const size_t FIELD_CAP[F_COUNT] = {
	ID_LEN + 1, 16, 0, EVENTLOG_URI_MAX + 1, 0, 0, 0, EVENTLOG_CONTEXT_MAX + 1, EVENTLOG_REASON_MAX + 1,
};

enum vkind { V_ABSENT, V_NULL, V_STRING, V_INT, V_NUMBER, V_OTHER };

struct rawfield {
	enum vkind kind;
	long long i;
	size_t len;                          /* of the string up to its first NUL */
	char s[EVENTLOG_CONTEXT_MAX + 2];
};

struct batch_parser {
	int max;
	int depth;                           /* containers open */
	bool root_map, events_seen, events_array, events_open, key_is_events, elem_open;
	int key;                             /* field of the element key just read, or -1 */
	size_t count;                        /* elements of the events array */
	struct rawfield f[F_COUNT];
	struct eventlog_event *ev;
	size_t cap;
	bool elem_bad;                       /* an element failed: later ones are only counted */
	char *err;
	size_t errlen;
};

static int bad(char *err, size_t errlen, int i, const char *msg)
{
	snprintf(err, errlen, "events[%d]: %s", i, msg);
	return -EINVAL;
}

/* An optional integer field in [lo, hi]; absent or null leaves *out alone. */
static bool opt_int(const struct rawfield *f, long long lo, long long hi, int64_t *out)
{
	if (f->kind == V_ABSENT || f->kind == V_NULL)
		return true;
	if (f->kind != V_INT || f->i < lo || f->i > hi)
		return false;
	*out = f->i;
	return true;
}

/* An optional string field shorter than cap; absent or null leaves out empty. */
static bool opt_str(const struct rawfield *f, char *out, size_t cap)
{
	if (f->kind == V_ABSENT || f->kind == V_NULL)
		return true;
	if (f->kind != V_STRING || f->len >= cap)
		return false;
	memcpy(out, f->s, f->len + 1);
	return true;
}

/* Validates one element's fields into e (the checks and messages of the API contract). */
static int validate_one(const struct rawfield *f, struct eventlog_event *e, char *err, size_t errlen, int i)
{
	memset(e, 0, sizeof(*e));
	e->ms_played = e->bitrate = e->position_ms = -1;
	if (f[F_ID].kind != V_STRING || f[F_ID].len != ID_LEN || !id_valid(f[F_ID].s))
		return bad(err, errlen, i, "id must be 22 base62 characters");
	memcpy(e->id, f[F_ID].s, ID_LEN + 1);
	int t = f[F_TYPE].kind == V_STRING ? eventlog_type_parse(f[F_TYPE].s) : -1;
	if (t < 0)
		return bad(err, errlen, i, "unknown or missing type");
	e->type = (enum eventlog_type)t;
	if (f[F_TS].kind != V_INT || f[F_TS].i < TS_MIN || f[F_TS].i > TS_MAX)
		return bad(err, errlen, i, "ts must be an integer (ms since the epoch, years 2000-2100)");
	e->ts = f[F_TS].i;
	char utype[16], uid[ID_LEN + 1];
	if (f[F_URI].kind != V_STRING || f[F_URI].len > EVENTLOG_URI_MAX || !uri_parse(f[F_URI].s, utype, sizeof(utype), uid))
		return bad(err, errlen, i, "uri must be an encore URI");
	memcpy(e->uri, f[F_URI].s, f[F_URI].len + 1);
	if (!opt_int(&f[F_MS_PLAYED], 0, 7LL * 86400000, &e->ms_played))
		return bad(err, errlen, i, "ms_played must be a non-negative integer");
	if (!opt_int(&f[F_BITRATE], 0, 10000, &e->bitrate))
		return bad(err, errlen, i, "bitrate must be an integer from 0 to 10000");
	if (!opt_int(&f[F_POSITION], 0, 7LL * 86400000, &e->position_ms))
		return bad(err, errlen, i, "position_ms must be a non-negative integer");
	if (!opt_str(&f[F_CONTEXT], e->context, sizeof(e->context)))
		return bad(err, errlen, i, "context must be a string of at most 256 bytes");
	if (!opt_str(&f[F_REASON], e->reason, sizeof(e->reason)))
		return bad(err, errlen, i, "reason must be a string of at most 32 bytes");
	if (e->type == EV_PLAY_END && e->ms_played < 0)
		return bad(err, errlen, i, "play_end needs ms_played");
	return 0;
}

/* A value (scalar, or the start of a container) at the current depth. */
static void bp_value(struct batch_parser *p, enum vkind kind, bool container_map, bool container_array,
		     const char *s, size_t len, long long iv)
{
	if (p->depth == 0) {
		p->root_map = container_map;
	} else if (p->depth == 1 && p->root_map && p->key_is_events && !p->events_seen) {
		p->events_seen = true;
		p->events_array = p->events_open = container_array;
	} else if (p->depth == 2 && p->events_open) {
		p->count++;
		if (container_map) {
			p->elem_open = true;
			for (int k = 0; k < F_COUNT; k++)
				p->f[k].kind = V_ABSENT;
		} else if (!p->elem_bad && p->count <= (size_t)p->max) {
			p->elem_bad = true;
			bad(p->err, p->errlen, (int)p->count - 1, "must be an object");
		}
	} else if (p->depth == 3 && p->elem_open && p->key >= 0 && p->f[p->key].kind == V_ABSENT) {
		struct rawfield *f = &p->f[p->key];
		f->kind = kind;
		f->i = iv;
		if (kind == V_STRING) {
			size_t n = strnlen(s, len);
			f->len = n;
			size_t keep = n < FIELD_CAP[p->key] ? n : FIELD_CAP[p->key];
			memcpy(f->s, s, keep);
			f->s[keep] = 0;
		}
	}
}

static int cb_null(void *ctx)
{
	bp_value(ctx, V_NULL, false, false, NULL, 0, 0);
	return 1;
}

static int cb_bool(void *ctx, int b)
{
	(void)b;
	bp_value(ctx, V_OTHER, false, false, NULL, 0, 0);
	return 1;
}

/* JSON integers as yajl_tree reads them: digits with an optional minus, no overflow. */
static int cb_number(void *ctx, const char *s, size_t len)
{
	char tmp[32];
	long long v = 0;
	bool isint = len > 0 && len < sizeof(tmp) && strcspn(s, ".eE") >= len;
	if (isint) {
		memcpy(tmp, s, len);
		tmp[len] = 0;
		char *end;
		errno = 0;
		v = strtoll(tmp, &end, 10);
		isint = errno == 0 && *end == 0;
	}
	bp_value(ctx, isint ? V_INT : V_NUMBER, false, false, NULL, 0, v);
	return 1;
}

static int cb_string(void *ctx, const unsigned char *s, size_t len)
{
	bp_value(ctx, V_STRING, false, false, (const char *)s, len, 0);
	return 1;
}

static int cb_start_map(void *ctx)
{
	struct batch_parser *p = ctx;
	bp_value(p, V_OTHER, true, false, NULL, 0, 0);
	p->depth++;
	return 1;
}

static int cb_key(void *ctx, const unsigned char *k, size_t len)
{
	struct batch_parser *p = ctx;
	if (p->depth == 1)
		p->key_is_events = len == 6 && memcmp(k, "events", 6) == 0;
	else if (p->depth == 3 && p->elem_open) {
		p->key = -1;
		for (int i = 0; i < F_COUNT; i++)
			if (strlen(FIELD_NAMES[i]) == len && memcmp(k, FIELD_NAMES[i], len) == 0)
				p->key = i;
	}
	return 1;
}

static int cb_end_map(void *ctx)
{
	struct batch_parser *p = ctx;
	p->depth--;
	if (p->depth == 2 && p->elem_open) {
		p->elem_open = false;
		size_t i = p->count - 1;
		if (p->elem_bad || p->count > (size_t)p->max)
			return 1;
		if (i == p->cap) {
			p->cap = p->cap ? 2 * p->cap : 16;
			if (p->cap > (size_t)p->max)
				p->cap = (size_t)p->max;
			p->ev = xrealloc(p->ev, p->cap * sizeof(*p->ev));
		}
		if (validate_one(p->f, &p->ev[i], p->err, p->errlen, (int)i) != 0)
			p->elem_bad = true;
	}
	return 1;
}

static int cb_start_array(void *ctx)
{
	struct batch_parser *p = ctx;
	bp_value(p, V_OTHER, false, true, NULL, 0, 0);
	p->depth++;
	return 1;
}

static int cb_end_array(void *ctx)
{
	struct batch_parser *p = ctx;
	p->depth--;
	if (p->depth == 1 && p->events_open)
		p->events_open = false;
	return 1;
}

static const yajl_callbacks BATCH_CALLBACKS = {
	.yajl_null = cb_null,
	.yajl_boolean = cb_bool,
	.yajl_number = cb_number,
	.yajl_string = cb_string,
	.yajl_start_map = cb_start_map,
	.yajl_map_key = cb_key,
	.yajl_end_map = cb_end_map,
	.yajl_start_array = cb_start_array,
	.yajl_end_array = cb_end_array,
};

int eventlog_parse_batch(const char *json, int max, struct eventlog_event **out, char *err, size_t errlen)
{
	/* The element error is written to err as it is found; a higher-priority error found
	 * at the end overwrites it. */
	struct batch_parser p = {.max = max < 0 ? 0 : max, .key = -1, .err = err, .errlen = errlen};
	*out = NULL;
	if (errlen)
		err[0] = 0;
	yajl_handle h = yajl_alloc(&BATCH_CALLBACKS, NULL, &p);
	yajl_config(h, yajl_allow_comments, 1);     /* as json_parse (yajl_tree) allows them */
	size_t len = strlen(json);
	yajl_status st = yajl_parse(h, (const unsigned char *)json, len);
	if (st == yajl_status_ok)
		st = yajl_complete_parse(h);
	int rc = -EINVAL;
	if (st != yajl_status_ok) {
		unsigned char *msg = yajl_get_error(h, 1, (const unsigned char *)json, len);
		/* yajl's messages span lines and quote the input; keep the first line only. */
		char *nl = strchr((char *)msg, '\n');
		if (nl)
			*nl = 0;
		snprintf(err, errlen, "malformed JSON: %s", msg[0] ? (char *)msg : "invalid JSON");
		yajl_free_error(h, msg);
	} else if (!p.root_map || !p.events_array) {
		snprintf(err, errlen, "body must be {\"events\": [...]}");
	} else if (p.count > (size_t)p.max) {
		snprintf(err, errlen, "at most %d events per batch (got %zu)", max, p.count);
	} else if (!p.elem_bad) {
		*out = p.ev ? p.ev : xcalloc(1, sizeof(*p.ev));
		p.ev = NULL;
		rc = (int)p.count;
	}
	yajl_free(h);
	free(p.ev);
	return rc;
}

static void bind_opt_int(sqlite3_stmt *st, int col, int64_t v)
{
	if (v < 0)
		sqlite3_bind_null(st, col);
	else
		sqlite3_bind_int64(st, col, v);
}

static void bind_opt_text(sqlite3_stmt *st, int col, const char *s)
{
	if (!s[0])
		sqlite3_bind_null(st, col);
	else
		sqlite3_bind_text(st, col, s, -1, SQLITE_STATIC);
}

static sqlite3_stmt *prepare_insert(sqlite3 *db)
{
	return db_prepare(db,
		"INSERT INTO event_log(event_id, user_id, country, type, ts, received_at, uri, ms_played, bitrate,"
		" position_ms, context, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
		" ON CONFLICT(event_id) DO NOTHING");
}

/* Inserts one batch inside the caller's transaction. 0 with *accepted set, or -EIO. */
static int insert_batch(sqlite3 *db, sqlite3_stmt *st, const char *user, const char *country,
			const struct eventlog_event *ev, int n, int64_t now_ms, int *accepted)
{
	int acc = 0;
	for (int i = 0; i < n; i++) {
		const struct eventlog_event *e = &ev[i];
		sqlite3_bind_text(st, 1, e->id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, user, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, country, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, TYPE_NAMES[e->type], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, e->ts);
		sqlite3_bind_int64(st, 6, now_ms);
		sqlite3_bind_text(st, 7, e->uri, -1, SQLITE_STATIC);
		bind_opt_int(st, 8, e->ms_played);
		bind_opt_int(st, 9, e->bitrate);
		bind_opt_int(st, 10, e->position_ms);
		bind_opt_text(st, 11, e->context);
		bind_opt_text(st, 12, e->reason);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE) {
			fprintf(stderr, "eventlog: append: %s\n", sqlite3_errmsg(db));
			return -EIO;
		}
		acc += sqlite3_changes(db);
	}
	*accepted = acc;
	return 0;
}

int eventlog_append(sqlite3 *db, const char *user, const char *country, const struct eventlog_event *ev, int n,
		    int64_t now_ms, int *accepted, int *duplicates)
{
	*accepted = *duplicates = 0;
	if (db_begin(db) != 0)
		return -EIO;
	sqlite3_stmt *st = prepare_insert(db);
	int acc = 0;
	int rc = st ? insert_batch(db, st, user, country, ev, n, now_ms, &acc) : -EIO;
	sqlite3_finalize(st);
	if (rc != 0 || db_commit(db) != 0) {
		db_rollback(db);
		return -EIO;
	}
	*accepted = acc;
	*duplicates = n - acc;
	return 0;
}

/* ---- Consumers ---- */

struct row {
	int64_t seq;
	const char *event_id, *user, *country, *type, *uri, *reason;
	int64_t ts, received_at, ms_played;
	bool has_ms_played;
};

int eventlog_popularity_from_plays(int64_t plays)
{
	if (plays <= 0)
		return 0;
	int p = (int)lround(25.0 * log10(1.0 + (double)plays));
	return p > 100 ? 100 : p;
}

void eventlog_day(int64_t ms, char out[11])
{
	if (ms < 0)
		ms = 0;
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	if (strftime(out, 11, "%Y-%m-%d", &tm) == 0)
		snprintf(out, 11, "1970-01-01");
}

/* When the listening happened: the device's clock, but never after the server got it
 * (a fast device clock must not put plays in the future). */
static int64_t event_time(const struct row *r)
{
	return r->ts < r->received_at ? r->ts : r->received_at;
}

static bool track_id_of(const char *uri, char id[ID_LEN + 1])
{
	char type[16];
	return uri_parse(uri, type, sizeof(type), id) && strcmp(type, "track") == 0;
}

static int step_done(sqlite3 *db, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		fprintf(stderr, "eventlog: consumer: %s\n", sqlite3_errmsg(db));
		return -EIO;
	}
	return 0;
}

struct royalties {
	sqlite3_stmt *label, *insert;
};

static int royalties_apply(sqlite3 *db, struct royalties *k, const struct row *r)
{
	char id[ID_LEN + 1], day[11];
	if (strcmp(r->type, "play_end") != 0 || !r->has_ms_played || r->ms_played < EVENTLOG_ROYALTY_MS ||
	    !track_id_of(r->uri, id))
		return 0;
	/* The rights holder is the artist's label now, at consumption: reports follow the catalog. */
	const char *holder = "unknown";
	char label[256] = "";
	sqlite3_bind_text(k->label, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(k->label) == SQLITE_ROW) {
		const char *l = (const char *)sqlite3_column_text(k->label, 0);
		if (l && l[0]) {
			snprintf(label, sizeof(label), "%s", l);
			holder = label;
		}
	}
	sqlite3_reset(k->label);
	eventlog_day(event_time(r), day);
	sqlite3_bind_int64(k->insert, 1, r->seq);
	sqlite3_bind_text(k->insert, 2, r->event_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(k->insert, 3, day, -1, SQLITE_STATIC);
	sqlite3_bind_text(k->insert, 4, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(k->insert, 5, holder, -1, SQLITE_STATIC);
	sqlite3_bind_text(k->insert, 6, r->country, -1, SQLITE_STATIC);
	sqlite3_bind_text(k->insert, 7, r->user, -1, SQLITE_STATIC);
	sqlite3_bind_int64(k->insert, 8, r->ms_played);
	return step_done(db, k->insert);
}

struct realtime {
	sqlite3_stmt *minute, *listener, *plays, *skips;
	char (*touched)[ID_LEN + 1];    /* tracks played in this step, for popularity */
	int ntouched, cap;
};

static int realtime_apply(sqlite3 *db, struct realtime *k, const struct row *r)
{
	char id[ID_LEN + 1];
	bool start = strcmp(r->type, "play_start") == 0, skip = strcmp(r->type, "skip") == 0;
	if ((!start && !skip) || !track_id_of(r->uri, id))
		return 0;
	int64_t t = event_time(r);
	if (skip) {
		sqlite3_bind_text(k->skips, 1, id, -1, SQLITE_STATIC);
		return step_done(db, k->skips);
	}
	sqlite3_bind_text(k->minute, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(k->minute, 2, t / 60000);
	sqlite3_bind_text(k->listener, 1, r->country, -1, SQLITE_STATIC);
	sqlite3_bind_int64(k->listener, 2, t / 3600000);
	sqlite3_bind_text(k->listener, 3, r->user, -1, SQLITE_STATIC);
	sqlite3_bind_text(k->plays, 1, id, -1, SQLITE_STATIC);
	if (step_done(db, k->minute) || step_done(db, k->listener) || step_done(db, k->plays))
		return -EIO;
	if (k->ntouched == k->cap) {
		k->cap = k->cap ? 2 * k->cap : 64;
		k->touched = xrealloc(k->touched, (size_t)k->cap * sizeof(*k->touched));
	}
	memcpy(k->touched[k->ntouched++], id, ID_LEN + 1);
	return 0;
}

struct reco {
	sqlite3_stmt *upsert;
};

static int reco_apply(sqlite3 *db, struct reco *k, const struct row *r)
{
	char id[ID_LEN + 1];
	double w;
	if (!track_id_of(r->uri, id))
		return 0;
	if (strcmp(r->type, "play_end") == 0)
		w = r->ms_played >= EVENTLOG_ROYALTY_MS ? 1.0 : 0.0;
	else if (strcmp(r->type, "skip") == 0)
		w = -0.5;
	else if (strcmp(r->type, "save") == 0 || strcmp(r->type, "playlist_add") == 0)
		w = 2.0;
	else if (strcmp(r->type, "unsave") == 0)
		w = -2.0;
	else
		return 0;
	sqlite3_bind_text(k->upsert, 1, r->user, -1, SQLITE_STATIC);
	sqlite3_bind_text(k->upsert, 2, id, -1, SQLITE_STATIC);
	sqlite3_bind_double(k->upsert, 3, w);
	return step_done(db, k->upsert);
}

/* Prepares fmt with %s replaced by the consumer's store (schema) name; aborts as db_prepare. */
static sqlite3_stmt *prepare_in(sqlite3 *db, const char *store, const char *fmt)
{
	char sql[512];
	snprintf(sql, sizeof(sql), fmt, store);
	return db_prepare(db, sql);
}

/* A store is derived from one log. The offset row also keeps the event id at the
 * committed seq; when the log no longer has that event there (encore.db restored from a
 * backup or replaced while the store stayed), the store's rows and offset describe
 * another log: empty it and start again from seq 0. Inside the step's transaction. */
static int check_store_matches_log(sqlite3 *db, const char *store, int64_t *off, const char *at_id)
{
	if (*off == 0)
		return 0;
	sqlite3_stmt *st = db_prepare(db, "SELECT event_id FROM event_log WHERE seq = ?");
	sqlite3_bind_int64(st, 1, *off);
	bool same = sqlite3_step(st) == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), at_id) == 0;
	sqlite3_finalize(st);
	if (same)
		return 0;
	fprintf(stderr, "eventlog: %s: the store does not match the event log (seq %lld is not event %s);"
		" rebuilding it from the start\n", store, (long long)*off, at_id);
	*off = 0;
	return db_store_clear(db, store);
}

/* Starts a consumer step: a deferred transaction whose first statement writes the store,
 * so it takes that file's write lock (with the busy handler) and no other; then reads the
 * committed offset (0 when the store does not match the log). 0 or -EIO (no transaction
 * open). */
static int begin_step(sqlite3 *db, const char *store, const char *name, int64_t *off)
{
	if (db_exec(db, "BEGIN") != 0)
		return -EIO;
	sqlite3_stmt *st = prepare_in(db, store, "UPDATE %s.consumer_offsets SET committed = committed WHERE 0");
	int rc = step_done(db, st);
	sqlite3_finalize(st);
	if (rc != 0) {
		db_rollback(db);
		return -EIO;
	}
	st = prepare_in(db, store, "SELECT committed, event_id FROM %s.consumer_offsets WHERE consumer = ?");
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	char at_id[ID_LEN + 1] = "";
	*off = 0;
	if (sqlite3_step(st) == SQLITE_ROW) {
		*off = sqlite3_column_int64(st, 0);
		const char *id = (const char *)sqlite3_column_text(st, 1);
		snprintf(at_id, sizeof(at_id), "%s", id ? id : "");
	}
	sqlite3_finalize(st);
	if (check_store_matches_log(db, store, off, at_id) != 0) {
		db_rollback(db);
		return -EIO;
	}
	return 0;
}

static void sql_pop(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	sqlite3_result_int(ctx, eventlog_popularity_from_plays(sqlite3_value_int64(argv[0])));
}

/* Raises tracks.popularity (in encore.db) to what the realtime store's play counts give,
 * for the n ids given, or for every counted track when ids is NULL. Popularity only rises
 * from listening (the seeded value is the catalog's prior) and is a function of the
 * committed counts, so this is idempotent: it runs after the step's commit, and once at
 * start to cover a crash between the two. encore.db is write-locked only when a value
 * actually rises (rarely: the scale is logarithmic). 0 or -EIO. */
static int raise_popularity(sqlite3 *db, const char (*ids)[ID_LEN + 1], int n)
{
	sqlite3_create_function(db, "encore_pop", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, sql_pop, NULL, NULL);
	sqlite3_stmt *q = db_prepare(db, ids
		? "SELECT t.id, encore_pop(s.plays) FROM realtime.rt_track_stats s JOIN tracks t ON t.id = s.track_id"
		  " WHERE s.track_id = ?1 AND t.popularity < encore_pop(s.plays)"
		: "SELECT t.id, encore_pop(s.plays) FROM realtime.rt_track_stats s JOIN tracks t ON t.id = s.track_id"
		  " WHERE t.popularity < encore_pop(s.plays)");
	char (*up)[ID_LEN + 1] = NULL;
	int *pop = NULL, nup = 0, cap = 0, rc = 0;
	for (int i = 0; ids ? i < n : i < 1; i++) {
		if (ids)
			sqlite3_bind_text(q, 1, ids[i], -1, SQLITE_STATIC);
		int s;
		while ((s = sqlite3_step(q)) == SQLITE_ROW) {
			const char *id = (const char *)sqlite3_column_text(q, 0);
			if (!id || strlen(id) != ID_LEN)
				continue;
			if (nup == cap) {
				cap = cap ? 2 * cap : 16;
				up = xrealloc(up, (size_t)cap * sizeof(*up));
				pop = xrealloc(pop, (size_t)cap * sizeof(*pop));
			}
			memcpy(up[nup], id, ID_LEN + 1);
			pop[nup++] = sqlite3_column_int(q, 1);
		}
		if (s != SQLITE_DONE)
			rc = -EIO;
		sqlite3_reset(q);
	}
	sqlite3_finalize(q);
	if (rc == 0 && nup > 0) {
		sqlite3_stmt *u = db_prepare(db, "UPDATE tracks SET popularity = ?2 WHERE id = ?1 AND popularity < ?2");
		rc = db_exec(db, "BEGIN");
		for (int i = 0; rc == 0 && i < nup; i++) {
			sqlite3_bind_text(u, 1, up[i], -1, SQLITE_STATIC);
			sqlite3_bind_int(u, 2, pop[i]);
			rc = step_done(db, u);
		}
		sqlite3_finalize(u);
		if (rc != 0 || db_commit(db) != 0) {
			db_rollback(db);
			rc = -EIO;
		}
	}
	free(up);
	free(pop);
	return rc;
}

int eventlog_consume(sqlite3 *db, enum eventlog_consumer_id c, int max, int64_t now_ms)
{
	const char *name = eventlog_consumer_name(c);
	int64_t off;
	/* The store's schema name is the consumer's name (db.c). */
	if (!name || begin_step(db, name, name, &off) != 0)
		return -EIO;
	struct royalties roy = {0};
	struct realtime rt = {0};
	struct reco rc_ = {0};
	switch (c) {
	case CONSUMER_ROYALTIES:
		roy.label = db_prepare(db, "SELECT ar.label FROM tracks t JOIN artists ar ON ar.id = t.artist_id WHERE t.id = ?");
		roy.insert = db_prepare(db, "INSERT OR IGNORE INTO royalty_streams(event_seq, event_id, day, track_id,"
					    " rights_holder, country, user_id, ms_played) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
		break;
	case CONSUMER_REALTIME:
		rt.minute = db_prepare(db, "INSERT INTO rt_minute_plays(track_id, minute, plays) VALUES (?1, ?2, 1)"
					   " ON CONFLICT(minute, track_id) DO UPDATE SET plays = plays + 1");
		rt.listener = db_prepare(db, "INSERT OR IGNORE INTO rt_listeners(country, hour, user_id) VALUES (?1, ?2, ?3)");
		rt.plays = db_prepare(db, "INSERT INTO rt_track_stats(track_id, plays) VALUES (?1, 1)"
					  " ON CONFLICT(track_id) DO UPDATE SET plays = plays + 1");
		rt.skips = db_prepare(db, "INSERT INTO rt_track_stats(track_id, skips) VALUES (?1, 1)"
					  " ON CONFLICT(track_id) DO UPDATE SET skips = skips + 1");
		break;
	case CONSUMER_RECOMMENDATIONS:
		rc_.upsert = db_prepare(db, "INSERT INTO reco_interactions(user_id, track_id, weight, events) VALUES (?1, ?2, ?3, 1)"
					    " ON CONFLICT(user_id, track_id) DO UPDATE SET weight = weight + ?3, events = events + 1");
		break;
	default:
		break;
	}
	sqlite3_stmt *rows = db_prepare(db, "SELECT seq, event_id, user_id, country, type, uri, reason, ts, received_at,"
					    " ms_played FROM event_log WHERE seq > ? ORDER BY seq LIMIT ?");
	sqlite3_bind_int64(rows, 1, off);
	sqlite3_bind_int(rows, 2, max);
	int n = 0, rc = 0, s;
	int64_t last = off;
	char last_id[ID_LEN + 1] = "";
	while (rc == 0 && (s = sqlite3_step(rows)) == SQLITE_ROW) {
		struct row r = {
			.seq = sqlite3_column_int64(rows, 0),
			.event_id = (const char *)sqlite3_column_text(rows, 1),
			.user = (const char *)sqlite3_column_text(rows, 2),
			.country = (const char *)sqlite3_column_text(rows, 3),
			.type = (const char *)sqlite3_column_text(rows, 4),
			.uri = (const char *)sqlite3_column_text(rows, 5),
			.reason = (const char *)sqlite3_column_text(rows, 6),
			.ts = sqlite3_column_int64(rows, 7),
			.received_at = sqlite3_column_int64(rows, 8),
			.ms_played = sqlite3_column_int64(rows, 9),
			.has_ms_played = sqlite3_column_type(rows, 9) != SQLITE_NULL,
		};
		if (c == CONSUMER_ROYALTIES)
			rc = royalties_apply(db, &roy, &r);
		else if (c == CONSUMER_REALTIME)
			rc = realtime_apply(db, &rt, &r);
		else
			rc = reco_apply(db, &rc_, &r);
		last = r.seq;
		snprintf(last_id, sizeof(last_id), "%s", r.event_id ? r.event_id : "");
		n++;
	}
	if (rc == 0 && s != SQLITE_DONE && s != SQLITE_ROW)
		rc = -EIO;
	sqlite3_finalize(rows);
	sqlite3_stmt *fin[] = {roy.label, roy.insert, rt.minute, rt.listener, rt.plays, rt.skips, rc_.upsert};
	for (size_t i = 0; i < sizeof(fin) / sizeof(fin[0]); i++)
		sqlite3_finalize(fin[i]);
	if (rc == 0 && n > 0) {
		sqlite3_stmt *st = prepare_in(db, name, "INSERT INTO %s.consumer_offsets(consumer, committed, updated_at, event_id)"
						  " VALUES (?1, ?2, ?3, ?4) ON CONFLICT(consumer) DO UPDATE SET committed = ?2,"
						  " updated_at = ?3, event_id = ?4");
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, last);
		sqlite3_bind_int64(st, 3, now_ms);
		sqlite3_bind_text(st, 4, last_id, -1, SQLITE_STATIC);
		rc = step_done(db, st);
		sqlite3_finalize(st);
	}
	if (rc == 0 && c == CONSUMER_REALTIME && n == 0) {
		/* Housekeeping when idle: the window needs 30 minutes, the listener report two days. */
		sqlite3_stmt *st = db_prepare(db, "DELETE FROM realtime.rt_minute_plays WHERE minute < ?");
		sqlite3_bind_int64(st, 1, now_ms / 60000 - 2 * 24 * 60);
		rc = step_done(db, st);
		sqlite3_finalize(st);
	}
	if (rc != 0 || db_commit(db) != 0) {
		db_rollback(db);
		free(rt.touched);
		return -EIO;
	}
	/* The step is committed; a failure here is made good at the next start (runner). */
	if (rt.ntouched > 0 && raise_popularity(db, (const char (*)[ID_LEN + 1])rt.touched, rt.ntouched) != 0)
		fprintf(stderr, "eventlog: realtime: popularity not raised: %s\n", sqlite3_errmsg(db));
	free(rt.touched);
	return n;
}

int eventlog_catch_up(sqlite3 *db, enum eventlog_consumer_id c, int64_t now_ms)
{
	int total = 0, n;
	while ((n = eventlog_consume(db, c, 1000, now_ms)) > 0)
		total += n;
	return n < 0 ? n : total;
}

int64_t eventlog_head(sqlite3 *db)
{
	sqlite3_stmt *st = db_prepare(db, "SELECT max(seq) FROM event_log");
	int64_t h = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return h;
}

int eventlog_consumer_status(sqlite3 *db, struct eventlog_consumer_status out[CONSUMER_COUNT])
{
	int64_t head = eventlog_head(db);
	for (int i = 0; i < CONSUMER_COUNT; i++) {
		sqlite3_stmt *st = prepare_in(db, CONSUMER_NAMES[i], "SELECT committed, updated_at FROM %s.consumer_offsets"
									 " WHERE consumer = ?");
		out[i].name = CONSUMER_NAMES[i];
		out[i].offset = out[i].updated_at_ms = 0;
		sqlite3_bind_text(st, 1, CONSUMER_NAMES[i], -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			out[i].offset = sqlite3_column_int64(st, 0);
			out[i].updated_at_ms = sqlite3_column_int64(st, 1);
		}
		sqlite3_finalize(st);
		out[i].lag = head - out[i].offset;
	}
	return 0;
}

/* ---- Runner ---- */

struct consumer_thread {
	struct eventlog_runner *r;
	enum eventlog_consumer_id id;
	pthread_t th;
	sqlite3 *db;
	bool started;
};

struct eventlog_runner {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t generation;        /* bumped by notify */
	uint64_t appended;          /* events accepted through the runner */
	bool stop;
	atomic_ullong failures;
	void (*on_change)(void *ctx);
	void *ctx;
	struct consumer_thread th[CONSUMER_COUNT];
	/* Group commit: request workers queue batches and wait; one appender thread commits
	 * everything queued in one transaction, so writers never queue on SQLite's lock and
	 * a burst of batches costs one commit. */
	pthread_mutex_t amu;
	pthread_cond_t awake, adone;
	struct append_req *ahead, **atail;
	bool astop, astarted;
	pthread_t ath;
	sqlite3 *adb;
	sqlite3_stmt *ains;
};

struct append_req {
	struct append_req *next;
	const char *user, *country;
	const struct eventlog_event *ev;
	int n;
	int64_t now_ms;
	int accepted, rc;
	bool done;
};

static void *appender_main(void *arg)
{
	struct eventlog_runner *r = arg;
	pthread_mutex_lock(&r->amu);
	for (;;) {
		while (!r->ahead && !r->astop)
			pthread_cond_wait(&r->awake, &r->amu);
		if (!r->ahead)
			break;
		struct append_req *group = r->ahead;
		r->ahead = NULL;
		r->atail = &r->ahead;
		pthread_mutex_unlock(&r->amu);
		int rc = db_begin(r->adb) == 0 ? 0 : -EIO;
		for (struct append_req *q = group; q && rc == 0; q = q->next)
			rc = insert_batch(r->adb, r->ains, q->user, q->country, q->ev, q->n, q->now_ms, &q->accepted);
		if (rc == 0 && db_commit(r->adb) != 0)
			rc = -EIO;
		if (rc != 0)
			db_rollback(r->adb);
		pthread_mutex_lock(&r->amu);
		for (struct append_req *q = group; q; q = q->next) {
			q->rc = rc;
			q->done = true;
		}
		pthread_cond_broadcast(&r->adone);
	}
	pthread_mutex_unlock(&r->amu);
	return NULL;
}

int eventlog_runner_append(struct eventlog_runner *r, const char *user, const char *country,
			   const struct eventlog_event *ev, int n, int64_t now_ms, int *accepted, int *duplicates)
{
	struct append_req q = {.user = user, .country = country, .ev = ev, .n = n, .now_ms = now_ms};
	*accepted = *duplicates = 0;
	pthread_mutex_lock(&r->amu);
	*r->atail = &q;
	r->atail = &q.next;
	pthread_cond_signal(&r->awake);
	while (!q.done)
		pthread_cond_wait(&r->adone, &r->amu);
	pthread_mutex_unlock(&r->amu);
	if (q.rc != 0)
		return q.rc;
	*accepted = q.accepted;
	*duplicates = n - q.accepted;
	pthread_mutex_lock(&r->mu);
	r->generation++;
	r->appended += (uint64_t)q.accepted;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	return 0;
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A consumer that found entries waits for this many more, or this long, before its next
 * step (see consumer_main). */
#define CONSUMER_FETCH_MIN 1024
#define CONSUMER_LINGER_MS 50

static void *consumer_main(void *arg)
{
	struct consumer_thread *t = arg;
	struct eventlog_runner *r = t->r;
	int backoff_ms = 0, step = 256;
	uint64_t seen = 0, seen_appended = 0;
	/* Consumers are derived work and may lag (the lag is visible in /metrics); ingest is
	 * what clients wait on. At the lowest priority they take the cores ingest leaves idle
	 * instead of competing with it under load. Linux nice values are per thread. */
	setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
	/* A crash between a realtime step's commit and its popularity update left counts
	 * that popularity does not reflect yet. */
	if (t->id == CONSUMER_REALTIME && raise_popularity(t->db, NULL, 0) == 0 && r->on_change)
		r->on_change(r->ctx);
	for (;;) {
		pthread_mutex_lock(&r->mu);
		bool stop = r->stop;
		seen = r->generation;
		seen_appended = r->appended;
		pthread_mutex_unlock(&r->mu);
		if (stop)
			break;
		/* Steps start at 256 entries, which bounds how long a request worker's write
		 * transaction (BEGIN IMMEDIATE locks the stores too) can wait for one; when the
		 * consumer is behind (a burst), bigger steps rewrite each hot page once per step
		 * instead of once per 256 entries, and it catches up sooner. */
		int n = eventlog_consume(t->db, t->id, step, wall_ms());
		bool full = n == step;
		step = n == step && step < 4096 ? step * 2 : n < step / 2 && step > 256 ? step / 2 : step;
		if (n < 0) {
			atomic_fetch_add(&r->failures, 1);
			backoff_ms = backoff_ms ? (backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2) : 100;
		} else {
			backoff_ms = 0;
			if (n > 0 && t->id == CONSUMER_REALTIME && r->on_change)
				r->on_change(r->ctx);
			if (full)
				continue;   /* behind: the step size was the limit */
		}
		/* Caught up. While ingest is hot (this step found entries), linger like a Kafka
		 * fetch (fetch.min.bytes / fetch.max.wait): wait for CONSUMER_FETCH_MIN new events
		 * or CONSUMER_LINGER_MS, so the log is consumed in a few large transactions
		 * instead of one small one per batch (each commit rewrites the step's hot pages).
		 * Idle (or backing off): sleep until notified, or a timeout for housekeeping. */
		pthread_mutex_lock(&r->mu);
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		bool linger = n > 0;
		int wait = backoff_ms ? backoff_ms : linger ? CONSUMER_LINGER_MS : 1000;
		until.tv_sec += wait / 1000;
		until.tv_nsec += (long)(wait % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (!r->stop && (backoff_ms || r->generation == seen ||
				    (linger && r->appended - seen_appended < CONSUMER_FETCH_MIN)))
			if (pthread_cond_timedwait(&r->cv, &r->mu, &until) != 0)
				break;
		pthread_mutex_unlock(&r->mu);
	}
	return NULL;
}

struct eventlog_runner *eventlog_runner_new(const char *data_dir, void (*on_change)(void *ctx), void *ctx,
					    char *err, size_t errlen)
{
	struct eventlog_runner *r = xcalloc(1, sizeof(*r));
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->on_change = on_change;
	r->ctx = ctx;
	pthread_mutex_init(&r->amu, NULL);
	pthread_cond_init(&r->awake, NULL);
	pthread_cond_init(&r->adone, NULL);
	r->atail = &r->ahead;
	if (db_open_log(data_dir, &r->adb, err, errlen) != 0)
		goto fail;
	r->ains = prepare_insert(r->adb);
	if (!r->ains || pthread_create(&r->ath, NULL, appender_main, r) != 0) {
		snprintf(err, errlen, "cannot start the event appender");
		goto fail;
	}
	r->astarted = true;
	for (int i = 0; i < CONSUMER_COUNT; i++) {
		struct consumer_thread *t = &r->th[i];
		t->r = r;
		t->id = (enum eventlog_consumer_id)i;
		if (db_open(data_dir, &t->db, err, errlen) != 0)
			goto fail;
		if (pthread_create(&t->th, NULL, consumer_main, t) != 0) {
			snprintf(err, errlen, "cannot start consumer thread");
			goto fail;
		}
		t->started = true;
	}
	return r;
fail:
	eventlog_runner_free(r);
	return NULL;
}

void eventlog_runner_notify(struct eventlog_runner *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->generation++;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

uint64_t eventlog_runner_failures(struct eventlog_runner *r)
{
	return r ? atomic_load(&r->failures) : 0;
}

void eventlog_runner_free(struct eventlog_runner *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	for (int i = 0; i < CONSUMER_COUNT; i++) {
		if (r->th[i].started)
			pthread_join(r->th[i].th, NULL);
		db_close(r->th[i].db);
	}
	/* The appender drains what is queued before it stops: nothing accepted is dropped. */
	pthread_mutex_lock(&r->amu);
	r->astop = true;
	pthread_cond_broadcast(&r->awake);
	pthread_mutex_unlock(&r->amu);
	if (r->astarted)
		pthread_join(r->ath, NULL);
	sqlite3_finalize(r->ains);
	db_close(r->adb);
	pthread_cond_destroy(&r->awake);
	pthread_cond_destroy(&r->adone);
	pthread_mutex_destroy(&r->amu);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}
