/* ingest_routes: the admin API of the ingest pipeline. Uploads carry the audio as the raw
 * body (audio/wav or audio/flac) and the metadata as query arguments, so a 100 MB file
 * needs no base64 and no multipart parser. */
#include "ingest.h"
#include "json.h"
#include "server.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void write_job(struct jw *w, const struct ingest_job *j)
{
	jw_obj(w);
	jw_kint(w, "id", j->id);
	jw_kstr(w, "kind", j->kind);
	char uri[64];
	snprintf(uri, sizeof(uri), "encore:%s:%s", j->kind, j->content_id);
	jw_kstr(w, "uri", uri);
	jw_kstr(w, "state", j->state);
	jw_kdouble(w, "progress", j->progress);
	jw_key(w, "error");
	if (j->error[0])
		jw_str(w, j->error);
	else
		jw_null(w);
	jw_obj_end(w);
}

static void route_ingest(struct call *c)
{
	struct ingest_meta m = {.kind = INGEST_TRACK};
	const char *kind = http_arg(c->req, "kind");
	if (kind && strcmp(kind, "episode") == 0)
		m.kind = INGEST_EPISODE;
	else if (kind && strcmp(kind, "track") != 0) {
		call_error(c, 400, "kind must be track or episode");
		return;
	}
	m.title = http_arg(c->req, "title");
	m.artist = http_arg(c->req, "artist");
	m.album = http_arg(c->req, "album");
	m.genre = http_arg(c->req, "genre");
	m.label = http_arg(c->req, "label");
	m.markets = http_arg(c->req, "markets");
	m.release_date = http_arg(c->req, "release_date");
	m.show = http_arg(c->req, "show");
	m.description = http_arg(c->req, "description");
	const char *ex = http_arg(c->req, "explicit");
	if (ex && strcmp(ex, "true") != 0 && strcmp(ex, "false") != 0) {
		call_error(c, 400, "explicit must be true or false");
		return;
	}
	m.explicit_ = ex && strcmp(ex, "true") == 0;
	const char *pop = http_arg(c->req, "popularity");
	if (pop) {
		char *end;
		long v = strtol(pop, &end, 10);
		if (*end || v < 0 || v > 100) {
			call_error(c, 400, "popularity must be an integer from 0 to 100");
			return;
		}
		m.popularity = (int)v;
	}
	if (c->req->body.len == 0) {
		call_error(c, 400, "the body must be the audio file (WAV or FLAC)");
		return;
	}
	int64_t job;
	char id[ID_LEN + 1], err[256];
	int rc = ingest_submit(c->srv->ingest, c->db, c->req->body.data, c->req->body.len, &m, &job, id, err, sizeof(err));
	if (rc == -EINVAL) {
		call_error(c, 400, "%s", err);
		return;
	}
	if (rc == -EEXIST) {
		call_error(c, 409, "%s", err);
		return;
	}
	if (rc != 0) {
		call_error(c, 500, "%s", err);
		return;
	}
	struct ingest_job j;
	ingest_job_get(c->db, job, &j);
	struct jw w;
	jw_init(&w);
	write_job(&w, &j);
	call_json(c, 202, jw_finish(&w));
}

static void route_job(struct call *c)
{
	char *end;
	long long id = strtoll(c->params[0], &end, 10);
	struct ingest_job j;
	if (*end || id <= 0 || ingest_job_get(c->db, id, &j) != 0) {
		call_error(c, 404, "no ingest job %s", c->params[0]);
		return;
	}
	struct jw w;
	jw_init(&w);
	write_job(&w, &j);
	call_json(c, 200, jw_finish(&w));
}

const struct route ingest_routes[] = {
	{"POST", "/v1/admin/ingest", route_ingest, ROUTE_ADMIN},
	{"GET", "/v1/admin/ingest/{job}", route_job, ROUTE_ADMIN},
	{NULL, NULL, NULL, 0},
};
