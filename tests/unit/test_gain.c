/* Unit tests for loudness normalisation gain, the soft limiter and the volume curve. */
#include "../tap.h"
#include "gain.h"
#include "xmem.h"
#include <math.h>
#include <stdlib.h>

#define RATE 48000

/* Stereo sine (right channel phase-shifted) of amplitude amp, n frames. */
static float *sine(size_t n, double amp, double hz)
{
	float *s = xmalloc(n * 2 * sizeof(float));
	for (size_t i = 0; i < n; i++) {
		s[2 * i] = (float)(amp * sin(2 * M_PI * hz * i / RATE));
		s[2 * i + 1] = (float)(amp * sin(2 * M_PI * hz * i / RATE + 1.0));
	}
	return s;
}

static double peak(const float *s, size_t samples)
{
	double p = 0;
	for (size_t i = 0; i < samples; i++)
		if (fabs(s[i]) > p)
			p = fabs(s[i]);
	return p;
}

static void test_plus_12db_on_near_full_scale_never_exceeds_ceiling(void)
{
	size_t n = RATE; /* 1 s */
	float *s = sine(n, 0.98, 997);
	/* Add hard transients too: full-scale single-sample spikes. */
	for (size_t i = 1000; i < n; i += 4801)
		s[2 * i] = (i / 4801) % 2 ? 1.0f : -1.0f;
	struct gain *g = gain_new(RATE, 2);
	gain_set_normalization(g, true, 12.0);
	/* Odd block sizes so the limiter state crosses calls. */
	for (size_t at = 0; at < n;) {
		size_t k = 1 + (at * 7919) % 1023;
		if (k > n - at)
			k = n - at;
		gain_process(g, s + 2 * at, k);
		at += k;
	}
	double p = peak(s, n * 2);
	CHECK(p <= gain_ceiling() + 1e-6, "expected peak <= %f, got %f", gain_ceiling(), p);
	CHECK(p < 1.0, "clipped: peak %f", p);
	/* And it is loud: the limiter reduces, it does not mute. */
	CHECK(p > 0.85, "expected the limited signal near the ceiling, got peak %f", p);
	gain_free(g);
	free(s);
}

static void test_quiet_signal_passes_with_exact_gain(void)
{
	size_t n = 4800;
	float *s = sine(n, 0.05, 440), *orig = sine(n, 0.05, 440);
	struct gain *g = gain_new(RATE, 2);
	gain_set_normalization(g, true, 6.0);
	gain_process(g, s, n);
	double k = pow(10.0, 6.0 / 20.0);
	size_t bad = 0;
	for (size_t i = 0; i < n * 2; i++)
		if (s[i] != (float)(orig[i] * k))
			bad++;
	CHECK_INT(bad, 0);
	/* Normalisation off: untouched. */
	gain_set_normalization(g, false, 6.0);
	memcpy(s, orig, n * 2 * sizeof(float));
	gain_process(g, s, n);
	CHECK(memcmp(s, orig, n * 2 * sizeof(float)) == 0, "disabled normalisation changed the signal");
	/* Negative gain (loud master) is exact too. */
	gain_set_normalization(g, true, -7.5);
	gain_process(g, s, n);
	CHECK(fabs(s[100] - orig[100] * pow(10.0, -7.5 / 20)) < 1e-7, "got %g want %g", s[100], orig[100] * pow(10.0, -7.5 / 20));
	gain_free(g);
	free(s);
	free(orig);
}

static void test_limiter_releases_after_a_peak(void)
{
	/* A loud burst then a quiet tail: the tail must come back to its exact gain,
	 * proving the gain reduction releases rather than sticking. */
	size_t n = RATE * 2;
	float *s = sine(n, 0.05, 440);
	for (size_t i = 0; i < 4800; i++)
		s[2 * i] = s[2 * i + 1] = 0.9f;
	struct gain *g = gain_new(RATE, 2);
	gain_set_normalization(g, true, 6.0);
	float before = s[2 * (n - 1)];
	gain_process(g, s, n);
	double want = before * pow(10.0, 6.0 / 20.0);
	CHECK(fabs(s[2 * (n - 1)] - want) < 1e-4, "tail not restored: got %g want %g", s[2 * (n - 1)], want);
	CHECK(s[0] <= gain_ceiling() + 1e-6, "burst not limited: %g", s[0]);
	gain_free(g);
	free(s);
}

static void test_volume_zero_is_silence(void)
{
	size_t n = 4800;
	float *s = sine(n, 0.9, 440);
	struct gain *g = gain_new(RATE, 2);
	gain_set_volume(g, 0);
	gain_set_normalization(g, true, 12.0);
	gain_process(g, s, n);
	CHECK(peak(s, n * 2) == 0.0, "expected silence, got peak %g", peak(s, n * 2));
	gain_free(g);
	free(s);
}

static void test_volume_change_ramps_then_settles(void)
{
	size_t n = 4800;
	float *s = sine(n, 0.5, 440);
	struct gain *g = gain_new(RATE, 2);
	gain_process(g, s, n); /* playing at 100 */
	float *t = sine(n, 0.5, 440);
	gain_set_volume(g, 0);
	gain_process(g, t, n);
	/* Not an instant cut (first frames still audible), silent after 10 ms. */
	CHECK(fabs(t[2 * 10 + 1]) > 0, "expected a ramp, got instant silence");
	CHECK(peak(t + 2 * 480, (n - 480) * 2) == 0.0, "expected silence after the ramp, got %g", peak(t + 2 * 480, (n - 480) * 2));
	gain_free(g);
	free(s);
	free(t);
}

static void test_volume_curve_is_perceptual_and_monotonic(void)
{
	CHECK(gain_volume_factor(0) == 0.0, "0 -> %g", gain_volume_factor(0));
	CHECK(gain_volume_factor(100) == 1.0, "100 -> %g", gain_volume_factor(100));
	CHECK(gain_volume_factor(-5) == 0.0 && gain_volume_factor(150) == 1.0, "clamping");
	CHECK(fabs(gain_volume_factor(50) - 0.125) < 1e-12, "50 -> %g", gain_volume_factor(50));
	for (int v = 1; v <= 100; v++)
		CHECK(gain_volume_factor(v) > gain_volume_factor(v - 1), "not increasing at %d", v);
	CHECK(gain_new(0, 2) == NULL && gain_new(RATE, 0) == NULL, "bad parameters rejected");
}

int main(void)
{
	RUN(test_plus_12db_on_near_full_scale_never_exceeds_ceiling);
	RUN(test_quiet_signal_passes_with_exact_gain);
	RUN(test_limiter_releases_after_a_peak);
	RUN(test_volume_zero_is_silence);
	RUN(test_volume_change_ramps_then_settles);
	RUN(test_volume_curve_is_perceptual_and_monotonic);
	return TAP_DONE();
}
