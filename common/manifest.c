/* manifest: the parser trusts nothing: every array is bounded and every field type-checked,
 * because a manifest may come from a cache file or a misbehaving server. */
#include "manifest.h"
#include "b64.h"
#include "xmem.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void write_b64(struct jw *w, const char *key, const uint8_t *data, size_t len)
{
	char *s = b64url_encode_public(data, len);   /* audio: public, and 80 KB of it */
	jw_kstr(w, key, s);
	free(s);
}

void manifest_write(const struct manifest *m, struct jw *w)
{
	jw_obj(w);
	jw_kstr(w, "id", m->id);
	jw_kstr(w, "type", m->type);
	char uri[64];
	snprintf(uri, sizeof(uri), "encore:%s:%s", m->type, m->id);
	jw_kstr(w, "uri", uri);
	jw_kint(w, "duration_ms", m->duration_ms);
	jw_kint(w, "segment_seconds", m->segment_seconds);
	jw_kint(w, "segment_count", m->segment_count);
	jw_kint(w, "source_rate", m->source_rate);
	jw_key(w, "normalization");
	jw_obj(w);
	jw_kdouble(w, "gain_db", m->gain_db);
	jw_kdouble(w, "integrated_lufs", m->integrated_lufs);
	jw_kdouble(w, "true_peak_dbtp", m->true_peak_dbtp);
	jw_obj_end(w);
	jw_kint(w, "expires_at", m->expires_at);
	jw_kbool(w, "complete", m->complete);
	jw_key(w, "bitrates");
	jw_arr(w);
	for (int i = 0; i < m->nrenditions; i++)
		jw_int(w, m->renditions[i].bitrate);
	jw_arr_end(w);
	jw_key(w, "renditions");
	jw_arr(w);
	for (int i = 0; i < m->nrenditions; i++) {
		const struct manifest_rendition *r = &m->renditions[i];
		jw_obj(w);
		jw_kint(w, "bitrate", r->bitrate);
		jw_kint(w, "sample_rate", r->rate);
		jw_kint(w, "channels", r->channels);
		jw_key(w, "init");
		jw_obj(w);
		jw_kstr(w, "url", r->init_url);
		jw_kstr(w, "origin_url", r->origin_init_url);
		jw_kint(w, "size", r->init_size);
		jw_kstr(w, "hash", r->init_hash);
		jw_obj_end(w);
		jw_kstr(w, "segment_url_template", r->segment_url_template);
		jw_kstr(w, "origin_url_template", r->origin_url_template);
		jw_key(w, "segments");
		jw_arr(w);
		for (uint32_t k = 0; k < m->segment_count; k++) {
			jw_obj(w);
			if (r->segments[k].size == 0) {
				jw_kbool(w, "ready", false);  /* still being transcoded */
			} else {
				jw_kint(w, "size", r->segments[k].size);
				jw_kstr(w, "hash", r->segments[k].hash);
			}
			jw_obj_end(w);
		}
		jw_arr_end(w);
		jw_obj_end(w);
	}
	jw_arr_end(w);
	jw_key(w, "inline");
	if (m->inline_bitrate > 0) {
		jw_obj(w);
		jw_kint(w, "bitrate", m->inline_bitrate);
		jw_kint(w, "segment_index", m->inline_index);
		write_b64(w, "init", m->inline_init, m->inline_init_len);
		write_b64(w, "segment", m->inline_segment, m->inline_segment_len);
		jw_obj_end(w);
	} else {
		jw_null(w);
	}
	jw_obj_end(w);
}

void manifest_free(struct manifest *m)
{
	if (!m)
		return;
	for (int i = 0; i < m->nrenditions; i++) {
		struct manifest_rendition *r = &m->renditions[i];
		free(r->init_url);
		free(r->origin_init_url);
		free(r->segment_url_template);
		free(r->origin_url_template);
		free(r->segments);
	}
	free(m->inline_init);
	free(m->inline_segment);
	free(m);
}

static bool get_uint(yajl_val o, const char *k, long long lo, long long hi, long long *out)
{
	return json_get_int(o, k, out) && *out >= lo && *out <= hi;
}

static bool copy_hash(yajl_val o, const char *k, char dst[MANIFEST_HASH_HEX])
{
	const char *s = json_get_str(o, k);
	if (!s || strlen(s) != MANIFEST_HASH_HEX - 1)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	memcpy(dst, s, MANIFEST_HASH_HEX);
	return true;
}

static char *dup_str(yajl_val o, const char *k)
{
	const char *s = json_get_str(o, k);
	return s ? xstrdup(s) : NULL;
}

int manifest_parse(const char *json, struct manifest **out, char *err, size_t errlen)
{
	char perr[128];
	yajl_val root = json_parse(json, perr, sizeof(perr));
	struct manifest *m = xcalloc(1, sizeof(*m));
	long long v;
	const char *s;
	if (!root) {
		snprintf(err, errlen, "manifest is not JSON: %s", perr);
		goto fail;
	}
#define NEED(cond, what) do { if (!(cond)) { snprintf(err, errlen, "manifest: bad or missing %s", what); goto fail; } } while (0)
	s = json_get_str(root, "id");
	NEED(s && id_valid(s), "id");
	strcpy(m->id, s);
	s = json_get_str(root, "type");
	NEED(s && (strcmp(s, "track") == 0 || strcmp(s, "episode") == 0), "type");
	strcpy(m->type, s);
	NEED(get_uint(root, "duration_ms", 0, 1LL << 31, &v), "duration_ms");
	m->duration_ms = (int)v;
	NEED(get_uint(root, "segment_seconds", 1, 60, &v), "segment_seconds");
	m->segment_seconds = (int)v;
	NEED(get_uint(root, "segment_count", 1, MANIFEST_MAX_SEGMENTS, &v), "segment_count");
	m->segment_count = (uint32_t)v;
	NEED(get_uint(root, "source_rate", 8000, 192000, &v), "source_rate");
	m->source_rate = (int)v;
	NEED(get_uint(root, "expires_at", 0, 1LL << 40, &v), "expires_at");
	m->expires_at = v;
	m->complete = true;
	json_get_bool(root, "complete", &m->complete);
	yajl_val norm = json_get(root, "normalization");
	NEED(json_get_double(norm, "gain_db", &m->gain_db), "normalization.gain_db");
	json_get_double(norm, "integrated_lufs", &m->integrated_lufs);
	json_get_double(norm, "true_peak_dbtp", &m->true_peak_dbtp);
	yajl_val rs = json_get(root, "renditions");
	NEED(rs && YAJL_IS_ARRAY(rs) && rs->u.array.len >= 1 && rs->u.array.len <= MANIFEST_MAX_RENDITIONS, "renditions");
	for (size_t i = 0; i < rs->u.array.len; i++) {
		yajl_val r = rs->u.array.values[i];
		struct manifest_rendition *mr = &m->renditions[m->nrenditions++];
		NEED(get_uint(r, "bitrate", 1, 2000, &v), "rendition bitrate");
		mr->bitrate = (int)v;
		NEED(i == 0 || mr->bitrate > m->renditions[i - 1].bitrate, "rendition order");
		NEED(get_uint(r, "sample_rate", 8000, 192000, &v), "rendition sample_rate");
		mr->rate = (int)v;
		NEED(get_uint(r, "channels", 1, 2, &v), "rendition channels");
		mr->channels = (int)v;
		yajl_val init = json_get(r, "init");
		mr->init_url = dup_str(init, "url");
		mr->origin_init_url = dup_str(init, "origin_url");
		NEED(mr->init_url && mr->origin_init_url, "init url");
		NEED(get_uint(init, "size", 1, 1 << 24, &v), "init size");
		mr->init_size = (uint32_t)v;
		NEED(copy_hash(init, "hash", mr->init_hash), "init hash");
		mr->segment_url_template = dup_str(r, "segment_url_template");
		mr->origin_url_template = dup_str(r, "origin_url_template");
		NEED(mr->segment_url_template && strstr(mr->segment_url_template, "{index}") &&
		     mr->origin_url_template && strstr(mr->origin_url_template, "{index}"), "segment_url_template");
		yajl_val segs = json_get(r, "segments");
		NEED(segs && YAJL_IS_ARRAY(segs) && segs->u.array.len == m->segment_count, "segments");
		mr->segments = xcalloc(m->segment_count, sizeof(*mr->segments));
		for (uint32_t k = 0; k < m->segment_count; k++) {
			yajl_val sg = segs->u.array.values[k];
			bool ready = true;
			if (json_get_bool(sg, "ready", &ready) && !ready) {
				/* Pending (size 0, no hash): only while the item is still being transcoded. */
				NEED(!m->complete, "segment (pending in a complete manifest)");
				continue;
			}
			NEED(get_uint(sg, "size", 1, 1 << 24, &v), "segment size");
			mr->segments[k].size = (uint32_t)v;
			NEED(copy_hash(sg, "hash", mr->segments[k].hash), "segment hash");
		}
	}
	yajl_val in = json_get(root, "inline");
	if (in && YAJL_IS_OBJECT(in)) {
		NEED(get_uint(in, "bitrate", 1, 2000, &v) && manifest_rendition(m, (int)v), "inline bitrate");
		m->inline_bitrate = (int)v;
		NEED(get_uint(in, "segment_index", 0, m->segment_count - 1, &v), "inline segment_index");
		m->inline_index = (uint32_t)v;
		const char *i64 = json_get_str(in, "init"), *s64 = json_get_str(in, "segment");
		NEED(i64 && s64, "inline data");
		m->inline_init = b64url_decode_public(i64, strlen(i64), &m->inline_init_len);
		m->inline_segment = b64url_decode_public(s64, strlen(s64), &m->inline_segment_len);
		NEED(m->inline_init && m->inline_segment, "inline base64");
	}
#undef NEED
	yajl_tree_free(root);
	*out = m;
	return 0;
fail:
	yajl_tree_free(root);
	manifest_free(m);
	return -EINVAL;
}

const struct manifest_rendition *manifest_rendition(const struct manifest *m, int bitrate)
{
	for (int i = 0; i < m->nrenditions; i++)
		if (m->renditions[i].bitrate == bitrate)
			return &m->renditions[i];
	return NULL;
}

char *manifest_expand(const char *tmpl, uint32_t index)
{
	const char *at = strstr(tmpl, "{index}");
	if (!at)
		return xstrdup(tmpl);
	return xasprintf("%.*s%u%s", (int)(at - tmpl), tmpl, index, at + 7);
}
