/* Unit tests for als: implicit ALS with CG, CSR helpers and exact top-k. */
#include "als.h"
#include "recmodel.h"
#include "tap.h"
#include "xmem.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Planted structure: users and items split into G groups; user u touches a pseudo-random
 * 60% of the items of its own group and nothing else. Returns triples in *out. */
struct planted {
	int users, items, groups;
	size_t n;
	int32_t *row, *col;
	float *val;
};

static uint64_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return *s >> 33;
}

static void planted_make(struct planted *p, int users, int items, int groups, uint64_t seed)
{
	p->users = users;
	p->items = items;
	p->groups = groups;
	p->n = 0;
	size_t cap = (size_t)users * items;
	p->row = xmalloc(cap * sizeof(int32_t));
	p->col = xmalloc(cap * sizeof(int32_t));
	p->val = xmalloc(cap * sizeof(float));
	for (int u = 0; u < users; u++)
		for (int i = 0; i < items; i++)
			if (u % groups == i % groups && lcg(&seed) % 10 < 6) {
				p->row[p->n] = u;
				p->col[p->n] = i;
				p->val[p->n] = 1.0f + (float)(lcg(&seed) % 3);
				p->n++;
			}
}

static void planted_free(struct planted *p)
{
	free(p->row);
	free(p->col);
	free(p->val);
}

static void test_loss_decreases_every_iteration(void)
{
	struct planted pl;
	planted_make(&pl, 60, 40, 3, 1);
	struct als_matrix ui, iu;
	als_matrix_from_triples(&ui, pl.users, pl.items, pl.n, pl.row, pl.col, pl.val);
	als_matrix_transpose(&iu, &ui.csr);
	struct als_params p;
	als_params_defaults(&p);
	p.factors = 8;
	p.threads = 2;
	struct als *a = als_new(pl.users, pl.items, &p);
	double first = als_loss(a, &ui.csr), prev = first;
	for (int it = 0; it < 8; it++) {
		CHECK_INT(als_iterate(a, &ui.csr, &iu.csr), 0);
		double l = als_loss(a, &ui.csr);
		CHECK(l <= prev * (1 + 1e-4), "iteration %d: loss rose from %g to %g", it, prev, l);
		prev = l;
	}
	CHECK(prev < first * 0.5, "expected loss to at least halve, from %g got %g", first, prev);
	als_free(a);
	als_matrix_free(&ui);
	als_matrix_free(&iu);
	planted_free(&pl);
}

static void test_recommends_unseen_items_from_the_users_own_group(void)
{
	struct planted pl;
	planted_make(&pl, 90, 60, 3, 7);
	struct als_matrix ui, iu;
	als_matrix_from_triples(&ui, pl.users, pl.items, pl.n, pl.row, pl.col, pl.val);
	als_matrix_transpose(&iu, &ui.csr);
	struct als_params p;
	als_params_defaults(&p);
	p.factors = 6;
	p.reg = 0.1f;
	p.threads = 3;
	struct als *a = als_new(pl.users, pl.items, &p);
	for (int it = 0; it < 10; it++)
		als_iterate(a, &ui.csr, &iu.csr);
	uint8_t *seen = xcalloc((size_t)pl.items, 1);
	int wrong = 0, total = 0;
	for (int u = 0; u < pl.users; u++) {
		memset(seen, 0, (size_t)pl.items);
		for (int64_t t = ui.csr.indptr[u]; t < ui.csr.indptr[u + 1]; t++)
			seen[ui.csr.indices[t]] = 1;
		/* Ask for no more than the user's own group still has unseen. */
		int avail = 0;
		for (int i = 0; i < pl.items; i++)
			avail += !seen[i] && i % pl.groups == u % pl.groups;
		int want = avail < 5 ? avail : 5, idx[5];
		int n = als_topk(als_user_factors(a) + (size_t)u * p.factors, als_item_factors(a), pl.items, p.factors, want, seen, idx, NULL);
		CHECK_INT(n, want);
		for (int k = 0; k < n; k++) {
			CHECK(!seen[idx[k]], "user %d was recommended seen item %d", u, idx[k]);
			wrong += idx[k] % pl.groups != u % pl.groups;
			total++;
		}
	}
	CHECK(total > pl.users * 4, "expected most users to get 5 recommendations, got %d in all", total);
	CHECK_INT(wrong, 0);
	free(seen);
	als_free(a);
	als_matrix_free(&ui);
	als_matrix_free(&iu);
	planted_free(&pl);
}

static void test_negative_weights_push_an_item_down(void)
{
	/* Users 1 and 2 like items 0..3 alike; user 0 likes 0 and 1 and skipped 3 hard, so for
	 * user 0 item 3 must score below its otherwise identical twin, item 2. */
	int32_t row[] = {0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2};
	int32_t col[] = {0, 1, 3, 0, 1, 2, 3, 0, 1, 2, 3};
	float val[] = {3, 3, -3, 3, 3, 3, 3, 3, 3, 3, 3};
	struct als_matrix ui, iu;
	als_matrix_from_triples(&ui, 3, 5, 11, row, col, val);
	als_matrix_transpose(&iu, &ui.csr);
	struct als_params p;
	als_params_defaults(&p);
	p.factors = 1;   /* too few to memorise: the skip must generalise through the factors */
	p.reg = 0.1f;
	struct als *a = als_new(3, 5, &p);
	for (int it = 0; it < 15; it++)
		als_iterate(a, &ui.csr, &iu.csr);
	const float *U = als_user_factors(a), *V = als_item_factors(a);
	float s2 = U[0] * V[2], s3 = U[0] * V[3];
	CHECK(s2 > s3 + 0.1f, "expected unseen item 2 (%g) well above skipped item 3 (%g)", s2, s3);
	als_free(a);
	als_matrix_free(&ui);
	als_matrix_free(&iu);
}

static void test_threads_give_the_same_factors_as_one_thread(void)
{
	struct planted pl;
	planted_make(&pl, 200, 80, 4, 3);
	struct als_matrix ui, iu;
	als_matrix_from_triples(&ui, pl.users, pl.items, pl.n, pl.row, pl.col, pl.val);
	als_matrix_transpose(&iu, &ui.csr);
	struct als_params p;
	als_params_defaults(&p);
	p.factors = 8;
	struct als *one = als_new(pl.users, pl.items, &p);
	p.threads = 4;
	struct als *four = als_new(pl.users, pl.items, &p);
	for (int it = 0; it < 3; it++) {
		als_iterate(one, &ui.csr, &iu.csr);
		als_iterate(four, &ui.csr, &iu.csr);
	}
	double maxd = 0;
	for (size_t i = 0; i < (size_t)pl.items * 8; i++)
		maxd = fmax(maxd, fabs(als_item_factors(one)[i] - als_item_factors(four)[i]));
	CHECK(maxd < 1e-3, "expected factors within 1e-3, max difference %g", maxd);
	als_free(one);
	als_free(four);
	als_matrix_free(&ui);
	als_matrix_free(&iu);
	planted_free(&pl);
}

/* The 16-lane f = 64 kernel solves the same equations as the plain loops: rows longer than
 * its entry blocks, odd lengths, skips (negative r) and zero entries, several threads. */
static void test_vector_kernel_matches_the_generic_loops_at_64_factors(void)
{
	struct planted pl;
	planted_make(&pl, 401, 203, 2, 11);
	for (size_t t = 0; t < pl.n; t++) {
		if (t % 7 == 3)
			pl.val[t] = -2;
		else if (t % 13 == 5)
			pl.val[t] = 0;
	}
	struct als_matrix ui, iu;
	als_matrix_from_triples(&ui, pl.users, pl.items, pl.n, pl.row, pl.col, pl.val);
	als_matrix_transpose(&iu, &ui.csr);
	int64_t longest = 0;
	for (int i = 0; i < pl.items; i++)
		if (iu.csr.indptr[i + 1] - iu.csr.indptr[i] > longest)
			longest = iu.csr.indptr[i + 1] - iu.csr.indptr[i];
	CHECK(longest > 96, "expected item rows longer than one 96-entry block, longest %lld", (long long)longest);
	struct als_params p;
	als_params_defaults(&p);
	CHECK(!p.generic, "expected the defaults to pick the vector kernel, got generic = %d", p.generic);
	p.factors = 64;
	p.threads = 2;
	struct als *fast = als_new(pl.users, pl.items, &p);
	p.generic = true;
	struct als *plain = als_new(pl.users, pl.items, &p);
	double before = als_loss(fast, &ui.csr);
	for (int it = 0; it < 3; it++) {
		CHECK_INT(als_iterate(fast, &ui.csr, &iu.csr), 0);
		CHECK_INT(als_iterate(plain, &ui.csr, &iu.csr), 0);
	}
	double maxd = 0, maxv = 0;
	for (size_t i = 0; i < (size_t)pl.users * 64; i++) {
		maxd = fmax(maxd, fabs(als_user_factors(fast)[i] - als_user_factors(plain)[i]));
		maxv = fmax(maxv, fabs(als_user_factors(plain)[i]));
	}
	for (size_t i = 0; i < (size_t)pl.items * 64; i++) {
		maxd = fmax(maxd, fabs(als_item_factors(fast)[i] - als_item_factors(plain)[i]));
		maxv = fmax(maxv, fabs(als_item_factors(plain)[i]));
	}
	CHECK(maxv > 0.05, "expected factors to grow from their small start, largest %g", maxv);
	CHECK(maxd < 1e-3 * maxv, "expected factors within 1e-3 of the largest (%g), max difference %g", maxv, maxd);
	double lf = als_loss(fast, &ui.csr), lp = als_loss(plain, &ui.csr);
	CHECK(lf < before * 0.5, "expected the loss to at least halve, from %g got %g", before, lf);
	CHECK(fabs(lf - lp) < 1e-4 * lp, "expected the same loss, got %g (vector) and %g (generic)", lf, lp);
	CHECK((uintptr_t)als_user_factors(fast) % 64 == 0 && (uintptr_t)als_item_factors(fast) % 64 == 0,
	      "expected 64-byte aligned factor arrays");
	als_free(fast);
	als_free(plain);
	als_matrix_free(&ui);
	als_matrix_free(&iu);
	planted_free(&pl);
}

static void test_csr_from_triples_sums_duplicates_and_transposes(void)
{
	int32_t row[] = {1, 0, 1, 1, 5};
	int32_t col[] = {2, 1, 0, 2, 0};
	float val[] = {1, 4, 2, 3, 9};
	struct als_matrix m, t;
	als_matrix_from_triples(&m, 2, 3, 5, row, col, val);
	CHECK_INT(m.csr.indptr[2], 3);   /* (5,0) is out of range, (1,2) twice merged */
	CHECK_INT(m.csr.indices[0], 1);
	CHECK_INT(m.csr.indices[1], 0);
	CHECK_INT(m.csr.indices[2], 2);
	CHECK(m.csr.data[2] == 4.0f, "expected merged 4, got %g", m.csr.data[2]);
	als_matrix_transpose(&t, &m.csr);
	CHECK_INT(t.csr.rows, 3);
	CHECK_INT(t.csr.indptr[3], 3);
	CHECK_INT(t.csr.indptr[1] - t.csr.indptr[0], 1);   /* column 0 holds only row 1 */
	CHECK_INT(t.csr.indices[t.csr.indptr[2]], 1);
	als_matrix_free(&m);
	als_matrix_free(&t);
}

static int cmp_desc(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

static void test_topk_matches_a_full_sort_and_honours_exclusions(void)
{
	enum { N = 1000, F = 16, K = 10 };
	float *v = xmalloc(N * F * sizeof(float)), q[F], all[N];
	uint64_t s = 99;
	for (int i = 0; i < N * F; i++)
		v[i] = (float)(lcg(&s) % 2001) / 1000.0f - 1.0f;
	for (int k = 0; k < F; k++)
		q[k] = (float)(lcg(&s) % 2001) / 1000.0f - 1.0f;
	uint8_t ex[N] = {0};
	int best = 0;
	float bs = -1e30f;
	for (int i = 0; i < N; i++) {
		float d = 0;
		for (int k = 0; k < F; k++)
			d += q[k] * v[i * F + k];
		if (d > bs) {
			bs = d;
			best = i;
		}
	}
	ex[best] = 1;
	int n = 0;
	for (int i = 0; i < N; i++) {
		if (ex[i])
			continue;
		float d = 0;
		for (int k = 0; k < F; k++)
			d += q[k] * v[i * F + k];
		all[n++] = d;
	}
	qsort(all, (size_t)n, sizeof(float), cmp_desc);
	int idx[K];
	float sc[K];
	CHECK_INT(als_topk(q, v, N, F, K, ex, idx, sc), K);
	for (int k = 0; k < K; k++) {
		CHECK(fabsf(sc[k] - all[k]) < 1e-5f, "rank %d: expected %g got %g", k, all[k], sc[k]);
		CHECK(idx[k] != best, "excluded item %d returned at rank %d", best, k);
	}
	CHECK_INT(als_topk(q, v, 3, F, K, NULL, idx, sc), 3);
	CHECK(sc[0] >= sc[1] && sc[1] >= sc[2], "short list not sorted: %g %g %g", sc[0], sc[1], sc[2]);
	free(v);
}

static void test_rejects_mismatched_shapes(void)
{
	struct als_params p;
	als_params_defaults(&p);
	CHECK(als_new(0, 5, &p) == NULL, "expected NULL for zero users");
	struct als *a = als_new(2, 3, &p);
	int32_t r[] = {0}, c[] = {0};
	float v[] = {1};
	struct als_matrix m, t;
	als_matrix_from_triples(&m, 3, 3, 1, r, c, v);
	als_matrix_transpose(&t, &m.csr);
	CHECK_INT(als_iterate(a, &m.csr, &t.csr), -22);
	als_free(a);
	als_matrix_free(&m);
	als_matrix_free(&t);
}

static void test_diversify_keeps_order_but_never_three_in_a_row(void)
{
	int artist[] = {7, 7, 7, 7, 3, 3, 3, 5};
	int order[8];
	int n = recmodel_diversify(artist, 8, 2, order);
	/* 7 7 3 7 7 3 3 5: the third 7 waits for a 3; otherwise the input order is kept. */
	int want[] = {0, 1, 4, 2, 3, 5, 6, 7};
	CHECK_INT(n, 8);
	for (int i = 0; i < 8; i++)
		CHECK(order[i] == want[i], "position %d: expected %d got %d", i, want[i], order[i]);
	int same[] = {1, 1, 1, 1};
	CHECK_INT(recmodel_diversify(same, 4, 2, order), 2);   /* nothing may follow two of one artist */
	CHECK_INT(recmodel_diversify(same, 0, 2, order), 0);
}

int main(void)
{
	RUN(test_loss_decreases_every_iteration);
	RUN(test_recommends_unseen_items_from_the_users_own_group);
	RUN(test_negative_weights_push_an_item_down);
	RUN(test_threads_give_the_same_factors_as_one_thread);
	RUN(test_vector_kernel_matches_the_generic_loops_at_64_factors);
	RUN(test_csr_from_triples_sums_duplicates_and_transposes);
	RUN(test_topk_matches_a_full_sort_and_honours_exclusions);
	RUN(test_rejects_mismatched_shapes);
	RUN(test_diversify_keeps_order_but_never_three_in_a_row);
	return TAP_DONE();
}
