/* urlenc: strict decoding, so a bad escape is an error rather than silently kept bytes. */
#include "urlenc.h"
#include "xmem.h"
#include <stdlib.h>
#include <string.h>

static int hexval(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

void url_encode(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~') {
			buf_putc(b, (char)c);
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			buf_append(b, e, 3);
		}
	}
}

char *url_decode(const char *s, size_t n, bool form)
{
	char *out = xmalloc(n + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%') {
			int hi, lo;
			if (i + 2 >= n || (hi = hexval(s[i + 1])) < 0 || (lo = hexval(s[i + 2])) < 0 || (hi == 0 && lo == 0)) {
				free(out);
				return NULL;
			}
			out[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else if (c == '+' && form) {
			out[o++] = ' ';
		} else {
			out[o++] = c;
		}
	}
	out[o] = 0;
	return out;
}

char *form_get(const char *qs, const char *name)
{
	size_t nlen = strlen(name);
	const char *p = qs;
	while (p && *p) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		size_t klen = eq ? (size_t)(eq - p) : len;
		char *key = url_decode(p, klen, true);
		bool match = key && strlen(key) == nlen && memcmp(key, name, nlen) == 0;
		free(key);
		if (match)
			return eq ? url_decode(eq + 1, len - klen - 1, true) : xstrdup("");
		p = amp ? amp + 1 : NULL;
	}
	return NULL;
}
