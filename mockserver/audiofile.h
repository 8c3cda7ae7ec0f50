/* audiofile: reads ingest source files (WAV, FLAC) into PCM, refusing anything else with a
 * message fit to show the uploader. The format is sniffed from content, not the name. */
#ifndef ENCORE_AUDIOFILE_H
#define ENCORE_AUDIOFILE_H
#include "pcm.h"
#include <stddef.h>
#include <stdint.h>

/* Longest source accepted; bounds the memory a small, highly compressed FLAC can demand. */
#define AUDIOFILE_MAX_SECONDS 7200

/* Decodes WAV (16/24/32-bit integer PCM, 32-bit float, plain or WAVE_FORMAT_EXTENSIBLE) or
 * FLAC, mono or stereo, 44100 or 48000 Hz, from memory. Returns 0 with *out (free with
 * pcm_free), or -EINVAL (not audio we accept) / -EIO (corrupt or truncated) with a
 * human-readable reason in err (always NUL-terminated when errlen > 0). */
int audiofile_read_mem(const void *data, size_t len, struct pcm **out, char *err, size_t errlen);
/* As audiofile_read_mem for a file; -errno from open/read, with the reason in err. */
int audiofile_read(const char *path, struct pcm **out, char *err, size_t errlen);
/* Encodes pcm as a 16-bit PCM WAV in memory (*out is the caller's to free). 0 or -EFBIG. */
int audiofile_wav_mem(const struct pcm *p, uint8_t **out, size_t *outlen);
/* Writes pcm as a 16-bit PCM WAV (clipping to [-1, 1]). Returns 0 or -errno. */
int audiofile_write_wav(const char *path, const struct pcm *pcm);

#endif
