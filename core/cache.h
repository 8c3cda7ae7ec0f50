/* cache: the client's local SQLite cache: a key-value store with expiry for metadata and
 * playback manifests, so repeated plays start without asking the server. */
#ifndef ENCORE_CACHE_H
#define ENCORE_CACHE_H
#include <stddef.h>
#include <stdint.h>

struct cache;

/* Opens (creating) the cache database at path. NULL with err on failure. */
struct cache *cache_open(const char *path, char *err, size_t errlen);
/* The same, for a connection that stores only rows it can fetch again (the playback
 * engine's metadata and manifests): it never waits for the disk (synchronous=OFF; a
 * power loss may drop its latest writes, never corrupt the file) and keeps a small page
 * cache. Do not use it for the request outbox. */
struct cache *cache_open_volatile(const char *path, char *err, size_t errlen);
void cache_close(struct cache *c);
/* Stores value under key until expires_at (unix seconds). 0 or -EIO. */
int cache_put(struct cache *c, const char *key, const char *value, int64_t expires_at);
/* The live value for key at time now (caller frees), or NULL. */
char *cache_get(struct cache *c, const char *key, int64_t now);

/* The outbox: requests made while the server was unreachable, replayed in order later.
 * Unlike the key-value rows, they never expire. */
struct cache_outbox_entry {
	int64_t id;
	char *method, *path, *body;   /* owned; body may be NULL */
};
/* Queues a request. 0 or -EIO. */
int cache_outbox_add(struct cache *c, const char *method, const char *path, const char *body);
/* Up to max of the oldest queued requests into out; returns how many (0 on error). Free
 * each with cache_outbox_entry_free. */
size_t cache_outbox_list(struct cache *c, struct cache_outbox_entry *out, size_t max);
/* Drops a queued request once it has been answered. 0 or -EIO. */
int cache_outbox_remove(struct cache *c, int64_t id);
void cache_outbox_entry_free(struct cache_outbox_entry *e);

#endif
