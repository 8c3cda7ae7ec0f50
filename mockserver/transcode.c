/* transcode: libvorbisenc in managed mode: nominal average bitrate with a hard minimum
 * (`oggenc -b N -m 0.9N`), which lands each rung near its nominal size on any material;
 * quality mode drifts far below nominal on sparse music and above it on dense music. */
#include "transcode.h"
#include "resample.h"
#include "segment.h"
#include "xmem.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vorbis/vorbisenc.h>

const int transcode_rungs[TRANSCODE_NRUNGS] = {24, 96, 160, 320};

#define FEED_FRAMES 4096
/* Hard floor of the managed mode, as a share of nominal. Plain ABR undershoots by 20% and
 * more on sparse material (it will not spend bits it has no use for); a floor keeps every
 * rung's size, and so the ABR ladder's spacing, predictable. */
#define TRANSCODE_MIN_PERCENT 90

struct pkt {
	uint8_t *data;
	size_t len;
	uint64_t granule;   /* rendition sample where this packet's decoded output ends */
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int transcode_format(int source_rate, int source_channels, int kbps, int *rate, int *channels, int *bitrate)
{
	if ((source_rate != 44100 && source_rate != 48000) || (source_channels != 1 && source_channels != 2))
		return -EINVAL;
	int ok = 0;
	for (int i = 0; i < TRANSCODE_NRUNGS; i++)
		ok |= transcode_rungs[i] == kbps;
	if (!ok)
		return -EINVAL;
	*rate = source_rate;
	*channels = source_channels;
	*bitrate = kbps * 1000;
	if (kbps < 45) {
		/* Half rate keeps the client's up-sampler at an exact 2:1 ratio; libvorbis's
		 * 22/24 kHz mono modes reach 16-90 kbps, and its low-rate lowpass (~8 kHz) sits
		 * well inside the 11 kHz Nyquist. */
		*rate = source_rate / 2;
		*channels = 1;
	}
	if (*channels == 1 && *bitrate > 240000)
		*bitrate = 240000;
	return 0;
}

/* Mono down-mix and rate conversion of the whole track, done before encoding. */
static float *prepare_input(const struct pcm *src, int rate, int channels, uint64_t *frames)
{
	size_t n = src->frames;
	float *mix = src->samples;
	float *owned = NULL;
	if (channels == 1 && src->channels == 2) {
		owned = xmalloc(sizeof(float) * (n ? n : 1));
		for (size_t i = 0; i < n; i++)
			owned[i] = 0.5f * (src->samples[2 * i] + src->samples[2 * i + 1]);
		mix = owned;
	}
	if (rate == src->rate) {
		*frames = n;
		if (owned)
			return owned;
		float *copy = xmalloc(sizeof(float) * n * (size_t)channels);
		memcpy(copy, src->samples, sizeof(float) * n * (size_t)channels);
		return copy;
	}
	struct resample *rs = resample_new(src->rate, rate, channels);
	if (!rs) {
		free(owned);
		return NULL;
	}
	uint64_t m = resample_output_frames(rs, n);
	float *out = xmalloc(sizeof(float) * (size_t)m * (size_t)channels);
	resample_run(rs, mix, 0, n, out, 0, (size_t)m);
	resample_free(rs);
	free(owned);
	*frames = m;
	return out;
}

static void keep_packet(struct pkt **v, size_t *n, size_t *cap, const ogg_packet *op)
{
	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 1024;
		*v = xrealloc(*v, sizeof(**v) * *cap);
	}
	struct pkt *p = &(*v)[(*n)++];
	p->len = (size_t)op->bytes;
	p->data = xmalloc(p->len ? p->len : 1);
	memcpy(p->data, op->packet, p->len);
	p->granule = 0;
}

static int drain(vorbis_dsp_state *vd, vorbis_block *vb, struct pkt **v, size_t *n, size_t *cap)
{
	ogg_packet op;
	while (vorbis_analysis_blockout(vd, vb) == 1) {
		if (vorbis_analysis(vb, NULL) || vorbis_bitrate_addblock(vb))
			return -EIO;
		int r;
		while ((r = vorbis_bitrate_flushpacket(vd, &op)) == 1)
			keep_packet(v, n, cap, &op);
		if (r < 0)
			return -EIO;
	}
	return 0;
}

/* Packets of segment: pre-roll (whose output ends at or before the first needed sample)
 * through the first packet whose output reaches the last needed sample. The needed range
 * is the owned range widened by SEGMENT_MARGIN for the client's resampler. */
static int cut_segment(const struct pkt *pk, size_t np, uint32_t index, int rate, uint64_t total,
		       uint8_t **buf, size_t *len)
{
	uint64_t start;
	uint32_t count;
	if (segment_range(index, rate, total, &start, &count))
		return -EINVAL;
	uint64_t need_a = start > SEGMENT_MARGIN ? start - SEGMENT_MARGIN : 0;
	uint64_t need_b = start + count + SEGMENT_MARGIN;
	if (need_b > total)
		need_b = total;
	/* pk[0] decodes to nothing, so the first packet with output past need_a is >= 1. */
	size_t lo = 1, hi = np;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (pk[mid].granule > need_a)
			hi = mid;
		else
			lo = mid + 1;
	}
	size_t first = lo, last = first;
	while (last < np && pk[last].granule < need_b)
		last++;
	if (first >= np || last >= np)
		return -EIO;
	struct segment seg = {.index = index, .start = start, .count = count,
			      .npackets = (uint32_t)(last - first + 2)};
	if (seg.npackets > SEGMENT_MAX_PACKETS)
		return -EIO;
	seg.packets = xcalloc(seg.npackets, sizeof(*seg.packets));
	for (uint32_t i = 0; i < seg.npackets; i++) {
		const struct pkt *p = &pk[first - 1 + i];
		seg.packets[i] = (struct segment_packet){.data = p->data, .len = p->len, .granule = p->granule};
	}
	int r = segment_write(&seg, buf, len);
	free(seg.packets);
	return r ? -EIO : 0;
}

int transcode_rendition(const struct pcm *src, int kbps, struct transcode_output **out, char *err, size_t errlen)
{
	int rate, channels, bitrate, ret = -EIO;
	*out = NULL;
	if (!src || src->frames == 0 || !src->samples) {
		seterr(err, errlen, "no audio to transcode");
		return -EINVAL;
	}
	if (transcode_format(src->rate, src->channels, kbps, &rate, &channels, &bitrate)) {
		seterr(err, errlen, "unsupported rendition: %d Hz, %d ch at %d kbps", src->rate, src->channels, kbps);
		return -EINVAL;
	}
	uint64_t total;
	float *in = prepare_input(src, rate, channels, &total);
	if (!in) {
		seterr(err, errlen, "cannot resample %d -> %d Hz", src->rate, rate);
		return -EINVAL;
	}

	vorbis_info vi;
	vorbis_comment vc;
	vorbis_dsp_state vd;
	vorbis_block vb;
	int have_dsp = 0;
	struct pkt *pk = NULL, hdr[3] = {0};
	size_t np = 0, cap = 0;
	struct transcode_output *o = NULL;
	vorbis_info_init(&vi);
	vorbis_comment_init(&vc);
	if (vorbis_encode_init(&vi, channels, rate, -1, bitrate, bitrate / 100 * TRANSCODE_MIN_PERCENT)) {
		seterr(err, errlen, "libvorbis refuses %d Hz %d ch at %d bps", rate, channels, bitrate);
		goto out;
	}
	vorbis_comment_add_tag(&vc, "ENCODER", "encored");
	if (vorbis_analysis_init(&vd, &vi) || vorbis_block_init(&vd, &vb)) {
		seterr(err, errlen, "vorbis_analysis_init failed");
		goto out;
	}
	have_dsp = 1;
	ogg_packet h[3];
	if (vorbis_analysis_headerout(&vd, &vc, &h[0], &h[1], &h[2])) {
		seterr(err, errlen, "vorbis_analysis_headerout failed");
		goto out;
	}
	for (int i = 0; i < 3; i++) {
		hdr[i].len = (size_t)h[i].bytes;
		hdr[i].data = xmalloc(hdr[i].len);
		memcpy(hdr[i].data, h[i].packet, hdr[i].len);
	}
	for (uint64_t pos = 0; pos < total; pos += FEED_FRAMES) {
		int n = (int)(total - pos < FEED_FRAMES ? total - pos : FEED_FRAMES);
		float **b = vorbis_analysis_buffer(&vd, n);
		for (int c = 0; c < channels; c++)
			for (int i = 0; i < n; i++)
				b[c][i] = in[(pos + (uint64_t)i) * (uint64_t)channels + (uint64_t)c];
		vorbis_analysis_wrote(&vd, n);
		if (drain(&vd, &vb, &pk, &np, &cap))
			goto encfail;
	}
	vorbis_analysis_wrote(&vd, 0);
	if (drain(&vd, &vb, &pk, &np, &cap))
		goto encfail;

	/* Granules from block sizes rather than the encoder's op.granulepos, which it clamps
	 * at the end of stream: a decoder restarted at packet p emits exactly
	 * [granule(p), granule(p+1)) when it then decodes packet p+1. */
	long prev_bs = 0;
	uint64_t g = 0;
	for (size_t i = 0; i < np; i++) {
		ogg_packet op = {.packet = pk[i].data, .bytes = (long)pk[i].len};
		long bs = vorbis_packet_blocksize(&vi, &op);
		if (bs <= 0)
			goto encfail;
		if (i > 0)
			g += (uint64_t)(prev_bs / 4 + bs / 4);
		pk[i].granule = g;
		prev_bs = bs;
	}
	if (np < 2 || pk[np - 1].granule < total)
		goto encfail;

	o = xcalloc(1, sizeof(*o));
	o->rate = rate;
	o->channels = channels;
	o->bitrate = bitrate;
	struct segment_init si = {
		.channels = channels, .rate = rate, .bitrate = bitrate, .source_rate = src->rate,
		.segment_seconds = SEGMENT_SECONDS, .total_samples = total, .source_frames = src->frames,
		.segment_count = segment_count_for(total, rate),
	};
	for (int i = 0; i < 3; i++) {
		si.header[i] = hdr[i].data;
		si.header_len[i] = hdr[i].len;
	}
	if (segment_init_write(&si, &o->init, &o->init_len))
		goto encfail;
	o->nsegments = si.segment_count;
	o->segments = xcalloc(o->nsegments, sizeof(*o->segments));
	o->segment_lens = xcalloc(o->nsegments, sizeof(*o->segment_lens));
	for (uint32_t k = 0; k < o->nsegments; k++)
		if (cut_segment(pk, np, k, rate, total, &o->segments[k], &o->segment_lens[k]))
			goto encfail;
	*out = o;
	o = NULL;
	ret = 0;
	goto out;
encfail:
	seterr(err, errlen, "vorbis encoding failed at %d Hz %d ch %d bps", rate, channels, bitrate);
out:
	transcode_output_free(o);
	if (have_dsp) {
		vorbis_block_clear(&vb);
		vorbis_dsp_clear(&vd);
	}
	vorbis_comment_clear(&vc);
	vorbis_info_clear(&vi);
	for (size_t i = 0; i < np; i++)
		free(pk[i].data);
	free(pk);
	for (int i = 0; i < 3; i++)
		free(hdr[i].data);
	free(in);
	return ret;
}

void transcode_output_free(struct transcode_output *o)
{
	if (!o)
		return;
	for (uint32_t k = 0; k < o->nsegments; k++)
		if (o->segments)
			free(o->segments[k]);
	free(o->segments);
	free(o->segment_lens);
	free(o->init);
	free(o);
}
