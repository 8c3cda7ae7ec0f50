/* decoder: turns the segments of a rendition (common/segment.h) back into PCM for the
 * player, always as interleaved float stereo at one fixed output rate, whichever rendition
 * a segment came from.  Each segment is decoded on its own (Vorbis restart + pre-roll), so
 * the player may feed segments in any order and swap renditions at any boundary; segment
 * k of a track always yields exactly decoder_segment_range(k) frames, bit-identical
 * whatever came before, except that the first DECODER_XFADE frames are crossfaded when
 * segment k-1 was just decoded from a different rendition. */
#ifndef ENCORE_DECODER_H
#define ENCORE_DECODER_H
#include <stddef.h>
#include <stdint.h>

#define DECODER_CHANNELS 2
/* Frames of raised-cosine crossfade applied at a rendition switch, from the old
 * rendition's continuation (decoded from its margin) into the new one, so the step between
 * two differently coded versions of the same audio never lands as a click. */
#define DECODER_XFADE 32

struct decoder;

/* out_rate: output sample rate, or 0 to adopt the source rate of the first init loaded.
 * NULL if out_rate is outside 8000..192000. */
struct decoder *decoder_new(int out_rate);
void decoder_free(struct decoder *d);

/* Loads the init part of a rendition (copied), replacing the current one; used at start
 * and on every bitrate switch. On error the previous init stays in force. Returns 0,
 * -EBADMSG (malformed or undecodable headers), -EPROTONOSUPPORT, or -ENOTSUP (the output
 * rate cannot be reached from this rendition's rate). */
int decoder_set_init(struct decoder *d, const uint8_t *buf, size_t len);

/* Output rate in Hz; 0 before the first init when created with out_rate 0. */
int decoder_rate(const struct decoder *d);
/* Whole track length and segment count at the output rate; 0 without an init. */
uint64_t decoder_total_frames(const struct decoder *d);
uint32_t decoder_segment_count(const struct decoder *d);
/* Output frames [*start, *start + *count) that segment index yields. Returns 0, or -ERANGE
 * past the end / -EINVAL without an init. */
int decoder_segment_range(const struct decoder *d, uint32_t index, uint64_t *start, size_t *count);

/* Decodes one segment of the current rendition into *out (malloc'd, caller frees;
 * *frames stereo frames). Returns 0, -EINVAL without an init, or -EBADMSG if the segment
 * is malformed, belongs to another rendition, or its audio does not decode as declared. */
int decoder_decode(struct decoder *d, const uint8_t *seg, size_t len, float **out, size_t *frames);

/* Most frames handed to one emit call. */
#define DECODER_EMIT_FRAMES 2048
/* Receives n stereo frames (valid only during the call). Nonzero stops the decode. */
typedef int (*decoder_emit_fn)(void *ud, const float *frames, size_t n);
/* The same decode, streamed: each piece of output goes to emit as soon as the packets
 * decoded so far determine it (the first after a packet or two), in order, adding up to
 * exactly what decoder_decode returns. Returns 0, the errors of decoder_decode (after
 * some pieces may have been emitted), or emit's nonzero value. */
int decoder_decode_stream(struct decoder *d, const uint8_t *seg, size_t len, decoder_emit_fn emit, void *ud);

#endif
