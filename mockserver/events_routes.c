/* events_routes: the event log's HTTP face: batch ingest, recently played, trending, the
 * consumers' state and real-time aggregates, and /metrics. */
#include "catalog.h"
#include "db.h"
#include "edge.h"
#include "eventlog.h"
#include "json.h"
#include "metrics.h"
#include "server.h"
#include "xmem.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void route_post_events(struct call *c)
{
	char err[256];
	if (c->req->body.len == 0 || strlen(c->req->body.data) != c->req->body.len) {
		call_error(c, 400, "request body must be a JSON object");
		return;
	}
	struct eventlog_event *ev = NULL;
	int n = eventlog_parse_batch(c->req->body.data, EVENTLOG_MAX_BATCH, &ev, err, sizeof(err));
	if (n < 0) {
		call_error(c, 400, "%s", err);
		return;
	}
	int accepted = 0, dup = 0;
	int rc = c->srv->events ? eventlog_runner_append(c->srv->events, c->user.sub, c->user.country, ev, n, wall_ms(),
							 &accepted, &dup)
				: eventlog_append(c->db, c->user.sub, c->user.country, ev, n, wall_ms(), &accepted, &dup);
	free(ev);
	if (rc != 0) {
		call_error(c, 503, "event log unavailable");
		return;
	}
	atomic_fetch_add(&c->srv->events_accepted, (unsigned long long)accepted);
	atomic_fetch_add(&c->srv->events_duplicate, (unsigned long long)dup);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kint(&w, "accepted", accepted);
	jw_kint(&w, "duplicates", dup);
	jw_obj_end(&w);
	call_json(c, 200, jw_finish(&w));
}

static bool ms_arg(struct call *c, const char *name, int64_t *out)
{
	const char *s = http_arg(c->req, name);
	if (!s)
		return true;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (!*s || *end || errno || v < 0) {
		call_error(c, 400, "%s must be a Unix timestamp in milliseconds", name);
		return false;
	}
	*out = v;
	return true;
}

static void iso_time(int64_t ms, char out[32])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (tm.tm_year + 1900) % 10000, (tm.tm_mon + 1) % 100,
		 tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100, tm.tm_sec % 100, (int)(ms % 1000));
}

/* Web API cursor paging by time: items newest first; before/after are exclusive bounds. */
static void route_recently_played(struct call *c)
{
	int64_t before = -1, after = -1;
	long long limit = 20;
	const char *l = http_arg(c->req, "limit");
	if (l) {
		char *end;
		limit = strtoll(l, &end, 10);
		if (!*l || *end || limit < 1 || limit > 50) {
			call_error(c, 400, "Invalid limit: must be an integer from 1 to 50");
			return;
		}
	}
	if (!ms_arg(c, "before", &before) || !ms_arg(c, "after", &after))
		return;
	if (before >= 0 && after >= 0) {
		call_error(c, 400, "give before or after, not both");
		return;
	}
	/* play_end is a finished listen; one per play, so a play shows once. */
	sqlite3_stmt *st = db_prepare(c->db, after >= 0
		? "SELECT uri, ts, context FROM (SELECT uri, ts, context, seq FROM event_log WHERE user_id = ?1 AND type = 'play_end'"
		  " AND ts > ?2 ORDER BY ts ASC, seq ASC LIMIT ?3) ORDER BY ts DESC, seq DESC"
		: "SELECT uri, ts, context FROM event_log WHERE user_id = ?1 AND type = 'play_end' AND ts < ?2"
		  " ORDER BY ts DESC, seq DESC LIMIT ?3");
	sqlite3_bind_text(st, 1, c->user.sub, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, after >= 0 ? after : before >= 0 ? before : INT64_MAX);
	sqlite3_bind_int(st, 3, (int)limit + 1);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "items");
	jw_arr(&w);
	int n = 0;
	int64_t newest = -1, oldest = -1;
	bool more = false;
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (n == limit) {
			more = true;
			break;
		}
		const char *uri = (const char *)sqlite3_column_text(st, 0);
		int64_t ts = sqlite3_column_int64(st, 1);
		char type[16], id[ID_LEN + 1], when[32];
		if (!uri_parse(uri, type, sizeof(type), id) || strcmp(type, "track") != 0)
			continue;
		jw_obj(&w);
		jw_key(&w, "track");
		if (!catalog_write_track(c, &w, id))
			jw_null(&w);
		iso_time(ts, when);
		jw_kstr(&w, "played_at", when);
		jw_key(&w, "context");
		jw_null(&w);
		jw_obj_end(&w);
		if (newest < 0)
			newest = ts;
		oldest = ts;
		n++;
	}
	sqlite3_finalize(st);
	/* With after, the query took the oldest rows past the cursor; "more" then means newer ones. */
	jw_arr_end(&w);
	jw_key(&w, "cursors");
	if (n) {
		char a[24], b[24];
		snprintf(a, sizeof(a), "%lld", (long long)newest);
		snprintf(b, sizeof(b), "%lld", (long long)oldest);
		jw_obj(&w);
		jw_kstr(&w, "after", a);
		jw_kstr(&w, "before", b);
		jw_obj_end(&w);
	} else {
		jw_null(&w);
	}
	char *href = xasprintf("%s%s?limit=%lld", c->srv->base_url, c->req->path, limit);
	jw_kstr(&w, "href", href);
	free(href);
	jw_kint(&w, "limit", limit);
	jw_key(&w, "next");
	if (more && after < 0) {
		char *next = xasprintf("%s%s?before=%lld&limit=%lld", c->srv->base_url, c->req->path, (long long)oldest, limit);
		jw_str(&w, next);
		free(next);
	} else if (more) {
		char *next = xasprintf("%s%s?after=%lld&limit=%lld", c->srv->base_url, c->req->path, (long long)newest, limit);
		jw_str(&w, next);
		free(next);
	} else {
		jw_null(&w);
	}
	jw_obj_end(&w);
	call_json(c, 200, jw_finish(&w));
}

static void route_trending(struct call *c)
{
	int limit, offset;
	if (!call_paging(c, 50, &limit, &offset))
		return;
	int64_t now = wall_ms(), from = now - EVENTLOG_TRENDING_WINDOW_MS;
	sqlite3_stmt *st = db_prepare(c->db,
		"SELECT track_id, sum(plays) AS p FROM rt_minute_plays WHERE minute >= ?1 AND minute <= ?2"
		" GROUP BY track_id ORDER BY p DESC, track_id LIMIT ?3 OFFSET ?4");
	sqlite3_bind_int64(st, 1, from / 60000);
	sqlite3_bind_int64(st, 2, now / 60000);
	sqlite3_bind_int(st, 3, limit);
	sqlite3_bind_int(st, 4, offset);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "tracks");
	jw_obj(&w);
	jw_key(&w, "items");
	jw_arr(&w);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 0);
		jw_obj(&w);
		jw_kint(&w, "plays", sqlite3_column_int64(st, 1));
		jw_key(&w, "track");
		if (!catalog_write_track(c, &w, id))
			jw_null(&w);
		jw_obj_end(&w);
	}
	sqlite3_finalize(st);
	jw_arr_end(&w);
	st = db_prepare(c->db, "SELECT count(DISTINCT track_id) FROM rt_minute_plays WHERE minute >= ?1 AND minute <= ?2");
	sqlite3_bind_int64(st, 1, from / 60000);
	sqlite3_bind_int64(st, 2, now / 60000);
	long long total = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	call_paging_fields(c, &w, limit, offset, total);
	jw_obj_end(&w);
	jw_kint(&w, "window_ms", EVENTLOG_TRENDING_WINDOW_MS);
	jw_kint(&w, "as_of", now);
	jw_obj_end(&w);
	call_json(c, 200, jw_finish(&w));
}

static void route_consumers(struct call *c)
{
	struct eventlog_consumer_status s[CONSUMER_COUNT];
	eventlog_consumer_status(c->db, s);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kint(&w, "head", eventlog_head(c->db));
	jw_kint(&w, "failures", (long long)eventlog_runner_failures(c->srv->events));
	jw_key(&w, "consumers");
	jw_arr(&w);
	for (int i = 0; i < CONSUMER_COUNT; i++) {
		jw_obj(&w);
		jw_kstr(&w, "name", s[i].name);
		jw_kint(&w, "offset", s[i].offset);
		jw_kint(&w, "lag", s[i].lag);
		jw_kint(&w, "updated_at", s[i].updated_at_ms);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_obj_end(&w);
	call_json(c, 200, jw_finish(&w));
}

/* Active listeners per country per hour (last 48 hours) and skip rate per track. */
static void route_realtime(struct call *c)
{
	int64_t now = wall_ms();
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "listeners");
	jw_arr(&w);
	sqlite3_stmt *st = db_prepare(c->db, "SELECT country, hour, count(*) FROM rt_listeners WHERE hour >= ?"
					     " GROUP BY hour, country ORDER BY hour DESC, country");
	sqlite3_bind_int64(st, 1, now / 3600000 - 48);
	while (sqlite3_step(st) == SQLITE_ROW) {
		char when[32];
		iso_time(sqlite3_column_int64(st, 1) * 3600000, when);
		jw_obj(&w);
		jw_kstr(&w, "country", (const char *)sqlite3_column_text(st, 0));
		jw_kstr(&w, "hour", when);
		jw_kint(&w, "listeners", sqlite3_column_int64(st, 2));
		jw_obj_end(&w);
	}
	sqlite3_finalize(st);
	jw_arr_end(&w);
	jw_key(&w, "tracks");
	jw_arr(&w);
	st = db_prepare(c->db, "SELECT track_id, plays, skips FROM rt_track_stats ORDER BY plays DESC, track_id LIMIT 200");
	while (sqlite3_step(st) == SQLITE_ROW) {
		long long plays = sqlite3_column_int64(st, 1), skips = sqlite3_column_int64(st, 2);
		char uri[64];
		snprintf(uri, sizeof(uri), "encore:track:%s", (const char *)sqlite3_column_text(st, 0));
		jw_obj(&w);
		jw_kstr(&w, "uri", uri);
		jw_kint(&w, "plays", plays);
		jw_kint(&w, "skips", skips);
		jw_key(&w, "skip_rate");
		if (plays > 0)
			jw_double(&w, (double)skips / (double)plays);
		else
			jw_null(&w);
		jw_obj_end(&w);
	}
	sqlite3_finalize(st);
	jw_arr_end(&w);
	jw_obj_end(&w);
	call_json(c, 200, jw_finish(&w));
}

static double ratio(uint64_t hits, uint64_t misses)
{
	return hits + misses ? (double)hits / (double)(hits + misses) : 0;
}

static void route_metrics(struct call *c)
{
	struct server *s = c->srv;
	struct buf b = BUF_INIT;
	metrics_render(s->metrics, &b);
	struct edge_stats e = edge_stats(s->edge);
	metrics_sample(&b, "encore_edge_cache_hits_total", "counter", "Edge cache hits.", "", (double)e.hits);
	metrics_sample(&b, "encore_edge_cache_misses_total", "counter", "Edge cache misses.", "", (double)e.misses);
	metrics_sample(&b, "encore_edge_cache_hit_ratio", "gauge", "Edge cache hits / lookups since start.", "", ratio(e.hits, e.misses));
	metrics_sample(&b, "encore_edge_cache_bytes", "gauge", "Bytes held by the edge cache.", "", (double)e.bytes);
	struct ttlcache_stats t = ttlcache_stats(s->meta_cache);
	metrics_sample(&b, "encore_metadata_cache_hits_total", "counter", "Metadata cache hits.", "", (double)t.hits);
	metrics_sample(&b, "encore_metadata_cache_misses_total", "counter", "Metadata cache misses.", "", (double)t.misses);
	metrics_sample(&b, "encore_metadata_cache_hit_ratio", "gauge", "Metadata cache hits / lookups since start.", "",
		       ratio(t.hits, t.misses));
	metrics_sample(&b, "encore_websockets_open", "gauge", "Open WebSocket connections.", "", 0);
	long long depth = 0;
	sqlite3_stmt *st = db_prepare(c->db, "SELECT count(*) FROM ingest_jobs WHERE state IN ('queued','running')");
	if (sqlite3_step(st) == SQLITE_ROW)
		depth = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	metrics_sample(&b, "encore_transcode_queue_depth", "gauge", "Ingest jobs queued or running.", "", (double)depth);
	struct eventlog_consumer_status cs[CONSUMER_COUNT];
	eventlog_consumer_status(c->db, cs);
	int64_t head = eventlog_head(c->db);
	metrics_sample(&b, "encore_event_log_head", "gauge", "Newest offset in the event log.", "", (double)head);
	for (int i = 0; i < CONSUMER_COUNT; i++) {
		char l[64];
		snprintf(l, sizeof(l), "consumer=\"%s\"", cs[i].name);
		metrics_sample(&b, "encore_consumer_lag", "gauge", i == 0 ? "Log entries a consumer has not committed yet." : NULL,
			       l, (double)cs[i].lag);
	}
	for (int i = 0; i < CONSUMER_COUNT; i++) {
		char l[64];
		snprintf(l, sizeof(l), "consumer=\"%s\"", cs[i].name);
		metrics_sample(&b, "encore_consumer_offset", "gauge", i == 0 ? "A consumer's committed offset." : NULL, l,
			       (double)cs[i].offset);
	}
	metrics_sample(&b, "encore_consumer_failures_total", "counter", "Consumer batches that failed and were retried.", "",
		       (double)eventlog_runner_failures(s->events));
	metrics_sample(&b, "encore_events_accepted_total", "counter", "Events appended to the log.", "",
		       (double)atomic_load(&s->events_accepted));
	metrics_sample(&b, "encore_events_duplicate_total", "counter", "Events ignored as already logged.", "",
		       (double)atomic_load(&s->events_duplicate));
	metrics_sample(&b, "encore_rate_limited_total", "counter", "Requests refused by a rate limit (429).", "",
		       (double)atomic_load(&s->rate_limited));
	metrics_sample(&b, "encore_signature_failures_total", "counter", "CDN requests with a bad or expired signature.", "",
		       (double)atomic_load(&s->sig_failures));
	metrics_sample(&b, "encore_auth_failures_total", "counter", "Requests with an invalid access token.", "",
		       (double)atomic_load(&s->auth_failures));
	http_resp_json(c->resp, 200, buf_steal(&b));
	c->resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

const struct route events_routes[] = {
	{"POST", "/v1/events", route_post_events, 0},
	{"GET", "/v1/me/player/recently-played", route_recently_played, 0},
	{"GET", "/v1/browse/trending", route_trending, 0},
	{"GET", "/v1/admin/consumers", route_consumers, ROUTE_ADMIN},
	{"GET", "/v1/admin/realtime", route_realtime, ROUTE_ADMIN},
	{"GET", "/metrics", route_metrics, ROUTE_PUBLIC},
	{NULL, NULL, NULL, 0},
};
