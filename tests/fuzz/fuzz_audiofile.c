/* Fuzz target: ingest's source file reader (WAV and FLAC from memory), on uploads. */
#include "audiofile.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		abort();
	memcpy(buf, data, size);
	struct pcm *p = NULL;
	char err[200];
	err[0] = 'x';
	int r = audiofile_read_mem(buf, size, &p, err, sizeof(err));
	if (r == 0) {
		if (!p || (p->channels != 1 && p->channels != 2) || (p->rate != 44100 && p->rate != 48000))
			abort();
		pcm_free(p);
	} else if (memchr(err, '\0', sizeof(err)) == NULL) {
		abort();
	}
	free(buf);
	return 0;
}
