/* Unit tests for the codec path: source readers, segment wire format, resampler,
 * transcoder and client decoder (gapless, sample-accurate, switchable). */
#include "../tap.h"
#include "audiofile.h"
#include "decoder.h"
#include "resample.h"
#include "segment.h"
#include "transcode.h"
#include "xmem.h"
#include <FLAC/stream_encoder.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <vorbis/codec.h>

/* ---------- helpers ---------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 11);
}
static float frnd(void) { return (float)((double)rnd() / 2147483648.0 - 1.0); }

/* Something music-like: a chord sequence with harmonics, a bass line, decaying noise
 * bursts on the beat, hi-hat ticks and a little stereo movement. Chord changes and beats
 * are offset from the 4 s segment grid so the source itself has no step at a boundary. */
static struct pcm *music(int rate, int channels, double seconds)
{
	size_t n = (size_t)(seconds * rate);
	struct pcm *p = pcm_new(rate, channels, n);
	static const double roots[] = {220.0, 174.61, 261.63, 196.0};
	static const double ratios[] = {1.0, 1.2599, 1.4983};
	rng_state = 12345;
	for (size_t i = 0; i < n; i++) {
		double t = (double)i / rate;
		double f = roots[(int)(t + 0.37) % 4];
		double chord = 0;
		for (int k = 0; k < 3; k++)
			for (int h = 1; h <= 4; h++)
				chord += sin(2 * M_PI * f * ratios[k] * h * t) / (h * h);
		double beat = fmod(t + 0.13, 0.5);
		double burst = frnd() * exp(-beat * 40.0);
		double bass = sin(2 * M_PI * f / 2 * t) * (0.6 + 0.4 * exp(-beat * 8));
		double hat = fmod(t + 0.38, 0.5) < 0.03 ? frnd() * 0.1 : 0;
		double pan = 0.5 + 0.3 * sin(2 * M_PI * 0.2 * t);
		double l = 0.15 * chord * pan + 0.25 * bass + 0.12 * burst + hat;
		double r = 0.15 * chord * (1 - pan) + 0.25 * bass + 0.1 * burst - hat;
		if (channels == 1) {
			p->samples[i] = (float)(0.5 * (l + r));
		} else {
			p->samples[2 * i] = (float)l;
			p->samples[2 * i + 1] = (float)r;
		}
	}
	return p;
}

static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, v & 0xffff); put16(p + 2, v >> 16); }

enum { ENC_I16, ENC_I24, ENC_F32 };

/* An independent WAV writer, so the reader is not tested against itself. */
static uint8_t *make_wav(const struct pcm *p, int enc, int extensible, size_t *len)
{
	int bps = enc == ENC_I16 ? 2 : enc == ENC_I24 ? 3 : 4;
	size_t n = p->frames * (size_t)p->channels;
	size_t fmt_len = extensible ? 40 : 16;
	size_t total = 12 + 8 + fmt_len + 8 + n * (size_t)bps;
	uint8_t *b = xcalloc(1, total);
	memcpy(b, "RIFF", 4);
	put32(b + 4, (uint32_t)(total - 8));
	memcpy(b + 8, "WAVEfmt ", 8);
	put32(b + 16, (uint32_t)fmt_len);
	uint8_t *f = b + 20;
	uint32_t tag = enc == ENC_F32 ? 3 : 1;
	put16(f, extensible ? 0xfffe : tag);
	put16(f + 2, (uint32_t)p->channels);
	put32(f + 4, (uint32_t)p->rate);
	put32(f + 8, (uint32_t)(p->rate * p->channels * bps));
	put16(f + 12, (uint32_t)(p->channels * bps));
	put16(f + 14, (uint32_t)(bps * 8));
	if (extensible) {
		put16(f + 16, 22);
		put16(f + 18, (uint32_t)(bps * 8));
		put32(f + 20, p->channels == 1 ? 4 : 3);
		put16(f + 24, tag);
		memcpy(f + 26, "\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71", 14);
	}
	uint8_t *d = f + fmt_len;
	memcpy(d, "data", 4);
	put32(d + 4, (uint32_t)(n * (size_t)bps));
	d += 8;
	for (size_t i = 0; i < n; i++, d += bps) {
		float v = p->samples[i];
		if (enc == ENC_I16) {
			put16(d, (uint32_t)(uint16_t)(int16_t)lrintf(v * 32767.0f));
		} else if (enc == ENC_I24) {
			int32_t x = (int32_t)lrintf(v * 8388607.0f);
			d[0] = (uint8_t)x;
			d[1] = (uint8_t)(x >> 8);
			d[2] = (uint8_t)(x >> 16);
		} else {
			uint32_t u;
			memcpy(&u, &v, 4);
			put32(d, u);
		}
	}
	*len = total;
	return b;
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
	double m = 0;
	for (size_t i = 0; i < n; i++)
		if (fabs((double)a[i] - b[i]) > m)
			m = fabs((double)a[i] - b[i]);
	return m;
}

/* ---------- audiofile ---------- */

static void test_wav_formats_read_back_what_was_written(void)
{
	static const int encs[] = {ENC_I16, ENC_I24, ENC_F32};
	static const double tol[] = {1.0 / 16384, 1.0 / 4194304, 0};
	for (int e = 0; e < 3; e++)
		for (int ch = 1; ch <= 2; ch++)
			for (int ri = 0; ri < 2; ri++)
				for (int ext = 0; ext < 2; ext++) {
					int rate = ri ? 48000 : 44100;
					struct pcm *src = music(rate, ch, 0.25);
					size_t len;
					uint8_t *w = make_wav(src, encs[e], ext, &len);
					struct pcm *got = NULL;
					char err[128] = "";
					int r = audiofile_read_mem(w, len, &got, err, sizeof(err));
					CHECK(r == 0, "enc %d ch %d rate %d ext %d: expected 0, got %d (%s)", e, ch, rate, ext, r, err);
					if (got) {
						CHECK_INT(got->rate, rate);
						CHECK_INT(got->channels, ch);
						CHECK_INT(got->frames, src->frames);
						double d = max_abs_diff(got->samples, src->samples, src->frames * (size_t)ch);
						CHECK(d <= tol[e], "enc %d: max error %g > %g", e, d, tol[e]);
					}
					pcm_free(got);
					pcm_free(src);
					free(w);
				}
}

static void test_write_wav_then_read_file_round_trips(void)
{
	struct pcm *src = music(44100, 2, 0.5);
	char dir[256], path[512];
	CHECK(tap_mkdtemp(dir, sizeof(dir), "encore-test") != NULL, "mkdtemp failed");
	snprintf(path, sizeof(path), "%s/out.wav", dir);
	CHECK_INT(audiofile_write_wav(path, src), 0);
	struct pcm *got = NULL;
	char err[128] = "";
	CHECK_INT(audiofile_read(path, &got, err, sizeof(err)), 0);
	if (got) {
		CHECK_INT(got->frames, src->frames);
		double d = max_abs_diff(got->samples, src->samples, src->frames * 2);
		CHECK(d <= 1.0 / 16384, "max error %g", d);
	}
	unlink(path);
	rmdir(dir);
	pcm_free(got);
	pcm_free(src);
}

struct membuf {
	uint8_t *data;
	size_t len, cap;
};

static FLAC__StreamEncoderWriteStatus flac_sink(const FLAC__StreamEncoder *e, const FLAC__byte buffer[], size_t bytes,
						uint32_t samples, uint32_t frame, void *ud)
{
	struct membuf *m = ud;
	if (m->len + bytes > m->cap) {
		m->cap = (m->len + bytes) * 2;
		m->data = xrealloc(m->data, m->cap);
	}
	memcpy(m->data + m->len, buffer, bytes);
	m->len += bytes;
	return FLAC__STREAM_ENCODER_WRITE_STATUS_OK;
}

/* Encodes with libFLAC to memory. Without seek callbacks the encoder cannot rewrite
 * STREAMINFO, so the total-samples estimate we give is what readers see. */
static uint8_t *make_flac(const struct pcm *p, int bits, size_t *len)
{
	struct membuf m = {0};
	FLAC__StreamEncoder *e = FLAC__stream_encoder_new();
	FLAC__stream_encoder_set_channels(e, (uint32_t)p->channels);
	FLAC__stream_encoder_set_bits_per_sample(e, (uint32_t)bits);
	FLAC__stream_encoder_set_sample_rate(e, (uint32_t)p->rate);
	FLAC__stream_encoder_set_total_samples_estimate(e, p->frames);
	FLAC__stream_encoder_init_stream(e, flac_sink, NULL, NULL, NULL, &m);
	size_t n = p->frames * (size_t)p->channels;
	FLAC__int32 *buf = xmalloc(sizeof(*buf) * n);
	double scale = (double)((1 << (bits - 1)) - 1);
	for (size_t i = 0; i < n; i++)
		buf[i] = (FLAC__int32)lrint(p->samples[i] * scale);
	FLAC__stream_encoder_process_interleaved(e, buf, (uint32_t)p->frames);
	FLAC__stream_encoder_finish(e);
	FLAC__stream_encoder_delete(e);
	free(buf);
	*len = m.len;
	return m.data;
}

static void test_flac_16_and_24_bit_read_back(void)
{
	for (int bits = 16; bits <= 24; bits += 8) {
		struct pcm *src = music(48000, 2, 1.0);
		size_t len;
		uint8_t *f = make_flac(src, bits, &len);
		struct pcm *got = NULL;
		char err[128] = "";
		int r = audiofile_read_mem(f, len, &got, err, sizeof(err));
		CHECK(r == 0, "bits %d: got %d (%s)", bits, r, err);
		if (got) {
			CHECK_INT(got->rate, 48000);
			CHECK_INT(got->channels, 2);
			CHECK_INT(got->frames, src->frames);
			double d = max_abs_diff(got->samples, src->samples, src->frames * 2);
			CHECK(d <= 2.0 / (1 << (bits - 1)), "bits %d: max error %g", bits, d);
		}
		pcm_free(got);
		pcm_free(src);
		free(f);
	}
}

static void test_bad_sources_are_refused_with_a_clear_message(void)
{
	struct pcm *src = music(44100, 2, 0.1);
	size_t wlen, flen;
	uint8_t *wav = make_wav(src, ENC_I16, 0, &wlen);
	uint8_t *flac = make_flac(src, 16, &flen);
	uint8_t *b = xmalloc(wlen + flen + 64);
	char err[160];
	struct pcm *got;
	size_t data_bytes = src->frames * 4;

	struct {
		const char *name;
		int code;
		const char *msg;   /* exact, or a prefix when it ends in '*' */
	} cases[] = {
		{"empty", -EINVAL, "empty file"},
		{"text", -EINVAL, "not a WAV or FLAC file"},
		{"truncated data", -EIO, NULL},
		{"22050 Hz", -EINVAL, "unsupported sample rate 22050 (need 44100 or 48000)"},
		{"3 channels", -EINVAL, "unsupported channel count 3 (need 1 or 2)"},
		{"8-bit", -EINVAL, "unsupported integer bit depth 8*"},
		{"ADPCM", -EINVAL, "unsupported WAV encoding (format tag 0x0002*"},
		{"no data chunk", -EIO, "WAV without a data chunk"},
		{"huge fmt", -EIO, "truncated or malformed fmt chunk*"},
		{"zero frames", -EINVAL, "no audio frames in data chunk"},
		{"truncated flac", -EIO, "truncated FLAC*"},
		{"corrupt flac", -EIO, "*"},
		{"flac header only", -EIO, "*"},
	};
	char truncated_msg[96];
	snprintf(truncated_msg, sizeof(truncated_msg), "truncated data chunk: expected %zu bytes, found %zu", data_bytes,
		 data_bytes - 1000);
	cases[2].msg = truncated_msg;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = wlen;
		memcpy(b, wav, wlen);
		switch (i) {
		case 0: len = 0; break;
		case 1: strcpy((char *)b, "hello, this is not audio at all"); len = 31; break;
		case 2: len = wlen - 1000; break;
		case 3: put32(b + 24, 22050); break;
		case 4: put16(b + 22, 3); break;
		case 5: put16(b + 34, 8); put16(b + 32, 2); break;
		case 6: put16(b + 20, 2); break;
		case 7: memcpy(b + 36, "junk", 4); break;
		case 8: put32(b + 16, 0x7fffffff); break;
		case 9: put32(b + 40, 0); break;
		case 10: memcpy(b, flac, flen); len = flen * 2 / 3; break;
		case 11:
			memcpy(b, flac, flen);
			len = flen;
			for (size_t j = flen / 2; j < flen / 2 + 64; j++)
				b[j] ^= 0x5a;
			break;
		case 12: memcpy(b, flac, flen); len = 42; break;
		}
		got = NULL;
		err[0] = 0;
		int r = audiofile_read_mem(b, len, &got, err, sizeof(err));
		CHECK(r == cases[i].code, "%s: expected %d, got %d (%s)", cases[i].name, cases[i].code, r, err);
		CHECK(got == NULL, "%s: output on failure", cases[i].name);
		size_t ml = strlen(cases[i].msg);
		int ok = cases[i].msg[ml - 1] == '*' ? strncmp(err, cases[i].msg, ml - 1) == 0 && err[0]
						     : strcmp(err, cases[i].msg) == 0;
		CHECK(ok, "%s: expected message \"%s\", got \"%s\"", cases[i].name, cases[i].msg, err);
		pcm_free(got);
	}
	free(b);
	free(wav);
	free(flac);
	pcm_free(src);
}

/* Random corruption must never crash or yield an inconsistent pcm (ASan/UBSan run this). */
static void test_mutated_sources_never_crash(void)
{
	struct pcm *src = music(44100, 2, 0.05);
	size_t wlen, flen;
	uint8_t *wav = make_wav(src, ENC_I24, 1, &wlen);
	uint8_t *flac = make_flac(src, 16, &flen);
	int accepted = 0, refused = 0;
	rng_state = 777;
	for (int it = 0; it < 3000; it++) {
		const uint8_t *base = it & 1 ? flac : wav;
		size_t len = it & 1 ? flen : wlen;
		uint8_t *b = xmalloc(len);
		memcpy(b, base, len);
		int flips = 1 + (int)(rnd() % 4);
		for (int f = 0; f < flips; f++) {
			/* Mostly headers, where the size fields live. */
			size_t at = rnd() % 2 ? rnd() % 80 : rnd() % len;
			b[at] = (uint8_t)rnd();
		}
		if (rnd() % 4 == 0)
			len = rnd() % len;
		struct pcm *got = NULL;
		char err[128] = "";
		int r = audiofile_read_mem(b, len, &got, err, sizeof(err));
		if (r == 0) {
			accepted++;
			CHECK(got && got->frames > 0 && (got->channels == 1 || got->channels == 2) &&
				      (got->rate == 44100 || got->rate == 48000),
			      "inconsistent pcm accepted");
		} else {
			refused++;
			CHECK(got == NULL && err[0], "refusal without message (r=%d)", r);
		}
		pcm_free(got);
		free(b);
	}
	printf("# mutated sources: %d accepted, %d refused\n", accepted, refused);
	CHECK(refused > 0, "no mutation was refused");
	free(wav);
	free(flac);
	pcm_free(src);
}

/* ---------- segment format ---------- */

static const uint8_t fake_hdr0[] = "\x01vorbis-id";
static const uint8_t fake_hdr1[] = "\x03vorbis-comment";
static const uint8_t fake_hdr2[] = "\x05vorbis-setup-setup";

static struct segment_init sample_init(void)
{
	struct segment_init in = {.channels = 1, .rate = 22050, .bitrate = 24000, .source_rate = 44100,
				  .segment_seconds = SEGMENT_SECONDS, .source_frames = 44100 * 5 + 1};
	in.total_samples = 22050 * 5 + 1;   /* ceil(source_frames / 2) */
	in.segment_count = 2;
	in.header[0] = fake_hdr0;
	in.header_len[0] = sizeof(fake_hdr0) - 1;
	in.header[1] = fake_hdr1;
	in.header_len[1] = sizeof(fake_hdr1) - 1;
	in.header[2] = fake_hdr2;
	in.header_len[2] = sizeof(fake_hdr2) - 1;
	return in;
}

static uint8_t pk_bytes[3][300];

static void sample_segment(struct segment *s, struct segment_packet *p)
{
	for (int i = 0; i < 3; i++)
		memset(pk_bytes[i], 'a' + i, sizeof(pk_bytes[i]));
	p[0] = (struct segment_packet){pk_bytes[0], 100, 88000};
	p[1] = (struct segment_packet){pk_bytes[1], 300, 88200 + 1000};
	p[2] = (struct segment_packet){pk_bytes[2], 7, 88200 + 2000};
	*s = (struct segment){.index = 1, .start = 88200, .count = 1500, .npackets = 3, .packets = p};
}

static void test_segment_and_init_round_trip(void)
{
	struct segment s, got;
	struct segment_packet p[3];
	sample_segment(&s, p);
	uint8_t *buf;
	size_t len;
	CHECK_INT(segment_write(&s, &buf, &len), 0);
	CHECK_INT(len, SEGMENT_HEADER_BYTES + 3 * 4 + 407);
	CHECK_INT(segment_parse(buf, len, &got), 0);
	CHECK_INT(got.index, 1);
	CHECK_INT(got.start, 88200);
	CHECK_INT(got.count, 1500);
	CHECK_INT(got.npackets, 3);
	for (uint32_t i = 0; i < got.npackets && i < 3; i++) {
		CHECK_INT(got.packets[i].len, p[i].len);
		CHECK_INT(got.packets[i].granule, p[i].granule);
		CHECK(memcmp(got.packets[i].data, p[i].data, p[i].len) == 0, "packet %u bytes differ", i);
	}
	segment_clear(&got);
	free(buf);

	struct segment_init in = sample_init(), gi;
	CHECK_INT(segment_init_write(&in, &buf, &len), 0);
	CHECK_INT(segment_init_parse(buf, len, &gi), 0);
	CHECK_INT(gi.channels, 1);
	CHECK_INT(gi.rate, 22050);
	CHECK_INT(gi.source_rate, 44100);
	CHECK_INT(gi.bitrate, 24000);
	CHECK_INT(gi.total_samples, in.total_samples);
	CHECK_INT(gi.source_frames, in.source_frames);
	CHECK_INT(gi.segment_count, in.segment_count);
	for (int i = 0; i < 3; i++)
		CHECK(gi.header_len[i] == in.header_len[i] && memcmp(gi.header[i], in.header[i], in.header_len[i]) == 0,
		      "header %d differs", i);
	free(buf);

	uint8_t h1[SEGMENT_HASH_BYTES], h2[SEGMENT_HASH_BYTES];
	char hex[65];
	segment_hash((const uint8_t *)"abc", 3, h1);
	segment_hash((const uint8_t *)"abd", 3, h2);
	CHECK(memcmp(h1, h2, sizeof(h1)) != 0, "hash ignores content");
	segment_hash_hex((const uint8_t *)"", 0, hex);
	/* BLAKE2b-256 of the empty string. */
	CHECK_STR(hex, "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
}

static void test_segment_parser_refuses_malformed_input(void)
{
	struct segment s, got;
	struct segment_packet p[3];
	sample_segment(&s, p);
	uint8_t *good;
	size_t len;
	segment_write(&s, &good, &len);
	/* Every strict prefix and a one-byte extension are malformed. */
	int accepted = 0;
	for (size_t l = 0; l < len; l++)
		if (segment_parse(good, l, &got) == 0) {
			accepted++;
			segment_clear(&got);
		}
	CHECK_INT(accepted, 0);
	uint8_t *b = xmalloc(len + 1);
	memcpy(b, good, len);
	b[len] = 0;
	CHECK_INT(segment_parse(b, len + 1, &got), -EBADMSG);

	struct {
		const char *name;
		size_t off;
		int width;
		uint32_t value;
		int want;
	} cases[] = {
		{"bad magic", 0, 1, 'X', -EBADMSG},
		{"future version", 4, 1, 2, -EPROTONOSUPPORT},
		{"reserved flags", 5, 1, 1, -EBADMSG},
		{"one packet", 6, 2, 1, -EBADMSG},
		{"packet count past buffer", 6, 2, 4000, -EBADMSG},
		{"packet count over limit", 6, 2, 60000, -EBADMSG},
		{"zero count", 12, 4, 0, -EBADMSG},
		{"count beyond packets", 12, 4, 5000, -EBADMSG},
		{"preroll after start", 24, 4, 88201, -EBADMSG},
		{"oversized packet length", 32, 2, 0xffff, -EBADMSG},
		{"zero packet length", 36, 2, 0, -EBADMSG},
		{"preroll with samples", 34, 2, 5, -EBADMSG},
		{"packet without samples", 38, 2, 0, -EBADMSG},
		{"packet over 4096 samples", 38, 2, 5000, -EBADMSG},
		{"lengths short of buffer", 40, 2, 6, -EBADMSG},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memcpy(b, good, len);
		if (cases[i].width == 1)
			b[cases[i].off] = (uint8_t)cases[i].value;
		else if (cases[i].width == 2)
			put16(b + cases[i].off, cases[i].value);
		else
			put32(b + cases[i].off, cases[i].value);
		int r = segment_parse(b, len, &got);
		CHECK(r == cases[i].want, "%s: expected %d, got %d", cases[i].name, cases[i].want, r);
		if (r == 0)
			segment_clear(&got);
	}
	/* Random garbage behind a valid magic never reads out of bounds (ASan). */
	for (int it = 0; it < 2000; it++) {
		size_t l = rnd() % (len + 1);
		for (size_t j = 0; j < l; j++)
			b[j] = (uint8_t)rnd();
		if (l >= 4)
			memcpy(b, "ENCS", 4);
		if (l >= 5)
			b[4] = 1;
		if (segment_parse(b, l, &got) == 0)
			segment_clear(&got);
	}
	/* The writer refuses what the parser would. */
	uint8_t *o = NULL;
	size_t ol;
	p[0].granule = 88201;
	CHECK_INT(segment_write(&s, &o, &ol), -EINVAL);
	free(o);
	free(b);
	free(good);

	struct segment_init in = sample_init(), gi;
	segment_init_write(&in, &good, &len);
	accepted = 0;
	for (size_t l = 0; l < len; l++)
		accepted += segment_init_parse(good, l, &gi) == 0;
	CHECK_INT(accepted, 0);
	b = xmalloc(len);
	struct {
		const char *name;
		size_t off;
		int width;
		uint32_t value;
	} icases[] = {
		{"channels 3", 5, 1, 3},
		{"rate 0", 8, 4, 0},
		{"rate huge", 8, 4, 1u << 31},
		{"total inconsistent", 24, 4, 7},
		{"source frames 0", 32, 4, 0},
		{"segment count wrong", 20, 4, 3},
		{"header length huge", 40, 4, 0xfffffff0u},
		{"header length short", 44, 4, 3},
		{"header not vorbis", SEGMENT_INIT_FIXED_BYTES + 1, 1, 'x'},
	};
	for (size_t i = 0; i < sizeof(icases) / sizeof(icases[0]); i++) {
		memcpy(b, good, len);
		if (icases[i].width == 1)
			b[icases[i].off] = (uint8_t)icases[i].value;
		else
			put32(b + icases[i].off, icases[i].value);
		int r = segment_init_parse(b, len, &gi);
		CHECK(r == -EBADMSG, "%s: expected %d, got %d", icases[i].name, -EBADMSG, r);
	}
	free(b);
	free(good);
}

/* ---------- resampler ---------- */

/* Error of resampling a tone against the ideal band-limited result, in dB below the tone
 * (a tone above the output Nyquist should vanish entirely). */
static double tone_error_db(int in_rate, int out_rate, double freq)
{
	size_t n = (size_t)in_rate;
	float *in = xmalloc(sizeof(float) * n);
	for (size_t i = 0; i < n; i++)
		in[i] = (float)(0.5 * sin(2 * M_PI * freq * (double)i / in_rate));
	struct resample *r = resample_new(in_rate, out_rate, 1);
	size_t m = (size_t)resample_output_frames(r, n);
	float *out = xmalloc(sizeof(float) * m);
	resample_run(r, in, 0, n, out, 0, m);
	double e = 0, s = 0;
	for (size_t j = m / 10; j < m - m / 10; j++) {   /* away from the cut ends */
		double want = freq < out_rate / 2.0 ? 0.5 * sin(2 * M_PI * freq * (double)j / out_rate) : 0;
		e += (out[j] - want) * (out[j] - want);
		s += 0.125;
	}
	resample_free(r);
	free(in);
	free(out);
	return 10 * log10(e / s + 1e-30);
}

static void test_resampler_is_accurate_and_band_limited(void)
{
	double up = tone_error_db(22050, 44100, 1000);
	double conv = tone_error_db(48000, 44100, 5000);
	double down = tone_error_db(44100, 22050, 3000);
	double alias = tone_error_db(44100, 22050, 15000);   /* must be removed, not folded to 7050 Hz */
	printf("# resampler error: 22.05->44.1k %.1f dB, 48->44.1k %.1f dB, 44.1->22.05k %.1f dB, alias %.1f dB\n", up,
	       conv, down, alias);
	CHECK(up < -70, "up-sampling error %.1f dB", up);
	CHECK(conv < -70, "48->44.1 error %.1f dB", conv);
	CHECK(down < -70, "down-sampling error %.1f dB", down);
	CHECK(alias < -70, "alias leakage %.1f dB", alias);
	CHECK(resample_new(44100, 44101, 1) == NULL, "absurd ratio accepted");
}

static void test_resampler_by_pieces_equals_whole(void)
{
	struct pcm *p = music(22050, 2, 1.0);
	struct resample *r = resample_new(22050, 44100, 2);
	size_t m = (size_t)resample_output_frames(r, p->frames);
	float *whole = xmalloc(sizeof(float) * m * 2), *piece = xmalloc(sizeof(float) * m * 2);
	resample_run(r, p->samples, 0, p->frames, whole, 0, m);
	for (size_t at = 0; at < m;) {
		size_t c = 1 + rnd() % 5000;
		if (c > m - at)
			c = m - at;
		int64_t ia;
		size_t ic;
		resample_input_span(r, (int64_t)at, c, &ia, &ic);
		int64_t a = ia < 0 ? 0 : ia;
		int64_t b = ia + (int64_t)ic > (int64_t)p->frames ? (int64_t)p->frames : ia + (int64_t)ic;
		resample_run(r, p->samples + a * 2, a, (size_t)(b - a), piece + at * 2, (int64_t)at, c);
		at += c;
	}
	CHECK(memcmp(whole, piece, sizeof(float) * m * 2) == 0, "piecewise differs by up to %g",
	      max_abs_diff(whole, piece, m * 2));
	resample_free(r);
	free(whole);
	free(piece);
	pcm_free(p);
}

/* ---------- transcode + decode ---------- */

#define TRACK_SECONDS 20.3
static struct pcm *track;
static struct transcode_output *rend[TRANSCODE_NRUNGS];

static void encode_track(void)
{
	track = music(44100, 2, TRACK_SECONDS);
	for (int i = 0; i < TRANSCODE_NRUNGS; i++) {
		char err[128] = "";
		int r = transcode_rendition(track, transcode_rungs[i], &rend[i], err, sizeof(err));
		if (r) {
			printf("Bail out! transcode %d kbps: %s\n", transcode_rungs[i], err);
			exit(1);
		}
	}
}

/* Decodes every segment of o in order with a fresh decoder; returns stereo frames. */
static float *decode_all(const struct transcode_output *o, int out_rate, size_t *frames, int *ok)
{
	struct decoder *d = decoder_new(out_rate);
	*ok = decoder_set_init(d, o->init, o->init_len) == 0;
	uint64_t total = decoder_total_frames(d);
	float *all = xcalloc(total ? total * 2 : 2, sizeof(float));
	size_t at = 0;
	for (uint32_t k = 0; k < o->nsegments && *ok; k++) {
		float *pcm;
		size_t n, want;
		uint64_t start;
		decoder_segment_range(d, k, &start, &want);
		int r = decoder_decode(d, o->segments[k], o->segment_lens[k], &pcm, &n);
		if (r || n != want || start != at || at + n > total) {
			printf("#   segment %u: r=%d frames %zu want %zu start %llu at %zu\n", k, r, n, want,
			       (unsigned long long)start, at);
			*ok = 0;
		} else {
			memcpy(all + at * 2, pcm, sizeof(float) * n * 2);
			at += n;
		}
		free(pcm);
	}
	*frames = at;
	decoder_free(d);
	return all;
}

struct pieces {
	float *buf;
	size_t n, count, largest, stop_after;
};

static int take_piece(void *ud, const float *frames, size_t n)
{
	struct pieces *p = ud;
	p->buf = xrealloc(p->buf, (p->n + n) * 2 * sizeof(float));
	memcpy(p->buf + p->n * 2, frames, n * 2 * sizeof(float));
	p->n += n;
	p->count++;
	if (n > p->largest)
		p->largest = n;
	return p->stop_after && p->count == p->stop_after ? 7 : 0;
}

/* A fresh decoder's whole-segment output for segment k of o. */
static float *decode_one(const struct transcode_output *o, uint32_t k, size_t *n)
{
	struct decoder *d = decoder_new(44100);
	float *pcm = NULL;
	*n = 0;
	if (decoder_set_init(d, o->init, o->init_len) != 0 || decoder_decode(d, o->segments[k], o->segment_lens[k], &pcm, n) != 0)
		*n = 0;
	decoder_free(d);
	return pcm;
}

static void test_streamed_decode_comes_in_pieces_that_add_up_to_the_segment(void)
{
	for (int i = 0; i < TRANSCODE_NRUNGS; i++) {
		const struct transcode_output *o = rend[i];
		size_t whole_n;
		float *whole = decode_one(o, 1, &whole_n);
		struct decoder *d = decoder_new(44100);
		struct pieces p = {0};
		CHECK_INT(decoder_set_init(d, o->init, o->init_len), 0);
		CHECK_INT(decoder_decode_stream(d, o->segments[1], o->segment_lens[1], take_piece, &p), 0);
		/* 4 s of audio in pieces of at most DECODER_EMIT_FRAMES: the first audio leaves
		 * long before the segment is decoded. */
		CHECK(p.count >= whole_n / DECODER_EMIT_FRAMES, "%d kbps: expected >= %zu pieces, got %zu", transcode_rungs[i],
		      whole_n / DECODER_EMIT_FRAMES, p.count);
		CHECK(p.largest <= DECODER_EMIT_FRAMES, "%d kbps: expected pieces <= %d frames, got %zu", transcode_rungs[i],
		      DECODER_EMIT_FRAMES, p.largest);
		CHECK(whole_n > 0 && p.n == whole_n && memcmp(p.buf, whole, whole_n * 2 * sizeof(float)) == 0,
		      "%d kbps: expected the pieces to equal the whole decode (%zu frames), got %zu frames", transcode_rungs[i],
		      whole_n, p.n);
		decoder_free(d);
		free(p.buf);
		free(whole);
	}
}

static void test_emit_stops_a_decode_and_the_next_segment_still_decodes_exactly(void)
{
	const struct transcode_output *o = rend[TRANSCODE_NRUNGS - 1];
	struct decoder *d = decoder_new(44100);
	struct pieces p = {.stop_after = 1};
	CHECK_INT(decoder_set_init(d, o->init, o->init_len), 0);
	CHECK_INT(decoder_decode_stream(d, o->segments[0], o->segment_lens[0], take_piece, &p), 7);
	CHECK_INT(p.count, 1);
	size_t n0, n1, got;
	float *first = decode_one(o, 0, &n0);
	CHECK(p.n > 0 && p.n <= n0 && memcmp(p.buf, first, p.n * 2 * sizeof(float)) == 0,
	      "expected the first piece to be the segment's first %zu frames", p.n);
	float *want = decode_one(o, 1, &n1), *pcm = NULL;
	CHECK_INT(decoder_decode(d, o->segments[1], o->segment_lens[1], &pcm, &got), 0);
	CHECK(got == n1 && n1 > 0 && memcmp(pcm, want, n1 * 2 * sizeof(float)) == 0,
	      "expected segment 1 after a stopped segment 0 to decode as from scratch (%zu frames), got %zu", n1, got);
	free(pcm);
	free(want);
	free(first);
	free(p.buf);
	decoder_free(d);
}

static void test_every_rung_decodes_to_the_exact_source_sample_count(void)
{
	for (int i = 0; i < TRANSCODE_NRUNGS; i++) {
		size_t n;
		int ok;
		float *pcm = decode_all(rend[i], 0, &n, &ok);
		CHECK(ok, "%d kbps: decoding failed", transcode_rungs[i]);
		CHECK(n == track->frames, "%d kbps: expected %zu frames, got %zu", transcode_rungs[i], track->frames, n);
		free(pcm);
	}
}

/* SNR of decoded against reference (both stereo) at the best alignment within +-64. */
static double snr_db(const float *ref, const float *got, size_t n, int *best_lag)
{
	double best = -1e9;
	for (int lag = -64; lag <= 64; lag++) {
		double s = 0, e = 0;
		for (size_t i = 2000; i + 2000 < n; i++) {
			size_t j = (size_t)((long)i + lag);
			for (int c = 0; c < 2; c++) {
				double r = ref[2 * i + c], g = got[2 * j + c];
				s += r * r;
				e += (r - g) * (r - g);
			}
		}
		double v = 10 * log10(s / (e + 1e-30));
		if (v > best) {
			best = v;
			*best_lag = lag;
		}
	}
	return best;
}

static void test_160k_snr_is_at_least_20_db_and_aligned(void)
{
	for (int i = 0; i < TRANSCODE_NRUNGS; i++) {
		size_t n;
		int ok, lag = 99;
		float *pcm = decode_all(rend[i], 0, &n, &ok);
		float *ref = track->samples;
		float *mono = NULL;
		if (rend[i]->channels == 1) {
			/* The low rung is a mono down-mix: compare against the down-mix. */
			mono = xmalloc(sizeof(float) * track->frames * 2);
			for (size_t j = 0; j < track->frames; j++)
				mono[2 * j] = mono[2 * j + 1] = 0.5f * (ref[2 * j] + ref[2 * j + 1]);
			ref = mono;
		}
		double snr = ok && n == track->frames ? snr_db(ref, pcm, n, &lag) : -99;
		printf("# %3d kbps: SNR %.1f dB at lag %d\n", transcode_rungs[i], snr, lag);
		CHECK_INT(lag, 0);
		if (transcode_rungs[i] == 160)
			CHECK(snr >= 20, "160 kbps SNR %.1f dB < 20", snr);
		free(mono);
		free(pcm);
	}
}

static void test_rung_sizes_per_minute_are_within_15_percent_of_nominal(void)
{
	double minutes = (double)track->frames / track->rate / 60.0;
	for (int i = 0; i < TRANSCODE_NRUNGS; i++) {
		size_t bytes = 0;
		for (uint32_t k = 0; k < rend[i]->nsegments; k++)
			bytes += rend[i]->segment_lens[k];
		double per_min = (double)bytes / minutes;
		double nominal = transcode_rungs[i] * 1000.0 / 8 * 60;
		printf("# %3d kbps (%d Hz %d ch): %.0f KB/min of segments (nominal %.0f, %+.1f%%), init %zu B, %u segments\n",
		       transcode_rungs[i], rend[i]->rate, rend[i]->channels, per_min / 1000, nominal / 1000,
		       100 * (per_min / nominal - 1), rend[i]->init_len, rend[i]->nsegments);
		CHECK(fabs(per_min / nominal - 1) <= 0.15, "%d kbps: %.0f B/min vs nominal %.0f", transcode_rungs[i],
		      per_min, nominal);
	}
}

/* A continuous decode of the rendition's packet stream with no restarts, rebuilt from the
 * segments' packets: the reference every segment-wise decode must match. */
static float *continuous_reference(const struct transcode_output *o, int out_rate, size_t *frames)
{
	struct segment_init in;
	segment_init_parse(o->init, o->init_len, &in);
	vorbis_info vi;
	vorbis_comment vc;
	vorbis_dsp_state vd;
	vorbis_block vb;
	vorbis_info_init(&vi);
	vorbis_comment_init(&vc);
	for (int i = 0; i < 3; i++) {
		ogg_packet op = {.packet = (unsigned char *)in.header[i], .bytes = (long)in.header_len[i], .b_o_s = i == 0};
		vorbis_synthesis_headerin(&vi, &vc, &op);
	}
	vorbis_synthesis_init(&vd, &vi);
	vorbis_block_init(&vd, &vb);
	int ch = in.channels;
	size_t cap = (size_t)in.total_samples + 16384;
	float *dec = xcalloc(cap * (size_t)ch, sizeof(float));
	size_t at = 0;
	int64_t last = -1;
	for (uint32_t k = 0; k < o->nsegments; k++) {
		struct segment s;
		segment_parse(o->segments[k], o->segment_lens[k], &s);
		for (uint32_t i = 0; i < s.npackets; i++) {
			if ((int64_t)s.packets[i].granule <= last)
				continue;   /* already fed from the previous segment */
			last = (int64_t)s.packets[i].granule;
			ogg_packet op = {.packet = (unsigned char *)s.packets[i].data, .bytes = (long)s.packets[i].len,
					 .granulepos = -1};
			vorbis_synthesis(&vb, &op);
			vorbis_synthesis_blockin(&vd, &vb);
			float **p;
			int n = vorbis_synthesis_pcmout(&vd, &p);
			for (int j = 0; j < n && at < cap; j++, at++)
				for (int c = 0; c < ch; c++)
					dec[at * (size_t)ch + (size_t)c] = p[c][j];
			vorbis_synthesis_read(&vd, n);
		}
		segment_clear(&s);
	}
	vorbis_block_clear(&vb);
	vorbis_dsp_clear(&vd);
	vorbis_comment_clear(&vc);
	vorbis_info_clear(&vi);
	size_t n = (size_t)in.total_samples;
	size_t outn = n;
	float *res = dec;
	if (in.rate != out_rate) {
		struct resample *r = resample_new(in.rate, out_rate, ch);
		outn = (size_t)((in.source_frames * (uint64_t)out_rate + (uint64_t)in.source_rate - 1) / (uint64_t)in.source_rate);
		res = xmalloc(sizeof(float) * outn * (size_t)ch);
		resample_run(r, dec, 0, n, res, 0, outn);
		resample_free(r);
		free(dec);
	}
	float *st = xmalloc(sizeof(float) * outn * 2);
	for (size_t j = 0; j < outn; j++) {
		st[2 * j] = res[j * (size_t)ch];
		st[2 * j + 1] = res[j * (size_t)ch + (size_t)ch - 1];
	}
	free(res);
	*frames = outn;
	return st;
}

static void test_segmentwise_decode_equals_continuous_decode(void)
{
	for (int i = 0; i < TRANSCODE_NRUNGS; i++) {
		size_t n, rn;
		int ok;
		float *seg = decode_all(rend[i], 44100, &n, &ok);
		float *ref = continuous_reference(rend[i], 44100, &rn);
		CHECK(ok && n == rn, "%d kbps: %zu vs %zu frames", transcode_rungs[i], n, rn);
		if (ok && n == rn) {
			double d = max_abs_diff(seg, ref, n * 2);
			printf("# %3d kbps: max |segment-wise - continuous| = %g\n", transcode_rungs[i], d);
			CHECK(d <= 1e-6, "%d kbps: segment-wise decode differs by %g", transcode_rungs[i], d);
		}
		free(seg);
		free(ref);
	}
}

static void test_segment_decoded_alone_after_other_renditions_equals_sequential(void)
{
	size_t n;
	int ok;
	float *seq = decode_all(rend[1], 0, &n, &ok);
	struct decoder *d = decoder_new(0);
	/* Out of order, each after another rendition's segment decoded under its own init. */
	uint32_t order[] = {3, 0, 4, 2, 1};
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		uint32_t k = order[i] % rend[1]->nsegments, other = (k + 1) % rend[0]->nsegments;
		float *pcm;
		size_t got, want;
		uint64_t start;
		decoder_set_init(d, rend[0]->init, rend[0]->init_len);
		decoder_decode(d, rend[0]->segments[other], rend[0]->segment_lens[other], &pcm, &got);
		free(pcm);
		CHECK_INT(decoder_set_init(d, rend[1]->init, rend[1]->init_len), 0);
		decoder_segment_range(d, k, &start, &want);
		CHECK_INT(decoder_decode(d, rend[1]->segments[k], rend[1]->segment_lens[k], &pcm, &got), 0);
		CHECK_INT(got, want);
		if (pcm && got == want && start + got <= n)
			CHECK(memcmp(pcm, seq + start * 2, sizeof(float) * got * 2) == 0, "segment %u differs", k);
		free(pcm);
	}
	/* A segment of another rendition under the wrong init is refused, not misplayed. */
	float *pcm;
	size_t got;
	CHECK_INT(decoder_decode(d, rend[0]->segments[1], rend[0]->segment_lens[1], &pcm, &got), -EBADMSG);
	decoder_free(d);
	free(seq);
}

/* Click metric: the step across a boundary, |y[b] - y[b-1]|, must be no larger than the
 * largest sample-to-sample step within 64 frames either side (per channel). A gap, a
 * dropped or repeated block, or a level/phase mismatch between renditions shows up as an
 * outlier step at b. Returns the number of boundary-channels that fail. */
static int clicks(const float *y, size_t n, const size_t *bounds, int nb, double *worst_ratio)
{
	int bad = 0;
	*worst_ratio = 0;
	for (int k = 0; k < nb; k++) {
		size_t b = bounds[k];
		if (b < 66 || b + 65 > n)
			continue;
		for (int c = 0; c < 2; c++) {
			double step = fabs(y[2 * b + c] - y[2 * (b - 1) + c]), local = 0;
			for (size_t i = b - 64; i < b + 64; i++)
				if (i != b) {
					double s = fabs(y[2 * i + c] - y[2 * (i - 1) + c]);
					local = s > local ? s : local;
				}
			double ratio = step / (local + 1e-9);
			*worst_ratio = ratio > *worst_ratio ? ratio : *worst_ratio;
			bad += step > local;
		}
	}
	return bad;
}

/* Decodes the track alternating renditions a and b at every boundary. */
static float *decode_switching(int a, int b, size_t *frames, size_t *bounds, int *nb)
{
	struct decoder *d = decoder_new(44100);
	uint64_t total = 0;
	float *y = NULL;
	size_t at = 0;
	*nb = 0;
	for (uint32_t k = 0; k < rend[a]->nsegments; k++) {
		const struct transcode_output *o = rend[k % 2 ? b : a];
		decoder_set_init(d, o->init, o->init_len);
		if (!y) {
			total = decoder_total_frames(d);
			y = xcalloc(total * 2, sizeof(float));
		}
		float *pcm;
		size_t n;
		if (decoder_decode(d, o->segments[k], o->segment_lens[k], &pcm, &n) == 0 && at + n <= total) {
			memcpy(y + at * 2, pcm, sizeof(float) * n * 2);
			if (k > 0)
				bounds[(*nb)++] = at;
			at += n;
		}
		free(pcm);
	}
	decoder_free(d);
	*frames = at;
	return y;
}

static void test_switch_bitrate_at_every_boundary_is_gapless(void)
{
	int pairs[][2] = {{3, 1}, {2, 0}};   /* 320<->96, and 160<->24 (rate and channel change) */
	for (int p = 0; p < 2; p++) {
		size_t n, bounds[64];
		int nb;
		float *y = decode_switching(pairs[p][0], pairs[p][1], &n, bounds, &nb);
		CHECK(n == track->frames, "expected %zu frames, got %zu", track->frames, n);
		double worst;
		int bad = clicks(y, n, bounds, nb, &worst);
		printf("# switching %d<->%d kbps at %d boundaries: worst step / local max step = %.2f\n",
		       transcode_rungs[pairs[p][0]], transcode_rungs[pairs[p][1]], nb, worst);
		CHECK(bad == 0, "%d boundary steps exceed the local maximum", bad);

		/* The metric must catch a real defect: drop 37 frames at each boundary. */
		float *cut = xmalloc(sizeof(float) * n * 2);
		memcpy(cut, y, sizeof(float) * n * 2);
		for (int k = 0; k < nb; k++) {
			size_t b = bounds[k];
			if (b + 37 + 100 < n)
				memmove(cut + 2 * b, cut + 2 * (b + 37), sizeof(float) * 2 * 100);
		}
		double w2;
		int detected = clicks(cut, n, bounds, nb, &w2);
		printf("# same with 37 frames dropped at each boundary: %d of %d boundary-channels flagged\n", detected, 2 * nb);
		CHECK(detected >= nb, "metric caught only %d of %d glitched boundary-channels", detected, 2 * nb);
		free(cut);
		free(y);
	}
}

static void test_48k_mono_source_stays_sample_accurate_at_any_output_rate(void)
{
	struct pcm *src = music(48000, 1, 5.01);
	for (int r = 0; r < TRANSCODE_NRUNGS; r += 3) {
		struct transcode_output *o;
		char err[128] = "";
		int rc = transcode_rendition(src, transcode_rungs[r], &o, err, sizeof(err));
		CHECK(rc == 0, "%d kbps: %s", transcode_rungs[r], err);
		if (rc)
			continue;
		size_t n;
		int ok;
		float *pcm = decode_all(o, 0, &n, &ok);
		CHECK(ok && n == src->frames, "%d kbps native: expected %zu frames, got %zu", transcode_rungs[r], src->frames, n);
		free(pcm);
		pcm = decode_all(o, 44100, &n, &ok);
		size_t want = (src->frames * 44100 + 47999) / 48000;
		CHECK(ok && n == want, "%d kbps at 44.1k: expected %zu frames, got %zu", transcode_rungs[r], want, n);
		free(pcm);
		transcode_output_free(o);
	}
	pcm_free(src);
}

static void test_corrupt_segments_are_refused_or_decoded_at_declared_length(void)
{
	struct decoder *d = decoder_new(0);
	decoder_set_init(d, rend[0]->init, rend[0]->init_len);
	const struct transcode_output *o = rend[0];
	int refused = 0;
	rng_state = 99;
	for (int it = 0; it < 300; it++) {
		uint32_t k = rnd() % o->nsegments;
		size_t len = o->segment_lens[k];
		uint8_t *b = xmalloc(len);
		memcpy(b, o->segments[k], len);
		for (int f = 0; f < 8; f++)
			b[rnd() % len] = (uint8_t)rnd();
		float *pcm;
		size_t n, want;
		uint64_t start;
		int r = decoder_decode(d, b, len, &pcm, &n);
		if (r == 0) {
			decoder_segment_range(d, k, &start, &want);
			CHECK(n == want, "corrupt segment decoded to %zu frames, want %zu", n, want);
		} else {
			refused++;
			CHECK(pcm == NULL && n == 0, "output on failure");
		}
		free(pcm);
		free(b);
	}
	printf("# corrupt segments: %d of 300 refused\n", refused);
	CHECK(decoder_set_init(d, (const uint8_t *)"ENCI", 4) == -EBADMSG, "garbage init accepted");
	decoder_free(d);
}

struct job {
	const struct pcm *src;
	struct transcode_output *out;
};

static void *transcode_job(void *arg)
{
	struct job *j = arg;
	char err[128];
	transcode_rendition(j->src, 96, &j->out, err, sizeof(err));
	return NULL;
}

static void test_concurrent_transcodes_match_serial_output(void)
{
	struct pcm *src = music(44100, 2, 2.0);
	struct job jobs[3] = {{src, NULL}, {src, NULL}, {src, NULL}};
	pthread_t t[2];
	pthread_create(&t[0], NULL, transcode_job, &jobs[0]);
	pthread_create(&t[1], NULL, transcode_job, &jobs[1]);
	transcode_job(&jobs[2]);
	pthread_join(t[0], NULL);
	pthread_join(t[1], NULL);
	for (int i = 0; i < 2; i++) {
		CHECK(jobs[i].out && jobs[2].out, "transcode failed");
		if (!jobs[i].out || !jobs[2].out)
			continue;
		CHECK_INT(jobs[i].out->nsegments, jobs[2].out->nsegments);
		int same = jobs[i].out->init_len == jobs[2].out->init_len &&
			   jobs[i].out->nsegments == jobs[2].out->nsegments;
		for (uint32_t k = 0; same && k < jobs[2].out->nsegments; k++)
			same = jobs[i].out->segment_lens[k] == jobs[2].out->segment_lens[k] &&
			       memcmp(jobs[i].out->segments[k], jobs[2].out->segments[k], jobs[2].out->segment_lens[k]) == 0;
		CHECK(same, "thread %d produced different bytes", i);
	}
	for (int i = 0; i < 3; i++)
		transcode_output_free(jobs[i].out);
	pcm_free(src);
}

int main(void)
{
	RUN(test_wav_formats_read_back_what_was_written);
	RUN(test_write_wav_then_read_file_round_trips);
	RUN(test_flac_16_and_24_bit_read_back);
	RUN(test_bad_sources_are_refused_with_a_clear_message);
	RUN(test_mutated_sources_never_crash);
	RUN(test_segment_and_init_round_trip);
	RUN(test_segment_parser_refuses_malformed_input);
	RUN(test_resampler_is_accurate_and_band_limited);
	RUN(test_resampler_by_pieces_equals_whole);
	encode_track();
	RUN(test_every_rung_decodes_to_the_exact_source_sample_count);
	RUN(test_streamed_decode_comes_in_pieces_that_add_up_to_the_segment);
	RUN(test_emit_stops_a_decode_and_the_next_segment_still_decodes_exactly);
	RUN(test_160k_snr_is_at_least_20_db_and_aligned);
	RUN(test_rung_sizes_per_minute_are_within_15_percent_of_nominal);
	RUN(test_segmentwise_decode_equals_continuous_decode);
	RUN(test_segment_decoded_alone_after_other_renditions_equals_sequential);
	RUN(test_switch_bitrate_at_every_boundary_is_gapless);
	RUN(test_48k_mono_source_stays_sample_accurate_at_any_output_rate);
	RUN(test_corrupt_segments_are_refused_or_decoded_at_declared_length);
	RUN(test_concurrent_transcodes_match_serial_output);
	for (int i = 0; i < TRANSCODE_NRUNGS; i++)
		transcode_output_free(rend[i]);
	pcm_free(track);
	return TAP_DONE();
}
