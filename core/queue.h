/* queue: the play queue. Entries are track URIs ("encore:track:<22 base62>") with a
 * stable per-queue entry id, so edits by entry survive duplicates and reordering.
 *
 * Model: one list in play order (what the UI shows), a cursor on the current entry,
 * and a history stack of entries actually played. Shuffle keeps the original order
 * aside and Fisher-Yates shuffles only the entries after the current one; turning it
 * off restores the original order around the current entry. With repeat all, each
 * pass plays every entry exactly once (a new shuffle per pass). Indices are positions
 * in play order, 0-based; out-of-range indices give -EINVAL. */
#ifndef ENCORE_QUEUE_H
#define ENCORE_QUEUE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum queue_repeat { QUEUE_REPEAT_OFF, QUEUE_REPEAT_ONE, QUEUE_REPEAT_ALL };

struct queue_entry {
	uint64_t id;     /* unique within this queue, never reused, > 0 */
	const char *uri; /* owned by the queue; valid until the entry is removed */
};

struct queue;

/* New empty queue; `seed` drives the shuffle RNG so tests are reproducible. Never NULL. */
struct queue *queue_new(uint64_t seed);
/* Frees q and all entries; NULL is a no-op. */
void queue_free(struct queue *q);

/* Appends uri at the end. Returns 0 (id in *id if id != NULL) or -EINVAL for a malformed URI. */
int queue_add(struct queue *q, const char *uri, uint64_t *id);
/* Inserts uri right after the current entry (or at the cursor if nothing plays). 0 or -EINVAL. */
int queue_play_next(struct queue *q, const char *uri, uint64_t *id);
/* Inserts uri after the current entry and makes it current (the old one goes to history). 0 or -EINVAL. */
int queue_play_now(struct queue *q, const char *uri, uint64_t *id);
/* Makes the entry at index current (history records the old one). 0 or -EINVAL. */
int queue_play_at(struct queue *q, size_t index);
/* Removes the entry at index / with id. Removing the current entry leaves nothing
 * current; the next call to queue_next plays what followed it. 0, -EINVAL or -ENOENT (id). */
int queue_remove_at(struct queue *q, size_t index);
int queue_remove_id(struct queue *q, uint64_t id);
/* Moves the entry at `from` so it ends up at index `to`; the current entry stays current. 0 or -EINVAL. */
int queue_move(struct queue *q, size_t from, size_t to);
/* Removes everything, history included. Repeat and shuffle settings are kept. */
void queue_clear(struct queue *q);

/* Turns shuffle on (shuffling the entries after the current one) or off (restoring the
 * original order after the current entry). Setting the current state again is a no-op. */
void queue_set_shuffle(struct queue *q, bool on);
/* Current shuffle state. */
bool queue_shuffle(const struct queue *q);
/* Sets / reads the repeat mode; takes effect at the next queue_next/queue_skip. */
void queue_set_repeat(struct queue *q, enum queue_repeat r);
enum queue_repeat queue_repeat(const struct queue *q);

/* Advances because the current track ended: repeat one returns the same entry; at the
 * end, repeat all starts a new pass (reshuffled if shuffling), otherwise returns NULL
 * and the queue is exhausted. The pointer is valid until the next queue edit. */
const struct queue_entry *queue_next(struct queue *q);
/* Advances because the user skipped: like queue_next but ignores repeat one. */
const struct queue_entry *queue_skip(struct queue *q);
/* Goes back to the most recently played entry still in the queue; the entry that was
 * current plays after it. Returns it, or NULL when history is empty (the caller would
 * restart the current track). */
const struct queue_entry *queue_previous(struct queue *q);

/* The current entry or NULL. */
const struct queue_entry *queue_current(const struct queue *q);
/* True when nothing is current and queue_next would return NULL: the caller's cue for autoplay. */
bool queue_is_exhausted(const struct queue *q);
/* Number of entries (played, current and upcoming). */
size_t queue_len(const struct queue *q);
/* Entry at index in play order, or NULL if out of range. */
const struct queue_entry *queue_at(const struct queue *q, size_t index);
/* Index of the entry with id in play order, or -ENOENT. */
long queue_index_of(const struct queue *q, uint64_t id);
/* Index of the current entry, or -1 if none. */
long queue_position(const struct queue *q);
/* Number of entries in the history stack. */
size_t queue_history_len(const struct queue *q);

#endif
