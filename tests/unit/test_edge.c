/* edge: the in-memory edge cache, and the memfds large objects live in for sendfile(). */
#include "edge.h"
#include "tap.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned char *pattern(size_t n, unsigned seed)
{
	unsigned char *p = malloc(n);
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(i * 31 + seed);
	return p;
}

static void test_a_large_object_is_held_in_a_memfd_with_the_same_bytes(void)
{
	struct edge *e = edge_new(1 << 20, 8);
	size_t n = EDGE_FD_MIN_BYTES + 1000;
	unsigned char *d = pattern(n, 7), *back = malloc(n);
	edge_put(e, "big", d, n, "\"b\"");
	struct edge_obj *o = edge_get(e, "big");
	CHECK(o && o->fd >= 0, "expected a memfd for a %zu-byte object", n);
	if (o && o->fd >= 0) {
		CHECK_INT(pread(o->fd, back, n, 0), n);
		CHECK(memcmp(back, d, n) == 0, "expected the memfd to hold the object's bytes");
		CHECK(memcmp(o->data, d, n) == 0, "expected data to map the same bytes");
	}
	edge_release(o);
	free(back);
	free(d);
	edge_free(e);
}

static void test_small_objects_and_a_spent_budget_stay_in_plain_memory(void)
{
	struct edge *e = edge_new(1 << 20, 1);
	size_t n = EDGE_FD_MIN_BYTES + 10;
	unsigned char *d = pattern(n, 3);
	edge_put(e, "small", d, 100, "\"s\"");
	edge_put(e, "a", d, n, "\"a\"");
	edge_put(e, "b", d, n, "\"b\"");   /* the one descriptor is taken by "a" */
	struct edge_obj *s = edge_get(e, "small"), *a = edge_get(e, "a"), *b = edge_get(e, "b");
	CHECK(s && s->fd < 0, "expected a small object in plain memory");
	CHECK(a && a->fd >= 0, "expected the first large object in a memfd");
	CHECK(b && b->fd < 0 && memcmp(b->data, d, n) == 0, "expected the second in plain memory, same bytes");
	edge_release(s);
	edge_release(a);
	edge_release(b);
	free(d);
	edge_free(e);
}

static void test_an_evicted_object_stays_readable_while_a_response_holds_it(void)
{
	size_t n = EDGE_FD_MIN_BYTES * 2;
	struct edge *e = edge_new(n * 4, 8);   /* an object may take a quarter */
	unsigned char *d = pattern(n, 9), b = 0;
	edge_put(e, "x", d, n, "\"x\"");
	struct edge_obj *held = edge_get(e, "x");
	CHECK(held && held->fd >= 0, "expected x cached in a memfd");
	if (!held)
		return;
	edge_put(e, "y", d, n, "\"y\"");
	edge_put(e, "z", d, n, "\"z\"");
	edge_put(e, "w", d, n, "\"w\"");
	edge_put(e, "v", d, n, "\"v\"");   /* full: evicts x, the least recently used */
	struct edge_obj *gone = edge_get(e, "x");
	CHECK(gone == NULL, "expected x evicted");
	edge_release(gone);
	CHECK_INT(pread(held->fd, &b, 1, n - 1), 1);
	CHECK_INT(b, d[n - 1]);
	CHECK(held->data[n / 2] == d[n / 2], "expected the mapping to stay valid");
	struct edge_stats st = edge_stats(e);
	CHECK_INT(st.evictions, 1);
	edge_release(held);
	free(d);
	edge_free(e);
}

int main(void)
{
	RUN(test_a_large_object_is_held_in_a_memfd_with_the_same_bytes);
	RUN(test_small_objects_and_a_spent_budget_stay_in_plain_memory);
	RUN(test_an_evicted_object_stays_readable_while_a_response_holds_it);
	return TAP_DONE();
}
