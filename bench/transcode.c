/* bench/transcode: x-realtime per core of transcode_rendition() against oggenc on the same
 * WAV at the same managed bitrate (-b N -m 0.9N), medians of RUNS runs.
 * Usage: bench_transcode [file.wav] (default: 60 s of synthesized stereo music, 10 s with
 * BENCH_QUICK=1). Ends with one BENCH record per rung (bench/README.md). */
#include "audiofile.h"
#include "transcode.h"
#include "xmem.h"
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUNS 3

extern char **environ;

static struct pcm *synth(double seconds)
{
	int rate = 44100;
	size_t n = (size_t)(seconds * rate);
	struct pcm *p = pcm_new(rate, 2, n);
	static const double roots[] = {220.0, 174.61, 261.63, 196.0};
	unsigned seed = 1;
	for (size_t i = 0; i < n; i++) {
		double t = (double)i / rate, f = roots[(int)t % 4], c = 0;
		for (int h = 1; h <= 6; h++)
			c += sin(2 * M_PI * f * h * t) / h + sin(2 * M_PI * f * 1.26 * h * t) / (2 * h);
		seed = seed * 1103515245u + 12345u;
		double noise = ((double)(seed >> 8) / 8388608.0 - 1.0) * exp(-fmod(t, 0.5) * 20);
		p->samples[2 * i] = (float)(0.1 * c + 0.15 * noise);
		p->samples[2 * i + 1] = (float)(0.1 * c - 0.12 * noise);
	}
	return p;
}

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v)
{
	qsort(v, RUNS, sizeof(*v), cmp);
	return v[RUNS / 2];
}

/* CPU seconds (user+sys) of one oggenc run, or -1. */
static double oggenc_cpu(const char *wav, int kbps, int rate)
{
	char b[16], m[16], r[16];
	snprintf(b, sizeof(b), "%d", kbps);
	snprintf(m, sizeof(m), "%d", kbps * 9 / 10);
	snprintf(r, sizeof(r), "%d", rate / 2);
	char *argv[] = {"oggenc", "-Q", "-b", b, "-m", m, "-o", "/dev/null", (char *)wav, NULL, NULL, NULL, NULL};
	if (kbps < 45) {
		/* Same rendition format as ours: mono at half rate. */
		argv[8] = "--downmix";
		argv[9] = "--resample";
		argv[10] = r;
		argv[11] = (char *)wav;
	}
	pid_t pid;
	if (posix_spawnp(&pid, "oggenc", NULL, NULL, argv, environ) != 0)
		return -1;
	int st;
	struct rusage ru;
	if (wait4(pid, &st, 0, &ru) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return -1;
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
	struct pcm *src;
	char err[256];
	char tmp[] = "/tmp/encore-bench-XXXXXX";
	const char *wav = tmp;
	if (argc > 1) {
		if (audiofile_read(argv[1], &src, err, sizeof(err))) {
			fprintf(stderr, "%s: %s\n", argv[1], err);
			return 1;
		}
		wav = argv[1];
	} else {
		const char *quick = getenv("BENCH_QUICK");
		src = synth(quick && *quick && strcmp(quick, "0") != 0 ? 10 : 60);
		int fd = mkstemp(tmp);
		if (fd < 0)
			return 1;
		close(fd);
		if (audiofile_write_wav(tmp, src))
			return 1;
		/* Encode what oggenc will read: the 16-bit quantised file. */
		pcm_free(src);
		if (audiofile_read(tmp, &src, err, sizeof(err)))
			return 1;
	}
	double seconds = (double)src->frames / src->rate;
	printf("transcode bench: %.1f s, %d Hz, %d ch, median of %d runs, single thread\n", seconds, src->rate,
	       src->channels, RUNS);
	printf("%6s %14s %14s %8s\n", "kbps", "encored x-RT", "oggenc x-RT", "ratio (>1: encored faster)");
	int status = 0;
	char bench[TRANSCODE_NRUNGS][160] = {{0}};
	for (int i = 0; i < TRANSCODE_NRUNGS; i++) {
		int kbps = transcode_rungs[i];
		double ours[RUNS], theirs[RUNS];
		for (int r = 0; r < RUNS; r++) {
			struct transcode_output *o;
			double t0 = cpu_now();
			if (transcode_rendition(src, kbps, &o, err, sizeof(err))) {
				fprintf(stderr, "transcode: %s\n", err);
				return 1;
			}
			ours[r] = cpu_now() - t0;
			transcode_output_free(o);
			theirs[r] = oggenc_cpu(wav, kbps, src->rate);
		}
		double a = median(ours), b = median(theirs);
		if (b < 0) {
			printf("%6d %13.1fx %14s %8s\n", kbps, seconds / a, "n/a", "n/a");
			status = 1;
			continue;
		}
		printf("%6d %13.1fx %13.1fx %7.2fx%s\n", kbps, seconds / a, seconds / b, b / a,
		       kbps < 45 ? "  (both down-mix and resample to half rate)" : "");
		/* The bench/README.md record: encored against oggenc, higher is better. */
		snprintf(bench[i], sizeof(bench[i]), "BENCH\ttranscode_%dk\txrt_higher_better\t%.1f\toggenc\t%.1f\t%.2f\t(info)\n",
			 kbps, seconds / a, seconds / b, b / a);
	}
	for (int i = 0; i < TRANSCODE_NRUNGS; i++)
		fputs(bench[i], stdout);
	if (argc <= 1)
		unlink(tmp);
	pcm_free(src);
	return status;
}
