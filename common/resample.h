/* resample: band-limited rational-ratio resampling (Kaiser-windowed sinc, polyphase).
 *
 * Deterministic by absolute sample position rather than stateful: output frame j is the
 * input signal evaluated at time j * in_rate / out_rate (in input frames), from the input
 * frames within a fixed kernel radius.  So any output range can be computed from any input
 * window that covers it, and the result does not depend on how a track was cut into
 * segments: the server down-samples a whole track, the client up-samples one segment at a
 * time, and both agree with a whole-track conversion. */
#ifndef ENCORE_RESAMPLE_H
#define ENCORE_RESAMPLE_H
#include <stddef.h>
#include <stdint.h>

struct resample;

/* A converter for in_rate -> out_rate (8000..192000 each, reduced ratio numerator <= 4096)
 * and 1..8 interleaved channels. NULL if the ratio or channel count is unsupported. */
struct resample *resample_new(int in_rate, int out_rate, int channels);
void resample_free(struct resample *r);

/* Input frames needed to compute output frames [out_start, out_start + out_count):
 * [*in_start, *in_start + *in_count). in_start may be negative (before the track). */
void resample_input_span(const struct resample *r, int64_t out_start, size_t out_count,
			 int64_t *in_start, size_t *in_count);

/* Number of output frames for in_frames input frames: ceil(in_frames * out / in). */
uint64_t resample_output_frames(const struct resample *r, uint64_t in_frames);

/* Computes output frames [out_start, out_start + out_count) into out (interleaved).
 * in holds input frames [in_start, in_start + in_frames); input frames outside that window
 * count as silence, which is exact at the ends of a track and the caller's business
 * elsewhere (see resample_input_span). Never fails. */
void resample_run(const struct resample *r, const float *in, int64_t in_start, size_t in_frames,
		  float *out, int64_t out_start, size_t out_count);

#endif
