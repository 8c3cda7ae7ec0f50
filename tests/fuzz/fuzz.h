/* fuzz: helpers shared by the libFuzzer targets in tests/fuzz (see scripts/fuzz). */
#ifndef ENCORE_FUZZ_H
#define ENCORE_FUZZ_H
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A NUL-terminated copy of the input (caller frees); text parsers take C strings, so an
 * embedded NUL simply ends the text as it would on the wire after the gateway's checks. */
static inline char *fz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		abort();
	if (size)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* Splits s in place at the next '\n'; returns the rest (or "" at the end). */
static inline char *fz_field(char **s)
{
	char *start = *s, *nl = strchr(start, '\n');
	if (nl) {
		*nl = '\0';
		*s = nl + 1;
	} else {
		*s = start + strlen(start);
	}
	return start;
}
#endif
