/* ratelimit: a chained hash table of buckets under one mutex. Buckets that have refilled
 * completely carry no information, so a sweep drops them once the table grows, which
 * bounds memory under a flood of distinct keys. */
#include "ratelimit.h"
#include "xmem.h"
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define RL_SLOTS 4096
#define RL_SWEEP_AT 65536

struct bucket {
	struct bucket *next;
	double tokens;
	int64_t last_us;
	char key[];
};

struct ratelimit {
	pthread_mutex_t lock;
	double rate, burst;
	size_t count;
	struct bucket *slots[RL_SLOTS];
};

bool bucket_take(double *tokens, int64_t *last_us, int64_t now_us, double rate, double burst, double *wait_s)
{
	if (now_us > *last_us) {
		*tokens += (double)(now_us - *last_us) / 1e6 * rate;
		if (*tokens > burst)
			*tokens = burst;
		*last_us = now_us;
	}
	if (*tokens >= 1.0) {
		*tokens -= 1.0;
		return true;
	}
	*wait_s = (1.0 - *tokens) / rate;
	return false;
}

struct ratelimit *ratelimit_new(double rate, double burst)
{
	struct ratelimit *rl = xcalloc(1, sizeof(*rl));
	pthread_mutex_init(&rl->lock, NULL);
	rl->rate = rate;
	rl->burst = burst < 1 ? 1 : burst;
	return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
	if (!rl)
		return;
	for (int i = 0; i < RL_SLOTS; i++)
		for (struct bucket *b = rl->slots[i], *n; b; b = n) {
			n = b->next;
			free(b);
		}
	pthread_mutex_destroy(&rl->lock);
	free(rl);
}

static unsigned hash(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static void sweep(struct ratelimit *rl, int64_t now_us)
{
	for (int i = 0; i < RL_SLOTS; i++) {
		struct bucket **pp = &rl->slots[i];
		while (*pp) {
			struct bucket *b = *pp;
			double full = b->tokens + (double)(now_us - b->last_us) / 1e6 * rl->rate;
			if (full >= rl->burst) {
				*pp = b->next;
				free(b);
				rl->count--;
			} else {
				pp = &b->next;
			}
		}
	}
}

bool ratelimit_take(struct ratelimit *rl, const char *key, int64_t now_us, int *retry_after_s)
{
	if (rl->rate <= 0)
		return true;
	pthread_mutex_lock(&rl->lock);
	unsigned slot = hash(key) % RL_SLOTS;
	struct bucket *b;
	for (b = rl->slots[slot]; b; b = b->next)
		if (strcmp(b->key, key) == 0)
			break;
	if (!b) {
		if (rl->count >= RL_SWEEP_AT)
			sweep(rl, now_us);
		size_t len = strlen(key);
		b = xmalloc(sizeof(*b) + len + 1);
		memcpy(b->key, key, len + 1);
		b->tokens = rl->burst;
		b->last_us = now_us;
		b->next = rl->slots[slot];
		rl->slots[slot] = b;
		rl->count++;
	}
	double wait = 0;
	bool ok = bucket_take(&b->tokens, &b->last_us, now_us, rl->rate, rl->burst, &wait);
	pthread_mutex_unlock(&rl->lock);
	if (!ok)
		*retry_after_s = (int)ceil(wait) < 1 ? 1 : (int)ceil(wait);
	return ok;
}
