/* filecache: the origin's open object files by CDN target. */
#include "filecache.h"
#include "tap.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static char dir[256];

/* Writes n bytes of c to dir/name; returns path, where the name was written. */
static const char *make_file(const char *name, size_t n, char c, char *path, size_t cap)
{
	snprintf(path, cap, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	for (size_t i = 0; i < n; i++)
		fputc(c, f);
	fclose(f);
	return path;
}

static void test_put_then_get_gives_size_etag_and_a_readable_descriptor(void)
{
	char p[512];
	struct filecache *c = filecache_new(4);
	CHECK_INT(filecache_put(c, "a/96/0", make_file("a", 5000, 'x', p, sizeof(p)), "\"h1\""), 0);
	struct filecache_file *f = filecache_get(c, "a/96/0");
	CHECK(f != NULL, "expected a cached file");
	if (f) {
		CHECK_INT(f->len, 5000);
		CHECK_STR(f->etag, "\"h1\"");
		char b[4] = {0};
		CHECK_INT(pread(f->fd, b, 3, 4997), 3);
		CHECK_STR(b, "xxx");
		filecache_release(f);
	}
	CHECK(filecache_get(c, "a/96/1") == NULL, "expected a miss for another key");
	filecache_free(c);
}

static void test_lru_bound_evicts_the_least_recent_but_a_held_file_stays_readable(void)
{
	char p[512];
	struct filecache *c = filecache_new(2);
	filecache_put(c, "k1", make_file("f1", 10, '1', p, sizeof(p)), "\"1\"");
	filecache_put(c, "k2", make_file("f2", 10, '2', p, sizeof(p)), "\"2\"");
	struct filecache_file *held = filecache_get(c, "k1");  /* k1 is now the most recent */
	filecache_put(c, "k3", make_file("f3", 10, '3', p, sizeof(p)), "\"3\"");
	struct filecache_file *k2 = filecache_get(c, "k2");
	CHECK(k2 == NULL, "expected k2 (least recently used) evicted");
	filecache_release(k2);
	filecache_put(c, "k4", make_file("f4", 10, '4', p, sizeof(p)), "\"4\"");  /* evicts k1 while held */
	struct filecache_file *k1 = filecache_get(c, "k1");
	CHECK(k1 == NULL, "expected k1 evicted after k3 and k4");
	filecache_release(k1);
	char b = 0;
	CHECK_INT(pread(held->fd, &b, 1, 0), 1);
	CHECK(b == '1', "expected the held descriptor to still read its file, got '%c'", b);
	filecache_release(held);
	filecache_free(c);
}

static void test_a_missing_file_is_refused_and_nothing_cached(void)
{
	struct filecache *c = filecache_new(2);
	char p[512];
	snprintf(p, sizeof(p), "%s/nope", dir);
	CHECK_INT(filecache_put(c, "k", p, "\"x\""), -ENOENT);
	CHECK(filecache_get(c, "k") == NULL, "expected nothing cached");
	struct filecache *off = filecache_new(0);
	CHECK_INT(filecache_put(off, "k", make_file("z", 3, 'z', p, sizeof(p)), "\"z\""), -ENOSPC);
	filecache_free(off);
	filecache_free(c);
}

static void test_a_file_just_written_is_resident_in_the_page_cache(void)
{
	char p[512];
	struct filecache *c = filecache_new(2);
	filecache_put(c, "w", make_file("w", 3 * 4096 + 17, 'w', p, sizeof(p)), "\"w\"");
	struct filecache_file *f = filecache_get(c, "w");
	uint64_t range[2] = {0, 0}, st[5];
	bool kernel_can_tell = syscall(451, f->fd, range, st, 0) == 0;
	/* Without cachestat (before Linux 6.5) the answer must be the safe one. */
	CHECK(filecache_resident(f) == kernel_can_tell, "expected resident = %d", kernel_can_tell);
	filecache_release(f);
	filecache_free(c);
}

/* A "yes" is reused for FILECACHE_RESIDENT_RECHECK_US, then asked again: pages dropped
 * from the page cache are seen once the window has passed. */
static void test_a_resident_answer_is_reused_for_a_window_then_rechecked(void)
{
	char p[512];
	struct filecache *c = filecache_new(2);
	filecache_put(c, "v", make_file("v", 8 * 4096, 'v', p, sizeof(p)), "\"v\"");
	struct filecache_file *f = filecache_get(c, "v");
	uint64_t range[2] = {0, 0}, st[5];
	if (syscall(451, f->fd, range, st, 0) != 0) {
		CHECK(!filecache_resident(f), "without cachestat the answer must be no");
		goto done;
	}
	CHECK(filecache_resident(f), "a file just written is resident");
	/* A page leaves the page cache: a hole punched in the file removes it, on a disk
	 * file system and on tmpfs alike (fadvise(DONTNEED) does nothing on tmpfs). */
	int wfd = open(p, O_RDWR);
	CHECK(wfd >= 0, "cannot reopen %s", p);
	CHECK_INT(fallocate(wfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096), 0);
	close(wfd);
	syscall(451, f->fd, range, st, 0);
	CHECK(st[0] < 8, "all %d pages still cached after the punch", (int)st[0]);
	CHECK(filecache_resident(f), "within the window the earlier answer stands");
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	bool rechecked = false;
	do {
		rechecked = !filecache_resident(f);
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (!rechecked && (t.tv_sec - t0.tv_sec) < 10);
	CHECK(rechecked, "the dropped pages were never noticed");
	long waited_ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
	CHECK(waited_ms <= 2 * FILECACHE_RESIDENT_RECHECK_US / 1000 + 1000, "noticed only after %ld ms", waited_ms);
done:
	filecache_release(f);
	filecache_free(c);
}

int main(void)
{
	if (!tap_mkdtemp(dir, sizeof(dir), "test-filecache"))
		return 1;
	RUN(test_put_then_get_gives_size_etag_and_a_readable_descriptor);
	RUN(test_lru_bound_evicts_the_least_recent_but_a_held_file_stays_readable);
	RUN(test_a_missing_file_is_refused_and_nothing_cached);
	RUN(test_a_file_just_written_is_resident_in_the_page_cache);
	RUN(test_a_resident_answer_is_reused_for_a_window_then_rechecked);
	const char *names[] = {"a", "f1", "f2", "f3", "f4", "z", "w", "v"};
	char p[512];
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
		unlink(p);
	}
	rmdir(dir);
	return TAP_DONE();
}
