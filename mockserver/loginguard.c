#include "loginguard.h"
#include "xmem.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Entries live in a flat array; expired ones are dropped when met, and the array is swept
 * when it fills, so an attacker spraying usernames or addresses cannot grow it past
 * LOGINGUARD_MAX entries (then the oldest is evicted, which frees that key early: the cost
 * of bounded memory). */
#define LOGINGUARD_MAX 65536

struct entry {
	char *key;
	int failures;
	int64_t last_us;      /* last failure */
	int64_t locked_until_us;
};

struct loginguard {
	int max_failures, base_s, cap_s, window_s;
	pthread_mutex_t lock;
	struct entry *e;
	size_t n, cap;
};

int loginguard_lock_seconds(int failures, int max_failures, int base_s, int cap_s)
{
	if (max_failures <= 0 || failures < max_failures)
		return 0;
	int64_t s = base_s;
	for (int i = max_failures; i < failures && s < cap_s; i++)
		s *= 2;
	return s > cap_s ? cap_s : (int)s;
}

struct loginguard *loginguard_new(int max_failures, int base_s, int cap_s, int window_s)
{
	if (max_failures < 0 || base_s < 1 || cap_s < base_s || window_s < 1)
		return NULL;
	struct loginguard *g = xcalloc(1, sizeof(*g));
	g->max_failures = max_failures;
	g->base_s = base_s;
	g->cap_s = cap_s;
	g->window_s = window_s;
	pthread_mutex_init(&g->lock, NULL);
	return g;
}

void loginguard_free(struct loginguard *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->n; i++)
		free(g->e[i].key);
	free(g->e);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

static bool expired(const struct loginguard *g, const struct entry *e, int64_t now_us)
{
	/* A whole quiet window after the later of the last failure and the lock's end. */
	int64_t since = e->locked_until_us > e->last_us ? e->locked_until_us : e->last_us;
	return now_us >= since + (int64_t)g->window_s * 1000000;
}

static void drop(struct loginguard *g, size_t i)
{
	free(g->e[i].key);
	g->e[i] = g->e[--g->n];
}

/* Linear scan: the table holds only keys with recent failures, which is small in normal
 * operation; under a spray the sweep below keeps it bounded. Caller holds the lock. */
static struct entry *find(struct loginguard *g, const char *key, int64_t now_us)
{
	for (size_t i = 0; i < g->n; i++) {
		if (strcmp(g->e[i].key, key) != 0)
			continue;
		if (expired(g, &g->e[i], now_us)) {
			drop(g, i);
			return NULL;
		}
		return &g->e[i];
	}
	return NULL;
}

static struct entry *add(struct loginguard *g, const char *key, int64_t now_us)
{
	if (g->n == LOGINGUARD_MAX) {
		for (size_t i = g->n; i-- > 0;)
			if (expired(g, &g->e[i], now_us))
				drop(g, i);
		if (g->n == LOGINGUARD_MAX) {
			size_t old = 0;
			for (size_t i = 1; i < g->n; i++)
				if (g->e[i].last_us < g->e[old].last_us)
					old = i;
			drop(g, old);
		}
	}
	if (g->n == g->cap) {
		g->cap = g->cap ? g->cap * 2 : 16;
		g->e = xrealloc(g->e, g->cap * sizeof(*g->e));
	}
	struct entry *e = &g->e[g->n++];
	memset(e, 0, sizeof(*e));
	e->key = xstrdup(key);
	return e;
}

bool loginguard_check(struct loginguard *g, const char *key, int64_t now_us, int *retry_after_s)
{
	if (g->max_failures == 0)
		return true;
	pthread_mutex_lock(&g->lock);
	struct entry *e = find(g, key, now_us);
	bool ok = !e || now_us >= e->locked_until_us;
	if (!ok) {
		int64_t left = e->locked_until_us - now_us;
		*retry_after_s = (int)((left + 999999) / 1000000);
		if (*retry_after_s < 1)
			*retry_after_s = 1;
	}
	pthread_mutex_unlock(&g->lock);
	return ok;
}

int loginguard_fail(struct loginguard *g, const char *key, int64_t now_us)
{
	if (g->max_failures == 0)
		return 0;
	pthread_mutex_lock(&g->lock);
	struct entry *e = find(g, key, now_us);
	if (!e)
		e = add(g, key, now_us);
	if (e->failures < 1000000)
		e->failures++;
	e->last_us = now_us;
	int s = loginguard_lock_seconds(e->failures, g->max_failures, g->base_s, g->cap_s);
	if (s > 0)
		e->locked_until_us = now_us + (int64_t)s * 1000000;
	pthread_mutex_unlock(&g->lock);
	return s;
}

void loginguard_success(struct loginguard *g, const char *key)
{
	loginguard_clear(g, key);
}

bool loginguard_clear(struct loginguard *g, const char *key)
{
	bool had = false;
	pthread_mutex_lock(&g->lock);
	for (size_t i = 0; i < g->n; i++) {
		if (strcmp(g->e[i].key, key) == 0) {
			drop(g, i);
			had = true;
			break;
		}
	}
	pthread_mutex_unlock(&g->lock);
	return had;
}
