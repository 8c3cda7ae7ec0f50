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
};

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

/* Output frames [os, os+n) as stereo into a fresh *dst, from rendition frames decoded
 * into pcm covering [g0, g0+valid). Returns 0, or -1 if that does not cover the kernel. */
static int render(const struct rendition *rd, const float *pcm, uint64_t g0, size_t valid, uint64_t os, size_t n,
		  float **dst)
{
	int ch = rd->init.channels;
	const float *src;
	float *res = NULL;
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
		res = xmalloc(sizeof(float) * (n ? n : 1) * (size_t)ch);
		resample_run(rd->rs, pcm, (int64_t)g0, valid, res, (int64_t)os, n);
		src = res;
	}
	float *o = xmalloc(sizeof(float) * (n ? n : 1) * DECODER_CHANNELS);
	for (size_t j = 0; j < n; j++) {
		o[2 * j] = src[j * (size_t)ch];
		o[2 * j + 1] = src[j * (size_t)ch + (size_t)(ch - 1)];
	}
	free(res);
	*dst = o;
	return 0;
}

int decoder_decode(struct decoder *d, const uint8_t *buf, size_t len, float **out, size_t *frames)
{
	*out = NULL;
	*frames = 0;
	struct rendition *rd = d->cur;
	if (!rd)
		return -EINVAL;
	struct segment seg;
	int r = segment_parse(buf, len, &seg);
	if (r)
		return r;
	int ch = rd->init.channels;
	float *pcm = NULL, *o = NULL;
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
	pcm = xmalloc(sizeof(float) * (span ? span : 1) * (size_t)ch);
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
		size_t at = (size_t)(seg.packets[i].granule - g0) - (size_t)n;
		for (int c = 0; c < ch; c++)
			for (int j = 0; j < n; j++)
				pcm[(at + (size_t)j) * (size_t)ch + (size_t)c] = p[c][j];
		vorbis_synthesis_read(&rd->vd, n);
	}
	/* Past the end of the track the encoder emitted padding; the track is silence there,
	 * exactly as in a whole-track resample. */
	size_t valid = span;
	if (g0 + span > rd->init.total_samples)
		valid = (size_t)(rd->init.total_samples - g0);

	if (render(rd, pcm, g0, valid, os, oc, &o))
		goto out;
	/* The previous rendition's output just past this boundary, kept for a crossfade
	 * should the player switch renditions here. Absent at the end of the track or if the
	 * margin cannot supply it; then the next switch is a plain splice. */
	size_t tailn = DECODER_XFADE;
	if (os + oc + tailn > rd->out_total)
		tailn = (size_t)(rd->out_total - (os + oc));
	float *tail = NULL;
	if (tailn == DECODER_XFADE && render(rd, pcm, g0, valid, os + oc, tailn, &tail) == 0) {
		memcpy(d->tail, tail, sizeof(d->tail));
		d->tail_valid = 1;
	} else {
		d->tail_valid = 0;
	}
	free(tail);
	if (d->prev_index != UINT32_MAX && d->prev_index + 1 == seg.index && d->prev_gen != rd->gen && d->prev_tail_valid) {
		for (size_t j = 0; j < DECODER_XFADE && j < oc; j++) {
			float w = 0.5f - 0.5f * cosf((float)M_PI * ((float)j + 0.5f) / DECODER_XFADE);
			o[2 * j] = w * o[2 * j] + (1 - w) * d->prev_tail[2 * j];
			o[2 * j + 1] = w * o[2 * j + 1] + (1 - w) * d->prev_tail[2 * j + 1];
		}
	}
	memcpy(d->prev_tail, d->tail, sizeof(d->tail));
	d->prev_tail_valid = d->tail_valid;
	d->prev_index = seg.index;
	d->prev_gen = rd->gen;
	*out = o;
	o = NULL;
	*frames = oc;
	r = 0;
out:
	free(o);
	free(pcm);
	segment_clear(&seg);
	return r;
}
