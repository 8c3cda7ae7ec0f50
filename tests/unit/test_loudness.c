/* EBU R128 measurement and the -14 LUFS / -1 dBTP normalisation rule. */
#include "../tap.h"
#include "loudness.h"
#include <errno.h>
#include <math.h>

/* EBU Tech 3341 case 1: a 1 kHz sine at -23 dBFS in both stereo channels reads -23.0 LUFS.
 * K-weighting adds ~+0.69 dB at 1 kHz, cancelled by the -0.691 in BS.1770, and the two channels'
 * powers add: so a stereo sine at A dBFS reads A LUFS, a mono one A - 3.01 LUFS. */
static struct pcm *sine(int channels, double dbfs, double seconds)
{
	int rate = 48000;
	struct pcm *p = pcm_new(rate, channels, (size_t)(seconds * rate));
	double a = pow(10.0, dbfs / 20.0);
	for (size_t i = 0; i < p->frames; i++)
		for (int c = 0; c < channels; c++)
			p->samples[i * channels + c] = (float)(a * sin(6.283185307179586 * 997.0 * i / rate));
	return p;
}

static void test_stereo_sine_at_minus_20_dbfs_reads_minus_20_lufs(void)
{
	struct pcm *p = sine(2, -20.0, 10.0);
	struct loudness l;
	CHECK_INT(loudness_measure(p, &l), 0);
	printf("# stereo -20 dBFS sine: %.3f LUFS, %.3f dBTP, gain %.3f dB\n", l.integrated_lufs,
	       l.true_peak_dbtp, l.gain_db);
	CHECK(fabs(l.integrated_lufs - -20.0) < 0.1, "expected -20.0 +-0.1 LUFS, got %.3f", l.integrated_lufs);
	CHECK(fabs(l.true_peak_dbtp - -20.0) < 0.2, "expected -20.0 +-0.2 dBTP, got %.3f", l.true_peak_dbtp);
	CHECK(fabs(l.gain_db - 6.0) < 0.1, "expected +6 dB to reach -14 LUFS, got %.3f", l.gain_db);
	pcm_free(p);
}

static void test_mono_sine_reads_three_db_lower(void)
{
	struct pcm *p = sine(1, -20.0, 10.0);
	struct loudness l;
	CHECK_INT(loudness_measure(p, &l), 0);
	printf("# mono -20 dBFS sine: %.3f LUFS\n", l.integrated_lufs);
	CHECK(fabs(l.integrated_lufs - -23.01) < 0.1, "expected -23.0 +-0.1 LUFS, got %.3f", l.integrated_lufs);
	pcm_free(p);
}

static void test_gain_never_lifts_true_peak_above_ceiling(void)
{
	/* A quiet tone with sharp clicks: reaching -14 LUFS would push the clicks' inter-sample
	 * peaks over full scale, so the ceiling must win. */
	struct pcm *p = sine(2, -30.0, 10.0);
	for (size_t i = 0; i < p->frames; i += 24000) {
		p->samples[2 * i] += 0.5f;
		p->samples[2 * i + 2] -= 0.45f;
	}
	struct loudness before, after;
	CHECK_INT(loudness_measure(p, &before), 0);
	double g = before.gain_db;
	printf("# peaky track: %.2f LUFS, %.2f dBTP, gain %.2f dB\n", before.integrated_lufs,
	       before.true_peak_dbtp, g);
	CHECK(g < -14.0 - before.integrated_lufs - 0.5, "expected the ceiling to limit the gain (%.2f)", g);
	float lin = (float)pow(10.0, g / 20.0);
	for (size_t i = 0; i < p->frames * 2; i++)
		p->samples[i] *= lin;
	CHECK_INT(loudness_measure(p, &after), 0);
	printf("# after gain: %.2f LUFS, %.2f dBTP\n", after.integrated_lufs, after.true_peak_dbtp);
	CHECK(after.true_peak_dbtp <= -1.0 + 0.05, "expected true peak <= -1 dBTP, got %.3f", after.true_peak_dbtp);
	CHECK(after.integrated_lufs < -14.0, "expected below target, got %.2f", after.integrated_lufs);
	pcm_free(p);
}

static void test_gain_rule_is_min_of_target_and_ceiling(void)
{
	CHECK(fabs(loudness_gain_db(-20, -6, -14, -1) - 5.0) < 1e-9, "ceiling should win: %f",
	      loudness_gain_db(-20, -6, -14, -1));
	CHECK(fabs(loudness_gain_db(-20, -12, -14, -1) - 6.0) < 1e-9, "target should win");
	CHECK(fabs(loudness_gain_db(-8, -0.2, -14, -1) - -6.0) < 1e-9, "loud tracks are turned down");
	CHECK(loudness_gain_db(-INFINITY, -INFINITY, -14, -1) == 0.0, "silence gets 0 dB");
}

static void test_silence_measures_minus_infinity_with_zero_gain(void)
{
	struct pcm *p = pcm_new(44100, 2, 44100 * 3);
	struct loudness l;
	CHECK_INT(loudness_measure(p, &l), 0);
	CHECK(isinf(l.integrated_lufs) && l.integrated_lufs < 0, "expected -inf, got %f", l.integrated_lufs);
	CHECK(l.gain_db == 0.0, "expected gain 0, got %f", l.gain_db);
	pcm_free(p);
	struct pcm empty = {44100, 2, 0, NULL};
	CHECK_INT(loudness_measure(&empty, &l), -EINVAL);
}

int main(void)
{
	RUN(test_stereo_sine_at_minus_20_dbfs_reads_minus_20_lufs);
	RUN(test_mono_sine_reads_three_db_lower);
	RUN(test_gain_never_lifts_true_peak_above_ceiling);
	RUN(test_gain_rule_is_min_of_target_and_ceiling);
	RUN(test_silence_measures_minus_infinity_with_zero_gain);
	return TAP_DONE();
}
