/* router: segment by segment; a parameter matches one non-empty segment. */
#include "router.h"
#include <string.h>

bool route_match(const char *pattern, const char *path, char params[ROUTE_MAX_PARAMS][ROUTE_PARAM_MAX], int *nparams)
{
	int n = 0;
	const char *p = pattern, *q = path;
	while (*p && *q) {
		if (*p != '/' || *q != '/')
			return false;
		p++;
		q++;
		const char *pe = strchr(p, '/');
		const char *qe = strchr(q, '/');
		size_t plen = pe ? (size_t)(pe - p) : strlen(p);
		size_t qlen = qe ? (size_t)(qe - q) : strlen(q);
		if (plen >= 2 && p[0] == '{' && p[plen - 1] == '}') {
			if (qlen == 0 || qlen >= ROUTE_PARAM_MAX || n >= ROUTE_MAX_PARAMS)
				return false;
			memcpy(params[n], q, qlen);
			params[n][qlen] = 0;
			n++;
		} else if (plen != qlen || memcmp(p, q, plen) != 0) {
			return false;
		}
		p += plen;
		q += qlen;
	}
	if (*p)
		return false;
	if (*q && strcmp(q, "/") != 0)
		return false;
	*nparams = n;
	return true;
}
