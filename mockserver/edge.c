/* edge: hash table + doubly linked LRU list under one mutex. Lookups move the entry to
 * the front; insertions evict from the back until the new object fits. */
#include "edge.h"
#include "xmem.h"
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define EDGE_SLOTS 8192
#define EDGE_START_SLOTS 1024
/* Starts are counted over a sliding window of this length (reset when it elapses). */
#define EDGE_START_WINDOW_S 600

struct entry {
	struct entry *hnext, *prev, *next;
	char *key;
	struct edge_obj *obj;
};

struct start_count {
	char id[24];
	unsigned count;
};

struct edge {
	pthread_mutex_t lock;
	size_t capacity, bytes, entries;
	size_t fds;                 /* cached entries holding a memfd; atomic */
	size_t max_fds;
	struct entry *slots[EDGE_SLOTS];
	struct entry *head, *tail;  /* head = most recent */
	uint64_t hits, misses, insertions, evictions, refused;
	struct start_count starts[EDGE_START_SLOTS];
	time_t window_start;
};

static unsigned hash(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

struct edge *edge_new(size_t capacity, size_t max_fds)
{
	struct edge *e = xcalloc(1, sizeof(*e));
	pthread_mutex_init(&e->lock, NULL);
	e->capacity = capacity;
	e->max_fds = max_fds;
	e->window_start = time(NULL);
	return e;
}

/* Reference counts are atomic: responses drop theirs without the cache's lock. */
static void obj_unref(struct edge_obj *o)
{
	if (__atomic_sub_fetch(&o->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		if (o->fd >= 0) {
			munmap(o->data, o->len);
			close(o->fd);
		} else {
			free(o->data);
		}
		free(o);
	}
}

static void unlink_lru(struct edge *e, struct entry *en)
{
	if (en->prev) en->prev->next = en->next; else e->head = en->next;
	if (en->next) en->next->prev = en->prev; else e->tail = en->prev;
	en->prev = en->next = NULL;
}

static void push_front(struct edge *e, struct entry *en)
{
	en->next = e->head;
	en->prev = NULL;
	if (e->head)
		e->head->prev = en;
	e->head = en;
	if (!e->tail)
		e->tail = en;
}

static void remove_entry(struct edge *e, struct entry *en)
{
	struct entry **pp = &e->slots[hash(en->key) % EDGE_SLOTS];
	while (*pp != en)
		pp = &(*pp)->hnext;
	*pp = en->hnext;
	unlink_lru(e, en);
	e->bytes -= en->obj->len;
	e->entries--;
	if (en->obj->fd >= 0)
		__atomic_sub_fetch(&e->fds, 1, __ATOMIC_RELAXED);  /* closed with the last response holding it */
	obj_unref(en->obj);
	free(en->key);
	free(en);
}

void edge_free(struct edge *e)
{
	if (!e)
		return;
	while (e->head)
		remove_entry(e, e->head);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

struct edge_obj *edge_get(struct edge *e, const char *key)
{
	struct edge_obj *o = NULL;
	pthread_mutex_lock(&e->lock);
	for (struct entry *en = e->slots[hash(key) % EDGE_SLOTS]; en; en = en->hnext) {
		if (strcmp(en->key, key) == 0) {
			unlink_lru(e, en);
			push_front(e, en);
			o = en->obj;
			__atomic_add_fetch(&o->refs, 1, __ATOMIC_ACQ_REL);
			break;
		}
	}
	if (o) e->hits++; else e->misses++;
	pthread_mutex_unlock(&e->lock);
	return o;
}

/* Puts the bytes in a memfd mapped read-only at o->data. 0 or -errno (then the caller
 * keeps them in plain memory). Nothing writes to the memfd afterwards (only this module
 * has it), so a response may send its pages even after the entry is evicted. */
static int memfd_hold(struct edge_obj *o, const void *data, size_t len)
{
	int fd = memfd_create("encored-edge", MFD_CLOEXEC), rc = 0;
	if (fd < 0)
		return -errno;
	for (size_t off = 0; off < len;) {
		ssize_t w = write(fd, (const uint8_t *)data + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = w < 0 ? -errno : -EIO;
			goto fail;
		}
		off += (size_t)w;
	}
	void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		rc = -errno;
		goto fail;
	}
	o->data = p;
	o->fd = fd;
	return 0;
fail:
	close(fd);
	return rc;
}

void edge_put(struct edge *e, const char *key, const void *data, size_t len, const char *etag)
{
	if (len > e->capacity / 4) {
		pthread_mutex_lock(&e->lock);
		e->refused++;
		pthread_mutex_unlock(&e->lock);
		return;
	}
	/* Built before taking the lock: filling a memfd costs system calls, and the I/O
	 * threads' lookups wait on this lock. */
	struct edge_obj *o = xcalloc(1, sizeof(*o));
	o->len = len;
	o->fd = -1;
	bool in_fd = false;
	if (len >= EDGE_FD_MIN_BYTES) {
		if (__atomic_add_fetch(&e->fds, 1, __ATOMIC_RELAXED) <= e->max_fds && memfd_hold(o, data, len) == 0)
			in_fd = true;
		else
			__atomic_sub_fetch(&e->fds, 1, __ATOMIC_RELAXED);
	}
	if (!in_fd) {
		o->data = xmalloc(len ? len : 1);
		memcpy(o->data, data, len);
	}
	snprintf(o->etag, sizeof(o->etag), "%s", etag ? etag : "");
	o->refs = 1;
	pthread_mutex_lock(&e->lock);
	for (struct entry *en = e->slots[hash(key) % EDGE_SLOTS]; en; en = en->hnext)
		if (strcmp(en->key, key) == 0) {
			remove_entry(e, en);
			break;
		}
	while (e->tail && e->bytes + len > e->capacity) {
		remove_entry(e, e->tail);
		e->evictions++;
	}
	struct entry *en = xcalloc(1, sizeof(*en));
	en->key = xstrdup(key);
	en->obj = o;
	unsigned slot = hash(key) % EDGE_SLOTS;
	en->hnext = e->slots[slot];
	e->slots[slot] = en;
	push_front(e, en);
	e->bytes += len;
	e->entries++;
	e->insertions++;
	pthread_mutex_unlock(&e->lock);
}

void edge_release(void *obj)
{
	if (obj)
		obj_unref(obj);
}

unsigned edge_note_start(struct edge *e, const char *content_id)
{
	pthread_mutex_lock(&e->lock);
	time_t now = time(NULL);
	if (now - e->window_start >= EDGE_START_WINDOW_S) {
		memset(e->starts, 0, sizeof(e->starts));
		e->window_start = now;
	}
	struct start_count *sc = &e->starts[hash(content_id) % EDGE_START_SLOTS];
	if (strcmp(sc->id, content_id) != 0) {
		/* A collision replaces the older item: popularity is an estimate. */
		snprintf(sc->id, sizeof(sc->id), "%s", content_id);
		sc->count = 0;
	}
	unsigned n = ++sc->count;
	pthread_mutex_unlock(&e->lock);
	return n;
}

unsigned edge_start_count(struct edge *e, const char *content_id)
{
	pthread_mutex_lock(&e->lock);
	struct start_count *sc = &e->starts[hash(content_id) % EDGE_START_SLOTS];
	unsigned n = strcmp(sc->id, content_id) == 0 ? sc->count : 0;
	pthread_mutex_unlock(&e->lock);
	return n;
}

struct edge_stats edge_stats(struct edge *e)
{
	pthread_mutex_lock(&e->lock);
	struct edge_stats s = {e->hits, e->misses, e->insertions, e->evictions, e->refused, e->bytes, e->entries, e->capacity};
	pthread_mutex_unlock(&e->lock);
	return s;
}
