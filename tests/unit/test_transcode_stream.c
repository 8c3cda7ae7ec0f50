/* Streaming transcoding: segments come out while the encoder has consumed little more
 * than the audio they cover, in order, with the init part known before any audio. */
#include "pcm.h"
#include "segment.h"
#include "synth.h"
#include "tap.h"
#include "transcode.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static struct pcm *song(double seconds)
{
	struct synth_params sp;
	synth_params_preset(&sp, SYNTH_TECHNO, 11);
	sp.duration = seconds;
	sp.rate = 44100;
	return synth_render(&sp);
}

/* Each segment k is returned before the encoder has been fed more than about one
 * segment past its end: the property on-demand transcoding relies on to publish
 * segment 0 after ~4 s of input rather than the whole track. */
static void test_segment_is_returned_before_the_rest_of_the_track_is_encoded(void)
{
	struct pcm *src = song(30);
	char err[256];
	static const int rungs[] = {24, 160};
	for (int r = 0; r < 2; r++) {
		struct transcode_stream *ts = transcode_stream_new(src, rungs[r], err, sizeof(err));
		CHECK(ts != NULL, "stream at %d kbps: %s", rungs[r], err);
		if (!ts)
			continue;
		struct transcode_stream_info in;
		transcode_stream_info(ts, &in);
		CHECK_INT(in.nsegments, 8);
		CHECK_INT(in.fed, 0);
		struct segment_init si;
		CHECK_INT(segment_init_parse(in.init, in.init_len, &si), 0);
		CHECK_INT(si.segment_count, in.nsegments);
		uint64_t seg_samples = (uint64_t)SEGMENT_SECONDS * (uint64_t)in.rate;
		uint8_t *seg;
		size_t len;
		uint32_t k, expect = 0;
		int rc;
		while ((rc = transcode_stream_next(ts, &seg, &len, &k, err, sizeof(err))) == 1) {
			transcode_stream_info(ts, &in);
			CHECK_INT(k, expect);
			/* Owned range end + one block of look-ahead (8192 frames) + the feed chunk. */
			uint64_t bound = (uint64_t)(k + 1) * seg_samples + 8192 + 4096 + SEGMENT_MARGIN;
			if (k + 1 < in.nsegments)
				CHECK(in.fed <= bound, "%d kbps segment %u out after %llu of %llu samples fed (bound %llu)",
				      rungs[r], k, (unsigned long long)in.fed, (unsigned long long)in.total_samples,
				      (unsigned long long)bound);
			struct segment s;
			CHECK_INT(segment_parse(seg, len, &s), 0);
			CHECK_INT(s.index, k);
			CHECK_INT(s.start, (uint64_t)k * seg_samples);
			segment_clear(&s);
			free(seg);
			expect++;
		}
		CHECK_INT(rc, 0);
		CHECK_INT(expect, in.nsegments);
		CHECK_INT(in.fed, in.total_samples);
		transcode_stream_free(ts);
	}
	pcm_free(src);
}

/* The whole-rendition call is the stream run to the end: same init, same segments. */
static void test_whole_rendition_equals_the_stream(void)
{
	struct pcm *src = song(9);
	char err[256];
	struct transcode_output *o = NULL;
	CHECK_INT(transcode_rendition(src, 96, &o, err, sizeof(err)), 0);
	struct transcode_stream *ts = transcode_stream_new(src, 96, err, sizeof(err));
	struct transcode_stream_info in;
	transcode_stream_info(ts, &in);
	CHECK(o && in.init_len == o->init_len && memcmp(in.init, o->init, in.init_len) == 0, "init parts differ");
	uint8_t *seg;
	size_t len;
	uint32_t k;
	int n = 0;
	while (transcode_stream_next(ts, &seg, &len, &k, err, sizeof(err)) == 1) {
		CHECK(o && k < o->nsegments && len == o->segment_lens[k] && memcmp(seg, o->segments[k], len) == 0,
		      "segment %u differs", k);
		free(seg);
		n++;
	}
	CHECK_INT(n, o ? (int)o->nsegments : -1);
	transcode_stream_free(ts);
	transcode_output_free(o);
	pcm_free(src);
}

/* Abandoning a stream half-way (a job taken over, a shutdown) frees everything. */
static void test_a_stream_can_be_abandoned_midway(void)
{
	struct pcm *src = song(12);
	char err[256];
	struct transcode_stream *ts = transcode_stream_new(src, 320, err, sizeof(err));
	uint8_t *seg;
	size_t len;
	uint32_t k;
	CHECK_INT(transcode_stream_next(ts, &seg, &len, &k, err, sizeof(err)), 1);
	free(seg);
	transcode_stream_free(ts);
	struct pcm empty = {.rate = 44100, .channels = 2};
	CHECK(transcode_stream_new(&empty, 96, err, sizeof(err)) == NULL, "empty source accepted");
	CHECK(transcode_stream_new(src, 100, err, sizeof(err)) == NULL, "100 kbps accepted");
	pcm_free(src);
}

int main(void)
{
	RUN(test_segment_is_returned_before_the_rest_of_the_track_is_encoded);
	RUN(test_whole_rendition_equals_the_stream);
	RUN(test_a_stream_can_be_abandoned_midway);
	return TAP_DONE();
}
