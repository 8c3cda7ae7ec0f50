/* ttlcache: a chained hash table plus a FIFO of insertion order; since every entry has
 * the same TTL, the oldest insertion is also the first to expire, so FIFO eviction is
 * exactly expiry order. O(1) get and put. */
#include "ttlcache.h"
#include "xmem.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	struct entry *hnext;           /* hash chain */
	struct entry *older, *newer;   /* FIFO */
	int64_t expires_ms;
	char *key, *value;
};

struct ttlcache {
	pthread_mutex_t lock;
	int64_t ttl_ms;
	size_t max_entries, count, nslots;
	struct entry **slots;
	struct entry *oldest, *newest;
	uint64_t hits, misses;
};

static unsigned hash(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

struct ttlcache *ttlcache_new(int64_t ttl_ms, size_t max_entries)
{
	struct ttlcache *c = xcalloc(1, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	c->ttl_ms = ttl_ms;
	c->max_entries = max_entries ? max_entries : 1;
	c->nslots = 1;
	while (c->nslots < c->max_entries)
		c->nslots *= 2;
	c->slots = xcalloc(c->nslots, sizeof(*c->slots));
	return c;
}

static void unlink_entry(struct ttlcache *c, struct entry *e)
{
	struct entry **pp = &c->slots[hash(e->key) & (c->nslots - 1)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	if (e->older) e->older->newer = e->newer;
	if (e->newer) e->newer->older = e->older;
	if (c->oldest == e) c->oldest = e->newer;
	if (c->newest == e) c->newest = e->older;
	free(e->key);
	free(e->value);
	free(e);
	c->count--;
}

void ttlcache_clear(struct ttlcache *c)
{
	pthread_mutex_lock(&c->lock);
	while (c->oldest)
		unlink_entry(c, c->oldest);
	pthread_mutex_unlock(&c->lock);
}

void ttlcache_free(struct ttlcache *c)
{
	if (!c)
		return;
	ttlcache_clear(c);
	free(c->slots);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

char *ttlcache_get(struct ttlcache *c, const char *key, int64_t now_ms)
{
	char *v = NULL;
	pthread_mutex_lock(&c->lock);
	for (struct entry *e = c->slots[hash(key) & (c->nslots - 1)]; e; e = e->hnext) {
		if (strcmp(e->key, key) == 0) {
			if (e->expires_ms > now_ms)
				v = xstrdup(e->value);
			else
				unlink_entry(c, e);
			break;
		}
	}
	if (v) c->hits++; else c->misses++;
	pthread_mutex_unlock(&c->lock);
	return v;
}

void ttlcache_put(struct ttlcache *c, const char *key, const char *value, int64_t now_ms)
{
	pthread_mutex_lock(&c->lock);
	for (struct entry *e = c->slots[hash(key) & (c->nslots - 1)]; e; e = e->hnext) {
		if (strcmp(e->key, key) == 0) {
			unlink_entry(c, e);
			break;
		}
	}
	while (c->oldest && (c->count >= c->max_entries || c->oldest->expires_ms <= now_ms))
		unlink_entry(c, c->oldest);
	struct entry *e = xcalloc(1, sizeof(*e));
	e->key = xstrdup(key);
	e->value = xstrdup(value);
	e->expires_ms = now_ms + c->ttl_ms;
	unsigned slot = hash(key) & (c->nslots - 1);
	e->hnext = c->slots[slot];
	c->slots[slot] = e;
	e->older = c->newest;
	if (c->newest)
		c->newest->newer = e;
	c->newest = e;
	if (!c->oldest)
		c->oldest = e;
	c->count++;
	pthread_mutex_unlock(&c->lock);
}

struct ttlcache_stats ttlcache_stats(struct ttlcache *c)
{
	pthread_mutex_lock(&c->lock);
	struct ttlcache_stats s = {c->hits, c->misses, c->count};
	pthread_mutex_unlock(&c->lock);
	return s;
}
