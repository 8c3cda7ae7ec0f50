/* dbusdl: see dbusdl.h. Built only with D-Bus support (its headers). */
#include "dbusdl.h"
#include "xmem.h"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

struct dbusdl *dbusdl_open(char *err, size_t errlen)
{
	struct dbusdl *d = xcalloc(1, sizeof(*d));
	/* The soname, not the -dev package's libdbus-1.so symlink: only the runtime is needed. */
	d->lib = dlopen("libdbus-1.so.3", RTLD_NOW | RTLD_LOCAL);
	if (!d->lib) {
		snprintf(err, errlen, "%s", dlerror());
		free(d);
		return NULL;
	}
#define DBUSDL_RESOLVE(name) \
	*(void **)&d->name = dlsym(d->lib, #name); \
	if (!d->name) { \
		snprintf(err, errlen, "libdbus-1 has no %s", #name); \
		goto fail; \
	}
	DBUSDL_FUNCTIONS(DBUSDL_RESOLVE)
#undef DBUSDL_RESOLVE
	return d;
fail:
	dbusdl_close(d);
	return NULL;
}

void dbusdl_close(struct dbusdl *d)
{
	/* The library stays mapped: libdbus (and libsystemd under it) are not made to be
	 * unloaded, and a process opens it at most once per player. */
	free(d);
}
