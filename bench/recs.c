/* bench_recs: recommendation quality and ALS training speed on synthetic data.
 *
 *   bench_recs quality [USERS] [ITEMS] [FACTORS]
 *     A population with hidden taste mixtures: G genres, artists within genres, items by
 *     artists with Zipf popularity. Each user likes 1-3 genres (random mixture weights) and a
 *     few favourite artists in them; plays are drawn from that taste, then from the artist's
 *     items with popularity bias. 20% of each user's distinct items are held out. Cold-start
 *     users keep only their first 10 plays in training. Reports recall@10 and NDCG@10 of ALS,
 *     item-kNN (cosine, 50 neighbours), popularity and random.
 *
 *   bench_recs timing [SCALE] [ITERATIONS] [FACTORS] [THREADS] [PEAK_GFLOPS]
 *     A synthetic matrix the shape of Last.fm-360K times SCALE (360 000 users, 160 000 items,
 *     17.5 M distinct non-zeros at SCALE 1) with power-law item popularity. Alternates
 *     iterations of als (the 16-lane kernel) and of the peer, the same library forced onto its
 *     plain any-f loops (als_params.generic: the previous implementation), on the same matrix;
 *     reports median wall seconds and process CPU seconds per iteration, the load average,
 *     and GFLOP/s (als_flops_per_iteration) against PEAK_GFLOPS.
 */
#include "als.h"
#include "xmem.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t rng_state = 88172645463325252ULL;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static double unif(void)
{
	return (double)(rnd() >> 11) / 9007199254740992.0;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Samples from a discrete distribution by its cumulative weights (binary search). */
static int sample_cdf(const double *cdf, int n)
{
	double u = unif() * cdf[n - 1];
	int lo = 0, hi = n - 1;
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* ---- quality ---- */

#define GENRES 20
#define K 10

struct world {
	int users, items, artists;
	int *item_artist, *artist_genre;
	int *artist_first, *artist_count;  /* items of an artist are contiguous */
	double *item_pop_cdf;              /* per artist, cumulative over its items */
	int *genre_artists[GENRES], genre_nartists[GENRES];
};

static void world_make(struct world *w, int users, int items)
{
	w->users = users;
	w->items = items;
	w->artists = items / 10;
	w->item_artist = xmalloc((size_t)items * sizeof(int));
	w->artist_genre = xmalloc((size_t)w->artists * sizeof(int));
	w->artist_first = xmalloc((size_t)w->artists * sizeof(int));
	w->artist_count = xcalloc((size_t)w->artists, sizeof(int));
	w->item_pop_cdf = xmalloc((size_t)items * sizeof(double));
	for (int g = 0; g < GENRES; g++) {
		w->genre_artists[g] = xmalloc((size_t)w->artists * sizeof(int));
		w->genre_nartists[g] = 0;
	}
	for (int a = 0; a < w->artists; a++) {
		w->artist_genre[a] = (int)(rnd() % GENRES);
		int g = w->artist_genre[a];
		w->genre_artists[g][w->genre_nartists[g]++] = a;
	}
	for (int i = 0; i < items; i++) {
		int a = i * w->artists / items;
		w->item_artist[i] = a;
		if (w->artist_count[a]++ == 0)
			w->artist_first[a] = i;
	}
	/* Global Zipf popularity over a shuffled item order, cumulated per artist. */
	int *rank = xmalloc((size_t)items * sizeof(int));
	for (int i = 0; i < items; i++)
		rank[i] = i;
	for (int i = items - 1; i > 0; i--) {
		int j = (int)(rnd() % (uint64_t)(i + 1)), t = rank[i];
		rank[i] = rank[j];
		rank[j] = t;
	}
	for (int a = 0; a < w->artists; a++) {
		double c = 0;
		for (int k = 0; k < w->artist_count[a]; k++) {
			int i = w->artist_first[a] + k;
			c += 1.0 / pow(rank[i] + 1.0, 0.8);
			w->item_pop_cdf[i] = c;
		}
	}
	free(rank);
}

/* Plays of one user from a fresh hidden taste; writes distinct items (in first-play order)
 * and counts. Returns the number of distinct items. */
static int user_plays(const struct world *w, int nplays, int *items, float *counts, int cap)
{
	int ng = 1 + (int)(rnd() % 3), genres[3];
	double gw[3], gcdf[3], c = 0;
	for (int k = 0; k < ng; k++) {
		genres[k] = (int)(rnd() % GENRES);
		gw[k] = 0.2 + unif();
		c += gw[k];
		gcdf[k] = c;
	}
	/* Three favourite artists per genre take 70% of that genre's plays. */
	int fav[3][3];
	for (int k = 0; k < ng; k++)
		for (int f = 0; f < 3; f++) {
			int g = genres[k];
			fav[k][f] = w->genre_nartists[g] ? w->genre_artists[g][rnd() % (uint64_t)w->genre_nartists[g]] : 0;
		}
	int n = 0;
	for (int p = 0; p < nplays; p++) {
		int k = sample_cdf(gcdf, ng), g = genres[k];
		if (!w->genre_nartists[g])
			continue;
		int a = unif() < 0.7 ? fav[k][rnd() % 3] : w->genre_artists[g][rnd() % (uint64_t)w->genre_nartists[g]];
		int i = w->artist_first[a] + sample_cdf(w->item_pop_cdf + w->artist_first[a], w->artist_count[a]);
		int j = 0;
		while (j < n && items[j] != i)
			j++;
		if (j == n) {
			if (n == cap)
				continue;
			items[n] = i;
			counts[n++] = 0;
		}
		counts[j] += 1;
	}
	return n;
}

struct split {
	size_t n, cap;
	int32_t *row, *col;
	float *val;
	int **test;        /* per user, held-out items */
	int *ntest;
	uint8_t *cold;     /* user is a cold-start user */
};

static void add(struct split *s, int r, int c, float v)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 1 << 16;
		s->row = xrealloc(s->row, s->cap * sizeof(int32_t));
		s->col = xrealloc(s->col, s->cap * sizeof(int32_t));
		s->val = xrealloc(s->val, s->cap * sizeof(float));
	}
	s->row[s->n] = r;
	s->col[s->n] = c;
	s->val[s->n++] = v;
}

typedef void (*score_fn)(void *ctx, int u, float *scores);

struct metrics {
	double recall, ndcg;
	int n;
};

/* Top-10 by scores over items not in the user's training row. */
static void evaluate(const struct als_csr *ui, const struct split *s, int items, score_fn fn, void *ctx, bool cold,
		     struct metrics *m)
{
	float *scores = xmalloc((size_t)items * sizeof(float));
	uint8_t *seen = xcalloc((size_t)items, 1);
	memset(m, 0, sizeof(*m));
	for (int u = 0; u < ui->rows; u++) {
		if (!s->ntest[u] || (bool)s->cold[u] != cold)
			continue;
		fn(ctx, u, scores);
		for (int64_t t = ui->indptr[u]; t < ui->indptr[u + 1]; t++)
			seen[ui->indices[t]] = 1;
		/* Top-K by insertion: scores are one float per item. */
		int top[K];
		float best[K];
		int cnt = 0;
		for (int i = 0; i < items; i++) {
			if (seen[i])
				continue;
			float v = scores[i];
			if (cnt < K || v > best[cnt - 1]) {
				int p = cnt < K ? cnt++ : K - 1;
				while (p > 0 && best[p - 1] < v) {
					best[p] = best[p - 1];
					top[p] = top[p - 1];
					p--;
				}
				best[p] = v;
				top[p] = i;
			}
		}
		for (int64_t t = ui->indptr[u]; t < ui->indptr[u + 1]; t++)
			seen[ui->indices[t]] = 0;
		int hits = 0;
		double dcg = 0, idcg = 0;
		for (int r = 0; r < cnt; r++)
			for (int k = 0; k < s->ntest[u]; k++)
				if (s->test[u][k] == top[r]) {
					hits++;
					dcg += 1.0 / log2(r + 2.0);
					break;
				}
		int ideal = s->ntest[u] < K ? s->ntest[u] : K;
		for (int r = 0; r < ideal; r++)
			idcg += 1.0 / log2(r + 2.0);
		m->recall += (double)hits / ideal;
		m->ndcg += dcg / idcg;
		m->n++;
	}
	if (m->n) {
		m->recall /= m->n;
		m->ndcg /= m->n;
	}
	free(scores);
	free(seen);
}

struct als_ctx {
	const struct als *a;
	int items;
};

static void score_als(void *ctx, int u, float *scores)
{
	struct als_ctx *c = ctx;
	int f = als_factors(c->a);
	const float *x = als_user_factors(c->a) + (size_t)u * f, *V = als_item_factors(c->a);
	for (int i = 0; i < c->items; i++) {
		float s = 0;
		for (int k = 0; k < f; k++)
			s += x[k] * V[(size_t)i * f + k];
		scores[i] = s;
	}
}

struct pop_ctx {
	const float *pop;
	int items;
};

static void score_pop(void *ctx, int u, float *scores)
{
	struct pop_ctx *c = ctx;
	memcpy(scores, c->pop, (size_t)c->items * sizeof(float));
}

static void score_random(void *ctx, int u, float *scores)
{
	int items = *(int *)ctx;
	for (int i = 0; i < items; i++)
		scores[i] = (float)unif();
}

#define NEIGH 50

struct knn_ctx {
	const struct als_csr *ui;
	int items;
	int *nb;       /* items x NEIGH */
	float *sim;
};

static void knn_build(struct knn_ctx *c, const struct als_csr *ui, const struct als_csr *iu)
{
	int items = iu->rows;
	c->ui = ui;
	c->items = items;
	c->nb = xmalloc((size_t)items * NEIGH * sizeof(int));
	c->sim = xmalloc((size_t)items * NEIGH * sizeof(float));
	float *co = xcalloc((size_t)items, sizeof(float));
	int *touched = xmalloc((size_t)items * sizeof(int));
	float *norm = xmalloc((size_t)items * sizeof(float));
	for (int i = 0; i < items; i++)
		norm[i] = (float)sqrt((double)(iu->indptr[i + 1] - iu->indptr[i]) + 1e-9);
	for (int i = 0; i < items; i++) {
		int nt = 0;
		for (int64_t t = iu->indptr[i]; t < iu->indptr[i + 1]; t++) {
			int u = iu->indices[t];
			for (int64_t q = ui->indptr[u]; q < ui->indptr[u + 1]; q++) {
				int j = ui->indices[q];
				if (j == i)
					continue;
				if (co[j] == 0)
					touched[nt++] = j;
				co[j] += 1;
			}
		}
		int cnt = 0;
		float *bs = c->sim + (size_t)i * NEIGH;
		int *bi = c->nb + (size_t)i * NEIGH;
		for (int q = 0; q < nt; q++) {
			int j = touched[q];
			float v = co[j] / (norm[i] * norm[j]);
			co[j] = 0;
			if (cnt < NEIGH || v > bs[cnt - 1]) {
				int p = cnt < NEIGH ? cnt++ : NEIGH - 1;
				while (p > 0 && bs[p - 1] < v) {
					bs[p] = bs[p - 1];
					bi[p] = bi[p - 1];
					p--;
				}
				bs[p] = v;
				bi[p] = j;
			}
		}
		for (; cnt < NEIGH; cnt++) {
			bs[cnt] = 0;
			bi[cnt] = -1;
		}
	}
	free(co);
	free(touched);
	free(norm);
}

static void score_knn(void *ctx, int u, float *scores)
{
	struct knn_ctx *c = ctx;
	memset(scores, 0, (size_t)c->items * sizeof(float));
	for (int64_t t = c->ui->indptr[u]; t < c->ui->indptr[u + 1]; t++) {
		int i = c->ui->indices[t];
		for (int k = 0; k < NEIGH; k++)
			if (c->nb[(size_t)i * NEIGH + k] >= 0)
				scores[c->nb[(size_t)i * NEIGH + k]] += c->sim[(size_t)i * NEIGH + k];
	}
}

static int quality(int users, int items, int factors)
{
	struct world w;
	world_make(&w, users, items);
	int cold_users = users / 10;
	struct split s = {0};
	s.test = xcalloc((size_t)users, sizeof(int *));
	s.ntest = xcalloc((size_t)users, sizeof(int));
	s.cold = xcalloc((size_t)users, 1);
	int cap = 400, *it = xmalloc((size_t)cap * sizeof(int));
	float *cn = xmalloc((size_t)cap * sizeof(float));
	for (int u = 0; u < users; u++) {
		int nplays = 20 + (int)(-log(1 - unif()) * 60);   /* exponential, mean 80 */
		int n = user_plays(&w, nplays, it, cn, cap);
		s.cold[u] = u < cold_users;
		if (s.cold[u]) {
			/* Cold start: only the first 10 distinct tracks are known; the rest is held out. */
			int keep = n < 10 ? n : 10;
			for (int k = 0; k < keep; k++)
				add(&s, u, it[k], cn[k]);
			s.test[u] = xmalloc((size_t)(n - keep + 1) * sizeof(int));
			for (int k = keep; k < n; k++)
				s.test[u][s.ntest[u]++] = it[k];
			continue;
		}
		s.test[u] = xmalloc((size_t)(n + 1) * sizeof(int));
		for (int k = 0; k < n; k++) {
			if (n >= 5 && unif() < 0.2)
				s.test[u][s.ntest[u]++] = it[k];
			else
				add(&s, u, it[k], cn[k]);
		}
	}
	struct als_matrix ui, iu;
	als_matrix_from_triples(&ui, users, items, s.n, s.row, s.col, s.val);
	als_matrix_transpose(&iu, &ui.csr);
	printf("quality: %d users (%d cold-start), %d items, %d artists, %d genres, %zu training non-zeros\n", users,
	       cold_users, items, w.artists, GENRES, s.n);

	struct als_params p;
	als_params_defaults(&p);
	p.factors = factors;
	p.threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
	p.reg = 0.1f;
	p.alpha = 10.0f;
	/* log scaling of play counts (as commonly done for Last.fm): confidence grows slowly. */
	for (int64_t t = 0; t < ui.csr.indptr[users]; t++)
		ui.data[t] = logf(1 + ui.data[t]);
	for (int64_t t = 0; t < iu.csr.indptr[items]; t++)
		iu.data[t] = logf(1 + iu.data[t]);
	struct als *a = als_new(users, items, &p);
	double t0 = now_s();
	for (int i = 0; i < 15; i++)
		als_iterate(a, &ui.csr, &iu.csr);
	double als_s = now_s() - t0;
	struct knn_ctx knn;
	t0 = now_s();
	knn_build(&knn, &ui.csr, &iu.csr);
	double knn_s = now_s() - t0;
	float *pop = xcalloc((size_t)items, sizeof(float));
	for (int i = 0; i < items; i++)
		pop[i] = (float)(iu.csr.indptr[i + 1] - iu.csr.indptr[i]);
	struct als_ctx ac = {a, items};
	struct pop_ctx pc = {pop, items};
	struct {
		const char *name;
		score_fn fn;
		void *ctx;
	} models[] = {
		{"ALS", score_als, &ac},
		{"item-kNN", score_knn, &knn},
		{"popularity", score_pop, &pc},
		{"random", score_random, &items},
	};
	struct metrics res[4][2];
	printf("%-12s %10s %10s %16s %16s\n", "model", "recall@10", "NDCG@10", "cold recall@10", "cold NDCG@10");
	for (int m = 0; m < 4; m++) {
		evaluate(&ui.csr, &s, items, models[m].fn, models[m].ctx, false, &res[m][0]);
		evaluate(&ui.csr, &s, items, models[m].fn, models[m].ctx, true, &res[m][1]);
		printf("%-12s %10.4f %10.4f %16.4f %16.4f\n", models[m].name, res[m][0].recall, res[m][0].ndcg, res[m][1].recall,
		       res[m][1].ndcg);
	}
	printf("users scored: %d warm, %d cold; ALS %d factors, 15 iterations in %.2f s; item-kNN built in %.2f s\n",
	       res[0][0].n, res[0][1].n, factors, als_s, knn_s);
	double ratio = res[0][0].ndcg / (res[2][0].ndcg > 0 ? res[2][0].ndcg : 1e-9);
	printf("ALS / popularity NDCG@10: %.2fx (goal >= 2x): %s\n", ratio, ratio >= 2 ? "met" : "NOT met");
	printf("BENCH\trecs_quality\tndcg10_higher_better\t%.4f\tpopularity\t%.4f\t%.2f\t>=2x\n", res[0][0].ndcg,
	       res[2][0].ndcg, ratio);
	als_free(a);
	als_matrix_free(&ui);
	als_matrix_free(&iu);
	free(knn.nb);
	free(knn.sim);
	free(pop);
	for (int u = 0; u < users; u++)
		free(s.test[u]);
	free(s.test);
	free(s.ntest);
	free(s.cold);
	free(s.row);
	free(s.col);
	free(s.val);
	free(it);
	free(cn);
	free(w.item_artist);
	free(w.artist_genre);
	free(w.artist_first);
	free(w.artist_count);
	free(w.item_pop_cdf);
	for (int g = 0; g < GENRES; g++)
		free(w.genre_artists[g]);
	return ratio >= 2 ? 0 : 1;
}

/* ---- timing ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Process CPU seconds (all threads): less sensitive than wall time to other work sharing the cores. */
static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

struct runs {
	const char *name;
	struct als *a;
	double *wall, *cpu, *load;
};

static double median(double *v, int n)
{
	double *c = xmalloc((size_t)n * sizeof(double));
	memcpy(c, v, (size_t)n * sizeof(double));
	qsort(c, (size_t)n, sizeof(double), cmp_double);
	double m = n % 2 ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2;
	free(c);
	return m;
}

static void one_iteration(struct runs *r, int i, const struct als_matrix *ui, const struct als_matrix *iu)
{
	double w0 = now_s(), c0 = cpu_s();
	als_iterate(r->a, &ui->csr, &iu->csr);
	r->wall[i] = now_s() - w0;
	r->cpu[i] = cpu_s() - c0;
	double la[1] = {0};
	getloadavg(la, 1);
	r->load[i] = la[0];
	printf("  %-8s iteration %d: %6.2f s wall, %6.2f CPU-s, load average %.1f\n", r->name, i + 1, r->wall[i], r->cpu[i],
	       la[0]);
	fflush(stdout);
}

static int timing(double scale, int iters, int factors, int threads, double peak)
{
	int users = (int)(360000 * scale), items = (int)(160000 * scale);
	int64_t target = (int64_t)(17.5e6 * scale);
	if (users < 10 || items < 10 || target > (int64_t)users * items / 2)
		return 2;
	/* Items by power-law popularity (Last.fm-like long tail); users with varied history
	 * lengths, each item at most once per user, so the matrix has exactly `target` entries. */
	double *cdf = xmalloc((size_t)items * sizeof(double)), c = 0;
	for (int i = 0; i < items; i++) {
		c += 1.0 / pow(i + 1.0, 0.9);
		cdf[i] = c;
	}
	int32_t *row = xmalloc((size_t)target * sizeof(int32_t)), *col = xmalloc((size_t)target * sizeof(int32_t));
	float *val = xmalloc((size_t)target * sizeof(float));
	int *seen = xmalloc((size_t)items * sizeof(int));
	for (int i = 0; i < items; i++)
		seen[i] = -1;
	/* History lengths uniform in [0.5, 1.5] x the mean, scaled to add up to target exactly. */
	double *len = xmalloc((size_t)users * sizeof(double)), total = 0;
	for (int u = 0; u < users; u++)
		total += len[u] = 0.5 + unif();
	int64_t n = 0;
	double cum = 0;
	for (int u = 0; u < users; u++) {
		cum += len[u];
		int64_t want = llround((double)target * cum / total) - n;
		if (want > items / 2)
			want = items / 2;
		for (int64_t k = 0; k < want; k++) {
			int it;
			do
				it = sample_cdf(cdf, items);
			while (seen[it] == u);
			seen[it] = u;
			row[n] = u;
			col[n] = it;
			val[n++] = 1.0f + (float)(rnd() % 20);
		}
	}
	free(seen);
	free(len);
	double t0 = now_s();
	struct als_matrix ui, iu;
	als_matrix_from_triples(&ui, users, items, (size_t)n, row, col, val);
	als_matrix_transpose(&iu, &ui.csr);
	free(row);
	free(col);
	free(val);
	free(cdf);
	int64_t nnz = ui.csr.indptr[users];
	printf("timing: %d users, %d items, %lld non-zeros, %d factors, %d threads; matrix built in %.1f s\n", users, items,
	       (long long)nnz, factors, threads, now_s() - t0);
	struct als_params p;
	als_params_defaults(&p);
	p.factors = factors;
	p.threads = threads;
	struct runs r[2] = {{.name = "als"}, {.name = "generic"}};
	for (int k = 0; k < 2; k++) {
		p.generic = k == 1;
		r[k].a = als_new(users, items, &p);
		r[k].wall = xmalloc((size_t)iters * sizeof(double));
		r[k].cpu = xmalloc((size_t)iters * sizeof(double));
		r[k].load = xmalloc((size_t)iters * sizeof(double));
	}
	/* Alternating, so both see the same share of whatever else the machine is doing. */
	for (int i = 0; i < iters; i++)
		for (int k = 0; k < 2; k++)
			one_iteration(&r[k], i, &ui, &iu);
	double flops = als_flops_per_iteration(r[0].a, nnz);
	double wall[2], cpu[2];
	for (int k = 0; k < 2; k++) {
		wall[k] = median(r[k].wall, iters);
		cpu[k] = median(r[k].cpu, iters);
	}
	double load = median(r[0].load, iters);
	printf("flops per iteration: %.1f G = (users + items) x 2 f^2 x (cg + 2) [Y'Y once, Y'Y p per CG pass]\n"
	       "                      + 2 x nnz x 4 f x (cg + 1) [dot and axpy per entry per pass], f = %d, cg = %d\n",
	       flops / 1e9, factors, p.cg_steps);
	for (int k = 0; k < 2; k++) {
		printf("%-8s median %.2f s/iteration wall, %.2f CPU-s/iteration; %.1f GFLOP/s wall", r[k].name, wall[k],
		       cpu[k], flops / wall[k] / 1e9);
		if (peak > 0)
			printf(" (%.1f%% of the %.0f GFLOP/s peak of %d cores)", 100 * flops / wall[k] / 1e9 / peak, peak,
			       threads);
		printf(", %.1f GFLOP per CPU-second", flops / cpu[k] / 1e9);
		if (peak > 0)
			printf(" (%.1f%% of one core's peak)", 100 * flops / cpu[k] / 1e9 / (peak / threads));
		printf("\n");
	}
	printf("median load average during the als iterations: %.1f on %d cores\n", load, threads);
	/* The implicit library's CPU figure on Last.fm-360K: 1.37 s/iteration on 8 cores, i.e.
	 * 10.96 core-seconds; per-core parity here is 10.96 CPU-s, or 10.96 / threads s of wall
	 * time on otherwise idle cores. */
	double parity_cpu = 1.37 * 8 * scale, parity_wall = parity_cpu / threads;
	printf("als vs generic (the previous implementation, same run): %.2fx faster by wall time, %.2fx by CPU time\n",
	       wall[1] / wall[0], cpu[1] / cpu[0]);
	printf("implicit per-core parity at this scale: %.2f CPU-s/iteration (%.2f s wall on %d idle cores); als %.2f of "
	       "it by CPU time, %.2f by wall time (lower is better)\n",
	       parity_cpu, parity_wall, threads, cpu[0] / parity_cpu, wall[0] / parity_wall);
	printf("BENCH\trecs_als_iteration_x%.2g\ts_lower_better\t%.3f\tals_generic(previous,same run)\t%.3f\t%.2f\t<=1\n",
	       scale, wall[0], wall[1], wall[0] / wall[1]);
	printf("BENCH\trecs_als_iteration_cpu_x%.2g\tcpu_s_lower_better\t%.3f\timplicit(published,per-core)\t%.3f\t%.2f\t<=1\n",
	       scale, cpu[0], parity_cpu, cpu[0] / parity_cpu);
	for (int k = 0; k < 2; k++) {
		free(r[k].wall);
		free(r[k].cpu);
		free(r[k].load);
		als_free(r[k].a);
	}
	als_matrix_free(&ui);
	als_matrix_free(&iu);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "quality") == 0) {
		int users = argc > 2 ? atoi(argv[2]) : 20000;
		int items = argc > 3 ? atoi(argv[3]) : 5000;
		int f = argc > 4 ? atoi(argv[4]) : 64;
		if (users < 100 || items < 100 || f < 1)
			return 2;
		return quality(users, items, f);
	}
	if (argc >= 2 && strcmp(argv[1], "timing") == 0) {
		double scale = argc > 2 ? atof(argv[2]) : 1.0;
		int iters = argc > 3 ? atoi(argv[3]) : 5;
		int f = argc > 4 ? atoi(argv[4]) : 64;
		long nc = sysconf(_SC_NPROCESSORS_ONLN);
		int threads = argc > 5 ? atoi(argv[5]) : (int)(nc > 0 ? nc : 1);
		double peak = argc > 6 ? atof(argv[6]) : 0;
		if (scale <= 0 || scale > 4 || iters < 1 || f < 1 || threads < 1)
			return 2;
		return timing(scale, iters, f, threads, peak);
	}
	fprintf(stderr, "usage: bench_recs quality [USERS] [ITEMS] [FACTORS]\n"
			"       bench_recs timing [SCALE] [ITERATIONS] [FACTORS] [THREADS] [PEAK_GFLOPS]\n");
	return 2;
}
