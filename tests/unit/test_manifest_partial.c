/* Partial manifests (on-demand transcoding): pending segments survive a write/parse round
 * trip as {"ready": false}, and a manifest claiming to be complete may not have any. */
#include "json.h"
#include <errno.h>
#include "manifest.h"
#include "tap.h"
#include "xmem.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct manifest *sample(bool complete)
{
	struct manifest *m = xcalloc(1, sizeof(*m));
	snprintf(m->id, sizeof(m->id), "%s", "0123456789abcdefABCDEF");
	snprintf(m->type, sizeof(m->type), "track");
	m->duration_ms = 12000;
	m->segment_seconds = 4;
	m->segment_count = 3;
	m->source_rate = 44100;
	m->expires_at = 2000000000;
	m->complete = complete;
	m->nrenditions = 1;
	struct manifest_rendition *r = &m->renditions[0];
	r->bitrate = 24;
	r->rate = 22050;
	r->channels = 1;
	r->init_url = xstrdup("http://x/cdn/i");
	r->origin_init_url = xstrdup("http://x/origin/i");
	r->segment_url_template = xstrdup("http://x/cdn/{index}");
	r->origin_url_template = xstrdup("http://x/origin/{index}");
	r->init_size = 100;
	memset(r->init_hash, 'a', 64);
	r->segments = xcalloc(3, sizeof(*r->segments));
	r->segments[0].size = 1000;
	memset(r->segments[0].hash, 'b', 64);
	/* segments 1 and 2: pending (size 0) */
	return m;
}

static char *render(const struct manifest *m)
{
	struct jw w;
	jw_init(&w);
	manifest_write(m, &w);
	return jw_finish(&w);
}

static void test_pending_segments_round_trip_in_a_partial_manifest(void)
{
	struct manifest *m = sample(false);
	char *json = render(m);
	CHECK(strstr(json, "{\"ready\":false}") != NULL, "no pending segment written: %s", json);
	struct manifest *p = NULL;
	char err[160] = "";
	CHECK_INT(manifest_parse(json, &p, err, sizeof(err)), 0);
	if (p) {
		CHECK_INT(p->complete, 0);
		CHECK_INT(p->renditions[0].segments[0].size, 1000);
		CHECK_INT(p->renditions[0].segments[1].size, 0);
		CHECK_INT(p->renditions[0].segments[2].size, 0);
		CHECK_STR(p->renditions[0].segments[1].hash, "");
	}
	manifest_free(p);
	free(json);
	manifest_free(m);
}

static void test_a_complete_manifest_with_a_pending_segment_is_refused(void)
{
	struct manifest *m = sample(false);
	char *json = render(m);
	char *at = strstr(json, "\"complete\":false");
	CHECK(at != NULL, "no complete field: %s", json);
	if (at) {
		memcpy(at, "\"complete\":true ", 16);
		struct manifest *p = NULL;
		char err[160] = "";
		CHECK_INT(manifest_parse(json, &p, err, sizeof(err)), -EINVAL);
		CHECK(strstr(err, "pending") != NULL, "error names the pending segment: %s", err);
		manifest_free(p);
	}
	free(json);
	manifest_free(m);
}

int main(void)
{
	RUN(test_pending_segments_round_trip_in_a_partial_manifest);
	RUN(test_a_complete_manifest_with_a_pending_segment_is_refused);
	return TAP_DONE();
}
