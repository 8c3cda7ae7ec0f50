/* objstore: two hex digits of fan-out keep directories small at a million objects. */
#include "objstore.h"
#include "xmem.h"
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct objstore {
	char *root;  /* DATA/objects */
};

static bool valid_hash(const char *h)
{
	size_t i;
	for (i = 0; h[i]; i++)
		if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
			return false;
	return i == OBJSTORE_HASH_HEX - 1;
}

struct objstore *objstore_open(const char *data_dir, char *err, size_t errlen)
{
	struct objstore *s = xcalloc(1, sizeof(*s));
	s->root = xasprintf("%s/objects", data_dir);
	if (mkdir(s->root, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", s->root, strerror(errno));
		objstore_free(s);
		return NULL;
	}
	return s;
}

void objstore_free(struct objstore *s)
{
	if (!s)
		return;
	free(s->root);
	free(s);
}

char *objstore_path(struct objstore *s, const char *hash)
{
	if (!valid_hash(hash))
		return NULL;
	return xasprintf("%s/%.2s/%s", s->root, hash, hash + 2);
}

int objstore_put(struct objstore *s, const void *data, size_t len, char hash[OBJSTORE_HASH_HEX])
{
	unsigned char h[32];
	crypto_generichash(h, sizeof(h), data, len, NULL, 0);
	sodium_bin2hex(hash, OBJSTORE_HASH_HEX, h, sizeof(h));
	char *path = objstore_path(s, hash);
	char *dir = xasprintf("%s/%.2s", s->root, hash);
	char *tmp = NULL;
	int rc = 0, fd = -1;
	struct stat st;
	if (stat(path, &st) == 0 && (size_t)st.st_size == len)
		goto out;  /* content-addressed: same name, same bytes */
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		rc = -errno;
		goto out;
	}
	tmp = xasprintf("%s/.tmp-%s-%d", dir, hash + 2, (int)getpid());
	unsigned char rnd[4];
	randombytes_buf(rnd, sizeof(rnd));
	char *tmp2 = xasprintf("%s-%02x%02x%02x%02x", tmp, rnd[0], rnd[1], rnd[2], rnd[3]);
	free(tmp);
	tmp = tmp2;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	const uint8_t *p = data;
	size_t left = len;
	while (left > 0) {
		ssize_t n = write(fd, p, left);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto out;
		}
		p += n;
		left -= (size_t)n;
	}
	if (fsync(fd) != 0) {
		rc = -errno;
		goto out;
	}
	close(fd);
	fd = -1;
	if (rename(tmp, path) != 0) {
		rc = -errno;
		goto out;
	}
	free(tmp);
	tmp = NULL;
out:
	if (fd >= 0)
		close(fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	free(dir);
	free(path);
	return rc;
}

int objstore_get(struct objstore *s, const char *hash, uint8_t **data, size_t *len)
{
	char *path = objstore_path(s, hash);
	if (!path)
		return -EINVAL;
	int rc = 0;
	uint8_t *buf = NULL;
	int fd = open(path, O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		rc = -errno;
		goto out;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			goto out;
		}
		got += (size_t)n;
	}
	*data = buf;
	*len = got;
	buf = NULL;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(path);
	return rc;
}

int objstore_sweep_temp(struct objstore *s)
{
	int removed = 0;
	DIR *top = opendir(s->root);
	if (!top)
		return 0;
	struct dirent *d;
	while ((d = readdir(top))) {
		if (strlen(d->d_name) != 2)
			continue;
		char *sub = xasprintf("%s/%s", s->root, d->d_name);
		DIR *dd = opendir(sub);
		struct dirent *e;
		while (dd && (e = readdir(dd))) {
			if (strncmp(e->d_name, ".tmp-", 5) == 0) {
				char *p = xasprintf("%s/%s", sub, e->d_name);
				if (unlink(p) == 0)
					removed++;
				free(p);
			}
		}
		if (dd)
			closedir(dd);
		free(sub);
	}
	closedir(top);
	return removed;
}
