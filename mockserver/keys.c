/* keys: key files are appended with O_APPEND and fsynced; a torn last line (a crash
 * mid-rotation) fails the parse of that line only, and the key is simply not used. */
#include "keys.h"
#include "xmem.h"
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int append_key(const char *path, const char *kid, char *err, size_t errlen, const unsigned char key[KEYRING_KEY_BYTES])
{
	char hex[2 * KEYRING_KEY_BYTES + 1];
	sodium_bin2hex(hex, sizeof(hex), key, KEYRING_KEY_BYTES);
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -errno;
	}
	char line[128];
	int n = snprintf(line, sizeof(line), "%s %s\n", kid, hex);
	int rc = 0;
	if (write(fd, line, (size_t)n) != n || fsync(fd) != 0) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
		rc = -EIO;
	}
	close(fd);
	sodium_memzero(hex, sizeof(hex));
	return rc;
}

int keys_load_or_create(const char *path, struct keyring *kr, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		if (errno != ENOENT) {
			snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
			return -errno;
		}
		unsigned char key[KEYRING_KEY_BYTES];
		randombytes_buf(key, sizeof(key));
		int rc = append_key(path, "k1", err, errlen, key);
		if (rc == 0)
			keyring_add(kr, "k1", key);
		sodium_memzero(key, sizeof(key));
		return rc;
	}
	char kid[64], hex[128];
	int lines = 0, rc = 0;
	while (fscanf(f, "%63s %127s", kid, hex) == 2) {
		unsigned char key[KEYRING_KEY_BYTES];
		size_t klen = 0;
		if (sodium_hex2bin(key, sizeof(key), hex, strlen(hex), NULL, &klen, NULL) != 0 ||
		    klen != KEYRING_KEY_BYTES || keyring_add(kr, kid, key) != 0) {
			fprintf(stderr, "keys: %s: ignoring malformed key line %d\n", path, lines + 1);
			continue;
		}
		sodium_memzero(key, sizeof(key));
		lines++;
	}
	sodium_memzero(hex, sizeof(hex));
	fclose(f);
	if (lines == 0) {
		snprintf(err, errlen, "%s holds no valid keys", path);
		rc = -EINVAL;
	}
	return rc;
}

int keys_rotate(const char *path, struct keyring *kr, char *kid, char *err, size_t errlen)
{
	int n = 1;
	char cand[KEYRING_KID_MAX + 1];
	do
		snprintf(cand, sizeof(cand), "k%d", ++n);
	while (keyring_find(kr, cand));
	unsigned char key[KEYRING_KEY_BYTES];
	randombytes_buf(key, sizeof(key));
	int rc = append_key(path, cand, err, errlen, key);
	if (rc == 0) {
		keyring_add(kr, cand, key);
		strcpy(kid, cand);
	}
	sodium_memzero(key, sizeof(key));
	return rc;
}
