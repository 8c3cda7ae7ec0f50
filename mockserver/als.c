/* als: implicit ALS with a per-row conjugate-gradient solver.
 *
 * For a row x with observed entries (y_i, c_i, p_i), the exact solution satisfies
 *   (Y'Y + reg I + sum (c_i - 1) y_i y_i') x = sum c_i p_i y_i.
 * Y'Y is shared by every row (computed once per half-sweep, in parallel); the sparse part is
 * applied as a matrix-vector product without forming the f x f matrix, so one CG step costs
 * f^2 + 2 f nnz(row) multiply-adds, and warm-starting from last sweep's x makes 3 steps enough.
 * f = 64 (the default) has a 16-lane kernel (solve_rows64); other f, or params.generic, the
 * plain loops (solve_row), which are also the kernel's cross-check and benchmark peer. */
#include "als.h"
#include "xmem.h"
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct als {
	int users, items, f;
	struct als_params p;
	float *U, *V;
};

void als_params_defaults(struct als_params *p)
{
	p->factors = 64;
	p->reg = 0.01f;
	p->alpha = 40.0f;
	p->cg_steps = 3;
	p->threads = 1;
	p->seed = 42;
	p->generic = false;
}

/* splitmix64: deterministic initialisation without global state. */
static uint64_t mix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Cache-line aligned, so with f a multiple of 16 every factor row starts a line. Large arrays
 * are asked for transparent huge pages: a half-sweep gathers rows of the other side's array
 * at random, and with 4 KiB pages nearly every gather of a 100 MB array misses the TLB.
 * Aborts on OOM. */
static float *xalloc64(size_t n)
{
	const size_t huge = (size_t)2 << 20;
	size_t align = n >= 2 * huge ? huge : 64, len = n ? (n + align - 1) / align * align : 64;
	void *p = NULL;
	if (posix_memalign(&p, align, len) != 0) {
		fprintf(stderr, "encored: out of memory allocating %zu bytes\n", n);
		abort();
	}
	if (align == huge)
		madvise(p, len, MADV_HUGEPAGE); /* advice only: without THP it is 4 KiB pages */
	return p;
}

struct als *als_new(int users, int items, const struct als_params *p)
{
	if (users < 1 || items < 1 || !p || p->factors < 1)
		return NULL;
	struct als *a = xcalloc(1, sizeof(*a));
	a->users = users;
	a->items = items;
	a->f = p->factors;
	a->p = *p;
	if (a->p.cg_steps < 1)
		a->p.cg_steps = 1;
	if (a->p.threads < 1)
		a->p.threads = 1;
	a->U = xalloc64((size_t)users * a->f * sizeof(float));
	a->V = xalloc64((size_t)items * a->f * sizeof(float));
	uint64_t s = p->seed;
	/* Centred noise: all-positive starts keep the factors nearly collinear for many sweeps. */
	float scale = 0.2f / sqrtf((float)a->f);
	for (size_t i = 0; i < (size_t)users * a->f; i++)
		a->U[i] = scale * (float)((double)(mix(&s) >> 11) / 9007199254740992.0 - 0.5);
	for (size_t i = 0; i < (size_t)items * a->f; i++)
		a->V[i] = scale * (float)((double)(mix(&s) >> 11) / 9007199254740992.0 - 0.5);
	return a;
}

void als_free(struct als *a)
{
	if (!a)
		return;
	free(a->U);
	free(a->V);
	free(a);
}

int als_factors(const struct als *a) { return a->f; }
int als_users(const struct als *a) { return a->users; }
int als_items(const struct als *a) { return a->items; }
const float *als_user_factors(const struct als *a) { return a->U; }
const float *als_item_factors(const struct als *a) { return a->V; }
float *als_user_factors_mut(struct als *a) { return a->U; }
float *als_item_factors_mut(struct als *a) { return a->V; }

/* Hot loops are compiled for AVX-512, AVX2 + FMA (x86-64-v3; "avx2,fma" would be two separate
 * clones, neither with both) and baseline x86-64 and picked at load time (glibc ifunc), so one
 * binary uses the machine's vector width without -march=native. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define ALS_CLONES __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default")))
#else
#define ALS_CLONES
#endif

/* Sixteen independent partial sums: the compiler may vectorise them without -ffast-math,
 * since no sum is reassociated. */
static inline float dot(const float *restrict a, const float *restrict b, int f)
{
	float acc[16] = {0};
	int k = 0;
	for (; k + 16 <= f; k += 16)
		for (int j = 0; j < 16; j++)
			acc[j] += a[k + j] * b[k + j];
	float s = 0;
	for (; k < f; k++)
		s += a[k] * b[k];
	for (int j = 0; j < 16; j++)
		s += acc[j];
	return s;
}

/* Fixed 16-wide inner loops: -O2's cheap vectoriser handles constant trip counts only. */
static inline void axpy(float *restrict y, float a, const float *restrict x, int f)
{
	int k = 0;
	for (; k + 16 <= f; k += 16)
		for (int j = 0; j < 16; j++)
			y[k + j] += a * x[k + j];
	for (; k < f; k++)
		y[k] += a * x[k];
}

/* out = G v for the symmetric f x f matrix G. */
static inline void gemv(float *restrict out, const float *restrict G, const float *restrict v, int f)
{
	for (int r = 0; r < f; r++)
		out[r] = dot(G + (size_t)r * f, v, f);
}

struct job {
	bool fast;             /* f == 64 and not forced generic: the 16-lane kernel */
	const struct als_csr *m;
	float *X;              /* rows being solved */
	const float *Y;        /* fixed side */
	int nY;                /* rows of Y */
	float *G;              /* Y'Y + reg I (shared, read-only during solves) */
	float reg;
	int f, cg;
	float alpha;
	atomic_int next;       /* next chunk of rows */
	int nthreads;
	float *partial;        /* per-thread Y'Y partial sums */
	pthread_barrier_t bar;
};

#define CHUNK 64

ALS_CLONES static void solve_row(const struct job *j, int u, float *r, float *p, float *Ap)
{
	const int f = j->f;
	float *x = j->X + (size_t)u * f;
	const struct als_csr *m = j->m;
	int64_t b = m->indptr[u], e = m->indptr[u + 1];
	/* r = b - A x */
	gemv(r, j->G, x, f);
	for (int k = 0; k < f; k++)
		r[k] = -r[k];
	for (int64_t t = b; t < e; t++) {
		float v = m->data[t];
		if (v == 0)
			continue;
		float c = 1 + j->alpha * fabsf(v), pref = v > 0 ? 1.0f : 0.0f;
		const float *y = j->Y + (size_t)m->indices[t] * f;
		axpy(r, c * pref - (c - 1) * dot(y, x, f), y, f);
	}
	memcpy(p, r, (size_t)f * sizeof(float));
	float rs = dot(r, r, f);
	for (int it = 0; it < j->cg && rs > 1e-20f; it++) {
		gemv(Ap, j->G, p, f);
		for (int64_t t = b; t < e; t++) {
			float v = m->data[t];
			if (v == 0)
				continue;
			const float *y = j->Y + (size_t)m->indices[t] * f;
			axpy(Ap, j->alpha * fabsf(v) * dot(y, p, f), y, f);
		}
		float pAp = dot(p, Ap, f);
		if (!(pAp > 0))
			break;
		float step = rs / pAp;
		axpy(x, step, p, f);
		axpy(r, -step, Ap, f);
		float rn = dot(r, r, f);
		float beta = rn / rs;
		for (int k = 0; k < f; k++)
			p[k] = r[k] + beta * p[k];
		rs = rn;
	}
}

/* ---- The 16-lane kernel for f = 64 ----
 * GNU vector types rather than intrinsics: each target_clones copy lowers a v16 to one zmm
 * (AVX-512), two ymm (AVX2) or four xmm (baseline), and clang builds it too. Per row, one
 * sparse pass is two loops over the row's entries: first every y_i . q, sixteen entries at a
 * time through one transposing shuffle tree (no dependency chain from entry to entry), then
 * sum d_i y_i into two interleaved accumulator sets. Entries go in blocks small enough that
 * the second loop finds the block's y_i still in L1. The gathers of y_i from a 40-90 MB
 * array are what this loop waits on at the Last.fm-360K shape, hence the prefetch cursor
 * and huge pages (xalloc64). */
typedef float v16 __attribute__((vector_size(64), aligned(4), may_alias));
typedef int32_t v16i __attribute__((vector_size(64), aligned(4), may_alias));
#define NV 4          /* vectors per row: f = 64 */
#define BLK 96        /* entries per block: 96 rows of 256 bytes stay in a 48 KiB L1 */
#define PF 24         /* entries ahead to prefetch (12 to 32 tried on a loaded machine: 16-24 best) */
#define PF_LOCALITY 2 /* into L2 (prefetcht1): L1 has too few fill buffers for PF entries of 4 lines */
/* Not instrumented by UBSan: with its checks on every vector load GCC 12 takes over ten
 * minutes on this file (4 s without). ASan still checks the kernel's memory accesses, and
 * test_als compares its factors with the instrumented plain loops. */
#define NO_UBSAN __attribute__((no_sanitize("undefined")))
#define AI __attribute__((always_inline)) NO_UBSAN static inline

/* Sum of the 16 lanes, as a tree. */
AI float hsum(const v16 *a)
{
	v16 h = *a;
	h += __builtin_shufflevector(h, h, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
	h += __builtin_shufflevector(h, h, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
	h += __builtin_shufflevector(h, h, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
	h += __builtin_shufflevector(h, h, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
	return h[0];
}

AI float dot64(const float *a, const float *b)
{
	const v16 *x = (const v16 *)a, *y = (const v16 *)b;
	v16 s = x[0] * y[0] + x[1] * y[1] + x[2] * y[2] + x[3] * y[3];
	return hsum(&s);
}

/* Accumulators are named variables, not arrays: -O2 does not fully unroll the loops over a
 * small array, and an array accumulator lives in memory, costing a store-to-load forward on
 * every multiply-add. */

/* out = G q, reading G by rows: G is symmetric, so row k is column k and the product is a
 * sum of broadcast multiples of rows, with no horizontal sums. */
AI void gemv64(float *out, const float *G, const float *q)
{
	v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};
	for (int k = 0; k < 64; k += 2) {
		const v16 *g = (const v16 *)(G + (size_t)k * 64), *h = g + NV;
		float s = q[k], t = q[k + 1];
		a0 += s * g[0];
		a1 += s * g[1];
		a2 += s * g[2];
		a3 += s * g[3];
		b0 += t * h[0];
		b1 += t * h[1];
		b2 += t * h[2];
		b3 += t * h[3];
	}
	v16 *o = (v16 *)out;
	o[0] = a0 + b0;
	o[1] = a1 + b1;
	o[2] = a2 + b2;
	o[3] = a3 + b3;
}

/* Prefetches the y of entry *pf and advances the cursor, while it is below limit and end. */
AI void prefetch_step(const float *Y, const int32_t *idx, int64_t *pf, int64_t limit, int64_t end)
{
	if (*pf < limit && *pf < end) {
		const char *nx = (const char *)(Y + (size_t)idx[*pf] * 64);
		__builtin_prefetch(nx, 0, PF_LOCALITY);
		__builtin_prefetch(nx + 64, 0, PF_LOCALITY);
		__builtin_prefetch(nx + 128, 0, PF_LOCALITY);
		__builtin_prefetch(nx + 192, 0, PF_LOCALITY);
		++*pf;
	}
}

/* Sixteen dot products at once: each M step adds two vectors' halves (then quarters, eighths,
 * pairs) into one vector, so four levels turn 16 vectors of partial sums into one vector of
 * 16 sums with 15 adds, where 16 separate horizontal sums would take 64. */
#define SH __builtin_shufflevector
#define M1(a, b) (SH(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) + \
		  SH(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31))
#define M2(a, b) (SH(a, b, 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27) + \
		  SH(a, b, 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31))
#define M3(a, b) (SH(a, b, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29) + \
		  SH(a, b, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31))
#define M4(a, b) (SH(a, b, 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30) + \
		  SH(a, b, 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31))
/* The y of entry s + i + k, and y . q as a vector of partial sums. */
#define ROW(k) ((const v16 *)(Y + (size_t)idx[s + i + (k)] * 64))
#define DOTQ(y) (((y)[0] * q0 + (y)[1] * q1) + ((y)[2] * q2 + (y)[3] * q3))

/* out = sum over the row's entries of d_i y_i with, for the residual (residual = 1),
 * d_i = c_i p_i - (c_i - 1) y_i . q, and for a CG step d_i = (c_i - 1) y_i . q
 * (c = 1 + alpha |v|, p = v > 0; a zero entry gives d = 0 either way). */
AI void sparse64(float *out, const struct job *j, int64_t b, int64_t e, const float *q, int residual, int64_t *pf,
		   int64_t pf_end)
{
	const float *restrict Y = j->Y;
	const int32_t *restrict idx = j->m->indices;
	const float *restrict dat = j->m->data;
	const float alpha = j->alpha;
	const v16 *qv = (const v16 *)q;
	const v16 q0 = qv[0], q1 = qv[1], q2 = qv[2], q3 = qv[3];
	v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};
	float d[BLK];
	for (int64_t s = b; s < e; s += BLK) {
		int n = e - s < BLK ? (int)(e - s) : BLK;
		/* The prefetch cursor runs PF entries ahead of the residual pass; during the CG
		 * passes, whose y_i are cached, it moves on into the next row. */
		int i = 0;
		for (; i + 16 <= n; i += 16) {
			for (int k = 0; k < 16; k++)
				prefetch_step(Y, idx, pf, (residual ? s + i + k : e) + PF, pf_end);
			const v16 *y0 = ROW(0), *y1 = ROW(1), *y2 = ROW(2), *y3 = ROW(3), *y4 = ROW(4), *y5 = ROW(5),
				  *y6 = ROW(6), *y7 = ROW(7), *y8 = ROW(8), *y9 = ROW(9), *y10 = ROW(10), *y11 = ROW(11),
				  *y12 = ROW(12), *y13 = ROW(13), *y14 = ROW(14), *y15 = ROW(15);
			/* Inputs in bit-reversed order, so lane l of the tree's result is entry i + l. */
			v16 yq = M4(M3(M2(M1(DOTQ(y0), DOTQ(y8)), M1(DOTQ(y4), DOTQ(y12))),
				       M2(M1(DOTQ(y2), DOTQ(y10)), M1(DOTQ(y6), DOTQ(y14)))),
				    M3(M2(M1(DOTQ(y1), DOTQ(y9)), M1(DOTQ(y5), DOTQ(y13))),
				       M2(M1(DOTQ(y3), DOTQ(y11)), M1(DOTQ(y7), DOTQ(y15)))));
			v16 v = *(const v16 *)(dat + s + i);
			v16 w = alpha * (v16)((v16i)v & 0x7fffffff);
			v16 zero = {0};
			*(v16 *)(d + i) = residual ? (v16)((v16i)(1 + w) & (v > zero)) - w * yq : w * yq;
		}
		for (; i < n; i++) {
			prefetch_step(Y, idx, pf, (residual ? s + i : e) + PF, pf_end);
			const v16 *y = ROW(0);
			v16 t = DOTQ(y);
			float yq = hsum(&t);
			float v = dat[s + i], w = alpha * fabsf(v);
			d[i] = residual ? (v > 0 ? 1 + w : 0) - w * yq : w * yq;
		}
		i = 0;
		for (; i + 2 <= n; i += 2) {
			const v16 *y = (const v16 *)(Y + (size_t)idx[s + i] * 64);
			const v16 *z = (const v16 *)(Y + (size_t)idx[s + i + 1] * 64);
			float dy = d[i], dz = d[i + 1];
			a0 += dy * y[0];
			a1 += dy * y[1];
			a2 += dy * y[2];
			a3 += dy * y[3];
			b0 += dz * z[0];
			b1 += dz * z[1];
			b2 += dz * z[2];
			b3 += dz * z[3];
		}
		if (i < n) {
			const v16 *y = (const v16 *)(Y + (size_t)idx[s + i] * 64);
			float dy = d[i];
			a0 += dy * y[0];
			a1 += dy * y[1];
			a2 += dy * y[2];
			a3 += dy * y[3];
		}
	}
	v16 *o = (v16 *)out;
	o[0] = a0 + b0;
	o[1] = a1 + b1;
	o[2] = a2 + b2;
	o[3] = a3 + b3;
}

/* Rows lo..hi by the same CG as solve_row, in 16-lane vectors. */
ALS_CLONES NO_UBSAN static void solve_rows64(const struct job *j, int lo, int hi)
{
	_Alignas(64) float r[64], p[64], Ap[64], t[64];
	v16 *rv = (v16 *)r, *pv = (v16 *)p, *Av = (v16 *)Ap, *tv = (v16 *)t;
	int64_t pf = j->m->indptr[lo], pf_end = j->m->indptr[hi];
	for (int u = lo; u < hi; u++) {
		float *x = j->X + (size_t)u * 64;
		v16 *xv = (v16 *)x;
		int64_t b = j->m->indptr[u], e = j->m->indptr[u + 1];
		/* r = b - A x */
		gemv64(t, j->G, x);
		sparse64(r, j, b, e, x, 1, &pf, pf_end);
		for (int v = 0; v < NV; v++)
			pv[v] = rv[v] = rv[v] - tv[v];
		float rs = dot64(r, r);
		for (int it = 0; it < j->cg && rs > 1e-20f; it++) {
			gemv64(Ap, j->G, p);
			sparse64(t, j, b, e, p, 0, &pf, pf_end);
			for (int v = 0; v < NV; v++)
				Av[v] += tv[v];
			float pAp = dot64(p, Ap);
			if (!(pAp > 0))
				break;
			float step = rs / pAp;
			for (int v = 0; v < NV; v++) {
				xv[v] += step * pv[v];
				rv[v] -= step * Av[v];
			}
			float rn = dot64(r, r), beta = rn / rs;
			for (int v = 0; v < NV; v++)
				pv[v] = rv[v] + beta * pv[v];
			rs = rn;
		}
	}
}

/* G += y y' over rows lo..hi of Y, four rows of Y per pass over G so G is loaded and stored
 * a quarter as often (a blocked rank-4 update). Whole rows of G rather than the upper
 * triangle: twice the multiply-adds, but each row is one vectorised loop. */
ALS_CLONES static void gram_rows(float *restrict G, const float *restrict Y, int lo, int hi, int f)
{
	int i = lo;
	for (; i + 4 <= hi; i += 4) {
		const float *y0 = Y + (size_t)i * f, *y1 = y0 + f, *y2 = y1 + f, *y3 = y2 + f;
		for (int r = 0; r < f; r++) {
			float *g = G + (size_t)r * f;
			float c0 = y0[r], c1 = y1[r], c2 = y2[r], c3 = y3[r];
			int k = 0;
			for (; k + 16 <= f; k += 16)
				for (int l = 0; l < 16; l++)
					g[k + l] += (c0 * y0[k + l] + c1 * y1[k + l]) + (c2 * y2[k + l] + c3 * y3[k + l]);
			for (; k < f; k++)
				g[k] += (c0 * y0[k] + c1 * y1[k]) + (c2 * y2[k] + c3 * y3[k]);
		}
	}
	for (; i < hi; i++) {
		const float *y = Y + (size_t)i * f;
		for (int r = 0; r < f; r++)
			axpy(G + (size_t)r * f, y[r], y, f);
	}
}

struct worker_arg {
	struct job *j;
	int id;
};

static void *worker(void *arg)
{
	struct worker_arg *wa = arg;
	struct job *j = wa->j;
	const int f = j->f;
	/* Phase 1: this thread's share of Y'Y (upper triangle). */
	float *G = j->partial + (size_t)wa->id * f * f;
	memset(G, 0, (size_t)f * f * sizeof(float));
	int per = (j->nY + j->nthreads - 1) / j->nthreads;
	int lo = wa->id * per, hi = lo + per < j->nY ? lo + per : j->nY;
	gram_rows(G, j->Y, lo, hi, f);
	pthread_barrier_wait(&j->bar);
	if (wa->id == 0) {
		for (int t = 1; t < j->nthreads; t++) {
			const float *P = j->partial + (size_t)t * f * f;
			for (int k = 0; k < f * f; k++)
				G[k] += P[k];
		}
		for (int r = 0; r < f; r++)
			G[(size_t)r * f + r] += j->reg;
		j->G = G;
	}
	pthread_barrier_wait(&j->bar);
	/* Phase 2: rows in chunks. */
	float *buf = xmalloc(3 * (size_t)f * sizeof(float));
	for (;;) {
		int start = atomic_fetch_add(&j->next, CHUNK);
		if (start >= j->m->rows)
			break;
		int end = start + CHUNK < j->m->rows ? start + CHUNK : j->m->rows;
		if (j->fast)
			solve_rows64(j, start, end);
		else
			for (int u = start; u < end; u++)
				solve_row(j, u, buf, buf + f, buf + 2 * f);
	}
	free(buf);
	return NULL;
}

static void half_sweep(struct als *a, const struct als_csr *m, float *X, const float *Y, int nY)
{
	int nt = a->p.threads;
	struct job j = {
		.fast = a->f == 64 && !a->p.generic,
		.m = m, .X = X, .Y = Y, .nY = nY, .G = NULL, .reg = a->p.reg, .f = a->f, .cg = a->p.cg_steps,
		.alpha = a->p.alpha, .nthreads = nt,
	};
	atomic_init(&j.next, 0);
	j.partial = xmalloc((size_t)nt * a->f * a->f * sizeof(float));
	pthread_barrier_init(&j.bar, NULL, (unsigned)nt);
	pthread_t *th = xcalloc((size_t)nt, sizeof(*th));
	struct worker_arg *wa = xcalloc((size_t)nt, sizeof(*wa));
	for (int t = 0; t < nt; t++) {
		wa[t] = (struct worker_arg){&j, t};
		if (t > 0)
			pthread_create(&th[t], NULL, worker, &wa[t]);
	}
	worker(&wa[0]);
	for (int t = 1; t < nt; t++)
		pthread_join(th[t], NULL);
	pthread_barrier_destroy(&j.bar);
	free(th);
	free(wa);
	free(j.partial);
}

int als_iterate(struct als *a, const struct als_csr *ui, const struct als_csr *iu)
{
	if (ui->rows != a->users || ui->cols != a->items || iu->rows != a->items || iu->cols != a->users)
		return -EINVAL;
	half_sweep(a, ui, a->U, a->V, a->items);
	half_sweep(a, iu, a->V, a->U, a->users);
	return 0;
}

double als_flops_per_iteration(const struct als *a, int64_t nnz)
{
	double f = a->f, s = a->p.cg_steps;
	/* Per side: Y'Y (2 f^2 per row of Y), rows x (s + 1) gemv of 2 f^2, each entry (s + 1) x (dot + axpy = 4 f). */
	double gram = (double)(a->users + a->items) * 2 * f * f;
	double gemvs = (double)(a->users + a->items) * (s + 1) * 2 * f * f;
	double sparse = 2.0 * (double)nnz * (s + 1) * 4 * f;
	return gram + gemvs + sparse;
}

double als_loss(const struct als *a, const struct als_csr *ui)
{
	const int f = a->f;
	/* Every pair as if unobserved (c = 1, p = 0): sum_u x' (Y'Y) x. */
	double *G = xcalloc((size_t)f * f, sizeof(double));
	for (int i = 0; i < a->items; i++) {
		const float *y = a->V + (size_t)i * f;
		for (int r = 0; r < f; r++)
			for (int c = 0; c < f; c++)
				G[(size_t)r * f + c] += (double)y[r] * y[c];
	}
	double loss = 0;
	for (int u = 0; u < a->users; u++) {
		const float *x = a->U + (size_t)u * f;
		for (int r = 0; r < f; r++) {
			double s = 0;
			for (int c = 0; c < f; c++)
				s += G[(size_t)r * f + c] * x[c];
			loss += s * x[r];
		}
		/* Correct the observed pairs. */
		for (int64_t t = ui->indptr[u]; t < ui->indptr[u + 1]; t++) {
			float v = ui->data[t];
			if (v == 0)
				continue;
			double s = dot(x, a->V + (size_t)ui->indices[t] * f, f);
			double c = 1 + (double)a->p.alpha * fabs(v), pref = v > 0;
			loss += c * (pref - s) * (pref - s) - s * s;
		}
	}
	free(G);
	double nx = 0, ny = 0;
	for (size_t i = 0; i < (size_t)a->users * f; i++)
		nx += (double)a->U[i] * a->U[i];
	for (size_t i = 0; i < (size_t)a->items * f; i++)
		ny += (double)a->V[i] * a->V[i];
	return loss + a->p.reg * (nx + ny);
}

void als_matrix_from_triples(struct als_matrix *m, int rows, int cols, size_t n, const int32_t *row,
			     const int32_t *col, const float *val)
{
	int64_t *indptr = xcalloc((size_t)rows + 1, sizeof(int64_t));
	for (size_t t = 0; t < n; t++)
		if (row[t] >= 0 && row[t] < rows && col[t] >= 0 && col[t] < cols)
			indptr[row[t] + 1]++;
	for (int r = 0; r < rows; r++)
		indptr[r + 1] += indptr[r];
	int64_t total = indptr[rows];
	int32_t *ind = xmalloc((size_t)(total ? total : 1) * sizeof(int32_t));
	float *dat = xmalloc((size_t)(total ? total : 1) * sizeof(float));
	int64_t *fill = xmalloc(((size_t)rows + 1) * sizeof(int64_t));
	memcpy(fill, indptr, ((size_t)rows + 1) * sizeof(int64_t));
	for (size_t t = 0; t < n; t++)
		if (row[t] >= 0 && row[t] < rows && col[t] >= 0 && col[t] < cols) {
			int64_t at = fill[row[t]]++;
			ind[at] = col[t];
			dat[at] = val[t];
		}
	free(fill);
	/* Sort each row by column (insertion sort: rows are short) and merge duplicates. */
	int64_t w = 0;
	for (int r = 0; r < rows; r++) {
		int64_t b = indptr[r], e = indptr[r + 1];
		for (int64_t i = b + 1; i < e; i++) {
			int32_t c = ind[i];
			float v = dat[i];
			int64_t k = i;
			while (k > b && ind[k - 1] > c) {
				ind[k] = ind[k - 1];
				dat[k] = dat[k - 1];
				k--;
			}
			ind[k] = c;
			dat[k] = v;
		}
		indptr[r] = w;
		for (int64_t i = b; i < e; i++) {
			if (w > indptr[r] && ind[w - 1] == ind[i])
				dat[w - 1] += dat[i];
			else {
				ind[w] = ind[i];
				dat[w] = dat[i];
				w++;
			}
		}
	}
	indptr[rows] = w;
	m->indptr = indptr;
	m->indices = ind;
	m->data = dat;
	m->csr = (struct als_csr){rows, cols, indptr, ind, dat};
}

void als_matrix_transpose(struct als_matrix *m, const struct als_csr *s)
{
	int64_t nnz = s->indptr[s->rows];
	int64_t *indptr = xcalloc((size_t)s->cols + 1, sizeof(int64_t));
	for (int64_t t = 0; t < nnz; t++)
		indptr[s->indices[t] + 1]++;
	for (int c = 0; c < s->cols; c++)
		indptr[c + 1] += indptr[c];
	int32_t *ind = xmalloc((size_t)(nnz ? nnz : 1) * sizeof(int32_t));
	float *dat = xmalloc((size_t)(nnz ? nnz : 1) * sizeof(float));
	int64_t *fill = xmalloc(((size_t)s->cols + 1) * sizeof(int64_t));
	memcpy(fill, indptr, ((size_t)s->cols + 1) * sizeof(int64_t));
	for (int r = 0; r < s->rows; r++)
		for (int64_t t = s->indptr[r]; t < s->indptr[r + 1]; t++) {
			int64_t at = fill[s->indices[t]]++;
			ind[at] = r;
			dat[at] = s->data[t];
		}
	free(fill);
	m->indptr = indptr;
	m->indices = ind;
	m->data = dat;
	m->csr = (struct als_csr){s->cols, s->rows, indptr, ind, dat};
}

void als_matrix_free(struct als_matrix *m)
{
	if (!m)
		return;
	free(m->indptr);
	free(m->indices);
	free(m->data);
	memset(m, 0, sizeof(*m));
}

/* Min-heap of (score, idx) of size k: the root is the weakest of the current best. */
static void sift_down(float *s, int *ix, int n, int i)
{
	for (;;) {
		int l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && s[l] < s[m])
			m = l;
		if (r < n && s[r] < s[m])
			m = r;
		if (m == i)
			return;
		float ts = s[i];
		s[i] = s[m];
		s[m] = ts;
		int ti = ix[i];
		ix[i] = ix[m];
		ix[m] = ti;
		i = m;
	}
}

/* Scores of vectors[lo..hi) against query into out. */
ALS_CLONES static void score_block(float *restrict out, const float *restrict query, const float *restrict vectors, int lo,
				   int hi, int f)
{
	for (int i = lo; i < hi; i++)
		out[i - lo] = dot(query, vectors + (size_t)i * f, f);
}

int als_topk(const float *query, const float *vectors, int n, int f, int k, const uint8_t *exclude, int *idx,
	     float *score)
{
	if (k <= 0 || n <= 0)
		return 0;
	float *hs = xmalloc((size_t)k * sizeof(float));
	int *hi = xmalloc((size_t)k * sizeof(int));
	int cnt = 0;
	enum { BLOCK = 256 };
	float block[BLOCK];
	for (int i = 0; i < n; i++) {
		if (i % BLOCK == 0)
			score_block(block, query, vectors, i, i + BLOCK < n ? i + BLOCK : n, f);
		if (exclude && exclude[i])
			continue;
		float s = block[i % BLOCK];
		if (cnt < k) {
			hs[cnt] = s;
			hi[cnt] = i;
			cnt++;
			if (cnt == k)
				for (int h = k / 2 - 1; h >= 0; h--)
					sift_down(hs, hi, k, h);
		} else if (s > hs[0]) {
			hs[0] = s;
			hi[0] = i;
			sift_down(hs, hi, k, 0);
		}
	}
	if (cnt < k)
		for (int h = cnt / 2 - 1; h >= 0; h--)
			sift_down(hs, hi, cnt, h);
	/* Pop ascending into the tail of the output. */
	for (int n2 = cnt; n2 > 0; n2--) {
		idx[n2 - 1] = hi[0];
		if (score)
			score[n2 - 1] = hs[0];
		hs[0] = hs[n2 - 1];
		hi[0] = hi[n2 - 1];
		sift_down(hs, hi, n2 - 1, 0);
	}
	free(hs);
	free(hi);
	return cnt;
}
