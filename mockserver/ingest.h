/* ingest: the pipeline every song and episode goes through: validate the source, keep it
 * in the object store, queue a job in SQLite, and let a pool of workers measure loudness,
 * compute audio features and transcode the bitrate ladder into segmented renditions. The
 * lowest rung is encoded as a stream and each segment recorded as soon as it exists, so an
 * item is playable (and a held listener answered) once its segment 0 is in.
 * Jobs survive restarts: a job left running by a dead process is queued again, and a
 * job completes in one transaction that only its current owner can commit. */
#ifndef ENCORE_INGEST_H
#define ENCORE_INGEST_H
#include "id.h"
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ingest;

enum ingest_kind { INGEST_TRACK, INGEST_EPISODE };

struct ingest_meta {
	enum ingest_kind kind;
	/* Tracks. */
	const char *title, *artist, *album, *genre, *label, *release_date, *markets;
	int track_number, popularity;
	bool explicit_;
	/* Episodes. */
	const char *show, *publisher, *show_description, *description;
	int episode_number;
	int priority;       /* higher runs first (seed-demo transcodes popular tracks first) */
};

struct ingest_job {
	int64_t id;
	char content_id[ID_LEN + 1];
	char kind[8];
	char state[8];      /* queued | running | done | failed */
	double progress;    /* 0..1 */
	char error[256];
};

/* Opens the pipeline on DATA (its own database connections and object store) and starts
 * `workers` threads (0 = one per core; -1 = none, for submit-only use). Jobs left running
 * by dead processes are re-queued. NULL with err on failure. */
struct ingest *ingest_new(const char *data_dir, int workers, char *err, size_t errlen);
/* Lets running jobs finish, stops the workers, frees. */
void ingest_free(struct ingest *ig);
/* Validates audio (WAV or FLAC bytes), stores the source, adds the catalog entry in state
 * "pending" and queues its job, all or nothing. Returns 0 with *job_id and content_id, or
 * -EINVAL (bad audio or metadata; nothing written), -EEXIST, -EIO, with err. */
int ingest_submit(struct ingest *ig, sqlite3 *db, const void *audio, size_t len, const struct ingest_meta *m,
		  int64_t *job_id, char content_id[ID_LEN + 1], char *err, size_t errlen);
/* Wakes the workers (after another process queued jobs). */
void ingest_kick(struct ingest *ig);
/* Blocks until no job is queued or running, calling progress(done, total) as jobs finish
 * (may be NULL). Returns the number of failed jobs. */
int ingest_wait_idle(struct ingest *ig, void (*progress)(void *ctx, int done, int total), void *ctx);
/* The same, but returns as soon as `enough` jobs have finished (done or failed), so a
 * caller can start serving while the rest transcode in the background. */
int ingest_wait_some(struct ingest *ig, int enough, void (*progress)(void *ctx, int done, int total), void *ctx);
/* Moves the queued job of content_id to the front of the queue (a listener is waiting). */
void ingest_expedite(struct ingest *ig, sqlite3 *db, const char *content_id);
/* Holds a listener's request until content_id is playable (its first segment published),
 * at most timeout_ms. Returns 0 when playable, -ETIMEDOUT, -ENOENT (failed or unknown),
 * or at once -EAGAIN when this process runs no workers and -EBUSY when another request is
 * already held (each holds an HTTP worker thread). db is the caller's connection. */
int ingest_wait_playable(struct ingest *ig, sqlite3 *db, const char *content_id, int timeout_ms);
/* Told about every catalog item the pipeline commits: once when ingest_submit has committed
 * its catalog row (state "pending"), and again when its job completes. Called after the
 * commit, on the submitting thread or an ingest worker, with that thread's connection. The
 * search index uses it to index new items without a rebuild. */
typedef void (*ingest_hook_fn)(void *ctx, sqlite3 *db, enum ingest_kind kind, const char *content_id);
/* Sets (or with fn NULL clears) the hook; safe while workers run. */
void ingest_set_hook(struct ingest *ig, ingest_hook_fn fn, void *ctx);

/* Reads one job. 0 or -ENOENT. */
int ingest_job_get(sqlite3 *db, int64_t id, struct ingest_job *out);
/* The ladder for a kind, kbps ascending; returns the rung count. */
int ingest_ladder(enum ingest_kind kind, const int **rungs);

#endif
