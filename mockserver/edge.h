/* edge: the in-memory edge cache in front of the on-disk origin store. An LRU of
 * immutable objects bounded in bytes; entries are reference-counted so a response can
 * send straight from the cache while the entry is evicted underneath it. Thread-safe. */
#ifndef ENCORE_EDGE_H
#define ENCORE_EDGE_H
#include <stddef.h>
#include <stdint.h>

struct edge;

struct edge_obj {
	size_t len;
	char etag[72];      /* strong ETag, quoted */
	uint8_t *data;      /* read-only */
	/* An in-memory file (memfd) holding the same bytes, which data maps, so a response can
	 * sendfile() them to a socket without copying them; -1 when the object lives in plain
	 * memory (small objects, or the descriptor budget is spent). */
	int fd;
	/* private */
	int refs;
};

struct edge_stats {
	uint64_t hits, misses, insertions, evictions, refused;
	uint64_t bytes, entries, capacity;
};

/* Objects from this size up are held in a memfd (edge_obj.fd) and sent with sendfile();
 * below a page, a copy costs less than the page lookups. (16 KB left a 24 kbps segment,
 * about 15 KB, copied on every request.) */
#define EDGE_FD_MIN_BYTES 4096

/* capacity: the most bytes of object data held at once (0 disables the cache); max_fds: the
 * most cached objects held in a memfd (a share of the process's descriptor limit). */
struct edge *edge_new(size_t capacity, size_t max_fds);
void edge_free(struct edge *e);
/* The object for key with a reference the caller must drop with edge_release, or NULL (a miss). */
struct edge_obj *edge_get(struct edge *e, const char *key);
/* Stores a copy of data under key (replacing), evicting least recently used entries to fit.
 * Objects larger than a quarter of the capacity are refused, so one object cannot flush the cache. */
void edge_put(struct edge *e, const char *key, const void *data, size_t len, const char *etag);
/* Drops a reference from edge_get. Takes void * so it can serve as http_resp.ext_release. */
void edge_release(void *obj);
/* Counts a start (init fetch) of an item and returns how many the window has seen;
 * used to admit long, usually-once-streamed items (podcast episodes) only when popular. */
unsigned edge_note_start(struct edge *e, const char *content_id);
/* The starts counted for content_id in the current window (0 if none). */
unsigned edge_start_count(struct edge *e, const char *content_id);
struct edge_stats edge_stats(struct edge *e);

#endif
