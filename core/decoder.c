/* decoder: per segment, restart libvorbis, decode the pre-roll packet (its output is
 * only the left half of an overlap, so it is discarded), then each packet's output covers
 * [granule(p-1), granule(p)). The decoded span includes SEGMENT_MARGIN frames beyond the
 * owned range, so the up-sampler never needs a neighbouring segment. */
#include "decoder.h"
#include "resample.h"
#include "segment.h"
#include "xmem.h"
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <vorbis/codec.h>

/* Everything that belongs to one loaded init. Heap-allocated and never moved, because
 * libvorbis keeps pointers from the dsp state to vi and from the block to the dsp state. */
struct rendition {
	uint8_t *init_buf;          /* init.header[] alias this */
	size_t init_len;
	struct segment_init init;
	vorbis_info vi;
	vorbis_comment vc;
	vorbis_dsp_state vd;
	vorbis_block vb;
	int have_dsp;
	struct resample *rs;        /* NULL when the rendition is at the output rate */
	uint64_t out_total;
	uint64_t gen;               /* distinguishes renditions for the crossfade */
};

struct decoder {
	int out_rate;
	struct rendition *cur;      /* NULL until the first init */
	uint64_t next_gen;
	/* Crossfade state: the last decoded segment, its rendition, and that rendition's
	 * output for the DECODER_XFADE frames after the segment's end. */
	uint32_t prev_index;
	uint64_t prev_gen;
	int prev_tail_valid, tail_valid;
	float prev_tail[2 * DECODER_XFADE], tail[2 * DECODER_XFADE];
	/* Scratch kept across segments (one segment's decoded input, a resampler window, one
	 * emitted piece), so steady playback neither allocates nor faults in fresh pages. */
	float *pcm, *res;
	size_t pcm_cap, res_cap;
	float chunk[DECODER_CHANNELS * DECODER_EMIT_FRAMES];
};

/* A piece smaller than this waits for the next packet, unless it ends the segment. */
#define MIN_EMIT 512
/* Input frames the window may hold before it slides (one memmove per few packets). */
#define WINDOW_SLACK 4096

static float *grow(float **p, size_t *cap, size_t n)
{
	if (n > *cap) {
		*p = xrealloc(*p, n * sizeof(float));
		*cap = n;
	}
	return *p;
}

struct decoder *decoder_new(int out_rate)
{
	if (out_rate != 0 && (out_rate < 8000 || out_rate > 192000))
		return NULL;
	struct decoder *d = xcalloc(1, sizeof(*d));
	d->out_rate = out_rate;
	d->prev_index = UINT32_MAX;
	return d;
}

static void rendition_free(struct rendition *r)
{
	if (!r)
		return;
	if (r->have_dsp) {
		vorbis_block_clear(&r->vb);
		vorbis_dsp_clear(&r->vd);
	}
	vorbis_comment_clear(&r->vc);
	vorbis_info_clear(&r->vi);
	resample_free(r->rs);
	free(r->init_buf);
	free(r);
}

void decoder_free(struct decoder *d)
{
	if (!d)
		return;
	rendition_free(d->cur);
	free(d->pcm);
	free(d->res);
	free(d);
}

int decoder_set_init(struct decoder *d, const uint8_t *buf, size_t len)
{
	/* Players may re-send the current init; that is not a switch. */
	if (d->cur && len == d->cur->init_len && memcmp(buf, d->cur->init_buf, len) == 0)
		return 0;
	struct rendition *n = xcalloc(1, sizeof(*n));
	int ret = -EBADMSG;
	vorbis_info_init(&n->vi);
	vorbis_comment_init(&n->vc);
	n->init_buf = xmalloc(len ? len : 1);
	memcpy(n->init_buf, buf, len);
	int r = segment_init_parse(n->init_buf, len, &n->init);
	if (r) {
		ret = r;
		goto fail;
	}
	int out_rate = d->out_rate ? d->out_rate : n->init.source_rate;
	for (int i = 0; i < 3; i++) {
		ogg_packet op = {.packet = (unsigned char *)n->init.header[i], .bytes = (long)n->init.header_len[i],
				 .b_o_s = i == 0, .packetno = i, .granulepos = 0};
		if (vorbis_synthesis_headerin(&n->vi, &n->vc, &op))
			goto fail;
	}
	if (n->vi.channels != n->init.channels || n->vi.rate != n->init.rate)
		goto fail;
	if (vorbis_synthesis_init(&n->vd, &n->vi))
		goto fail;
	if (vorbis_block_init(&n->vd, &n->vb)) {
		vorbis_dsp_clear(&n->vd);
		goto fail;
	}
	n->have_dsp = 1;
	if (n->init.rate != out_rate) {
		n->rs = resample_new(n->init.rate, out_rate, n->init.channels);
		int64_t a = 0;
		size_t c = 0;
		/* The kernel must fit in the margin the server cut each segment with. */
		if (n->rs)
			resample_input_span(n->rs, 0, 1, &a, &c);
		if (!n->rs || -a > SEGMENT_MARGIN || (int64_t)c + a - 1 > SEGMENT_MARGIN) {
			ret = -ENOTSUP;
			goto fail;
		}
	}
	n->out_total = (n->init.source_frames * (uint64_t)out_rate + (uint64_t)n->init.source_rate - 1) /
		       (uint64_t)n->init.source_rate;
	d->out_rate = out_rate;
	n->gen = ++d->next_gen;
	n->init_len = len;
	rendition_free(d->cur);
	d->cur = n;
	return 0;
fail:
	rendition_free(n);
	return ret;
}

int decoder_rate(const struct decoder *d)
{
	return d->out_rate;
}

uint64_t decoder_total_frames(const struct decoder *d)
{
	return d->cur ? d->cur->out_total : 0;
}

uint32_t decoder_segment_count(const struct decoder *d)
{
	return d->cur ? segment_count_for(d->cur->out_total, d->out_rate) : 0;
}

int decoder_segment_range(const struct decoder *d, uint32_t index, uint64_t *start, size_t *count)
{
	if (!d->cur)
		return -EINVAL;
	uint32_t c;
	int r = segment_range(index, d->out_rate, d->cur->out_total, start, &c);
	*count = r ? 0 : c;
	return r;
}

/* Output frames [os, os+n) as stereo into dst, from rendition frames decoded into pcm
 * covering [g0, g0+valid). Returns 0, or -1 if that does not cover the kernel. */
static int render_into(struct decoder *d, const struct rendition *rd, const float *pcm, uint64_t g0, size_t valid,
		       uint64_t os, size_t n, float *dst)
{
	int ch = rd->init.channels;
	const float *src;
	if (!rd->rs) {
		if (os < g0 || os + n > g0 + valid)
			return -1;
		src = pcm + (size_t)(os - g0) * (size_t)ch;
	} else {
		int64_t ia;
		size_t ic;
		resample_input_span(rd->rs, (int64_t)os, n, &ia, &ic);
		int64_t ib = ia + (int64_t)ic;
		if (ia < 0)
			ia = 0;
		if (ib > (int64_t)rd->init.total_samples)
			ib = (int64_t)rd->init.total_samples;
		if (ia < (int64_t)g0 || ib > (int64_t)(g0 + valid))
			return -1;   /* the server's margin does not cover our kernel */
		float *res = grow(&d->res, &d->res_cap, (n ? n : 1) * (size_t)ch);
		resample_run(rd->rs, pcm, (int64_t)g0, valid, res, (int64_t)os, n);
		src = res;
	}
	for (size_t j = 0; j < n; j++) {
		dst[2 * j] = src[j * (size_t)ch];
		dst[2 * j + 1] = src[j * (size_t)ch + (size_t)(ch - 1)];
	}
	return 0;
}

/* How many output frames from os (at most max) the input decoded so far, [g0, g0+have),
 * already determines. */
static size_t ready_frames(const struct rendition *rd, uint64_t g0, size_t have, uint64_t os, size_t max)
{
	if (!rd->rs) {
		uint64_t end = g0 + have;
		return end > os ? (size_t)(end - os < max ? end - os : max) : 0;
	}
	size_t lo = 0, hi = max;
	while (lo < hi) {
		size_t mid = lo + (hi - lo + 1) / 2;
		int64_t ia;
		size_t ic;
		resample_input_span(rd->rs, (int64_t)os, mid, &ia, &ic);
		int64_t ib = ia + (int64_t)ic;
		if (ib > (int64_t)rd->init.total_samples)
			ib = (int64_t)rd->init.total_samples;
		if (ib <= (int64_t)(g0 + have))
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

int decoder_decode_stream(struct decoder *d, const uint8_t *buf, size_t len, decoder_emit_fn emit, void *ud)
{
	struct rendition *rd = d->cur;
	if (!rd)
		return -EINVAL;
	struct segment seg;
	int r = segment_parse(buf, len, &seg);
	if (r)
		return r;
	int ch = rd->init.channels;
	uint64_t os;
	size_t oc;
	uint64_t rs_start;
	uint32_t rs_count;
	r = -EBADMSG;
	if (segment_range(seg.index, rd->init.rate, rd->init.total_samples, &rs_start, &rs_count) ||
	    rs_start != seg.start || rs_count != seg.count ||
	    decoder_segment_range(d, seg.index, &os, &oc))
		goto out;

	uint64_t g0 = seg.packets[0].granule;
	size_t span = (size_t)(seg.packets[seg.npackets - 1].granule - g0);
	/* Decoded input is kept in a sliding window, [wb, last granule): only what output
	 * still to come needs, a few thousand frames rather than the whole segment. */
	uint64_t wb = g0;
	/* Past the end of the track the encoder emitted padding; the track is silence there,
	 * exactly as in a whole-track resample. */
	size_t valid = span;
	if (g0 + span > rd->init.total_samples)
		valid = (size_t)(rd->init.total_samples - g0);
	/* A rendition switch right at this boundary: crossfade from the old one's continuation. */
	bool xfade = d->prev_index != UINT32_MAX && d->prev_index + 1 == seg.index && d->prev_gen != rd->gen &&
		     d->prev_tail_valid;
	size_t done = 0;
	if (vorbis_synthesis_restart(&rd->vd))
		goto out;
	for (uint32_t i = 0; i < seg.npackets; i++) {
		ogg_packet op = {.packet = (unsigned char *)seg.packets[i].data, .bytes = (long)seg.packets[i].len,
				 .granulepos = -1, .packetno = 3 + i};
		if (vorbis_synthesis(&rd->vb, &op) || vorbis_synthesis_blockin(&rd->vd, &rd->vb))
			goto out;
		float **p;
		int n = vorbis_synthesis_pcmout(&rd->vd, &p);
		uint64_t want = i ? seg.packets[i].granule - seg.packets[i - 1].granule : 0;
		if (n < 0 || (uint64_t)n != want)
			goto out;
		uint64_t end = seg.packets[i].granule;
		size_t at = (size_t)(end - wb) - (size_t)n;
		float *pcm = grow(&d->pcm, &d->pcm_cap, ((size_t)(end - wb) ? (size_t)(end - wb) : 1) * (size_t)ch);
		for (int c = 0; c < ch; c++)
			for (int j = 0; j < n; j++)
				pcm[(at + (size_t)j) * (size_t)ch + (size_t)c] = p[c][j];
		vorbis_synthesis_read(&rd->vd, n);
		/* Hand on every output frame this packet completed: the first audio of a segment
		 * leaves after a packet or two, not after the whole segment. */
		bool last = i + 1 == seg.npackets;
		uint64_t hend = end < g0 + valid ? end : g0 + valid;
		size_t have = hend > wb ? (size_t)(hend - wb) : 0;
		while (done < oc) {
			size_t max = oc - done < DECODER_EMIT_FRAMES ? oc - done : DECODER_EMIT_FRAMES;
			size_t k = last ? max : ready_frames(rd, wb, have, os + done, max);
			if (k == 0 || (!last && k < max && k < MIN_EMIT))
				break;
			if (render_into(d, rd, pcm, wb, have, os + done, k, d->chunk))
				goto out;
			for (size_t j = 0; xfade && done + j < DECODER_XFADE && j < k; j++) {
				size_t x = done + j;
				float w = 0.5f - 0.5f * cosf((float)M_PI * ((float)x + 0.5f) / DECODER_XFADE);
				d->chunk[2 * j] = w * d->chunk[2 * j] + (1 - w) * d->prev_tail[2 * x];
				d->chunk[2 * j + 1] = w * d->chunk[2 * j + 1] + (1 - w) * d->prev_tail[2 * x + 1];
			}
			int er = emit(ud, d->chunk, k);
			if (er) {
				r = er;
				goto out;
			}
			done += k;
		}
		/* Slide the window past input no later output (nor the tail below) needs. */
		uint64_t need = os + done;
		if (rd->rs) {
			int64_t ia;
			size_t ic;
			resample_input_span(rd->rs, (int64_t)(os + done), 1, &ia, &ic);
			need = ia > 0 ? (uint64_t)ia : 0;
		}
		if (need > wb + WINDOW_SLACK && need <= end) {
			memmove(pcm, pcm + (size_t)(need - wb) * (size_t)ch, (size_t)(end - need) * (size_t)ch * sizeof(float));
			wb = need;
		}
	}
	if (done != oc)
		goto out;
	/* This rendition's output just past this boundary, kept for a crossfade should the
	 * player switch renditions here. Absent at the end of the track or if the margin
	 * cannot supply it; then the next switch is a plain splice. */
	d->tail_valid = os + oc + DECODER_XFADE <= rd->out_total &&
			g0 + valid > wb && render_into(d, rd, d->pcm, wb, (size_t)(g0 + valid - wb), os + oc, DECODER_XFADE, d->tail) == 0;
	memcpy(d->prev_tail, d->tail, sizeof(d->tail));
	d->prev_tail_valid = d->tail_valid;
	d->prev_index = seg.index;
	d->prev_gen = rd->gen;
	r = 0;
out:
	segment_clear(&seg);
	return r;
}

struct collect {
	float *buf;
	size_t n, cap;
};

static int collect(void *ud, const float *frames, size_t n)
{
	struct collect *c = ud;
	if (c->n + n > c->cap) {
		c->cap = c->cap * 2 > c->n + n ? c->cap * 2 : c->n + n;
		c->buf = xrealloc(c->buf, c->cap * DECODER_CHANNELS * sizeof(float));
	}
	memcpy(c->buf + c->n * DECODER_CHANNELS, frames, n * DECODER_CHANNELS * sizeof(float));
	c->n += n;
	return 0;
}

int decoder_decode(struct decoder *d, const uint8_t *buf, size_t len, float **out, size_t *frames)
{
	*out = NULL;
	*frames = 0;
	struct collect c = {0};
	int r = decoder_decode_stream(d, buf, len, collect, &c);
	if (r) {
		free(c.buf);
		return r;
	}
	*out = c.buf ? c.buf : xmalloc(sizeof(float) * DECODER_CHANNELS);
	*frames = c.n;
	return 0;
}
