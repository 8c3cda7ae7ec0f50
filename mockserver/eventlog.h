/* eventlog: the append-only log of listening events and its consumers.
 * Clients POST batches; ingest is idempotent by event id (a UNIQUE constraint), so
 * retries, duplicates and reordered batches are stored once. Consumers (royalties,
 * real-time aggregates, recommendation training) read the log in seq order, each with
 * its own committed offset, Kafka consumer-group style: a consumer applies a batch and
 * advances its offset in one transaction, so after a crash it resumes where it committed
 * and counts nothing twice. Each consumer's derived tables and offset live in its own
 * store, DATA/consumer-NAME.db attached as schema NAME (db.h), so consuming never takes
 * the log's write lock. */
#ifndef ENCORE_EVENTLOG_H
#define ENCORE_EVENTLOG_H
#include "id.h"
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EVENTLOG_MAX_BATCH 1000
#define EVENTLOG_URI_MAX 128
#define EVENTLOG_CONTEXT_MAX 256
#define EVENTLOG_REASON_MAX 32
/* A play counts as a royalty-bearing stream from this much listening (play_end.ms_played). */
#define EVENTLOG_ROYALTY_MS 30000
/* Trending looks at plays started in this sliding window. */
#define EVENTLOG_TRENDING_WINDOW_MS (30 * 60 * 1000)

enum eventlog_type {
	EV_PLAY_START,
	EV_PLAY_END,
	EV_PAUSE,
	EV_RESUME,
	EV_SEEK,
	EV_SKIP,
	EV_SAVE,
	EV_UNSAVE,
	EV_PLAYLIST_ADD,
	EV_FOLLOW,
	EV_SEARCH_CLICK,
	EV_TYPE_COUNT
};

/* One event as the client sends it. Absent optional integers are -1, strings "". */
struct eventlog_event {
	char id[ID_LEN + 1];
	enum eventlog_type type;
	int64_t ts;                 /* device clock, ms since the epoch */
	char uri[EVENTLOG_URI_MAX + 1];
	int64_t ms_played;          /* play_end: required */
	int64_t bitrate;            /* kbps of the rendition */
	int64_t position_ms;
	char context[EVENTLOG_CONTEXT_MAX + 1];
	char reason[EVENTLOG_REASON_MAX + 1];
};

/* "play_start" etc.; NULL for an out-of-range value. */
const char *eventlog_type_name(enum eventlog_type t);
/* The type for a name, or -1. */
int eventlog_type_parse(const char *name);

/* Parses a batch body {"events":[...]} (pure). Returns the event count (0..max) with
 * *out (caller frees) or -EINVAL with a message naming the bad event in err. Unknown
 * keys in an event are ignored (forward compatibility); wrong types, unknown event
 * types, bad ids, missing fields and more than max events are errors. */
int eventlog_parse_batch(const char *json, int max, struct eventlog_event **out, char *err, size_t errlen);

/* Appends events for user (country at ingest time) in one transaction, skipping ids
 * already in the log. now_ms is the server clock. Returns 0 with the counts once the
 * transaction committed (the batch is then durable against a process crash), or -EIO. */
int eventlog_append(sqlite3 *db, const char *user, const char *country, const struct eventlog_event *ev, int n,
		    int64_t now_ms, int *accepted, int *duplicates);

/* ---- Consumers ---- */

enum eventlog_consumer_id { CONSUMER_ROYALTIES, CONSUMER_REALTIME, CONSUMER_RECOMMENDATIONS, CONSUMER_COUNT };
const char *eventlog_consumer_name(enum eventlog_consumer_id c);

/* Applies up to max log entries after the consumer's committed offset and commits the new
 * offset in the same transaction, locking only the consumer's store (a store that no
 * longer matches the log is emptied and rebuilt from seq 0). db must come from db_open.
 * now_ms is used for housekeeping only. Returns how many entries were applied (0 =
 * caught up) or -EIO (nothing committed). */
int eventlog_consume(sqlite3 *db, enum eventlog_consumer_id c, int max, int64_t now_ms);
/* Runs the consumer until it has caught up. Returns the entries applied or -EIO. */
int eventlog_catch_up(sqlite3 *db, enum eventlog_consumer_id c, int64_t now_ms);

struct eventlog_consumer_status {
	const char *name;
	int64_t offset, lag, updated_at_ms;
};
/* The newest seq in the log (0 when empty). */
int64_t eventlog_head(sqlite3 *db);
/* Offsets and lag of every consumer into out[CONSUMER_COUNT]. 0 or -EIO. */
int eventlog_consumer_status(sqlite3 *db, struct eventlog_consumer_status out[CONSUMER_COUNT]);

/* Popularity from play counts (pure): 0 plays -> 0, 10 -> 26, 100 -> 50, 10^4 -> 100. */
int eventlog_popularity_from_plays(int64_t plays);
/* The UTC day (YYYY-MM-DD) of a ms timestamp (pure). */
void eventlog_day(int64_t ms, char out[11]);

/* ---- The runner: consumers on their own threads in encored ---- */

struct eventlog_runner;
/* Starts one thread per consumer, each with its own connection to DATA/encore.db.
 * on_change(ctx) is called after the realtime consumer changed popularity (may be NULL).
 * NULL with err on failure. */
struct eventlog_runner *eventlog_runner_new(const char *data_dir, void (*on_change)(void *ctx), void *ctx,
					    char *err, size_t errlen);
/* Appends a batch through the runner's group-commit thread and waits until it is
 * committed (durable as eventlog_append's); wakes the consumers. 0, or -EIO with nothing
 * of the batch written. ev is only read, and only until this returns. */
int eventlog_runner_append(struct eventlog_runner *r, const char *user, const char *country,
			   const struct eventlog_event *ev, int n, int64_t now_ms, int *accepted, int *duplicates);
/* Wakes the consumers (new events were appended). Cheap; never blocks on a consumer. */
void eventlog_runner_notify(struct eventlog_runner *r);
/* Failed consumer batches since start (each is retried with backoff). */
uint64_t eventlog_runner_failures(struct eventlog_runner *r);
/* Stops and joins the threads. NULL is a no-op. */
void eventlog_runner_free(struct eventlog_runner *r);

#endif
