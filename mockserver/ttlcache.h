/* ttlcache: a bounded, thread-safe string-to-string cache whose entries expire.
 * Used for rendered metadata so hot catalog objects skip SQLite. */
#ifndef ENCORE_TTLCACHE_H
#define ENCORE_TTLCACHE_H
#include <stdint.h>
#include <stddef.h>

struct ttlcache;

struct ttlcache_stats {
	uint64_t hits, misses, entries;
};

/* ttl_ms: lifetime of an entry; max_entries: beyond it the oldest entries are evicted. */
struct ttlcache *ttlcache_new(int64_t ttl_ms, size_t max_entries);
void ttlcache_free(struct ttlcache *c);
/* A copy of the live value for key (caller frees), or NULL on a miss. */
char *ttlcache_get(struct ttlcache *c, const char *key, int64_t now_ms);
/* Stores a copy of value under key. */
void ttlcache_put(struct ttlcache *c, const char *key, const char *value, int64_t now_ms);
/* Drops every entry (for writes that touch many objects). */
void ttlcache_clear(struct ttlcache *c);
struct ttlcache_stats ttlcache_stats(struct ttlcache *c);

#endif
