/* downloader: the TUI's background downloads. One thread owns its own handle on the
 * offline store (core/offline.h; a separate SQLite connection and CDN handle, so it never
 * shares one with the engine's) and works through a queue of track, album and playlist
 * URIs: it expands collections through the API, licenses the tracks, downloads them file
 * by file, and after every file publishes a copy of the store's listing (entries with
 * progress, usage, licence expiry). The UI thread only queues URIs and copies that state
 * under a mutex when downloader_fd polls readable: it never touches the network or disk.
 *
 * Quitting waits for the file in flight (offline_download cannot be interrupted between
 * its own steps), not for the rest of the queue. */
#ifndef ENCORE_DOWNLOADER_H
#define ENCORE_DOWNLOADER_H
#include <stdbool.h>
#include <stdint.h>

struct api;

struct dl_entry {
	char uri[64];               /* encore:track:ID */
	char name[128];             /* "" until the track's metadata is stored */
	int bitrate;
	bool complete;
	uint32_t done, total;       /* files stored, of total (0 before the manifest) */
	uint64_t bytes;
	int64_t expires_at;         /* licence expiry, unix seconds */
};

struct dl_state {
	struct dl_entry *v;         /* owned; by name */
	int n;
	uint64_t bytes, quota;      /* usage; quota 0 = none */
	int queued;                 /* URIs waiting, not counting the one in progress */
	char active[160];           /* what is being downloaded now, "" when idle */
	char error[320];            /* the last failure, "" if none */
	char done_msg[160];         /* the last finished request ("Downloaded Album X"), or "" */
	uint64_t finished;          /* requests finished so far (ok or not) */
	bool loaded;                /* the store has been read at least once */
};

struct downloader;

/* Starts the thread on api (borrowed; must outlive the downloader) with the store in dir
 * and the device key at key_path (both copied; nothing is created until the first
 * download). NULL if the thread cannot start. */
struct downloader *downloader_new(struct api *api, const char *dir, const char *key_path);
/* Finishes the file in flight, drops the rest of the queue, joins the thread. NULL is a no-op. */
void downloader_free(struct downloader *d);
/* An eventfd that polls readable when the state changed; clear it with downloader_ack. */
int downloader_fd(struct downloader *d);
void downloader_ack(struct downloader *d);
/* Queues a track, album or playlist URI; label (copied, may be NULL) names it in messages.
 * 0, or -EINVAL for another kind of URI. */
int downloader_add(struct downloader *d, const char *uri, const char *label);
/* Queues the removal of a downloaded track's files and licence (in turn with the
 * downloads). 0, or -EINVAL for a URI that is not a track's. */
int downloader_remove(struct downloader *d, const char *uri, const char *label);
/* Asks the thread to re-read the store (the Downloads view opening). */
void downloader_refresh(struct downloader *d);
/* Copies the current state into out (free with dl_state_free). */
void downloader_state(struct downloader *d, struct dl_state *out);
void dl_state_free(struct dl_state *s);

#endif
