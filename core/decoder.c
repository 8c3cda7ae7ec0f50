/* decoder: per segment, restart libvorbis, decode the pre-roll packet (its output is
 * only the left half of an overlap, so it is discarded), then each packet's output covers
 * [granule(p-1), granule(p)). The decoded span includes SEGMENT_MARGIN frames beyond the
 * owned range, so the up-sampler never needs a neighbouring segment. */
#include "decoder.h"
#include "resample.h"
#include "segment.h"
#include "xmem.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <vorbis/codec.h>

struct decoder {
	int out_rate;
	int have;                   /* init loaded and libvorbis state valid */
	uint8_t *init_buf;          /* init.header[] alias this */
	struct segment_init init;
	vorbis_info vi;
	vorbis_comment vc;
	vorbis_dsp_state vd;
	vorbis_block vb;
	struct resample *rs;        /* NULL when the rendition is at the output rate */
	uint64_t out_total;
};

struct decoder *decoder_new(int out_rate)
{
	if (out_rate != 0 && (out_rate < 8000 || out_rate > 192000))
		return NULL;
	struct decoder *d = xcalloc(1, sizeof(*d));
	d->out_rate = out_rate;
	return d;
}

static void drop_state(struct decoder *d)
{
	if (d->have) {
		vorbis_block_clear(&d->vb);
		vorbis_dsp_clear(&d->vd);
		vorbis_comment_clear(&d->vc);
		vorbis_info_clear(&d->vi);
	}
	resample_free(d->rs);
	free(d->init_buf);
	d->rs = NULL;
	d->init_buf = NULL;
	d->have = 0;
}

void decoder_free(struct decoder *d)
{
	if (!d)
		return;
	drop_state(d);
	free(d);
}

int decoder_set_init(struct decoder *d, const uint8_t *buf, size_t len)
{
	struct decoder n = {.out_rate = d->out_rate};
	int ret = -EBADMSG;
	n.init_buf = xmalloc(len ? len : 1);
	memcpy(n.init_buf, buf, len);
	int r = segment_init_parse(n.init_buf, len, &n.init);
	if (r) {
		free(n.init_buf);
		return r;
	}
	if (!n.out_rate)
		n.out_rate = n.init.source_rate;
	vorbis_info_init(&n.vi);
	vorbis_comment_init(&n.vc);
	for (int i = 0; i < 3; i++) {
		ogg_packet op = {.packet = (unsigned char *)n.init.header[i], .bytes = (long)n.init.header_len[i],
				 .b_o_s = i == 0, .packetno = i, .granulepos = 0};
		if (vorbis_synthesis_headerin(&n.vi, &n.vc, &op))
			goto fail_info;
	}
	if (n.vi.channels != n.init.channels || n.vi.rate != n.init.rate)
		goto fail_info;
	if (vorbis_synthesis_init(&n.vd, &n.vi))
		goto fail_info;
	if (vorbis_block_init(&n.vd, &n.vb)) {
		vorbis_dsp_clear(&n.vd);
		goto fail_info;
	}
	n.have = 1;
	if (n.init.rate != n.out_rate) {
		n.rs = resample_new(n.init.rate, n.out_rate, n.init.channels);
		int64_t a;
		size_t c;
		/* The kernel must fit in the margin the server cut each segment with. */
		if (n.rs)
			resample_input_span(n.rs, 0, 1, &a, &c);
		if (!n.rs || -a > SEGMENT_MARGIN || (int64_t)c + a - 1 > SEGMENT_MARGIN) {
			ret = -ENOTSUP;
			drop_state(&n);
			return ret;
		}
	}
	n.out_total = (n.init.source_frames * (uint64_t)n.out_rate + (uint64_t)n.init.source_rate - 1) /
		      (uint64_t)n.init.source_rate;
	drop_state(d);
	*d = n;
	return 0;
fail_info:
	vorbis_comment_clear(&n.vc);
	vorbis_info_clear(&n.vi);
	free(n.init_buf);
	return ret;
}

int decoder_rate(const struct decoder *d)
{
	return d->out_rate;
}

uint64_t decoder_total_frames(const struct decoder *d)
{
	return d->have ? d->out_total : 0;
}

uint32_t decoder_segment_count(const struct decoder *d)
{
	return d->have ? segment_count_for(d->out_total, d->out_rate) : 0;
}

int decoder_segment_range(const struct decoder *d, uint32_t index, uint64_t *start, size_t *count)
{
	if (!d->have)
		return -EINVAL;
	uint32_t c;
	int r = segment_range(index, d->out_rate, d->out_total, start, &c);
	*count = r ? 0 : c;
	return r;
}

int decoder_decode(struct decoder *d, const uint8_t *buf, size_t len, float **out, size_t *frames)
{
	*out = NULL;
	*frames = 0;
	if (!d->have)
		return -EINVAL;
	struct segment seg;
	int r = segment_parse(buf, len, &seg);
	if (r)
		return r;
	int ch = d->init.channels;
	float *pcm = NULL, *res = NULL;
	uint64_t os;
	size_t oc;
	uint64_t rs_start;
	uint32_t rs_count;
	r = -EBADMSG;
	if (segment_range(seg.index, d->init.rate, d->init.total_samples, &rs_start, &rs_count) ||
	    rs_start != seg.start || rs_count != seg.count ||
	    decoder_segment_range(d, seg.index, &os, &oc))
		goto out;

	uint64_t g0 = seg.packets[0].granule;
	size_t span = (size_t)(seg.packets[seg.npackets - 1].granule - g0);
	pcm = xmalloc(sizeof(float) * (span ? span : 1) * (size_t)ch);
	if (vorbis_synthesis_restart(&d->vd))
		goto out;
	for (uint32_t i = 0; i < seg.npackets; i++) {
		ogg_packet op = {.packet = (unsigned char *)seg.packets[i].data, .bytes = (long)seg.packets[i].len,
				 .granulepos = -1, .packetno = 3 + i};
		if (vorbis_synthesis(&d->vb, &op) || vorbis_synthesis_blockin(&d->vd, &d->vb))
			goto out;
		float **p;
		int n = vorbis_synthesis_pcmout(&d->vd, &p);
		uint64_t want = i ? seg.packets[i].granule - seg.packets[i - 1].granule : 0;
		if (n < 0 || (uint64_t)n != want)
			goto out;
		size_t at = (size_t)(seg.packets[i].granule - g0) - (size_t)n;
		for (int c = 0; c < ch; c++)
			for (int j = 0; j < n; j++)
				pcm[(at + (size_t)j) * (size_t)ch + (size_t)c] = p[c][j];
		vorbis_synthesis_read(&d->vd, n);
	}
	/* Past the end of the track the encoder emitted padding; the track is silence there,
	 * exactly as in a whole-track resample. */
	size_t valid = span;
	if (g0 + span > d->init.total_samples)
		valid = (size_t)(d->init.total_samples - g0);

	const float *src;
	if (!d->rs) {
		if (oc != seg.count)
			goto out;
		src = pcm + (size_t)(seg.start - g0) * (size_t)ch;
	} else {
		int64_t ia;
		size_t ic;
		resample_input_span(d->rs, (int64_t)os, oc, &ia, &ic);
		int64_t ib = ia + (int64_t)ic;
		if (ia < 0)
			ia = 0;
		if (ib > (int64_t)d->init.total_samples)
			ib = (int64_t)d->init.total_samples;
		if (ia < (int64_t)g0 || ib > (int64_t)(g0 + valid))
			goto out;   /* the server's margin does not cover our kernel */
		res = xmalloc(sizeof(float) * (oc ? oc : 1) * (size_t)ch);
		resample_run(d->rs, pcm, (int64_t)g0, valid, res, (int64_t)os, oc);
		src = res;
	}
	float *o = xmalloc(sizeof(float) * (oc ? oc : 1) * DECODER_CHANNELS);
	for (size_t j = 0; j < oc; j++) {
		o[2 * j] = src[j * (size_t)ch];
		o[2 * j + 1] = src[j * (size_t)ch + (size_t)(ch - 1)];
	}
	*out = o;
	*frames = oc;
	r = 0;
out:
	free(pcm);
	free(res);
	segment_clear(&seg);
	return r;
}
