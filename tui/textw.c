/* textw: width-aware truncation and padding of UTF-8 text. */
#include "textw.h"
#include <string.h>
#include <wchar.h>

/* Decodes one UTF-8 character at s. Returns its byte length (>= 1) and the code point
 * in *cp, or -1 in *cp for an invalid or truncated sequence (length 1 then). */
static int decode(const unsigned char *s, long *cp)
{
	unsigned c = s[0];
	int len;
	long v;
	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if (c >= 0xc2 && c <= 0xdf) {
		len = 2, v = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3, v = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4, v = c & 0x07;
	} else {
		*cp = -1;
		return 1;
	}
	for (int i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80) {
			*cp = -1;
			return 1;
		}
		v = (v << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and values past U+10FFFF are invalid. */
	if ((len == 3 && v < 0x800) || (len == 4 && (v < 0x10000 || v > 0x10ffff)) || (v >= 0xd800 && v <= 0xdfff)) {
		*cp = -1;
		return 1;
	}
	*cp = v;
	return len;
}

/* Columns of one decoded character; control and invalid ones are drawn as '?'. */
static int char_width(long cp, bool *replace)
{
	*replace = false;
	if (cp < 0 || cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0)) {
		*replace = true;
		return 1;
	}
	int w = wcwidth((wchar_t)cp);
	if (w < 0) {
		*replace = true;
		return 1;
	}
	return w;
}

int textw_width(const char *s)
{
	int cols = 0;
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		long cp;
		bool rep;
		p += decode(p, &cp);
		cols += char_width(cp, &rep);
	}
	return cols;
}

size_t textw_prefix_bytes(const char *s, int cols)
{
	const unsigned char *p = (const unsigned char *)s;
	int used = 0;
	while (*p) {
		long cp;
		bool rep;
		int n = decode(p, &cp);
		int w = char_width(cp, &rep);
		if (used + w > cols)
			break;
		used += w;
		p += n;
	}
	return (size_t)(p - (const unsigned char *)s);
}

/* Appends n bytes if they fit with room for the terminator. */
static bool put(char *out, size_t outlen, size_t *o, const void *b, size_t n)
{
	if (*o + n + 1 > outlen)
		return false;
	memcpy(out + *o, b, n);
	*o += n;
	return true;
}

int textw_fit(const char *s, int cols, bool pad, char *out, size_t outlen)
{
	static const char ellipsis[] = "\xe2\x80\xa6"; /* U+2026, one column */
	size_t o = 0;
	int used = 0;
	if (outlen == 0)
		return 0;
	if (cols < 0)
		cols = 0;
	bool fits = textw_width(s) <= cols;
	int budget = fits ? cols : cols - 1; /* leave a column for the ellipsis */
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		long cp;
		bool rep;
		int n = decode(p, &cp);
		int w = char_width(cp, &rep);
		if (used + w > budget)
			break;
		if (!(rep ? put(out, outlen, &o, "?", 1) : put(out, outlen, &o, p, (size_t)n)))
			break;
		used += w;
		p += n;
	}
	if (!fits && cols > 0 && put(out, outlen, &o, ellipsis, 3))
		used++;
	while (pad && used < cols && put(out, outlen, &o, " ", 1))
		used++;
	out[o] = 0;
	return used;
}

void textw_pop_char(char *s)
{
	size_t n = strlen(s);
	if (!n)
		return;
	n--;
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	s[n] = 0;
}
