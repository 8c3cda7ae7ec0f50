/* queue: see queue.h. Entries are heap objects shared by the play-order array and,
 * while shuffling, the saved original order; the play array owns them. */
#include "queue.h"
#include "id.h"
#include "xmem.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define HISTORY_MAX 1000

struct list {
	struct queue_entry **v;
	size_t n, cap;
};

struct queue {
	struct list play;     /* play order; owns the entries */
	struct list orig;     /* original order while shuffling, else empty */
	long pos;             /* current entry if has_current, else the last one played (-1: none yet) */
	bool has_current;
	uint64_t *hist;       /* ids of entries played, most recent last */
	size_t nhist, histcap;
	bool shuffle;
	enum queue_repeat repeat;
	uint64_t next_id;
	uint64_t rng;
};

static void list_insert(struct list *l, size_t at, struct queue_entry *e)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	memmove(l->v + at + 1, l->v + at, (l->n - at) * sizeof(*l->v));
	l->v[at] = e;
	l->n++;
}

static void list_remove(struct list *l, size_t at)
{
	memmove(l->v + at, l->v + at + 1, (l->n - at - 1) * sizeof(*l->v));
	l->n--;
}

static long list_find(const struct list *l, const struct queue_entry *e)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i] == e)
			return (long)i;
	return -1;
}

/* xorshift64*: small, seedable, good enough for shuffling a playlist. */
static uint64_t rng_next(struct queue *q)
{
	q->rng ^= q->rng >> 12;
	q->rng ^= q->rng << 25;
	q->rng ^= q->rng >> 27;
	return q->rng * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [0, n) without modulo bias. */
static size_t rng_below(struct queue *q, size_t n)
{
	uint64_t limit = UINT64_MAX - UINT64_MAX % n;
	uint64_t x;
	do
		x = rng_next(q);
	while (x >= limit);
	return (size_t)(x % n);
}

/* Fisher-Yates over v[from..n). */
static void shuffle_range(struct queue *q, struct queue_entry **v, size_t from, size_t n)
{
	for (size_t i = n; i > from + 1; i--) {
		size_t j = from + rng_below(q, i - from);
		struct queue_entry *t = v[i - 1];
		v[i - 1] = v[j];
		v[j] = t;
	}
}

struct queue *queue_new(uint64_t seed)
{
	struct queue *q = xcalloc(1, sizeof(*q));
	q->pos = -1;
	q->next_id = 1;
	/* splitmix64 so that small seeds (0, 1, 2) still give well-mixed, non-zero states. */
	uint64_t z = seed + 0x9E3779B97F4A7C15ULL;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	q->rng = (z ^ (z >> 31)) | 1;
	return q;
}

static void free_entries(struct queue *q)
{
	for (size_t i = 0; i < q->play.n; i++) {
		free((char *)q->play.v[i]->uri);
		free(q->play.v[i]);
	}
	q->play.n = 0;
	q->orig.n = 0;
}

void queue_free(struct queue *q)
{
	if (!q)
		return;
	free_entries(q);
	free(q->play.v);
	free(q->orig.v);
	free(q->hist);
	free(q);
}

static bool valid_track_uri(const char *uri)
{
	char type[16], id[ID_LEN + 1];
	return uri && uri_parse(uri, type, sizeof(type), id) && (strcmp(type, "track") == 0 || strcmp(type, "episode") == 0);
}

static struct queue_entry *entry_new(struct queue *q, const char *uri)
{
	struct queue_entry *e = xmalloc(sizeof(*e));
	e->id = q->next_id++;
	e->uri = xstrdup(uri);
	return e;
}

static void history_push(struct queue *q, uint64_t id)
{
	if (q->nhist == HISTORY_MAX) {
		memmove(q->hist, q->hist + 1, (q->nhist - 1) * sizeof(*q->hist));
		q->nhist--;
	}
	if (q->nhist == q->histcap) {
		q->histcap = q->histcap ? q->histcap * 2 : 32;
		q->hist = xrealloc(q->hist, q->histcap * sizeof(*q->hist));
	}
	q->hist[q->nhist++] = id;
}

/* Makes play[idx] current, recording the outgoing entry in history. */
static const struct queue_entry *go_to(struct queue *q, long idx)
{
	if (q->has_current)
		history_push(q, q->play.v[q->pos]->id);
	q->pos = idx;
	q->has_current = true;
	return q->play.v[idx];
}

int queue_add(struct queue *q, const char *uri, uint64_t *id)
{
	if (!valid_track_uri(uri))
		return -EINVAL;
	struct queue_entry *e = entry_new(q, uri);
	list_insert(&q->play, q->play.n, e);
	if (q->shuffle)
		list_insert(&q->orig, q->orig.n, e);
	if (id)
		*id = e->id;
	return 0;
}

/* Inserts a new entry at the slot queue_next would play; returns its index. */
static long insert_after_cursor(struct queue *q, const char *uri, uint64_t *id)
{
	struct queue_entry *e = entry_new(q, uri);
	size_t at = (size_t)(q->pos + 1);
	if (q->shuffle) {
		/* Keep it next to the same neighbour in the original order too, so turning
		 * shuffle off does not fling it somewhere unexpected. */
		long o = q->pos >= 0 ? list_find(&q->orig, q->play.v[q->pos]) : -1;
		list_insert(&q->orig, (size_t)(o + 1), e);
	}
	list_insert(&q->play, at, e);
	if (id)
		*id = e->id;
	return (long)at;
}

int queue_play_next(struct queue *q, const char *uri, uint64_t *id)
{
	if (!valid_track_uri(uri))
		return -EINVAL;
	insert_after_cursor(q, uri, id);
	return 0;
}

int queue_play_now(struct queue *q, const char *uri, uint64_t *id)
{
	if (!valid_track_uri(uri))
		return -EINVAL;
	long at = insert_after_cursor(q, uri, id);
	go_to(q, at);
	return 0;
}

int queue_play_at(struct queue *q, size_t index)
{
	if (index >= q->play.n)
		return -EINVAL;
	go_to(q, (long)index);
	return 0;
}

int queue_remove_at(struct queue *q, size_t index)
{
	if (index >= q->play.n)
		return -EINVAL;
	struct queue_entry *e = q->play.v[index];
	list_remove(&q->play, index);
	if (q->shuffle)
		list_remove(&q->orig, (size_t)list_find(&q->orig, e));
	if ((long)index == q->pos && q->has_current)
		q->has_current = false;
	/* Whether it was before the cursor or the cursor itself, what followed now sits
	 * one slot earlier and must still come next. */
	if ((long)index <= q->pos)
		q->pos--;
	free((char *)e->uri);
	free(e);
	return 0;
}

int queue_remove_id(struct queue *q, uint64_t id)
{
	long i = queue_index_of(q, id);
	return i < 0 ? (int)i : queue_remove_at(q, (size_t)i);
}

int queue_move(struct queue *q, size_t from, size_t to)
{
	if (from >= q->play.n || to >= q->play.n)
		return -EINVAL;
	if (from == to)
		return 0;
	struct queue_entry *cursor = q->pos >= 0 ? q->play.v[q->pos] : NULL;
	struct queue_entry *e = q->play.v[from];
	list_remove(&q->play, from);
	list_insert(&q->play, to, e);
	if (cursor)
		q->pos = list_find(&q->play, cursor);
	return 0;
}

void queue_clear(struct queue *q)
{
	free_entries(q);
	q->pos = -1;
	q->has_current = false;
	q->nhist = 0;
}

void queue_set_shuffle(struct queue *q, bool on)
{
	if (on == q->shuffle)
		return;
	q->shuffle = on;
	if (on) {
		q->orig.n = 0;
		for (size_t i = 0; i < q->play.n; i++)
			list_insert(&q->orig, i, q->play.v[i]);
		shuffle_range(q, q->play.v, (size_t)(q->pos + 1), q->play.n);
		return;
	}
	struct queue_entry *cursor = q->pos >= 0 ? q->play.v[q->pos] : NULL;
	memcpy(q->play.v, q->orig.v, q->orig.n * sizeof(*q->play.v));
	q->orig.n = 0;
	if (cursor)
		q->pos = list_find(&q->play, cursor);
}

bool queue_shuffle(const struct queue *q)
{
	return q->shuffle;
}

void queue_set_repeat(struct queue *q, enum queue_repeat r)
{
	q->repeat = r;
}

enum queue_repeat queue_repeat(const struct queue *q)
{
	return q->repeat;
}

const struct queue_entry *queue_skip(struct queue *q)
{
	size_t n = q->play.n;
	if ((size_t)(q->pos + 1) < n)
		return go_to(q, q->pos + 1);
	if (n > 0 && q->repeat == QUEUE_REPEAT_ALL) {
		if (q->shuffle) {
			/* New pass, new order; avoid replaying the track that just ended back to back. */
			struct queue_entry *last = q->pos >= 0 ? q->play.v[q->pos] : NULL;
			shuffle_range(q, q->play.v, 0, n);
			if (n > 1 && q->play.v[0] == last) {
				size_t j = 1 + rng_below(q, n - 1);
				q->play.v[0] = q->play.v[j];
				q->play.v[j] = last;
			}
			if (q->has_current)
				q->pos = list_find(&q->play, last);
		}
		return go_to(q, 0);
	}
	if (q->has_current)
		history_push(q, q->play.v[q->pos]->id);
	q->has_current = false;
	q->pos = (long)n - 1;
	return NULL;
}

const struct queue_entry *queue_next(struct queue *q)
{
	if (q->repeat == QUEUE_REPEAT_ONE && q->has_current)
		return q->play.v[q->pos];
	return queue_skip(q);
}

const struct queue_entry *queue_previous(struct queue *q)
{
	while (q->nhist > 0) {
		uint64_t id = q->hist[--q->nhist];
		long idx = queue_index_of(q, id);
		if (idx < 0 || (q->has_current && idx == q->pos))
			continue; /* removed since, or it is what is playing now */
		struct queue_entry *e = q->play.v[idx];
		/* The entry that must follow the one we go back to: the current one, or
		 * whatever queue_next would have played. */
		struct queue_entry *anchor = q->has_current ? q->play.v[q->pos]
		                           : (size_t)(q->pos + 1) < q->play.n ? q->play.v[q->pos + 1] : NULL;
		if (anchor != e) {
			list_remove(&q->play, (size_t)idx);
			long at = anchor ? list_find(&q->play, anchor) : (long)q->play.n;
			list_insert(&q->play, (size_t)at, e);
		}
		q->pos = list_find(&q->play, e);
		q->has_current = true;
		return e;
	}
	return NULL;
}

const struct queue_entry *queue_current(const struct queue *q)
{
	return q->has_current ? q->play.v[q->pos] : NULL;
}

bool queue_is_exhausted(const struct queue *q)
{
	if (q->has_current)
		return false;
	if ((size_t)(q->pos + 1) < q->play.n)
		return false;
	return !(q->repeat == QUEUE_REPEAT_ALL && q->play.n > 0);
}

size_t queue_len(const struct queue *q)
{
	return q->play.n;
}

const struct queue_entry *queue_at(const struct queue *q, size_t index)
{
	return index < q->play.n ? q->play.v[index] : NULL;
}

long queue_index_of(const struct queue *q, uint64_t id)
{
	for (size_t i = 0; i < q->play.n; i++)
		if (q->play.v[i]->id == id)
			return (long)i;
	return -ENOENT;
}

long queue_position(const struct queue *q)
{
	return q->has_current ? q->pos : -1;
}

size_t queue_history_len(const struct queue *q)
{
	return q->nhist;
}
