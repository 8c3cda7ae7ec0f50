/* transcode: libvorbisenc in managed mode: nominal average bitrate with a hard minimum
 * (`oggenc -b N -m 0.9N`), which lands each rung near its nominal size on any material;
 * quality mode drifts far below nominal on sparse music and above it on dense music. */
#include "transcode.h"
#include "resample.h"
#include "segment.h"
#include "xmem.h"
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
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

struct transcode_stream {
	const struct pcm *src;
	int rate, channels, bitrate;
	float *mix;                 /* mono down-mix of src when the rendition is mono, else NULL */
	struct resample *rs;        /* src rate -> rendition rate, NULL when equal */
	uint64_t total;             /* rendition samples */
	uint64_t fed;               /* rendition samples handed to the encoder */
	bool eos;                   /* the end of stream has been flushed */
	uint32_t next;              /* next segment to cut */
	uint32_t nsegments;
	vorbis_info vi;
	vorbis_comment vc;
	vorbis_dsp_state vd;
	vorbis_block vb;
	bool have_dsp;
	struct pkt *pk;
	size_t np, cap;
	size_t granuled;            /* packets whose granule is computed */
	long prev_bs;
	uint64_t g;
	float *chunk;               /* FEED_FRAMES x channels of converted input */
	uint8_t *init;
	size_t init_len;
};

/* Rendition frames [pos, pos + n) into ts->chunk: down-mix and resample are exact per
 * output position (resample.h), so converting chunk by chunk gives the same samples as
 * converting the whole track first. */
static void convert(struct transcode_stream *ts, uint64_t pos, int n)
{
	const struct pcm *src = ts->src;
	const float *in = ts->mix ? ts->mix : src->samples;
	if (!ts->rs) {
		memcpy(ts->chunk, in + pos * (uint64_t)ts->channels, sizeof(float) * (size_t)n * (size_t)ts->channels);
		return;
	}
	resample_run(ts->rs, in, 0, src->frames, ts->chunk, (int64_t)pos, (size_t)n);
}

/* Granules from block sizes rather than the encoder's op.granulepos, which it clamps
 * at the end of stream: a decoder restarted at packet p emits exactly
 * [granule(p), granule(p+1)) when it then decodes packet p+1. */
static int assign_granules(struct transcode_stream *ts)
{
	for (; ts->granuled < ts->np; ts->granuled++) {
		struct pkt *p = &ts->pk[ts->granuled];
		ogg_packet op = {.packet = p->data, .bytes = (long)p->len};
		long bs = vorbis_packet_blocksize(&ts->vi, &op);
		if (bs <= 0)
			return -EIO;
		if (ts->granuled > 0)
			ts->g += (uint64_t)(ts->prev_bs / 4 + bs / 4);
		p->granule = ts->g;
		ts->prev_bs = bs;
	}
	return 0;
}

/* True when the packets segment k needs have all been produced. */
static bool segment_ready(const struct transcode_stream *ts, uint32_t k)
{
	if (ts->eos)
		return true;
	uint64_t start;
	uint32_t count;
	if (segment_range(k, ts->rate, ts->total, &start, &count))
		return false;
	uint64_t need_b = start + count + SEGMENT_MARGIN;
	if (need_b > ts->total)
		need_b = ts->total;
	/* cut_segment takes packets up to the first whose output reaches need_b: it must
	 * exist, so the cut is the one the whole packet list would give. */
	return ts->granuled > 1 && ts->pk[ts->granuled - 1].granule >= need_b;
}

/* Feeds one chunk of input (or the end of stream) and collects the packets it yields. */
static int feed(struct transcode_stream *ts)
{
	if (ts->fed < ts->total) {
		int n = (int)(ts->total - ts->fed < FEED_FRAMES ? ts->total - ts->fed : FEED_FRAMES);
		convert(ts, ts->fed, n);
		float **b = vorbis_analysis_buffer(&ts->vd, n);
		for (int c = 0; c < ts->channels; c++)
			for (int i = 0; i < n; i++)
				b[c][i] = ts->chunk[(size_t)i * (size_t)ts->channels + (size_t)c];
		vorbis_analysis_wrote(&ts->vd, n);
		ts->fed += (uint64_t)n;
	} else {
		vorbis_analysis_wrote(&ts->vd, 0);
		ts->eos = true;
	}
	if (drain(&ts->vd, &ts->vb, &ts->pk, &ts->np, &ts->cap) || assign_granules(ts))
		return -EIO;
	if (ts->eos && (ts->np < 2 || ts->pk[ts->np - 1].granule < ts->total))
		return -EIO;
	return 0;
}

struct transcode_stream *transcode_stream_new(const struct pcm *src, int kbps, char *err, size_t errlen)
{
	int rate, channels, bitrate;
	if (!src || src->frames == 0 || !src->samples) {
		seterr(err, errlen, "no audio to transcode");
		return NULL;
	}
	if (transcode_format(src->rate, src->channels, kbps, &rate, &channels, &bitrate)) {
		seterr(err, errlen, "unsupported rendition: %d Hz, %d ch at %d kbps", src->rate, src->channels, kbps);
		return NULL;
	}
	struct transcode_stream *ts = xcalloc(1, sizeof(*ts));
	ts->src = src;
	ts->rate = rate;
	ts->channels = channels;
	ts->bitrate = bitrate;
	vorbis_info_init(&ts->vi);
	vorbis_comment_init(&ts->vc);
	if (channels == 1 && src->channels == 2) {
		ts->mix = xmalloc(sizeof(float) * src->frames);
		for (size_t i = 0; i < src->frames; i++)
			ts->mix[i] = 0.5f * (src->samples[2 * i] + src->samples[2 * i + 1]);
	}
	ts->total = src->frames;
	if (rate != src->rate) {
		ts->rs = resample_new(src->rate, rate, channels);
		if (!ts->rs) {
			seterr(err, errlen, "cannot resample %d -> %d Hz", src->rate, rate);
			goto fail;
		}
		ts->total = resample_output_frames(ts->rs, src->frames);
	}
	ts->chunk = xmalloc(sizeof(float) * FEED_FRAMES * (size_t)channels);
	if (vorbis_encode_init(&ts->vi, channels, rate, -1, bitrate, bitrate / 100 * TRANSCODE_MIN_PERCENT)) {
		seterr(err, errlen, "libvorbis refuses %d Hz %d ch at %d bps", rate, channels, bitrate);
		goto fail;
	}
	vorbis_comment_add_tag(&ts->vc, "ENCODER", "encored");
	if (vorbis_analysis_init(&ts->vd, &ts->vi) || vorbis_block_init(&ts->vd, &ts->vb)) {
		seterr(err, errlen, "vorbis_analysis_init failed");
		goto fail;
	}
	ts->have_dsp = true;
	ogg_packet h[3];
	if (vorbis_analysis_headerout(&ts->vd, &ts->vc, &h[0], &h[1], &h[2])) {
		seterr(err, errlen, "vorbis_analysis_headerout failed");
		goto fail;
	}
	/* Everything the init part records is known before any audio is encoded, so it can
	 * be published with the first segment. */
	struct segment_init si = {
		.channels = channels, .rate = rate, .bitrate = bitrate, .source_rate = src->rate,
		.segment_seconds = SEGMENT_SECONDS, .total_samples = ts->total, .source_frames = src->frames,
		.segment_count = segment_count_for(ts->total, rate),
	};
	for (int i = 0; i < 3; i++) {
		si.header[i] = h[i].packet;
		si.header_len[i] = (size_t)h[i].bytes;
	}
	if (segment_init_write(&si, &ts->init, &ts->init_len)) {
		seterr(err, errlen, "cannot write the init part");
		goto fail;
	}
	ts->nsegments = si.segment_count;
	return ts;
fail:
	transcode_stream_free(ts);
	return NULL;
}

void transcode_stream_info(const struct transcode_stream *ts, struct transcode_stream_info *out)
{
	*out = (struct transcode_stream_info){
		.rate = ts->rate, .channels = ts->channels, .bitrate = ts->bitrate, .init = ts->init,
		.init_len = ts->init_len, .nsegments = ts->nsegments, .total_samples = ts->total, .fed = ts->fed,
	};
}

int transcode_stream_next(struct transcode_stream *ts, uint8_t **seg, size_t *len, uint32_t *index, char *err, size_t errlen)
{
	*seg = NULL;
	*len = 0;
	if (ts->next >= ts->nsegments)
		return 0;
	while (!segment_ready(ts, ts->next))
		if (feed(ts))
			goto encfail;
	if (cut_segment(ts->pk, ts->np, ts->next, ts->rate, ts->total, seg, len))
		goto encfail;
	*index = ts->next++;
	return 1;
encfail:
	seterr(err, errlen, "vorbis encoding failed at %d Hz %d ch %d bps", ts->rate, ts->channels, ts->bitrate);
	return -EIO;
}

void transcode_stream_free(struct transcode_stream *ts)
{
	if (!ts)
		return;
	if (ts->have_dsp) {
		vorbis_block_clear(&ts->vb);
		vorbis_dsp_clear(&ts->vd);
	}
	vorbis_comment_clear(&ts->vc);
	vorbis_info_clear(&ts->vi);
	for (size_t i = 0; i < ts->np; i++)
		free(ts->pk[i].data);
	free(ts->pk);
	resample_free(ts->rs);
	free(ts->mix);
	free(ts->chunk);
	free(ts->init);
	free(ts);
}

int transcode_rendition(const struct pcm *src, int kbps, struct transcode_output **out, char *err, size_t errlen)
{
	int rate, channels, bitrate;
	*out = NULL;
	bool bad_input = !src || src->frames == 0 || !src->samples ||
			 transcode_format(src->rate, src->channels, kbps, &rate, &channels, &bitrate);
	struct transcode_stream *ts = transcode_stream_new(src, kbps, err, errlen);
	if (!ts)
		return bad_input ? -EINVAL : -EIO;
	struct transcode_output *o = xcalloc(1, sizeof(*o));
	o->rate = ts->rate;
	o->channels = ts->channels;
	o->bitrate = ts->bitrate;
	o->init = ts->init;
	o->init_len = ts->init_len;
	ts->init = NULL;
	o->segments = xcalloc(ts->nsegments ? ts->nsegments : 1, sizeof(*o->segments));
	o->segment_lens = xcalloc(ts->nsegments ? ts->nsegments : 1, sizeof(*o->segment_lens));
	o->nsegments = ts->nsegments;
	int rc;
	uint8_t *seg;
	size_t len;
	uint32_t k;
	while ((rc = transcode_stream_next(ts, &seg, &len, &k, err, errlen)) == 1) {
		o->segments[k] = seg;
		o->segment_lens[k] = len;
	}
	transcode_stream_free(ts);
	if (rc < 0) {
		transcode_output_free(o);
		return rc;
	}
	*out = o;
	return 0;
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
