/* downloader: a worker thread around the offline store for the TUI. */
#include "downloader.h"
#include "api.h"
#include "id.h"
#include "json.h"
#include "offline.h"
#include "xmem.h"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

struct job {
	char uri[64];
	char *label;
	bool remove;                /* delete the download rather than fetch it */
	struct job *next;
};

struct downloader {
	struct api *api;
	char *dir, *key_path;
	int efd;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* Under lock. */
	struct job *head, *tail;
	bool stop, refresh;
	struct dl_state st;
	/* Thread only. */
	struct offline *store;
};

static void notify(struct downloader *d)
{
	uint64_t one = 1;
	ssize_t w = write(d->efd, &one, sizeof(one));
	(void)w;
}

struct ids {
	char (*v)[ID_LEN + 1];
	size_t n, cap;
};

static void ids_add(struct ids *l, const char *uri)
{
	char type[16], id[ID_LEN + 1];
	if (!uri || !uri_parse(uri, type, sizeof(type), id) || strcmp(type, "track") != 0)
		return;
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], id) == 0)
			return;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	memcpy(l->v[l->n++], id, ID_LEN + 1);
}

/* The tracks of an album or playlist, page by page. 0 or -EIO with err. */
static int expand(struct downloader *d, const char *type, const char *id, struct ids *out, char *err, size_t errlen)
{
	for (int offset = 0;; offset += 50) {
		char *path = xasprintf("/v1/%ss/%s/tracks?limit=50&offset=%d", type, id, offset);
		struct api_response r;
		int rc = api_get(d->api, path, &r);
		free(path);
		if (rc != 0 || r.status != 200) {
			char msg[200] = "";
			if (rc == 0)
				api_error_message(r.body.data ? r.body.data : "", msg, sizeof(msg));
			snprintf(err, errlen, "%s", rc != 0 ? "cannot reach the server" : msg[0] ? msg : "the server refused");
			api_response_free(&r);
			return -EIO;
		}
		yajl_val v = json_parse(r.body.data ? r.body.data : "", NULL, 0);
		yajl_val items = json_get(v, "items");
		size_t n = YAJL_IS_ARRAY(items) ? items->u.array.len : 0;
		for (size_t i = 0; i < n; i++) {
			yajl_val it = items->u.array.values[i];
			const char *u = json_get_str(it, "uri");
			if (!u)
				u = json_get_str(json_get(it, "track"), "uri");
			ids_add(out, u);
		}
		long long total = 0;
		json_get_int(v, "total", &total);
		yajl_tree_free(v);
		api_response_free(&r);
		if (n == 0 || offset + (long long)n >= total)
			return 0;
	}
}

struct list_ctx {
	struct dl_entry *v;
	int n, cap;
};

static void on_entry(void *ctx, const struct offline_entry *e)
{
	struct list_ctx *l = ctx;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = xrealloc(l->v, (size_t)l->cap * sizeof(*l->v));
	}
	struct dl_entry *o = &l->v[l->n++];
	memset(o, 0, sizeof(*o));
	snprintf(o->uri, sizeof(o->uri), "encore:track:%s", e->track_id);
	snprintf(o->name, sizeof(o->name), "%s", e->name);
	o->bitrate = e->bitrate;
	o->complete = e->complete;
	o->done = e->files_done;
	o->total = e->files_total;
	o->bytes = e->bytes;
	o->expires_at = e->expires_at;
}

/* Re-reads the store into the shared state (thread only). */
static void reload(struct downloader *d)
{
	struct list_ctx l = {0};
	uint64_t bytes = 0, quota = 0;
	int tracks = 0;
	if (d->store) {
		offline_list(d->store, on_entry, &l);
		offline_usage(d->store, &bytes, &tracks, &quota);
	}
	pthread_mutex_lock(&d->lock);
	free(d->st.v);
	d->st.v = l.v;
	d->st.n = l.n;
	d->st.bytes = bytes;
	d->st.quota = quota;
	d->st.loaded = true;
	pthread_mutex_unlock(&d->lock);
	notify(d);
}

/* Opens the store; create = a download needs it, else only an existing one. */
static int open_store(struct downloader *d, bool create, char *err, size_t errlen)
{
	if (d->store)
		return 0;
	struct stat sb;
	if (!create && stat(d->dir, &sb) != 0)
		return -ENOENT;
	d->store = offline_open(d->dir, d->key_path, err, errlen);
	return d->store ? 0 : -EIO;
}

static void on_progress(void *ctx, const struct offline_progress *p)
{
	struct downloader *d = ctx;
	char uri[64];
	snprintf(uri, sizeof(uri), "encore:track:%s", p->track_id);
	pthread_mutex_lock(&d->lock);
	for (int i = 0; i < d->st.n; i++)
		if (strcmp(d->st.v[i].uri, uri) == 0) {
			d->st.v[i].done = p->done;
			d->st.v[i].total = p->total;
			d->st.v[i].bytes = p->bytes;
			d->st.v[i].bitrate = p->bitrate;
			d->st.v[i].complete = p->finished;
		}
	/* Usage follows the files as they land, not only the next re-read of the store. */
	d->st.bytes = 0;
	for (int i = 0; i < d->st.n; i++)
		d->st.bytes += d->st.v[i].bytes;
	pthread_mutex_unlock(&d->lock);
	notify(d);
}

static void set_error(struct downloader *d, const char *label, const char *why)
{
	pthread_mutex_lock(&d->lock);
	snprintf(d->st.error, sizeof(d->st.error), "cannot download %s: %s", label, why);
	pthread_mutex_unlock(&d->lock);
}

static void run_job(struct downloader *d, struct job *j)
{
	const char *label = j->label ? j->label : j->uri;
	char type[16], id[ID_LEN + 1], err[320] = "";
	struct ids ids = {0};
	int rc = 0;
	if (!uri_parse(j->uri, type, sizeof(type), id)) {
		set_error(d, label, "not an encore URI");
		return;
	}
	if (strcmp(type, "track") == 0)
		ids_add(&ids, j->uri);
	else
		rc = expand(d, type, id, &ids, err, sizeof(err));
	if (rc == 0 && ids.n == 0) {
		snprintf(err, sizeof(err), "it has no tracks");
		rc = -ENOENT;
	}
	if (rc == 0)
		rc = open_store(d, true, err, sizeof(err));
	if (rc == 0)
		rc = offline_license(d->store, d->api, (const char(*)[ID_LEN + 1])ids.v, ids.n, err, sizeof(err));
	if (rc == 0)
		reload(d);  /* the licensed tracks appear at once, at 0 % */
	for (size_t i = 0; rc == 0 && i < ids.n; i++) {
		pthread_mutex_lock(&d->lock);
		bool stop = d->stop;
		pthread_mutex_unlock(&d->lock);
		if (stop)
			break;
		rc = offline_download(d->store, d->api, ids.v[i], 0, on_progress, d, err, sizeof(err));
		reload(d);
	}
	if (rc != 0)
		set_error(d, label, err[0] ? err : strerror(-rc));
	else {
		pthread_mutex_lock(&d->lock);
		snprintf(d->st.done_msg, sizeof(d->st.done_msg), "Downloaded %s (%zu track%s)", label, ids.n, ids.n == 1 ? "" : "s");
		pthread_mutex_unlock(&d->lock);
	}
	free(ids.v);
}

static void *thread_main(void *arg)
{
	struct downloader *d = arg;
	for (;;) {
		pthread_mutex_lock(&d->lock);
		while (!d->stop && !d->head && !d->refresh)
			pthread_cond_wait(&d->cond, &d->lock);
		if (d->stop) {
			pthread_mutex_unlock(&d->lock);
			break;
		}
		bool refresh = d->refresh;
		d->refresh = false;
		struct job *j = d->head;
		if (j) {
			d->head = j->next;
			if (!d->head)
				d->tail = NULL;
			d->st.queued--;
			snprintf(d->st.active, sizeof(d->st.active), "%s", j->label ? j->label : j->uri);
			d->st.error[0] = 0;
		}
		pthread_mutex_unlock(&d->lock);
		if (refresh && !j) {
			char err[256];
			open_store(d, false, err, sizeof(err));
			reload(d);
			continue;
		}
		if (j->remove) {
			char type[16], id[ID_LEN + 1], err[256];
			if (uri_parse(j->uri, type, sizeof(type), id) && open_store(d, false, err, sizeof(err)) == 0 &&
			    offline_remove(d->store, id) == 0) {
				pthread_mutex_lock(&d->lock);
				snprintf(d->st.done_msg, sizeof(d->st.done_msg), "Removed the download of %s", j->label ? j->label : j->uri);
				pthread_mutex_unlock(&d->lock);
			} else {
				set_error(d, j->label ? j->label : j->uri, "it is not downloaded");
			}
			reload(d);
		} else {
			run_job(d, j);
		}
		pthread_mutex_lock(&d->lock);
		d->st.active[0] = 0;
		d->st.finished++;
		pthread_mutex_unlock(&d->lock);
		free(j->label);
		free(j);
		notify(d);
	}
	return NULL;
}

struct downloader *downloader_new(struct api *api, const char *dir, const char *key_path)
{
	struct downloader *d = xcalloc(1, sizeof(*d));
	d->api = api;
	d->dir = xstrdup(dir);
	d->key_path = xstrdup(key_path);
	d->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	if (d->efd < 0 || pthread_create(&d->thread, NULL, thread_main, d) != 0) {
		if (d->efd >= 0)
			close(d->efd);
		pthread_mutex_destroy(&d->lock);
		pthread_cond_destroy(&d->cond);
		free(d->dir);
		free(d->key_path);
		free(d);
		return NULL;
	}
	return d;
}

void downloader_free(struct downloader *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	d->stop = true;
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->lock);
	pthread_join(d->thread, NULL);
	for (struct job *j = d->head, *n; j; j = n) {
		n = j->next;
		free(j->label);
		free(j);
	}
	offline_free(d->store);
	dl_state_free(&d->st);
	close(d->efd);
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->cond);
	free(d->dir);
	free(d->key_path);
	free(d);
}

int downloader_fd(struct downloader *d)
{
	return d->efd;
}

void downloader_ack(struct downloader *d)
{
	uint64_t v;
	ssize_t r = read(d->efd, &v, sizeof(v));
	(void)r;
}

static int enqueue(struct downloader *d, const char *uri, const char *label, bool remove)
{
	char type[16], id[ID_LEN + 1];
	if (!uri_parse(uri, type, sizeof(type), id) ||
	    (strcmp(type, "track") != 0 && (remove || (strcmp(type, "album") != 0 && strcmp(type, "playlist") != 0))))
		return -EINVAL;
	struct job *j = xcalloc(1, sizeof(*j));
	snprintf(j->uri, sizeof(j->uri), "%s", uri);
	j->label = label ? xstrdup(label) : NULL;
	j->remove = remove;
	pthread_mutex_lock(&d->lock);
	if (d->tail)
		d->tail->next = j;
	else
		d->head = j;
	d->tail = j;
	d->st.queued++;
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->lock);
	notify(d);
	return 0;
}

int downloader_add(struct downloader *d, const char *uri, const char *label)
{
	return enqueue(d, uri, label, false);
}

int downloader_remove(struct downloader *d, const char *uri, const char *label)
{
	return enqueue(d, uri, label, true);
}

void downloader_refresh(struct downloader *d)
{
	pthread_mutex_lock(&d->lock);
	d->refresh = true;
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

void downloader_state(struct downloader *d, struct dl_state *out)
{
	pthread_mutex_lock(&d->lock);
	*out = d->st;
	out->v = NULL;
	if (d->st.n) {
		out->v = xmalloc((size_t)d->st.n * sizeof(*d->st.v));
		memcpy(out->v, d->st.v, (size_t)d->st.n * sizeof(*d->st.v));
	}
	pthread_mutex_unlock(&d->lock);
}

void dl_state_free(struct dl_state *s)
{
	free(s->v);
	s->v = NULL;
	s->n = 0;
}
