/* filecache: hash table + doubly linked LRU list under one mutex, like the edge cache,
 * but bounded in descriptors rather than bytes (the bytes stay in the page cache). */
#include "filecache.h"
#include "xmem.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define FILECACHE_SLOTS 4096

/* cachestat(2) is newer than Debian 12's headers; its number is the same everywhere. */
#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif

struct cachestat_range_ {
	uint64_t off, len;
};

struct cachestat_ {
	uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

struct entry {
	struct entry *hnext, *prev, *next;
	char *key;
	struct filecache_file *file;
};

struct filecache {
	pthread_mutex_t lock;
	size_t max_files, entries;
	struct entry *slots[FILECACHE_SLOTS];
	struct entry *head, *tail;  /* head = most recent */
};

static unsigned hash(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

struct filecache *filecache_new(size_t max_files)
{
	struct filecache *c = xcalloc(1, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	c->max_files = max_files;
	return c;
}

static void file_unref(struct filecache_file *f)
{
	if (__atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		close(f->fd);
		free(f);
	}
}

static void unlink_lru(struct filecache *c, struct entry *en)
{
	if (en->prev) en->prev->next = en->next; else c->head = en->next;
	if (en->next) en->next->prev = en->prev; else c->tail = en->prev;
	en->prev = en->next = NULL;
}

static void push_front(struct filecache *c, struct entry *en)
{
	en->next = c->head;
	en->prev = NULL;
	if (c->head)
		c->head->prev = en;
	c->head = en;
	if (!c->tail)
		c->tail = en;
}

static void remove_entry(struct filecache *c, struct entry *en)
{
	struct entry **pp = &c->slots[hash(en->key) % FILECACHE_SLOTS];
	while (*pp != en)
		pp = &(*pp)->hnext;
	*pp = en->hnext;
	unlink_lru(c, en);
	c->entries--;
	file_unref(en->file);
	free(en->key);
	free(en);
}

void filecache_free(struct filecache *c)
{
	if (!c)
		return;
	while (c->head)
		remove_entry(c, c->head);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

struct filecache_file *filecache_get(struct filecache *c, const char *key)
{
	struct filecache_file *f = NULL;
	pthread_mutex_lock(&c->lock);
	for (struct entry *en = c->slots[hash(key) % FILECACHE_SLOTS]; en; en = en->hnext) {
		if (strcmp(en->key, key) == 0) {
			unlink_lru(c, en);
			push_front(c, en);
			f = en->file;
			__atomic_add_fetch(&f->refs, 1, __ATOMIC_ACQ_REL);
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return f;
}

int filecache_put(struct filecache *c, const char *key, const char *path, const char *etag)
{
	if (c->max_files == 0)
		return -ENOSPC;
	/* Opened before taking the lock: open() may wait on the disk. */
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int rc = fstat(fd, &st) != 0 ? -errno : S_ISREG(st.st_mode) ? 0 : -EINVAL;
	if (rc != 0) {
		close(fd);
		return rc;
	}
	struct filecache_file *f = xcalloc(1, sizeof(*f));
	f->fd = fd;
	f->len = (size_t)st.st_size;
	snprintf(f->etag, sizeof(f->etag), "%s", etag ? etag : "");
	f->refs = 1;
	pthread_mutex_lock(&c->lock);
	for (struct entry *en = c->slots[hash(key) % FILECACHE_SLOTS]; en; en = en->hnext)
		if (strcmp(en->key, key) == 0) {
			remove_entry(c, en);
			break;
		}
	while (c->tail && c->entries >= c->max_files)
		remove_entry(c, c->tail);
	struct entry *en = xcalloc(1, sizeof(*en));
	en->key = xstrdup(key);
	en->file = f;
	unsigned slot = hash(key) % FILECACHE_SLOTS;
	en->hnext = c->slots[slot];
	c->slots[slot] = en;
	push_front(c, en);
	c->entries++;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

void filecache_release(void *file)
{
	if (file)
		file_unref(file);
}

bool filecache_resident(struct filecache_file *f)
{
	if (f->len == 0)
		return true;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	int64_t now = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	if (now < __atomic_load_n(&f->resident_until_us, __ATOMIC_RELAXED))
		return true;
	struct cachestat_range_ r = {0, f->len};
	struct cachestat_ cs;
	if (syscall(__NR_cachestat, f->fd, &r, &cs, 0) != 0)
		return false;  /* ENOSYS on kernels before 6.5: let a worker read it */
	uint64_t page = (uint64_t)getpagesize(), pages = ((uint64_t)f->len + page - 1) / page;
	bool all = cs.nr_cache >= pages;
	if (all)
		__atomic_store_n(&f->resident_until_us, now + FILECACHE_RESIDENT_RECHECK_US, __ATOMIC_RELAXED);
	return all;
}
