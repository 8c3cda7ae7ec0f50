/* fetcher: a small worker pool performing API requests for the UI. */
#include "fetcher.h"
#include "api.h"
#include "xmem.h"
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct request {
	int kind, slot;
	uint64_t gen;
	char *method, *path, *body, *tag;
	struct timespec due;   /* CLOCK_MONOTONIC */
	struct request *next;
};

struct fetcher {
	struct api *api;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct request *pending;          /* FIFO */
	struct fetch_result *done, **done_tail;
	uint64_t next_gen;
	int running;
	bool stop;
	int efd;
	int nthreads;
	pthread_t *threads;
};

static void request_free(struct request *r)
{
	free(r->method);
	free(r->path);
	free(r->body);
	free(r->tag);
	free(r);
}

static struct timespec due_in(int ms)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

static bool ts_before(struct timespec a, struct timespec b)
{
	return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

/* The earliest-due pending request, unlinked; NULL with *wait set to the earliest due
 * time when none is due yet (wait untouched when the list is empty). Locked. */
static struct request *take_due(struct fetcher *f, struct timespec *wait, bool *have_wait)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	*have_wait = false;
	for (struct request **pp = &f->pending; *pp; pp = &(*pp)->next) {
		struct request *r = *pp;
		if (!ts_before(now, r->due)) {
			*pp = r->next;
			return r;
		}
		if (!*have_wait || ts_before(r->due, *wait)) {
			*wait = r->due;
			*have_wait = true;
		}
	}
	return NULL;
}

static void *worker(void *arg)
{
	struct fetcher *f = arg;
	pthread_mutex_lock(&f->mu);
	while (!f->stop) {
		struct timespec wait;
		bool have_wait;
		struct request *r = take_due(f, &wait, &have_wait);
		if (!r) {
			if (have_wait)
				pthread_cond_timedwait(&f->cv, &f->mu, &wait);
			else
				pthread_cond_wait(&f->cv, &f->mu);
			continue;
		}
		f->running++;
		pthread_mutex_unlock(&f->mu);

		struct api_response resp;
		int rc = api_request(f->api, r->method, r->path, r->body ? "application/json" : NULL, r->body,
				     r->body ? strlen(r->body) : 0, &resp);
		struct fetch_result *res = xcalloc(1, sizeof(*res));
		res->kind = r->kind;
		res->gen = r->gen;
		res->tag = r->tag;
		r->tag = NULL;
		res->rc = rc;
		res->status = resp.status;
		res->body = resp.body.data ? buf_steal(&resp.body) : xstrdup("");
		snprintf(res->error, sizeof(res->error), "%s", resp.error);
		api_response_free(&resp);
		request_free(r);

		pthread_mutex_lock(&f->mu);
		f->running--;
		*f->done_tail = res;
		f->done_tail = &res->next;
		uint64_t one = 1;
		if (write(f->efd, &one, sizeof(one)) < 0) {
			/* The counter cannot overflow in practice; a failed wake-up only delays the UI. */
		}
	}
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

struct fetcher *fetcher_new(struct api *api, int nthreads)
{
	struct fetcher *f = xcalloc(1, sizeof(*f));
	f->api = api;
	f->done_tail = &f->done;
	f->next_gen = 1;
	f->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (f->efd < 0)
		goto fail;
	pthread_mutex_init(&f->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&f->cv, &ca);
	pthread_condattr_destroy(&ca);
	f->threads = xcalloc((size_t)nthreads, sizeof(*f->threads));
	for (int i = 0; i < nthreads; i++) {
		if (pthread_create(&f->threads[i], NULL, worker, f) != 0) {
			fetcher_free(f);
			return NULL;
		}
		f->nthreads++;
	}
	return f;
fail:
	free(f);
	return NULL;
}

void fetcher_free(struct fetcher *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->mu);
	f->stop = true;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	for (int i = 0; i < f->nthreads; i++)
		pthread_join(f->threads[i], NULL);
	free(f->threads);
	while (f->pending) {
		struct request *r = f->pending;
		f->pending = r->next;
		request_free(r);
	}
	fetch_result_free(f->done);
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mu);
	close(f->efd);
	free(f);
}

int fetcher_fd(struct fetcher *f)
{
	return f->efd;
}

uint64_t fetcher_submit(struct fetcher *f, int kind, int slot, const char *method, const char *path,
			const char *body, const char *tag, int delay_ms)
{
	struct request *r = xcalloc(1, sizeof(*r));
	r->kind = kind;
	r->slot = slot;
	r->method = xstrdup(method);
	r->path = xstrdup(path);
	r->body = body ? xstrdup(body) : NULL;
	r->tag = tag ? xstrdup(tag) : NULL;
	r->due = due_in(delay_ms > 0 ? delay_ms : 0);
	pthread_mutex_lock(&f->mu);
	r->gen = f->next_gen++;
	struct request **pp = &f->pending;
	while (*pp) {
		if (slot >= 0 && (*pp)->slot == slot) {
			struct request *old = *pp;
			*pp = old->next;
			request_free(old);
			continue;
		}
		pp = &(*pp)->next;
	}
	*pp = r;
	uint64_t gen = r->gen;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	return gen;
}

struct fetch_result *fetcher_take(struct fetcher *f)
{
	uint64_t v;
	if (read(f->efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing signalled; the list below is authoritative anyway. */
	}
	pthread_mutex_lock(&f->mu);
	struct fetch_result *r = f->done;
	f->done = NULL;
	f->done_tail = &f->done;
	pthread_mutex_unlock(&f->mu);
	return r;
}

void fetch_result_free(struct fetch_result *r)
{
	while (r) {
		struct fetch_result *next = r->next;
		free(r->tag);
		free(r->body);
		free(r);
		r = next;
	}
}

int fetcher_busy(struct fetcher *f)
{
	pthread_mutex_lock(&f->mu);
	int n = f->running;
	for (struct request *r = f->pending; r; r = r->next)
		n++;
	pthread_mutex_unlock(&f->mu);
	return n;
}
