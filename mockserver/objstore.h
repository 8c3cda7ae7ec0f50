/* objstore: a content-addressed object store in a folder (DATA/objects/ab/cdef...).
 * Objects are written to a temp name, fsynced and renamed, so a crash never leaves a
 * partial object visible under its name, and writing the same content twice is a no-op. */
#ifndef ENCORE_OBJSTORE_H
#define ENCORE_OBJSTORE_H
#include <stddef.h>
#include <stdint.h>

#define OBJSTORE_HASH_HEX 65   /* 64 hex digits of BLAKE2b-256 + NUL */

struct objstore;

/* Opens (creating) DIR/objects. NULL with err filled on failure. */
struct objstore *objstore_open(const char *data_dir, char *err, size_t errlen);
void objstore_free(struct objstore *s);
/* Stores data; fills hash with its hex BLAKE2b-256 name. 0 or -errno. */
int objstore_put(struct objstore *s, const void *data, size_t len, char hash[OBJSTORE_HASH_HEX]);
/* Reads an object whole into a new buffer (caller frees). 0, -ENOENT, -EINVAL (bad hash) or -errno. */
int objstore_get(struct objstore *s, const char *hash, uint8_t **data, size_t *len);
/* The object's path (caller frees), or NULL for a malformed hash. For serving with sendfile. */
char *objstore_path(struct objstore *s, const char *hash);
/* Removes leftovers of interrupted writes (temp files). Returns how many were removed. */
int objstore_sweep_temp(struct objstore *s);

#endif
