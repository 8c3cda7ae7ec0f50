/* Unit tests for audio sinks: null counting, WAV exactness, ALSA failure on a machine
 * without the device. */
#include "../tap.h"
#include "sink.h"
#include "xmem.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static unsigned rd16(const unsigned char *p) { return p[0] | (unsigned)p[1] << 8; }
static uint32_t rd32(const unsigned char *p) { return rd16(p) | (uint32_t)rd16(p + 2) << 16; }

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	unsigned char *b = xmalloc((size_t)n + 1);
	*len = fread(b, 1, (size_t)n, f);
	fclose(f);
	return b;
}

/* Checks the 44-byte canonical header; returns the data chunk size or -1. */
static long check_wav_header(const unsigned char *b, size_t len, int rate, int ch)
{
	if (len < 44 || memcmp(b, "RIFF", 4) || memcmp(b + 8, "WAVE", 4) || memcmp(b + 12, "fmt ", 4) || memcmp(b + 36, "data", 4))
		return -1;
	CHECK_INT(rd32(b + 4), len - 8);
	CHECK_INT(rd32(b + 16), 16);
	CHECK_INT(rd16(b + 20), 1);
	CHECK_INT(rd16(b + 22), ch);
	CHECK_INT(rd32(b + 24), rate);
	CHECK_INT(rd32(b + 28), rate * ch * 2);
	CHECK_INT(rd16(b + 32), ch * 2);
	CHECK_INT(rd16(b + 34), 16);
	return (long)rd32(b + 40);
}

static void test_wav_holds_exactly_the_frames_written(void)
{
	char path[] = "/tmp/encore-sink-XXXXXX";
	int fd = mkstemp(path);
	close(fd);
	char spec[64], err[256];
	snprintf(spec, sizeof(spec), "wav:%s", path);
	struct sink *s = sink_new(spec, 44100, 2, err, sizeof(err));
	CHECK(s != NULL, "open failed: %s", err);
	if (!s)
		return;
	CHECK_STR(sink_name(s), "wav");
	/* Values that map exactly onto s16, written in uneven chunks, plus clipping cases. */
	enum { N = 10007 };
	float *in = xmalloc(N * 2 * sizeof(float));
	int16_t want[N * 2];
	for (int i = 0; i < N * 2; i++) {
		int v = (int)((i * 7919L) % 65535) - 32767;
		in[i] = (float)v / 32767.0f;
		want[i] = (int16_t)v;
	}
	in[0] = 1.5f, want[0] = 32767;
	in[1] = -1.5f, want[1] = -32768;
	in[2] = 0.0f, want[2] = 0;
	size_t at = 0;
	for (size_t k = 1; at < N; k = k * 3 + 1) {
		size_t m = k < N - at ? k : N - at;
		CHECK_INT(sink_write(s, in + 2 * at, m), 0);
		at += m;
	}
	/* Valid already after drain, before close. */
	CHECK_INT(sink_drain(s), 0);
	size_t len;
	unsigned char *b = slurp(path, &len);
	CHECK(b && check_wav_header(b, len, 44100, 2) == N * 4, "header after drain wrong");
	free(b);
	CHECK_INT(sink_stats(s).frames, N);
	sink_free(s);

	b = slurp(path, &len);
	CHECK(b != NULL, "cannot read back %s", path);
	if (b) {
		CHECK_INT(len, 44 + N * 4);
		CHECK_INT(check_wav_header(b, len, 44100, 2), N * 4);
		int bad = 0;
		for (int i = 0; i < N * 2 && 44 + 2 * (size_t)i + 1 < len; i++) {
			int16_t got = (int16_t)rd16(b + 44 + 2 * i);
			if (got != want[i] && bad++ < 5)
				printf("#   sample %d: want %d got %d\n", i, want[i], got);
		}
		CHECK_INT(bad, 0);
	}
	free(b);
	free(in);
	unlink(path);
}

static void test_wav_with_no_frames_is_still_valid(void)
{
	char path[] = "/tmp/encore-sink-XXXXXX";
	int fd = mkstemp(path);
	close(fd);
	char spec[64], err[256];
	snprintf(spec, sizeof(spec), "wav:%s", path);
	sink_free(sink_new(spec, 48000, 1, err, sizeof(err)));
	size_t len;
	unsigned char *b = slurp(path, &len);
	CHECK(b && check_wav_header(b, len, 48000, 1) == 0, "empty WAV header wrong");
	free(b);
	unlink(path);
}

static void test_null_counts_frames(void)
{
	char err[256];
	struct sink *s = sink_new("null", 48000, 2, err, sizeof(err));
	CHECK(s != NULL, "open failed: %s", err);
	float buf[2 * 1000] = { 0 };
	for (int i = 0; i < 50; i++)
		CHECK_INT(sink_write(s, buf, 1000), 0);
	CHECK_INT(sink_write(s, buf, 0), 0);
	CHECK_INT(sink_stats(s).frames, 50000);
	CHECK_INT(sink_stats(s).underruns, 0);
	CHECK_INT(sink_drain(s), 0);
	sink_free(s);

	s = sink_new("null:realtime", 48000, 2, err, sizeof(err));
	CHECK(s != NULL, "realtime open failed: %s", err);
	CHECK_INT(sink_write(s, buf, 480), 0); /* 10 ms */
	CHECK_INT(sink_stats(s).frames, 480);
	sink_free(s);
}

struct blocked_write {
	struct sink *s;
	float *buf;
	size_t n;
	int rc;
};

static void *write_thread(void *arg)
{
	struct blocked_write *w = arg;
	w->rc = sink_write(w->s, w->buf, w->n);
	return NULL;
}

static void test_null_realtime_drop_releases_a_blocked_write(void)
{
	char err[256];
	struct sink *s = sink_new("null:realtime", 8000, 2, err, sizeof(err));
	CHECK(s != NULL, "open failed: %s", err);
	/* 10 minutes of audio: the write would sleep that long unless the drop cuts it short. */
	struct blocked_write w = {.s = s, .n = 8000 * 600, .rc = -1};
	w.buf = xcalloc(w.n * 2, sizeof(float));
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_t th;
	pthread_create(&th, NULL, write_thread, &w);
	/* Drop until the writer is back: a drop before it started waiting is simply a reset. */
	for (;;) {
		sink_drop(s);
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, NULL);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (sink_stats(s).frames == w.n || t1.tv_sec - t0.tv_sec > 120)
			break;
	}
	pthread_join(th, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK_INT(w.rc, 0);
	CHECK(t1.tv_sec - t0.tv_sec < 120, "expected the drop to release the write, it took %ld s", (long)(t1.tv_sec - t0.tv_sec));
	/* After a drop the clock starts afresh: a short write plays now, not after the dropped 10 minutes. */
	CHECK_INT(sink_write(s, w.buf, 80), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK(t0.tv_sec - t1.tv_sec < 60, "expected a short write after the drop to return at once, took %ld s",
	      (long)(t0.tv_sec - t1.tv_sec));
	free(w.buf);
	sink_free(s);
}

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* The pause is the stimulus (a sleep between writes); every check is a bound that a slow
 * machine only moves further from failing. */
static void test_realtime_wav_places_frames_on_the_wall_clock_and_pauses_as_silence(void)
{
	char path[] = "/tmp/encore-sink-XXXXXX";
	int fd = mkstemp(path);
	close(fd);
	char spec[96], err[256], t0path[64];
	snprintf(spec, sizeof(spec), "wav:%s:realtime", path);
	snprintf(t0path, sizeof(t0path), "%s.t0", path);
	int64_t before = clock_ns(CLOCK_REALTIME), mono0 = clock_ns(CLOCK_MONOTONIC);
	struct sink *s = sink_new(spec, 8000, 1, err, sizeof(err));
	int64_t after = clock_ns(CLOCK_REALTIME);
	CHECK(s != NULL, "open failed: %s", err);
	if (!s)
		return;
	CHECK_STR(sink_name(s), "wav");
	size_t len;
	unsigned char *b = slurp(t0path, &len);
	long long t0 = b ? atoll((char *)b) : 0;
	free(b);
	CHECK(t0 >= before && t0 <= after, "t0 %lld not in [%lld, %lld]", t0, (long long)before, (long long)after);
	float tone[80];
	for (int i = 0; i < 80; i++)
		tone[i] = 0.5f;
	CHECK_INT(sink_write(s, tone, 80), 0);  /* 10 ms */
	sleep_ms(100);
	CHECK_INT(sink_write(s, tone, 80), 0);
	int64_t played_ns = clock_ns(CLOCK_MONOTONIC) - mono0;
	sink_free(s);
	b = slurp(path, &len);
	CHECK(b != NULL, "cannot read back %s", path);
	if (b) {
		long data = check_wav_header(b, len, 8000, 1);
		long frames = data / 2, first = -1, second = -1, ones = 0;
		for (long i = 0; i < frames; i++) {
			int16_t v = (int16_t)rd16(b + 44 + 2 * i);
			if (v == 0)
				continue;
			CHECK(v == 16384, "frame %ld is %d", i, v);
			ones++;
			if (first < 0)
				first = i;
			else if (second < 0 && i > first + 79)
				second = i;
		}
		CHECK_INT(ones, 160);
		/* Frame 0 is the open: the first write came at once, the second after >= 110 ms. */
		CHECK(first >= 0 && first < 800, "first frame at %ld", first);
		CHECK(second >= first + 80 + 800, "second write at frame %ld, first at %ld: the pause is missing", second, first);
		/* Each write returned only once its frames were heard. */
		CHECK((int64_t)frames * 125000 <= played_ns, "%ld frames (%lld ns) written in %lld ns", frames,
		      (long long)frames * 125000, (long long)played_ns);
	}
	free(b);
	unlink(path);
	unlink(t0path);
}

static void test_null_realtime_does_not_race_through_a_pause(void)
{
	char err[256];
	struct sink *s = sink_new("null:realtime", 8000, 1, err, sizeof(err));
	CHECK(s != NULL, "open failed: %s", err);
	if (!s)
		return;
	float buf[80] = {0};
	CHECK_INT(sink_write(s, buf, 80), 0);
	sleep_ms(300);
	/* 250 ms of audio after the pause takes 250 ms, not a burst through the 300 ms gap. */
	int64_t t = clock_ns(CLOCK_MONOTONIC);
	for (int i = 0; i < 25; i++)
		CHECK_INT(sink_write(s, buf, 80), 0);
	int64_t took = clock_ns(CLOCK_MONOTONIC) - t;
	CHECK(took >= 240000000LL, "250 ms of audio played in %lld ms", (long long)(took / 1000000));
	sink_free(s);
}

static void test_bad_specs_fail_with_a_message(void)
{
	char err[256];
	CHECK(sink_new("pulse", 48000, 2, err, sizeof(err)) == NULL, "unknown sink accepted");
	CHECK(strstr(err, "unknown audio output 'pulse'") != NULL, "got '%s'", err);
	CHECK(sink_new("wav", 48000, 2, err, sizeof(err)) == NULL, "wav without file accepted");
	CHECK(strstr(err, "wav:FILE") != NULL, "got '%s'", err);
	CHECK(sink_new("wav::realtime", 48000, 2, err, sizeof(err)) == NULL, "realtime wav without file accepted");
	CHECK(strstr(err, "wav:FILE") != NULL, "got '%s'", err);
	CHECK(sink_new("wav:/nonexistent-dir/x.wav", 48000, 2, err, sizeof(err)) == NULL, "unwritable path accepted");
	CHECK(strstr(err, "/nonexistent-dir/x.wav") != NULL, "got '%s'", err);
	CHECK(sink_new("null:fast", 48000, 2, err, sizeof(err)) == NULL, "bad null option accepted");
	CHECK(sink_new("null", 0, 2, err, sizeof(err)) == NULL, "zero rate accepted");
	sink_free(NULL);
}

/* Opens spec with stderr redirected to a temp file; returns the sink and what was printed. */
static struct sink *open_capturing_stderr(const char *spec, char *err, size_t errlen, char *printed, size_t plen)
{
	char path[] = "/tmp/encore-stderr-XXXXXX";
	int fd = mkstemp(path);
	fflush(stderr);
	int saved = dup(2);
	dup2(fd, 2);
	struct sink *s = sink_new(spec, 48000, 2, err, errlen);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	ssize_t n = pread(fd, printed, plen - 1, 0);
	printed[n > 0 ? n : 0] = 0;
	close(fd);
	unlink(path);
	return s;
}

static void test_alsa_missing_device_fails_cleanly(void)
{
	char err[256], printed[1024];
	struct sink *s = open_capturing_stderr("alsa:encore_no_such_device", err, sizeof(err), printed, sizeof(printed));
	CHECK(s == NULL, "nonexistent ALSA device opened");
	sink_free(s);
	CHECK(strncmp(err, "no ALSA device 'encore_no_such_device': ", 40) == 0, "got '%s'", err);
	CHECK(printed[0] == 0, "alsa-lib wrote to stderr: %s", printed);
	printf("# %s\n", err);

	/* The default device: fails the same way without a sound card; works with one. */
	s = open_capturing_stderr("alsa", err, sizeof(err), printed, sizeof(printed));
	if (s) {
		CHECK_STR(sink_name(s), "alsa");
		sink_free(s);
	} else {
		CHECK(strncmp(err, "no ALSA device 'default': ", 26) == 0 || strstr(err, "'default'") != NULL, "got '%s'", err);
		CHECK(printed[0] == 0, "alsa-lib wrote to stderr: %s", printed);
		printf("# %s\n", err);
	}
}

int main(void)
{
	RUN(test_wav_holds_exactly_the_frames_written);
	RUN(test_wav_with_no_frames_is_still_valid);
	RUN(test_null_counts_frames);
	RUN(test_null_realtime_drop_releases_a_blocked_write);
	RUN(test_realtime_wav_places_frames_on_the_wall_clock_and_pauses_as_silence);
	RUN(test_null_realtime_does_not_race_through_a_pause);
	RUN(test_bad_specs_fail_with_a_message);
	RUN(test_alsa_missing_device_fails_cleanly);
	return TAP_DONE();
}
