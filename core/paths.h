/* paths: where the client keeps its files, following the XDG base directory spec.
 * Resolution is a pure function of an injected environment lookup so it unit-tests
 * without touching the real environment; directories are only created on demand. */
#ifndef ENCORE_PATHS_H
#define ENCORE_PATHS_H

enum paths_kind {
	PATHS_CONFIG,  /* $ENCORE_CONFIG_DIR | $XDG_CONFIG_HOME/encore | ~/.config/encore */
	PATHS_CACHE,   /* $ENCORE_CACHE_DIR  | $XDG_CACHE_HOME/encore  | ~/.cache/encore */
	PATHS_DATA,    /* $ENCORE_DATA_DIR   | $XDG_DATA_HOME/encore   | ~/.local/share/encore */
	PATHS_RUNTIME, /* $ENCORE_RUNTIME_DIR | $XDG_RUNTIME_DIR/encore | /tmp/encore-UID */
	PATHS_KIND_COUNT
};

/* Looks up an environment variable; returns NULL when unset. */
typedef const char *(*paths_env_fn)(const char *name, void *ctx);

struct paths;

/* Resolves all directories from env (NULL means the process environment via getenv)
 * and uid (used only for the /tmp runtime fallback). Falls back to the passwd entry
 * when HOME is unset. Returns NULL if no home directory can be found at all. */
struct paths *paths_new(paths_env_fn env, void *ctx, unsigned uid);
void paths_free(struct paths *p);

/* The resolved directory for kind; valid until paths_free. Never NULL. Not created. */
const char *paths_dir(const struct paths *p, enum paths_kind kind);
/* Creates the directory for kind (and missing parents, 0700). For the runtime dir,
 * also refuses (-EPERM) one that is not ours or is accessible by others, since a
 * shared /tmp lets another user pre-create it. Returns 0 or -errno. */
int paths_ensure(const struct paths *p, enum paths_kind kind);
/* dir(kind)/name as a new string (caller frees). Does not create anything. */
char *paths_file(const struct paths *p, enum paths_kind kind, const char *name);
/* mkdir -p with mode 0700 for each created component. Returns 0 or -errno. */
int paths_mkdir_p(const char *dir);

#endif
