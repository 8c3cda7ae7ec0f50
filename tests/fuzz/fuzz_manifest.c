/* Fuzz target: playback manifests as the client receives them (manifest_parse), then the
 * accessors the player uses on an accepted one. */
#include "fuzz.h"
#include "manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fz_cstr(data, size);
	char err[160];
	struct manifest *m = NULL;
	if (manifest_parse(text, &m, err, sizeof(err)) == 0) {
		for (int i = 0; i < m->nrenditions; i++) {
			const struct manifest_rendition *r = &m->renditions[i];
			if (manifest_rendition(m, r->bitrate) == NULL)
				abort();
			char *u = manifest_expand(r->segment_url_template, m->segment_count ? m->segment_count - 1 : 0);
			free(u);
			if (r->origin_url_template) {
				u = manifest_expand(r->origin_url_template, 4294967295u);
				free(u);
			}
		}
		/* What parses must survive a write/parse round trip. */
		struct jw w;
		jw_init(&w);
		manifest_write(m, &w);
		char *out = jw_finish(&w);
		struct manifest *m2 = NULL;
		if (manifest_parse(out, &m2, err, sizeof(err)) != 0)
			abort();
		manifest_free(m2);
		free(out);
		manifest_free(m);
	}
	free(text);
	return 0;
}
