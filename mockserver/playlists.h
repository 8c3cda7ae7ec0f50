/* playlists: the playlist routes and the in-memory replica of each playlist's order.
 *
 * Each playlist touched since start-up has an entry: a mutex, its seqcrdt (replayed from
 * the playlist_ops log on first use; the server is replica 1) and its metadata (reloaded
 * after PLAYLISTS_META_TTL_MS, rewritten on every metadata write). Every track edit runs
 * under the entry's mutex: resolve positions against the snapshot the request names,
 * make and apply the CRDT operations, append them to the log in one transaction, then
 * queue the push to subscribers, so pushes leave in version order. Track pages come from
 * the entry's hydrated list, on the I/O thread when it is all in memory
 * (playlists_fast_tracks). */
#ifndef ENCORE_PLAYLISTS_H
#define ENCORE_PLAYLISTS_H
#include "seqcrdt.h"
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#define PLAYLISTS_META_TTL_MS (5 * 60 * 1000)
#define PLAYLISTS_ITEM_TTL_MS 60000  /* a rendered playlist item (as the catalog's track cache) */
#define PLAYLISTS_MAX_ITEMS 100      /* URIs, positions or tracks per request */
#define PLAYLISTS_PUSH_CHANGE_MAX 500  /* rows a push's positional "change" may name */

struct playlists;

/* An empty registry. */
struct playlists *playlists_new(void);
void playlists_free(struct playlists *p);
/* For a subscription: 0 and the current snapshot id when user may read playlist id,
 * -ENOENT when it does not exist or is private to others, -EIO on a database error. */
int playlists_subscribe_check(struct playlists *p, sqlite3 *db, const char *id, const char *user,
			      char snapshot[SEQ_CURSOR_MAX]);

struct call;
/* The gateway's I/O-thread path for GET /v1/playlists/{id}/tracks (c->params[0] the id,
 * c->user verified): answers from memory alone, true with c->resp complete (the page, a
 * 304, or a 400 for bad paging arguments) when the playlist's replica and metadata are
 * loaded and fresh, c->user may read it, no writer holds it, and every item of the page
 * is rendered for c->user.country. Otherwise false with nothing written, and a worker
 * serves the request as usual. Never blocks on a writer, never touches SQLite. */
bool playlists_fast_tracks(struct call *c);

#endif
