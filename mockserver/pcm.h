/* pcm: decoded audio in memory, the currency between the ingest reader, the analysers
 * (loudness, audio features), the synthesizer and the transcoder. */
#ifndef ENCORE_PCM_H
#define ENCORE_PCM_H
#include <stddef.h>

struct pcm {
	int rate;        /* frames per second, e.g. 44100 or 48000 */
	int channels;    /* 1 or 2 */
	size_t frames;   /* samples per channel */
	float *samples;  /* interleaved, nominal range [-1, 1]; owned */
};

/* Allocates a zeroed buffer of frames x channels. Never NULL (aborts on OOM). Free with pcm_free. */
struct pcm *pcm_new(int rate, int channels, size_t frames);
void pcm_free(struct pcm *p);

#endif
