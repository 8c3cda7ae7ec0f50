/* offline: the client's store of downloaded tracks, encrypted at rest.
 *
 * A device owns an X25519 key pair (a 0600 file in the data dir). encored issues one
 * licence per (user, device, track): a random 32-byte key sealed to the device's public
 * key. Each downloaded file (the init part and every segment of one rendition) is one
 * libsodium secretstream message (XChaCha20-Poly1305) under a content key derived from
 * the licence key AND the device's secret key, with the track id and segment index as
 * associated data, so a file copied to another device, moved to another slot, truncated
 * or altered fails authentication. Decrypted audio only ever exists in memory.
 *
 * Layout of the store directory: offline.db (SQLite: licences, manifests, per-segment
 * checkpoints, settings) and TRACKID/init.enc, TRACKID/NNNNNN.enc. */
#ifndef ENCORE_OFFLINE_H
#define ENCORE_OFFLINE_H
#include "id.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct api;
struct manifest;
struct offline;
struct offline_track;

/* Opens (creating if needed) the store in dir and the device key pair in key_path.
 * Returns NULL with a one-line reason in err. Free with offline_free. */
struct offline *offline_open(const char *dir, const char *key_path, char *err, size_t errlen);
void offline_free(struct offline *o);
/* This device's id (borrowed, valid until offline_free). */
const char *offline_device_id(const struct offline *o);

/* Registers this device with encored (idempotent). 0, or -EACCES (not premium, device
 * limit; err says which), -EIO (network or server) with err. */
int offline_register(struct offline *o, struct api *api, char *err, size_t errlen);
/* Obtains licences for n track ids (one request per 500) and stores them.
 * 0 or -EACCES/-ENOENT/-EIO with err naming the limit or the track. */
int offline_license(struct offline *o, struct api *api, const char (*ids)[ID_LEN + 1], size_t n, char *err, size_t errlen);
#define OFFLINE_URI_MAX 48
/* The same for URIs of tracks and podcast episodes (encore:track:ID, encore:episode:ID). */
int offline_license_uris(struct offline *o, struct api *api, const char (*uris)[OFFLINE_URI_MAX], size_t n, char *err, size_t errlen);

struct offline_progress {
	const char *track_id;
	uint32_t done, total;         /* files (init + segments) stored so far, of total */
	uint32_t resumed;             /* files already on disk and verified at the start */
	uint32_t refetched;           /* files found corrupt or truncated and fetched again */
	uint64_t bytes;               /* ciphertext bytes of this track on disk */
	int bitrate;
	bool finished;
	bool episode;                 /* a podcast episode (URI encore:episode:ID) */
};
typedef void (*offline_progress_fn)(void *ctx, const struct offline_progress *p);

/* Downloads one licensed track or episode: the manifest (quality 0 = the best rendition the account
 * may use, else the best at or below it), then each missing file, verified against the
 * manifest hash, encrypted, and checkpointed before the next, so an interrupted download
 * resumes. Files already present are re-authenticated; bad ones are fetched again.
 * progress (may be NULL) is called after every file. 0, or -EKEYREJECTED (no licence),
 * -EDQUOT (quota), -ENOSPC (disk nearly full; checked before writing), -EIO with err.
 * Refused for space, a track with nothing stored yet is removed from the store entirely. */
int offline_download(struct offline *o, struct api *api, const char *track_id, int quality,
		     offline_progress_fn progress, void *ctx, char *err, size_t errlen);

/* Removes a track's files and licence. 0 or -ENOENT. */
int offline_remove(struct offline *o, const char *track_id);

struct offline_sync_result {
	int renewed, revoked;
	bool premium, device_active;
};
/* Phones home: renews the licences encored still grants, deletes every local track it
 * did not (revoked: account no longer premium, device removed, licence withdrawn).
 * 0 or -EIO with err (nothing changes locally when the server cannot be reached). */
int offline_sync(struct offline *o, struct api *api, struct offline_sync_result *out, char *err, size_t errlen);

struct offline_entry {
	char track_id[ID_LEN + 1];
	char name[128];
	int bitrate;
	bool complete;
	uint32_t files_done, files_total;
	uint64_t bytes;
	int64_t expires_at;
	bool episode;
};
/* Calls fn for each track in the store, by name. Returns how many, or -EIO. */
int offline_list(struct offline *o, void (*fn)(void *ctx, const struct offline_entry *e), void *ctx);
/* Total ciphertext bytes and tracks stored; quota 0 = none. 0 or -EIO. */
int offline_usage(struct offline *o, uint64_t *bytes, int *tracks, uint64_t *quota);
/* Sets the stored storage quota in bytes (0 removes it). 0 or -EIO. */
int offline_set_quota(struct offline *o, uint64_t bytes);
/* For this handle only (the config file's settings): quota >= 0 overrides the stored quota
 * (0 = none), -1 keeps it; min_free is the disk space (bytes) a download must leave free,
 * -1 = the default 64 MB. A download that would cross either is refused before writing. */
void offline_set_space_policy(struct offline *o, int64_t quota, int64_t min_free);
/* Free bytes on the store's filesystem now (statvfs), the free space to keep and the quota
 * in force (0 = none). 0, or -errno when statvfs fails (the other two are still set). */
int offline_disk(struct offline *o, uint64_t *free_bytes, uint64_t *min_free, uint64_t *quota);

/* Playback side. Opens a complete download for playing at time now: checks the licence,
 * opens its key, returns the stored manifest (caller frees with manifest_free; it lists
 * only the downloaded rendition). 0, or -ENOENT (not downloaded / incomplete),
 * -EKEYEXPIRED (licence expired: sync needed), -EKEYREJECTED (the licence was not
 * issued to this device), with a one-line reason in err. Free *t with offline_track_free. */
int offline_track_open(struct offline *o, const char *track_id, int64_t now, struct offline_track **t,
		       struct manifest **m, char *err, size_t errlen);
/* Decrypts file index (-1 = the init part) into a new buffer (caller frees), checking the
 * manifest hash too. 0, or -EBADMSG (tampered, truncated, or another device's), -ENOENT. */
int offline_track_read(struct offline_track *t, int index, uint8_t **data, size_t *len);
void offline_track_free(struct offline_track *t);
/* The stored track metadata JSON (GET /v1/tracks/ID), or NULL. Caller frees. */
char *offline_meta(struct offline *o, const char *track_id);

/* Pure: the content key of a track from its licence key and the device secret key. */
void offline_content_key(const uint8_t licence_key[32], const uint8_t device_sk[32], const char *track_id, uint8_t out[32]);
/* Pure: seals plain into one secretstream message bound to (track_id, index). Returns
 * the new buffer (header + ciphertext; caller frees), length in *outlen. */
uint8_t *offline_seal(const uint8_t key[32], const char *track_id, int index, const uint8_t *plain, size_t len, size_t *outlen);
/* Pure: the inverse. 0 with a new buffer, or -EBADMSG. */
int offline_unseal(const uint8_t key[32], const char *track_id, int index, const uint8_t *box, size_t boxlen,
		   uint8_t **plain, size_t *len);

#endif
