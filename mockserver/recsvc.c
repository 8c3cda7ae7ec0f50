/* recsvc: reference-counted model swapping, polling and scheduled training. */
#include "recsvc.h"
#include "db.h"
#include "xmem.h"
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct held {
	struct recmodel *m;
	int refs;          /* readers, plus one while it is current */
};

#define MAX_HELD 8     /* current + older ones still being read */

struct recsvc {
	struct recsvc_options o;
	char *data_dir;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	struct held held[MAX_HELD];
	int current;       /* index into held, or -1 */
	atomic_bool fault;
	atomic_ullong reloads, trainings, train_failures, served[RECSVC_NSOURCES];
	pthread_t thread;
	bool started;
	sqlite3 *db;       /* the thread's connection, for polling */
};

void recsvc_options_defaults(struct recsvc_options *o)
{
	memset(o, 0, sizeof(*o));
	o->check_interval_ms = 1000;
	o->max_age_s = 30 * 24 * 3600;
	recmodel_train_opts_defaults(&o->train);
}

const char *recsvc_source_name(enum recsvc_source src)
{
	static const char *const names[] = {"personal", "genre", "popular"};
	return src < RECSVC_NSOURCES ? names[src] : "unknown";
}

static void unref_locked(struct recsvc *s, int h)
{
	if (--s->held[h].refs == 0) {
		recmodel_free(s->held[h].m);
		s->held[h].m = NULL;
	}
}

int recsvc_reload(struct recsvc *s)
{
	char rel[600];
	pthread_mutex_lock(&s->mu);
	int64_t have = s->current >= 0 ? recmodel_version(s->held[s->current].m) : 0;
	pthread_mutex_unlock(&s->mu);
	int64_t v = recmodel_latest(s->db, rel, sizeof(rel));
	if (v <= have)
		return 0;
	char err[256];
	char *path = xasprintf("%s/%s", s->data_dir, rel);
	struct recmodel *m = recmodel_load(path, err, sizeof(err));
	free(path);
	if (!m) {
		fprintf(stderr, "encored: recommendations: %s\n", err);
		return -EIO;
	}
	pthread_mutex_lock(&s->mu);
	int slot = -1;
	for (int h = 0; h < MAX_HELD && slot < 0; h++)
		if (!s->held[h].m)
			slot = h;
	if (slot < 0) {
		/* Every slot is still read by slow requests: try again next tick. */
		pthread_mutex_unlock(&s->mu);
		recmodel_free(m);
		return -EBUSY;
	}
	s->held[slot] = (struct held){m, 1};
	if (s->current >= 0)
		unref_locked(s, s->current);
	s->current = slot;
	pthread_mutex_unlock(&s->mu);
	atomic_fetch_add(&s->reloads, 1);
	fprintf(stderr, "encored: recommendations: model version %lld loaded (%d items)\n", (long long)v,
		recmodel_items(m));
	return 1;
}

static void *run(void *arg)
{
	struct recsvc *s = arg;
	time_t next_train = s->o.train_interval_s > 0 ? time(NULL) + s->o.train_interval_s : 0;
	pthread_mutex_lock(&s->mu);
	while (!s->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += s->o.check_interval_ms / 1000;
		ts.tv_nsec += (long)(s->o.check_interval_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s->cv, &s->mu, &ts);
		if (s->stop)
			break;
		pthread_mutex_unlock(&s->mu);
		if (next_train && time(NULL) >= next_train) {
			struct recmodel_train_stats st;
			char err[256];
			if (recmodel_train(s->data_dir, &s->o.train, &st, err, sizeof(err)) == 0) {
				atomic_fetch_add(&s->trainings, 1);
				fprintf(stderr, "encored: recommendations: trained version %lld (%d users, %d items) in %.0f ms\n",
					(long long)st.version, st.users, st.items, st.train_ms);
			} else {
				atomic_fetch_add(&s->train_failures, 1);
				fprintf(stderr, "encored: recommendations: training failed: %s\n", err);
			}
			next_train = time(NULL) + s->o.train_interval_s;
		}
		recsvc_reload(s);
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

struct recsvc *recsvc_new(const struct recsvc_options *o, char *err, size_t errlen)
{
	struct recsvc *s = xcalloc(1, sizeof(*s));
	s->o = *o;
	if (s->o.check_interval_ms <= 0)
		s->o.check_interval_ms = 1000;
	s->data_dir = xstrdup(o->data_dir);
	s->o.data_dir = s->data_dir;
	s->current = -1;
	atomic_init(&s->fault, o->fault);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if (db_open(s->data_dir, &s->db, err, errlen) != 0) {
		recsvc_free(s);
		return NULL;
	}
	/* A model that fails to load is not fatal: serving falls back until a good one appears. */
	recsvc_reload(s);
	if (pthread_create(&s->thread, NULL, run, s) != 0) {
		snprintf(err, errlen, "cannot start the recommendations thread");
		recsvc_free(s);
		return NULL;
	}
	s->started = true;
	return s;
}

void recsvc_free(struct recsvc *s)
{
	if (!s)
		return;
	if (s->started) {
		pthread_mutex_lock(&s->mu);
		s->stop = true;
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->thread, NULL);
	}
	for (int h = 0; h < MAX_HELD; h++)
		recmodel_free(s->held[h].m);
	db_close(s->db);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s->data_dir);
	free(s);
}

const struct recmodel *recsvc_acquire(struct recsvc *s)
{
	if (!s || atomic_load(&s->fault))
		return NULL;
	const struct recmodel *m = NULL;
	pthread_mutex_lock(&s->mu);
	if (s->current >= 0) {
		struct held *h = &s->held[s->current];
		bool stale = s->o.max_age_s > 0 && time(NULL) - recmodel_created_at(h->m) > s->o.max_age_s;
		if (!stale) {
			h->refs++;
			m = h->m;
		}
	}
	pthread_mutex_unlock(&s->mu);
	return m;
}

void recsvc_release(struct recsvc *s, const struct recmodel *m)
{
	if (!s || !m)
		return;
	pthread_mutex_lock(&s->mu);
	for (int h = 0; h < MAX_HELD; h++)
		if (s->held[h].m == m) {
			unref_locked(s, h);
			break;
		}
	pthread_mutex_unlock(&s->mu);
}

void recsvc_set_fault(struct recsvc *s, bool on)
{
	if (!s)
		return;
	atomic_store(&s->fault, on);
}

int64_t recsvc_now(struct recsvc *s)
{
	return (int64_t)time(NULL) + (s ? s->o.clock_offset_s : 0);
}

void recsvc_count(struct recsvc *s, enum recsvc_source src)
{
	if (s && src < RECSVC_NSOURCES)
		atomic_fetch_add(&s->served[src], 1);
}

void recsvc_status(struct recsvc *s, struct recsvc_status *out)
{
	memset(out, 0, sizeof(*out));
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	if (s->current >= 0) {
		out->version = recmodel_version(s->held[s->current].m);
		out->created_at = recmodel_created_at(s->held[s->current].m);
		out->stale = s->o.max_age_s > 0 && time(NULL) - out->created_at > s->o.max_age_s;
	}
	pthread_mutex_unlock(&s->mu);
	out->fault = atomic_load(&s->fault);
	out->reloads = atomic_load(&s->reloads);
	out->trainings = atomic_load(&s->trainings);
	out->train_failures = atomic_load(&s->train_failures);
	for (int i = 0; i < RECSVC_NSOURCES; i++)
		out->served[i] = atomic_load(&s->served[i]);
}
