/* Shared by the DSP tests: renders synth tracks of known parameters and scores the analyser. */
#ifndef ENCORE_TEST_DSP_CORPUS_H
#define ENCORE_TEST_DSP_CORPUS_H
#include "audio_features.h"
#include "synth.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>

/* Short tracks at 22.05 kHz keep the suite fast; 20 s still holds intro, verse and chorus. */
#define CORPUS_RATE 22050
#define CORPUS_SECONDS 20.0

static inline struct features corpus_analyse(const struct synth_params *p)
{
	struct features f = {0};
	struct pcm *pc = synth_render(p);
	if (pc && features_compute(pc, &f) != 0)
		f.key = -2;
	pcm_free(pc);
	return f;
}

static inline void corpus_params(struct synth_params *p, enum synth_genre g, uint64_t seed)
{
	synth_params_preset(p, g, seed);
	p->rate = CORPUS_RATE;
	p->duration = CORPUS_SECONDS;
}

/* Spearman rank correlation (ties get their mean rank). */
static inline double corpus_spearman(const double *x, const double *y, int n)
{
	double rx[64], ry[64];
	const double *src[2] = {x, y};
	double *dst[2] = {rx, ry};
	for (int s = 0; s < 2; s++) {
		for (int i = 0; i < n; i++) {
			double less = 0, equal = 0;
			for (int j = 0; j < n; j++) {
				if (src[s][j] < src[s][i])
					less++;
				else if (src[s][j] == src[s][i])
					equal++;
			}
			dst[s][i] = less + (equal + 1) / 2.0;
		}
	}
	double mx = (n + 1) / 2.0, sxy = 0, sxx = 0, syy = 0;
	for (int i = 0; i < n; i++) {
		sxy += (rx[i] - mx) * (ry[i] - mx);
		sxx += (rx[i] - mx) * (rx[i] - mx);
		syy += (ry[i] - mx) * (ry[i] - mx);
	}
	return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : 0.0;
}

#endif
