/* Unit tests for the search engine (mockserver/search.c) and Unicode folding (common/textfold.c). */
#include "../tap.h"
#include "id.h"
#include "search.h"
#include "textfold.h"
#include "xmem.h"
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

static const char *add(struct search_index *idx, enum search_type type, const char *seed,
                       const char *name, const char *artist, const char *album, const char *genre,
                       int pop, const char *markets)
{
	static char ids[512][ID_LEN + 1];   /* test-local id storage, reset per program */
	static int nids;
	char *id = ids[nids++ % 512];
	id_from_seed(seed, id);
	const char *arts[1] = {artist};
	struct search_doc d = {.type = type, .id = id, .name = name, .artists = artist ? arts : NULL,
	                       .nartists = artist ? 1 : 0, .album = album, .genre = genre,
	                       .popularity = pop, .markets = markets, .is_public = true};
	int rc = search_add(idx, &d);
	CHECK_INT(rc, 0);
	return id;
}

/* Rank (0-based) of id among hits of type for q, or -1 if absent from the first 50. */
static int rank_of(struct search_index *idx, const char *q, enum search_type type, const char *id,
                   const char *market, bool filter, const struct search_taste *taste,
                   struct search_parts *parts)
{
	struct search_query sq = {.q = q, .types = SEARCH_MASK(type), .limit = 50, .market = market,
	                          .market_filter = filter, .taste = taste};
	struct search_results r;
	int rank = -1;
	if (search_query(idx, &sq, &r) == 0) {
		for (size_t i = 0; i < r.page[type].n; i++)
			if (strcmp(r.page[type].hits[i].id, id) == 0) {
				rank = (int)i;
				if (parts)
					*parts = r.page[type].hits[i].parts;
				break;
			}
	}
	search_results_free(&r);
	return rank;
}

static void check_fold(const char *in, const char *want)
{
	char *got = fold_string(in);
	CHECK_STR(got, want);
	free(got);
}

static void test_fold_handles_case_accents_greek_cyrillic_and_bad_bytes(void)
{
	check_fold("Beyoncé", "beyonce");
	check_fold("BJÖRK", "bjork");
	check_fold("Sigur Rós", "sigur ros");
	check_fold("Straße Øystein Łódź Ærø Œuvre", "strasse oystein lodz aero oeuvre");
	check_fold("ΣΟΦΊΑ ΚΑΛΗΜΈΡΑ", "σοφια καλημερα");
	check_fold("ЁЛКА Кино ДДТ", "елка кино ддт");
	check_fold("Ǆemal Ȁȁ Ḟṓ", "dzemal aa fo");
	check_fold("Ｈｅｌｌｏ", "hello");
	check_fold("Beyonce\xcc\x81", "beyonce");          /* decomposed accent */
	check_fold("don't stop", "dont stop");
	check_fold("a\xff" "b\xc3" "c\xe2\x82", "a b c");  /* bad bytes separate words */
	check_fold("\xf0\x80\x80\x80x\xed\xa0\x80y", "x y"); /* overlong, surrogate */
	check_fold("AC/DC -- \"Live\"", "ac dc live");
}

static void test_search_folds_accents_and_case_both_ways(void)
{
	struct search_index *idx = search_new();
	const char *bey = add(idx, SEARCH_ARTIST, "bey", "Beyoncé", NULL, NULL, NULL, 80, NULL);
	const char *bjo = add(idx, SEARCH_ARTIST, "bjo", "Björk", NULL, NULL, NULL, 70, NULL);
	const char *kino = add(idx, SEARCH_ARTIST, "kino", "Кино", NULL, NULL, NULL, 60, NULL);
	const char *greek = add(idx, SEARCH_ARTIST, "gr", "Σωκράτης Μάλαμας", NULL, NULL, NULL, 60, NULL);
	CHECK_INT(rank_of(idx, "beyonce", SEARCH_ARTIST, bey, NULL, 0, NULL, NULL), 0);
	CHECK_INT(rank_of(idx, "BEYONCÉ", SEARCH_ARTIST, bey, NULL, 0, NULL, NULL), 0);
	CHECK_INT(rank_of(idx, "bjork", SEARCH_ARTIST, bjo, NULL, 0, NULL, NULL), 0);
	CHECK_INT(rank_of(idx, "КИНО", SEARCH_ARTIST, kino, NULL, 0, NULL, NULL), 0);
	CHECK_INT(rank_of(idx, "σωκρατης", SEARCH_ARTIST, greek, NULL, 0, NULL, NULL), 0);
	CHECK_INT(rank_of(idx, "ΜΑΛΑΜΑΣ", SEARCH_ARTIST, greek, NULL, 0, NULL, NULL), 0);
	search_free(idx);
}

static void test_cjk_name_found_by_substring_word(void)
{
	struct search_index *idx = search_new();
	const char *tokyo = add(idx, SEARCH_ARTIST, "tj", "東京事変", NULL, NULL, NULL, 50, NULL);
	const char *kana = add(idx, SEARCH_TRACK, "ar", "ありがとう", "いきものがかり", NULL, NULL, 50, NULL);
	const char *bts = add(idx, SEARCH_ARTIST, "bts", "방탄소년단", NULL, NULL, NULL, 90, NULL);
	add(idx, SEARCH_ARTIST, "other", "京都", NULL, NULL, NULL, 50, NULL);
	CHECK_INT(rank_of(idx, "京事", SEARCH_ARTIST, tokyo, NULL, 0, NULL, NULL), 0);
	CHECK_INT(rank_of(idx, "東京事変", SEARCH_ARTIST, tokyo, NULL, 0, NULL, NULL), 0);
	CHECK_INT(rank_of(idx, "事", SEARCH_ARTIST, tokyo, NULL, 0, NULL, NULL), 0);
	CHECK_INT(rank_of(idx, "がと", SEARCH_TRACK, kana, NULL, 0, NULL, NULL), 0);
	CHECK_INT(rank_of(idx, "いきもの", SEARCH_TRACK, kana, NULL, 0, NULL, NULL), 0);
	CHECK_INT(rank_of(idx, "소년", SEARCH_ARTIST, bts, NULL, 0, NULL, NULL), 0);
	/* a bigram that is not in the name must not match by its single characters */
	CHECK_INT(rank_of(idx, "京変", SEARCH_ARTIST, tokyo, NULL, 0, NULL, NULL), -1);
	search_free(idx);
}

static void test_typo_allowance_follows_word_length(void)
{
	struct search_index *idx = search_new();
	const char *abba = add(idx, SEARCH_ARTIST, "abba", "Abba", NULL, NULL, NULL, 50, NULL);
	const char *queen = add(idx, SEARCH_ARTIST, "queen", "Queen", NULL, NULL, NULL, 50, NULL);
	const char *bull = add(idx, SEARCH_ARTIST, "bull", "Bulldogs", NULL, NULL, NULL, 50, NULL);
	const char *sym = add(idx, SEARCH_ARTIST, "sym", "Symphonic", NULL, NULL, NULL, 50, NULL);
	/* trailing space: whole words, no prefix completion */
	CHECK_INT(rank_of(idx, "abda ", SEARCH_ARTIST, abba, NULL, 0, NULL, NULL), -1);   /* 4: none */
	CHECK_INT(rank_of(idx, "abba ", SEARCH_ARTIST, abba, NULL, 0, NULL, NULL), 0);
	CHECK_INT(rank_of(idx, "qveen ", SEARCH_ARTIST, queen, NULL, 0, NULL, NULL), 0);  /* 5: one */
	CHECK_INT(rank_of(idx, "queeen ", SEARCH_ARTIST, queen, NULL, 0, NULL, NULL), 0); /* insert */
	CHECK_INT(rank_of(idx, "qveeen ", SEARCH_ARTIST, queen, NULL, 0, NULL, NULL), -1); /* 6: two too many */
	CHECK_INT(rank_of(idx, "qeen ", SEARCH_ARTIST, queen, NULL, 0, NULL, NULL), -1);  /* 4 letters */
	CHECK_INT(rank_of(idx, "qvven ", SEARCH_ARTIST, queen, NULL, 0, NULL, NULL), -1);
	CHECK_INT(rank_of(idx, "bulldgos ", SEARCH_ARTIST, bull, NULL, 0, NULL, NULL), 0); /* transposition = 1 */
	CHECK_INT(rank_of(idx, "bulldxgz ", SEARCH_ARTIST, bull, NULL, 0, NULL, NULL), -1); /* 8: two too many */
	CHECK_INT(rank_of(idx, "symphpnix ", SEARCH_ARTIST, sym, NULL, 0, NULL, NULL), 0); /* 9: two */
	CHECK_INT(rank_of(idx, "sxmphpnix ", SEARCH_ARTIST, sym, NULL, 0, NULL, NULL), -1); /* three */
	CHECK_INT(rank_of(idx, "ysmphonic ", SEARCH_ARTIST, sym, NULL, 0, NULL, NULL), 0);
	struct search_parts p = {0};
	rank_of(idx, "bulldgos ", SEARCH_ARTIST, bull, NULL, 0, NULL, &p);
	CHECK_INT(p.typos, 1);
	/* the same rules hold when the word is the last one, typed as a prefix */
	CHECK_INT(rank_of(idx, "qvven", SEARCH_ARTIST, queen, NULL, 0, NULL, NULL), -1);
	CHECK_INT(rank_of(idx, "abda", SEARCH_ARTIST, abba, NULL, 0, NULL, NULL), -1);
	CHECK_INT(rank_of(idx, "BeAtls", SEARCH_ARTIST, queen, NULL, 0, NULL, NULL), -1);
	const char *beatles = add(idx, SEARCH_ARTIST, "beatles", "The Beatles", NULL, NULL, NULL, 90, NULL);
	CHECK_INT(rank_of(idx, "BeAtls", SEARCH_ARTIST, beatles, NULL, 0, NULL, NULL), 0);
	search_free(idx);
}

static void test_first_letter_typo_ranks_below_other_typo(void)
{
	struct search_index *idx = search_new();
	/* the first-letter variant is far more popular, so only the typo rule can order them */
	const char *v = add(idx, SEARCH_ARTIST, "v", "Vandel", NULL, NULL, NULL, 95, NULL);
	const char *b = add(idx, SEARCH_ARTIST, "b", "Bandal", NULL, NULL, NULL, 5, NULL);
	CHECK_INT(rank_of(idx, "bandel ", SEARCH_ARTIST, b, NULL, 0, NULL, NULL), 0);
	CHECK_INT(rank_of(idx, "bandel ", SEARCH_ARTIST, v, NULL, 0, NULL, NULL), 1);
	search_free(idx);
}

static void test_prefix_with_typo_suggests_completion(void)
{
	struct search_index *idx = search_new();
	const char *bb = add(idx, SEARCH_TRACK, "bb", "Billboard Hot Nights", "Various", NULL, NULL, 60, NULL);
	add(idx, SEARCH_TRACK, "bx", "Bill Withers Medley", "Various", NULL, NULL, 10, NULL);
	add(idx, SEARCH_TRACK, "zz", "Unrelated Thing", "Someone", NULL, NULL, 99, NULL);
	CHECK_INT(rank_of(idx, "bilyboard", SEARCH_TRACK, bb, NULL, 0, NULL, NULL), 0);
	CHECK_INT(rank_of(idx, "billbo", SEARCH_TRACK, bb, NULL, 0, NULL, NULL), 0);
	CHECK_INT(rank_of(idx, "bilbo", SEARCH_TRACK, bb, NULL, 0, NULL, NULL), 0);   /* 5 chars: 1 typo */
	CHECK_INT(rank_of(idx, "hot nig", SEARCH_TRACK, bb, NULL, 0, NULL, NULL), 0);
	struct search_suggestion s[SEARCH_SUGGEST_MAX];
	size_t n = 0;
	CHECK_INT(search_suggest(idx, "bilyboar", 0, NULL, s, &n), 0);
	CHECK(n >= 1 && strcmp(s[0].id, bb) == 0, "expected Billboard first, got %zu suggestions: %s",
	      n, n ? s[0].text : "-");
	CHECK(n >= 1 && strstr(s[0].text, "Billboard") != NULL, "text %s", n ? s[0].text : "-");
	search_suggestions_free(s, n);
	search_free(idx);
}

static void test_popular_exact_title_ranks_first(void)
{
	struct search_index *idx = search_new();
	add(idx, SEARCH_TRACK, "h1", "Happy", "Nobody", NULL, NULL, 12, NULL);
	const char *pw = add(idx, SEARCH_TRACK, "h2", "Happy", "Pharrell Williams", NULL, NULL, 92, NULL);
	add(idx, SEARCH_TRACK, "h3", "Happy Together", "The Turtles", NULL, NULL, 97, NULL);
	add(idx, SEARCH_TRACK, "h4", "Happy Birthday Happy Day", "Kids", NULL, NULL, 40, NULL);
	add(idx, SEARCH_TRACK, "h5", "Sad Song", "Happy Mondays", NULL, NULL, 99, NULL);
	add(idx, SEARCH_TRACK, "h6", "Hapy Accident", "Typo Band", NULL, NULL, 100, NULL);
	CHECK_INT(rank_of(idx, "happy", SEARCH_TRACK, pw, NULL, 0, NULL, NULL), 0);
	CHECK_INT(rank_of(idx, "Happy", SEARCH_TRACK, pw, NULL, 0, NULL, NULL), 0);
	struct search_query q = {.q = "happy", .types = SEARCH_MASK(SEARCH_TRACK)};
	struct search_results r;
	CHECK_INT(search_query(idx, &q, &r), 0);
	CHECK_INT(r.page[SEARCH_TRACK].total, 6);   /* "happy" has 5 letters: "Hapy" is one edit away */
	CHECK(r.page[SEARCH_TRACK].n >= 2 && strcmp(r.page[SEARCH_TRACK].hits[1].name, "Happy") == 0,
	      "second hit should be the other exact title, got %s",
	      r.page[SEARCH_TRACK].n >= 2 ? r.page[SEARCH_TRACK].hits[1].name : "-");
	search_results_free(&r);
	search_free(idx);
}

static void test_taste_puts_jazz_first_for_jazz_listener(void)
{
	struct search_index *idx = search_new();
	const char *rock = add(idx, SEARCH_TRACK, "r", "Blue Moon", "The Rockers", NULL, "rock", 60, NULL);
	const char *jazz = add(idx, SEARCH_TRACK, "j", "Blue Moon", "Ella Trio", NULL, "Jazz", 50, NULL);
	CHECK_INT(rank_of(idx, "blue moon", SEARCH_TRACK, rock, NULL, 0, NULL, NULL), 0);
	struct search_weight g[] = {{"jazz", 1.0f}};
	struct search_taste jazzfan = {.genres = g, .ngenres = 1};
	CHECK_INT(rank_of(idx, "blue moon", SEARCH_TRACK, jazz, NULL, 0, &jazzfan, NULL), 0);
	struct search_weight a[] = {{"the rockers", 1.0f}};
	struct search_taste rockfan = {.artists = a, .nartists = 1};
	CHECK_INT(rank_of(idx, "blue moon", SEARCH_TRACK, rock, NULL, 0, &rockfan, NULL), 0);
	/* taste does not lift a worse text match over an exact one */
	const char *far = add(idx, SEARCH_TRACK, "f", "Blue Skies Over The Moon Tonight", "X", NULL, "jazz", 50, NULL);
	CHECK_INT(rank_of(idx, "blue moon", SEARCH_TRACK, far, NULL, 0, &jazzfan, NULL), 2);
	search_free(idx);
}

static void test_market_sorts_unplayable_last_or_filters(void)
{
	struct search_index *idx = search_new();
	const char *us = add(idx, SEARCH_TRACK, "us", "Song Alpha", "A", NULL, NULL, 90, "US,CA");
	const char *se = add(idx, SEARCH_TRACK, "se", "Song Alpha", "B", NULL, NULL, 10, "SE,DE");
	const char *all = add(idx, SEARCH_TRACK, "all", "Song Alpha Extended", "C", NULL, NULL, 5, NULL);
	CHECK_INT(rank_of(idx, "song alpha", SEARCH_TRACK, us, NULL, 0, NULL, NULL), 0);
	CHECK_INT(rank_of(idx, "song alpha", SEARCH_TRACK, se, "SE", 0, NULL, NULL), 0);
	CHECK_INT(rank_of(idx, "song alpha", SEARCH_TRACK, all, "SE", 0, NULL, NULL), 1);
	struct search_parts p = {0};
	CHECK_INT(rank_of(idx, "song alpha", SEARCH_TRACK, us, "se", 0, NULL, &p), 2);
	CHECK(p.market < 0, "market part %f", p.market);
	CHECK_INT(rank_of(idx, "song alpha", SEARCH_TRACK, us, "SE", 1, NULL, NULL), -1);
	CHECK_INT(rank_of(idx, "song alpha", SEARCH_TRACK, all, "SE", 1, NULL, NULL), 1);
	search_free(idx);
}

static void test_add_remove_update_visible_immediately(void)
{
	struct search_index *idx = search_new();
	const char *id = add(idx, SEARCH_ALBUM, "alb", "Midnight Marauders", "A Tribe Called Quest", NULL, NULL, 70, NULL);
	CHECK_INT(rank_of(idx, "marauders", SEARCH_ALBUM, id, NULL, 0, NULL, NULL), 0);
	CHECK_INT(search_remove(idx, SEARCH_ALBUM, id), 0);
	CHECK_INT(rank_of(idx, "marauders", SEARCH_ALBUM, id, NULL, 0, NULL, NULL), -1);
	CHECK_INT(search_remove(idx, SEARCH_ALBUM, id), -ENOENT);
	const char *id2 = add(idx, SEARCH_ALBUM, "alb", "Low End Theory", "A Tribe Called Quest", NULL, NULL, 70, NULL);
	CHECK_INT(rank_of(idx, "theory", SEARCH_ALBUM, id2, NULL, 0, NULL, NULL), 0);
	/* update under the same id replaces the old text */
	const char *arts[] = {"A Tribe Called Quest"};
	struct search_doc d = {.type = SEARCH_ALBUM, .id = id2, .name = "Beats Rhymes and Life",
	                       .artists = arts, .nartists = 1, .popularity = 70};
	CHECK_INT(search_add(idx, &d), 0);
	CHECK_INT(rank_of(idx, "theory ", SEARCH_ALBUM, id2, NULL, 0, NULL, NULL), -1);
	CHECK_INT(rank_of(idx, "rhymes", SEARCH_ALBUM, id2, NULL, 0, NULL, NULL), 0);
	struct search_stats st;
	search_stats(idx, &st);
	CHECK_INT(st.docs, 1);
	CHECK_INT(st.postings, 8);   /* beats rhymes and life + a tribe called quest */
	/* private playlists are not searchable; publishing then unpublishing works */
	struct search_doc pl = {.type = SEARCH_PLAYLIST, .id = id2, .name = "Secret Mix", .is_public = true};
	CHECK_INT(search_add(idx, &pl), 0);
	CHECK_INT(rank_of(idx, "secret", SEARCH_PLAYLIST, id2, NULL, 0, NULL, NULL), 0);
	pl.is_public = false;
	CHECK_INT(search_add(idx, &pl), 0);
	CHECK_INT(rank_of(idx, "secret", SEARCH_PLAYLIST, id2, NULL, 0, NULL, NULL), -1);
	d.id = "short";
	CHECK_INT(search_add(idx, &d), -EINVAL);
	search_free(idx);
}

/* ---------- quality set ---------- */

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static const char *const syl[] = {
	"ka", "lo", "mi", "ran", "te", "vo", "sel", "na", "dor", "pi", "quen", "stra", "bel", "fu",
	"gri", "mon", "zal", "che", "ver", "tis", "ho", "lan", "bri", "sa", "mor", "den", "ju", "pex",
	"wil", "ro", "ta", "cy", "mar", "ne", "vis", "ol", "gan", "ester", "ul", "tra",
};

static void gen_word(uint64_t *r, char *out, int minsyl)
{
	int n = minsyl + (int)(rng_next(r) % 3);
	out[0] = 0;
	for (int i = 0; i < n; i++)
		strcat(out, syl[rng_next(r) % (sizeof syl / sizeof syl[0])]);
}

/* One random edit of kind k at a random position of word w (ASCII). */
static void edit_word(uint64_t *r, char *w, int kind)
{
	size_t n = strlen(w);
	size_t p = rng_next(r) % n;
	char c = (char)('a' + rng_next(r) % 26);
	switch (kind) {
	case 0: /* substitute */
		if (w[p] == c)
			c = c == 'z' ? 'a' : c + 1;
		w[p] = c;
		break;
	case 1: /* insert */
		memmove(w + p + 1, w + p, n - p + 1);
		w[p] = c;
		break;
	case 2: /* delete */
		memmove(w + p, w + p + 1, n - p);
		break;
	default: /* transpose */
		if (p + 1 >= n)
			p = n - 2;
		if (w[p] == w[p + 1]) {
			w[p] = w[p] == 'z' ? 'a' : w[p] + 1;
		} else {
			char t = w[p];
			w[p] = w[p + 1];
			w[p + 1] = t;
		}
		break;
	}
}

#define QN 3000

static void test_quality_recall_on_synthetic_catalog(void)
{
	struct search_index *idx = search_new();
	static char names[QN][3][40];   /* words of each item's name */
	static int nwords[QN];
	static char ids[QN][ID_LEN + 1];
	uint64_t r = 88172645463325252ull;
	for (int i = 0; i < QN; i++) {
		char name[160] = "";
		nwords[i] = 1 + (int)(rng_next(&r) % 3);
		for (int w = 0; w < nwords[i]; w++) {
			gen_word(&r, names[i][w], w == 0 ? 2 : 1);
			if (w)
				strcat(name, " ");
			/* some names carry accents: the index must fold them, queries type plain ASCII */
			if (rng_next(&r) % 5 == 0 && strchr(names[i][w], 'e')) {
				char *e = strchr(names[i][w], 'e');
				size_t off = (size_t)(e - names[i][w]);
				strncat(name, names[i][w], off);
				strcat(name, "é");
				strcat(name, e + 1);
			} else {
				strcat(name, names[i][w]);
			}
		}
		name[0] = (char)(name[0] - 32);   /* Capitalised */
		char seed[32], artist[64];
		snprintf(seed, sizeof seed, "q%d", i);
		gen_word(&r, artist, 2);
		id_from_seed(seed, ids[i]);
		enum search_type type = (enum search_type)(i % 3);
		const char *arts[] = {artist};
		struct search_doc d = {.type = type, .id = ids[i], .name = name, .artists = arts,
		                       .nartists = 1, .popularity = (int)(rng_next(&r) % 101)};
		CHECK_INT(search_add(idx, &d), 0);
	}
	int tried1 = 0, hit1 = 0, tried2 = 0, hit2 = 0, triedp = 0, hitp = 0;
	for (int i = 0; i < QN; i++) {
		enum search_type type = (enum search_type)(i % 3);
		/* longest word gets the edits */
		int lw = 0;
		for (int w = 1; w < nwords[i]; w++)
			if (strlen(names[i][w]) > strlen(names[i][lw]))
				lw = w;
		size_t L = strlen(names[i][lw]);
		char q[200], word[64];
		for (int pass = 0; pass < 3; pass++) {
			if (pass == 0 && L < 5)
				continue;
			if (pass == 1 && L < 9)
				continue;
			q[0] = 0;
			for (int w = 0; w < nwords[i]; w++) {
				strcpy(word, names[i][w]);
				if (w == lw && pass == 0)
					edit_word(&r, word, (int)(rng_next(&r) % 4));
				if (w == lw && pass == 1) {
					edit_word(&r, word, (int)(rng_next(&r) % 4));
					edit_word(&r, word, (int)(rng_next(&r) % 4));
				}
				if (pass == 2 && w == nwords[i] - 1) {
					size_t keep = 3 + rng_next(&r) % 3;
					if (keep < strlen(word))
						word[keep] = 0;
				}
				if (rng_next(&r) % 2)
					word[0] = (char)(word[0] - 32);   /* random case */
				if (w)
					strcat(q, " ");
				strcat(q, word);
			}
			int rank = rank_of(idx, q, type, ids[i], NULL, 0, NULL, NULL);
			int ok = rank >= 0 && rank < 10;
			if (pass == 0) { tried1++; hit1 += ok; }
			if (pass == 1) { tried2++; hit2 += ok; }
			if (pass == 2) { triedp++; hitp += ok; }
		}
	}
	double r1 = (double)hit1 / tried1, r2 = (double)hit2 / tried2, rp = (double)hitp / triedp;
	printf("# recall@10: one edit %.3f (%d queries), two edits on 9+ letters %.3f (%d), "
	       "truncated prefix %.3f (%d)\n", r1, tried1, r2, tried2, rp, triedp);
	CHECK(tried1 > 1000 && tried2 > 200, "too few queries %d %d", tried1, tried2);
	CHECK(r1 >= 0.97, "one-edit recall %.3f", r1);
	CHECK(r2 >= 0.90, "two-edit recall %.3f", r2);
	CHECK(rp >= 0.90, "prefix recall %.3f", rp);
	search_free(idx);
}

static void test_bad_input_is_searched_or_refused(void)
{
	struct search_index *idx = search_new();
	const char *h = add(idx, SEARCH_TRACK, "hello", "Hello", "Adele", NULL, NULL, 80, NULL);
	char *longq = xmalloc(10001);
	memset(longq, 'a', 10000);
	longq[10000] = 0;
	struct { const char *q; int rc; int finds; } cases[] = {
		{"", -EINVAL, 0},
		{"    ", -EINVAL, 0},
		{longq, -EINVAL, 0},
		{"\x01\x02\x1b\x7f", -EINVAL, 0},
		{"\x1b[31m hello", 0, 1},
		{"\xff\xfe\xc3", -EINVAL, 0},
		{"\"hello\"", 0, 1},
		{"hel*", 0, 1},
		{"hello NEAR adele", 0, 1},
		{"-hello", 0, 1},
		{"hello OR 1=1; DROP TABLE tracks; --", 0, 0},   /* 1 of 7 words: too few */
		{"hello OR adele", 0, 1},
		{"\"", -EINVAL, 0},
		{"*", -EINVAL, 0},
		{"h\xffllo", 0, 0},
		{"hello\x01" "adele", 0, 1},
		{"(hello) AND ^adele:", 0, 1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct search_query q = {.q = cases[i].q};
		struct search_results r;
		int rc = search_query(idx, &q, &r);
		CHECK(rc == cases[i].rc, "case %zu: rc %d, want %d", i, rc, cases[i].rc);
		if (rc < 0)
			CHECK(r.error[0] != 0, "case %zu: refused without a message", i);
		int found = r.page[SEARCH_TRACK].n && strcmp(r.page[SEARCH_TRACK].hits[0].id, h) == 0;
		if (cases[i].finds)
			CHECK(found, "case %zu should find Hello", i);
		search_results_free(&r);
		struct search_suggestion s[SEARCH_SUGGEST_MAX];
		size_t n = 99;
		rc = search_suggest(idx, cases[i].q, 0, NULL, s, &n);
		CHECK(rc == cases[i].rc, "suggest case %zu: rc %d", i, rc);
		CHECK(n <= SEARCH_SUGGEST_MAX, "suggest count %zu", n);
		search_suggestions_free(s, n);
	}
	struct search_results r;
	struct search_query q = {.q = "hello", .limit = 51};
	CHECK_INT(search_query(idx, &q, &r), -EINVAL);
	search_results_free(&r);
	q = (struct search_query){.q = "hello", .market = "XYZ"};
	CHECK_INT(search_query(idx, &q, &r), -EINVAL);
	search_results_free(&r);
	q = (struct search_query){.q = "hello", .offset = -1};
	CHECK_INT(search_query(idx, &q, &r), -EINVAL);
	search_results_free(&r);
	CHECK_INT(search_query(idx, NULL, &r), -EINVAL);
	search_results_free(&r);
	free(longq);
	search_free(idx);
}

static void test_paging_and_per_type_totals(void)
{
	struct search_index *idx = search_new();
	char name[64], seed[32];
	for (int i = 0; i < 30; i++) {
		snprintf(name, sizeof name, "Ocean Tune %d", i);
		snprintf(seed, sizeof seed, "o%d", i);
		add(idx, i < 25 ? SEARCH_TRACK : SEARCH_EPISODE, seed, name, NULL, NULL, NULL, i, NULL);
	}
	struct search_query q = {.q = "ocean", .limit = 10, .offset = 20};
	struct search_results r;
	CHECK_INT(search_query(idx, &q, &r), 0);
	CHECK_INT(r.page[SEARCH_TRACK].total, 25);
	CHECK_INT(r.page[SEARCH_TRACK].n, 5);
	CHECK_INT(r.page[SEARCH_EPISODE].total, 5);
	CHECK_INT(r.page[SEARCH_EPISODE].n, 0);
	CHECK_INT(r.page[SEARCH_ARTIST].total, 0);
	/* popularity order within equal text: offset 20 of 25 is popularity 4 */
	CHECK(r.page[SEARCH_TRACK].n && strcmp(r.page[SEARCH_TRACK].hits[0].name, "Ocean Tune 4") == 0,
	      "got %s", r.page[SEARCH_TRACK].n ? r.page[SEARCH_TRACK].hits[0].name : "-");
	search_results_free(&r);
	search_free(idx);
}

static void test_random_bytes_never_crash(void)
{
	struct search_index *idx = search_new();
	uint64_t r = 0x2545F4914F6CDD1Dull;
	char buf[200], seed[32], id[ID_LEN + 1];
	int bad = 0;
	for (int i = 0; i < 3000; i++) {
		size_t n = 1 + rng_next(&r) % (sizeof buf - 1);
		for (size_t j = 0; j < n; j++)
			buf[j] = (char)(rng_next(&r) % 255 + 1);   /* any byte but NUL */
		buf[n] = 0;
		if (i % 2 == 0) {
			snprintf(seed, sizeof seed, "rb%d", i);
			id_from_seed(seed, id);
			struct search_doc d = {.type = (enum search_type)(i % SEARCH_NTYPES), .id = id,
			                       .name = buf, .album = buf, .popularity = i % 101,
			                       .markets = buf, .is_public = true};
			bad += search_add(idx, &d) != 0;
		} else {
			struct search_query q = {.q = buf, .market = i % 4 == 1 ? "SE" : NULL};
			struct search_results res;
			int rc = search_query(idx, &q, &res);
			bad += rc != 0 && rc != -EINVAL;
			search_results_free(&res);
			struct search_suggestion s[SEARCH_SUGGEST_MAX];
			size_t ns = 0;
			rc = search_suggest(idx, buf, 0, NULL, s, &ns);
			bad += rc != 0 && rc != -EINVAL;
			search_suggestions_free(s, ns);
		}
	}
	CHECK_INT(bad, 0);
	/* a huge name is indexed (its first 255 words per field) without stalling */
	char *huge = xmalloc(200001);
	for (int i = 0; i < 200000; i++)
		huge[i] = i % 7 == 6 ? ' ' : (char)('a' + (i / 7) % 26);
	huge[200000] = 0;
	id_from_seed("huge", id);
	struct search_doc d = {.type = SEARCH_TRACK, .id = id, .name = huge};
	CHECK_INT(search_add(idx, &d), 0);
	free(huge);
	search_free(idx);
}

struct conc { struct search_index *idx; const char *id; int misses; };

static void *reader(void *arg)
{
	struct conc *c = arg;
	for (int i = 0; i < 300; i++)
		if (rank_of(c->idx, "steady anchor", SEARCH_TRACK, c->id, NULL, 0, NULL, NULL) != 0)
			c->misses++;
	return NULL;
}

static void test_concurrent_queries_during_ingest(void)
{
	struct search_index *idx = search_new();
	const char *id = add(idx, SEARCH_TRACK, "anchor", "Steady Anchor", "Keel", NULL, NULL, 100, NULL);
	struct conc c[3] = {{idx, id, 0}, {idx, id, 0}, {idx, id, 0}};
	pthread_t th[3];
	for (int i = 0; i < 3; i++)
		pthread_create(&th[i], NULL, reader, &c[i]);
	char name[64], seed[32], idbuf[ID_LEN + 1];
	for (int i = 0; i < 2000; i++) {
		snprintf(name, sizeof name, "Steady Drift %d", i);
		snprintf(seed, sizeof seed, "d%d", i);
		id_from_seed(seed, idbuf);
		struct search_doc d = {.type = SEARCH_TRACK, .id = idbuf, .name = name, .popularity = 50};
		search_add(idx, &d);
		if (i % 3 == 0)
			search_remove(idx, SEARCH_TRACK, idbuf);
	}
	for (int i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		CHECK_INT(c[i].misses, 0);
	}
	struct search_stats st;
	search_stats(idx, &st);
	CHECK_INT(st.docs, 1 + 2000 - 667);
	search_free(idx);
}

int main(void)
{
	RUN(test_fold_handles_case_accents_greek_cyrillic_and_bad_bytes);
	RUN(test_search_folds_accents_and_case_both_ways);
	RUN(test_cjk_name_found_by_substring_word);
	RUN(test_typo_allowance_follows_word_length);
	RUN(test_first_letter_typo_ranks_below_other_typo);
	RUN(test_prefix_with_typo_suggests_completion);
	RUN(test_popular_exact_title_ranks_first);
	RUN(test_taste_puts_jazz_first_for_jazz_listener);
	RUN(test_market_sorts_unplayable_last_or_filters);
	RUN(test_add_remove_update_visible_immediately);
	RUN(test_paging_and_per_type_totals);
	RUN(test_quality_recall_on_synthetic_catalog);
	RUN(test_bad_input_is_searched_or_refused);
	RUN(test_random_bytes_never_crash);
	RUN(test_concurrent_queries_during_ingest);
	return TAP_DONE();
}
