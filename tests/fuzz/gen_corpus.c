/* gen_corpus: writes the binary and generated seeds of tests/fuzz/corpus (run once by a
 * developer; its output is committed): segments and init parts from the real transcoder,
 * WAV sources, manifests written by manifest_write, and signed JWTs.
 * Usage: gen_corpus CORPUS_DIR */
#include "audiofile.h"
#include "jwt.h"
#include "manifest.h"
#include "segment.h"
#include "transcode.h"
#include "xmem.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *root;

static void put(const char *target, const char *name, const void *data, size_t len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s/%s", root, target, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

static struct pcm *tone(int rate, int channels, double seconds)
{
	struct pcm *p = pcm_new(rate, channels, (size_t)(seconds * rate));
	for (size_t i = 0; i < p->frames; i++)
		for (int c = 0; c < channels; c++)
			p->samples[i * (size_t)channels + (size_t)c] = 0.3f * (float)sin(2 * M_PI * 440.0 * (double)i / rate * (c + 1));
	return p;
}

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	root = argv[1];
	char err[200];

	/* Audio sources: short WAVs, mono and stereo at both accepted rates. */
	struct pcm *src = tone(44100, 2, 0.05);
	uint8_t *wav;
	size_t wavlen;
	audiofile_wav_mem(src, &wav, &wavlen);
	put("audiofile", "stereo44k.wav", wav, wavlen);
	free(wav);
	pcm_free(src);
	src = tone(48000, 1, 0.05);
	audiofile_wav_mem(src, &wav, &wavlen);
	put("audiofile", "mono48k.wav", wav, wavlen);
	free(wav);
	pcm_free(src);

	/* Renditions of a 9 s tone: 3 segments each, at the lowest and a middle rung. */
	src = tone(44100, 2, 9.0);
	struct manifest m;
	memset(&m, 0, sizeof(m));
	memcpy(m.id, "4uLU6hMCjMI75M1A2tKUQC", ID_LEN + 1);
	strcpy(m.type, "track");
	m.duration_ms = 9000;
	m.segment_seconds = SEGMENT_SECONDS;
	m.source_rate = 44100;
	m.gain_db = -3.5;
	m.integrated_lufs = -10.5;
	m.true_peak_dbtp = -1.0;
	m.expires_at = 1900000000;
	m.complete = true;
	const int rungs[] = {24, 96};
	for (int r = 0; r < 2; r++) {
		struct transcode_output *o;
		if (transcode_rendition(src, rungs[r], &o, err, sizeof(err)) != 0) {
			fprintf(stderr, "transcode: %s\n", err);
			return 1;
		}
		char name[64];
		snprintf(name, sizeof(name), "init%d", rungs[r]);
		put("segment", name, o->init, o->init_len);
		for (uint32_t k = 0; k < o->nsegments; k++) {
			snprintf(name, sizeof(name), "seg%d_%u", rungs[r], k);
			if (k < 2)
				put("segment", name, o->segments[k], o->segment_lens[k]);
			/* Decoder input: mode byte, init length, init, segment(s) split by "SPLT". */
			uint8_t *d = xmalloc(5 + o->init_len + o->segment_lens[k] + 4 + o->segment_lens[0]);
			size_t n = 0;
			d[n++] = (uint8_t)(k & 1);
			d[n++] = (uint8_t)o->init_len;
			d[n++] = (uint8_t)(o->init_len >> 8);
			d[n++] = (uint8_t)(o->init_len >> 16);
			d[n++] = (uint8_t)(o->init_len >> 24);
			memcpy(d + n, o->init, o->init_len);
			n += o->init_len;
			memcpy(d + n, o->segments[k], o->segment_lens[k]);
			n += o->segment_lens[k];
			if (k == 1) {
				memcpy(d + n, "SPLT", 4);
				n += 4;
				memcpy(d + n, o->segments[0], o->segment_lens[0]);
				n += o->segment_lens[0];
			}
			snprintf(name, sizeof(name), "r%d_s%u", rungs[r], k);
			put("decoder", name, d, n);
			free(d);
		}
		struct manifest_rendition *mr = &m.renditions[m.nrenditions++];
		mr->bitrate = rungs[r];
		mr->rate = o->rate;
		mr->channels = o->channels;
		mr->init_url = xasprintf("http://127.0.0.1:8080/cdn/a/%s/%d/init?kid=k1&exp=1900000000&sig=AAAA", m.id, rungs[r]);
		mr->init_size = (uint32_t)o->init_len;
		segment_hash_hex(o->init, o->init_len, mr->init_hash);
		mr->segment_url_template = xasprintf("http://127.0.0.1:8080/cdn/a/%s/%d/{index}?sig=AAAA", m.id, rungs[r]);
		mr->origin_url_template = xasprintf("http://127.0.0.1:8080/origin/%s/%d/{index}", m.id, rungs[r]);
		mr->origin_init_url = xasprintf("http://127.0.0.1:8080/origin/%s/%d/init", m.id, rungs[r]);
		m.segment_count = o->nsegments;
		mr->segments = xcalloc(o->nsegments, sizeof(*mr->segments));
		for (uint32_t k = 0; k < o->nsegments; k++) {
			mr->segments[k].size = (uint32_t)o->segment_lens[k];
			segment_hash_hex(o->segments[k], o->segment_lens[k], mr->segments[k].hash);
		}
		if (r == 0) {
			m.inline_bitrate = rungs[r];
			m.inline_index = 0;
			m.inline_init = xmalloc(o->init_len);
			memcpy(m.inline_init, o->init, o->init_len);
			m.inline_init_len = o->init_len;
			m.inline_segment = xmalloc(o->segment_lens[0]);
			memcpy(m.inline_segment, o->segments[0], o->segment_lens[0]);
			m.inline_segment_len = o->segment_lens[0];
		}
		transcode_output_free(o);
	}
	pcm_free(src);
	struct jw w;
	jw_init(&w);
	manifest_write(&m, &w);
	char *json = jw_finish(&w);
	put("manifest", "inline.json", json, strlen(json));
	free(json);
	free(m.inline_init);
	free(m.inline_segment);
	m.inline_bitrate = 0;
	m.inline_init = m.inline_segment = NULL;
	m.inline_init_len = m.inline_segment_len = 0;
	m.nrenditions = 1;
	m.complete = false;
	jw_init(&w);
	manifest_write(&m, &w);
	json = jw_finish(&w);
	put("manifest", "plain.json", json, strlen(json));
	free(json);
	for (int r = 0; r < 2; r++) {
		struct manifest_rendition *mr = &m.renditions[r];
		free(mr->init_url);
		free(mr->segment_url_template);
		free(mr->origin_url_template);
		free(mr->origin_init_url);
		free(mr->segments);
	}

	/* JWTs signed with the fuzz target's key (mode byte 0: verify as given). */
	static const unsigned char key[KEYRING_KEY_BYTES] = {1, 2, 3, 4, 5, 6, 7, 8};
	struct keyring *kr = keyring_new();
	keyring_add(kr, "k1", key);
	struct jwt_claims c = {.sub = "alice", .tier = "premium", .country = "SE", .iat = 1699990000, .exp = 1700003600};
	char *tok = jwt_sign(kr, &c);
	size_t tl = strlen(tok);
	char *buf = xmalloc(tl + 1);
	buf[0] = 0;
	memcpy(buf + 1, tok, tl);
	put("jwt", "valid", buf, tl + 1);
	free(tok);
	c.admin = true;
	c.exp = 1600000000;
	tok = jwt_sign(kr, &c);
	tl = strlen(tok);
	buf = xrealloc(buf, tl + 1);
	memcpy(buf + 1, tok, tl);
	put("jwt", "expired_admin", buf, tl + 1);
	free(tok);
	free(buf);
	keyring_free(kr);
	return 0;
}
