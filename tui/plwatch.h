/* plwatch: live playlist updates for the TUI. One thread owns a libwebsockets client
 * context and one "encore-v1" socket to encored: it authenticates with the api's bearer
 * token, keeps a subscription to the one playlist the UI is showing, and records the
 * snapshot_id of every `playlist_changed` push (and of the `subscribed` answer, which
 * covers changes missed while the socket was down), and queues each push's text. The UI
 * polls plwatch_fd, applies the queued pushes to the rows on screen (plchange.h) and
 * refetches the playlist through its fetcher only when one cannot be applied or the
 * snapshot is still ahead of the one on screen. The socket is a wsclient (core/wsclient.h):
 * it reconnects with backoff and pings every CONNECT_PING_MS. */
#ifndef ENCORE_PLWATCH_H
#define ENCORE_PLWATCH_H
#include <stdbool.h>
#include <stddef.h>

struct api;
struct plwatch;

/* Starts the thread on api (borrowed; must outlive the watcher). NULL with err when the
 * server URL is not http:// or the context or thread cannot be created. */
struct plwatch *plwatch_start(struct api *api, char *err, size_t errlen);
/* Closes the socket and joins the thread. NULL is a no-op. */
void plwatch_stop(struct plwatch *w);
/* Polls readable when a snapshot or the live state changed; clear with plwatch_ack. */
int plwatch_fd(struct plwatch *w);
void plwatch_ack(struct plwatch *w);
/* Watches playlist id (22 chars; copied), or nothing with NULL. Any thread. */
void plwatch_watch(struct plwatch *w, const char *id);
/* Copies the watched playlist's latest pushed snapshot_id into out ("" when none yet) and
 * returns true while the subscription is live (socket up, server confirmed it). */
bool plwatch_snapshot(struct plwatch *w, char *out, size_t outlen);
/* The oldest queued `playlist_changed` message (JSON text, caller frees) of the watched
 * playlist, or NULL when none. At most 256 wait; later ones are not queued (the snapshot
 * still moves, so the UI sees it is behind). Watching another playlist empties the queue. */
char *plwatch_next(struct plwatch *w);

#endif
