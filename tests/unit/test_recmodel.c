/* Unit tests for recmodel: training from a small database, the versioned file, loading,
 * content similarity for tracks nobody played, and refusing damaged files. */
#include "catalog.h"
#include "db.h"
#include "recmodel.h"
#include "tap.h"
#include "xmem.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static char ids[24][ID_LEN + 1];
static const char *const GENRE[3] = {"jazz", "techno", "ambient"};

/* 24 tracks: 3 genres x 2 artists x 4 tracks; users 0-5 play jazz, 6-11 techno; ambient is cold. */
static void make_db(void)
{
	snprintf(dir, sizeof(dir), "/tmp/test-recmodel-XXXXXX");
	if (!mkdtemp(dir))
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

int main(void)
{
	make_db();
	RUN(test_train_publishes_numbered_versions_that_load);
	RUN(test_user_gets_the_unheard_track_of_their_taste_first);
	RUN(test_cold_tracks_are_similar_by_content);
	RUN(test_damaged_files_are_refused);
	char *cmd = xasprintf("rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
	free(cmd);
	return TAP_DONE();
}
