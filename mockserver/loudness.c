/* loudness: a thin, allocation-safe wrapper over libebur128. */
#include "loudness.h"
#include <ebur128.h>
#include <errno.h>
#include <math.h>

double loudness_gain_db(double integrated_lufs, double true_peak_dbtp, double target_lufs,
			double ceiling_dbtp)
{
	/* Silence has no loudness to correct; boosting it would only amplify noise. */
	if (!isfinite(integrated_lufs) || !isfinite(true_peak_dbtp))
		return 0.0;
	double to_target = target_lufs - integrated_lufs;
	double to_ceiling = ceiling_dbtp - true_peak_dbtp;
	return to_target < to_ceiling ? to_target : to_ceiling;
}

int loudness_measure(const struct pcm *p, struct loudness *out)
{
	if (!p || !out || !p->samples || p->frames == 0 || p->rate <= 0 || p->channels < 1 ||
	    p->channels > 2)
		return -EINVAL;
	int ret = 0;
	ebur128_state *st = ebur128_init((unsigned)p->channels, (unsigned long)p->rate,
					 EBUR128_MODE_I | EBUR128_MODE_TRUE_PEAK);
	if (!st)
		return -ENOMEM;
	/* Feed in chunks: libebur128 sizes internal buffers per call, and one multi-minute call
	 * would make it allocate the whole track again. */
	const size_t chunk = 65536;
	for (size_t off = 0; off < p->frames; off += chunk) {
		size_t n = p->frames - off < chunk ? p->frames - off : chunk;
		if (ebur128_add_frames_float(st, p->samples + off * (size_t)p->channels, n) !=
		    EBUR128_SUCCESS) {
			ret = -ENOMEM;
			goto out;
		}
	}
	double integrated;
	if (ebur128_loudness_global(st, &integrated) != EBUR128_SUCCESS) {
		ret = -EINVAL;
		goto out;
	}
	double peak = 0.0;
	for (int c = 0; c < p->channels; c++) {
		double tp;
		if (ebur128_true_peak(st, (unsigned)c, &tp) != EBUR128_SUCCESS) {
			ret = -EINVAL;
			goto out;
		}
		if (tp > peak)
			peak = tp;
	}
	out->integrated_lufs = integrated; /* libebur128 already reports -HUGE_VAL for silence */
	out->true_peak_dbtp = peak > 0.0 ? 20.0 * log10(peak) : -INFINITY;
	out->gain_db = loudness_gain_db(out->integrated_lufs, out->true_peak_dbtp,
					LOUDNESS_TARGET_LUFS, LOUDNESS_CEILING_DBTP);
out:
	ebur128_destroy(&st);
	return ret;
}
