/* transcode: encodes decoded source audio into one Ogg Vorbis rendition, cut into the
 * segments of common/segment.h.  Every call owns all its state, so worker threads may
 * transcode concurrently. */
#ifndef ENCORE_TRANSCODE_H
#define ENCORE_TRANSCODE_H
#include "pcm.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The bitrate ladder, kbps. */
#define TRANSCODE_NRUNGS 4
extern const int transcode_rungs[TRANSCODE_NRUNGS];

struct transcode_output {
	int rate, channels, bitrate;   /* rendition format actually encoded (bitrate in bps) */
	uint8_t *init;                 /* serialised init part, owned */
	size_t init_len;
	uint32_t nsegments;
	uint8_t **segments;            /* nsegments serialised segments, each owned */
	size_t *segment_lens;
};

/* Rendition format for a source and a ladder rung: the 24 kbps rung is mono at half the
 * source rate (libvorbis cannot go below 45 kbps at 44.1 kHz stereo); a mono source keeps
 * one channel and caps at the 240 kbps libvorbis allows for mono. Returns 0 or -EINVAL
 * for a rate/channel count/kbps outside what ingest accepts. */
int transcode_format(int source_rate, int source_channels, int kbps, int *rate, int *channels, int *bitrate);

/* Encodes src at kbps (one of transcode_rungs) into *out (free with transcode_output_free).
 * Returns 0, or -EINVAL (bad input) / -EIO (encoder failure) with a message in err. */
int transcode_rendition(const struct pcm *src, int kbps, struct transcode_output **out, char *err, size_t errlen);
void transcode_output_free(struct transcode_output *o);

/* The same encoding, segment by segment: the Vorbis encoder state runs across the whole
 * track, and segment k is cut as soon as the packets it needs exist (about SEGMENT_SECONDS
 * of input past its start), so on-demand transcoding can publish segment 0 long before
 * the track is encoded. The segments are byte-identical to transcode_rendition's. */
struct transcode_stream;

struct transcode_stream_info {
	int rate, channels, bitrate;   /* rendition format (bitrate in bps) */
	const uint8_t *init;           /* init part, owned by the stream, known from the start */
	size_t init_len;
	uint32_t nsegments;
	uint64_t total_samples;        /* rendition samples */
	uint64_t fed;                  /* rendition samples handed to the encoder so far */
};

/* Starts a rendition of src (which must outlive the stream) at kbps. NULL with err on bad
 * input or an encoder that refuses the format. */
struct transcode_stream *transcode_stream_new(const struct pcm *src, int kbps, char *err, size_t errlen);
void transcode_stream_info(const struct transcode_stream *ts, struct transcode_stream_info *out);
/* Encodes until the next segment is complete: 1 with *seg (caller frees), *len and *index
 * (0, 1, 2, ... in order), 0 once every segment has been returned, -EIO with err. */
int transcode_stream_next(struct transcode_stream *ts, uint8_t **seg, size_t *len, uint32_t *index, char *err, size_t errlen);
void transcode_stream_free(struct transcode_stream *ts);

#endif
