/* abr: see abr.h. The policy is documented with measured simulation results in
 * docs/ENGINE-NOTES.md. */
#include "abr.h"

const int abr_ladder_kbps[ABR_RUNGS] = { 24, 96, 160, 320 };

void abr_params_default(struct abr_params *p)
{
	*p = (struct abr_params){
		.segment_s = 4.0,
		.startup_kbps = 96,
		.up_factor = 1.5,
		.up_min_buffer_s = 8.0,
		.down_safety = 0.9,
		.reserve_s = 1.0,
		.target_base_s = 10.0,
		.target_min_s = 6.0,
		.target_max_s = 30.0,
	};
}

int abr_cap_kbps(enum abr_tier tier, enum abr_quality quality)
{
	int cap = tier == ABR_TIER_PREMIUM ? 320 : 160;
	int q;
	switch (quality) {
	case ABR_QUALITY_LOW: q = 24; break;
	case ABR_QUALITY_NORMAL: q = 96; break;
	case ABR_QUALITY_HIGH: q = 160; break;
	case ABR_QUALITY_VERY_HIGH: q = 320; break;
	default: q = cap; break;
	}
	return q < cap ? q : cap;
}

void abr_estimator_init(struct abr_estimator *e, int window)
{
	*e = (struct abr_estimator){ 0 };
	if (window < 1)
		window = 1;
	if (window > ABR_EST_MAX_WINDOW)
		window = ABR_EST_MAX_WINDOW;
	e->window = window;
}

void abr_estimator_add_sample(struct abr_estimator *e, double bytes, double seconds)
{
	if (!(bytes > 0) || !(seconds > 0))
		return;
	e->rate_bps[e->next] = bytes * 8.0 / seconds;
	e->next = (e->next + 1) % ABR_EST_MAX_WINDOW;
	if (e->count < ABR_EST_MAX_WINDOW)
		e->count++;
}

double abr_estimator_bps(const struct abr_estimator *e)
{
	if (e->count == 0)
		return 0;
	int n = e->count < e->window ? e->count : e->window;
	double inv = 0;
	for (int i = 1; i <= n; i++)
		inv += 1.0 / e->rate_bps[(e->next - i + ABR_EST_MAX_WINDOW) % ABR_EST_MAX_WINDOW];
	return n / inv;
}

double abr_estimator_min_bps(const struct abr_estimator *e)
{
	double m = 0;
	for (int i = 0; i < e->count; i++)
		if (i == 0 || e->rate_bps[i] < m)
			m = e->rate_bps[i];
	return m;
}

double abr_estimator_max_bps(const struct abr_estimator *e)
{
	double m = 0;
	for (int i = 0; i < e->count; i++)
		if (e->rate_bps[i] > m)
			m = e->rate_bps[i];
	return m;
}

/* Index of the highest rung <= kbps, or 0 (the lowest) if none is. */
static int rung_at_most(double kbps)
{
	int i = 0;
	while (i + 1 < ABR_RUNGS && abr_ladder_kbps[i + 1] <= kbps)
		i++;
	return i;
}

/* Expected seconds to fetch one segment of rung r at the estimated throughput. */
static double fetch_s(const struct abr_params *p, int r, double bps)
{
	return abr_ladder_kbps[r] * 1000.0 * p->segment_s / bps;
}

int abr_choose(const struct abr_params *p, const struct abr_input *in)
{
	int top = rung_at_most(abr_cap_kbps(in->tier, in->quality));
	double bps = in->throughput_bps;

	if (in->current_kbps <= 0) {
		/* Track start: without an estimate be conservative; with one (carried over from
		 * the previous track) start where an up switch would have taken us. */
		int r = bps > 0 ? rung_at_most(bps / 1000.0 / p->up_factor) : rung_at_most(p->startup_kbps);
		return abr_ladder_kbps[r < top ? r : top];
	}

	int cur = rung_at_most(in->current_kbps);
	if (cur > top)
		cur = top; /* the setting was lowered: obey at once */
	if (!(bps > 0))
		return abr_ladder_kbps[cur];

	int r = cur;
	if (bps < abr_ladder_kbps[cur] * 1000.0) {
		/* Losing ground every segment: drop straight to what the link sustains. */
		int d = rung_at_most(bps * p->down_safety / 1000.0);
		if (d < r)
			r = d;
	} else if (in->buffer_s >= p->up_min_buffer_s) {
		/* Hysteresis: the 1.5x margin to go up versus 1x to stay keeps a steady link at
		 * one rung even when the estimate wobbles. */
		int u = rung_at_most(bps / 1000.0 / p->up_factor);
		if (u > top)
			u = top;
		if (u > r)
			r = u;
	}
	/* Never start a fetch that would outlast the buffer if the link repeated its worst
	 * recent sample: an empty or low buffer, or a link with slow spells, pushes us
	 * down regardless of the average. */
	double worst = in->worst_bps > 0 && in->worst_bps < bps ? in->worst_bps : bps;
	while (r > 0 && fetch_s(p, r, worst) > in->buffer_s - p->reserve_s)
		r--;
	return abr_ladder_kbps[r];
}

double abr_buffer_target(const struct abr_params *p, double capacity_bps, double worst_bps, int bitrate_kbps)
{
	if (!(capacity_bps > 0) || bitrate_kbps <= 0)
		return p->target_base_s;
	/* ratio 4 (a segment fetches in a quarter of its duration) is "ordinary". */
	double ratio = capacity_bps / (bitrate_kbps * 1000.0);
	double t = p->target_base_s * ratio / 4.0;
	if (worst_bps > 0) {
		double survive = bitrate_kbps * 1000.0 * p->segment_s / worst_bps + p->reserve_s + p->segment_s;
		if (survive > t)
			t = survive;
	}
	if (t < p->target_min_s)
		t = p->target_min_s;
	if (t > p->target_max_s)
		t = p->target_max_s;
	return t;
}
