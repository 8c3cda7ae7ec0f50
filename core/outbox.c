/* outbox: rows hold the rendered event JSON, so an upload is a concatenation and the
 * bytes sent on a retry are exactly those sent the first time. One connection
 * (SQLITE_OPEN_FULLMUTEX) is shared by the caller and the uploader thread. */
#include "outbox.h"
#include "api.h"
#include "buf.h"
#include "json.h"
#include "xmem.h"
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct outbox {
	sqlite3 *db;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t th;
	bool running, stop, last_failed;
	uint64_t adds;              /* bumped per add, so the uploader sees new work */
	struct api *api;
	int linger_ms;
};

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long outbox_backoff_ms(int failures, uint32_t seed)
{
	if (failures < 1)
		failures = 1;
	long step = OUTBOX_BACKOFF_BASE_MS;
	for (int i = 1; i < failures && step < OUTBOX_BACKOFF_MAX_MS; i++)
		step *= 2;
	if (step > OUTBOX_BACKOFF_MAX_MS)
		step = OUTBOX_BACKOFF_MAX_MS;
	long half = step / 2;
	/* A cheap integer hash spreads the seed so neighbouring seeds do not retry together. */
	uint32_t h = seed * 2654435761u;
	h ^= h >> 16;
	return half + (half > 0 ? (long)(h % (uint32_t)half) : 0);
}

char *outbox_event_json(const char *id, const char *type, int64_t ts_ms, const struct outbox_fields *f)
{
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "id", id);
	jw_kstr(&w, "type", type);
	jw_kint(&w, "ts", ts_ms);
	jw_kstr(&w, "uri", f->uri);
	if (f->ms_played >= 0)
		jw_kint(&w, "ms_played", f->ms_played);
	if (f->bitrate >= 0)
		jw_kint(&w, "bitrate", f->bitrate);
	if (f->position_ms >= 0)
		jw_kint(&w, "position_ms", f->position_ms);
	if (f->context)
		jw_kstr(&w, "context", f->context);
	if (f->reason)
		jw_kstr(&w, "reason", f->reason);
	jw_obj_end(&w);
	return jw_finish(&w);
}

static int exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		fprintf(stderr, "outbox: %s\n", msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -EIO;
	}
	return 0;
}

static int insert_row(sqlite3 *db, const char *id, const char *json, int64_t now)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "INSERT INTO outbox(id, body, created_at) VALUES (?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, json, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
	sqlite3_finalize(st);
	return rc;
}

/* Turns a checkpointed play into its play_end (the process died mid-track). */
static int recover_open_play(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "SELECT uri, bitrate, ms_played, updated_at FROM open_play", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	int rc = 0;
	if (sqlite3_step(st) == SQLITE_ROW) {
		struct outbox_fields f = OUTBOX_FIELDS_INIT;
		f.uri = (const char *)sqlite3_column_text(st, 0);
		f.bitrate = sqlite3_column_int(st, 1);
		f.ms_played = sqlite3_column_int64(st, 2);
		f.reason = "crash";
		char id[ID_LEN + 1];
		id_time_ordered(id, wall_ms());
		char *json = outbox_event_json(id, "play_end", sqlite3_column_int64(st, 3), &f);
		rc = insert_row(db, id, json, wall_ms());
		free(json);
	}
	sqlite3_finalize(st);
	if (rc == 0)
		rc = exec(db, "DELETE FROM open_play");
	return rc;
}

struct outbox *outbox_open(const char *path, char *err, size_t errlen)
{
	struct outbox *o = xcalloc(1, sizeof(*o));
	pthread_mutex_init(&o->mu, NULL);
	pthread_cond_init(&o->cv, NULL);
	if (sqlite3_open_v2(path, &o->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot open outbox %s: %s", path, o->db ? sqlite3_errmsg(o->db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(o->db, 5000);
	/* FULL: an event acknowledged to the caller is on disk, even across a power loss. */
	if (exec(o->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
			"CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
			" body TEXT NOT NULL, created_at INTEGER NOT NULL);"
			"CREATE TABLE IF NOT EXISTS open_play (k INTEGER PRIMARY KEY CHECK (k = 1), uri TEXT NOT NULL,"
			" bitrate INTEGER NOT NULL, ms_played INTEGER NOT NULL, updated_at INTEGER NOT NULL);") != 0 ||
	    exec(o->db, "BEGIN IMMEDIATE") != 0) {
		snprintf(err, errlen, "cannot set up outbox %s: %s", path, sqlite3_errmsg(o->db));
		goto fail;
	}
	if (recover_open_play(o->db) != 0 || exec(o->db, "COMMIT") != 0) {
		exec(o->db, "ROLLBACK");
		snprintf(err, errlen, "cannot recover outbox %s", path);
		goto fail;
	}
	return o;
fail:
	outbox_close(o);
	return NULL;
}

void outbox_close(struct outbox *o)
{
	if (!o)
		return;
	if (o->running) {
		pthread_mutex_lock(&o->mu);
		o->stop = true;
		pthread_cond_broadcast(&o->cv);
		pthread_mutex_unlock(&o->mu);
		pthread_join(o->th, NULL);
		o->running = false;
	}
	if (o->db)
		sqlite3_close(o->db);
	pthread_cond_destroy(&o->cv);
	pthread_mutex_destroy(&o->mu);
	free(o);
}

int outbox_add(struct outbox *o, const char *type, const struct outbox_fields *f, int64_t ts_ms, char id_out[ID_LEN + 1])
{
	if (!type || !f || !f->uri)
		return -EINVAL;
	char id[ID_LEN + 1];
	id_time_ordered(id, wall_ms());
	char *json = outbox_event_json(id, type, ts_ms ? ts_ms : wall_ms(), f);
	int rc = exec(o->db, "BEGIN IMMEDIATE");
	if (rc == 0)
		rc = insert_row(o->db, id, json, wall_ms());
	if (rc == 0 && strcmp(type, "play_end") == 0)
		rc = exec(o->db, "DELETE FROM open_play");
	if (rc == 0)
		rc = exec(o->db, "COMMIT");
	else
		exec(o->db, "ROLLBACK");
	free(json);
	if (rc != 0)
		return -EIO;
	if (id_out)
		memcpy(id_out, id, ID_LEN + 1);
	pthread_mutex_lock(&o->mu);
	o->adds++;
	pthread_cond_broadcast(&o->cv);
	pthread_mutex_unlock(&o->mu);
	return 0;
}

int outbox_note_play(struct outbox *o, const char *uri, int bitrate, int64_t ms_played)
{
	if (!uri)
		return exec(o->db, "DELETE FROM open_play");
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(o->db, "INSERT OR REPLACE INTO open_play(k, uri, bitrate, ms_played, updated_at)"
				      " VALUES (1, ?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, uri, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, bitrate < 0 ? 0 : bitrate);
	sqlite3_bind_int64(st, 3, ms_played);
	sqlite3_bind_int64(st, 4, wall_ms());
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
	sqlite3_finalize(st);
	return rc;
}

long long outbox_pending(struct outbox *o)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(o->db, "SELECT count(*) FROM outbox", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	long long n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -EIO;
	sqlite3_finalize(st);
	return n;
}

/* Reads the oldest batch into body; returns its size and the last seq, or -EIO. */
static int next_batch(struct outbox *o, struct buf *body, int64_t *last)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(o->db, "SELECT seq, body FROM outbox ORDER BY seq LIMIT ?", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int(st, 1, OUTBOX_BATCH);
	int n = 0;
	buf_puts(body, "{\"events\":[");
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (n)
			buf_putc(body, ',');
		buf_puts(body, (const char *)sqlite3_column_text(st, 1));
		*last = sqlite3_column_int64(st, 0);
		n++;
	}
	buf_puts(body, "]}");
	sqlite3_finalize(st);
	return n;
}

static int delete_through(struct outbox *o, int64_t last)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(o->db, "DELETE FROM outbox WHERE seq <= ?", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, last);
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
	sqlite3_finalize(st);
	return rc;
}

int outbox_flush(struct outbox *o, struct api *api, int *sent, int *dropped, char *err, size_t errlen)
{
	int s = 0, d = 0, rc = 0;
	if (err && errlen)
		err[0] = 0;
	for (;;) {
		struct buf body = BUF_INIT;
		int64_t last = 0;
		int n = next_batch(o, &body, &last);
		if (n <= 0) {
			buf_free(&body);
			rc = n < 0 ? -EIO : 0;
			break;
		}
		struct api_response r;
		int t = api_request(api, "POST", "/v1/events", "application/json", body.data, body.len, &r);
		buf_free(&body);
		if (t != 0) {
			snprintf(err, errlen, "%s", r.error);
			api_response_free(&r);
			rc = t;
			break;
		}
		if (r.status == 200) {
			rc = delete_through(o, last);
			s += n;
		} else if (r.status == 400 || r.status == 413 || r.status == 422) {
			char msg[200];
			api_error_message(r.body.data ? r.body.data : "", msg, sizeof(msg));
			fprintf(stderr, "outbox: the server refused %d events (%ld %s); dropping them\n", n, r.status, msg);
			rc = delete_through(o, last);
			d += n;
		} else {
			snprintf(err, errlen, "server answered %ld", r.status);
			rc = r.status == 401 ? -EACCES : -EIO;
		}
		api_response_free(&r);
		if (rc != 0)
			break;
	}
	if (sent)
		*sent = s;
	if (dropped)
		*dropped = d;
	return rc;
}

static void *uploader_main(void *arg)
{
	struct outbox *o = arg;
	int failures = 0;
	uint32_t seed = (uint32_t)wall_ms();
	pthread_mutex_lock(&o->mu);
	uint64_t seen = 0;
	while (!o->stop) {
		/* Wait for work (an add since the last pass, or rows left from an earlier run). */
		bool work = o->adds != seen || failures > 0;
		if (!work) {
			pthread_mutex_unlock(&o->mu);
			work = outbox_pending(o) > 0;
			pthread_mutex_lock(&o->mu);
		}
		if (!work) {
			while (!o->stop && o->adds == seen)
				pthread_cond_wait(&o->cv, &o->mu);
			continue;
		}
		/* Linger (or back off) so events travel in batches; stop cuts it short. */
		long wait = failures ? outbox_backoff_ms(failures, seed++) : o->linger_ms;
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += wait / 1000;
		until.tv_nsec += (wait % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (!o->stop && pthread_cond_timedwait(&o->cv, &o->mu, &until) == 0)
			;
		if (o->stop)
			break;
		seen = o->adds;
		pthread_mutex_unlock(&o->mu);
		char err[256];
		int rc = outbox_flush(o, o->api, NULL, NULL, err, sizeof(err));
		pthread_mutex_lock(&o->mu);
		failures = rc == 0 ? 0 : failures + 1;
		o->last_failed = rc != 0;
	}
	pthread_mutex_unlock(&o->mu);
	return NULL;
}

int outbox_start(struct outbox *o, struct api *api, int linger_ms)
{
	if (o->running)
		return -EALREADY;
	o->api = api;
	o->linger_ms = linger_ms < 0 ? 0 : linger_ms;
	o->stop = false;
	if (pthread_create(&o->th, NULL, uploader_main, o) != 0)
		return -EAGAIN;
	o->running = true;
	return 0;
}

void outbox_stop(struct outbox *o)
{
	if (!o || !o->running)
		return;
	pthread_mutex_lock(&o->mu);
	o->stop = true;
	pthread_cond_broadcast(&o->cv);
	pthread_mutex_unlock(&o->mu);
	pthread_join(o->th, NULL);
	o->running = false;
	if (!o->last_failed && outbox_pending(o) > 0) {
		char err[256];
		outbox_flush(o, o->api, NULL, NULL, err, sizeof(err));
	}
}
