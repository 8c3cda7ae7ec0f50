/* cli: the `encore` command line: global options, subcommand dispatch, and the
 * helpers every subcommand shares (server choice, session, error reporting). */
#ifndef ENCORE_CLI_H
#define ENCORE_CLI_H
#include "api.h"
#include "paths.h"
#include "session.h"
#include <stdbool.h>

#define CLI_DEFAULT_SERVER "http://127.0.0.1:8080"

/* Process exit codes; documented in docs/CLIENT-NOTES.md and `encore --help`. */
enum cli_exit {
	EXIT_OK = 0,
	EXIT_ERR = 1,       /* server unreachable, server error, local I/O error */
	EXIT_USAGE = 2,     /* bad option, unknown subcommand, malformed argument */
	EXIT_AUTH = 3,      /* not logged in, session rejected, bad credentials */
	EXIT_NOTFOUND = 4,  /* the server says the object does not exist */
};

struct cli_ctx {
	const char *prog;          /* "encore", for messages */
	const char *server_opt;    /* --server, or NULL */
	const char *server_env;    /* $ENCORE_SERVER, or NULL */
	const char *output_opt;    /* --output SINK for the TUI, or NULL */
	struct paths *paths;
	char *session_path;        /* DATA_DIR/session.json; owned */
};

/* Runs the command line; returns the process exit code. */
int cli_main(int argc, char **argv);

/* The server to talk to: --server, then $ENCORE_SERVER, then the stored session's
 * server (s may be NULL), then CLI_DEFAULT_SERVER. Borrowed. */
const char *cli_server(const struct cli_ctx *c, const struct session *s);
/* Prints "encore: MSG" on stderr. */
void cli_error(const struct cli_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Loads the session and an api bound to it (refreshes persist to session_path).
 * Returns EXIT_OK and both objects (caller frees both), or an exit code after
 * printing the reason (not logged in, or logged in to another server). */
int cli_open_session(struct cli_ctx *c, struct session **s, struct api **api);
/* Maps a finished request to an exit code, printing one line on failure. what names
 * the object for a 404 ("encore:track:..."); NULL for a generic message. */
int cli_check_response(const struct cli_ctx *c, struct api *api, int rc,
		       const struct api_response *r, const char *what);
/* Builds an api for server with the CLI's defaults. NULL only if libcurl fails. */
struct api *cli_api_new(const char *server);

/* Parses a subcommand's "[--json] POS..." arguments (argv[0] is its name); stores up
 * to maxpos positionals in pos. Returns their count, or -1 after printing a usage error. */
int cli_parse_json_flag(struct cli_ctx *c, int argc, char **argv, bool *json, const char **pos, int maxpos);
/* Prints a response body exactly as received, ending in a newline. */
void cli_print_raw(const struct buf *body);

/* Subcommands: argv[0] is the subcommand name; return an exit code. */
int cmd_login(struct cli_ctx *c, int argc, char **argv);
int cmd_logout(struct cli_ctx *c, int argc, char **argv);
int cmd_whoami(struct cli_ctx *c, int argc, char **argv);
int cmd_show(struct cli_ctx *c, int argc, char **argv);
int cmd_search(struct cli_ctx *c, int argc, char **argv);
int cmd_play(struct cli_ctx *c, int argc, char **argv);
int cmd_remote(struct cli_ctx *c, int argc, char **argv);
int cmd_events(struct cli_ctx *c, int argc, char **argv);
int cmd_recs(struct cli_ctx *c, int argc, char **argv);
int cmd_devices(struct cli_ctx *c, int argc, char **argv);
int cmd_transfer(struct cli_ctx *c, int argc, char **argv);

struct outbox;
/* Opens DATA_DIR/outbox.db (the listening-event outbox). NULL after printing why. */
struct outbox *cli_open_outbox(struct cli_ctx *c);
int cmd_playlist(struct cli_ctx *c, int argc, char **argv);

struct offline;
/* Opens the offline store (DATA_DIR/offline, device key DATA_DIR/offline-device.key);
 * unless create, NULL without a message when nothing was ever downloaded. NULL after
 * printing why on failure. */
struct offline *cli_open_offline(struct cli_ctx *c, bool create);
int cmd_download(struct cli_ctx *c, int argc, char **argv);
int cmd_offline(struct cli_ctx *c, int argc, char **argv);

#endif
