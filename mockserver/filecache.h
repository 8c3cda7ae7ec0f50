/* filecache: open descriptors of the origin store's object files, by CDN target (content,
 * bitrate, segment), with their size and ETag, so a signed /origin request whose object is
 * in the page cache can be answered on an I/O thread with sendfile(), without a database
 * lookup or a worker. An LRU bounded in open files; entries are reference-counted so a
 * response keeps its descriptor open while the entry is evicted. Thread-safe. */
#ifndef ENCORE_FILECACHE_H
#define ENCORE_FILECACHE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How long a file found wholly in the page cache is taken to stay there before cachestat
 * is asked again: a file served this often is at the hot end of the page cache's LRU, and
 * asking on every request was a syscall per request. */
#define FILECACHE_RESIDENT_RECHECK_US 50000

struct filecache;

struct filecache_file {
	int fd;             /* read-only */
	size_t len;
	char etag[72];      /* strong ETag, quoted */
	/* private */
	int refs;
	int64_t resident_until_us;   /* a cachestat answer of "all resident" holds until then; atomic */
};

/* max_files: the most descriptors held by cached entries (0 disables the cache). */
struct filecache *filecache_new(size_t max_files);
void filecache_free(struct filecache *c);
/* The file cached under key with a reference the caller drops with filecache_release, or NULL. */
struct filecache_file *filecache_get(struct filecache *c, const char *key);
/* Opens path and caches it under key (replacing), evicting the least recently used entry
 * beyond max_files. Objects are immutable (content-addressed), so size and ETag stay true
 * for the descriptor's life. 0 or -errno (nothing cached). */
int filecache_put(struct filecache *c, const char *key, const char *path, const char *etag);
/* Drops a reference from filecache_get. Takes void * so it can serve as http_resp.ext_release. */
void filecache_release(void *file);
/* True when every page of the file is in the page cache, so sending it cannot wait on the
 * disk (cachestat(2), Linux 6.5; a "yes" is reused for FILECACHE_RESIDENT_RECHECK_US);
 * false when some are not, or the kernel cannot tell. */
bool filecache_resident(struct filecache_file *f);

#endif
