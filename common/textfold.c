/* textfold: see textfold.h. The table covers the blocks where folding is not the identity;
 * everything outside the listed ranges is a word character as-is, which is what lets
 * queries in any script match documents in the same script. */
#include "textfold.h"
#include "xmem.h"
#include "buf.h"
#include <string.h>

#include "textfold_table.h"

uint32_t fold_next_cp(const char *str, size_t n, size_t *i)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t p = *i;
	unsigned c = s[p];
	uint32_t cp, min;
	int extra;
	if (c < 0x80) {
		*i = p + 1;
		return c;
	} else if ((c & 0xE0) == 0xC0) {
		cp = c & 0x1F; extra = 1; min = 0x80;
	} else if ((c & 0xF0) == 0xE0) {
		cp = c & 0x0F; extra = 2; min = 0x800;
	} else if ((c & 0xF8) == 0xF0) {
		cp = c & 0x07; extra = 3; min = 0x10000;
	} else {
		goto bad;
	}
	if (p + (size_t)extra >= n)
		goto bad;
	for (int k = 1; k <= extra; k++) {
		unsigned cc = s[p + k];
		if ((cc & 0xC0) != 0x80)
			goto bad;
		cp = (cp << 6) | (cc & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		goto bad;
	*i = p + 1 + (size_t)extra;
	return cp;
bad:
	*i = p + 1;
	return FOLD_BAD;
}

int fold_put_utf8(uint32_t cp, char *out)
{
	unsigned char *o = (unsigned char *)out;
	if (cp < 0x80) {
		o[0] = (unsigned char)cp;
		return 1;
	} else if (cp < 0x800) {
		o[0] = (unsigned char)(0xC0 | (cp >> 6));
		o[1] = (unsigned char)(0x80 | (cp & 0x3F));
		return 2;
	} else if (cp < 0x10000) {
		o[0] = (unsigned char)(0xE0 | (cp >> 12));
		o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (unsigned char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (unsigned char)(0xF0 | (cp >> 18));
	o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
	o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
	o[3] = (unsigned char)(0x80 | (cp & 0x3F));
	return 4;
}

static const struct fold_row *table_find(uint32_t cp)
{
	size_t lo = 0, hi = sizeof fold_rows / sizeof fold_rows[0];
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (fold_rows[mid].cp == cp)
			return &fold_rows[mid];
		if (fold_rows[mid].cp < cp)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int is_cjk(uint32_t cp)
{
	return (cp >= 0x3040 && cp <= 0x30FA) || (cp >= 0x30FC && cp <= 0x30FF) ||
	       (cp >= 0x31F0 && cp <= 0x31FF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
	       (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0xF900 && cp <= 0xFAFF) ||
	       (cp >= 0xAC00 && cp <= 0xD7AF) || (cp >= 0x1100 && cp <= 0x11FF) ||
	       (cp >= 0x3130 && cp <= 0x318F) || (cp >= 0xFF66 && cp <= 0xFF9F) ||
	       (cp >= 0x20000 && cp <= 0x3FFFF);
}

static int is_ignorable(uint32_t cp)
{
	/* combining marks (decomposed input) and apostrophes, so "don't" == "dont" */
	return (cp >= 0x300 && cp <= 0x36F) || (cp >= 0x1AB0 && cp <= 0x1AFF) ||
	       (cp >= 0x1DC0 && cp <= 0x1DFF) || (cp >= 0x20D0 && cp <= 0x20FF) ||
	       (cp >= 0xFE20 && cp <= 0xFE2F) || cp == '\'' || cp == 0x2018 || cp == 0x2019 ||
	       cp == 0x200B || cp == 0x200C || cp == 0x200D || cp == 0xFE0F || cp == 0xAD;
}

static int is_separator(uint32_t cp)
{
	return cp == FOLD_BAD || cp < 0x30 || (cp > 0x39 && cp < 0x41) || (cp > 0x5A && cp < 0x61) ||
	       (cp > 0x7A && cp <= 0xBF) || (cp >= 0x2000 && cp <= 0x2BFF) ||
	       (cp >= 0x3000 && cp <= 0x303F) || cp == 0x30FB || (cp >= 0xFE10 && cp <= 0xFE6F) ||
	       (cp >= 0xFFF0 && cp <= 0xFFFF) || (cp >= 0x1F000 && cp <= 0x1FAFF) ||
	       (cp >= 0xE0000 && cp <= 0xE007F);
}

int fold_cp(uint32_t cp, uint32_t out[3], enum fold_class *cls)
{
	if (cp < 0x80) {
		if (cp >= 'A' && cp <= 'Z') {
			*cls = FOLD_WORD;
			out[0] = cp + 32;
			return 1;
		}
		if ((cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9')) {
			*cls = FOLD_WORD;
			out[0] = cp;
			return 1;
		}
		*cls = cp == '\'' ? FOLD_IGNORE : FOLD_SEP;
		return 0;
	}
	if (is_ignorable(cp)) {
		*cls = FOLD_IGNORE;
		return 0;
	}
	if (is_separator(cp)) {
		*cls = FOLD_SEP;
		return 0;
	}
	if (is_cjk(cp)) {
		*cls = FOLD_CJK;
		out[0] = cp;
		return 1;
	}
	const struct fold_row *r = table_find(cp);
	if (!r) {
		*cls = FOLD_WORD;
		out[0] = cp;
		return 1;
	}
	if (r->kind == 1) {
		*cls = FOLD_SEP;
		return 0;
	}
	if (r->kind == 2) {
		*cls = FOLD_IGNORE;
		return 0;
	}
	*cls = FOLD_WORD;
	int k = 0;
	size_t i = 0, len = strlen(r->out);
	while (i < len && k < 3)
		out[k++] = fold_next_cp(r->out, len, &i);
	return k;
}

#define CJK_RUN_MAX 64

struct tok_state {
	enum fold_mode mode;
	fold_token_fn fn;
	void *ctx;
	int pos;
	char word[FOLD_MAX_TOKEN + 4];
	size_t wlen;
	int wtrunc;
	uint32_t run[CJK_RUN_MAX];
	int nrun;
};

static void flush_word(struct tok_state *t, unsigned flags)
{
	if (t->wlen) {
		t->fn(t->ctx, t->word, t->wlen, t->pos++, flags);
		t->wlen = 0;
	}
	t->wtrunc = 0;
}

static void flush_run(struct tok_state *t, unsigned flags)
{
	char tok[8];
	int n = t->nrun;
	if (!n)
		return;
	for (int i = 0; i < n; i++) {
		int last = i == n - 1;
		if (t->mode == FOLD_DOC || n == 1) {
			int l = fold_put_utf8(t->run[i], tok);
			t->fn(t->ctx, tok, (size_t)l, t->pos + i, FOLD_TOK_CJK | (last ? flags : 0));
		}
		if (i + 1 < n) {
			int l = fold_put_utf8(t->run[i], tok);
			l += fold_put_utf8(t->run[i + 1], tok + l);
			t->fn(t->ctx, tok, (size_t)l, t->pos + i,
			      FOLD_TOK_CJK | FOLD_TOK_BIGRAM | (i + 2 == n ? flags : 0));
		}
	}
	t->pos += n;
	t->nrun = 0;
}

int fold_tokenize(const char *s, size_t n, enum fold_mode mode, fold_token_fn fn, void *ctx)
{
	struct tok_state t = {.mode = mode, .fn = fn, .ctx = ctx};
	size_t i = 0;
	if (!s)
		return 0;
	while (i < n) {
		uint32_t cp = fold_next_cp(s, n, &i), out[3];
		enum fold_class cls;
		int k = fold_cp(cp, out, &cls);
		switch (cls) {
		case FOLD_IGNORE:
			break;
		case FOLD_SEP:
			flush_word(&t, 0);
			flush_run(&t, 0);
			break;
		case FOLD_CJK:
			flush_word(&t, 0);
			if (t.nrun == CJK_RUN_MAX) {
				/* keep the bigram across the cut so long runs still match */
				uint32_t lastcp = t.run[CJK_RUN_MAX - 1];
				flush_run(&t, 0);
				t.run[t.nrun++] = lastcp;
				t.pos--;
			}
			t.run[t.nrun++] = out[0];
			break;
		case FOLD_WORD:
			flush_run(&t, 0);
			for (int j = 0; j < k; j++) {
				char u[4];
				int l = fold_put_utf8(out[j], u);
				if (t.wlen + (size_t)l > FOLD_MAX_TOKEN) {
					t.wtrunc = 1;
					break;
				}
				memcpy(t.word + t.wlen, u, (size_t)l);
				t.wlen += (size_t)l;
			}
			break;
		}
	}
	flush_word(&t, FOLD_TOK_END);
	flush_run(&t, FOLD_TOK_END);
	return t.pos;
}

static void append_tok(void *ctx, const char *tok, size_t len, int pos, unsigned flags)
{
	struct buf *b = ctx;
	if (flags & FOLD_TOK_BIGRAM)
		return;
	if (b->len)
		buf_putc(b, ' ');
	buf_append(b, tok, len);
}

char *fold_string(const char *s)
{
	struct buf b = BUF_INIT;
	fold_tokenize(s, s ? strlen(s) : 0, FOLD_DOC, append_tok, &b);
	return buf_steal(&b);
}
