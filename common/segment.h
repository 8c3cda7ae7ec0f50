/* segment: the wire format of one rendition of a track, shared by encored and libencore.
 *
 * A rendition is one *init* part (Vorbis headers + stream facts, fetched once per bitrate)
 * and a run of *segments*, each owning SEGMENT_SECONDS of audio at the same time positions
 * in every rendition of the track.  Every segment is decodable on its own: it carries a
 * pre-roll packet (decoded after vorbis_synthesis_restart and discarded) and enough packets
 * either side of its owned range for a resampler to run.  Byte layout: docs/SEGMENTS.md.
 * Parsers see untrusted network input: every length is checked against the buffer. */
#ifndef ENCORE_SEGMENT_H
#define ENCORE_SEGMENT_H
#include <stddef.h>
#include <stdint.h>

/* 4 s: short enough that a start or a seek costs one small fetch (12 KB at the low rung)
 * and ABR reacts within seconds; long enough that the per-segment costs (HTTP request,
 * 32-byte header, one duplicated pre-roll packet, manifest hash) stay near 1%.  An integer
 * number of seconds makes boundaries exact sample positions at every rate we use. */
#define SEGMENT_SECONDS 4
/* Rendition samples each side of a segment's owned range that its packets must also
 * decode, so a client can resample across the boundary without the neighbour segment.
 * Covers resample_ kernels for up-sampling and 48000<->44100 (<= 24 taps per side). */
#define SEGMENT_MARGIN 64
#define SEGMENT_MAX_PACKETS 4096
#define SEGMENT_HEADER_BYTES 32
#define SEGMENT_INIT_FIXED_BYTES 52
#define SEGMENT_HASH_BYTES 32

struct segment_init {
	int channels;            /* 1 or 2 */
	int rate;                /* rendition sample rate */
	int bitrate;             /* nominal bits per second */
	int source_rate;         /* rate of the ingested source; clients output on its time grid */
	int segment_seconds;     /* SEGMENT_SECONDS when written by this version */
	uint32_t segment_count;
	uint64_t total_samples;  /* rendition samples, = ceil(source_frames * rate / source_rate) */
	uint64_t source_frames;
	/* The three Vorbis header packets (identification, comment, setup). On parse these
	 * point into the caller's buffer; on write they are read only. */
	const uint8_t *header[3];
	size_t header_len[3];
};

struct segment_packet {
	const uint8_t *data;     /* points into the parsed buffer (or caller memory on write) */
	size_t len;              /* 1..65535 */
	uint64_t granule;        /* absolute rendition sample position where this packet's output ends */
};

struct segment {
	uint32_t index;          /* k: owns samples [k * SEGMENT_SECONDS * rate, +count) */
	uint64_t start;          /* first owned rendition sample */
	uint32_t count;          /* owned samples (SEGMENT_SECONDS * rate except the last segment) */
	uint32_t npackets;       /* >= 2; packet 0 is the pre-roll, its output is discarded */
	struct segment_packet *packets; /* owned by the struct (parse) or the caller (write) */
};

/* Number of segments for a rendition of total_samples at rate. */
uint32_t segment_count_for(uint64_t total_samples, int rate);
/* Owned range of segment index at rate, clipped to total_samples. Returns 0, or -ERANGE if
 * the index is past the end. */
int segment_range(uint32_t index, int rate, uint64_t total_samples, uint64_t *start, uint32_t *count);

/* Serialises init into a fresh buffer (*out, *outlen; caller frees). Returns 0 or -EINVAL
 * if a field is out of range. */
int segment_init_write(const struct segment_init *init, uint8_t **out, size_t *outlen);
/* Parses and validates an init part. Header pointers alias buf, which must outlive init.
 * Returns 0 or -EBADMSG (malformed) / -EPROTONOSUPPORT (unknown version). */
int segment_init_parse(const uint8_t *buf, size_t len, struct segment_init *init);

/* Serialises seg into a fresh buffer (caller frees). Returns 0 or -EINVAL if the packets
 * break a rule the parser enforces (so a writer can never produce what a reader refuses). */
int segment_write(const struct segment *seg, uint8_t **out, size_t *outlen);
/* Parses and validates a segment. seg->packets is allocated (free with segment_clear);
 * packet data aliases buf. Returns 0 or -EBADMSG / -EPROTONOSUPPORT. */
int segment_parse(const uint8_t *buf, size_t len, struct segment *seg);
/* Frees what segment_parse allocated; safe on a zeroed struct. */
void segment_clear(struct segment *seg);

/* BLAKE2b-256 of a part, as carried in the manifest. */
void segment_hash(const uint8_t *buf, size_t len, uint8_t out[SEGMENT_HASH_BYTES]);
/* Same, as 64 lowercase hex digits + NUL into hex. */
void segment_hash_hex(const uint8_t *buf, size_t len, char hex[2 * SEGMENT_HASH_BYTES + 1]);

#endif
