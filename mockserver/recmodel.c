/* recmodel: training job, versioned model files, and the queries serving needs. */
#include "recmodel.h"
#include "als.h"
#include "db.h"
#include "eventlog.h"
#include "xmem.h"
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAGIC "ENCRECS1"
#define AUDIO_DIMS 8
#define TEXT_DIMS 48
#define CONTENT_DIMS (AUDIO_DIMS + TEXT_DIMS)
/* Weight of the CF half against the content half in hybrid vectors (both unit length). */
#define CF_WEIGHT 0.8f
#define CONTENT_WEIGHT 0.6f

/* ---- a small string -> index map (open addressing; keys are borrowed) ---- */

struct strmap {
	size_t cap;
	const char **keys;
	int *vals;
};

static uint64_t fnv(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static void strmap_init(struct strmap *m, size_t n)
{
	m->cap = 16;
	while (m->cap < n * 2 + 1)
		m->cap <<= 1;
	m->keys = xcalloc(m->cap, sizeof(*m->keys));
	m->vals = xcalloc(m->cap, sizeof(*m->vals));
}

static void strmap_free(struct strmap *m)
{
	free(m->keys);
	free(m->vals);
}

/* The value for key, or -1; with insert, adds key -> val when absent and returns val. */
static int strmap_get(struct strmap *m, const char *key, bool insert, int val)
{
	size_t i = fnv(key) & (m->cap - 1);
	while (m->keys[i]) {
		if (strcmp(m->keys[i], key) == 0)
			return m->vals[i];
		i = (i + 1) & (m->cap - 1);
	}
	if (!insert)
		return -1;
	m->keys[i] = key;
	m->vals[i] = val;
	return val;
}

struct recmodel {
	int64_t version, created_at;
	int users, items, artists, f, cd, hd;
	char (*user_ids)[ID_LEN + 1];
	char (*artist_ids)[ID_LEN + 1];
	struct recmodel_item *item;
	float *U, *V, *C, *H;
	struct strmap umap, imap, amap;
};

void recmodel_train_opts_defaults(struct recmodel_train_opts *o)
{
	o->factors = 64;
	o->iterations = 15;
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	o->threads = n > 0 ? (int)n : 1;
	o->alpha = 40;
	o->reg = 0.01f;
}

/* ---- content vectors ---- */

/* Tokens of lowercase ASCII letters/digits (other bytes split); calls fn per token. */
static void tokens(const char *s, void (*fn)(void *ctx, const char *tok), void *ctx)
{
	char tok[64];
	size_t n = 0;
	for (;; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch && (isalnum(ch) || ch >= 0x80)) {
			if (n < sizeof(tok) - 1)
				tok[n++] = (char)(ch < 0x80 ? tolower(ch) : ch);
			continue;
		}
		if (n > 1) {
			tok[n] = 0;
			fn(ctx, tok);
		}
		n = 0;
		if (!ch)
			return;
	}
}

struct text_acc {
	float tf[TEXT_DIMS];
	const float *idf;    /* NULL while counting document frequencies */
	float *df;
	uint8_t seen[TEXT_DIMS];
};

static void text_tok(void *ctx, const char *tok)
{
	struct text_acc *t = ctx;
	uint64_t h = fnv(tok);
	int b = (int)(h % TEXT_DIMS);
	if (t->idf) {
		t->tf[b] += ((h >> 32) & 1 ? 1.0f : -1.0f) * t->idf[b];
	} else if (!t->seen[b]) {
		t->seen[b] = 1;
		t->df[b] += 1;
	}
}

static void normalise(float *v, int n)
{
	double s = 0;
	for (int k = 0; k < n; k++)
		s += (double)v[k] * v[k];
	if (s <= 0)
		return;
	float inv = (float)(1.0 / sqrt(s));
	for (int k = 0; k < n; k++)
		v[k] *= inv;
}

/* Genre tags, label and description (generated when the catalog has none). */
static char *artist_text(const char *name, const char *genres, const char *label, const char *desc)
{
	if (desc && *desc)
		return xasprintf("%s %s %s", genres, label, desc);
	return xasprintf("%s %s %s music by %s on %s", genres, genres, label, name, label);
}

static void content_vectors(struct recmodel *m, char **texts)
{
	float df[TEXT_DIMS] = {0}, idf[TEXT_DIMS];
	for (int i = 0; i < m->items; i++) {
		struct text_acc t = {.df = df};
		tokens(texts[i], text_tok, &t);
	}
	for (int b = 0; b < TEXT_DIMS; b++)
		idf[b] = logf((1.0f + (float)m->items) / (1.0f + df[b])) + 1.0f;
	/* Audio features are standardised so tempo (bpm) does not drown energy (0..1). */
	double mean[4] = {0}, sq[4] = {0};
	for (int i = 0; i < m->items; i++) {
		const struct recmodel_item *it = &m->item[i];
		double v[4] = {it->energy, it->valence, it->danceability, it->tempo};
		for (int k = 0; k < 4; k++) {
			mean[k] += v[k];
			sq[k] += v[k] * v[k];
		}
	}
	for (int k = 0; k < 4; k++) {
		mean[k] /= m->items;
		sq[k] = sqrt(fmax(sq[k] / m->items - mean[k] * mean[k], 1e-6));
	}
	for (int i = 0; i < m->items; i++) {
		float *c = m->C + (size_t)i * m->cd;
		const struct recmodel_item *it = &m->item[i];
		double v[4] = {it->energy, it->valence, it->danceability, it->tempo};
		float audio[AUDIO_DIMS] = {0};
		for (int k = 0; k < 4; k++)
			audio[k] = (float)((v[k] - mean[k]) / sq[k]);
		normalise(audio, AUDIO_DIMS);
		struct text_acc t = {.idf = idf};
		tokens(texts[i], text_tok, &t);
		normalise(t.tf, TEXT_DIMS);
		for (int k = 0; k < AUDIO_DIMS; k++)
			c[k] = 0.5f * audio[k];
		for (int k = 0; k < TEXT_DIMS; k++)
			c[AUDIO_DIMS + k] = 0.85f * t.tf[k];
		normalise(c, m->cd);
	}
}

static void build_hybrid(struct recmodel *m)
{
	m->hd = m->f + m->cd;
	m->H = xcalloc((size_t)m->items * m->hd, sizeof(float));
	for (int i = 0; i < m->items; i++) {
		float *h = m->H + (size_t)i * m->hd;
		memcpy(h, m->V + (size_t)i * m->f, (size_t)m->f * sizeof(float));
		normalise(h, m->f);
		for (int k = 0; k < m->f; k++)
			h[k] *= m->item[i].has_cf ? CF_WEIGHT : 0;
		for (int k = 0; k < m->cd; k++)
			h[m->f + k] = CONTENT_WEIGHT * m->C[(size_t)i * m->cd + k];
	}
}

static void build_maps(struct recmodel *m)
{
	strmap_init(&m->umap, (size_t)m->users);
	strmap_init(&m->imap, (size_t)m->items);
	strmap_init(&m->amap, (size_t)m->artists);
	for (int u = 0; u < m->users; u++)
		strmap_get(&m->umap, m->user_ids[u], true, u);
	for (int i = 0; i < m->items; i++)
		strmap_get(&m->imap, m->item[i].id, true, i);
	for (int a = 0; a < m->artists; a++)
		strmap_get(&m->amap, m->artist_ids[a], true, a);
}

/* ---- training ---- */

struct triples {
	size_t n, cap;
	int32_t *row, *col;
	float *val;
};

static void triples_add(struct triples *t, int32_t r, int32_t c, float v)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 1024;
		t->row = xrealloc(t->row, t->cap * sizeof(int32_t));
		t->col = xrealloc(t->col, t->cap * sizeof(int32_t));
		t->val = xrealloc(t->val, t->cap * sizeof(float));
	}
	t->row[t->n] = r;
	t->col[t->n] = c;
	t->val[t->n] = v;
	t->n++;
}

static int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static int save(const struct recmodel *m, const char *path, char *err, size_t errlen)
{
	char *tmp = xasprintf("%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int rc = 0;
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		free(tmp);
		return rc;
	}
	int32_t hdr[6] = {m->users, m->items, m->artists, m->f, m->cd, (int32_t)sizeof(struct recmodel_item)};
	int64_t v[2] = {m->version, m->created_at};
	if ((rc = write_all(fd, MAGIC, 8)) || (rc = write_all(fd, v, sizeof(v))) || (rc = write_all(fd, hdr, sizeof(hdr))) ||
	    (rc = write_all(fd, m->user_ids, (size_t)m->users * (ID_LEN + 1))) ||
	    (rc = write_all(fd, m->artist_ids, (size_t)m->artists * (ID_LEN + 1))) ||
	    (rc = write_all(fd, m->item, (size_t)m->items * sizeof(struct recmodel_item))) ||
	    (rc = write_all(fd, m->U, (size_t)m->users * m->f * sizeof(float))) ||
	    (rc = write_all(fd, m->V, (size_t)m->items * m->f * sizeof(float))) ||
	    (rc = write_all(fd, m->C, (size_t)m->items * m->cd * sizeof(float))))
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(-rc));
	if (rc == 0 && fsync(fd) != 0) {
		rc = -errno;
		snprintf(err, errlen, "fsync %s: %s", tmp, strerror(errno));
	}
	close(fd);
	/* The rename is the publication: a reader sees the old file or the whole new one. */
	if (rc == 0 && rename(tmp, path) != 0) {
		rc = -errno;
		snprintf(err, errlen, "rename %s: %s", tmp, strerror(errno));
	}
	if (rc != 0)
		unlink(tmp);
	free(tmp);
	return rc;
}

static void model_free_parts(struct recmodel *m)
{
	free(m->user_ids);
	free(m->artist_ids);
	free(m->item);
	free(m->U);
	free(m->V);
	free(m->C);
	free(m->H);
	if (m->umap.keys)
		strmap_free(&m->umap);
	if (m->imap.keys)
		strmap_free(&m->imap);
	if (m->amap.keys)
		strmap_free(&m->amap);
}

static int64_t count(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s = db_prepare(db, sql);
	int64_t n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	sqlite3_finalize(s);
	return n;
}

int recmodel_train(const char *data_dir, const struct recmodel_train_opts *o, struct recmodel_train_stats *st,
		   char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	int rc = db_open(data_dir, &db, err, errlen);
	if (rc != 0)
		return rc;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* Serving reads what the consumer has derived; make sure it is current. */
	if (eventlog_catch_up(db, CONSUMER_RECOMMENDATIONS, (int64_t)time(NULL) * 1000) < 0) {
		snprintf(err, errlen, "the recommendations consumer failed to catch up");
		db_close(db);
		return -EIO;
	}
	struct recmodel m = {0};
	m.f = o->factors > 0 ? o->factors : 64;
	m.cd = CONTENT_DIMS;
	m.created_at = time(NULL);
	struct triples tr = {0};
	struct strmap umap = {0};
	char **texts = NULL;
	sqlite3_stmt *s;

	/* Items: every ready track, cold ones included (content vectors cover them). */
	size_t cap = 256;
	m.item = xcalloc(cap, sizeof(*m.item));
	m.artist_ids = xcalloc(cap, ID_LEN + 1);
	texts = xcalloc(cap, sizeof(char *));
	struct strmap amap;
	strmap_init(&amap, (size_t)count(db, "SELECT count(*) FROM artists") + 1);
	s = db_prepare(db, "SELECT t.id, t.artist_id, t.genre, t.popularity, coalesce(f.energy, 0.5),"
			   " coalesce(f.valence, 0.5), coalesce(f.danceability, 0.5), coalesce(f.tempo, 110),"
			   " al.release_date, ar.name, ar.genres, ar.label, ar.description"
			   " FROM tracks t JOIN artists ar ON ar.id = t.artist_id JOIN albums al ON al.id = t.album_id"
			   " LEFT JOIN audio_features f ON f.track_id = t.id WHERE t.state = 'ready' ORDER BY t.id");
	size_t acap = cap;
	char **akeys = xcalloc(acap, sizeof(char *));
	while (sqlite3_step(s) == SQLITE_ROW) {
		if ((size_t)m.items == cap) {
			cap *= 2;
			m.item = xrealloc(m.item, cap * sizeof(*m.item));
			texts = xrealloc(texts, cap * sizeof(char *));
		}
		struct recmodel_item *it = &m.item[m.items];
		memset(it, 0, sizeof(*it));
		snprintf(it->id, sizeof(it->id), "%s", (const char *)sqlite3_column_text(s, 0));
		const char *aid = (const char *)sqlite3_column_text(s, 1);
		snprintf(it->genre, sizeof(it->genre), "%s", (const char *)sqlite3_column_text(s, 2));
		it->popularity = sqlite3_column_int(s, 3);
		it->energy = (float)sqlite3_column_double(s, 4);
		it->valence = (float)sqlite3_column_double(s, 5);
		it->danceability = (float)sqlite3_column_double(s, 6);
		it->tempo = (float)sqlite3_column_double(s, 7);
		snprintf(it->release_date, sizeof(it->release_date), "%s", (const char *)sqlite3_column_text(s, 8));
		int a = strmap_get(&amap, aid, false, 0);
		if (a < 0) {
			if ((size_t)m.artists == acap) {
				acap *= 2;
				m.artist_ids = xrealloc(m.artist_ids, acap * (ID_LEN + 1));
				akeys = xrealloc(akeys, acap * sizeof(char *));
			}
			a = m.artists++;
			snprintf(m.artist_ids[a], ID_LEN + 1, "%s", aid);
			akeys[a] = xstrdup(aid);   /* the map borrows keys, and artist_ids moves */
			strmap_get(&amap, akeys[a], true, a);
		}
		it->artist = a;
		texts[m.items] = artist_text((const char *)sqlite3_column_text(s, 9), (const char *)sqlite3_column_text(s, 10),
					     (const char *)sqlite3_column_text(s, 11), (const char *)sqlite3_column_text(s, 12));
		m.items++;
	}
	sqlite3_finalize(s);
	strmap_free(&amap);
	for (int k = 0; k < m.artists; k++)
		free(akeys[k]);
	free(akeys);
	if (m.items == 0) {
		snprintf(err, errlen, "the catalog has no ready tracks");
		rc = -ENOENT;
		goto out;
	}
	strmap_init(&m.imap, (size_t)m.items);
	for (int i = 0; i < m.items; i++)
		strmap_get(&m.imap, m.item[i].id, true, i);

	/* Interactions: the consumer's weights, plus one unit per track a user put in a playlist. */
	size_t ucap = 256;
	m.user_ids = xcalloc(ucap, ID_LEN + 1);
	/* Rows bound the distinct users from above, so the map never fills. */
	strmap_init(&umap, (size_t)count(db, "SELECT (SELECT count(*) FROM reco_interactions) + (SELECT count(*) FROM playlist_ops)") + 1);
	s = db_prepare(db, "SELECT user_id, track_id, weight FROM reco_interactions"
			   " UNION ALL SELECT o.added_by, substr(o.uri, 14), 1.0 FROM playlist_ops o"
			   " WHERE o.kind = 1 AND o.added_by IS NOT NULL AND o.uri LIKE 'encore:track:%'");
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *uid = (const char *)sqlite3_column_text(s, 0);
		const char *tid = (const char *)sqlite3_column_text(s, 1);
		float w = (float)sqlite3_column_double(s, 2);
		int i = uid && tid ? strmap_get(&m.imap, tid, false, 0) : -1;
		if (i < 0 || w == 0 || strlen(uid) > ID_LEN)
			continue;
		if ((size_t)m.users == ucap) {
			ucap *= 2;
			m.user_ids = xrealloc(m.user_ids, ucap * (ID_LEN + 1));
			/* The map borrows the keys: rebuild it over the moved array. */
			size_t mcap = umap.cap;
			strmap_free(&umap);
			strmap_init(&umap, mcap / 2);
			for (int u = 0; u < m.users; u++)
				strmap_get(&umap, m.user_ids[u], true, u);
		}
		snprintf(m.user_ids[m.users], ID_LEN + 1, "%s", uid);
		int u = strmap_get(&umap, m.user_ids[m.users], true, m.users);
		if (u == m.users)
			m.users++;
		triples_add(&tr, u, i, w);
		m.item[i].has_cf = true;
	}
	sqlite3_finalize(s);
	strmap_free(&m.imap);
	m.imap = (struct strmap){0};

	if (m.users == 0) {
		/* No history yet: a model of content vectors only still serves similarity. */
		m.user_ids = xrealloc(m.user_ids, ID_LEN + 1);
	}
	struct als_matrix ui, iu;
	als_matrix_from_triples(&ui, m.users ? m.users : 1, m.items, tr.n, tr.row, tr.col, tr.val);
	als_matrix_transpose(&iu, &ui.csr);
	struct als_params ap;
	als_params_defaults(&ap);
	ap.factors = m.f;
	ap.alpha = o->alpha;
	ap.reg = o->reg;
	ap.threads = o->threads;
	struct als *a = als_new(m.users ? m.users : 1, m.items, &ap);
	double loss = 0;
	if (m.users)
		for (int it = 0; it < o->iterations; it++)
			als_iterate(a, &ui.csr, &iu.csr);
	loss = m.users ? als_loss(a, &ui.csr) : 0;
	m.U = xmalloc((size_t)(m.users ? m.users : 1) * m.f * sizeof(float));
	m.V = xmalloc((size_t)m.items * m.f * sizeof(float));
	memcpy(m.U, als_user_factors(a), (size_t)(m.users ? m.users : 1) * m.f * sizeof(float));
	memcpy(m.V, als_item_factors(a), (size_t)m.items * m.f * sizeof(float));
	int64_t nnz = ui.csr.indptr[ui.csr.rows];
	als_free(a);
	als_matrix_free(&ui);
	als_matrix_free(&iu);
	m.C = xcalloc((size_t)m.items * m.cd, sizeof(float));
	content_vectors(&m, texts);

	char dir[512], path[600];
	snprintf(dir, sizeof(dir), "%s/models", data_dir);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		rc = -errno;
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		goto out;
	}
	/* The version is taken and published under the write lock so two trainers cannot collide. */
	if (db_begin(db) != 0) {
		rc = -EIO;
		snprintf(err, errlen, "cannot begin a transaction");
		goto out;
	}
	m.version = recmodel_latest(db, NULL, 0) + 1;
	snprintf(path, sizeof(path), "%s/recs-%06lld.bin", dir, (long long)m.version);
	rc = save(&m, path, err, errlen);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	if (rc == 0) {
		s = db_prepare(db, "INSERT INTO reco_models(version, path, created_at, users, items, nnz, factors, train_ms, loss)"
				   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
		sqlite3_bind_int64(s, 1, m.version);
		/* Relative to the data directory, so a copied or moved directory still works. */
		sqlite3_bind_text(s, 2, path + strlen(data_dir) + 1, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 3, m.created_at);
		sqlite3_bind_int(s, 4, m.users);
		sqlite3_bind_int(s, 5, m.items);
		sqlite3_bind_int64(s, 6, nnz);
		sqlite3_bind_int(s, 7, m.f);
		sqlite3_bind_double(s, 8, ms);
		sqlite3_bind_double(s, 9, loss);
		if (sqlite3_step(s) != SQLITE_DONE) {
			rc = -EIO;
			snprintf(err, errlen, "cannot record the model: %s", sqlite3_errmsg(db));
		}
		sqlite3_finalize(s);
	}
	if (rc == 0 && db_commit(db) != 0)
		rc = -EIO;
	if (rc != 0) {
		db_rollback(db);
		unlink(path);
	} else if (st) {
		*st = (struct recmodel_train_stats){.version = m.version, .users = m.users, .items = m.items, .nnz = nnz,
						    .train_ms = ms, .loss = loss};
		snprintf(st->path, sizeof(st->path), "%s", path);
	}
out:
	if (texts)
		for (int i = 0; i < m.items; i++)
			free(texts[i]);
	free(texts);
	free(tr.row);
	free(tr.col);
	free(tr.val);
	if (umap.keys)
		strmap_free(&umap);
	model_free_parts(&m);
	db_close(db);
	return rc;
}

int64_t recmodel_latest(sqlite3 *db, char *path, size_t pathlen)
{
	int64_t v = 0;
	sqlite3_stmt *s = db_prepare(db, "SELECT version, path FROM reco_models ORDER BY version DESC LIMIT 1");
	if (sqlite3_step(s) == SQLITE_ROW) {
		v = sqlite3_column_int64(s, 0);
		if (path)
			snprintf(path, pathlen, "%s", (const char *)sqlite3_column_text(s, 1));
	}
	sqlite3_finalize(s);
	return v;
}

static int read_all(FILE *f, void *p, size_t n)
{
	return n == 0 || fread(p, 1, n, f) == n ? 0 : -EIO;
}

struct recmodel *recmodel_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	struct recmodel *m = xcalloc(1, sizeof(*m));
	char magic[8];
	int64_t v[2];
	int32_t hdr[6];
	if (read_all(f, magic, 8) || memcmp(magic, MAGIC, 8) || read_all(f, v, sizeof(v)) || read_all(f, hdr, sizeof(hdr)) ||
	    hdr[0] < 0 || hdr[1] < 1 || hdr[2] < 1 || hdr[3] < 1 || hdr[3] > 1024 || hdr[4] != CONTENT_DIMS ||
	    hdr[5] != (int32_t)sizeof(struct recmodel_item)) {
		snprintf(err, errlen, "%s: not a recommendation model of this build", path);
		goto fail;
	}
	/* The header must describe exactly the file's size, so a corrupt count cannot make us
	 * allocate gigabytes (out-of-memory aborts) before the short read is noticed. */
	struct stat sb;
	uint64_t want = 8 + sizeof(v) + sizeof(hdr) + ((uint64_t)hdr[0] + (uint64_t)hdr[2]) * (ID_LEN + 1) +
			(uint64_t)hdr[1] * sizeof(struct recmodel_item) +
			((uint64_t)hdr[0] + (uint64_t)hdr[1]) * (uint64_t)hdr[3] * sizeof(float) +
			(uint64_t)hdr[1] * (uint64_t)hdr[4] * sizeof(float);
	if (fstat(fileno(f), &sb) != 0 || (uint64_t)sb.st_size != want) {
		snprintf(err, errlen, "%s: size does not match its header", path);
		goto fail;
	}
	m->version = v[0];
	m->created_at = v[1];
	m->users = hdr[0];
	m->items = hdr[1];
	m->artists = hdr[2];
	m->f = hdr[3];
	m->cd = hdr[4];
	size_t ur = (size_t)(m->users ? m->users : 1);
	m->user_ids = xcalloc(ur, ID_LEN + 1);
	m->artist_ids = xcalloc((size_t)m->artists, ID_LEN + 1);
	m->item = xcalloc((size_t)m->items, sizeof(*m->item));
	m->U = xcalloc(ur * m->f, sizeof(float));
	m->V = xcalloc((size_t)m->items * m->f, sizeof(float));
	m->C = xcalloc((size_t)m->items * m->cd, sizeof(float));
	if (read_all(f, m->user_ids, (size_t)m->users * (ID_LEN + 1)) ||
	    read_all(f, m->artist_ids, (size_t)m->artists * (ID_LEN + 1)) ||
	    read_all(f, m->item, (size_t)m->items * sizeof(*m->item)) ||
	    read_all(f, m->U, (size_t)m->users * m->f * sizeof(float)) ||
	    read_all(f, m->V, (size_t)m->items * m->f * sizeof(float)) ||
	    read_all(f, m->C, (size_t)m->items * m->cd * sizeof(float))) {
		snprintf(err, errlen, "%s: truncated", path);
		goto fail;
	}
	for (int i = 0; i < m->items; i++) {
		m->item[i].id[ID_LEN] = 0;
		m->item[i].genre[RECMODEL_GENRE_MAX - 1] = 0;
		m->item[i].release_date[10] = 0;
		if (m->item[i].artist < 0 || m->item[i].artist >= m->artists) {
			snprintf(err, errlen, "%s: corrupt item %d", path, i);
			goto fail;
		}
	}
	for (int u = 0; u < m->users; u++)
		m->user_ids[u][ID_LEN] = 0;
	for (int a = 0; a < m->artists; a++)
		m->artist_ids[a][ID_LEN] = 0;
	fclose(f);
	build_hybrid(m);
	build_maps(m);
	return m;
fail:
	fclose(f);
	recmodel_free(m);
	return NULL;
}

void recmodel_free(struct recmodel *m)
{
	if (!m)
		return;
	model_free_parts(m);
	free(m);
}

int64_t recmodel_version(const struct recmodel *m) { return m->version; }
int64_t recmodel_created_at(const struct recmodel *m) { return m->created_at; }
int recmodel_items(const struct recmodel *m) { return m->items; }
int recmodel_factors(const struct recmodel *m) { return m->f; }

const struct recmodel_item *recmodel_item_at(const struct recmodel *m, int i)
{
	return i >= 0 && i < m->items ? &m->item[i] : NULL;
}

const char *recmodel_artist_id(const struct recmodel *m, int a)
{
	return a >= 0 && a < m->artists ? m->artist_ids[a] : NULL;
}

int recmodel_item_index(const struct recmodel *m, const char *id)
{
	return strmap_get((struct strmap *)&m->imap, id, false, 0);
}

int recmodel_user_index(const struct recmodel *m, const char *id)
{
	return strmap_get((struct strmap *)&m->umap, id, false, 0);
}

int recmodel_artist_index(const struct recmodel *m, const char *id)
{
	return strmap_get((struct strmap *)&m->amap, id, false, 0);
}

int recmodel_for_user(const struct recmodel *m, int u, int k, const uint8_t *exclude, int *idx, float *score)
{
	if (u < 0 || u >= m->users)
		return 0;
	return als_topk(m->U + (size_t)u * m->f, m->V, m->items, m->f, k, exclude, idx, score);
}

int recmodel_similar(const struct recmodel *m, const int *items, const float *weights, int n, int k,
		     const uint8_t *exclude, int *idx, float *score)
{
	float *q = xcalloc((size_t)m->hd, sizeof(float));
	for (int j = 0; j < n; j++) {
		if (items[j] < 0 || items[j] >= m->items)
			continue;
		const float *h = m->H + (size_t)items[j] * m->hd;
		for (int d = 0; d < m->hd; d++)
			q[d] += weights[j] * h[d];
	}
	int got = als_topk(q, m->H, m->items, m->hd, k, exclude, idx, score);
	free(q);
	return got;
}

int recmodel_diversify(const int *artist, int n, int max_run, int *order)
{
	uint8_t *used = xcalloc((size_t)(n ? n : 1), 1);
	int out = 0;
	for (;;) {
		int pick = -1;
		for (int i = 0; i < n && pick < 0; i++) {
			if (used[i])
				continue;
			int run = 0;
			for (int j = out - 1; j >= 0 && artist[order[j]] == artist[i]; j--)
				run++;
			if (run < max_run)
				pick = i;
		}
		if (pick < 0)
			break;
		used[pick] = 1;
		order[out++] = pick;
	}
	free(used);
	return out;
}

const float *recmodel_item_vector(const struct recmodel *m, int i)
{
	return i >= 0 && i < m->items ? m->H + (size_t)i * m->hd : NULL;
}

int recmodel_dim(const struct recmodel *m)
{
	return m->hd;
}

static float dist2(const float *a, const float *b, int d)
{
	float s = 0;
	for (int k = 0; k < d; k++) {
		float t = a[k] - b[k];
		s += t * t;
	}
	return s;
}

/* splitmix64: a tiny deterministic generator, so the same user gets the same clusters. */
static uint64_t mix64(uint64_t *st)
{
	uint64_t z = (*st += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

int recmodel_nearest(const float *v, const float *centroids, int k, int d, float *d2)
{
	int best = -1;
	float bd = 0;
	for (int j = 0; j < k; j++) {
		float t = dist2(v, centroids + (size_t)j * d, d);
		if (best < 0 || t < bd) {
			best = j;
			bd = t;
		}
	}
	if (d2)
		*d2 = bd;
	return best;
}

int recmodel_kmeans(const float *x, int n, int d, int k, uint64_t seed, int *assign, float *centroids)
{
	if (n <= 0 || k <= 0)
		return 0;
	if (k > n)
		k = n;
	uint64_t rng = seed;
	float *near = xmalloc((size_t)n * sizeof(float));
	/* k-means++: each next centre drawn with probability proportional to the squared
	 * distance from the nearest chosen one, so distinct tastes get their own seed. */
	int first = (int)(mix64(&rng) % (uint64_t)n);
	memcpy(centroids, x + (size_t)first * d, (size_t)d * sizeof(float));
	for (int i = 0; i < n; i++)
		near[i] = dist2(x + (size_t)i * d, centroids, d);
	int have = 1;
	for (; have < k; have++) {
		double total = 0;
		for (int i = 0; i < n; i++)
			total += near[i];
		if (total <= 0)
			break;  /* every point sits on a centre: fewer distinct points than k */
		double r = (double)(mix64(&rng) >> 11) / (double)(1ULL << 53) * total;
		int pick = n - 1;
		for (int i = 0; i < n; i++) {
			r -= near[i];
			if (r < 0) {
				pick = i;
				break;
			}
		}
		float *c = centroids + (size_t)have * d;
		memcpy(c, x + (size_t)pick * d, (size_t)d * sizeof(float));
		for (int i = 0; i < n; i++) {
			float t = dist2(x + (size_t)i * d, c, d);
			if (t < near[i])
				near[i] = t;
		}
	}
	k = have;
	for (int i = 0; i < n; i++)
		assign[i] = -1;
	int *count = xcalloc((size_t)k, sizeof(int));
	for (int it = 0; it < 100; it++) {
		bool moved = false;
		for (int i = 0; i < n; i++) {
			int j = recmodel_nearest(x + (size_t)i * d, centroids, k, d, NULL);
			if (j != assign[i]) {
				assign[i] = j;
				moved = true;
			}
		}
		if (!moved)
			break;
		memset(count, 0, (size_t)k * sizeof(int));
		for (int i = 0; i < n; i++)
			count[assign[i]]++;
		for (int j = 0; j < k; j++)
			if (count[j])
				memset(centroids + (size_t)j * d, 0, (size_t)d * sizeof(float));
		for (int i = 0; i < n; i++) {
			float *c = centroids + (size_t)assign[i] * d;
			for (int t = 0; t < d; t++)
				c[t] += x[(size_t)i * d + t];
		}
		for (int j = 0; j < k; j++)
			for (int t = 0; count[j] && t < d; t++)
				centroids[(size_t)j * d + t] /= (float)count[j];
	}
	/* Drop empty clusters, renumbering the rest in order. */
	memset(count, 0, (size_t)k * sizeof(int));
	for (int i = 0; i < n; i++)
		count[assign[i]]++;
	int *renum = xmalloc((size_t)k * sizeof(int));
	int out = 0;
	for (int j = 0; j < k; j++) {
		renum[j] = count[j] ? out : -1;
		if (count[j]) {
			if (out != j)
				memmove(centroids + (size_t)out * d, centroids + (size_t)j * d, (size_t)d * sizeof(float));
			out++;
		}
	}
	for (int i = 0; i < n; i++)
		assign[i] = renum[assign[i]];
	free(renum);
	free(count);
	free(near);
	return out;
}

double recmodel_silhouette(const float *x, int n, int d, const int *assign, int k)
{
	if (k < 2 || n < 2)
		return 0;
	double *sum = xmalloc((size_t)k * sizeof(double));
	int *size = xcalloc((size_t)k, sizeof(int));
	for (int i = 0; i < n; i++)
		size[assign[i]]++;
	double total = 0;
	for (int i = 0; i < n; i++) {
		if (size[assign[i]] < 2)
			continue;  /* a singleton scores 0 */
		memset(sum, 0, (size_t)k * sizeof(double));
		for (int j = 0; j < n; j++)
			if (j != i)
				sum[assign[j]] += sqrt((double)dist2(x + (size_t)i * d, x + (size_t)j * d, d));
		double a = sum[assign[i]] / (size[assign[i]] - 1), b = -1;
		for (int c = 0; c < k; c++)
			if (c != assign[i] && size[c] && (b < 0 || sum[c] / size[c] < b))
				b = sum[c] / size[c];
		double mx = a > b ? a : b;
		if (b >= 0 && mx > 0)
			total += (b - a) / mx;
	}
	free(sum);
	free(size);
	return total / n;
}

int recmodel_taste_clusters(const float *x, int n, int d, int kmax, double min_silhouette, uint64_t seed,
			    int *assign, float *centroids)
{
	if (n <= 0)
		return 0;
	if (kmax > n / 2)
		kmax = n / 2;
	int best = 0;
	double best_s = min_silhouette;
	int *a = xmalloc((size_t)n * sizeof(int));
	float *c = xmalloc((size_t)(kmax > 1 ? kmax : 1) * d * sizeof(float));
	for (int k = 2; k <= kmax; k++) {
		int got = recmodel_kmeans(x, n, d, k, seed + (uint64_t)k, a, c);
		double s = recmodel_silhouette(x, n, d, a, got);
		if (got >= 2 && s > best_s) {
			best_s = s;
			best = got;
			memcpy(assign, a, (size_t)n * sizeof(int));
			memcpy(centroids, c, (size_t)got * d * sizeof(float));
		}
	}
	free(a);
	free(c);
	if (best)
		return best;
	/* One taste: the mean of everything. */
	memset(centroids, 0, (size_t)d * sizeof(float));
	for (int i = 0; i < n; i++) {
		assign[i] = 0;
		for (int t = 0; t < d; t++)
			centroids[t] += x[(size_t)i * d + t] / (float)n;
	}
	return 1;
}
