/* sink: spec parsing, the shared wrapper, and the null and wav outputs. ALSA lives in
 * sink_alsa.c. */
#include "sink.h"
#include "xmem.h"
#include <errno.h>
#include <pthread.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sink {
	const struct sink_ops *ops;
	void *priv;
	int rate, channels;
	struct sink_stats stats;
};

extern const struct sink_ops sink_alsa_ops;

void *sink_priv(const struct sink *s) { return s->priv; }
void sink_set_priv(struct sink *s, void *priv) { s->priv = priv; }
void sink_count_underrun(struct sink *s) { s->stats.underruns++; }
struct sink_stats sink_stats(const struct sink *s) { return s->stats; }
const char *sink_name(const struct sink *s) { return s->ops->name; }
int sink_rate(const struct sink *s) { return s->rate; }
int sink_channels(const struct sink *s) { return s->channels; }

/* ---- null ---- */

struct null_priv {
	bool realtime;
	pthread_mutex_t mu;    /* realtime: guards the clock and the wait */
	pthread_cond_t cv;     /* on CLOCK_MONOTONIC; signalled by drop */
	struct timespec start; /* CLOCK_MONOTONIC at the first write since open or a drop */
	uint64_t frames;
	unsigned drops;
};

static int null_open(struct sink *s, const char *arg, char *err, size_t errlen)
{
	if (arg && strcmp(arg, "realtime") != 0) {
		snprintf(err, errlen, "null sink: unknown option '%s' (only 'realtime')", arg);
		return -EINVAL;
	}
	struct null_priv *p = xcalloc(1, sizeof(*p));
	p->realtime = arg != NULL;
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cv, &ca);
	pthread_condattr_destroy(&ca);
	s->priv = p;
	return 0;
}

static int null_write(struct sink *s, const float *frames, size_t n)
{
	struct null_priv *p = s->priv;
	if (!p->realtime)
		return 0;
	pthread_mutex_lock(&p->mu);
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	/* A write after a pause or an idle spell finds its deadline long past: the silence
	 * in between was "played", so rebase rather than race through the backlog (which
	 * would run a resumed track seconds ahead of the wall clock). */
	int64_t behind_ms = p->frames ? ((int64_t)(now.tv_sec - p->start.tv_sec) * 1000 +
					 (now.tv_nsec - p->start.tv_nsec) / 1000000) -
					(int64_t)(p->frames * 1000 / (uint64_t)s->rate)
				      : 0;
	if (p->frames == 0 || behind_ms > 100) {
		p->start = now;
		p->frames = 0;
	}
	p->frames += n;
	/* Sleep to an absolute deadline so rounding never accumulates into drift. */
	uint64_t ns = p->frames * 1000000000ULL / (uint64_t)s->rate;
	struct timespec dl = p->start;
	dl.tv_sec += (time_t)(ns / 1000000000ULL);
	dl.tv_nsec += (long)(ns % 1000000000ULL);
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	/* Until the frames have played, or a drop discards them. */
	unsigned drops = p->drops;
	while (p->drops == drops && pthread_cond_timedwait(&p->cv, &p->mu, &dl) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&p->mu);
	return 0;
}

static void null_drop(struct sink *s)
{
	struct null_priv *p = s->priv;
	if (!p->realtime)
		return;
	pthread_mutex_lock(&p->mu);
	p->drops++;
	p->frames = 0;  /* the next write starts a fresh timeline: it plays now */
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

static int null_drain(struct sink *s)
{
	return 0;
}

static void null_close(struct sink *s)
{
	struct null_priv *p = s->priv;
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(s->priv);
	s->priv = NULL;
}

static const struct sink_ops null_ops = { "null", null_open, null_write, null_drain, null_close, null_drop };

/* ---- wav ---- */

struct wav_priv {
	FILE *f;
	char *path;
	uint64_t data_bytes;
	int16_t *scratch;
	size_t scratch_len;
	bool realtime;
	struct timespec start;    /* CLOCK_MONOTONIC of sample 0 (realtime only) */
};

/* "wav:FILE:realtime": an ideal device with no output buffer. Each write plays during the
 * call (it returns when its last frame would have played) and the time the sink waited
 * for audio (paused, idle, an underrun) is written as silence, so frame i of the file is
 * what was heard i/rate seconds after the sink opened. The CLOCK_REALTIME of frame 0 is
 * written to FILE.t0 (nanoseconds, text), which lines up the files of two clients. */
static const char wav_realtime_suffix[] = ":realtime";

static int64_t ns_since(const struct timespec *a, const struct timespec *b)
{
	return (int64_t)(b->tv_sec - a->tv_sec) * 1000000000LL + (b->tv_nsec - a->tv_nsec);
}

static int wav_write_t0(const char *path, char *err, size_t errlen)
{
	struct timespec rt;
	clock_gettime(CLOCK_REALTIME, &rt);
	char *t0 = xasprintf("%s.t0", path);
	FILE *f = fopen(t0, "w");
	int rc = 0;
	if (!f || fprintf(f, "%lld\n", (long long)rt.tv_sec * 1000000000LL + rt.tv_nsec) < 0)
		rc = -(errno ? errno : EIO);
	if (f && fclose(f) != 0 && rc == 0)
		rc = -(errno ? errno : EIO);
	if (rc < 0)
		snprintf(err, errlen, "cannot write '%s': %s", t0, strerror(-rc));
	free(t0);
	return rc;
}

static void put_le16(unsigned char *p, unsigned v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }
static void put_le32(unsigned char *p, uint32_t v) { put_le16(p, v & 0xffff); put_le16(p + 2, v >> 16); }

/* Canonical 44-byte header; sizes are placeholders until wav_patch. */
static void wav_header(unsigned char h[44], int rate, int channels, uint32_t data_bytes)
{
	memcpy(h, "RIFF", 4);
	put_le32(h + 4, 36 + data_bytes);
	memcpy(h + 8, "WAVEfmt ", 8);
	put_le32(h + 16, 16);
	put_le16(h + 20, 1); /* PCM */
	put_le16(h + 22, (unsigned)channels);
	put_le32(h + 24, (uint32_t)rate);
	put_le32(h + 28, (uint32_t)rate * (uint32_t)channels * 2);
	put_le16(h + 32, (unsigned)channels * 2);
	put_le16(h + 34, 16);
	memcpy(h + 36, "data", 4);
	put_le32(h + 40, data_bytes);
}

static int wav_open(struct sink *s, const char *arg, char *err, size_t errlen)
{
	size_t len = arg ? strlen(arg) : 0, sl = sizeof(wav_realtime_suffix) - 1;
	bool realtime = len >= sl && strcmp(arg + len - sl, wav_realtime_suffix) == 0;
	char *path = arg ? xstrndup(arg, realtime ? len - sl : len) : NULL;
	int rc = 0;
	FILE *f = NULL;
	if (!path || !*path) {
		snprintf(err, errlen, "wav sink needs a file name: wav:FILE or wav:FILE:realtime");
		rc = -EINVAL;
		goto fail;
	}
	f = fopen(path, "wb");
	if (!f) {
		rc = -errno;
		snprintf(err, errlen, "cannot create WAV file '%s': %s", path, strerror(-rc));
		goto fail;
	}
	unsigned char h[44];
	wav_header(h, s->rate, s->channels, 0);
	if (fwrite(h, 1, sizeof(h), f) != sizeof(h)) {
		rc = -(errno ? errno : EIO);
		snprintf(err, errlen, "cannot write WAV file '%s': %s", path, strerror(-rc));
		goto fail;
	}
	struct wav_priv *p = xcalloc(1, sizeof(*p));
	p->realtime = realtime;
	if (realtime) {
		/* Sample 0 is now: both clocks are read back to back. */
		clock_gettime(CLOCK_MONOTONIC, &p->start);
		if ((rc = wav_write_t0(path, err, errlen)) < 0) {
			free(p);
			goto fail;
		}
	}
	p->f = f;
	p->path = path;
	s->priv = p;
	return 0;
fail:
	if (f)
		fclose(f);
	free(path);
	return rc;
}

static int16_t to_s16(float x)
{
	float v = x * 32767.0f;
	if (!(v > -32768.0f)) /* also catches NaN */
		return v != v ? 0 : -32768;
	if (v > 32767.0f)
		return 32767;
	return (int16_t)lrintf(v);
}

static int wav_write(struct sink *s, const float *frames, size_t n)
{
	struct wav_priv *p = s->priv;
	size_t samples = n * (size_t)s->channels;
	if (samples > p->scratch_len) {
		p->scratch = xrealloc(p->scratch, samples * sizeof(*p->scratch));
		p->scratch_len = samples;
	}
	unsigned char *out = (unsigned char *)p->scratch;
	for (size_t i = 0; i < samples; i++) {
		uint16_t v = (uint16_t)to_s16(frames[i]);
		out[2 * i] = (unsigned char)v;
		out[2 * i + 1] = (unsigned char)(v >> 8);
	}
	if (p->realtime) {
		/* The time nothing was written is heard as silence: pad the file up to now. */
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		uint64_t due = (uint64_t)(ns_since(&p->start, &now) / 1000) * (uint64_t)s->rate / 1000000u;
		uint64_t have = p->data_bytes / (2u * (uint64_t)s->channels);
		static const unsigned char zeros[4096];
		for (uint64_t pad = due > have ? (due - have) * 2u * (uint64_t)s->channels : 0; pad > 0;) {
			size_t k = pad < sizeof(zeros) ? (size_t)pad : sizeof(zeros);
			if (fwrite(zeros, 1, k, p->f) != k)
				return -(errno ? errno : EIO);
			p->data_bytes += k;
			pad -= k;
		}
	}
	if (fwrite(out, 2, samples, p->f) != samples)
		return -(errno ? errno : EIO);
	p->data_bytes += samples * 2;
	if (p->realtime) {
		/* Readers follow the file while it grows. Then play: return when the last frame
		 * would have been heard. */
		if (fflush(p->f) != 0)
			return -(errno ? errno : EIO);
		uint64_t frames = p->data_bytes / (2u * (uint64_t)s->channels);
		uint64_t ns = frames * 1000000000ULL / (uint64_t)s->rate;
		struct timespec dl = p->start;
		dl.tv_sec += (time_t)(ns / 1000000000ULL);
		dl.tv_nsec += (long)(ns % 1000000000ULL);
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &dl, NULL) == EINTR)
			;
	}
	return 0;
}

/* Rewrites the header sizes (clamped to what a RIFF file can describe) and returns to the end. */
static int wav_patch(struct sink *s)
{
	struct wav_priv *p = s->priv;
	uint32_t data = p->data_bytes > 0xffffffffu - 36 ? 0xffffffffu - 36 : (uint32_t)p->data_bytes;
	unsigned char h[44];
	wav_header(h, s->rate, s->channels, data);
	if (fflush(p->f) != 0 || fseek(p->f, 0, SEEK_SET) != 0 || fwrite(h, 1, sizeof(h), p->f) != sizeof(h) ||
	    fseek(p->f, 0, SEEK_END) != 0 || fflush(p->f) != 0)
		return -(errno ? errno : EIO);
	return 0;
}

static int wav_drain(struct sink *s)
{
	return wav_patch(s);
}

static void wav_close(struct sink *s)
{
	struct wav_priv *p = s->priv;
	if (!p)
		return;
	if (wav_patch(s) < 0)
		fprintf(stderr, "encore: finalising WAV file '%s' failed\n", p->path);
	fclose(p->f);
	free(p->scratch);
	free(p->path);
	free(p);
	s->priv = NULL;
}

static const struct sink_ops wav_ops = { "wav", wav_open, wav_write, wav_drain, wav_close };

/* ---- wrapper ---- */

static const struct sink_ops *const all_ops[] = { &null_ops, &wav_ops, &sink_alsa_ops };

struct sink *sink_new(const char *spec, int rate, int channels, char *err, size_t errlen)
{
	if (errlen)
		err[0] = 0;
	if (!spec || rate <= 0 || channels <= 0 || channels > 8) {
		snprintf(err, errlen, "bad sink parameters (spec '%s', %d Hz, %d channels)", spec ? spec : "(null)", rate, channels);
		return NULL;
	}
	const char *colon = strchr(spec, ':');
	size_t namelen = colon ? (size_t)(colon - spec) : strlen(spec);
	const char *arg = colon ? colon + 1 : NULL;
	for (size_t i = 0; i < sizeof(all_ops) / sizeof(all_ops[0]); i++) {
		const struct sink_ops *ops = all_ops[i];
		if (strlen(ops->name) != namelen || strncmp(ops->name, spec, namelen) != 0)
			continue;
		struct sink *s = xcalloc(1, sizeof(*s));
		s->ops = ops;
		s->rate = rate;
		s->channels = channels;
		if (ops->open(s, arg, err, errlen) < 0) {
			free(s);
			return NULL;
		}
		return s;
	}
	snprintf(err, errlen, "unknown audio output '%.*s' (try null, null:realtime, wav:FILE, alsa, alsa:DEVICE)", (int)namelen, spec);
	return NULL;
}

int sink_write(struct sink *s, const float *frames, size_t n)
{
	if (n == 0)
		return 0;
	int rc = s->ops->write(s, frames, n);
	if (rc == 0)
		s->stats.frames += n;
	return rc;
}

int sink_drain(struct sink *s)
{
	return s->ops->drain(s);
}

void sink_drop(struct sink *s)
{
	if (s->ops->drop)
		s->ops->drop(s);
}

void sink_free(struct sink *s)
{
	if (!s)
		return;
	s->ops->close(s);
	free(s);
}
