/* features: one pass of short-time FFTs over a mono, ~22 kHz copy of the track feeds every
 * estimator: spectral flux for tempo and pulse, peak-picked chroma for key, frame RMS, centroid
 * and flatness for energy, speech and the rest. Heuristics are explained where they are made. */
#include "audio_features.h"
#include "loudness.h"
#include "xmem.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TAU 6.283185307179586
#define MAX_PEAKS 96
/* Tempo prior: log-normal around 120 BPM, 0.8 octave wide (see estimate_tempo). */
#define PRIOR_C 120.0
#define PRIOR_S 0.8
/* Onset flux ignores bins above 3 kHz: beats are carried by kick, snare body and bass, while
 * hats above it subdivide the beat and would pull the tempo to double time. */
#define FLUX_TOP_HZ 3000.0
/* Square root of the flux per frame: evens out loud kicks and softer snares, so the
 * kick-snare alternation reads as one pulse per beat rather than one per two beats. */
#define FLUX_COMPRESS(x) sqrt(x)
/* sqrt weighting of chroma peaks: loud bass notes should count, not drown the harmony above. */
#define CHROMA_WEIGHT(m) sqrt(m)

int features_fft(double *re, double *im, size_t n)
{
	if (n < 2 || (n & (n - 1)))
		return -EINVAL;
	for (size_t i = 1, j = 0; i < n; i++) {
		size_t bit = n >> 1;
		for (; j & bit; bit >>= 1)
			j ^= bit;
		j ^= bit;
		if (i < j) {
			double t = re[i];
			re[i] = re[j];
			re[j] = t;
			t = im[i];
			im[i] = im[j];
			im[j] = t;
		}
	}
	for (size_t len = 2; len <= n; len <<= 1) {
		double ang = -TAU / (double)len;
		double wr = cos(ang), wi = sin(ang);
		for (size_t i = 0; i < n; i += len) {
			double cr = 1.0, ci = 0.0;
			for (size_t k = 0; k < len / 2; k++) {
				size_t a = i + k, b = i + k + len / 2;
				double tr = re[b] * cr - im[b] * ci, ti = re[b] * ci + im[b] * cr;
				re[b] = re[a] - tr;
				im[b] = im[a] - ti;
				re[a] += tr;
				im[a] += ti;
				double ncr = cr * wr - ci * wi;
				ci = cr * wi + ci * wr;
				cr = ncr;
			}
		}
	}
	return 0;
}

static double clamp01(double x)
{
	return x < 0.0 ? 0.0 : x > 1.0 ? 1.0 : x;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double percentile(const double *v, size_t n, double q)
{
	if (n == 0)
		return 0.0;
	double *c = xmalloc(n * sizeof(*c));
	memcpy(c, v, n * sizeof(*c));
	qsort(c, n, sizeof(*c), cmp_double);
	double r = c[(size_t)(q * (double)(n - 1))];
	free(c);
	return r;
}

/* Everything the estimators share, measured once. */
struct analysis {
	double *x;       /* mono signal at rate fs */
	size_t n;
	double fs;
	size_t hop, nfft, frames;
	double env_rate; /* onset-envelope frames per second */
	double *flux;    /* onset strength per frame */
	double *rms;     /* per frame */
	double *centroid;
	double *flatness;
	double *lowratio; /* share of power below 100 Hz */
	double chroma[12];
	double *ac;      /* autocorrelation of the onset envelope */
	size_t max_lag;
};

/* Mono mix, then halve the rate while above 24 kHz: every feature lives below 11 kHz, and the
 * FFT work drops four-fold. Pairwise averaging is a crude anti-alias filter but aliasing above
 * 11 kHz only touches brightness, which is measured relative to other tracks anyway. */
static void downmix(const struct pcm *p, struct analysis *a)
{
	size_t n = p->frames;
	double *x = xmalloc(n * sizeof(*x));
	for (size_t i = 0; i < n; i++) {
		double s = 0.0;
		for (int c = 0; c < p->channels; c++)
			s += p->samples[i * (size_t)p->channels + (size_t)c];
		x[i] = s / p->channels;
	}
	double fs = p->rate;
	while (fs > 24000.0) {
		n /= 2;
		for (size_t i = 0; i < n; i++)
			x[i] = 0.5 * (x[2 * i] + x[2 * i + 1]);
		fs /= 2.0;
	}
	a->x = x;
	a->n = n;
	a->fs = fs;
}

static void stft_pass(struct analysis *a)
{
	size_t nfft = 1024;
	while ((double)nfft > a->fs * 0.06)
		nfft /= 2;
	a->nfft = nfft;
	a->hop = nfft / 4;
	a->frames = a->n >= nfft ? (a->n - nfft) / a->hop + 1 : 0;
	a->env_rate = a->fs / (double)a->hop;
	size_t bins = nfft / 2 + 1, f = a->frames;
	a->flux = xcalloc(f + 1, sizeof(double));
	a->rms = xcalloc(f + 1, sizeof(double));
	a->centroid = xcalloc(f + 1, sizeof(double));
	a->flatness = xcalloc(f + 1, sizeof(double));
	a->lowratio = xcalloc(f + 1, sizeof(double));
	double *re = xmalloc(nfft * sizeof(double)), *im = xmalloc(nfft * sizeof(double));
	double *win = xmalloc(nfft * sizeof(double));
	double *prev = xcalloc(bins, sizeof(double)), *cur = xmalloc(bins * sizeof(double));
	for (size_t i = 0; i < nfft; i++)
		win[i] = 0.5 - 0.5 * cos(TAU * (double)i / (double)nfft);
	double bin_hz = a->fs / (double)nfft;
	size_t flux_top = (size_t)(FLUX_TOP_HZ / bin_hz);
	if (flux_top > bins - 1)
		flux_top = bins - 1;
	size_t low_top = (size_t)(100.0 / bin_hz) + 1;
	double scale = 4.0 / (double)nfft; /* a full-scale sine peaks at magnitude ~1 */
	for (size_t fr = 0; fr < f; fr++) {
		const double *x = a->x + fr * a->hop;
		double e = 0.0;
		for (size_t i = 0; i < nfft; i++) {
			re[i] = x[i] * win[i];
			im[i] = 0.0;
			e += x[i] * x[i];
		}
		a->rms[fr] = sqrt(e / (double)nfft);
		features_fft(re, im, nfft);
		double psum = 0.0, cw = 0.0, logsum = 0.0, low = 0.0, flux = 0.0;
		size_t nlog = 0;
		for (size_t k = 1; k < bins; k++) {
			double m = sqrt(re[k] * re[k] + im[k] * im[k]) * scale;
			/* Log compression: flux measures relative change, so a quiet hat and a loud kick
			 * both register as events instead of the kick alone. */
			cur[k] = log1p(1000.0 * m);
			double pw = m * m;
			psum += pw;
			cw += pw * (double)k * bin_hz;
			if (k < low_top)
				low += pw;
			if (k * bin_hz >= 100.0 && k * bin_hz <= 8000.0) {
				logsum += log(pw + 1e-12);
				nlog++;
			}
			if (k <= flux_top && cur[k] > prev[k])
				flux += cur[k] - prev[k];
		}
		a->flux[fr] = fr ? FLUX_COMPRESS(flux) : 0.0;
		a->centroid[fr] = psum > 1e-12 ? cw / psum : 0.0;
		a->lowratio[fr] = psum > 1e-12 ? low / psum : 0.0;
		double amean = 0.0;
		for (size_t k = 1; k < bins; k++) {
			double hz = k * bin_hz;
			if (hz >= 100.0 && hz <= 8000.0)
				amean += re[k] * re[k] + im[k] * im[k];
		}
		amean = nlog ? amean * scale * scale / (double)nlog : 0.0;
		a->flatness[fr] = amean > 1e-12 ? exp(logsum / (double)nlog) / amean : 0.0;
		double *t = prev;
		prev = cur;
		cur = t;
	}
	free(re);
	free(im);
	free(win);
	free(prev);
	free(cur);
}

/* Chroma from spectral peaks of long frames (~0.19 s, 5 Hz bins): interpolating each peak's
 * frequency puts even bass notes in the right pitch class, which a bin-to-pitch map cannot do
 * at low frequencies where semitones are only a few Hz apart. */
static void chroma_pass(struct analysis *a)
{
	size_t nfft = 4096;
	while ((double)nfft > a->fs * 0.2)
		nfft /= 2;
	size_t hop = nfft / 2, bins = nfft / 2;
	double *re = xmalloc(nfft * sizeof(double)), *im = xmalloc(nfft * sizeof(double));
	double *lm = xmalloc(bins * sizeof(double));
	double pf[MAX_PEAKS], pm[MAX_PEAKS];
	double bin_hz = a->fs / (double)nfft;
	memset(a->chroma, 0, sizeof(a->chroma));
	for (size_t off = 0; off + nfft <= a->n; off += hop) {
		for (size_t i = 0; i < nfft; i++) {
			re[i] = a->x[off + i] * (0.5 - 0.5 * cos(TAU * (double)i / (double)nfft));
			im[i] = 0.0;
		}
		features_fft(re, im, nfft);
		double mx = 0.0;
		for (size_t k = 0; k < bins; k++) {
			double m = sqrt(re[k] * re[k] + im[k] * im[k]);
			lm[k] = m;
			if (m > mx)
				mx = m;
		}
		if (mx < 1e-6)
			continue;
		size_t np = 0;
		for (size_t k = 2; k + 1 < bins && np < MAX_PEAKS; k++) {
			double hz = k * bin_hz;
			if (hz < 50.0 || hz > 4000.0)
				continue;
			if (!(lm[k] > lm[k - 1] && lm[k] >= lm[k + 1] && lm[k] > 0.02 * mx))
				continue;
			double l0 = log(lm[k - 1] + 1e-12), l1 = log(lm[k]), l2 = log(lm[k + 1] + 1e-12);
			double den = l0 - 2.0 * l1 + l2;
			double d = den < 0.0 ? 0.5 * (l0 - l2) / den : 0.0;
			pf[np] = (k + d) * bin_hz;
			pm[np] = lm[k];
			np++;
		}
		for (size_t i = 0; i < np; i++) {
			/* A peak sitting at 2x..5x a comparable lower peak is most likely that note's
			 * overtone; the third harmonic (a twelfth up) would otherwise pull the key a
			 * fifth sharp and the fifth (a major third up) pull minor toward major. Such
			 * peaks count a quarter. */
			double w = 1.0;
			for (size_t j = 0; j < i; j++) {
				for (int h = 2; h <= 5; h++) {
					double r = pf[i] / (pf[j] * h);
					if (r > 0.985 && r < 1.015 && pm[j] > 0.2 * pm[i])
						w = 0.25;
				}
			}
			double midi = 69.0 + 12.0 * log2(pf[i] / 440.0);
			int pc = ((int)lround(midi) % 12 + 12) % 12;
			a->chroma[pc] += w * CHROMA_WEIGHT(pm[i]);
		}
	}
	free(re);
	free(im);
	free(lm);
}

static double pearson(const double *x, const double *y, int n)
{
	double mx = 0, my = 0;
	for (int i = 0; i < n; i++) {
		mx += x[i];
		my += y[i];
	}
	mx /= n;
	my /= n;
	double sxy = 0, sxx = 0, syy = 0;
	for (int i = 0; i < n; i++) {
		sxy += (x[i] - mx) * (y[i] - my);
		sxx += (x[i] - mx) * (x[i] - mx);
		syy += (y[i] - my) * (y[i] - my);
	}
	return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : 0.0;
}

/* Krumhansl-Kessler probe-tone profiles: how well each pitch class fits a key; correlating the
 * track's chroma with all 24 rotations picks the key whose tonal hierarchy the music follows. */
static void estimate_key(const struct analysis *a, struct features *out)
{
	static const double major[12] = {6.35, 2.23, 3.48, 2.33, 4.38, 4.09,
					 2.52, 5.19, 2.39, 3.66, 2.29, 2.88};
	static const double minor[12] = {6.33, 2.68, 3.52, 5.38, 2.60, 3.53,
					 2.54, 4.75, 3.98, 2.69, 3.34, 3.17};
	double total = 0.0;
	for (int i = 0; i < 12; i++)
		total += a->chroma[i];
	out->key = -1;
	out->mode = 1;
	out->key_confidence = 0.0;
	if (total <= 0.0)
		return;
	double best = -2.0;
	for (int k = 0; k < 12; k++) {
		double rot[12];
		for (int i = 0; i < 12; i++)
			rot[i] = a->chroma[(i + k) % 12];
		double rM = pearson(rot, major, 12), rm = pearson(rot, minor, 12);
		if (rM > best) {
			best = rM;
			out->key = k;
			out->mode = 1;
		}
		if (rm > best) {
			best = rm;
			out->key = k;
			out->mode = 0;
		}
	}
	out->key_confidence = best;
	/* A flat chroma (noise, speech) correlates weakly with every key: call it unknown. */
	if (best < 0.3)
		out->key = -1;
}

/* Unbiased autocorrelation of the mean-removed, half-wave-rectified onset envelope. */
static void onset_autocorr(struct analysis *a)
{
	size_t n = a->frames;
	double *o = xmalloc((n + 1) * sizeof(double));
	/* Subtract a ~1 s moving average so slow swells (a pad fading in) do not read as pulse. */
	size_t w = (size_t)a->env_rate;
	double run = 0.0;
	size_t lo = 0, hi = 0;
	for (size_t i = 0; i < n; i++) {
		while (hi < n && hi <= i + w / 2)
			run += a->flux[hi++];
		while (lo + w / 2 < i)
			run -= a->flux[lo++];
		double mean = run / (double)(hi - lo);
		o[i] = a->flux[i] > mean ? a->flux[i] - mean : 0.0;
	}
	a->max_lag = (size_t)(a->env_rate * 8.0 * 60.0 / 45.0);
	if (a->max_lag >= n)
		a->max_lag = n ? n - 1 : 0;
	a->ac = xcalloc(a->max_lag + 1, sizeof(double));
	for (size_t L = 0; L <= a->max_lag; L++) {
		double s = 0.0;
		for (size_t i = 0; i + L < n; i++)
			s += o[i] * o[i + L];
		a->ac[L] = s / (double)(n - L);
	}
	free(o);
}

static double ac_at(const struct analysis *a, double lag)
{
	if (lag < 0.0 || lag >= (double)a->max_lag)
		return 0.0;
	size_t i = (size_t)lag;
	double f = lag - (double)i;
	return a->ac[i] * (1.0 - f) + a->ac[i + 1] * f;
}

/* Comb score of a tempo: mean autocorrelation at 1..k beat periods. Summing several multiples
 * both rewards a steady pulse and refines the period below one envelope frame. */
static double comb(const struct analysis *a, double bpm, int k)
{
	double period = a->env_rate * 60.0 / bpm, s = 0.0;
	int used = 0;
	for (int m = 1; m <= k; m++) {
		double lag = period * m;
		if (lag >= (double)a->max_lag)
			break;
		/* Take the best of a +-1 frame neighbourhood: timing jitter smears the peak. */
		double v = fmax(ac_at(a, lag), fmax(ac_at(a, lag - 0.5), ac_at(a, lag + 0.5)));
		s += v;
		used++;
	}
	return used ? s / used : 0.0;
}

static double search_tempo(const struct analysis *a, double lo, double hi, double step, int k)
{
	double best = lo, bs = -1.0;
	for (double b = lo; b <= hi; b += step) {
		double s = comb(a, b, k);
		if (s > bs) {
			bs = s;
			best = b;
		}
	}
	return best;
}

/* Tempo: the comb peak over 45..220 BPM is right up to an octave: every multiple of the beat
 * period is also a multiple of a bar, and off-beat hats make half the period strong too. Among
 * the octave relatives of the peak, choose by comb score times a log-normal tempo prior centred
 * on 120 BPM (sigma 0.8 octave): listeners, and the generator's convention of counting quarter
 * notes, resolve the ambiguity toward moderate tempos. */
static double tempo_prior(double bpm)
{
	double o = log2(bpm / PRIOR_C);
	return exp(-o * o / (2.0 * PRIOR_S * PRIOR_S));
}

static double estimate_tempo(const struct analysis *a, double *clarity)
{
	*clarity = 0.0;
	if (a->ac[0] <= 0.0)
		return 0.0;
	double coarse = search_tempo(a, 45.0, 220.0, 0.25, 4);
	double best = coarse, best_score = -1.0;
	static const double ratios[] = {0.5, 1.0, 2.0, 4.0};
	for (size_t i = 0; i < sizeof(ratios) / sizeof(ratios[0]); i++) {
		double b = coarse * ratios[i];
		if (b < 40.0 || b > 230.0)
			continue;
		double refined = ratios[i] == 1.0 ? b : search_tempo(a, b * 0.98, b * 1.02, 0.05, 4);
		double s = comb(a, refined, 4) * tempo_prior(refined);
		if (s > best_score) {
			best_score = s;
			best = refined;
		}
	}
	double fine = search_tempo(a, best * 0.98, best * 1.02, 0.01, 8);
	*clarity = clamp01(comb(a, fine, 4) / a->ac[0]);
	return fine;
}

static void analysis_free(struct analysis *a)
{
	free(a->x);
	free(a->flux);
	free(a->rms);
	free(a->centroid);
	free(a->flatness);
	free(a->lowratio);
	free(a->ac);
}

int features_compute(const struct pcm *p, struct features *out)
{
	if (!p || !out || !p->samples || p->rate < 8000 || p->channels < 1 || p->channels > 2 ||
	    p->frames < (size_t)p->rate * 2)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	struct analysis a = {0};
	downmix(p, &a);
	stft_pass(&a);
	chroma_pass(&a);
	onset_autocorr(&a);

	struct loudness ld;
	out->loudness = loudness_measure(p, &ld) == 0 && isfinite(ld.integrated_lufs)
				? fmax(ld.integrated_lufs, -60.0)
				: -60.0;
	estimate_key(&a, out);
	out->tempo = estimate_tempo(&a, &out->pulse_clarity);
	out->time_signature = 4;

	size_t f = a.frames;
	double loud = percentile(a.rms, f, 0.9);
	/* Frames more than 30 dB under the loud level are "silent": pauses in speech, fades. */
	double floor_thr = loud * 0.0316;
	double csum = 0.0, fsum = 0.0, lsum = 0.0;
	size_t active = 0, quiet = 0;
	for (size_t i = 0; i < f; i++) {
		if (a.rms[i] <= floor_thr) {
			quiet++;
			continue;
		}
		csum += a.centroid[i];
		fsum += a.flatness[i];
		lsum += a.lowratio[i];
		active++;
	}
	out->centroid_hz = active ? csum / (double)active : 0.0;
	double flat = active ? fsum / (double)active : 0.0;
	double lowr = active ? lsum / (double)active : 0.0;
	double quiet_frac = f ? (double)quiet / (double)f : 1.0;

	/* Onsets: local maxima of the flux above a moving threshold, at most one per 50 ms. */
	size_t onsets = 0, last = 0;
	double fmean = 0.0;
	for (size_t i = 0; i < f; i++)
		fmean += a.flux[i];
	fmean = f ? fmean / (double)f : 0.0;
	for (size_t i = 1; i + 1 < f; i++) {
		if (a.flux[i] > a.flux[i - 1] && a.flux[i] >= a.flux[i + 1] && a.flux[i] > 1.5 * fmean &&
		    (onsets == 0 || (double)(i - last) > 0.05 * a.env_rate)) {
			onsets++;
			last = i;
		}
	}
	double secs = (double)a.n / a.fs;
	out->onset_rate = (double)onsets / secs;

	if (loud <= 1e-5) {
		out->tempo = 0.0;
		out->key = -1;
		analysis_free(&a);
		return 0;
	}

	/* Syllable-rate modulation: speech switches on and off ~4 times a second, so its frame
	 * energy (in dB) swings widely around 2-8 Hz; sustained music has a steadier envelope. */
	double mod = 0.0;
	{
		size_t n = f;
		double *db = xmalloc((n + 1) * sizeof(double));
		for (size_t i = 0; i < n; i++)
			db[i] = 20.0 * log10(a.rms[i] / loud + 1e-3);
		/* Energy of the envelope band-passed to 2-8 Hz by a difference of moving averages. */
		size_t w_hi = (size_t)(a.env_rate / 8.0), w_lo = (size_t)(a.env_rate / 2.0);
		double acc = 0.0;
		for (size_t i = w_lo; i + w_lo < n; i++) {
			double s1 = 0.0, s2 = 0.0;
			for (size_t j = i - w_hi / 2; j <= i + w_hi / 2; j++)
				s1 += db[j];
			for (size_t j = i - w_lo / 2; j <= i + w_lo / 2; j++)
				s2 += db[j];
			double d = s1 / (double)(w_hi / 2 * 2 + 1) - s2 / (double)(w_lo / 2 * 2 + 1);
			acc += d * d;
		}
		mod = n > 2 * w_lo ? sqrt(acc / (double)(n - 2 * w_lo)) : 0.0;
		free(db);
	}

	double loud_db = out->loudness;
	double e_loud = clamp01((loud_db + 40.0) / 32.0);
	double e_bright = clamp01((out->centroid_hz - 500.0) / 3500.0);
	double e_dense = clamp01(out->onset_rate / 8.0);
	/* Energy: perceived intensity is mostly level, then brightness and activity (Spotify's own
	 * description: "fast, loud, and noisy"). */
	out->energy = clamp01(0.6 * e_loud + 0.25 * e_bright + 0.15 * e_dense);

	/* Danceability: a strong, steady pulse at a walkable tempo. Pulse clarity drops when beats
	 * are missing or drift; tempos far from ~120 BPM are harder to move to. */
	double tfit = out->tempo > 0 ? exp(-pow(log2(out->tempo / 118.0), 2) / (2 * 0.5 * 0.5)) : 0.0;
	out->danceability = clamp01(0.15 + 1.2 * out->pulse_clarity * (0.6 + 0.4 * tfit) - 0.2 * quiet_frac);

	/* Speechiness: deep syllable-rate modulation plus frequent pauses and no clear pulse. */
	double sp = clamp01((mod - 3.0) / 12.0) * 0.6 + clamp01(quiet_frac * 3.0) * 0.3 +
		    (1.0 - clamp01(out->pulse_clarity * 2.0)) * 0.1;
	out->speechiness = clamp01(sp);
	out->instrumentalness = clamp01(1.0 - 1.6 * out->speechiness);
	/* Acousticness: acoustic instruments have little sub-bass and no broadband synthetic noise,
	 * so their spectrum is darker and more tonal (low flatness). */
	out->acousticness = clamp01(1.0 - 2.5 * lowr - 3.0 * flat - 0.5 * e_bright);
	/* Valence: major mode, faster and brighter music reads as happier. */
	double tnorm = out->tempo > 0 ? clamp01((out->tempo - 60.0) / 120.0) : 0.0;
	out->valence = clamp01(0.1 + 0.35 * (out->key >= 0 && out->mode == 1) + 0.25 * tnorm +
			       0.15 * e_bright + 0.15 * out->energy);
	/* Liveness: an audience leaves a noisy floor under the music; studio tracks fall silent.
	 * Measure how loud and noise-like the quietest tenth of the track is. */
	double floor = percentile(a.rms, f, 0.1);
	out->liveness = clamp01((floor / loud) * 2.0 * (0.5 + flat));

	/* Time signature: 3 if the onset envelope repeats more strongly every 3 beats than 4. */
	if (out->tempo > 0.0) {
		double period = a.env_rate * 60.0 / out->tempo;
		if (ac_at(&a, 3.0 * period) > 1.15 * ac_at(&a, 4.0 * period) &&
		    ac_at(&a, 3.0 * period) > 1.15 * ac_at(&a, 2.0 * period))
			out->time_signature = 3;
	}
	analysis_free(&a);
	return 0;
}
