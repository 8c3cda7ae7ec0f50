/* ring: single-producer single-consumer ring of interleaved float PCM frames between
 * the decoder thread (producer) and the audio output thread (consumer).
 *
 * The data path is lock-free: the write position and a flush generation share one
 * atomic 64-bit word (16-bit generation, 48-bit frame counter) and the read position
 * is a second atomic. The mutex/condvar is touched only to block (ring_wait_*) and,
 * when someone is blocked, to wake them.
 *
 * Flush protocol (seek, skip): any thread calls ring_flush(), which bumps the
 * generation and drops everything written so far: at once when the consumer is not
 * inside ring_read (so a paused consumer's space is free for the new generation right
 * away), else as that read ends. Every write carries the generation the producer is
 * producing for; a write whose generation is stale fails with -ESTALE and commits
 * nothing, atomically with respect to the flush, so audio decoded before the flush can
 * never land after it. A read that had already started when the flush happened may
 * still return pre-flush frames; every read that starts after ring_flush() returns only
 * post-flush frames. Typical use: the controller
 * calls g = ring_flush(r) and hands (seek position, g) to the decoder in one message;
 * the decoder writes with the g of the last message it acted on. */
#ifndef ENCORE_RING_H
#define ENCORE_RING_H
#include <stddef.h>
#include <sys/types.h>

struct ring;

/* New ring holding capacity_frames frames of `channels` floats; NULL if either is 0. */
struct ring *ring_new(size_t capacity_frames, int channels);
/* Frees r; no thread may be using it. NULL is a no-op. */
void ring_free(struct ring *r);

/* Floats per frame and frames held when full, as given to ring_new. */
int ring_channels(const struct ring *r);
size_t ring_capacity(const struct ring *r);
/* The generation writes must carry now. */
unsigned ring_generation(const struct ring *r);
/* Frames buffered (a snapshot; may include frames a pending flush will drop). */
size_t ring_readable(const struct ring *r);

/* Producer: copies up to n frames without blocking. Returns frames written (0 when
 * full), or -ESTALE if gen is not the ring's generation (nothing written). */
ssize_t ring_write(struct ring *r, const float *frames, size_t n, unsigned gen);
/* Producer: blocks until all n frames are written. 0, or -ESTALE (flushed: the rest
 * is dropped), -ECANCELED (aborted), -EINTR (ring_wake), -ETIMEDOUT (timeout_ms < 0
 * waits forever; the timeout applies to each wait for space). */
int ring_write_all(struct ring *r, const float *frames, size_t n, unsigned gen, int timeout_ms);
/* Producer: waits until n frames fit. 0, -EINVAL (n > capacity), -ESTALE, -ECANCELED, -EINTR, -ETIMEDOUT. */
int ring_wait_writable(struct ring *r, size_t n, unsigned gen, int timeout_ms);

/* Consumer: copies up to n frames without blocking, applying any pending flush first.
 * Returns frames read (0 when empty). */
size_t ring_read(struct ring *r, float *out, size_t n);
/* Consumer: waits until at least n frames are readable. 0, -EINVAL (n > capacity),
 * -ECANCELED, -EINTR, -ETIMEDOUT. */
int ring_wait_readable(struct ring *r, size_t n, int timeout_ms);

/* Any thread: drops everything written so far and starts a new generation, which it
 * returns. Wakes a producer blocked on the old generation (it gets -ESTALE). */
unsigned ring_flush(struct ring *r);
/* Any thread: makes the waits in progress return -EINTR (e.g. to pause). */
void ring_wake(struct ring *r);
/* Any thread: every current and future wait returns -ECANCELED (shutdown). Reads
 * and writes still work. */
void ring_abort(struct ring *r);

#endif
