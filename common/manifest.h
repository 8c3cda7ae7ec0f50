/* manifest: the playback manifest, the answer to GET /v1/playback/{id}: what renditions
 * the listener may use, where their init parts and segments are (signed URLs), their
 * sizes and hashes (so the client can plan and verify), the normalisation gain, and
 * optionally the first audio inline so a cold start costs one round trip.
 * Written by encored, parsed by libencore; the JSON is specified in docs/PROTOCOL.md. */
#ifndef ENCORE_MANIFEST_H
#define ENCORE_MANIFEST_H
#include "id.h"
#include "json.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MANIFEST_MAX_RENDITIONS 8
#define MANIFEST_HASH_HEX 65
#define MANIFEST_MAX_SEGMENTS 100000

struct manifest_segment {
	uint32_t size;                 /* 0: pending, still being transcoded (only when !complete) */
	char hash[MANIFEST_HASH_HEX];  /* BLAKE2b-256 of the segment bytes, hex */
};

struct manifest_rendition {
	int bitrate;                   /* kbps */
	int rate, channels;
	char *init_url;
	uint32_t init_size;
	char init_hash[MANIFEST_HASH_HEX];
	char *segment_url_template;    /* contains "{index}" */
	char *origin_url_template;     /* the same segments from the origin, bypassing the edge */
	char *origin_init_url;
	struct manifest_segment *segments;  /* segment_count entries */
};

struct manifest {
	char id[ID_LEN + 1];
	char type[8];                  /* "track" | "episode" */
	int duration_ms;
	int segment_seconds;
	uint32_t segment_count;
	int source_rate;
	double gain_db, integrated_lufs, true_peak_dbtp;
	int64_t expires_at;
	bool complete;                 /* every rung of the ladder is transcoded (false while on-demand transcoding runs) */
	int nrenditions;
	struct manifest_rendition renditions[MANIFEST_MAX_RENDITIONS];  /* bitrate ascending */
	/* Inline start: the init part and one segment of one rendition, or inline_bitrate 0. */
	int inline_bitrate;
	uint32_t inline_index;
	uint8_t *inline_init;
	size_t inline_init_len;
	uint8_t *inline_segment;
	size_t inline_segment_len;
};

/* Renders m as one JSON object into w. */
void manifest_write(const struct manifest *m, struct jw *w);
/* Parses and validates a manifest. Returns 0 with *out (free with manifest_free), or -EINVAL with err. */
int manifest_parse(const char *json, struct manifest **out, char *err, size_t errlen);
void manifest_free(struct manifest *m);
/* The rendition with exactly this bitrate, or NULL. */
const struct manifest_rendition *manifest_rendition(const struct manifest *m, int bitrate);
/* Expands a URL template for segment index (caller frees). */
char *manifest_expand(const char *tmpl, uint32_t index);

#endif
