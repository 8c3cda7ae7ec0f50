/* sink: audio outputs behind a const ops table, chosen by a spec string:
 *   "null"           swallow frames as fast as they come, counting them
 *   "null:realtime"  the same, but each write sleeps until the frames would have played
 *                    (a device with no buffer: a frame written at T is heard at T);
 *                    sink_drop cuts the sleep short
 *   "wav:FILE"       write exactly what would be played as a 16-bit PCM WAV (float
 *                    samples scaled by 32767, rounded, clipped to [-32768, 32767]); the
 *                    RIFF/data sizes are patched on drain and close so the file is valid
 *   "wav:FILE:realtime"  the same, paced like a device with no buffer: frame i is what was
 *                    heard i/rate s after opening (silence while paused or idle); the
 *                    CLOCK_REALTIME of frame 0 goes to FILE.t0 (ns, text)
 *   "alsa[:DEVICE]"  ALSA playback (DEVICE defaults to "default"), float or s16
 *                    interleaved, underruns recovered with snd_pcm_recover and counted
 * Input is always interleaved float at the rate/channels given to sink_new. Volume
 * and gain are not the sink's job (see gain.h); neither is pacing, except the :realtime variants. */
#ifndef ENCORE_SINK_H
#define ENCORE_SINK_H
#include <stddef.h>
#include <stdint.h>

struct sink;

struct sink_ops {
	const char *name;
	/* Opens the device/file named by arg (text after "name:", or NULL); fills err on failure. 0 or -errno. */
	int (*open)(struct sink *s, const char *arg, char *err, size_t errlen);
	/* Blocks until all frames are accepted. 0 or -errno. */
	int (*write)(struct sink *s, const float *frames, size_t n);
	/* Blocks until everything written has been played (or is safely on disk). 0 or -errno. */
	int (*drain)(struct sink *s);
	/* Releases everything open acquired; must tolerate a failed write before it. */
	void (*close)(struct sink *s);
	/* Optional, any thread: forgets audio accepted but not yet played and makes a write
	 * blocked on playback return at once, so what comes next plays now (skip, seek). */
	void (*drop)(struct sink *s);
};

struct sink_stats {
	uint64_t frames;    /* frames accepted by write */
	unsigned underruns; /* device underruns recovered (alsa only) */
};

/* Opens the sink named by spec for interleaved float frames. Returns NULL on failure
 * with one human-readable line in err (e.g. "no ALSA device 'default': ..."). */
struct sink *sink_new(const char *spec, int rate, int channels, char *err, size_t errlen);
/* Writes n frames (n * channels floats). 0 or -errno. */
int sink_write(struct sink *s, const float *frames, size_t n);
/* Waits for written audio to finish playing / reach the file. 0 or -errno. */
int sink_drain(struct sink *s);
/* Any thread: drops audio written but not yet played, releasing a blocked write at once
 * (null:realtime; a no-op for sinks that cannot). */
void sink_drop(struct sink *s);
/* Closes (finalising a WAV header) and frees s. NULL is a no-op. */
void sink_free(struct sink *s);
/* Frames accepted and underruns so far. */
struct sink_stats sink_stats(const struct sink *s);
/* The ops name ("null", "wav", "alsa"). */
const char *sink_name(const struct sink *s);
/* Rate and channels as given to sink_new. */
int sink_rate(const struct sink *s);
int sink_channels(const struct sink *s);

/* For ops implementations only: private state (owned by the ops: open sets it, close
 * frees it) and the underrun counter. */
void *sink_priv(const struct sink *s);
void sink_set_priv(struct sink *s, void *priv);
void sink_count_underrun(struct sink *s);

#endif
