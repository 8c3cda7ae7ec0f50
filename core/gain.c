/* gain: see gain.h. */
#include "gain.h"
#include "xmem.h"
#include <math.h>
#include <stdlib.h>

#define CEILING_DB (-1.0)
#define RELEASE_S 0.2
#define RAMP_S 0.010

struct gain {
	int rate, channels;
	bool norm_on;
	double norm_db;
	double vol;        /* volume factor currently applied */
	double vol_target; /* where the ramp is heading */
	double vol_step;   /* per-frame ramp increment; 0 when not ramping */
	bool started;      /* first frame processed: later volume changes ramp */
	double env;        /* limiter gain reduction, 1 = none */
	double release;    /* per-frame release coefficient */
	double ceiling;
};

double gain_volume_factor(int volume)
{
	if (volume <= 0)
		return 0;
	if (volume >= 100)
		return 1;
	double v = volume / 100.0;
	return v * v * v;
}

double gain_ceiling(void)
{
	return pow(10.0, CEILING_DB / 20.0);
}

struct gain *gain_new(int rate, int channels)
{
	if (rate <= 0 || channels <= 0)
		return NULL;
	struct gain *g = xcalloc(1, sizeof(*g));
	g->rate = rate;
	g->channels = channels;
	g->vol = g->vol_target = 1.0;
	g->env = 1.0;
	/* env moves 1 - 1/e of the way back to 1 in RELEASE_S. */
	g->release = 1.0 - exp(-1.0 / (RELEASE_S * rate));
	g->ceiling = gain_ceiling();
	return g;
}

void gain_free(struct gain *g)
{
	free(g);
}

void gain_set_normalization(struct gain *g, bool enabled, double gain_db)
{
	g->norm_on = enabled;
	g->norm_db = gain_db;
}

void gain_set_volume(struct gain *g, int volume)
{
	g->vol_target = gain_volume_factor(volume);
	if (!g->started) {
		g->vol = g->vol_target;
		g->vol_step = 0;
		return;
	}
	g->vol_step = (g->vol_target - g->vol) / (RAMP_S * g->rate);
}

void gain_reset(struct gain *g)
{
	g->env = 1.0;
	g->vol = g->vol_target;
	g->vol_step = 0;
}

void gain_process(struct gain *g, float *samples, size_t frames)
{
	double norm = g->norm_on ? pow(10.0, g->norm_db / 20.0) : 1.0;
	size_t ch = (size_t)g->channels;
	if (frames)
		g->started = true;
	for (size_t f = 0; f < frames; f++) {
		if (g->vol_step != 0) {
			g->vol += g->vol_step;
			if ((g->vol_step > 0 && g->vol >= g->vol_target) || (g->vol_step < 0 && g->vol <= g->vol_target)) {
				g->vol = g->vol_target;
				g->vol_step = 0;
			}
		}
		double k = norm * g->vol;
		float *x = samples + f * ch;
		double peak = 0;
		for (size_t c = 0; c < ch; c++) {
			double a = fabs(x[c] * k);
			if (a > peak)
				peak = a;
		}
		/* Release towards 1, but never above what this frame needs: instant attack. The
		 * limiter guards the normalisation gain; with normalisation off the path is
		 * transparent, so a listener who turns it off hears the master untouched. */
		double env = g->env + (1.0 - g->env) * g->release;
		if (g->norm_on && peak * env > g->ceiling)
			env = g->ceiling / peak;
		g->env = env;
		double total = k * env;
		for (size_t c = 0; c < ch; c++)
			x[c] = (float)(x[c] * total);
	}
}
