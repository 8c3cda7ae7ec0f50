/* segment: byte layout of init parts and segments (docs/SEGMENTS.md). All integers are
 * little-endian. Every parser check exists because the bytes come off the network. */
#include "segment.h"
#include "xmem.h"
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define SEGMENT_VERSION 1
#define MAX_SAMPLES ((uint64_t)1 << 40)  /* ~290 days at 44.1 kHz; bounds all arithmetic */
#define MAX_PACKET_SAMPLES 4096           /* Vorbis blocks are at most 8192: half overlaps */

static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, v & 0xffff); put16(p + 2, v >> 16); }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)v); put32(p + 4, (uint32_t)(v >> 32)); }
static uint32_t get16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t get32(const uint8_t *p) { return get16(p) | get16(p + 2) << 16; }
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }

static int rate_ok(long r) { return r >= 8000 && r <= 192000; }

static uint64_t rendition_samples(uint64_t source_frames, int source_rate, int rate)
{
	return (source_frames * (uint64_t)rate + (uint64_t)source_rate - 1) / (uint64_t)source_rate;
}

uint32_t segment_count_for(uint64_t total_samples, int rate)
{
	uint64_t per = (uint64_t)SEGMENT_SECONDS * (uint64_t)rate;
	if (per == 0)
		return 0;
	return (uint32_t)((total_samples + per - 1) / per);
}

int segment_range(uint32_t index, int rate, uint64_t total_samples, uint64_t *start, uint32_t *count)
{
	uint64_t per = (uint64_t)SEGMENT_SECONDS * (uint64_t)rate;
	uint64_t s = (uint64_t)index * per;
	if (rate <= 0 || s >= total_samples)
		return -ERANGE;
	*start = s;
	*count = (uint32_t)(total_samples - s < per ? total_samples - s : per);
	return 0;
}

static int init_fields_ok(const struct segment_init *in)
{
	if ((in->channels != 1 && in->channels != 2) || !rate_ok(in->rate) || !rate_ok(in->source_rate))
		return 0;
	if (in->bitrate <= 0 || in->segment_seconds < 1 || in->segment_seconds > 60)
		return 0;
	if (in->source_frames == 0 || in->source_frames > MAX_SAMPLES)
		return 0;
	if (in->total_samples != rendition_samples(in->source_frames, in->source_rate, in->rate))
		return 0;
	uint64_t per = (uint64_t)in->segment_seconds * (uint64_t)in->rate;
	if (in->segment_count != (in->total_samples + per - 1) / per)
		return 0;
	return 1;
}

static int vorbis_header_ok(const uint8_t *p, size_t len, int type)
{
	return len >= 7 && p[0] == type && memcmp(p + 1, "vorbis", 6) == 0;
}

int segment_init_write(const struct segment_init *in, uint8_t **out, size_t *outlen)
{
	if (!init_fields_ok(in) || in->segment_seconds != SEGMENT_SECONDS)
		return -EINVAL;
	size_t total = SEGMENT_INIT_FIXED_BYTES;
	for (int i = 0; i < 3; i++) {
		if (!vorbis_header_ok(in->header[i], in->header_len[i], 2 * i + 1) || in->header_len[i] > UINT32_MAX / 4)
			return -EINVAL;
		total += in->header_len[i];
	}
	uint8_t *b = xmalloc(total);
	memcpy(b, "ENCI", 4);
	b[4] = SEGMENT_VERSION;
	b[5] = (uint8_t)in->channels;
	put16(b + 6, (uint32_t)in->segment_seconds);
	put32(b + 8, (uint32_t)in->rate);
	put32(b + 12, (uint32_t)in->bitrate);
	put32(b + 16, (uint32_t)in->source_rate);
	put32(b + 20, in->segment_count);
	put64(b + 24, in->total_samples);
	put64(b + 32, in->source_frames);
	size_t off = SEGMENT_INIT_FIXED_BYTES;
	for (int i = 0; i < 3; i++) {
		put32(b + 40 + 4 * i, (uint32_t)in->header_len[i]);
		memcpy(b + off, in->header[i], in->header_len[i]);
		off += in->header_len[i];
	}
	*out = b;
	*outlen = total;
	return 0;
}

int segment_init_parse(const uint8_t *b, size_t len, struct segment_init *in)
{
	memset(in, 0, sizeof(*in));
	if (!b || len < SEGMENT_INIT_FIXED_BYTES || memcmp(b, "ENCI", 4) != 0)
		return -EBADMSG;
	if (b[4] != SEGMENT_VERSION)
		return -EPROTONOSUPPORT;
	uint32_t rate = get32(b + 8), bitrate = get32(b + 12), srate = get32(b + 16);
	if (!rate_ok(rate) || !rate_ok(srate) || bitrate == 0 || bitrate > 10000000)
		return -EBADMSG;
	in->channels = b[5];
	in->segment_seconds = (int)get16(b + 6);
	in->rate = (int)rate;
	in->bitrate = (int)bitrate;
	in->source_rate = (int)srate;
	in->segment_count = get32(b + 20);
	in->total_samples = get64(b + 24);
	in->source_frames = get64(b + 32);
	if (!init_fields_ok(in))
		goto bad;
	size_t off = SEGMENT_INIT_FIXED_BYTES;
	for (int i = 0; i < 3; i++) {
		size_t hl = get32(b + 40 + 4 * i);
		if (hl > len - off)   /* off <= len holds by induction */
			goto bad;
		in->header[i] = b + off;
		in->header_len[i] = hl;
		if (!vorbis_header_ok(in->header[i], hl, 2 * i + 1))
			goto bad;
		off += hl;
	}
	if (off != len)
		goto bad;
	return 0;
bad:
	memset(in, 0, sizeof(*in));
	return -EBADMSG;
}

/* The rules shared by writer and parser; granules must already be filled. */
static int packets_ok(const struct segment *s)
{
	if (s->npackets < 2 || s->npackets > SEGMENT_MAX_PACKETS || s->count == 0)
		return 0;
	if (s->start >= MAX_SAMPLES || s->packets[0].granule > s->start)
		return 0;
	for (uint32_t i = 0; i < s->npackets; i++) {
		if (s->packets[i].len < 1 || s->packets[i].len > 0xffff)
			return 0;
		if (i > 0) {
			uint64_t d = s->packets[i].granule - s->packets[i - 1].granule;
			if (s->packets[i].granule <= s->packets[i - 1].granule || d > MAX_PACKET_SAMPLES)
				return 0;
		}
	}
	return s->packets[s->npackets - 1].granule >= s->start + s->count;
}

int segment_write(const struct segment *s, uint8_t **out, size_t *outlen)
{
	if (!s->packets || !packets_ok(s))
		return -EINVAL;
	size_t total = SEGMENT_HEADER_BYTES + 4 * (size_t)s->npackets;
	for (uint32_t i = 0; i < s->npackets; i++)
		total += s->packets[i].len;
	uint8_t *b = xmalloc(total);
	memcpy(b, "ENCS", 4);
	b[4] = SEGMENT_VERSION;
	b[5] = 0;
	put16(b + 6, s->npackets);
	put32(b + 8, s->index);
	put32(b + 12, s->count);
	put64(b + 16, s->start);
	put64(b + 24, s->packets[0].granule);
	size_t off = SEGMENT_HEADER_BYTES + 4 * (size_t)s->npackets;
	for (uint32_t i = 0; i < s->npackets; i++) {
		uint8_t *e = b + SEGMENT_HEADER_BYTES + 4 * i;
		put16(e, (uint32_t)s->packets[i].len);
		put16(e + 2, i ? (uint32_t)(s->packets[i].granule - s->packets[i - 1].granule) : 0);
		memcpy(b + off, s->packets[i].data, s->packets[i].len);
		off += s->packets[i].len;
	}
	*out = b;
	*outlen = total;
	return 0;
}

int segment_parse(const uint8_t *b, size_t len, struct segment *s)
{
	memset(s, 0, sizeof(*s));
	if (!b || len < SEGMENT_HEADER_BYTES || memcmp(b, "ENCS", 4) != 0)
		return -EBADMSG;
	if (b[4] != SEGMENT_VERSION)
		return -EPROTONOSUPPORT;
	uint32_t n = get16(b + 6);
	if (b[5] != 0 || n < 2 || n > SEGMENT_MAX_PACKETS || 4 * (size_t)n > len - SEGMENT_HEADER_BYTES)
		return -EBADMSG;
	s->index = get32(b + 8);
	s->count = get32(b + 12);
	s->start = get64(b + 16);
	s->npackets = n;
	uint64_t g = get64(b + 24);
	if (g >= MAX_SAMPLES)
		return -EBADMSG;
	s->packets = xcalloc(n, sizeof(*s->packets));
	size_t off = SEGMENT_HEADER_BYTES + 4 * (size_t)n;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *e = b + SEGMENT_HEADER_BYTES + 4 * i;
		size_t pl = get16(e);
		uint32_t d = get16(e + 2);
		if (pl == 0 || pl > len - off || (i == 0 && d != 0) || (i > 0 && (d == 0 || d > MAX_PACKET_SAMPLES)))
			goto bad;
		g += d;
		s->packets[i].data = b + off;
		s->packets[i].len = pl;
		s->packets[i].granule = g;
		off += pl;
	}
	if (off != len || !packets_ok(s))
		goto bad;
	return 0;
bad:
	segment_clear(s);
	return -EBADMSG;
}

void segment_clear(struct segment *s)
{
	free(s->packets);
	memset(s, 0, sizeof(*s));
}

void segment_hash(const uint8_t *buf, size_t len, uint8_t out[SEGMENT_HASH_BYTES])
{
	crypto_generichash(out, SEGMENT_HASH_BYTES, buf, len, NULL, 0);
}

void segment_hash_hex(const uint8_t *buf, size_t len, char hex[2 * SEGMENT_HASH_BYTES + 1])
{
	uint8_t h[SEGMENT_HASH_BYTES];
	segment_hash(buf, len, h);
	sodium_bin2hex(hex, 2 * SEGMENT_HASH_BYTES + 1, h, sizeof(h));
}
