/* Unit tests for the SPSC PCM ring: ordering under concurrency, flush, wake/abort. */
#include "../tap.h"
#include "ring.h"
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

static uint32_t lcg(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return *s >> 8;
}

static void test_wraparound_and_partial_writes_keep_order(void)
{
	struct ring *r = ring_new(4, 2);
	float in[12], out[12];
	for (int i = 0; i < 12; i++)
		in[i] = (float)i;
	CHECK_INT(ring_write(r, in, 3, 0), 3);
	CHECK_INT(ring_read(r, out, 2), 2);
	CHECK(out[0] == 0 && out[3] == 3, "got %f %f", out[0], out[3]);
	CHECK_INT(ring_write(r, in + 6, 6, 0), 3); /* only 3 frames of space */
	CHECK_INT(ring_readable(r), 4);
	CHECK_INT(ring_write(r, in, 1, 0), 0);
	CHECK_INT(ring_read(r, out, 10), 4);
	float want[] = { 4, 5, 6, 7, 8, 9, 10, 11 };
	CHECK(memcmp(out, want, sizeof(want)) == 0, "frames out of order after wrap: %g %g %g %g", out[0], out[2], out[4], out[6]);
	CHECK_INT(ring_read(r, out, 1), 0);
	ring_free(r);
	CHECK(ring_new(0, 2) == NULL, "zero capacity rejected");
	CHECK(ring_new(8, 0) == NULL, "zero channels rejected");
}

struct stream_ctx {
	struct ring *r;
	size_t total;
	size_t errors;
	size_t received;
	int rc;
};

static void *stream_producer(void *arg)
{
	struct stream_ctx *c = arg;
	float buf[2 * 777];
	uint32_t s = 1;
	size_t i = 0;
	while (i < c->total) {
		size_t n = 1 + lcg(&s) % 777;
		if (n > c->total - i)
			n = c->total - i;
		for (size_t k = 0; k < n; k++) {
			buf[2 * k] = (float)(i + k);
			buf[2 * k + 1] = -(float)(i + k);
		}
		int rc = ring_write_all(c->r, buf, n, 0, -1);
		if (rc < 0) {
			c->rc = rc;
			return NULL;
		}
		i += n;
	}
	return NULL;
}

static void *stream_consumer(void *arg)
{
	struct stream_ctx *c = arg;
	float buf[2 * 1000];
	uint32_t s = 2;
	size_t next = 0;
	while (next < c->total) {
		size_t want = 1 + lcg(&s) % 1000;
		size_t need = want / 3 + 1;
		if (need > c->total - next)
			need = c->total - next;
		int rc = ring_wait_readable(c->r, need, -1);
		if (rc < 0) {
			c->rc = rc;
			return NULL;
		}
		size_t got = ring_read(c->r, buf, want);
		for (size_t k = 0; k < got; k++, next++)
			if (buf[2 * k] != (float)next || buf[2 * k + 1] != -(float)next)
				if (c->errors++ < 5)
					printf("#   frame %zu: got (%g, %g)\n", next, buf[2 * k], buf[2 * k + 1]);
	}
	c->received = next;
	return NULL;
}

static void test_two_threads_move_millions_of_frames_without_loss_or_reorder(void)
{
	/* Capacity not a power of two and smaller than the chunk sizes, so wraps, partial
	 * writes and blocking on both sides all happen constantly. Float holds integers
	 * exactly below 2^24. */
	struct stream_ctx c = { .r = ring_new(1000, 2), .total = 3000000 };
	pthread_t p, q;
	pthread_create(&p, NULL, stream_producer, &c);
	pthread_create(&q, NULL, stream_consumer, &c);
	pthread_join(p, NULL);
	pthread_join(q, NULL);
	CHECK_INT(c.rc, 0);
	CHECK_INT(c.errors, 0);
	CHECK_INT(c.received, c.total);
	CHECK_INT(ring_readable(c.r), 0);
	ring_free(c.r);
}

static void test_flush_drops_buffered_audio_and_rejects_stale_writes(void)
{
	struct ring *r = ring_new(16, 1);
	float in[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, out[16];
	unsigned g0 = ring_generation(r);
	CHECK_INT(ring_write(r, in, 5, g0), 5);
	unsigned g1 = ring_flush(r);
	CHECK(g1 != g0, "flush must change the generation");
	CHECK_INT(ring_generation(r), g1);
	CHECK_INT(ring_write(r, in, 3, g0), -ESTALE);
	CHECK_INT(ring_write_all(r, in, 3, g0, 0), -ESTALE);
	CHECK_INT(ring_wait_writable(r, 1, g0, 0), -ESTALE);
	CHECK_INT(ring_write(r, in + 5, 3, g1), 3);
	CHECK_INT(ring_read(r, out, 16), 3);
	CHECK(out[0] == 6 && out[1] == 7 && out[2] == 8, "expected only post-flush frames 6 7 8, got %g %g %g", out[0], out[1], out[2]);
	/* A flush with nothing buffered is harmless; two in a row drop only older frames. */
	ring_flush(r);
	unsigned g3 = ring_flush(r);
	CHECK_INT(ring_write(r, in, 2, g3), 2);
	CHECK_INT(ring_wait_readable(r, 2, 0), 0);
	CHECK_INT(ring_read(r, out, 16), 2);
	CHECK(out[0] == 1 && out[1] == 2, "got %g %g", out[0], out[1]);
	/* After a flush the whole capacity is available again. */
	CHECK_INT(ring_write(r, in, 8, g3), 8);
	CHECK_INT(ring_write(r, in, 8, g3), 8);
	unsigned g4 = ring_flush(r);
	CHECK_INT(ring_read(r, out, 16), 0);
	CHECK_INT(ring_write(r, in, 8, g4), 8);
	CHECK_INT(ring_write(r, in, 8, g4), 8);
	ring_free(r);
}

static void test_flush_frees_a_full_ring_for_the_new_generation_without_a_read(void)
{
	/* A paused output does not read. A seek (or a Connect prepare) while it is paused
	 * must still let the decoder fill the ring with the new position's audio, so the
	 * resume plays at once instead of waiting for the first decode. */
	struct ring *r = ring_new(8, 1);
	float old[8] = { 1, 1, 1, 1, 1, 1, 1, 1 }, neu[8] = { 2, 3, 4, 5, 6, 7, 8, 9 }, out[8];
	CHECK_INT(ring_write(r, old, 8, ring_generation(r)), 8);
	CHECK_INT(ring_write(r, old, 1, ring_generation(r)), 0);
	unsigned g = ring_flush(r);
	CHECK_INT(ring_readable(r), 0);
	CHECK_INT(ring_wait_writable(r, 8, g, 0), 0);
	CHECK_INT(ring_write(r, neu, 8, g), 8);
	CHECK_INT(ring_read(r, out, 8), 8);
	CHECK(out[0] == 2 && out[7] == 9, "expected the new generation's 2..9, got %g..%g", out[0], out[7]);
	ring_free(r);
}

struct flush_ctx {
	struct ring *r;
	atomic_bool stop;
	pthread_mutex_t mu; /* consumed + cv: lets the controller sleep instead of spinning */
	pthread_cond_t cv;
	size_t consumed;
	size_t errors, gens_seen, frames;
	int rc;
};

static void *flush_producer(void *arg)
{
	struct flush_ctx *c = arg;
	float buf[2 * 300];
	uint32_t s = 3;
	unsigned g = ring_generation(c->r);
	size_t idx = 0;
	while (!atomic_load(&c->stop)) {
		size_t n = 1 + lcg(&s) % 300;
		for (size_t k = 0; k < n; k++) {
			buf[2 * k] = (float)g;
			buf[2 * k + 1] = (float)(idx + k);
		}
		int rc = ring_write_all(c->r, buf, n, g, -1);
		if (rc == -ESTALE) {
			g = ring_generation(c->r);
			idx = 0;
			continue;
		}
		if (rc < 0)
			break;
		idx += n;
		/* Bounded work per generation keeps the run short however threads are scheduled. */
		while (idx >= 1000 && ring_generation(c->r) == g && !atomic_load(&c->stop))
			sched_yield();
	}
	return NULL;
}

static void *flush_consumer(void *arg)
{
	struct flush_ctx *c = arg;
	float buf[2 * 256];
	long last_gen = -1;
	size_t last_idx = 0;
	for (;;) {
		int rc = ring_wait_readable(c->r, 1, -1);
		size_t got = ring_read(c->r, buf, 256);
		for (size_t k = 0; k < got; k++) {
			long gen = (long)buf[2 * k];
			size_t idx = (size_t)buf[2 * k + 1];
			if (gen < last_gen || (gen > last_gen && idx != 0) || (gen == last_gen && idx != last_idx + 1)) {
				if (c->errors++ < 5)
					printf("#   after (gen %ld, idx %zu) got (gen %ld, idx %zu)\n", last_gen, last_idx, gen, idx);
			}
			if (gen != last_gen)
				c->gens_seen++;
			last_gen = gen;
			last_idx = idx;
		}
		c->frames += got;
		pthread_mutex_lock(&c->mu);
		c->consumed += got;
		pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
		if (rc == -ECANCELED && got == 0)
			break;
	}
	return NULL;
}

static void test_concurrent_flushes_never_leak_stale_or_reorder_frames(void)
{
	/* The producer tags each frame (generation, index within generation) and restarts
	 * at index 0 whenever its write comes back -ESTALE. Whatever the interleaving, the
	 * consumer must see generations only increase and each one start at index 0 with
	 * no gaps: anything else is a stale frame leaking past a flush or a lost frame. */
	struct flush_ctx c = { .r = ring_new(512, 2), .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
	pthread_t p, q;
	pthread_create(&p, NULL, flush_producer, &c);
	pthread_create(&q, NULL, flush_consumer, &c);
	/* Let some audio through between flushes, without fixed sleeps. The mark is taken
	 * before each flush: the producer then writes 1000 frames that no flush drops, so
	 * the consumer always gets past it. */
	size_t mark = 200;
	for (int i = 0; i < 2000; i++) {
		pthread_mutex_lock(&c.mu);
		while (c.consumed < mark)
			pthread_cond_wait(&c.cv, &c.mu);
		mark = c.consumed + 200;
		pthread_mutex_unlock(&c.mu);
		ring_flush(c.r);
	}
	atomic_store(&c.stop, true);
	ring_abort(c.r);
	pthread_join(p, NULL);
	pthread_join(q, NULL);
	CHECK_INT(c.errors, 0);
	CHECK(c.gens_seen > 100, "expected many generations observed, got %zu", c.gens_seen);
	printf("# %zu frames, %zu generations observed across 2000 flushes\n", c.frames, c.gens_seen);
	ring_free(c.r);
}

struct waiter {
	struct ring *r;
	int producer;
	unsigned gen;
	atomic_int rc;
	atomic_bool done;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	int rc = w->producer ? ring_wait_writable(w->r, 1, w->gen, -1) : ring_wait_readable(w->r, 1, -1);
	atomic_store(&w->rc, rc);
	atomic_store(&w->done, true);
	return NULL;
}

static void test_wake_abort_and_flush_release_blocked_waiters(void)
{
	struct ring *r = ring_new(4, 1);
	struct waiter w = { .r = r };
	pthread_t t;
	pthread_create(&t, NULL, waiter_main, &w);
	/* A wake only affects waits in progress, so repeat it until the waiter returns. */
	while (!atomic_load(&w.done)) {
		ring_wake(r);
		sched_yield();
	}
	pthread_join(t, NULL);
	CHECK_INT(atomic_load(&w.rc), -EINTR);

	/* Producer blocked on a full ring is released by a flush with -ESTALE. */
	float f[4] = { 0 };
	CHECK_INT(ring_write(r, f, 4, ring_generation(r)), 4);
	struct waiter wp = { .r = r, .producer = 1, .gen = ring_generation(r) };
	pthread_create(&t, NULL, waiter_main, &wp);
	ring_flush(r);
	pthread_join(t, NULL);
	CHECK_INT(atomic_load(&wp.rc), -ESTALE);

	/* Abort releases a blocked consumer and every later wait. */
	struct waiter w2 = { .r = r };
	float out[4];
	ring_read(r, out, 4);
	pthread_create(&t, NULL, waiter_main, &w2);
	ring_abort(r);
	pthread_join(t, NULL);
	CHECK_INT(atomic_load(&w2.rc), -ECANCELED);
	CHECK_INT(ring_wait_readable(r, 1, -1), -ECANCELED);
	CHECK_INT(ring_wait_writable(r, 1, ring_generation(r), -1), -ECANCELED);
	ring_free(r);
}

static void test_waits_time_out_and_reject_impossible_sizes(void)
{
	struct ring *r = ring_new(4, 1);
	CHECK_INT(ring_wait_readable(r, 1, 5), -ETIMEDOUT);
	CHECK_INT(ring_wait_readable(r, 5, -1), -EINVAL);
	CHECK_INT(ring_wait_writable(r, 5, 0, -1), -EINVAL);
	CHECK_INT(ring_wait_writable(r, 4, 0, 0), 0);
	float f[4] = { 0 };
	ring_write(r, f, 4, 0);
	CHECK_INT(ring_wait_writable(r, 1, 0, 5), -ETIMEDOUT);
	CHECK_INT(ring_write_all(r, f, 1, 0, 5), -ETIMEDOUT);
	CHECK_INT(ring_wait_readable(r, 4, 0), 0);
	ring_free(r);
}

int main(void)
{
	RUN(test_wraparound_and_partial_writes_keep_order);
	RUN(test_two_threads_move_millions_of_frames_without_loss_or_reorder);
	RUN(test_flush_drops_buffered_audio_and_rejects_stale_writes);
	RUN(test_flush_frees_a_full_ring_for_the_new_generation_without_a_read);
	RUN(test_concurrent_flushes_never_leak_stale_or_reorder_frames);
	RUN(test_wake_abort_and_flush_release_blocked_waiters);
	RUN(test_waits_time_out_and_reject_impossible_sizes);
	return TAP_DONE();
}
