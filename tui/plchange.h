/* plchange: a pushed playlist change (`playlist_changed` with its positional "change",
 * docs/PROTOCOL.md) applied in place to the rows the Playlists view holds, so a live
 * update costs no refetch. The view holds the first `window` rows of the list at one
 * snapshot; a push applies only when its base_snapshot_id is that snapshot (otherwise a
 * message was missed) and when every row the result needs is known (a row moving in from
 * beyond the window, or a removal pulling an unseen row into it, needs a refetch).
 * Pure: JSON text and rows in, rows out; no I/O. */
#ifndef ENCORE_PLCHANGE_H
#define ENCORE_PLCHANGE_H
#include "items.h"

enum plchange_rc {
	PLCHANGE_APPLIED = 0,   /* rows, total and snapshot_id are now at the push's snapshot */
	PLCHANGE_OLD = 1,       /* the push is not newer than the rows: nothing to do */
	PLCHANGE_REFETCH = 2,   /* missed message, unknown rows needed, or malformed: refetch */
};

/* Who changed what, for the status line. */
struct plchange_summary {
	char by[64];
	int added, moved, removed;
};

/* Applies push (the message text) for playlist id (22 chars) to rows, which hold
 * positions 0..rows->n-1 of pl's list at pl->snapshot_id (pl->total items; at most
 * window rows). On PLCHANGE_APPLIED rows keep the first min(window, new total) rows,
 * pl->total and pl->snapshot_id are updated, *sel (if not NULL) follows the row it was
 * on (or stays at its index, clamped, when that row left) and *sum (if not NULL) is
 * filled. On any other result nothing is modified. */
enum plchange_rc plchange_apply(const char *push, const char *id, struct playlist_info *pl, struct items *rows,
				int window, int *sel, struct plchange_summary *sum);

#endif
