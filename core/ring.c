/* ring: see ring.h for the protocol. */
#include "ring.h"
#include "xmem.h"
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POS_BITS 48
#define POS_MASK ((UINT64_C(1) << POS_BITS) - 1)
#define GEN_MASK 0xffffu

static inline uint64_t word_pos(uint64_t w) { return w & POS_MASK; }
static inline unsigned word_gen(uint64_t w) { return (unsigned)(w >> POS_BITS) & GEN_MASK; }
static inline uint64_t word_make(unsigned gen, uint64_t pos) { return ((uint64_t)(gen & GEN_MASK) << POS_BITS) | (pos & POS_MASK); }

struct ring {
	float *buf;
	size_t cap; /* frames */
	int channels;
	_Atomic uint64_t head; /* generation | frames ever written; producer advances, flush bumps gen */
	_Atomic uint64_t tail; /* frames ever consumed or dropped: the consumer advances it past
	                        * what it read, a flush (or the consumer for it) past what was
	                        * written before the flush */
	_Atomic int waiters;   /* threads inside ring_wait_*; signalers skip the mutex when 0 */
	_Atomic int reading;   /* the consumer is inside ring_read: a flush leaves the drop to it */
	_Atomic unsigned seen_gen; /* generation whose flush has been applied to the tail */
	pthread_mutex_t mu;    /* guards the fields below and the condvar */
	pthread_cond_t cv;
	uint64_t flush_pos;    /* write position at the latest flush */
	unsigned flush_gen;
	unsigned wake_seq;
	bool aborted;
};

struct ring *ring_new(size_t capacity_frames, int channels)
{
	if (capacity_frames == 0 || channels <= 0)
		return NULL;
	struct ring *r = xcalloc(1, sizeof(*r));
	r->buf = xcalloc(capacity_frames * (size_t)channels, sizeof(float));
	r->cap = capacity_frames;
	r->channels = channels;
	pthread_mutex_init(&r->mu, NULL);
	/* Monotonic so timeouts survive wall-clock jumps. */
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cv, &ca);
	pthread_condattr_destroy(&ca);
	return r;
}

void ring_free(struct ring *r)
{
	if (!r)
		return;
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r->buf);
	free(r);
}

int ring_channels(const struct ring *r) { return r->channels; }
size_t ring_capacity(const struct ring *r) { return r->cap; }

unsigned ring_generation(const struct ring *r)
{
	return word_gen(atomic_load((_Atomic uint64_t *)&r->head));
}

size_t ring_readable(const struct ring *r)
{
	uint64_t t = atomic_load((_Atomic uint64_t *)&r->tail);
	uint64_t h = word_pos(atomic_load((_Atomic uint64_t *)&r->head));
	return (size_t)(h - t);
}

/* Wakes blocked threads after a position changed. The seq_cst store of the position
 * before this seq_cst load pairs with the waiter's increment-then-check, so either we
 * see the waiter or the waiter sees the new position. */
static void notify(struct ring *r)
{
	if (atomic_load(&r->waiters) == 0)
		return;
	pthread_mutex_lock(&r->mu);
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

ssize_t ring_write(struct ring *r, const float *frames, size_t n, unsigned gen)
{
	uint64_t w = atomic_load(&r->head);
	if (word_gen(w) != (gen & GEN_MASK))
		return -ESTALE;
	uint64_t h = word_pos(w);
	uint64_t t = atomic_load(&r->tail);
	size_t space = r->cap - (size_t)(h - t);
	if (n > space)
		n = space;
	if (n == 0)
		return 0;
	size_t ch = (size_t)r->channels;
	size_t at = (size_t)(h % r->cap);
	size_t first = n < r->cap - at ? n : r->cap - at;
	memcpy(r->buf + at * ch, frames, first * ch * sizeof(float));
	memcpy(r->buf, frames + first * ch, (n - first) * ch * sizeof(float));
	/* Only a flush can change the word under us; then the frames are stale and the
	 * slots we scribbled on lie beyond the write position, unread. */
	if (!atomic_compare_exchange_strong(&r->head, &w, word_make(gen, h + n)))
		return -ESTALE;
	notify(r);
	return (ssize_t)n;
}

/* Drops the frames before the latest flush position, unless done. Caller holds r->mu.
 * The tail moves before seen_gen does, so whoever sees seen_gen current sees the tail. */
static void apply_flush_locked(struct ring *r)
{
	if (atomic_load(&r->seen_gen) == r->flush_gen)
		return;
	uint64_t t = atomic_load(&r->tail);
	if (r->flush_pos > t)
		atomic_store(&r->tail, r->flush_pos);
	atomic_store(&r->seen_gen, r->flush_gen);
	pthread_cond_broadcast(&r->cv);
}

static void apply_flush(struct ring *r)
{
	if (word_gen(atomic_load(&r->head)) == atomic_load(&r->seen_gen))
		return;
	pthread_mutex_lock(&r->mu);
	apply_flush_locked(r);
	pthread_mutex_unlock(&r->mu);
}

/* The consumer marks itself reading (seq_cst) before it looks at the generation, and a
 * flush bumps the generation before it looks at the mark: either the flush sees the mark
 * and leaves the drop to the consumer (applied on the way out, or by its next read), or
 * the consumer sees the new generation and applies it, under the mutex, before it reads.
 * So the flush never frees slots the consumer is copying from, and a consumer that is not
 * reading (paused) has the flushed frames dropped, and their space freed, at once. */
size_t ring_read(struct ring *r, float *out, size_t n)
{
	atomic_store(&r->reading, 1);
	apply_flush(r);
	uint64_t t = atomic_load(&r->tail);
	uint64_t h = word_pos(atomic_load(&r->head));
	size_t avail = (size_t)(h - t);
	if (n > avail)
		n = avail;
	if (n > 0) {
		size_t ch = (size_t)r->channels;
		size_t at = (size_t)(t % r->cap);
		size_t first = n < r->cap - at ? n : r->cap - at;
		memcpy(out, r->buf + at * ch, first * ch * sizeof(float));
		memcpy(out + first * ch, r->buf, (n - first) * ch * sizeof(float));
		atomic_store(&r->tail, t + n);
	}
	atomic_store(&r->reading, 0);
	apply_flush(r);  /* a flush that came while reading left its drop to us */
	if (n > 0)
		notify(r);
	return n;
}

unsigned ring_flush(struct ring *r)
{
	pthread_mutex_lock(&r->mu);
	uint64_t w = atomic_load(&r->head), nw;
	do
		nw = word_make(word_gen(w) + 1, word_pos(w));
	while (!atomic_compare_exchange_weak(&r->head, &w, nw));
	r->flush_pos = word_pos(nw);
	r->flush_gen = word_gen(nw);
	/* Dropped now unless the consumer is reading (see ring_read): a paused consumer may
	 * not read for a long time, and until the space is free the producer could not
	 * decode the new position ahead (a prepared Connect target would start from nothing). */
	if (!atomic_load(&r->reading))
		apply_flush_locked(r);
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	return word_gen(nw);
}

void ring_wake(struct ring *r)
{
	pthread_mutex_lock(&r->mu);
	r->wake_seq++;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

void ring_abort(struct ring *r)
{
	pthread_mutex_lock(&r->mu);
	r->aborted = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static void deadline_after(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

enum wait_for { FOR_SPACE, FOR_DATA };

static int wait_until(struct ring *r, enum wait_for what, size_t n, unsigned gen, int timeout_ms)
{
	if (n > r->cap)
		return -EINVAL;
	struct timespec dl;
	if (timeout_ms >= 0)
		deadline_after(&dl, timeout_ms);
	int rc = 0;
	atomic_fetch_add(&r->waiters, 1);
	pthread_mutex_lock(&r->mu);
	unsigned wake0 = r->wake_seq;
	for (;;) {
		if (r->aborted) {
			rc = -ECANCELED;
			break;
		}
		if (r->wake_seq != wake0) {
			rc = -EINTR;
			break;
		}
		/* Tail first: it never passes the head, so the difference cannot wrap. */
		uint64_t t = atomic_load(&r->tail);
		uint64_t w = atomic_load(&r->head);
		if (what == FOR_SPACE) {
			if (word_gen(w) != (gen & GEN_MASK)) {
				rc = -ESTALE;
				break;
			}
			if (r->cap - (size_t)(word_pos(w) - t) >= n)
				break;
		} else {
			apply_flush_locked(r);
			t = atomic_load(&r->tail);
			if ((size_t)(word_pos(w) - t) >= n)
				break;
		}
		int e = timeout_ms >= 0 ? pthread_cond_timedwait(&r->cv, &r->mu, &dl) : pthread_cond_wait(&r->cv, &r->mu);
		if (e == ETIMEDOUT) {
			/* One last look: the condition may have become true as time ran out. */
			t = atomic_load(&r->tail);
			w = atomic_load(&r->head);
			bool ok = what == FOR_SPACE ? word_gen(w) == (gen & GEN_MASK) && r->cap - (size_t)(word_pos(w) - t) >= n
			                            : (size_t)(word_pos(w) - t) >= n;
			rc = ok ? 0 : -ETIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&r->mu);
	atomic_fetch_sub(&r->waiters, 1);
	return rc;
}

int ring_wait_writable(struct ring *r, size_t n, unsigned gen, int timeout_ms)
{
	return wait_until(r, FOR_SPACE, n, gen, timeout_ms);
}

int ring_wait_readable(struct ring *r, size_t n, int timeout_ms)
{
	return wait_until(r, FOR_DATA, n, 0, timeout_ms);
}

int ring_write_all(struct ring *r, const float *frames, size_t n, unsigned gen, int timeout_ms)
{
	size_t ch = (size_t)r->channels;
	while (n > 0) {
		ssize_t k = ring_write(r, frames, n, gen);
		if (k < 0)
			return (int)k;
		frames += (size_t)k * ch;
		n -= (size_t)k;
		if (n == 0)
			break;
		/* Wait for a useful amount of space, not a single frame, to avoid ping-pong. */
		size_t want = n < r->cap / 4 ? n : r->cap / 4;
		int rc = ring_wait_writable(r, want ? want : 1, gen, timeout_ms);
		if (rc < 0)
			return rc;
	}
	return 0;
}
