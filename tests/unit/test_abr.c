/* Unit tests for the ABR policy, mostly through a small discrete-time simulator:
 * 4 s segments, segment size = bitrate * 4 s / 8, download time = size over the
 * bandwidth trace (integrated exactly across phase changes), playback drains the
 * buffer in real time, the downloader idles while the buffer is above the target. */
#include "../tap.h"
#include "abr.h"
#include <math.h>
#include <stdint.h>

struct phase {
	double dur_s;
	double bps;
};

struct trace {
	const struct phase *ph;
	int n;
	int loop; /* repeat the phases; otherwise the last one lasts forever */
	double jitter; /* +-fraction applied per second from a fixed hash, 0 for none */
	double offset; /* trace time at simulation time 0 */
};

/* Bandwidth at time t and the time it next changes. */
static double bw_at(const struct trace *tr, double t, double *until)
{
	double period = 0;
	for (int i = 0; i < tr->n; i++)
		period += tr->ph[i].dur_s;
	double base = 0, local = t;
	if (tr->loop) {
		double k = floor(t / period);
		base = k * period;
		local = t - base;
	}
	double acc = 0, bps = tr->ph[tr->n - 1].bps;
	*until = INFINITY;
	for (int i = 0; i < tr->n; i++) {
		if (local < acc + tr->ph[i].dur_s) {
			bps = tr->ph[i].bps;
			*until = base + acc + tr->ph[i].dur_s;
			break;
		}
		acc += tr->ph[i].dur_s;
	}
	if (tr->jitter > 0) {
		/* Deterministic per-second wobble: hash of the second index. */
		uint64_t s = (uint64_t)floor(t) * 6364136223846793005ULL + 1442695040888963407ULL;
		s ^= s >> 33;
		s *= 0xff51afd7ed558ccdULL;
		s ^= s >> 33;
		double u = (double)(s >> 11) / 9007199254740992.0; /* [0,1) */
		bps *= 1.0 + tr->jitter * (2 * u - 1);
		double next_sec = floor(t) + 1;
		if (next_sec < *until)
			*until = next_sec;
	}
	return bps;
}

/* Seconds to move `bits` starting at t. */
static double download(const struct trace *tr, double t, double bits)
{
	t += tr->offset;
	double t0 = t;
	for (;;) {
		double until;
		double bps = bw_at(tr, t, &until);
		double need = bits / bps;
		if (t + need <= until)
			return t + need - t0;
		bits -= bps * (until - t);
		t = until;
	}
}

#define MAX_SEGS 4096

struct sim {
	int segs;
	int kbps[MAX_SEGS];
	double start_t[MAX_SEGS]; /* when the segment's fetch began (decision time) */
	int underruns;
	double stall_s;
	int switches;
	int max_kbps;
	double startup_s;
};

static void simulate(const struct trace *tr, enum abr_tier tier, enum abr_quality q, double duration_s, struct sim *out)
{
	struct abr_params p;
	abr_params_default(&p);
	struct abr_estimator est;
	abr_estimator_init(&est, 5);
	*out = (struct sim){ 0 };
	double t = 0, buffer = 0;
	int playing = 0, cur = 0;
	while (t < duration_s && out->segs < MAX_SEGS) {
		double bps = abr_estimator_bps(&est);
		double target = abr_buffer_target(&p, abr_estimator_max_bps(&est), abr_estimator_min_bps(&est), cur ? cur : p.startup_kbps);
		if (playing && buffer > target) {
			t += buffer - target;
			buffer = target;
		}
		struct abr_input in = { .tier = tier, .quality = q, .throughput_bps = bps, .worst_bps = abr_estimator_min_bps(&est), .buffer_s = buffer, .current_kbps = cur };
		int k = abr_choose(&p, &in);
		if (cur && k != cur)
			out->switches++;
		if (k > out->max_kbps)
			out->max_kbps = k;
		out->kbps[out->segs] = k;
		out->start_t[out->segs] = t;
		out->segs++;
		double bytes = k * 1000.0 * p.segment_s / 8.0;
		double dt = download(tr, t, bytes * 8.0);
		if (playing) {
			buffer -= dt;
			if (buffer < 0) {
				out->underruns++;
				out->stall_s += -buffer;
				buffer = 0;
				playing = 0;
			}
		}
		t += dt;
		buffer += p.segment_s;
		abr_estimator_add_sample(&est, bytes, dt);
		cur = k;
		if (!playing && buffer >= p.segment_s) {
			if (out->startup_s == 0)
				out->startup_s = t;
			playing = 1;
		}
	}
}

/* Time of the first segment at `kbps` fetched at or after `from`, or -1. */
static double first_at(const struct sim *s, int kbps, double from)
{
	for (int i = 0; i < s->segs; i++)
		if (s->start_t[i] >= from && s->kbps[i] == kbps)
			return s->start_t[i];
	return -1;
}

/* Time after which every segment is at `kbps`, or -1 if the last one is not. */
static double settled_at(const struct sim *s, int kbps)
{
	if (s->segs == 0 || s->kbps[s->segs - 1] != kbps)
		return -1;
	int i = s->segs - 1;
	while (i > 0 && s->kbps[i - 1] == kbps)
		i--;
	return s->start_t[i];
}

static void test_constant_60kbps_settles_at_24_without_underrun(void)
{
	static const struct phase ph[] = { { 1e9, 60e3 } };
	struct trace tr = { ph, 1, 0, 0, 0 };
	struct sim s;
	simulate(&tr, ABR_TIER_PREMIUM, ABR_QUALITY_AUTO, 300, &s);
	double settle = settled_at(&s, 24);
	CHECK(settle >= 0 && settle <= 20, "expected settled at 24 kbps within 20 s, got %.1f s (last %d kbps)", settle, s.kbps[s.segs - 1]);
	CHECK_INT(s.underruns, 0);
	printf("# 60 kbps: startup %.2f s, settled at 24 kbps from t=%.1f s, %d switches, %d underruns\n",
	       s.startup_s, settle, s.switches, s.underruns);
}

static void test_climbs_back_within_30s_after_bandwidth_returns(void)
{
	static const struct phase ph[] = { { 120, 60e3 }, { 1e9, 2e6 } };
	struct trace tr = { ph, 2, 0, 0, 0 };
	struct sim s;
	simulate(&tr, ABR_TIER_PREMIUM, ABR_QUALITY_AUTO, 400, &s);
	double top = first_at(&s, 320, 120);
	CHECK(top >= 0 && top - 120 <= 30, "expected 320 kbps within 30 s of t=120, got first at %.1f", top);
	CHECK(settled_at(&s, 320) >= 0, "expected to stay at 320, last %d", s.kbps[s.segs - 1]);
	CHECK_INT(s.underruns, 0);
	printf("# 60k->2M at t=120: first 320 kbps segment at +%.1f s, %d underruns\n", top - 120, s.underruns);
}

static void test_swinging_link_has_no_underrun(void)
{
	/* 10 s at 40 kbps, 10 s at 2 Mbps, entered at every whole-second phase offset. */
	static const struct phase ph[] = { { 10, 40e3 }, { 10, 2e6 } };
	int total_underruns = 0, worst_switches = 0;
	double min_mean = 1e9;
	for (int off = 0; off < 20; off++) {
		struct trace tr = { ph, 2, 1, 0, off };
		struct sim s;
		simulate(&tr, ABR_TIER_PREMIUM, ABR_QUALITY_AUTO, 1200, &s);
		CHECK(s.underruns == 0, "offset %d s: expected no underrun, got %d (%.1f s stalled)", off, s.underruns, s.stall_s);
		long sum = 0;
		for (int i = 0; i < s.segs; i++)
			sum += s.kbps[i];
		total_underruns += s.underruns;
		if (s.switches > worst_switches)
			worst_switches = s.switches;
		if ((double)sum / s.segs < min_mean)
			min_mean = (double)sum / s.segs;
	}
	printf("# swing 40k/2M period 20 s, 20 offsets x 1200 s: %d underruns, lowest mean bitrate %.0f kbps, most switches %d\n",
	       total_underruns, min_mean, worst_switches);
}

static void test_never_exceeds_setting_or_tier_cap(void)
{
	static const struct phase ph[] = { { 1e9, 10e6 } };
	struct trace tr = { ph, 1, 0, 0, 0 };
	struct {
		enum abr_tier tier;
		enum abr_quality q;
		int want_max;
	} cases[] = {
		{ ABR_TIER_FREE, ABR_QUALITY_AUTO, 160 },
		{ ABR_TIER_FREE, ABR_QUALITY_VERY_HIGH, 160 },
		{ ABR_TIER_PREMIUM, ABR_QUALITY_AUTO, 320 },
		{ ABR_TIER_PREMIUM, ABR_QUALITY_HIGH, 160 },
		{ ABR_TIER_PREMIUM, ABR_QUALITY_NORMAL, 96 },
		{ ABR_TIER_PREMIUM, ABR_QUALITY_LOW, 24 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sim s;
		simulate(&tr, cases[i].tier, cases[i].q, 200, &s);
		CHECK(s.max_kbps == cases[i].want_max, "case %zu: expected max %d kbps, got %d", i, cases[i].want_max, s.max_kbps);
		CHECK(s.kbps[s.segs - 1] == cases[i].want_max, "case %zu: expected to end at %d, got %d", i, cases[i].want_max, s.kbps[s.segs - 1]);
	}
}

static void test_steady_link_does_not_oscillate(void)
{
	/* 400 kbps +-20% per second: 320 needs an estimate >= 480 to enter and >= 320 to stay,
	 * so at most the start-up climb happens. */
	static const struct phase ph[] = { { 1e9, 400e3 } };
	struct trace tr = { ph, 1, 0, 0.2, 0 };
	struct sim s;
	simulate(&tr, ABR_TIER_PREMIUM, ABR_QUALITY_AUTO, 900, &s);
	CHECK(s.switches <= 2, "expected at most 2 switches in 900 s, got %d", s.switches);
	CHECK_INT(s.underruns, 0);
	printf("# steady 400k +-20%%: %d switches in 900 s, ends at %d kbps\n", s.switches, s.kbps[s.segs - 1]);

	static const struct phase ph2[] = { { 1e9, 1e6 } };
	struct trace tr2 = { ph2, 1, 0, 0, 0 };
	simulate(&tr2, ABR_TIER_PREMIUM, ABR_QUALITY_AUTO, 900, &s);
	CHECK(s.switches <= 1, "1 Mbps: expected at most 1 switch, got %d", s.switches);
	CHECK_INT(s.kbps[s.segs - 1], 320);
}

static void test_startup_without_estimate_is_conservative(void)
{
	struct abr_params p;
	abr_params_default(&p);
	struct abr_input in = { ABR_TIER_PREMIUM, ABR_QUALITY_AUTO, 0, 0, 0, 0 };
	CHECK_INT(abr_choose(&p, &in), 96);
	in.quality = ABR_QUALITY_LOW;
	CHECK_INT(abr_choose(&p, &in), 24);
	/* With an estimate carried over from the previous track, start where 1.5x allows. */
	in.quality = ABR_QUALITY_AUTO;
	in.throughput_bps = 300e3;
	CHECK_INT(abr_choose(&p, &in), 160);
}

static void test_up_switch_needs_margin_and_healthy_buffer(void)
{
	struct abr_params p;
	abr_params_default(&p);
	struct abr_input in = { ABR_TIER_PREMIUM, ABR_QUALITY_AUTO, 230e3, 0, 20, 96 };
	CHECK_INT(abr_choose(&p, &in), 96); /* 230k < 1.5 * 160k */
	in.throughput_bps = 240e3;
	CHECK_INT(abr_choose(&p, &in), 160);
	in.buffer_s = 7.9; /* same link, buffer below up_min_buffer_s */
	CHECK_INT(abr_choose(&p, &in), 96);
}

static void test_down_switch_is_immediate(void)
{
	struct abr_params p;
	abr_params_default(&p);
	struct abr_input in = { ABR_TIER_PREMIUM, ABR_QUALITY_AUTO, 319e3, 0, 20, 320 };
	CHECK_INT(abr_choose(&p, &in), 160); /* just under current: drop */
	in.throughput_bps = 320e3;
	CHECK_INT(abr_choose(&p, &in), 320); /* at current: stay (no 1.5x needed to stay) */
	in.throughput_bps = 50e3;
	CHECK_INT(abr_choose(&p, &in), 24); /* several rungs in one step */
	/* Buffer running dry forces the lowest rung even on a decent estimate. */
	in.throughput_bps = 500e3;
	in.buffer_s = 0.5;
	CHECK_INT(abr_choose(&p, &in), 24);
	/* Lowering the setting takes effect on the next segment. */
	in.buffer_s = 20;
	in.quality = ABR_QUALITY_NORMAL;
	CHECK_INT(abr_choose(&p, &in), 96);
}

static void test_decision_is_a_pure_function_of_inputs(void)
{
	struct abr_params p;
	abr_params_default(&p);
	struct abr_input in = { ABR_TIER_PREMIUM, ABR_QUALITY_AUTO, 700e3, 0, 12, 160 };
	int first = abr_choose(&p, &in);
	for (int i = 0; i < 100; i++) {
		struct abr_input other = { ABR_TIER_FREE, ABR_QUALITY_LOW, i * 1e4, 0, i, 24 };
		(void)abr_choose(&p, &other);
	}
	CHECK_INT(abr_choose(&p, &in), first);
	CHECK_INT(first, 320);
}

static void test_estimator_is_harmonic_mean_of_window(void)
{
	struct abr_estimator e;
	abr_estimator_init(&e, 3);
	CHECK(abr_estimator_bps(&e) == 0, "expected no estimate, got %f", abr_estimator_bps(&e));
	abr_estimator_add_sample(&e, 0, 1); /* ignored */
	abr_estimator_add_sample(&e, 125000, 1); /* 1 Mbps */
	CHECK(fabs(abr_estimator_bps(&e) - 1e6) < 1e-6, "expected 1e6, got %f", abr_estimator_bps(&e));
	abr_estimator_add_sample(&e, 125000, 4); /* 250 kbps */
	CHECK(fabs(abr_estimator_bps(&e) - 400e3) < 1e-6, "expected 400e3, got %f", abr_estimator_bps(&e));
	abr_estimator_add_sample(&e, 125000, 1);
	abr_estimator_add_sample(&e, 125000, 1); /* evicts the first sample */
	abr_estimator_add_sample(&e, 125000, 1); /* evicts the slow one */
	CHECK(fabs(abr_estimator_bps(&e) - 1e6) < 1e-6, "expected 1e6 after window slides, got %f", abr_estimator_bps(&e));
}

static void test_buffer_target_grows_on_fast_links_and_shrinks_on_slow(void)
{
	struct abr_params p;
	abr_params_default(&p);
	double base = abr_buffer_target(&p, 0, 0, 160);
	double fast = abr_buffer_target(&p, 2e6, 0, 160);
	double slow = abr_buffer_target(&p, 200e3, 0, 160);
	CHECK(base == 10.0, "expected default 10 s, got %f", base);
	CHECK(fast > base && fast <= p.target_max_s, "expected fast target in (10, 30], got %f", fast);
	CHECK(slow < base && slow >= p.target_min_s, "expected slow target in [6, 10), got %f", slow);
	CHECK(abr_buffer_target(&p, 1e9, 0, 24) == p.target_max_s, "expected clamp to max, got %f", abr_buffer_target(&p, 1e9, 0, 24));
	p.target_base_s = 20;
	CHECK(abr_buffer_target(&p, 0, 0, 160) == 20.0, "expected configurable base, got %f", abr_buffer_target(&p, 0, 0, 160));
}

int main(void)
{
	RUN(test_constant_60kbps_settles_at_24_without_underrun);
	RUN(test_climbs_back_within_30s_after_bandwidth_returns);
	RUN(test_swinging_link_has_no_underrun);
	RUN(test_never_exceeds_setting_or_tier_cap);
	RUN(test_steady_link_does_not_oscillate);
	RUN(test_startup_without_estimate_is_conservative);
	RUN(test_up_switch_needs_margin_and_healthy_buffer);
	RUN(test_down_switch_is_immediate);
	RUN(test_decision_is_a_pure_function_of_inputs);
	RUN(test_estimator_is_harmonic_mean_of_window);
	RUN(test_buffer_target_grows_on_fast_links_and_shrinks_on_slow);
	return TAP_DONE();
}
