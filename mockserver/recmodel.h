/* recmodel: a trained, immutable recommendation model, and the batch job that makes one.
 *
 * Training reads the recommendations consumer's reco_interactions (plays weighted by
 * listening, early skips negative, saves and playlist adds strong) plus tracks users added to
 * playlists, factorises them with als.h, and computes a content vector per track from its
 * audio features and a hashed TF-IDF of the artist's genre tags, label and description. Each
 * track gets a hybrid vector [normalised CF factors | content] so one dot product gives an
 * item-item similarity that still works for tracks nobody has played (their CF half is 0).
 *
 * Models are versioned files DATA/models/recs-NNNNNN.bin (written to a temp name, fsynced,
 * renamed) with a row in reco_models; a loaded model is never modified, so readers share it. */
#ifndef ENCORE_RECMODEL_H
#define ENCORE_RECMODEL_H
#include "id.h"
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#define RECMODEL_GENRE_MAX 32

struct recmodel_item {
	char id[ID_LEN + 1];
	char genre[RECMODEL_GENRE_MAX];
	int artist;                 /* index into the model's artists */
	int popularity;
	float energy, valence, danceability, tempo;
	char release_date[11];
	bool has_cf;                /* somebody interacted with it */
};

struct recmodel_train_opts {
	int factors;       /* default 64 */
	int iterations;    /* default 15 */
	int threads;       /* default: online CPUs */
	float alpha, reg;  /* defaults 40, 0.01 */
};

struct recmodel_train_stats {
	int64_t version;
	int users, items;
	int64_t nnz;
	double train_ms, loss;
	char path[600];
};

struct recmodel;

void recmodel_train_opts_defaults(struct recmodel_train_opts *o);
/* Trains on the database at data_dir and publishes a new version. 0, or -errno with err. */
int recmodel_train(const char *data_dir, const struct recmodel_train_opts *o, struct recmodel_train_stats *st,
		   char *err, size_t errlen);
/* The newest published version and its file relative to the data directory (path may be
 * NULL), or 0 when none. */
int64_t recmodel_latest(sqlite3 *db, char *path, size_t pathlen);
/* Loads a model file; NULL with err on a missing, truncated or foreign file. Free with recmodel_free. */
struct recmodel *recmodel_load(const char *path, char *err, size_t errlen);
void recmodel_free(struct recmodel *m);

int64_t recmodel_version(const struct recmodel *m);
int64_t recmodel_created_at(const struct recmodel *m);   /* unix seconds */
int recmodel_items(const struct recmodel *m);
int recmodel_factors(const struct recmodel *m);
const struct recmodel_item *recmodel_item_at(const struct recmodel *m, int i);
const char *recmodel_artist_id(const struct recmodel *m, int a);
/* Index of a track / user / artist, or -1. */
int recmodel_item_index(const struct recmodel *m, const char *track_id);
int recmodel_user_index(const struct recmodel *m, const char *user_id);
int recmodel_artist_index(const struct recmodel *m, const char *artist_id);
/* Top k items for user u by CF score, skipping exclude[i] != 0 (may be NULL). Returns the count. */
int recmodel_for_user(const struct recmodel *m, int u, int k, const uint8_t *exclude, int *idx, float *score);
/* Top k items most similar to the weighted sum of the given items' hybrid vectors (negative
 * weights push away), skipping exclude. Returns the count. */
int recmodel_similar(const struct recmodel *m, const int *items, const float *weights, int n, int k,
		     const uint8_t *exclude, int *idx, float *score);

/* The item's hybrid vector (recmodel_dim floats: normalised CF factors | content; the CF
 * half is 0 for items nobody played), borrowed for the model's lifetime; NULL out of range. */
const float *recmodel_item_vector(const struct recmodel *m, int i);
int recmodel_dim(const struct recmodel *m);

/* Pure: k-means of n points (row-major x, dimension d) into at most k clusters, k-means++
 * seeding from a generator seeded by seed, then Lloyd iterations until no point moves (at
 * most 100). Writes assign[n] (0..returned-1) and centroids[k*d]; clusters left empty are
 * dropped and the rest renumbered. Returns the number of clusters (0 when n == 0). */
int recmodel_kmeans(const float *x, int n, int d, int k, uint64_t seed, int *assign, float *centroids);
/* Pure: the mean silhouette of a clustering (Euclidean distances; a point alone in its
 * cluster scores 0), in -1..1; 0 when k < 2. */
double recmodel_silhouette(const float *x, int n, int d, const int *assign, int k);
/* Pure: a user's taste clusters: k-means for every k in 2..kmax (at most n/2), keeping the
 * k with the best mean silhouette; 1 cluster when none reaches min_silhouette. Same outputs
 * as recmodel_kmeans; centroids needs kmax*d floats. */
int recmodel_taste_clusters(const float *x, int n, int d, int kmax, double min_silhouette, uint64_t seed,
			    int *assign, float *centroids);
/* Pure: the index of the centroid nearest to v (squared Euclidean), its squared distance in
 * *dist2 (may be NULL); -1 when k == 0. */
int recmodel_nearest(const float *v, const float *centroids, int k, int d, float *dist2);

/* Diversity re-ranking: writes to order[] a permutation prefix of 0..n-1 that keeps the
 * input's relative order as far as possible while never letting more than max_run
 * consecutive entries share artist[]. Entries that cannot be placed are dropped. Returns
 * the number written. Pure. */
int recmodel_diversify(const int *artist, int n, int max_run, int *order);

#endif
