/* outbox: the client's durable queue of listening events. Each event is written to
 * DATA_DIR/outbox.db (SQLite, WAL, synchronous=FULL: a row is on disk before outbox_add
 * returns, so it survives a crash, kill -9 or power loss) with a random 22-character id
 * and the device's clock, then uploaded to POST /v1/events in batches. The server
 * ignores ids it already has, so an upload that died after the server committed but
 * before the rows were deleted here is simply repeated: exactly once end to end.
 *
 * A background uploader (outbox_start) batches for a short linger, then uploads; on
 * failure it backs off exponentially with jitter (1 s doubling to 5 min) and keeps the
 * rows for as long as it takes (days offline are fine). A play in progress is
 * checkpointed (outbox_note_play); if the process dies mid-track, the next outbox_open
 * turns the checkpoint into its play_end (reason "crash") so the listening still counts. */
#ifndef ENCORE_OUTBOX_H
#define ENCORE_OUTBOX_H
#include "id.h"
#include <stdbool.h>
#include <stdint.h>

struct api;
struct outbox;

#define OUTBOX_BATCH 500            /* events per upload (the server takes up to 1000) */
#define OUTBOX_BACKOFF_BASE_MS 1000
#define OUTBOX_BACKOFF_MAX_MS 300000

/* Optional fields of an event: integers < 0 and NULL strings are left out. */
struct outbox_fields {
	const char *uri;          /* required: encore:TYPE:ID */
	int64_t ms_played;        /* play_end */
	int bitrate;              /* kbps of the rendition */
	int64_t position_ms;
	const char *context;      /* playlist URI for playlist_add, query for search_click */
	const char *reason;       /* play_end: trackdone, skip, endplay, crash */
};
#define OUTBOX_FIELDS_INIT {NULL, -1, -1, -1, NULL, NULL}

/* Opens (creating) the outbox at path and recovers an interrupted play. NULL with err. */
struct outbox *outbox_open(const char *path, char *err, size_t errlen);
/* Stops the uploader without a last upload (see outbox_stop) and closes. NULL is a no-op. */
void outbox_close(struct outbox *o);

/* Records an event of type (play_start, play_end, pause, resume, seek, skip, save, unsave,
 * playlist_add, follow, search_click) at device time ts_ms (0 = now), durably, and wakes
 * the uploader. id_out (may be NULL) receives the event id. 0, -EINVAL (no uri or type)
 * or -EIO. */
int outbox_add(struct outbox *o, const char *type, const struct outbox_fields *f, int64_t ts_ms, char id_out[ID_LEN + 1]);
/* Checkpoints the play in progress (uri NULL clears it; a play_end clears it too). 0 or -EIO. */
int outbox_note_play(struct outbox *o, const char *uri, int bitrate, int64_t ms_played);
/* Events not yet acknowledged by the server, or -EIO. */
long long outbox_pending(struct outbox *o);

/* Uploads everything pending now, batch by batch, on the caller's thread. Returns 0 when
 * nothing is left, or a negative errno from the first failed batch (-EIO for a server
 * error, -ECONNREFUSED etc. for transport) with err set; *sent counts acknowledged events.
 * A batch the server refuses as malformed (400/413/422) is dropped so it cannot wedge the
 * queue; *dropped counts those events (either pointer may be NULL). */
int outbox_flush(struct outbox *o, struct api *api, int *sent, int *dropped, char *err, size_t errlen);

/* Starts the background uploader on api (borrowed; must outlive outbox_stop). Uploads
 * begin linger_ms after an event arrives. 0 or -EALREADY/-EAGAIN. */
int outbox_start(struct outbox *o, struct api *api, int linger_ms);
/* Stops the uploader; then, unless the last attempt failed (the network is likely down),
 * makes one final upload attempt so a short session leaves nothing behind. */
void outbox_stop(struct outbox *o);

/* ---- Pure helpers ---- */

/* Delay before retry number failures (1-based) with "equal jitter": half of
 * min(base * 2^(failures-1), max) plus a jitter from seed in [0, that half). */
long outbox_backoff_ms(int failures, uint32_t seed);
/* The JSON object the server expects for one event (caller frees). */
char *outbox_event_json(const char *id, const char *type, int64_t ts_ms, const struct outbox_fields *f);

#endif
