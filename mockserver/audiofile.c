/* audiofile: every size field in a hostile file is checked against the bytes actually
 * present before it is used, and decoded length is capped before allocation. */
#include "audiofile.h"
#include "xmem.h"
#include <FLAC/stream_decoder.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FILE_BYTES ((size_t)4 << 30)

static int fail(int code, char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(int code, char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

static uint32_t le16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const uint8_t *p) { return le16(p) | le16(p + 2) << 16; }

static int check_format(int rate, int channels, char *err, size_t errlen)
{
	if (channels != 1 && channels != 2)
		return fail(-EINVAL, err, errlen, "unsupported channel count %d (need 1 or 2)", channels);
	if (rate != 44100 && rate != 48000)
		return fail(-EINVAL, err, errlen, "unsupported sample rate %d (need 44100 or 48000)", rate);
	return 0;
}

static float clean(float v)
{
	return isfinite(v) ? v : 0.0f;   /* NaN/inf would poison the encoder's analysis */
}

/* ---- WAV ---- */

enum { WAV_PCM = 1, WAV_FLOAT = 3, WAV_EXTENSIBLE = 0xfffe };

static int read_wav(const uint8_t *d, size_t len, struct pcm **out, char *err, size_t errlen)
{
	const uint8_t *fmt = NULL, *data = NULL;
	size_t fmt_len = 0, data_len = 0;
	size_t off = 12;
	while (len - off >= 8) {
		const uint8_t *c = d + off;
		size_t sz = le32(c + 4);
		size_t avail = len - off - 8;
		if (memcmp(c, "fmt ", 4) == 0) {
			if (sz < 16 || sz > avail)
				return fail(-EIO, err, errlen, "truncated or malformed fmt chunk (%zu bytes)", sz);
			fmt = c + 8;
			fmt_len = sz;
		} else if (memcmp(c, "data", 4) == 0) {
			if (!fmt)
				return fail(-EIO, err, errlen, "data chunk before fmt chunk");
			if (sz > avail)
				return fail(-EIO, err, errlen, "truncated data chunk: expected %zu bytes, found %zu", sz, avail);
			data = c + 8;
			data_len = sz;
			break;
		}
		if (sz > avail)
			break;   /* a trailing chunk cut short: nothing we need lies past it */
		off += 8 + sz + (sz & 1);
		if (off > len)
			break;
	}
	if (!fmt)
		return fail(-EIO, err, errlen, "WAV without a fmt chunk");
	if (!data)
		return fail(-EIO, err, errlen, "WAV without a data chunk");

	uint32_t tag = le16(fmt);
	int channels = (int)le16(fmt + 2);
	uint32_t rate = le32(fmt + 4);
	uint32_t align = le16(fmt + 12);
	int bits = (int)le16(fmt + 14);
	if (tag == WAV_EXTENSIBLE) {
		if (fmt_len < 40)
			return fail(-EIO, err, errlen, "WAVE_FORMAT_EXTENSIBLE fmt chunk too short (%zu bytes)", fmt_len);
		tag = le16(fmt + 24);   /* first two bytes of the sub-format GUID */
	}
	if (tag != WAV_PCM && tag != WAV_FLOAT)
		return fail(-EINVAL, err, errlen, "unsupported WAV encoding (format tag 0x%04x; need PCM or float)", tag);
	int r = check_format((int)(rate > 1000000 ? 1000000 : rate), channels, err, errlen);
	if (r)
		return r;
	if ((tag == WAV_PCM && bits != 16 && bits != 24 && bits != 32) || (tag == WAV_FLOAT && bits != 32))
		return fail(-EINVAL, err, errlen, "unsupported %s bit depth %d (need 16, 24 or 32 bit integer or 32-bit float)",
			    tag == WAV_FLOAT ? "float" : "integer", bits);
	uint32_t bps = (uint32_t)bits / 8;
	if (align != bps * (uint32_t)channels)
		return fail(-EIO, err, errlen, "inconsistent block align %u for %d channels of %d bits", align, channels, bits);
	size_t frames = data_len / align;
	if (frames == 0)
		return fail(-EINVAL, err, errlen, "no audio frames in data chunk");
	if (frames > (size_t)AUDIOFILE_MAX_SECONDS * rate)
		return fail(-EINVAL, err, errlen, "audio longer than the %d s limit", AUDIOFILE_MAX_SECONDS);

	struct pcm *p = pcm_new((int)rate, channels, frames);
	size_t n = frames * (size_t)channels;
	const uint8_t *s = data;
	for (size_t i = 0; i < n; i++, s += bps) {
		float v;
		if (tag == WAV_FLOAT) {
			uint32_t u = le32(s);
			memcpy(&v, &u, 4);
			v = clean(v);
		} else if (bits == 16) {
			v = (float)(int16_t)le16(s) / 32768.0f;
		} else if (bits == 24) {
			int32_t x = (int32_t)((uint32_t)s[0] << 8 | (uint32_t)s[1] << 16 | (uint32_t)s[2] << 24) >> 8;
			v = (float)x / 8388608.0f;
		} else {
			v = (float)((double)(int32_t)le32(s) / 2147483648.0);
		}
		p->samples[i] = v;
	}
	*out = p;
	return 0;
}

/* ---- FLAC ---- */

struct flac_ctx {
	const uint8_t *data;
	size_t len, pos;
	int rate, channels, bits;
	uint64_t declared;       /* STREAMINFO total samples, 0 = unknown */
	float *samples;
	size_t frames, cap;      /* cap in frames */
	size_t max_frames;
	int failed;              /* set by callbacks; message in msg */
	char msg[160];
};

static FLAC__StreamDecoderReadStatus flac_read(const FLAC__StreamDecoder *dec, FLAC__byte buffer[], size_t *bytes, void *ud)
{
	struct flac_ctx *c = ud;
	size_t n = c->len - c->pos < *bytes ? c->len - c->pos : *bytes;
	if (n == 0) {
		*bytes = 0;
		return FLAC__STREAM_DECODER_READ_STATUS_END_OF_STREAM;
	}
	memcpy(buffer, c->data + c->pos, n);
	c->pos += n;
	*bytes = n;
	return FLAC__STREAM_DECODER_READ_STATUS_CONTINUE;
}

static FLAC__bool flac_eof(const FLAC__StreamDecoder *dec, void *ud)
{
	struct flac_ctx *c = ud;
	return c->pos >= c->len;
}

static void flac_meta(const FLAC__StreamDecoder *dec, const FLAC__StreamMetadata *m, void *ud)
{
	struct flac_ctx *c = ud;
	if (m->type != FLAC__METADATA_TYPE_STREAMINFO)
		return;
	c->rate = (int)m->data.stream_info.sample_rate;
	c->channels = (int)m->data.stream_info.channels;
	c->bits = (int)m->data.stream_info.bits_per_sample;
	c->declared = m->data.stream_info.total_samples;
}

static FLAC__StreamDecoderWriteStatus flac_write(const FLAC__StreamDecoder *dec, const FLAC__Frame *f,
						 const FLAC__int32 *const buf[], void *ud)
{
	struct flac_ctx *c = ud;
	if (c->failed)
		return FLAC__STREAM_DECODER_WRITE_STATUS_ABORT;
	if (!c->rate) {
		snprintf(c->msg, sizeof(c->msg), "FLAC audio before STREAMINFO");
		goto bad;
	}
	if ((int)f->header.channels != c->channels || (int)f->header.bits_per_sample != c->bits ||
	    (int)f->header.sample_rate != c->rate) {
		snprintf(c->msg, sizeof(c->msg), "FLAC frame format differs from STREAMINFO");
		goto bad;
	}
	size_t n = f->header.blocksize;
	if (c->frames + n > c->max_frames) {
		snprintf(c->msg, sizeof(c->msg), "audio longer than the %d s limit", AUDIOFILE_MAX_SECONDS);
		goto bad;
	}
	if (c->frames + n > c->cap) {
		size_t want = c->cap ? c->cap * 2 : 65536;
		while (want < c->frames + n)
			want *= 2;
		c->cap = want;
		c->samples = xrealloc(c->samples, sizeof(float) * c->cap * (size_t)c->channels);
	}
	double scale = 1.0 / (double)(1u << (c->bits - 1));
	for (size_t i = 0; i < n; i++)
		for (int ch = 0; ch < c->channels; ch++)
			c->samples[(c->frames + i) * (size_t)c->channels + (size_t)ch] = (float)(buf[ch][i] * scale);
	c->frames += n;
	return FLAC__STREAM_DECODER_WRITE_STATUS_CONTINUE;
bad:
	c->failed = 1;
	return FLAC__STREAM_DECODER_WRITE_STATUS_ABORT;
}

static void flac_error(const FLAC__StreamDecoder *dec, FLAC__StreamDecoderErrorStatus st, void *ud)
{
	struct flac_ctx *c = ud;
	if (!c->failed)
		snprintf(c->msg, sizeof(c->msg), "corrupt FLAC data (%s)", FLAC__StreamDecoderErrorStatusString[st]);
	c->failed = 1;
}

static int read_flac(const uint8_t *d, size_t len, struct pcm **out, char *err, size_t errlen)
{
	struct flac_ctx c = {.data = d, .len = len};
	int ret = -EIO;
	FLAC__StreamDecoder *dec = FLAC__stream_decoder_new();
	if (!dec)
		return fail(-ENOMEM, err, errlen, "cannot create FLAC decoder");
	FLAC__stream_decoder_set_md5_checking(dec, true);
	if (FLAC__stream_decoder_init_stream(dec, flac_read, NULL, NULL, NULL, flac_eof, flac_write, flac_meta,
					     flac_error, &c) != FLAC__STREAM_DECODER_INIT_STATUS_OK) {
		ret = fail(-EIO, err, errlen, "cannot initialise FLAC decoder");
		goto out;
	}
	if (!FLAC__stream_decoder_process_until_end_of_metadata(dec) || c.failed) {
		ret = fail(-EIO, err, errlen, "%s", c.failed ? c.msg : "corrupt FLAC metadata");
		goto out;
	}
	if (!c.rate) {
		ret = fail(-EIO, err, errlen, "FLAC without STREAMINFO");
		goto out;
	}
	if ((ret = check_format(c.rate, c.channels, err, errlen)))
		goto out;
	if (c.bits < 8 || c.bits > 24) {
		ret = fail(-EINVAL, err, errlen, "unsupported FLAC bit depth %d (need 8 to 24)", c.bits);
		goto out;
	}
	c.max_frames = (size_t)AUDIOFILE_MAX_SECONDS * (size_t)c.rate;
	if (c.declared > c.max_frames) {
		ret = fail(-EINVAL, err, errlen, "audio longer than the %d s limit", AUDIOFILE_MAX_SECONDS);
		goto out;
	}
	int ok = FLAC__stream_decoder_process_until_end_of_stream(dec);
	if (c.failed || !ok) {
		ret = fail(-EIO, err, errlen, "%s", c.failed ? c.msg : "corrupt FLAC stream");
		goto out;
	}
	if (c.declared && c.frames != c.declared) {
		ret = fail(-EIO, err, errlen, "truncated FLAC: expected %llu samples, found %zu",
			   (unsigned long long)c.declared, c.frames);
		goto out;
	}
	if (!FLAC__stream_decoder_finish(dec)) {
		ret = fail(-EIO, err, errlen, "FLAC MD5 mismatch: decoded audio is corrupt");
		goto out;
	}
	if (c.frames == 0) {
		ret = fail(-EINVAL, err, errlen, "no audio frames in FLAC stream");
		goto out;
	}
	struct pcm *p = pcm_new(c.rate, c.channels, 0);
	free(p->samples);
	p->samples = c.samples;
	p->frames = c.frames;
	c.samples = NULL;
	*out = p;
	ret = 0;
out:
	FLAC__stream_decoder_delete(dec);
	free(c.samples);
	return ret;
}

/* Bytes of a leading ID3v2 tag (some tools prepend one to FLAC), or 0. */
static size_t id3_skip(const uint8_t *d, size_t len)
{
	if (len < 10 || memcmp(d, "ID3", 3) != 0)
		return 0;
	size_t sz = ((size_t)(d[6] & 0x7f) << 21) | ((size_t)(d[7] & 0x7f) << 14) | ((size_t)(d[8] & 0x7f) << 7) | (d[9] & 0x7f);
	sz += 10 + ((d[5] & 0x10) ? 10 : 0);
	return sz <= len ? sz : 0;
}

int audiofile_read_mem(const void *data, size_t len, struct pcm **out, char *err, size_t errlen)
{
	const uint8_t *d = data;
	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (!d || len == 0)
		return fail(-EINVAL, err, errlen, "empty file");
	if (len >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WAVE", 4) == 0)
		return read_wav(d, len, out, err, errlen);
	size_t skip = id3_skip(d, len);
	if (len - skip >= 4 && memcmp(d + skip, "fLaC", 4) == 0)
		return read_flac(d, len, out, err, errlen);   /* libFLAC skips the ID3 tag itself */
	return fail(-EINVAL, err, errlen, "not a WAV or FLAC file");
}

int audiofile_read(const char *path, struct pcm **out, char *err, size_t errlen)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(-errno, err, errlen, "cannot open %s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > MAX_FILE_BYTES) {
		close(fd);
		return fail(-EINVAL, err, errlen, "%s is not a regular file of at most 4 GiB", path);
	}
	size_t len = (size_t)st.st_size, got = 0;
	uint8_t *buf = xmalloc(len ? len : 1);
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? -errno : -EIO;
			close(fd);
			free(buf);
			return fail(e, err, errlen, "cannot read %s", path);
		}
		got += (size_t)n;
	}
	close(fd);
	int r = audiofile_read_mem(buf, len, out, err, errlen);
	free(buf);
	return r;
}

int audiofile_wav_mem(const struct pcm *p, uint8_t **out, size_t *outlen)
{
	size_t n = p->frames * (size_t)p->channels;
	if (n * 2 > UINT32_MAX - 44)
		return -EFBIG;
	uint32_t data_len = (uint32_t)(n * 2);
	uint8_t *b = xmalloc(44 + (size_t)data_len);
	uint32_t align = 2u * (uint32_t)p->channels;
	memcpy(b, "RIFF", 4);
	uint8_t *q = b + 4;
#define W16(v) do { uint32_t v_ = (v); *q++ = (uint8_t)v_; *q++ = (uint8_t)(v_ >> 8); } while (0)
#define W32(v) do { uint32_t w_ = (v); W16(w_ & 0xffff); W16(w_ >> 16); } while (0)
	W32(36 + data_len);
	memcpy(q, "WAVEfmt ", 8);
	q += 8;
	W32(16);
	W16(1);
	W16((uint32_t)p->channels);
	W32((uint32_t)p->rate);
	W32((uint32_t)p->rate * align);
	W16(align);
	W16(16);
	memcpy(q, "data", 4);
	q += 4;
	W32(data_len);
	for (size_t i = 0; i < n; i++) {
		float v = p->samples[i];
		v = v > 1.0f ? 1.0f : v < -1.0f ? -1.0f : v;
		long s = lrintf(v * 32767.0f);
		W16((uint32_t)(uint16_t)(int16_t)s);
	}
#undef W16
#undef W32
	*out = b;
	*outlen = 44 + (size_t)data_len;
	return 0;
}

int audiofile_write_wav(const char *path, const struct pcm *p)
{
	uint8_t *b;
	size_t blen;
	int ret = audiofile_wav_mem(p, &b, &blen);
	if (ret != 0)
		return ret;
	FILE *f = fopen(path, "wb");
	if (!f) {
		ret = -errno;
	} else {
		if (fwrite(b, 1, blen, f) != blen)
			ret = -EIO;
		if (fclose(f) != 0 && !ret)
			ret = -errno;
	}
	free(b);
	return ret;
}
