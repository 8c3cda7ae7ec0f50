/* pcm: allocation only; readers and writers live with the formats they speak. */
#include "pcm.h"
#include "xmem.h"
#include <stdlib.h>

struct pcm *pcm_new(int rate, int channels, size_t frames)
{
	struct pcm *p = xmalloc(sizeof(*p));
	p->rate = rate;
	p->channels = channels;
	p->frames = frames;
	p->samples = xcalloc(frames * (size_t)channels, sizeof(float));
	return p;
}

void pcm_free(struct pcm *p)
{
	if (!p)
		return;
	free(p->samples);
	free(p);
}
