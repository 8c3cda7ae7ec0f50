/* als: implicit-feedback matrix factorisation (Hu, Koren & Volinsky 2008) by alternating
 * least squares, each row solved approximately by a few conjugate-gradient steps started
 * from its previous value (as the `implicit` library does), rows spread over pthreads.
 *
 * Input is a sparse CSR matrix of interaction strengths r. A positive r is a preference
 * p = 1 with confidence 1 + alpha * r; a negative r (e.g. early skips outweighing plays) is
 * p = 0 with confidence 1 + alpha * |r|, i.e. weak negative evidence; zeros are ignored.
 * Pure computation: no I/O, no globals. */
#ifndef ENCORE_ALS_H
#define ENCORE_ALS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A read-only CSR view: row r's entries are indices/data[indptr[r] .. indptr[r+1]). */
struct als_csr {
	int rows, cols;
	const int64_t *indptr;   /* rows + 1 */
	const int32_t *indices;  /* column of each entry, < cols */
	const float *data;       /* r of each entry */
};

struct als_params {
	int factors;       /* default 64 */
	float reg;         /* L2 regularisation, default 0.01 */
	float alpha;       /* confidence scale, default 40 */
	int cg_steps;      /* CG steps per row per sweep, default 3 */
	int threads;       /* worker threads; <= 0 means 1 */
	uint64_t seed;     /* initialisation */
	bool generic;      /* force the plain any-f loops (the bench's peer and the tests' cross-check);
	                    * otherwise f = 64 (the default) takes the 16-lane kernel */
};

/* An owned CSR matrix (from als_csr_transpose / als_csr_from_triples). */
struct als_matrix {
	struct als_csr csr;
	int64_t *indptr;
	int32_t *indices;
	float *data;
};

struct als;

void als_params_defaults(struct als_params *p);
/* A model of users x items with small random factors. NULL if a dimension or factors < 1. Free with als_free. */
struct als *als_new(int users, int items, const struct als_params *p);
void als_free(struct als *a);
/* One full sweep: users from items, then items from users. ui is users x items and iu its
 * transpose. 0, or -EINVAL when the shapes do not match the model. */
int als_iterate(struct als *a, const struct als_csr *ui, const struct als_csr *iu);
/* The weighted implicit loss sum c (p - x.y)^2 + reg (|X|^2 + |Y|^2) over ALL user/item
 * pairs, computed in O(nnz f + (users + items) f^2). */
double als_loss(const struct als *a, const struct als_csr *ui);
/* Floating-point operations one als_iterate performs on a matrix with nnz entries (for GFLOP/s). */
double als_flops_per_iteration(const struct als *a, int64_t nnz);
int als_factors(const struct als *a);
int als_users(const struct als *a);
int als_items(const struct als *a);
/* Row-major factor arrays (users x factors, items x factors), owned by a, 64-byte aligned. */
const float *als_user_factors(const struct als *a);
const float *als_item_factors(const struct als *a);
float *als_user_factors_mut(struct als *a);
float *als_item_factors_mut(struct als *a);

/* Builds a CSR from n (row, col, value) triples, summing duplicates; triples outside
 * rows x cols are dropped. Free with als_matrix_free. */
void als_matrix_from_triples(struct als_matrix *m, int rows, int cols, size_t n, const int32_t *row,
			     const int32_t *col, const float *val);
/* m = transpose of src. Free with als_matrix_free. */
void als_matrix_transpose(struct als_matrix *m, const struct als_csr *src);
void als_matrix_free(struct als_matrix *m);

/* Exact top-k by dot product of query (f floats) against n row-major vectors: writes up to
 * k indices in descending score order to idx (and scores to score when non-NULL), skipping
 * rows whose exclude[] byte is non-zero (exclude may be NULL). Returns the count written. */
int als_topk(const float *query, const float *vectors, int n, int f, int k, const uint8_t *exclude, int *idx,
	     float *score);

#endif
