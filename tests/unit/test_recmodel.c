/* Unit tests for recmodel: training from a small database, the versioned file, loading,
 * content similarity for tracks nobody played, and refusing damaged files. */
#include "catalog.h"
#include "db.h"
#include "recmodel.h"
#include "tap.h"
#include "xmem.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256];
static char ids[24][ID_LEN + 1];
static const char *const GENRE[3] = {"jazz", "techno", "ambient"};

/* 24 tracks: 3 genres x 2 artists x 4 tracks; users 0-5 play jazz, 6-11 techno; ambient is cold. */
static void make_db(void)
{
	if (!tap_mkdtemp(dir, sizeof(dir), "test-recmodel"))
		abort();
	sqlite3 *db;
	char err[256];
	if (db_open(dir, &db, err, sizeof(err)) != 0)
		abort();
	for (int i = 0; i < 24; i++) {
		char name[32], artist[32], album[32];
		int g = i / 8, a = i / 4;
		snprintf(name, sizeof(name), "Track %d", i);
		snprintf(artist, sizeof(artist), "%s artist %d", GENRE[g], a);
		snprintf(album, sizeof(album), "Album %d", a);
		struct catalog_track t = {.name = name, .artist_name = artist, .album_name = album, .genre = GENRE[g],
					  .label = g == 0 ? "Smoky Room" : g == 1 ? "Tresor Noir" : "Drift Editions",
					  .release_date = "2024-01-01", .markets = "", .track_number = i % 4 + 1,
					  .duration_ms = 1000, .popularity = 50};
		if (catalog_add_track(db, &t, ids[i], err, sizeof(err)) != 0)
			abort();
	}
	sqlite3_stmt *s = db_prepare(db, "INSERT INTO reco_interactions(user_id, track_id, weight, events) VALUES (?, ?, 1, 1)");
	for (int u = 0; u < 12; u++)
		for (int k = 0; k < 8; k++) {
			if (u == 0 && k == 7)
				continue;   /* user u0 has not heard jazz track 7 */
			char uid[8];
			snprintf(uid, sizeof(uid), "u%d", u);
			sqlite3_reset(s);
			sqlite3_bind_text(s, 1, uid, -1, SQLITE_TRANSIENT);
			sqlite3_bind_text(s, 2, ids[(u < 6 ? 0 : 8) + k], -1, SQLITE_STATIC);
			sqlite3_step(s);
		}
	sqlite3_finalize(s);
	db_close(db);
}

static struct recmodel *train_and_load(int64_t want_version)
{
	struct recmodel_train_opts o;
	recmodel_train_opts_defaults(&o);
	o.factors = 2;
	o.threads = 2;
	struct recmodel_train_stats st;
	char err[256] = "";
	int rc = recmodel_train(dir, &o, &st, err, sizeof(err));
	CHECK(rc == 0, "train failed: %d %s", rc, err);
	CHECK_INT(st.version, want_version);
	CHECK_INT(st.users, 12);
	CHECK_INT(st.items, 24);
	CHECK_INT(st.nnz, 95);
	sqlite3 *db;
	db_open(dir, &db, err, sizeof(err));
	char rel[600];
	CHECK_INT(recmodel_latest(db, rel, sizeof(rel)), want_version);
	db_close(db);
	char *path = xasprintf("%s/%s", dir, rel);
	struct recmodel *m = recmodel_load(path, err, sizeof(err));
	CHECK(m != NULL, "load %s: %s", path, err);
	free(path);
	return m;
}

static void test_train_publishes_numbered_versions_that_load(void)
{
	struct recmodel *m = train_and_load(1);
	if (m) {
		CHECK_INT(recmodel_version(m), 1);
		CHECK_INT(recmodel_items(m), 24);
		CHECK(recmodel_item_index(m, ids[5]) >= 0, "track 5 missing from the model");
		CHECK_INT(recmodel_user_index(m, "nobody"), -1);
	}
	recmodel_free(m);
	m = train_and_load(2);
	recmodel_free(m);
}

static void test_user_gets_the_unheard_track_of_their_taste_first(void)
{
	struct recmodel *m = train_and_load(3);
	if (!m)
		return;
	uint8_t *seen = xcalloc((size_t)recmodel_items(m), 1);
	for (int k = 0; k < 7; k++)
		seen[recmodel_item_index(m, ids[k])] = 1;
	int idx[3];
	float sc[3];
	int n = recmodel_for_user(m, recmodel_user_index(m, "u0"), 3, seen, idx, sc);
	CHECK_INT(n, 3);
	CHECK_STR(recmodel_item_at(m, idx[0])->id, ids[7]);
	free(seen);
	recmodel_free(m);
}

static void test_cold_tracks_are_similar_by_content(void)
{
	struct recmodel *m = train_and_load(4);
	if (!m)
		return;
	/* Nobody played ambient: its neighbours must still be ambient (genre tags, label, audio). */
	int seed = recmodel_item_index(m, ids[16]);
	float w = 1;
	uint8_t *ex = xcalloc((size_t)recmodel_items(m), 1);
	ex[seed] = 1;
	int idx[7];
	int n = recmodel_similar(m, &seed, &w, 1, 7, ex, idx, NULL);
	CHECK_INT(n, 7);
	for (int k = 0; k < n; k++)
		CHECK_STR(recmodel_item_at(m, idx[k])->genre, "ambient");
	CHECK(!recmodel_item_at(m, seed)->has_cf, "an unplayed track has no CF half");
	free(ex);
	recmodel_free(m);
}

static void test_damaged_files_are_refused(void)
{
	char err[256];
	char *path = xasprintf("%s/models/recs-000001.bin", dir);
	FILE *f = fopen(path, "r+b");
	CHECK(f != NULL, "open %s", path);
	if (f) {
		fseek(f, 0, SEEK_END);
		long size = ftell(f);
		fclose(f);
		CHECK(truncate(path, size - 4) == 0, "truncate");
		CHECK(recmodel_load(path, err, sizeof(err)) == NULL, "a truncated model loaded");
		CHECK(strstr(err, "size") != NULL, "expected a size complaint, got: %s", err);
	}
	f = fopen(path, "r+b");
	if (f) {
		fwrite("XXXX", 1, 4, f);
		fclose(f);
	}
	CHECK(recmodel_load(path, err, sizeof(err)) == NULL, "a foreign file loaded");
	char *missing = xasprintf("%s/models/none.bin", dir);
	CHECK(recmodel_load(missing, err, sizeof(err)) == NULL, "a missing file loaded");
	free(missing);
	free(path);
}

static float sqdist(const float *a, const float *b, int d)
{
	float s = 0;
	for (int t = 0; t < d; t++)
		s += (a[t] - b[t]) * (a[t] - b[t]);
	return s;
}

/* Deterministic noise in [-1, 1). */
static float noise(uint32_t *st)
{
	*st = *st * 1664525u + 1013904223u;
	return (float)(*st >> 8) / (float)(1u << 23) - 1.0f;
}

/* n points around centre c (dimension d) with noise of amplitude amp. */
static void around(float *x, int n, int d, const float *c, float amp, uint32_t *st)
{
	for (int i = 0; i < n; i++)
		for (int t = 0; t < d; t++)
			x[(size_t)i * d + t] = c[t] + amp * noise(st);
}

static void test_two_tastes_become_two_clusters_each_point_nearest_its_own_centroid(void)
{
	enum { N = 40, D = 16 };
	float x[N * D], ca[D] = {0}, cb[D] = {0}, cent[6 * D];
	int assign[N];
	ca[0] = 1;
	cb[1] = 1;
	uint32_t st = 7;
	around(x, N / 2, D, ca, 0.15f, &st);
	around(x + (N / 2) * D, N / 2, D, cb, 0.15f, &st);
	int k = recmodel_taste_clusters(x, N, D, 6, 0.25, 42, assign, cent);
	CHECK_INT(k, 2);
	for (int i = 1; i < N; i++)
		CHECK((assign[i] == assign[0]) == (i < N / 2), "point %d in cluster %d, point 0 in %d", i, assign[i], assign[0]);
	double own = 0, other = 0;
	for (int i = 0; i < N; i++) {
		float d2;
		int j = recmodel_nearest(x + i * D, cent, k, D, &d2);
		CHECK_INT(j, assign[i]);
		own += sqrt(d2);
		other += sqrt((double)sqdist(x + i * D, cent + (1 - assign[i]) * D, D));
	}
	CHECK(own < other / 2, "mean distance to own centroid %.3f, to the other %.3f", own / N, other / N);
	double sil = recmodel_silhouette(x, N, D, assign, k);
	CHECK(sil > 0.6, "silhouette %.3f", sil);
	printf("# two tastes: k=%d silhouette %.3f own %.3f other %.3f\n", k, sil, own / N, other / N);
	/* The same input and seed give the same clusters (so a cached day's mixes are reproducible). */
	int again[N];
	float cent2[6 * D];
	CHECK_INT(recmodel_taste_clusters(x, N, D, 6, 0.25, 42, again, cent2), 2);
	CHECK(memcmp(assign, again, sizeof(assign)) == 0, "different clusters on the same input");
}

static void test_one_taste_stays_one_mix_and_three_become_three(void)
{
	enum { N = 45, D = 16 };
	float x[N * D], c0[D] = {0}, c1[D] = {0}, c2[D] = {0}, cent[6 * D];
	int assign[N];
	uint32_t st = 11;
	c0[0] = 1;
	around(x, N, D, c0, 0.3f, &st);
	int k = recmodel_taste_clusters(x, N, D, 6, 0.25, 1, assign, cent);
	CHECK_INT(k, 1);
	c1[1] = 1;
	c2[2] = 1;
	around(x, 15, D, c0, 0.1f, &st);
	around(x + 15 * D, 15, D, c1, 0.1f, &st);
	around(x + 30 * D, 15, D, c2, 0.1f, &st);
	k = recmodel_taste_clusters(x, N, D, 6, 0.25, 1, assign, cent);
	CHECK_INT(k, 3);
	for (int i = 0; i < N; i++)
		CHECK(assign[i] == assign[i / 15 * 15], "point %d strayed from its group", i);
	CHECK_INT(recmodel_kmeans(x, 0, D, 3, 1, assign, cent), 0);
	CHECK_INT(recmodel_kmeans(x, 2, D, 6, 1, assign, cent) <= 2, 1);
}

static void test_a_listener_of_jazz_and_techno_gets_one_cluster_per_taste_from_model_vectors(void)
{
	char err[256];
	char *path = xasprintf("%s/models/recs-000001.bin", dir);
	struct recmodel *m = recmodel_load(path, err, sizeof(err));
	free(path);
	CHECK(m != NULL, "load: %s", err);
	if (!m)
		return;
	int d = recmodel_dim(m);
	float *x = xmalloc(16 * (size_t)d * sizeof(float)), *cent = xmalloc(6 * (size_t)d * sizeof(float));
	int assign[16];
	for (int i = 0; i < 16; i++)  /* tracks 0-7 jazz, 8-15 techno */
		memcpy(x + (size_t)i * d, recmodel_item_vector(m, recmodel_item_index(m, ids[i])), (size_t)d * sizeof(float));
	int k = recmodel_taste_clusters(x, 16, d, 6, 0.15, 3, assign, cent);
	CHECK(k >= 2, "one cluster for two tastes");
	for (int i = 0; i < 8; i++)
		for (int j = 8; j < 16; j++)
			CHECK(assign[i] != assign[j], "jazz track %d and techno track %d share cluster %d", i, j, assign[i]);
	printf("# jazz + techno listener: %d clusters, silhouette %.3f\n", k, recmodel_silhouette(x, 16, d, assign, k));
	free(x);
	free(cent);
	recmodel_free(m);
}

int main(void)
{
	make_db();
	RUN(test_train_publishes_numbered_versions_that_load);
	RUN(test_user_gets_the_unheard_track_of_their_taste_first);
	RUN(test_cold_tracks_are_similar_by_content);
	RUN(test_two_tastes_become_two_clusters_each_point_nearest_its_own_centroid);
	RUN(test_one_taste_stays_one_mix_and_three_become_three);
	RUN(test_a_listener_of_jazz_and_techno_gets_one_cluster_per_taste_from_model_vectors);
	RUN(test_damaged_files_are_refused);
	char *cmd = xasprintf("rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
	free(cmd);
	return TAP_DONE();
}
