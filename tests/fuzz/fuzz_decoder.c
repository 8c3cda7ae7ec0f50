/* Fuzz target: the client's decoder on untrusted init parts and segments. Input layout:
 * byte 0 picks the output rate (even: adopt the source's, odd: 48000, so the resampler
 * runs), bytes 1..4 the init length L (little endian), then L bytes of init, then the
 * segment(s): the rest split at each "SPLT" marker, fed in order. */
#include "decoder.h"
#include "fuzz.h"

static const uint8_t *find(const uint8_t *p, size_t n, const char *pat)
{
	size_t m = strlen(pat);
	for (size_t i = 0; n >= m && i <= n - m; i++)
		if (memcmp(p + i, pat, m) == 0)
			return p + i;
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 5)
		return 0;
	struct decoder *d = decoder_new(data[0] & 1 ? 48000 : 0);
	if (!d)
		abort();
	size_t ilen = (size_t)data[1] | (size_t)data[2] << 8 | (size_t)data[3] << 16 | (size_t)data[4] << 24;
	const uint8_t *p = data + 5;
	size_t n = size - 5;
	if (ilen > n)
		ilen = n;
	uint8_t *init = malloc(ilen ? ilen : 1);
	memcpy(init, p, ilen);
	int r = decoder_set_init(d, init, ilen);
	free(init);
	p += ilen;
	n -= ilen;
	while (r == 0) {
		const uint8_t *end = find(p, n, "SPLT");
		size_t len = end ? (size_t)(end - p) : n;
		uint8_t *seg = malloc(len ? len : 1);
		memcpy(seg, p, len);
		float *out = NULL;
		size_t frames = 0;
		if (decoder_decode(d, seg, len, &out, &frames) == 0) {
			/* Every output sample must be finite: NaN/Inf would reach the sink. */
			for (size_t i = 0; i < frames * DECODER_CHANNELS; i++)
				if (out[i] != out[i])
					abort();
			free(out);
		}
		free(seg);
		if (!end)
			break;
		p = end + 4;
		n -= len + 4;
	}
	decoder_free(d);
	return 0;
}
