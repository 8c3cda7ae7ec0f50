/* ingest: a job's life: queued -> running (owner = this process) -> done | failed.
 *
 * Ownership makes restarts safe: the owner string names the process (pid), and a new
 * process re-queues running jobs whose owner is gone. The final transaction checks that
 * this process still owns the job, so even if two processes raced on one job only one
 * could complete it; renditions are content-addressed, so redoing work writes the same
 * objects again and costs only time.
 *
 * Workers wait on a condition variable, woken by submissions in this process. Jobs queued
 * by another process (the `encored ingest` CLI beside a running server) are noticed at
 * the next timed wake-up, every few seconds. */
#include "ingest.h"
#include "audio_features.h"
#include "audiofile.h"
#include "catalog.h"
#include "db.h"
#include "loudness.h"
#include "objstore.h"
#include "pcm.h"
#include "segment.h"
#include "transcode.h"
#include "xmem.h"
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define INGEST_POLL_SECONDS 3
/* Jobs at or above this priority have a listener waiting (ingest_expedite). One worker is
 * reserved for them, so an on-demand request never waits behind the background queue. */
#define INGEST_URGENT 1000000
/* Requests held at once waiting for a first segment: each holds an HTTP worker thread, and
 * the reserved worker serves one listener at a time anyway. Others get 503 at once. */
#define INGEST_MAX_HOLDS 1

static const int TRACK_LADDER[] = {24, 96, 160, 320};
/* Speech needs far less: a podcast listener on 96 kbps mono hears no difference from more. */
static const int EPISODE_LADDER[] = {24, 96};

struct ingest {
	char *data_dir;
	struct objstore *store;
	char owner[64];
	pthread_mutex_t lock;
	pthread_cond_t wake;      /* work may be available */
	pthread_cond_t idle;      /* a job finished */
	bool quit;
	unsigned kicks;           /* bumped by every kick, so a worker cannot miss one */
	unsigned finished;        /* bumped when a worker finishes a job, for the same reason */
	unsigned published;       /* bumped when a job publishes anything (a segment, a rendition) */
	pthread_cond_t publish;   /* signalled with it: waiting listeners re-check their item */
	int holding;              /* requests held in ingest_wait_playable (at most INGEST_MAX_HOLDS) */
	int busy;                 /* jobs being processed by this process */
	pthread_t *threads;
	int nthreads;
	ingest_hook_fn hook;      /* under lock */
	void *hook_ctx;
};

void ingest_set_hook(struct ingest *ig, ingest_hook_fn fn, void *ctx)
{
	pthread_mutex_lock(&ig->lock);
	ig->hook = fn;
	ig->hook_ctx = ctx;
	pthread_mutex_unlock(&ig->lock);
}

static void call_hook(struct ingest *ig, sqlite3 *db, enum ingest_kind kind, const char *content_id)
{
	pthread_mutex_lock(&ig->lock);
	ingest_hook_fn fn = ig->hook;
	void *ctx = ig->hook_ctx;
	pthread_mutex_unlock(&ig->lock);
	if (fn)
		fn(ctx, db, kind, content_id);
}

/* Wakes manifest requests held in ingest_wait_playable. */
static void note_published(struct ingest *ig)
{
	pthread_mutex_lock(&ig->lock);
	ig->published++;
	pthread_cond_broadcast(&ig->publish);
	pthread_mutex_unlock(&ig->lock);
}

int ingest_ladder(enum ingest_kind kind, const int **rungs)
{
	if (kind == INGEST_EPISODE) {
		*rungs = EPISODE_LADDER;
		return (int)(sizeof(EPISODE_LADDER) / sizeof(EPISODE_LADDER[0]));
	}
	*rungs = TRACK_LADDER;
	return (int)(sizeof(TRACK_LADDER) / sizeof(TRACK_LADDER[0]));
}

static bool owner_alive(const char *owner)
{
	int pid;
	if (!owner || sscanf(owner, "pid:%d", &pid) != 1 || pid <= 0)
		return false;
	return kill(pid, 0) == 0 || errno == EPERM;
}

/* Re-queues jobs whose owning process has died (crash, kill -9, restart). */
static void requeue_orphans(sqlite3 *db)
{
	sqlite3_stmt *st = db_prepare(db, "SELECT id, owner FROM ingest_jobs WHERE state = 'running'");
	int64_t ids[256];
	int n = 0;
	while (sqlite3_step(st) == SQLITE_ROW && n < 256)
		if (!owner_alive((const char *)sqlite3_column_text(st, 1)))
			ids[n++] = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	for (int i = 0; i < n; i++) {
		st = db_prepare(db, "UPDATE ingest_jobs SET state = 'queued', owner = NULL, progress = 0 WHERE id = ? AND state = 'running'");
		sqlite3_bind_int64(st, 1, ids[i]);
		sqlite3_step(st);
		sqlite3_finalize(st);
	}
	if (n)
		fprintf(stderr, "ingest: re-queued %d job%s left running by a process that is gone\n", n, n == 1 ? "" : "s");
}

static void set_progress(sqlite3 *db, int64_t id, double p)
{
	sqlite3_stmt *st = db_prepare(db, "UPDATE ingest_jobs SET progress = ? WHERE id = ?");
	sqlite3_bind_double(st, 1, p);
	sqlite3_bind_int64(st, 2, id);
	sqlite3_step(st);
	sqlite3_finalize(st);
}

static void fail_job(struct ingest *ig, sqlite3 *db, int64_t id, const char *content_id, const char *kind, const char *msg)
{
	fprintf(stderr, "ingest: job %lld (%s %s) failed: %s\n", (long long)id, kind, content_id, msg);
	db_begin(db);
	sqlite3_stmt *st = db_prepare(db, "UPDATE ingest_jobs SET state = 'failed', error = ?, finished_at = ?"
					  " WHERE id = ? AND owner = ? AND state = 'running'");
	sqlite3_bind_text(st, 1, msg, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)time(NULL));
	sqlite3_bind_int64(st, 3, id);
	sqlite3_bind_text(st, 4, ig->owner, -1, SQLITE_STATIC);
	sqlite3_step(st);
	sqlite3_finalize(st);
	st = db_prepare(db, strcmp(kind, "episode") == 0 ? "UPDATE episodes SET state = 'failed' WHERE id = ?"
							  : "UPDATE tracks SET state = 'failed' WHERE id = ?");
	sqlite3_bind_text(st, 1, content_id, -1, SQLITE_STATIC);
	sqlite3_step(st);
	sqlite3_finalize(st);
	db_commit(db);
}

struct rendition_result {
	int kbps, rate, channels;
	char init_hash[OBJSTORE_HASH_HEX];
	size_t init_size, bytes;
	uint64_t total_samples;
	uint32_t nsegments;
	char (*seg_hash)[OBJSTORE_HASH_HEX];
	size_t *seg_size;
};

static int store_rendition(struct ingest *ig, const struct transcode_output *o, int kbps, struct rendition_result *r, char *err, size_t errlen)
{
	memset(r, 0, sizeof(*r));
	r->kbps = kbps;
	r->rate = o->rate;
	r->channels = o->channels;
	r->nsegments = o->nsegments;
	int rc = objstore_put(ig->store, o->init, o->init_len, r->init_hash);
	if (rc != 0)
		goto fail;
	r->init_size = o->init_len;
	r->bytes = o->init_len;
	struct segment_init si;
	if (segment_init_parse(o->init, o->init_len, &si) == 0)
		r->total_samples = si.total_samples;
	r->seg_hash = xcalloc(o->nsegments ? o->nsegments : 1, sizeof(*r->seg_hash));
	r->seg_size = xcalloc(o->nsegments ? o->nsegments : 1, sizeof(size_t));
	for (uint32_t i = 0; i < o->nsegments; i++) {
		rc = objstore_put(ig->store, o->segments[i], o->segment_lens[i], r->seg_hash[i]);
		if (rc != 0)
			goto fail;
		r->seg_size[i] = o->segment_lens[i];
		r->bytes += o->segment_lens[i];
	}
	return 0;
fail:
	snprintf(err, errlen, "cannot write to the object store: %s", strerror(-rc));
	return rc;
}

static void rendition_result_free(struct rendition_result *r)
{
	free(r->seg_hash);
	free(r->seg_size);
}

static bool still_owner(struct ingest *ig, sqlite3 *db, int64_t id)
{
	sqlite3_stmt *st = db_prepare(db, "SELECT 1 FROM ingest_jobs WHERE id = ? AND owner = ? AND state = 'running'");
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, ig->owner, -1, SQLITE_STATIC);
	bool yes = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return yes;
}

/* Makes the item playable: state ready, its loudness and gain, its exact duration. Inside
 * the caller's transaction. 0 or -EIO. */
static int mark_ready(sqlite3 *db, const char *content_id, bool episode, const struct loudness *ld, uint64_t frames, int rate)
{
	int duration_ms = (int)llround((double)frames * 1000.0 / rate);
	double lufs = isfinite(ld->integrated_lufs) ? ld->integrated_lufs : -70.0;
	double tp = isfinite(ld->true_peak_dbtp) ? ld->true_peak_dbtp : -70.0;
	sqlite3_stmt *st = db_prepare(db, episode ? "UPDATE episodes SET state = 'ready', loudness_lufs = ?, true_peak_db = ?, gain_db = ?, duration_ms = ? WHERE id = ?"
						  : "UPDATE tracks SET state = 'ready', loudness_lufs = ?, true_peak_db = ?, gain_db = ?, duration_ms = ? WHERE id = ?");
	sqlite3_bind_double(st, 1, lufs);
	sqlite3_bind_double(st, 2, tp);
	sqlite3_bind_double(st, 3, ld->gain_db);
	sqlite3_bind_int(st, 4, duration_ms);
	sqlite3_bind_text(st, 5, content_id, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	sqlite3_finalize(st);
	return step == SQLITE_DONE ? 0 : -EIO;
}

/* Publishes one whole rendition (a rung above the streamed one), if we still own the job:
 * the client adds the rung at its next manifest renewal. */
static int commit_rendition(struct ingest *ig, sqlite3 *db, int64_t id, const struct rendition_result *r, const char *content_id)
{
	if (db_begin(db) != 0)
		return -EIO;
	if (!still_owner(ig, db, id)) {
		db_rollback(db);
		return -EALREADY;
	}
	sqlite3_stmt *st = db_prepare(db, "INSERT OR REPLACE INTO renditions(content_id, bitrate, rate, channels, init_hash, init_size,"
					  " segment_count, total_samples, bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
	sqlite3_bind_text(st, 1, content_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, r->kbps);
	sqlite3_bind_int(st, 3, r->rate);
	sqlite3_bind_int(st, 4, r->channels);
	sqlite3_bind_text(st, 5, r->init_hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)r->init_size);
	sqlite3_bind_int(st, 7, (int)r->nsegments);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)r->total_samples);
	sqlite3_bind_int64(st, 9, (sqlite3_int64)r->bytes);
	int step = sqlite3_step(st);
	sqlite3_finalize(st);
	if (step != SQLITE_DONE)
		goto fail;
	st = db_prepare(db, "DELETE FROM segments WHERE content_id = ? AND bitrate = ?");
	sqlite3_bind_text(st, 1, content_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, r->kbps);
	sqlite3_step(st);
	sqlite3_finalize(st);
	st = db_prepare(db, "INSERT INTO segments(content_id, bitrate, idx, hash, size) VALUES (?, ?, ?, ?, ?)");
	for (uint32_t k = 0; k < r->nsegments; k++) {
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, content_id, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, r->kbps);
		sqlite3_bind_int(st, 3, (int)k);
		sqlite3_bind_text(st, 4, r->seg_hash[k], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, (sqlite3_int64)r->seg_size[k]);
		if (sqlite3_step(st) != SQLITE_DONE) {
			sqlite3_finalize(st);
			goto fail;
		}
	}
	sqlite3_finalize(st);
	return db_commit(db) == 0 ? 0 : -EIO;
fail:
	fprintf(stderr, "ingest: cannot record a rendition of job %lld: %s\n", (long long)id, sqlite3_errmsg(db));
	db_rollback(db);
	return -EIO;
}

/* Where the time of a job goes until its item is playable (milliseconds, monotonic). */
struct job_timing {
	double t0, read, loudness, setup, encode0, store0;
	double cpu0;           /* this thread's CPU time at t0: wall time on a loaded machine
	                        * says little, CPU time says what the work costs */
	double playable_ms;
	char text[160];
};

static double clock_ms(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

/* Publishes one segment of the rendition being streamed, if we still own the job. The
 * first call (index 0) also records the rendition (its init part and segment count are
 * known before any audio is encoded) and makes the item playable; the manifest lists
 * the segments not yet recorded as pending. bytes is the rendition's size so far. */
static int commit_stream_segment(struct ingest *ig, sqlite3 *db, int64_t id, const char *content_id, bool episode, int kbps,
				 const struct transcode_stream_info *in, const char *init_hash, uint32_t index,
				 const char *hash, size_t size, size_t bytes, const struct loudness *ld, uint64_t frames, int rate,
				 const struct job_timing *tm)
{
	if (db_begin(db) != 0)
		return -EIO;
	if (!still_owner(ig, db, id)) {
		db_rollback(db);
		return -EALREADY;
	}
	sqlite3_stmt *st;
	int step;
	if (index == 0) {
		/* A job re-run after a crash finds its own earlier rows: same content, same
		 * names (content addressing), so replacing them changes nothing a reader sees. */
		st = db_prepare(db, "INSERT OR REPLACE INTO renditions(content_id, bitrate, rate, channels, init_hash, init_size,"
				    " segment_count, total_samples, bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
		sqlite3_bind_text(st, 1, content_id, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, kbps);
		sqlite3_bind_int(st, 3, in->rate);
		sqlite3_bind_int(st, 4, in->channels);
		sqlite3_bind_text(st, 5, init_hash, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, (sqlite3_int64)in->init_len);
		sqlite3_bind_int(st, 7, (int)in->nsegments);
		sqlite3_bind_int64(st, 8, (sqlite3_int64)in->total_samples);
		sqlite3_bind_int64(st, 9, (sqlite3_int64)bytes);
		step = sqlite3_step(st);
		sqlite3_finalize(st);
		if (step != SQLITE_DONE)
			goto fail;
		if (mark_ready(db, content_id, episode, ld, frames, rate) != 0)
			goto fail;
	} else {
		st = db_prepare(db, "UPDATE renditions SET bytes = ? WHERE content_id = ? AND bitrate = ?");
		sqlite3_bind_int64(st, 1, (sqlite3_int64)bytes);
		sqlite3_bind_text(st, 2, content_id, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, kbps);
		step = sqlite3_step(st);
		sqlite3_finalize(st);
		if (step != SQLITE_DONE)
			goto fail;
	}
	st = db_prepare(db, "INSERT OR REPLACE INTO segments(content_id, bitrate, idx, hash, size) VALUES (?, ?, ?, ?, ?)");
	sqlite3_bind_text(st, 1, content_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, kbps);
	sqlite3_bind_int(st, 3, (int)index);
	sqlite3_bind_text(st, 4, hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)size);
	step = sqlite3_step(st);
	sqlite3_finalize(st);
	if (step != SQLITE_DONE)
		goto fail;
	st = db_prepare(db, "UPDATE ingest_jobs SET progress = ? WHERE id = ?");
	sqlite3_bind_double(st, 1, 0.2 * (double)(index + 1) / in->nsegments);
	sqlite3_bind_int64(st, 2, id);
	step = sqlite3_step(st);
	sqlite3_finalize(st);
	if (step != SQLITE_DONE)
		goto fail;
	if (index == 0) {
		/* Counted, not assumed: what a listener could see when the item turned ready. */
		st = db_prepare(db, "UPDATE ingest_jobs SET playable_segments = (SELECT count(*) FROM segments"
				    " WHERE content_id = ?1 AND bitrate = ?2), playable_ms = ?3, timing = ?4 WHERE id = ?5");
		sqlite3_bind_text(st, 1, content_id, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, kbps);
		sqlite3_bind_double(st, 3, tm->playable_ms);
		sqlite3_bind_text(st, 4, tm->text, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, id);
		step = sqlite3_step(st);
		sqlite3_finalize(st);
		if (step != SQLITE_DONE)
			goto fail;
	}
	return db_commit(db) == 0 ? 0 : -EIO;
fail:
	fprintf(stderr, "ingest: cannot record segment %u of job %lld: %s\n", index, (long long)id, sqlite3_errmsg(db));
	db_rollback(db);
	return -EIO;
}

/* Records the audio features and marks the job done, if we still own it. */
static int commit_job(struct ingest *ig, sqlite3 *db, int64_t id, const char *content_id, bool episode, const struct features *f)
{
	if (db_begin(db) != 0)
		return -EIO;
	sqlite3_stmt *st = db_prepare(db, "UPDATE ingest_jobs SET state = 'done', progress = 1, finished_at = ?, error = NULL"
					  " WHERE id = ? AND owner = ? AND state = 'running'");
	sqlite3_bind_int64(st, 1, (sqlite3_int64)time(NULL));
	sqlite3_bind_int64(st, 2, id);
	sqlite3_bind_text(st, 3, ig->owner, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	sqlite3_finalize(st);
	if (step != SQLITE_DONE || sqlite3_changes(db) != 1) {
		db_rollback(db);
		return -EALREADY;
	}
	if (!episode) {
		st = db_prepare(db, "INSERT OR REPLACE INTO audio_features(track_id, tempo, key, mode, time_signature, loudness, energy,"
				    " danceability, acousticness, instrumentalness, speechiness, valence, liveness)"
				    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
		sqlite3_bind_text(st, 1, content_id, -1, SQLITE_STATIC);
		sqlite3_bind_double(st, 2, f->tempo);
		sqlite3_bind_int(st, 3, f->key);
		sqlite3_bind_int(st, 4, f->mode);
		sqlite3_bind_int(st, 5, f->time_signature);
		sqlite3_bind_double(st, 6, f->loudness);
		sqlite3_bind_double(st, 7, f->energy);
		sqlite3_bind_double(st, 8, f->danceability);
		sqlite3_bind_double(st, 9, f->acousticness);
		sqlite3_bind_double(st, 10, f->instrumentalness);
		sqlite3_bind_double(st, 11, f->speechiness);
		sqlite3_bind_double(st, 12, f->valence);
		sqlite3_bind_double(st, 13, f->liveness);
		step = sqlite3_step(st);
		sqlite3_finalize(st);
		if (step != SQLITE_DONE) {
			fprintf(stderr, "ingest: cannot record features of job %lld: %s\n", (long long)id, sqlite3_errmsg(db));
			db_rollback(db);
			return -EIO;
		}
	}
	return db_commit(db) == 0 ? 0 : -EIO;
}

/* Loudness measured at submission (ingest_submit), so an on-demand job need not measure it
 * before its first segment. False for items queued before that was done. */
static bool stored_loudness(sqlite3 *db, const char *content_id, bool episode, struct loudness *ld)
{
	sqlite3_stmt *st = db_prepare(db, episode ? "SELECT loudness_lufs, true_peak_db, gain_db FROM episodes WHERE id = ? AND loudness_lufs IS NOT NULL"
						  : "SELECT loudness_lufs, true_peak_db, gain_db FROM tracks WHERE id = ? AND loudness_lufs IS NOT NULL");
	sqlite3_bind_text(st, 1, content_id, -1, SQLITE_STATIC);
	bool got = sqlite3_step(st) == SQLITE_ROW;
	if (got) {
		ld->integrated_lufs = sqlite3_column_double(st, 0);
		ld->true_peak_dbtp = sqlite3_column_double(st, 1);
		ld->gain_db = sqlite3_column_double(st, 2);
	}
	sqlite3_finalize(st);
	return got;
}

/* Encodes the lowest rung segment by segment, writing each part to the object store and
 * recording it as soon as it is complete: the item is playable once segment 0 is in.
 * Returns 0, -EALREADY (the job was taken over) or another -errno with err. */
static int stream_first_rung(struct ingest *ig, sqlite3 *db, int64_t id, const char *content_id, bool episode, int kbps,
			     const struct pcm *pcm, const struct loudness *ld, struct job_timing *tm, char *err, size_t errlen)
{
	struct transcode_stream *ts = transcode_stream_new(pcm, kbps, err, errlen);
	if (!ts)
		return -EIO;
	struct transcode_stream_info in;
	transcode_stream_info(ts, &in);
	char init_hash[OBJSTORE_HASH_HEX], hash[OBJSTORE_HASH_HEX];
	int rc = objstore_put(ig->store, in.init, in.init_len, init_hash);
	if (rc != 0) {
		snprintf(err, errlen, "cannot write to the object store: %s", strerror(-rc));
		goto out;
	}
	tm->setup = mono_ms();
	size_t bytes = in.init_len;
	uint8_t *seg;
	size_t len;
	uint32_t k;
	while ((rc = transcode_stream_next(ts, &seg, &len, &k, err, errlen)) == 1) {
		if (k == 0)
			tm->encode0 = mono_ms();
		rc = objstore_put(ig->store, seg, len, hash);
		free(seg);
		if (rc != 0) {
			snprintf(err, errlen, "cannot write to the object store: %s", strerror(-rc));
			goto out;
		}
		bytes += len;
		if (k == 0) {
			tm->store0 = mono_ms();
			tm->playable_ms = tm->store0 - tm->t0;
			snprintf(tm->text, sizeof(tm->text), "read %.1f loudness %.1f setup %.1f encode0 %.1f store0 %.1f ms; cpu %.1f ms",
				 tm->read - tm->t0, tm->loudness - tm->read, tm->setup - tm->loudness, tm->encode0 - tm->setup,
				 tm->store0 - tm->encode0, clock_ms(CLOCK_THREAD_CPUTIME_ID) - tm->cpu0);
		}
		rc = commit_stream_segment(ig, db, id, content_id, episode, kbps, &in, init_hash, k, hash, len, bytes, ld,
					   pcm->frames, pcm->rate, tm);
		if (rc == -EALREADY)
			goto out;
		if (rc != 0) {
			snprintf(err, errlen, "database error while recording a segment");
			goto out;
		}
		note_published(ig);
	}
out:
	transcode_stream_free(ts);
	return rc;
}

/* True when every segment of this rung is recorded (by an earlier attempt of the job:
 * a crash, or a hand-back to the queue by yield_job). */
static bool rung_stored(sqlite3 *db, const char *content_id, int kbps)
{
	sqlite3_stmt *st = db_prepare(db, "SELECT 1 FROM renditions r WHERE r.content_id = ?1 AND r.bitrate = ?2 AND r.segment_count ="
					  " (SELECT count(*) FROM segments s WHERE s.content_id = ?1 AND s.bitrate = ?2)");
	sqlite3_bind_text(st, 1, content_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, kbps);
	bool yes = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return yes;
}

/* Another listener's job waits for the reserved worker. */
static bool urgent_waiting(sqlite3 *db)
{
	sqlite3_stmt *st = db_prepare(db, "SELECT 1 FROM ingest_jobs WHERE state = 'queued' AND priority >= ? LIMIT 1");
	sqlite3_bind_int(st, 1, INGEST_URGENT);
	bool yes = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return yes;
}

/* Hands a job whose item is already playable back to the queue, first in line for the
 * background workers but below the reserved worker's threshold, so the reserved worker is
 * free for the listener now waiting. Its stored rungs are kept (rung_stored). */
static int yield_job(struct ingest *ig, sqlite3 *db, int64_t id)
{
	sqlite3_stmt *st = db_prepare(db, "UPDATE ingest_jobs SET state = 'queued', owner = NULL, priority = ?"
					  " WHERE id = ? AND owner = ? AND state = 'running'");
	sqlite3_bind_int(st, 1, INGEST_URGENT - 1);
	sqlite3_bind_int64(st, 2, id);
	sqlite3_bind_text(st, 3, ig->owner, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	sqlite3_finalize(st);
	return step == SQLITE_DONE && sqlite3_changes(db) == 1 ? 0 : -EALREADY;
}

/* Encodes one whole rung (segments kept in memory until it is complete). On the reserved
 * worker, gives up between segments when another listener's job is waiting: returns 1. */
static int encode_rung(sqlite3 *db, const struct pcm *pcm, int kbps, bool urgent_worker, struct transcode_output **out,
		       char *err, size_t errlen)
{
	*out = NULL;
	struct transcode_stream *ts = transcode_stream_new(pcm, kbps, err, errlen);
	if (!ts)
		return -EIO;
	struct transcode_stream_info in;
	transcode_stream_info(ts, &in);
	struct transcode_output *o = xcalloc(1, sizeof(*o));
	o->rate = in.rate;
	o->channels = in.channels;
	o->bitrate = in.bitrate;
	o->init = xmalloc(in.init_len);
	memcpy(o->init, in.init, in.init_len);
	o->init_len = in.init_len;
	o->nsegments = in.nsegments;
	o->segments = xcalloc(in.nsegments ? in.nsegments : 1, sizeof(*o->segments));
	o->segment_lens = xcalloc(in.nsegments ? in.nsegments : 1, sizeof(*o->segment_lens));
	int rc;
	uint8_t *seg;
	size_t len;
	uint32_t k;
	while ((rc = transcode_stream_next(ts, &seg, &len, &k, err, errlen)) == 1) {
		o->segments[k] = seg;
		o->segment_lens[k] = len;
		if (urgent_worker && urgent_waiting(db)) {
			rc = 1;
			break;
		}
	}
	transcode_stream_free(ts);
	if (rc != 0) {
		transcode_output_free(o);
		return rc;
	}
	*out = o;
	return 0;
}

static void run_job(struct ingest *ig, sqlite3 *db, int64_t id, const char *content_id, const char *kind, const char *source_hash,
		    bool urgent_worker)
{
	char err[256] = "";
	uint8_t *src = NULL;
	size_t srclen = 0;
	struct pcm *pcm = NULL;
	bool episode = strcmp(kind, "episode") == 0;
	const int *ladder;
	int nr = ingest_ladder(episode ? INGEST_EPISODE : INGEST_TRACK, &ladder);
	struct rendition_result rs[8];
	int done_r = 0;
	struct loudness ld;
	struct features f;
	struct job_timing tm = {.t0 = mono_ms(), .cpu0 = clock_ms(CLOCK_THREAD_CPUTIME_ID)};
	memset(&f, 0, sizeof(f));

	int rc = objstore_get(ig->store, source_hash, &src, &srclen);
	if (rc != 0) {
		snprintf(err, sizeof(err), "source object %s unreadable: %s", source_hash, strerror(-rc));
		goto failed;
	}
	if (audiofile_read_mem(src, srclen, &pcm, err, sizeof(err)) != 0)
		goto failed;
	free(src);
	src = NULL;
	tm.read = mono_ms();
	if (!stored_loudness(db, content_id, episode, &ld) && loudness_measure(pcm, &ld) != 0) {
		snprintf(err, sizeof(err), "loudness measurement failed");
		goto failed;
	}
	tm.loudness = mono_ms();
	/* Lowest rung first, streamed: it is the fastest to encode, and its segment 0 makes
	 * the item playable while the rest of the track is still being encoded. */
	if (!rung_stored(db, content_id, ladder[0])) {
		rc = stream_first_rung(ig, db, id, content_id, episode, ladder[0], pcm, &ld, &tm, err, sizeof(err));
		if (rc == -EALREADY)
			goto taken;
		if (rc != 0)
			goto failed;
		set_progress(db, id, 0.95 / nr);
	}
	/* The other rungs whole: nobody waits for them (the listener has the low rung), and
	 * one commit per rendition costs less than one per segment. */
	for (int i = 1; i < nr; i++) {
		if (rung_stored(db, content_id, ladder[i]))
			continue;
		struct transcode_output *o = NULL;
		rc = encode_rung(db, pcm, ladder[i], urgent_worker, &o, err, sizeof(err));
		if (rc == 1) {
			if (yield_job(ig, db, id) != 0)
				goto taken;
			fprintf(stderr, "ingest: job %lld playable, back to the queue: another listener is waiting\n", (long long)id);
			goto out;
		}
		if (rc != 0)
			goto failed;
		rc = store_rendition(ig, o, ladder[i], &rs[done_r], err, sizeof(err));
		transcode_output_free(o);
		if (rc != 0)
			goto failed;
		rc = commit_rendition(ig, db, id, &rs[done_r], content_id);
		done_r++;
		if (rc == -EALREADY)
			goto taken;
		if (rc != 0) {
			snprintf(err, sizeof(err), "database error while recording a rendition");
			goto failed;
		}
		note_published(ig);
		set_progress(db, id, 0.95 * (double)(i + 1) / nr);
	}
	if (!episode && features_compute(pcm, &f) != 0) {
		snprintf(err, sizeof(err), "audio features could not be computed (track shorter than 2 s?)");
		goto failed;
	}
	rc = commit_job(ig, db, id, content_id, episode, &f);
	if (rc == 0)
		call_hook(ig, db, episode ? INGEST_EPISODE : INGEST_TRACK, content_id);
	if (rc == -EALREADY)
		goto taken;
	if (rc != 0) {
		snprintf(err, sizeof(err), "database error while completing the job");
		goto failed;
	}
	goto out;
taken:
	fprintf(stderr, "ingest: job %lld was taken over by another process; not completing it twice\n", (long long)id);
	goto out;
failed:
	fail_job(ig, db, id, content_id, kind, err[0] ? err : "unknown error");
out:
	note_published(ig);
	for (int i = 0; i < done_r; i++)
		rendition_result_free(&rs[i]);
	free(src);
	pcm_free(pcm);
}

/* Claims the next queued job (at least min_priority) atomically. Returns true with its fields filled. */
static bool claim(struct ingest *ig, sqlite3 *db, int min_priority, int64_t *id, char content_id[ID_LEN + 1], char kind[8],
		  char hash[OBJSTORE_HASH_HEX])
{
	sqlite3_stmt *st = db_prepare(db, "UPDATE ingest_jobs SET state = 'running', owner = ?, started_at = ?, attempts = attempts + 1"
					  " WHERE id = (SELECT id FROM ingest_jobs WHERE state = 'queued' AND priority >= ?"
					  " ORDER BY priority DESC, id LIMIT 1)"
					  " AND state = 'queued' RETURNING id, content_id, kind, source_hash");
	sqlite3_bind_text(st, 1, ig->owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)time(NULL));
	sqlite3_bind_int(st, 3, min_priority);
	bool got = sqlite3_step(st) == SQLITE_ROW;
	if (got) {
		*id = sqlite3_column_int64(st, 0);
		snprintf(content_id, ID_LEN + 1, "%s", (const char *)sqlite3_column_text(st, 1));
		snprintf(kind, 8, "%s", (const char *)sqlite3_column_text(st, 2));
		snprintf(hash, OBJSTORE_HASH_HEX, "%s", (const char *)sqlite3_column_text(st, 3));
	}
	sqlite3_finalize(st);
	return got;
}

struct worker_arg {
	struct ingest *ig;
	int min_priority;
};

static void *worker_main(void *arg)
{
	struct worker_arg wa = *(struct worker_arg *)arg;
	free(arg);
	struct ingest *ig = wa.ig;
	sqlite3 *db = NULL;
	char err[256];
	if (db_open(ig->data_dir, &db, err, sizeof(err)) != 0) {
		fprintf(stderr, "ingest: worker cannot open the database: %s\n", err);
		return NULL;
	}
	for (;;) {
		pthread_mutex_lock(&ig->lock);
		if (ig->quit) {
			pthread_mutex_unlock(&ig->lock);
			break;
		}
		ig->busy++;
		unsigned kicks_seen = ig->kicks;
		pthread_mutex_unlock(&ig->lock);

		int64_t id;
		char content_id[ID_LEN + 1], kind[8], hash[OBJSTORE_HASH_HEX];
		bool got = claim(ig, db, wa.min_priority, &id, content_id, kind, hash);
		if (got)
			run_job(ig, db, id, content_id, kind, hash, wa.min_priority >= INGEST_URGENT);

		pthread_mutex_lock(&ig->lock);
		ig->busy--;
		if (got)
			ig->finished++;
		pthread_cond_broadcast(&ig->idle);
		if (!got && !ig->quit && ig->kicks == kicks_seen) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += INGEST_POLL_SECONDS;
			pthread_cond_timedwait(&ig->wake, &ig->lock, &ts);
		}
		pthread_mutex_unlock(&ig->lock);
	}
	db_close(db);
	return NULL;
}

struct ingest *ingest_new(const char *data_dir, int workers, char *err, size_t errlen)
{
	struct ingest *ig = xcalloc(1, sizeof(*ig));
	ig->data_dir = xstrdup(data_dir);
	snprintf(ig->owner, sizeof(ig->owner), "pid:%d", (int)getpid());
	pthread_mutex_init(&ig->lock, NULL);
	pthread_cond_init(&ig->wake, NULL);
	pthread_cond_init(&ig->idle, NULL);
	pthread_cond_init(&ig->publish, NULL);
	ig->store = objstore_open(data_dir, err, errlen);
	if (!ig->store)
		goto fail;
	objstore_sweep_temp(ig->store);
	sqlite3 *db;
	if (db_open(data_dir, &db, err, errlen) != 0)
		goto fail;
	requeue_orphans(db);
	db_close(db);
	if (workers == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		workers = n > 0 ? (int)n : 1;
	}
	if (workers > 0) {
		/* workers for the queue, plus one for on-demand requests only */
		ig->threads = xcalloc((size_t)workers + 1, sizeof(pthread_t));
		for (int i = 0; i <= workers; i++) {
			struct worker_arg *wa = xmalloc(sizeof(*wa));
			wa->ig = ig;
			wa->min_priority = i == workers ? INGEST_URGENT : INT_MIN;
			if (pthread_create(&ig->threads[i], NULL, worker_main, wa) != 0) {
				free(wa);
				snprintf(err, errlen, "cannot start ingest workers");
				goto fail;
			}
			ig->nthreads++;
		}
	}
	return ig;
fail:
	ingest_free(ig);
	return NULL;
}

void ingest_free(struct ingest *ig)
{
	if (!ig)
		return;
	pthread_mutex_lock(&ig->lock);
	ig->quit = true;
	pthread_cond_broadcast(&ig->wake);
	pthread_mutex_unlock(&ig->lock);
	for (int i = 0; i < ig->nthreads; i++)
		pthread_join(ig->threads[i], NULL);
	free(ig->threads);
	objstore_free(ig->store);
	pthread_mutex_destroy(&ig->lock);
	pthread_cond_destroy(&ig->wake);
	pthread_cond_destroy(&ig->idle);
	pthread_cond_destroy(&ig->publish);
	free(ig->data_dir);
	free(ig);
}

void ingest_kick(struct ingest *ig)
{
	pthread_mutex_lock(&ig->lock);
	ig->kicks++;
	pthread_cond_broadcast(&ig->wake);
	pthread_mutex_unlock(&ig->lock);
}

int ingest_submit(struct ingest *ig, sqlite3 *db, const void *audio, size_t len, const struct ingest_meta *m,
		  int64_t *job_id, char content_id[ID_LEN + 1], char *err, size_t errlen)
{
	struct pcm *pcm = NULL;
	int rc = audiofile_read_mem(audio, len, &pcm, err, errlen);
	if (rc != 0)
		return -EINVAL;
	int duration_ms = (int)llround((double)pcm->frames * 1000.0 / pcm->rate);
	bool long_enough = pcm->frames >= (size_t)pcm->rate * 2;
	/* Loudness is measured here, once, from the source already decoded for validation:
	 * a few numbers to store, and an on-demand job then need not measure the whole track
	 * before its first segment can carry the right gain. */
	struct loudness ld;
	bool measured = long_enough && loudness_measure(pcm, &ld) == 0;
	pcm_free(pcm);
	if (!long_enough) {
		snprintf(err, errlen, "audio is shorter than 2 seconds");
		return -EINVAL;
	}
	/* Validate the metadata before anything is stored. */
	if (m->kind == INGEST_TRACK && (!m->title || !*m->title || !m->artist || !*m->artist || !m->album || !*m->album)) {
		snprintf(err, errlen, "title, artist and album are required");
		return -EINVAL;
	}
	if (m->kind == INGEST_EPISODE && (!m->show || !*m->show || !m->title || !*m->title)) {
		snprintf(err, errlen, "show and title are required");
		return -EINVAL;
	}
	if (db_begin(db) != 0) {
		snprintf(err, errlen, "database busy");
		return -EIO;
	}
	/* Insert the catalog row first: it validates the rest of the metadata, and if it fails
	 * nothing has reached the object store. */
	if (m->kind == INGEST_TRACK) {
		struct catalog_track ct = {
			.name = m->title, .artist_name = m->artist, .album_name = m->album, .genre = m->genre,
			.label = m->label, .release_date = m->release_date, .markets = m->markets,
			.track_number = m->track_number, .duration_ms = duration_ms, .popularity = m->popularity,
			.explicit_ = m->explicit_, .state = "pending", .source_hash = NULL,
		};
		rc = catalog_add_track(db, &ct, content_id, err, errlen);
	} else {
		struct catalog_episode ce = {
			.show_name = m->show, .publisher = m->publisher, .show_description = m->show_description,
			.name = m->title, .description = m->description, .release_date = m->release_date,
			.episode_number = m->episode_number, .duration_ms = duration_ms, .explicit_ = m->explicit_,
		};
		rc = catalog_add_episode(db, &ce, content_id, err, errlen);
	}
	if (rc != 0)
		goto rollback;
	char hash[OBJSTORE_HASH_HEX];
	rc = objstore_put(ig->store, audio, len, hash);
	if (rc != 0) {
		snprintf(err, errlen, "cannot store the source: %s", strerror(-rc));
		goto rollback;
	}
	sqlite3_stmt *st = db_prepare(db, m->kind == INGEST_TRACK ? "UPDATE tracks SET source_hash = ? WHERE id = ?"
								    : "UPDATE episodes SET source_hash = ? WHERE id = ?");
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, content_id, -1, SQLITE_STATIC);
	sqlite3_step(st);
	sqlite3_finalize(st);
	if (measured) {
		st = db_prepare(db, m->kind == INGEST_TRACK ? "UPDATE tracks SET loudness_lufs = ?, true_peak_db = ?, gain_db = ? WHERE id = ?"
							    : "UPDATE episodes SET loudness_lufs = ?, true_peak_db = ?, gain_db = ? WHERE id = ?");
		sqlite3_bind_double(st, 1, isfinite(ld.integrated_lufs) ? ld.integrated_lufs : -70.0);
		sqlite3_bind_double(st, 2, isfinite(ld.true_peak_dbtp) ? ld.true_peak_dbtp : -70.0);
		sqlite3_bind_double(st, 3, ld.gain_db);
		sqlite3_bind_text(st, 4, content_id, -1, SQLITE_STATIC);
		sqlite3_step(st);
		sqlite3_finalize(st);
	}
	st = db_prepare(db, "INSERT INTO ingest_jobs(content_id, kind, source_hash, priority, created_at) VALUES (?, ?, ?, ?, ?)");
	sqlite3_bind_text(st, 1, content_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, m->kind == INGEST_TRACK ? "track" : "episode", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, hash, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, m->priority);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)time(NULL));
	int step = sqlite3_step(st);
	sqlite3_finalize(st);
	if (step != SQLITE_DONE || db_commit(db) != 0) {
		snprintf(err, errlen, "database error: %s", sqlite3_errmsg(db));
		rc = -EIO;
		goto rollback;
	}
	*job_id = sqlite3_last_insert_rowid(db);
	call_hook(ig, db, m->kind, content_id);
	ingest_kick(ig);
	return 0;
rollback:
	/* A source object already written stays as an unreferenced blob; content addressing
	 * makes it harmless and a re-submission reuses it. No catalog row refers to it. */
	db_rollback(db);
	return rc;
}

static void count_jobs(sqlite3 *db, int *open_jobs, int *failed, int *total)
{
	sqlite3_stmt *st = db_prepare(db, "SELECT sum(state IN ('queued','running')), sum(state = 'failed'), count(*) FROM ingest_jobs");
	*open_jobs = *failed = *total = 0;
	if (sqlite3_step(st) == SQLITE_ROW) {
		*open_jobs = sqlite3_column_int(st, 0);
		*failed = sqlite3_column_int(st, 1);
		*total = sqlite3_column_int(st, 2);
	}
	sqlite3_finalize(st);
}

int ingest_wait_idle(struct ingest *ig, void (*progress)(void *ctx, int done, int total), void *ctx)
{
	return ingest_wait_some(ig, -1, progress, ctx);
}

int ingest_wait_some(struct ingest *ig, int enough, void (*progress)(void *ctx, int done, int total), void *ctx)
{
	sqlite3 *db;
	char err[256];
	if (db_open(ig->data_dir, &db, err, sizeof(err)) != 0)
		return -1;
	int open_jobs, failed, total;
	for (;;) {
		pthread_mutex_lock(&ig->lock);
		unsigned finished_seen = ig->finished;
		pthread_mutex_unlock(&ig->lock);
		count_jobs(db, &open_jobs, &failed, &total);
		int target = enough >= 0 && enough < total ? enough : total;
		if (progress)
			progress(ctx, total - open_jobs < target ? total - open_jobs : target, target);
		if (open_jobs == 0 || total - open_jobs >= target)
			break;
		pthread_mutex_lock(&ig->lock);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += INGEST_POLL_SECONDS;
		if (ig->finished == finished_seen)
			pthread_cond_timedwait(&ig->idle, &ig->lock, &ts);
		pthread_mutex_unlock(&ig->lock);
	}
	db_close(db);
	return failed;
}

int ingest_job_get(sqlite3 *db, int64_t id, struct ingest_job *out)
{
	sqlite3_stmt *st = db_prepare(db, "SELECT id, content_id, kind, state, progress, coalesce(error, '') FROM ingest_jobs WHERE id = ?");
	sqlite3_bind_int64(st, 1, id);
	int rc = -ENOENT;
	if (sqlite3_step(st) == SQLITE_ROW) {
		memset(out, 0, sizeof(*out));
		out->id = sqlite3_column_int64(st, 0);
		snprintf(out->content_id, sizeof(out->content_id), "%s", (const char *)sqlite3_column_text(st, 1));
		snprintf(out->kind, sizeof(out->kind), "%s", (const char *)sqlite3_column_text(st, 2));
		snprintf(out->state, sizeof(out->state), "%s", (const char *)sqlite3_column_text(st, 3));
		out->progress = sqlite3_column_double(st, 4);
		snprintf(out->error, sizeof(out->error), "%s", (const char *)sqlite3_column_text(st, 5));
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

void ingest_expedite(struct ingest *ig, sqlite3 *db, const char *content_id)
{
	sqlite3_stmt *st = db_prepare(db, "UPDATE ingest_jobs SET priority = ? WHERE content_id = ? AND state = 'queued'");
	sqlite3_bind_int(st, 1, INGEST_URGENT);
	sqlite3_bind_text(st, 2, content_id, -1, SQLITE_STATIC);
	sqlite3_step(st);
	sqlite3_finalize(st);
	ingest_kick(ig);
}

static int hold(struct ingest *ig, sqlite3 *db, const char *content_id, int timeout_ms);

int ingest_wait_playable(struct ingest *ig, sqlite3 *db, const char *content_id, int timeout_ms)
{
	if (ig->nthreads == 0)
		return -EAGAIN;  /* nothing in this process would transcode it */
	pthread_mutex_lock(&ig->lock);
	bool full = ig->holding >= INGEST_MAX_HOLDS;
	if (!full)
		ig->holding++;
	pthread_mutex_unlock(&ig->lock);
	if (full)
		return -EBUSY;
	int rc = hold(ig, db, content_id, timeout_ms);
	pthread_mutex_lock(&ig->lock);
	ig->holding--;
	pthread_mutex_unlock(&ig->lock);
	return rc;
}

static int hold(struct ingest *ig, sqlite3 *db, const char *content_id, int timeout_ms)
{
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	for (;;) {
		pthread_mutex_lock(&ig->lock);
		unsigned seen = ig->published;
		pthread_mutex_unlock(&ig->lock);
		sqlite3_stmt *st = db_prepare(db, "SELECT state FROM tracks WHERE id = ?1 UNION ALL SELECT state FROM episodes WHERE id = ?1");
		sqlite3_bind_text(st, 1, content_id, -1, SQLITE_STATIC);
		char state[16] = "";
		if (sqlite3_step(st) == SQLITE_ROW)
			snprintf(state, sizeof(state), "%s", (const char *)sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
		if (strcmp(state, "ready") == 0)
			return 0;
		if (strcmp(state, "pending") != 0)
			return -ENOENT;  /* failed or gone */
		pthread_mutex_lock(&ig->lock);
		int w = 0;
		while (ig->published == seen && w == 0)
			w = pthread_cond_timedwait(&ig->publish, &ig->lock, &deadline);
		pthread_mutex_unlock(&ig->lock);
		if (w == ETIMEDOUT)
			return -ETIMEDOUT;
	}
}
