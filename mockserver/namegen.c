/* namegen: see namegen.h. The vocabulary is built once per generator (60,000 words, a
 * few ms) so names repeat words the way real catalogs do. */
#include "namegen.h"
#include "xmem.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VOCAB 60000

static const char *const SYL[] = {
	"ka", "lo", "mi", "ran", "te", "vo", "sel", "na", "dor", "pi", "quen", "stra", "bel", "fu",
	"gri", "mon", "zal", "che", "ver", "tis", "ho", "lan", "bri", "sa", "mor", "den", "ju", "pex",
	"wil", "ro", "ta", "cy", "mar", "ne", "vis", "ol", "gan", "ester", "ul", "tra", "shi", "ko",
	"an", "el", "dra", "mu", "sti", "ga", "rel", "po", "nik", "ze", "ba", "lu", "fen", "tor",
};
static const char *const COMMON[] = {
	"love", "night", "heart", "baby", "time", "dream", "fire", "home", "light", "dance", "blue",
	"summer", "world", "girl", "life", "rain", "sky", "gold", "wild", "song", "river", "moon",
	"happy", "forever", "tonight", "money", "remix", "live", "version", "feat", "stars", "road",
	"city", "black", "sweet", "lonely", "angel", "shadow", "fever", "paradise", "ocean", "run",
	"broken", "together", "little", "young", "crazy", "midnight", "morning", "highway", "symphony",
	"billboard", "memories", "electric", "brother", "thunder", "whiskey", "freedom", "goodbye",
};
static const char *const CYR[] = {"Кино", "Звезда", "Ночь", "Любовь", "Город", "Песня", "Лето"};
static const char *const CJK[] = {"東京", "夜空", "さくら", "ありがとう", "사랑", "우리", "青春", "未来"};
static const char *const GENRES[] = {"pop", "rock", "jazz", "hip hop", "electronic", "classical", "folk", "metal"};

#define NSYL (sizeof(SYL) / sizeof(SYL[0]))
#define NCOMMON (sizeof(COMMON) / sizeof(COMMON[0]))

struct namegen {
	uint64_t r;
	char **vocab;
};

uint64_t namegen_rand(struct namegen *g)
{
	g->r ^= g->r << 13;
	g->r ^= g->r >> 7;
	g->r ^= g->r << 17;
	return g->r;
}

size_t namegen_zipf(struct namegen *g, size_t n)
{
	double u = (double)(namegen_rand(g) % 1000000) / 1e6;
	size_t k = (size_t)((double)n * u * u * u);
	return k < n ? k : n - 1;
}

struct namegen *namegen_new(uint64_t seed)
{
	struct namegen *g = xcalloc(1, sizeof(*g));
	g->r = seed ? seed : 0x9E3779B97F4A7C15ull;
	g->vocab = xcalloc(VOCAB, sizeof(*g->vocab));
	for (size_t i = 0; i < VOCAB; i++) {
		char w[96] = "";   /* at most 4 syllables of 5 bytes, plus 1 for an accent */
		int n = 1 + (int)(namegen_rand(g) % 4);
		for (int k = 0; k < n; k++)
			strcat(w, SYL[namegen_rand(g) % NSYL]);
		if (namegen_rand(g) % 20 == 0) {   /* some accented words */
			char *e = strchr(w, 'e'), *o = strchr(w, 'o');
			char tmp[64];
			if (e) {
				*e = 0;
				snprintf(tmp, sizeof(tmp), "%s\xc3\xa9%s", w, e + 1);
				snprintf(w, sizeof(w), "%s", tmp);
			} else if (o) {
				*o = 0;
				snprintf(tmp, sizeof(tmp), "%s\xc3\xb6%s", w, o + 1);
				snprintf(w, sizeof(w), "%s", tmp);
			}
		}
		g->vocab[i] = xstrdup(w);
	}
	return g;
}

void namegen_free(struct namegen *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < VOCAB; i++)
		free(g->vocab[i]);
	free(g->vocab);
	free(g);
}

void namegen_name(struct namegen *g, char *out, size_t cap, int minw, int maxw)
{
	int n = minw + (int)(namegen_rand(g) % (unsigned)(maxw - minw + 1));
	uint64_t x = namegen_rand(g) % 1000;
	out[0] = 0;
	if (x < 10) {
		snprintf(out, cap, "%s %s", CYR[namegen_rand(g) % 7], CYR[namegen_rand(g) % 7]);
		return;
	}
	if (x < 15) {
		snprintf(out, cap, "%s%s", CJK[namegen_rand(g) % 8], CJK[namegen_rand(g) % 8]);
		return;
	}
	size_t len = 0;
	for (int i = 0; i < n; i++) {
		const char *w = namegen_rand(g) % 100 < 35 ? COMMON[namegen_zipf(g, NCOMMON)]
							   : g->vocab[namegen_zipf(g, VOCAB)];
		int wrote = snprintf(out + len, cap - len, "%s%c%s", i ? " " : "",
				     (unsigned char)w[0] < 0x80 ? (char)(w[0] - 32) : w[0], w + 1);
		if (wrote < 0 || (size_t)wrote >= cap - len) {
			out[len] = 0;   /* the word that did not fit is left out whole */
			break;
		}
		len += (size_t)wrote;
	}
}

const char *namegen_genre(struct namegen *g)
{
	return GENRES[namegen_rand(g) % 8];
}
