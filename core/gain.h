/* gain: per-track loudness normalisation and user volume applied to float PCM, with a
 * soft limiter so that positive normalisation gain never clips.
 *
 * Signal path per frame: x * 10^(norm_db/20) * volume_factor, then the limiter. The
 * limiter is lookahead-free: a gain-reduction envelope with instant attack (so the
 * output never exceeds the -1 dBFS ceiling, i.e. 0.891) and a smooth exponential
 * release (~200 ms). It is transparent below the ceiling: a signal that never exceeds
 * it is multiplied by exactly the requested gain. Volume changes ramp over 10 ms to
 * avoid zipper clicks, except before the first processed frame. */
#ifndef ENCORE_GAIN_H
#define ENCORE_GAIN_H
#include <stdbool.h>
#include <stddef.h>

struct gain;

/* New processor for interleaved float at rate/channels, volume 100, normalisation off.
 * NULL if rate or channels is not positive. */
struct gain *gain_new(int rate, int channels);
/* Frees g; NULL is a no-op. */
void gain_free(struct gain *g);

/* Enables normalisation with the track's gain in dB (e.g. from its loudness metadata),
 * or disables it (gain_db ignored). Takes effect on the next gain_process call. */
void gain_set_normalization(struct gain *g, bool enabled, double gain_db);
/* Sets volume 0..100 (clamped); 0 is exact silence. */
void gain_set_volume(struct gain *g, int volume);
/* Resets the limiter and any volume ramp, e.g. after a flush on seek. */
void gain_reset(struct gain *g);
/* Processes n frames in place. */
void gain_process(struct gain *g, float *samples, size_t frames);

/* Perceptual volume curve: amplitude factor for volume 0..100, cubic so that equal
 * steps sound roughly equal (50 -> 0.125, about -18 dB). Pure. */
double gain_volume_factor(int volume);
/* The limiter ceiling as a linear amplitude (-1 dBFS). */
double gain_ceiling(void);

#endif
