/* cache: the client's local SQLite cache: a key-value store with expiry for metadata and
 * playback manifests, so repeated plays start without asking the server. */
#ifndef ENCORE_CACHE_H
#define ENCORE_CACHE_H
#include <stddef.h>
#include <stdint.h>

struct cache;

/* Opens (creating) the cache database at path. NULL with err on failure. */
struct cache *cache_open(const char *path, char *err, size_t errlen);
void cache_close(struct cache *c);
/* Stores value under key until expires_at (unix seconds). 0 or -EIO. */
int cache_put(struct cache *c, const char *key, const char *value, int64_t expires_at);
/* The live value for key at time now (caller frees), or NULL. */
char *cache_get(struct cache *c, const char *key, int64_t now);

#endif
