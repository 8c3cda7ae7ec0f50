/* transcode: encodes decoded source audio into one Ogg Vorbis rendition, cut into the
 * segments of common/segment.h.  Every call owns all its state, so worker threads may
 * transcode concurrently. */
#ifndef ENCORE_TRANSCODE_H
#define ENCORE_TRANSCODE_H
#include "pcm.h"
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

#endif
