/* Unit tests for the event log's pure parts and its exactly-once consumption, the
 * metrics renderer, and the client outbox (on a temporary directory, no network). */
#include "../tap.h"
#include "buf.h"
#include "db.h"
#include "eventlog.h"
#include "json.h"
#include "metrics.h"
#include "outbox.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[256];

static void test_parse_batch_accepts_valid_events_and_defaults_optional_fields(void)
{
	struct eventlog_event *ev = NULL;
	char err[256] = "";
	int n = eventlog_parse_batch("{\"events\":[{\"id\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"type\":\"play_end\",\"ts\":1700000000000,"
				     "\"uri\":\"encore:track:BBBBBBBBBBBBBBBBBBBBBB\",\"ms_played\":31000,\"bitrate\":160,\"x\":[1]},"
				     "{\"id\":\"CCCCCCCCCCCCCCCCCCCCCC\",\"type\":\"search_click\",\"ts\":1700000000001,"
				     "\"uri\":\"encore:track:BBBBBBBBBBBBBBBBBBBBBB\",\"context\":\"daft\"}]}",
				     1000, &ev, err, sizeof(err));
	CHECK_INT(n, 2);
	if (n == 2) {
		CHECK_INT(ev[0].type, EV_PLAY_END);
		CHECK_INT(ev[0].ms_played, 31000);
		CHECK_INT(ev[0].bitrate, 160);
		CHECK_INT(ev[0].position_ms, -1);
		CHECK_STR(ev[1].context, "daft");
		CHECK_INT(ev[1].ms_played, -1);
	}
	free(ev);
}

static void test_parse_batch_rejects_bad_input_with_the_event_index(void)
{
	static const char *const bad[] = {
		"", "{", "[]", "{\"events\":{}}",
		"{\"events\":[{\"id\":\"short\",\"type\":\"pause\",\"ts\":1700000000000,\"uri\":\"encore:track:BBBBBBBBBBBBBBBBBBBBBB\"}]}",
		"{\"events\":[{\"id\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"type\":\"dance\",\"ts\":1700000000000,\"uri\":\"encore:track:BBBBBBBBBBBBBBBBBBBBBB\"}]}",
		"{\"events\":[{\"id\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"type\":\"pause\",\"ts\":\"1\",\"uri\":\"encore:track:BBBBBBBBBBBBBBBBBBBBBB\"}]}",
		"{\"events\":[{\"id\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"type\":\"pause\",\"ts\":5,\"uri\":\"encore:track:BBBBBBBBBBBBBBBBBBBBBB\"}]}",
		"{\"events\":[{\"id\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"type\":\"play_end\",\"ts\":1700000000000,\"uri\":\"encore:track:BBBBBBBBBBBBBBBBBBBBBB\"}]}",
		"{\"events\":[{\"id\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"type\":\"pause\",\"ts\":1700000000000,\"uri\":\"x\"}]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct eventlog_event *ev = (void *)1;
		char err[256] = "";
		int n = eventlog_parse_batch(bad[i], 1000, &ev, err, sizeof(err));
		CHECK(n == -22 && ev == NULL && err[0], "case %zu: expected -EINVAL with a message, got %d '%s'", i, n, err);
	}
	struct eventlog_event *ev = NULL;
	char err[256];
	int n = eventlog_parse_batch("{\"events\":[1,2,3]}", 2, &ev, err, sizeof(err));
	CHECK(n == -22 && strstr(err, "at most 2"), "over max: %d %s", n, err);
}

static void test_popularity_and_day_helpers(void)
{
	CHECK_INT(eventlog_popularity_from_plays(0), 0);
	CHECK_INT(eventlog_popularity_from_plays(9), 25);
	CHECK_INT(eventlog_popularity_from_plays(99), 50);
	CHECK_INT(eventlog_popularity_from_plays(100000000), 100);
	char d[11];
	eventlog_day(1700000000000LL, d);
	CHECK_STR(d, "2023-11-14");
}

static struct eventlog_event mk(const char *id, enum eventlog_type t, int64_t ms)
{
	struct eventlog_event e;
	memset(&e, 0, sizeof(e));
	snprintf(e.id, sizeof(e.id), "%s", id);
	e.type = t;
	e.ts = 1700000000000LL;
	snprintf(e.uri, sizeof(e.uri), "encore:track:BBBBBBBBBBBBBBBBBBBBBB");
	e.ms_played = ms;
	e.bitrate = e.position_ms = -1;
	return e;
}

static void test_append_is_idempotent_and_consumers_count_each_entry_once(void)
{
	sqlite3 *db;
	char err[256];
	CHECK(db_open(tmpdir, &db, err, sizeof(err)) == 0, "open: %s", err);
	struct eventlog_event ev[3] = {
		mk("AAAAAAAAAAAAAAAAAAAAA1", EV_PLAY_END, 30000),
		mk("AAAAAAAAAAAAAAAAAAAAA2", EV_PLAY_END, 29999),
		mk("AAAAAAAAAAAAAAAAAAAAA1", EV_PLAY_END, 30000),   /* duplicate inside the batch */
	};
	int acc, dup;
	CHECK_INT(eventlog_append(db, "u", "SE", ev, 3, 1700000001000LL, &acc, &dup), 0);
	CHECK_INT(acc, 2);
	CHECK_INT(dup, 1);
	CHECK_INT(eventlog_append(db, "u", "SE", ev, 2, 1700000001000LL, &acc, &dup), 0);
	CHECK_INT(acc, 0);
	CHECK_INT(eventlog_consume(db, CONSUMER_ROYALTIES, 1, 0), 1);   /* one entry, committed */
	CHECK_INT(eventlog_catch_up(db, CONSUMER_ROYALTIES, 0), 1);     /* the rest */
	CHECK_INT(eventlog_catch_up(db, CONSUMER_ROYALTIES, 0), 0);     /* nothing twice */
	struct eventlog_consumer_status s[CONSUMER_COUNT];
	eventlog_consumer_status(db, s);
	CHECK_INT(s[CONSUMER_ROYALTIES].lag, 0);
	CHECK_INT(s[CONSUMER_REALTIME].lag, 2);
	sqlite3_stmt *st = db_prepare(db, "SELECT count(*), min(rights_holder) FROM royalty_streams");
	CHECK(sqlite3_step(st) == SQLITE_ROW, "row");
	CHECK_INT(sqlite3_column_int(st, 0), 1);   /* only the 30 000 ms play */
	CHECK_STR((const char *)sqlite3_column_text(st, 1), "unknown");
	sqlite3_finalize(st);
	db_close(db);
}

/* The consumers' tables live in stores of their own (db.h), so a consumer in the middle of
 * a step (holding its store's write lock) does not stop ingest, and ingest in the middle
 * of a commit (holding encore.db's) does not stop a consumer step. Busy timeouts of 0 make
 * any wait for the other's lock an immediate failure. */
static void test_consumer_steps_and_ingest_never_wait_for_each_others_write_lock(void)
{
	char dir[256], err[256];
	CHECK(tap_mkdtemp(dir, sizeof(dir), "encore-test-events-locks") != NULL, "mkdtemp");
	sqlite3 *log = NULL, *consumer = NULL, *other = NULL;
	CHECK(db_open_log(dir, &log, err, sizeof(err)) == 0, "open log: %s", err);
	CHECK(db_open(dir, &consumer, err, sizeof(err)) == 0, "open: %s", err);
	CHECK(db_open(dir, &other, err, sizeof(err)) == 0, "open: %s", err);
	if (!log || !consumer || !other)
		goto out;
	sqlite3_busy_timeout(log, 0);
	sqlite3_busy_timeout(other, 0);
	struct eventlog_event ev[2] = {mk("AAAAAAAAAAAAAAAAAAAAB1", EV_PLAY_END, 40000),
				       mk("AAAAAAAAAAAAAAAAAAAAB2", EV_PLAY_END, 40000)};
	int acc = 0, dup = 0;
	/* A royalties step in progress: its store is write-locked. */
	CHECK_INT(db_exec(consumer, "BEGIN; UPDATE royalties.consumer_offsets SET committed = committed WHERE 0"), 0);
	CHECK_INT(eventlog_append(log, "u", "SE", ev, 1, 1700000001000LL, &acc, &dup), 0);
	CHECK_INT(acc, 1);
	/* ... and another consumer's step is not held up by it either. */
	CHECK_INT(eventlog_consume(other, CONSUMER_RECOMMENDATIONS, 100, 0), 1);
	db_rollback(consumer);
	/* The appender mid-commit: encore.db is write-locked; consumer steps still commit. */
	CHECK_INT(eventlog_append(log, "u", "SE", ev + 1, 1, 1700000001000LL, &acc, &dup), 0);
	CHECK_INT(db_begin(log), 0);
	CHECK_INT(eventlog_consume(other, CONSUMER_ROYALTIES, 100, 0), 2);
	CHECK_INT(eventlog_consume(other, CONSUMER_RECOMMENDATIONS, 100, 0), 1);
	db_rollback(log);
	/* The derived rows are in the royalties store and readable by name. */
	sqlite3_stmt *st = db_prepare(other, "SELECT count(*) FROM royalties.royalty_streams");
	CHECK(sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 2, "two streams in the royalties store");
	sqlite3_finalize(st);
out:
	db_close(log);
	db_close(consumer);
	db_close(other);
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_INT(system(cmd), 0);
}

/* encore.db replaced (or restored from an older backup) while the consumer stores stayed:
 * the stores' offsets point into another log. They must be rebuilt from the new log, not
 * skip its first entries or keep the old log's counts. */
static int count_streams(sqlite3 *db)
{
	sqlite3_stmt *st = db_prepare(db, "SELECT count(*) FROM royalties.royalty_streams");
	int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
	sqlite3_finalize(st);
	return n;
}

static void test_a_store_that_no_longer_matches_the_log_is_rebuilt_from_it(void)
{
	char dir[256], err[256], cmd[1024];
	CHECK(tap_mkdtemp(dir, sizeof(dir), "encore-test-events-store") != NULL, "mkdtemp");
	sqlite3 *db = NULL;
	CHECK(db_open(dir, &db, err, sizeof(err)) == 0, "open: %s", err);
	if (!db)
		return;
	struct eventlog_event ev[3] = {mk("AAAAAAAAAAAAAAAAAAAAC1", EV_PLAY_END, 40000),
				       mk("AAAAAAAAAAAAAAAAAAAAC2", EV_PLAY_END, 40000),
				       mk("AAAAAAAAAAAAAAAAAAAAC3", EV_PLAY_END, 40000)};
	int acc, dup;
	CHECK_INT(eventlog_append(db, "u", "SE", ev, 2, 1700000001000LL, &acc, &dup), 0);
	CHECK_INT(eventlog_catch_up(db, CONSUMER_ROYALTIES, 0), 2);
	CHECK_INT(count_streams(db), 2);
	db_close(db);
	snprintf(cmd, sizeof(cmd), "rm -f %s/encore.db %s/encore.db-wal %s/encore.db-shm", dir, dir, dir);
	CHECK_INT(system(cmd), 0);
	CHECK(db_open(dir, &db, err, sizeof(err)) == 0, "reopen: %s", err);
	if (!db)
		return;
	/* A new log whose seq 1 and 2 are other events. */
	CHECK_INT(eventlog_append(db, "u", "SE", ev + 2, 1, 1700000001000LL, &acc, &dup), 0);
	CHECK_INT(eventlog_append(db, "u", "SE", ev, 1, 1700000001000LL, &acc, &dup), 0);
	CHECK_INT(eventlog_catch_up(db, CONSUMER_ROYALTIES, 0), 2);
	CHECK_INT(count_streams(db), 2);
	sqlite3_stmt *st = db_prepare(db, "SELECT group_concat(event_id) FROM (SELECT event_id FROM royalty_streams ORDER BY event_seq)");
	CHECK(sqlite3_step(st) == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0),
						       "AAAAAAAAAAAAAAAAAAAAC3,AAAAAAAAAAAAAAAAAAAAC1") == 0,
	      "the new log's events, got %s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	CHECK_INT(eventlog_catch_up(db, CONSUMER_ROYALTIES, 0), 0);   /* and then it is in step */
	db_close(db);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_INT(system(cmd), 0);
}

static void test_metrics_render_cumulative_buckets_and_escape_labels(void)
{
	struct metrics *m = metrics_new();
	metrics_observe(m, "/v1/tracks/{id}", "GET", 200, 300);      /* 0.3 ms */
	metrics_observe(m, "/v1/tracks/{id}", "GET", 200, 2000000);  /* 2 s */
	metrics_observe(m, "a\"b", "GET", 404, 100);
	struct buf b = BUF_INIT;
	metrics_render(m, &b);
	CHECK(strstr(b.data, "encore_http_requests_total{route=\"/v1/tracks/{id}\",method=\"GET\",status=\"200\"} 2\n") != NULL, "%s", b.data);
	CHECK(strstr(b.data, "status=\"200\",le=\"0.0005\"} 1\n") != NULL, "first bucket");
	CHECK(strstr(b.data, "status=\"200\",le=\"1\"} 1\n") != NULL, "1 s bucket");
	CHECK(strstr(b.data, "status=\"200\",le=\"5\"} 2\n") != NULL, "5 s bucket is cumulative");
	CHECK(strstr(b.data, "status=\"200\",le=\"+Inf\"} 2\n") != NULL, "+Inf");
	CHECK(strstr(b.data, "route=\"a\\\"b\"") != NULL, "escaped quote");
	buf_free(&b);
	metrics_free(m);
}

static void test_outbox_backoff_doubles_with_bounded_jitter(void)
{
	for (int f = 1; f <= 20; f++) {
		long step = 1000L << (f - 1 < 9 ? f - 1 : 9);
		if (step > OUTBOX_BACKOFF_MAX_MS)
			step = OUTBOX_BACKOFF_MAX_MS;
		for (uint32_t seed = 0; seed < 50; seed++) {
			long d = outbox_backoff_ms(f, seed);
			CHECK(d >= step / 2 && d < step, "failures %d seed %u: %ld not in [%ld, %ld)", f, seed, d, step / 2, step);
		}
	}
	CHECK(outbox_backoff_ms(3, 1) != outbox_backoff_ms(3, 2) || outbox_backoff_ms(3, 2) != outbox_backoff_ms(3, 3), "jitter varies");
}

static void test_outbox_keeps_events_and_turns_an_open_play_into_play_end_on_reopen(void)
{
	char path[512], err[256];
	snprintf(path, sizeof(path), "%s/outbox.db", tmpdir);
	struct outbox *o = outbox_open(path, err, sizeof(err));
	CHECK(o != NULL, "open: %s", err);
	if (!o)
		return;
	struct outbox_fields f = OUTBOX_FIELDS_INIT;
	f.uri = "encore:track:BBBBBBBBBBBBBBBBBBBBBB";
	char id[ID_LEN + 1];
	CHECK_INT(outbox_add(o, "play_start", &f, 0, id), 0);
	CHECK(id_valid(id), "id '%s'", id);
	CHECK_INT(outbox_note_play(o, f.uri, 160, 42000), 0);
	CHECK_INT(outbox_pending(o), 1);
	outbox_close(o);   /* as if the process died: no play_end was written */
	o = outbox_open(path, err, sizeof(err));
	CHECK_INT(outbox_pending(o), 2);
	sqlite3 *db;
	sqlite3_open(path, &db);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(db, "SELECT body FROM outbox ORDER BY seq DESC LIMIT 1", -1, &st, NULL);
	CHECK(sqlite3_step(st) == SQLITE_ROW, "row");
	yajl_val v = json_parse((const char *)sqlite3_column_text(st, 0), NULL, 0);
	long long ms = 0, br = 0;
	CHECK_STR(json_get_str(v, "type"), "play_end");
	CHECK_STR(json_get_str(v, "reason"), "crash");
	CHECK(json_get_int(v, "ms_played", &ms) && ms == 42000, "ms_played %lld", ms);
	CHECK(json_get_int(v, "bitrate", &br) && br == 160, "bitrate %lld", br);
	yajl_tree_free(v);
	sqlite3_finalize(st);
	sqlite3_close(db);
	outbox_close(o);
	o = outbox_open(path, err, sizeof(err));
	CHECK_INT(outbox_pending(o), 2);   /* recovered once, not on every open */
	outbox_close(o);
}

int main(void)
{
	if (!tap_mkdtemp(tmpdir, sizeof(tmpdir), "encore-test-events")) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_parse_batch_accepts_valid_events_and_defaults_optional_fields);
	RUN(test_parse_batch_rejects_bad_input_with_the_event_index);
	RUN(test_popularity_and_day_helpers);
	RUN(test_append_is_idempotent_and_consumers_count_each_entry_once);
	RUN(test_consumer_steps_and_ingest_never_wait_for_each_others_write_lock);
	RUN(test_a_store_that_no_longer_matches_the_log_is_rebuilt_from_it);
	RUN(test_metrics_render_cumulative_buckets_and_escape_labels);
	RUN(test_outbox_backoff_doubles_with_bounded_jitter);
	RUN(test_outbox_keeps_events_and_turns_an_open_play_into_play_end_on_reopen);
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return TAP_DONE();
}
