/* bench/search: builds a generated catalog (default 1,000,000 tracks plus artists and albums)
 * into the Encore search index and into plain SQLite FTS5 in the same run, then measures
 * search and suggest latency (p50/p99) and top-10 recall on the same query set.
 * Usage: bench_search [TRACKS] [QUERIES]     (e.g. bench_search 20000 500 for a smoke run) */
#include "search.h"
#include "namegen.h"
#include "textfold.h"
#include "id.h"
#include "xmem.h"
#include "buf.h"
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* This thread's CPU seconds: a query's own work, without the time other processes took
 * the core from it (these machines are shared; wall-clock tails there measure the load). */
static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "VmRSS:", 6) == 0)
			kb = atol(line + 6);
	fclose(f);
	return kb;
}

struct item {
	enum search_type type;
	char id[ID_LEN + 1];
	char *name;
	int artist;       /* index into items (an artist), -1 for artists */
	int album;
	int pop;
	const char *markets;
	const char *genre;
};

struct qcase {
	char *q;
	int target;       /* item index that should be in the top 10 */
};

static void edit_once(struct namegen *g, char *w)
{
	size_t n = strlen(w);
	size_t p = 1 + namegen_rand(g) % (n - 1);   /* users rarely miss the first letter */
	switch (namegen_rand(g) % 4) {
	case 0: w[p] = (char)('a' + namegen_rand(g) % 26); break;
	case 1: memmove(w + p, w + p + 1, n - p); break;
	case 2: memmove(w + p + 1, w + p, n - p + 1); w[p] = (char)('a' + namegen_rand(g) % 26); break;
	default:
		if (p + 1 < n) {
			char t = w[p];
			w[p] = w[p + 1];
			w[p + 1] = t;
		}
	}
}

/* Builds a query from an item's name: exact, one typo in a long word, or a typed prefix. */
static char *make_query(struct namegen *g, const char *name, int kind, int suggest)
{
	char *f = fold_string(name);
	char *words[8];
	int n = 0;
	for (char *s = strtok(f, " "); s && n < 8; s = strtok(NULL, " "))
		words[n++] = s;
	struct buf b = BUF_INIT;
	int upto = n > 3 ? 3 : n;
	for (int i = 0; i < upto; i++) {
		char w[128];
		snprintf(w, sizeof w, "%s", words[i]);
		int ascii = 1;
		for (char *c = w; *c; c++)
			if ((unsigned char)*c >= 0x80)
				ascii = 0;
		if (kind == 1 && ascii && strlen(w) >= 5 && i == upto - 1)
			edit_once(g, w);
		if ((kind == 2 || suggest) && i == upto - 1 && ascii) {
			size_t keep = 2 + namegen_rand(g) % 5;
			if (keep < strlen(w))
				w[keep] = 0;
		}
		if (i)
			buf_putc(&b, ' ');
		buf_puts(&b, w);
	}
	free(f);
	return buf_steal(&b);
}

/* FTS5 query text: every word quoted (so syntax characters are text), last one a prefix. */
static char *fts_query(const char *q)
{
	char *f = fold_string(q);
	struct buf b = BUF_INIT;
	char *save = NULL;
	int first = 1;
	for (char *s = strtok_r(f, " ", &save); s; s = strtok_r(NULL, " ", &save)) {
		if (!first)
			buf_putc(&b, ' ');
		buf_printf(&b, "\"%s\"", s);
		first = 0;
	}
	if (b.len)
		buf_putc(&b, '*');
	free(f);
	return buf_steal(&b);
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct lat { double p50, p99; };

static struct lat pct(double *v, size_t n)
{
	qsort(v, n, sizeof *v, cmpd);
	struct lat l = {v[n / 2] * 1e3, v[(size_t)(n * 0.99)] * 1e3};
	return l;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	size_t ntracks = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
	size_t nq = argc > 2 ? strtoul(argv[2], NULL, 10) : 2000;
	if (ntracks < 1000)
		ntracks = 1000;
	struct namegen *g = namegen_new(0);
	size_t nart = ntracks / 10, nalb = ntracks / 8, nitems = nart + nalb + ntracks;
	struct item *items = xcalloc(nitems, sizeof *items);
	char name[256];
	const char *msets[] = {"US,CA", "SE,DE,NO,FI,DK", "JP", "GB,IE"};
	for (size_t i = 0; i < nitems; i++) {
		struct item *it = &items[i];
		char seed[32];
		snprintf(seed, sizeof seed, "b%zu", i);
		id_from_seed(seed, it->id);
		it->pop = (int)(100 - namegen_zipf(g, 101));
		it->markets = namegen_rand(g) % 10 == 0 ? msets[namegen_rand(g) % 4] : NULL;
		it->genre = namegen_genre(g);
		if (i < nart) {
			it->type = SEARCH_ARTIST;
			namegen_name(g, name, sizeof name, 1, 2);
			it->artist = -1;
		} else if (i < nart + nalb) {
			it->type = SEARCH_ALBUM;
			namegen_name(g, name, sizeof name, 1, 3);
			it->artist = (int)(namegen_rand(g) % nart);
		} else {
			it->type = SEARCH_TRACK;
			namegen_name(g, name, sizeof name, 1, 4);
			it->artist = (int)(namegen_rand(g) % nart);
			it->album = (int)(nart + namegen_rand(g) % nalb);
		}
		it->name = xstrdup(name);
	}
	printf("catalog: %zu tracks, %zu artists, %zu albums (generated, ~1.5%% Cyrillic/CJK, ~5%% accented words)\n",
	       ntracks, nart, nalb);

	/* ---- Encore in-memory index ---- */
	long rss0 = rss_kb();
	double t0 = now();
	struct search_index *idx = search_new();
	for (size_t i = 0; i < nitems; i++) {
		struct item *it = &items[i];
		const char *arts[1] = {it->artist >= 0 ? items[it->artist].name : NULL};
		struct search_doc d = {.type = it->type, .id = it->id, .name = it->name,
		                       .artists = it->artist >= 0 ? arts : NULL,
		                       .nartists = it->artist >= 0 ? 1 : 0,
		                       .album = it->type == SEARCH_TRACK ? items[it->album].name : NULL,
		                       .genre = it->genre, .popularity = it->pop, .markets = it->markets};
		search_add(idx, &d);
	}
	double build_enc = now() - t0;
	long rss_enc = rss_kb() - rss0;
	struct search_stats st;
	search_stats(idx, &st);
	printf("encore: build %.2f s, RSS +%ld MiB (self-counted %zu MiB), %zu docs, %zu terms, %zu postings, %zu trie nodes\n",
	       build_enc, rss_enc / 1024, st.bytes >> 20, st.docs, st.terms, st.postings, st.trie_nodes);

	if (getenv("BENCH_Q")) {   /* profile one query: BENCH_Q="love night" bench_search N */
		double worst = 0, a0 = now();
		for (int i = 0; i < 200; i++) {
			struct search_query q = {.q = getenv("BENCH_Q"), .limit = 10};
			struct search_results r;
			double a = now();
			search_query(idx, &q, &r);
			if (now() - a > worst)
				worst = now() - a;
			search_results_free(&r);
		}
		printf("BENCH_Q: mean %.3f ms, worst %.3f ms\n", (now() - a0) / 200 * 1e3, worst * 1e3);
		return 0;
	}
	int nofts = getenv("BENCH_NOFTS") != NULL;   /* for quick tuning runs only */
	/* ---- SQLite FTS5, same data ---- */
	sqlite3 *db;
	sqlite3_open(":memory:", &db);
	sqlite3_exec(db, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;", NULL, NULL, NULL);
	if (sqlite3_exec(db, "CREATE VIRTUAL TABLE t USING fts5(name, artist, album, item UNINDEXED,"
	                 " tokenize='unicode61 remove_diacritics 2')", NULL, NULL, NULL) != SQLITE_OK) {
		fprintf(stderr, "fts5: %s\n", sqlite3_errmsg(db));
		return 1;
	}
	long rss1 = rss_kb();
	t0 = now();
	sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	sqlite3_stmt *ins;
	if (nofts)
		nitems = 0;
	sqlite3_prepare_v2(db, "INSERT INTO t(name, artist, album, item) VALUES(?,?,?,?)", -1, &ins, NULL);
	for (size_t i = 0; i < nitems; i++) {
		struct item *it = &items[i];
		sqlite3_bind_text(ins, 1, it->name, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 2, it->artist >= 0 ? items[it->artist].name : NULL, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 3, it->type == SEARCH_TRACK ? items[it->album].name : NULL, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 4, (sqlite3_int64)i);
		sqlite3_step(ins);
		sqlite3_reset(ins);
	}
	sqlite3_finalize(ins);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_exec(db, "INSERT INTO t(t) VALUES('optimize')", NULL, NULL, NULL);
	double build_fts = now() - t0;
	long rss_fts = rss_kb() - rss1;
	printf("fts5:   build %.2f s (incl. optimize), RSS +%ld MiB\n", build_fts, rss_fts / 1024);

	nitems = nart + nalb + ntracks;
	/* ---- query sets ---- */
	struct qcase *qs = xcalloc(nq, sizeof *qs), *ss = xcalloc(nq, sizeof *ss);
	int kinds[3] = {0};
	for (size_t i = 0; i < nq; i++) {
		/* targets biased to popular items, as real traffic is */
		size_t target;
		do
			target = namegen_rand(g) % nitems;
		while (items[target].pop < 30 && namegen_rand(g) % 3);
		int kind = (int)(i % 3);
		kinds[kind]++;
		qs[i].q = make_query(g, items[target].name, kind, 0);
		qs[i].target = (int)target;
		ss[i].q = make_query(g, items[target].name, i % 4 == 0 ? 1 : 0, 1);
		ss[i].target = (int)target;
	}

	double *lat = xcalloc(nq, sizeof *lat), *cpu = xcalloc(nq, sizeof *cpu);
	int found[2][3] = {{0}};
	for (size_t i = 0; i < nq; i++) {
		struct search_query q = {.q = qs[i].q, .limit = 10};
		struct search_results r;
		double a = now(), ac = cpu_now();
		int rc = search_query(idx, &q, &r);
		lat[i] = now() - a;
		cpu[i] = cpu_now() - ac;
		const struct item *it = &items[qs[i].target];
		if (rc == 0)
			for (size_t j = 0; j < r.page[it->type].n; j++)
				if (strcmp(r.page[it->type].hits[j].id, it->id) == 0)
					found[0][i % 3]++;
		search_results_free(&r);
	}
	if (getenv("BENCH_SLOW"))
		for (size_t i = 0; i < nq; i++)
			if (lat[i] > 0.003)
				printf("slow search %.2fms: %s\n", lat[i] * 1e3, qs[i].q);
	struct lat enc_s = pct(lat, nq), enc_s_cpu = pct(cpu, nq);

	for (size_t i = 0; i < nq; i++) {
		struct search_suggestion s[SEARCH_SUGGEST_MAX];
		size_t n;
		double a = now(), ac = cpu_now();
		search_suggest(idx, ss[i].q, 0, NULL, s, &n);
		lat[i] = now() - a;
		cpu[i] = cpu_now() - ac;
		search_suggestions_free(s, n);
	}
	if (getenv("BENCH_SLOW"))
		for (size_t i = 0; i < nq; i++)
			if (lat[i] > 0.002)
				printf("slow suggest %.2fms: %s\n", lat[i] * 1e3, ss[i].q);
	struct lat enc_g = pct(lat, nq), enc_g_cpu = pct(cpu, nq);

	sqlite3_stmt *sel;
	sqlite3_prepare_v2(db, "SELECT item FROM t WHERE t MATCH ?1 ORDER BY bm25(t, 3.0, 2.0, 1.0) LIMIT ?2",
	                   -1, &sel, NULL);
	for (size_t i = 0; i < nq; i++) {
		char *fq = fts_query(qs[i].q);
		const struct item *it = &items[qs[i].target];
		double a = now(), ac = cpu_now();
		sqlite3_bind_text(sel, 1, fq, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int(sel, 2, 60);   /* all types in one table: 6 x 10 to compare fairly */
		int seen = 0;
		while (sqlite3_step(sel) == SQLITE_ROW) {
			const struct item *x = &items[sqlite3_column_int64(sel, 0)];
			if (x->type == it->type && seen++ < 10 && x == it)
				found[1][i % 3]++;
		}
		sqlite3_reset(sel);
		lat[i] = now() - a;
		cpu[i] = cpu_now() - ac;
		free(fq);
	}
	struct lat fts_s = pct(lat, nq), fts_s_cpu = pct(cpu, nq);
	for (size_t i = 0; i < nq; i++) {
		char *fq = fts_query(ss[i].q);
		double a = now(), ac = cpu_now();
		sqlite3_bind_text(sel, 1, fq, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int(sel, 2, 10);
		while (sqlite3_step(sel) == SQLITE_ROW)
			;
		sqlite3_reset(sel);
		lat[i] = now() - a;
		cpu[i] = cpu_now() - ac;
		free(fq);
	}
	struct lat fts_g = pct(lat, nq), fts_g_cpu = pct(cpu, nq);
	sqlite3_finalize(sel);

	printf("\n%zu queries (%d exact, %d one-typo, %d prefix); suggest: %zu per-keystroke prefixes (1 in 4 with a typo)\n",
	       nq, kinds[0], kinds[1], kinds[2], nq);
	printf("%-28s %10s %10s   %10s %10s\n", "", "encore p50", "p99", "fts5 p50", "p99");
	printf("%-28s %8.3fms %8.3fms   %8.3fms %8.3fms   median ratio fts5/encore %.2fx\n", "search (limit 10/type)",
	       enc_s.p50, enc_s.p99, fts_s.p50, fts_s.p99, fts_s.p50 / enc_s.p50);
	printf("%-28s %8.3fms %8.3fms   %8.3fms %8.3fms   median ratio fts5/encore %.2fx\n", "suggest (10)",
	       enc_g.p50, enc_g.p99, fts_g.p50, fts_g.p99, fts_g.p50 / enc_g.p50);
	printf("%-28s %8.3fms %8.3fms   %8.3fms %8.3fms   (CPU time of the query's thread)\n", "search, CPU",
	       enc_s_cpu.p50, enc_s_cpu.p99, fts_s_cpu.p50, fts_s_cpu.p99);
	printf("%-28s %8.3fms %8.3fms   %8.3fms %8.3fms   (CPU time of the query's thread)\n", "suggest, CPU",
	       enc_g_cpu.p50, enc_g_cpu.p99, fts_g_cpu.p50, fts_g_cpu.p99);
	printf("recall@10 of the intended item: exact %.3f / %.3f, one typo %.3f / %.3f, prefix %.3f / %.3f (encore / fts5)\n",
	       (double)found[0][0] / kinds[0], (double)found[1][0] / kinds[0],
	       (double)found[0][1] / kinds[1], (double)found[1][1] / kinds[1],
	       (double)found[0][2] / kinds[2], (double)found[1][2] / kinds[2]);
	printf("build: encore %.2f s vs fts5 %.2f s (ratio %.2fx); memory: encore +%ld MiB vs fts5 +%ld MiB\n",
	       build_enc, build_fts, build_fts / build_enc, rss_enc / 1024, rss_fts / 1024);

	/* incremental updates at full size: re-add (= remove + add) popular and random tracks */
	{
		size_t nu = nq < 1000 ? nq : 1000;
		for (size_t i = 0; i < nu; i++) {
			struct item *it = &items[nart + nalb + namegen_rand(g) % ntracks];
			const char *arts[1] = {items[it->artist].name};
			struct search_doc d = {.type = it->type, .id = it->id, .name = qs[i].q,
			                       .artists = arts, .nartists = 1, .popularity = it->pop};
			double a = now();
			search_add(idx, &d);
			lat[i] = now() - a;
		}
		struct lat up = pct(lat, nu);
		printf("update (re-add with a new title, %zu tracks): p50 %.3f ms, p99 %.3f ms\n", nu, up.p50, up.p99);
	}

	for (size_t i = 0; i < nq; i++) {
		free(qs[i].q);
		free(ss[i].q);
	}
	free(qs);
	free(ss);
	free(lat);
	free(cpu);
	sqlite3_close(db);
	search_free(idx);
	for (size_t i = 0; i < nitems; i++)
		free(items[i].name);
	free(items);
	namegen_free(g);
	return 0;
}
