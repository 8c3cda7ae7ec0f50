/* driver: a plain main() for a fuzz target, so the regular (ASan) test suite replays each
 * seed corpus without libFuzzer. Usage: fuzz_NAME FILE|DIR...; prints TAP, one line per
 * input, and fails on the first crash (the sanitizer aborts the process). */
#include "fuzz.h"
#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>

static int count;

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		printf("not ok %d - %s: cannot open\n", ++count, path);
		return -1;
	}
	size_t cap = 4096, len = 0;
	uint8_t *data = malloc(cap);
	size_t got;
	while ((got = fread(data + len, 1, cap - len, f)) > 0) {
		len += got;
		if (len == cap)
			data = realloc(data, cap *= 2);
	}
	fclose(f);
	/* Exact-size copy so reads past the end are caught. */
	uint8_t *exact = malloc(len ? len : 1);
	memcpy(exact, data, len);
	free(data);
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	printf("ok %d - %s (%zu bytes) runs clean\n", ++count, path, len);
	fflush(stdout);
	return 0;
}

static int names_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	int failed = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) != 0) {
			printf("not ok %d - %s: missing\n", ++count, argv[i]);
			failed = 1;
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			failed |= run_file(argv[i]) != 0;
			continue;
		}
		DIR *dir = opendir(argv[i]);
		struct dirent *de;
		char **names = NULL;
		size_t n = 0;
		while (dir && (de = readdir(dir))) {
			if (de->d_name[0] == '.')
				continue;
			names = realloc(names, (n + 1) * sizeof(*names));
			size_t l = strlen(argv[i]) + strlen(de->d_name) + 2;
			names[n] = malloc(l);
			snprintf(names[n++], l, "%s/%s", argv[i], de->d_name);
		}
		if (dir)
			closedir(dir);
		qsort(names, n, sizeof(*names), names_cmp);
		for (size_t k = 0; k < n; k++) {
			failed |= run_file(names[k]) != 0;
			free(names[k]);
		}
		free(names);
	}
	if (count == 0) {
		/* An empty corpus proves nothing: fail rather than pass vacuously. */
		printf("not ok 1 - no inputs\n");
		count = 1;
		failed = 1;
	}
	printf("1..%d\n", count);
	return failed;
}
