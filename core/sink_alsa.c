/* sink_alsa: the ALSA output for sink.c. */
#include "sink.h"
#include "xmem.h"
#include <alsa/asoundlib.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct alsa_priv {
	snd_pcm_t *pcm;
	bool s16;          /* device took s16 rather than float: convert */
	int16_t *scratch;
	size_t scratch_len;
};

/* alsa-lib prints its own diagnostics to stderr, which would scribble over the TUI and
 * duplicate the one message we return; silence them for this thread only. */
static void quiet(const char *file, int line, const char *function, int err, const char *fmt, va_list arg)
{
}

static int alsa_open(struct sink *s, const char *arg, char *err, size_t errlen)
{
	const char *dev = arg && *arg ? arg : "default";
	snd_local_error_handler_t old = snd_lib_error_set_local(quiet);
	snd_pcm_t *pcm = NULL;
	bool s16 = false;
	int rc = snd_pcm_open(&pcm, dev, SND_PCM_STREAM_PLAYBACK, 0);
	if (rc < 0) {
		snprintf(err, errlen, "no ALSA device '%s': %s", dev, snd_strerror(rc));
		goto fail;
	}
	/* 100 ms of device buffer: short enough for snappy pause/seek, long enough not to
	 * underrun on a loaded machine. */
	rc = snd_pcm_set_params(pcm, SND_PCM_FORMAT_FLOAT, SND_PCM_ACCESS_RW_INTERLEAVED, (unsigned)sink_channels(s),
	                        (unsigned)sink_rate(s), 1, 100000);
	if (rc < 0) {
		s16 = true;
		rc = snd_pcm_set_params(pcm, SND_PCM_FORMAT_S16, SND_PCM_ACCESS_RW_INTERLEAVED, (unsigned)sink_channels(s),
		                        (unsigned)sink_rate(s), 1, 100000);
	}
	if (rc < 0) {
		snprintf(err, errlen, "ALSA device '%s' rejects %d Hz, %d channels (float or s16): %s", dev, sink_rate(s),
		         sink_channels(s), snd_strerror(rc));
		goto fail;
	}
	snd_lib_error_set_local(old);
	struct alsa_priv *p = xcalloc(1, sizeof(*p));
	p->pcm = pcm;
	p->s16 = s16;
	sink_set_priv(s, p);
	return 0;
fail:
	if (pcm)
		snd_pcm_close(pcm);
	snd_lib_error_set_local(old);
	return rc < 0 ? rc : -EIO;
}

static int alsa_write(struct sink *s, const float *frames, size_t n)
{
	struct alsa_priv *p = sink_priv(s);
	size_t ch = (size_t)sink_channels(s);
	const void *data = frames;
	if (p->s16) {
		if (n * ch > p->scratch_len) {
			p->scratch = xrealloc(p->scratch, n * ch * sizeof(*p->scratch));
			p->scratch_len = n * ch;
		}
		for (size_t i = 0; i < n * ch; i++) {
			float v = frames[i] * 32767.0f;
			p->scratch[i] = v >= 32767.0f ? 32767 : v <= -32768.0f ? -32768 : v == v ? (int16_t)lrintf(v) : 0;
		}
		data = p->scratch;
	}
	size_t bytes_per_frame = ch * (p->s16 ? sizeof(int16_t) : sizeof(float));
	const unsigned char *at = data;
	while (n > 0) {
		snd_pcm_sframes_t k = snd_pcm_writei(p->pcm, at, n);
		if (k < 0) {
			if (k == -EPIPE)
				sink_count_underrun(s);
			int rc = snd_pcm_recover(p->pcm, (int)k, 1);
			if (rc < 0)
				return rc;
			continue;
		}
		at += (size_t)k * bytes_per_frame;
		n -= (size_t)k;
	}
	return 0;
}

static int alsa_drain(struct sink *s)
{
	struct alsa_priv *p = sink_priv(s);
	int rc = snd_pcm_drain(p->pcm);
	/* drain leaves the stream stopped; prepare it so later writes work. */
	int rc2 = snd_pcm_prepare(p->pcm);
	return rc < 0 ? rc : rc2 < 0 ? rc2 : 0;
}

static void alsa_close(struct sink *s)
{
	struct alsa_priv *p = sink_priv(s);
	if (!p)
		return;
	snd_pcm_close(p->pcm);
	free(p->scratch);
	free(p);
	sink_set_priv(s, NULL);
}

const struct sink_ops sink_alsa_ops = { "alsa", alsa_open, alsa_write, alsa_drain, alsa_close };
