/* resample: polyphase windowed sinc. The output grid is an exact rational multiple of the
 * input grid (L/M after reducing out/in), so only L distinct kernel phases exist and are
 * tabulated once. */
#include "resample.h"
#include "xmem.h"
#include <math.h>
#include <stdlib.h>

/* 24 zero crossings each side with a Kaiser beta of 9: side lobes near -90 dB and a
 * transition band about 10% of the lower Nyquist wide, centred on PASS_FRACTION of it.
 * Up-sampling 22.05 -> 44.1 kHz and 48 <-> 44.1 kHz then needs <= 30 input frames each
 * side, inside SEGMENT_MARGIN. */
#define ZERO_CROSSINGS 24
#define KAISER_BETA 9.0
#define PASS_FRACTION 0.90

struct resample {
	int channels;
	int64_t up, down;   /* out/in reduced: output frame j sits at input time j*down/up */
	int taps;           /* 2*K per phase */
	int k;              /* kernel radius in input frames */
	float *table;       /* up phases x taps, each row normalised to unity DC gain */
};

static int64_t gcd64(int64_t a, int64_t b)
{
	while (b) {
		int64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

static double bessel_i0(double x)
{
	double sum = 1.0, term = 1.0, q = x * x / 4.0;
	for (int n = 1; n < 200 && term > 1e-12 * sum; n++) {
		term *= q / ((double)n * n);
		sum += term;
	}
	return sum;
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

struct resample *resample_new(int in_rate, int out_rate, int channels)
{
	if (in_rate < 8000 || in_rate > 192000 || out_rate < 8000 || out_rate > 192000 || channels < 1 || channels > 8)
		return NULL;
	int64_t g = gcd64(in_rate, out_rate);
	int64_t up = out_rate / g, down = in_rate / g;
	if (up > 4096)
		return NULL;
	struct resample *r = xcalloc(1, sizeof(*r));
	r->channels = channels;
	r->up = up;
	r->down = down;
	/* Cut-off in cycles per input frame. */
	double c = PASS_FRACTION * 0.5 * (double)(in_rate < out_rate ? in_rate : out_rate) / in_rate;
	double w = ZERO_CROSSINGS / (2.0 * c);   /* radius in input frames */
	r->k = (int)ceil(w);
	r->taps = 2 * r->k;
	r->table = xmalloc(sizeof(float) * (size_t)up * (size_t)r->taps);
	double i0b = bessel_i0(KAISER_BETA);
	double *tmp = xmalloc(sizeof(double) * (size_t)r->taps);
	for (int64_t ph = 0; ph < up; ph++) {
		double frac = (double)ph / (double)up, sum = 0;
		float *row = r->table + ph * r->taps;
		for (int n = 0; n < r->taps; n++) {
			/* tap n multiplies input frame floor(t) - k + 1 + n */
			double d = frac + r->k - 1 - n;
			double h = 0;
			if (fabs(d) < w) {
				double x = 2.0 * c * d;
				double s = fabs(x) < 1e-12 ? 1.0 : sin(M_PI * x) / (M_PI * x);
				double u = d / w;
				h = 2.0 * c * s * bessel_i0(KAISER_BETA * sqrt(1.0 - u * u)) / i0b;
			}
			tmp[n] = h;
			sum += h;
		}
		for (int n = 0; n < r->taps; n++)
			row[n] = (float)(tmp[n] / sum);
	}
	free(tmp);
	return r;
}

void resample_free(struct resample *r)
{
	if (!r)
		return;
	free(r->table);
	free(r);
}

void resample_input_span(const struct resample *r, int64_t out_start, size_t out_count,
			 int64_t *in_start, size_t *in_count)
{
	if (out_count == 0) {
		*in_start = floor_div(out_start * r->down, r->up);
		*in_count = 0;
		return;
	}
	int64_t first = floor_div(out_start * r->down, r->up) - r->k + 1;
	int64_t last = floor_div((out_start + (int64_t)out_count - 1) * r->down, r->up) + r->k;
	*in_start = first;
	*in_count = (size_t)(last - first + 1);
}

uint64_t resample_output_frames(const struct resample *r, uint64_t in_frames)
{
	return (in_frames * (uint64_t)r->up + (uint64_t)r->down - 1) / (uint64_t)r->down;
}

void resample_run(const struct resample *r, const float *in, int64_t in_start, size_t in_frames,
		  float *out, int64_t out_start, size_t out_count)
{
	int ch = r->channels;
	int64_t in_end = in_start + (int64_t)in_frames;
	for (size_t j = 0; j < out_count; j++) {
		int64_t pos = (out_start + (int64_t)j) * r->down;
		int64_t base = floor_div(pos, r->up);
		int64_t ph = pos - base * r->up;
		const float *row = r->table + ph * r->taps;
		int64_t first = base - r->k + 1;
		float acc[8] = {0};
		int n0 = 0, n1 = r->taps;
		if (first < in_start)
			n0 = (int)(in_start - first < n1 ? in_start - first : n1);
		if (first + n1 > in_end)
			n1 = (int)(in_end - first > n0 ? in_end - first : n0);
		const float *src = n0 < n1 ? in + (first + n0 - in_start) * ch : in;
		if (ch == 1) {
			float a = 0;
			for (int n = n0; n < n1; n++)
				a += row[n] * *src++;
			acc[0] = a;
		} else {
			for (int n = n0; n < n1; n++, src += ch)
				for (int c = 0; c < ch; c++)
					acc[c] += row[n] * src[c];
		}
		for (int c = 0; c < ch; c++)
			out[j * ch + c] = acc[c];
	}
}
