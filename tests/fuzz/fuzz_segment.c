/* Fuzz target: the segment wire format (segment_parse, segment_init_parse) on bytes from
 * the network. A parse that succeeds must re-serialise (a writer can produce what a reader
 * accepts, and vice versa). */
#include "fuzz.h"
#include "segment.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Parsers must not read past len: give them an exact-size heap copy so ASan sees it. */
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		abort();
	memcpy(buf, data, size);
	struct segment seg = {0};
	if (segment_parse(buf, size, &seg) == 0) {
		uint8_t *out = NULL;
		size_t outlen = 0;
		if (segment_write(&seg, &out, &outlen) != 0)
			abort();
		struct segment again = {0};
		if (segment_parse(out, outlen, &again) != 0 || again.npackets != seg.npackets)
			abort();
		segment_clear(&again);
		free(out);
	}
	segment_clear(&seg);
	struct segment_init init;
	if (segment_init_parse(buf, size, &init) == 0) {
		uint8_t *out = NULL;
		size_t outlen = 0;
		if (segment_init_write(&init, &out, &outlen) != 0)
			abort();
		free(out);
	}
	free(buf);
	return 0;
}
