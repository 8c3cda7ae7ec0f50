/* cli: option parsing and dispatch for `encore`. */
#include "cli.h"
#include "version.h"
#include "tui.h"
#include "xmem.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct {
	const char *name;
	int (*fn)(struct cli_ctx *, int, char **);
} commands[] = {
	{"login", cmd_login},
	{"logout", cmd_logout},
	{"whoami", cmd_whoami},
	{"show", cmd_show},
	{"search", cmd_search},
	{"play", cmd_play},
	{"remote", cmd_remote},
	{"events", cmd_events},
	{"devices", cmd_devices},
	{"transfer", cmd_transfer},
	{"playlist", cmd_playlist},
	{"download", cmd_download},
	{"offline", cmd_offline},
	{"recs", cmd_recs},
};

static void usage_line(FILE *f)
{
	fprintf(f, "usage: encore [--server URL] [--output SINK] [login USER | logout | whoami | show URI | search QUERY | play ... | remote CMD | playlist SUB | download URI... | offline SUB | recs SUB | events status|flush]\n");
}

static void help(void)
{
	usage_line(stdout);
	printf("\n"
	       "With no command, starts the interactive terminal UI.\n"
	       "\n"
	       "Commands:\n"
	       "  login USER         log in (password from $ENCORE_PASSWORD or prompted on the terminal)\n"
	       "  logout             forget the stored session\n"
	       "  whoami [--json]    show the logged-in account\n"
	       "  show URI [--json]  show a track, album or artist (encore:TYPE:ID)\n"
	       "  recs discover|daily|radio URI|release [--json]\n"
	       "                     recommendation shelves: Discover Weekly, Daily Mixes, Radio, Release Radar\n"
	       "  search QUERY [--type T,...] [--limit N] [--json]\n"
	       "                     search tracks, artists, albums, playlists, shows, episodes\n"
	       "  play [QUERY|URI...] [--quality Q] [--output SPEC] [--seek SEC] [--duration SEC] [--json]\n"
	       "                     play headlessly until the queue ends (see encore play --help)\n"
	       "  remote CMD         control a running client: play pause toggle next prev stop seek\n"
	       "                     volume shuffle repeat queue status subscribe\n"
	       "  events status      listening events waiting to upload ([--json])\n"
	       "  events flush       upload waiting listening events now\n"
	       "  playlist SUB       ls | show ID | create NAME [--public] [--collaborative] | rename ID NAME\n"
	       "                     | add ID URI... | rm ID URI | mv ID FROM TO | collab ID USER | follow ID\n"
	       "                     [--json]; edits made offline are queued and sent on reconnect\n"
	       "  download URI...    download tracks, albums, playlists for offline play (premium;\n"
	       "                     [--quality Q] [--json]); run again to resume\n"
	       "  offline SUB        ls | rm URI... | usage | quota BYTES|none | sync  [--json]\n"
	       "\n"
	       "Options:\n"
	       "  --server URL       server base URL (default: $ENCORE_SERVER, then the logged-in\n"
	       "                     session's server, then " CLI_DEFAULT_SERVER "); URL1,URL2,...\n"
	       "                     lists servers sharing one catalog, tried in turn on failure\n"
	       "  --output SINK      audio output for the UI: alsa (default), alsa:DEVICE, null,\n"
	       "                     null:realtime, wav:FILE; or 'output' in the config file\n"
	       "  -h, --help         show this help\n"
	       "  -V, --version      show the version\n"
	       "\n"
	       "encore COMMAND --help describes one command's options.\n"
	       "\n"
	       "Exit status: 0 ok, 1 error, 2 usage, 3 not logged in or login failed, 4 not found.\n");
}

/* Each subcommand's --help, kept here so every command answers --help and --version the
 * same way before it parses anything (the man page test reads these). */
static const struct {
	const char *name;
	const char *text;
} command_help[] = {
	{"login", "usage: encore login USER\n"
		  "\n"
		  "Logs in to the server and stores the session in DATA_DIR/session.json. The password\n"
		  "comes from $ENCORE_PASSWORD, else it is prompted for on the terminal.\n"},
	{"logout", "usage: encore logout\n"
		   "\n"
		   "Forgets the stored session.\n"},
	{"whoami", "usage: encore whoami [--json]\n"
		   "\n"
		   "  --json             print the server's user object as received\n"},
	{"show", "usage: encore show URI [--json]\n"
		 "\n"
		 "Shows a track, album or artist (URI is encore:TYPE:ID).\n"
		 "\n"
		 "  --json             print the server's object as received\n"},
	{"search", "usage: encore search QUERY... [--type T,...] [--limit N] [--json]\n"
		   "\n"
		   "  --type T,...       kinds to search: track,artist,album,playlist,show,episode\n"
		   "  --limit N          results per kind, 1 to 50 (default 10)\n"
		   "  --json             print the server's answer as received\n"},
	{"play", "usage: encore play [QUERY|URI...] [options]\n"
		 "\n"
		 "Plays headlessly until the queue ends; a QUERY plays its best match.\n"
		 "\n"
		 "  --quality Q        auto (adaptive, default), 24, 96, 160 or 320 kbps\n"
		 "  --output SPEC      alsa (default), alsa:DEVICE, null, null:realtime, wav:FILE,\n"
		 "                     wav:FILE:realtime (paced, silence while paused; FILE.t0)\n"
		 "  --seek SEC         start this many seconds into the first track\n"
		 "  --duration SEC     stop after this many seconds of audio\n"
		 "  --prefetch SEC     how far ahead to download (seconds of audio)\n"
		 "  --volume N         volume 0 to 100\n"
		 "  --no-normalize     do not apply loudness normalisation\n"
		 "  --autoplay         keep playing recommendations when the queue ends\n"
		 "  --no-control       do not open the control socket for 'encore remote'\n"
		 "  --offline          play downloaded tracks only; never touch the network\n"
		 "  --json             print playback events as JSON lines\n"},
	{"remote", "usage: encore remote CMD [ARG...]\n"
		   "\n"
		   "Sends one command to a running encore (TUI or play) over its control socket:\n"
		   "  play [URI...] | pause | toggle | next | prev | stop | seek [+-]SEC | volume [+-]N\n"
		   "  shuffle [on|off] | repeat off|one|all | normalize on|off\n"
		   "  queue [add URI|next URI|rm I|mv FROM TO|clear] | status [--json] | subscribe\n"},
	{"events", "usage: encore events status [--json] | encore events flush\n"
		   "\n"
		   "  status             listening events waiting to upload\n"
		   "  flush              upload waiting listening events now\n"
		   "  --json             status as a JSON object\n"},
	{"download", "usage: encore download [--quality Q] [--json] URI...\n"
		     "\n"
		     "Downloads tracks, albums, playlists, podcast episodes or shows for offline playback\n"
		     "(premium accounts), encrypted for this device under a licence; resumes where it stopped.\n"
		     "Refused before writing when over offline_quota or offline_min_free_mb (encore.conf(5)).\n"
		     "\n"
		     "  --quality Q        24, 96, 160 or 320 (default: the best the account may use)\n"
		     "  --json             one JSON object per line for progress and results\n"},
	{"recs", "usage: encore recs discover|daily|radio URI|release [--json]\n"
		 "\n"
		 "Recommendations: Discover Weekly, Daily Mixes, Radio from a track, artist or playlist,\n"
		 "Release Radar.\n"
		 "\n"
		 "  --json             print the server's answer as received\n"},
	{"offline", "usage: encore offline ls|rm URI...|usage|quota BYTES|none|sync [--json]\n"
		    "\n"
		    "Lists, removes and measures downloads, sets a storage quota, and renews licences\n"
		    "(sync; revoked licences delete their files).\n"
		    "\n"
		    "  --json             print JSON\n"},
	{"playlist", "usage: encore playlist SUB [ARG...] [--json]\n"
		     "\n"
		     "  ls | show ID | create NAME | rename ID NAME | add ID URI... | rm ID URI\n"
		     "  | mv ID FROM TO | collab ID USER | follow ID\n"
		     "Edits made offline are queued and sent on reconnect.\n"
		     "\n"
		     "  --public           create: make the playlist public\n"
		     "  --collaborative    create: let invited collaborators edit it\n"
		     "  --json             print the server's objects as received\n"},
};

static void command_usage(const char *name)
{
	for (size_t i = 0; i < sizeof(command_help) / sizeof(command_help[0]); i++)
		if (strcmp(command_help[i].name, name) == 0) {
			fputs(command_help[i].text, stdout);
			printf("\nGlobal options: --server URL, -h/--help, -V/--version (see encore --help).\n");
			return;
		}
}

void cli_error(const struct cli_ctx *c, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", c->prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

const char *cli_server(const struct cli_ctx *c, const struct session *s)
{
	if (c->server_opt)
		return c->server_opt;
	if (c->server_env && *c->server_env)
		return c->server_env;
	if (s && *session_server(s))
		return session_server(s);
	return CLI_DEFAULT_SERVER;
}

struct api *cli_api_new(const char *server)
{
	struct api_config cfg = {
		.base_url = server,
		.timeout_ms = API_DEFAULT_TIMEOUT_MS,
		.max_retries = -1,
	};
	return api_new(&cfg);
}

/* Servers are compared without trailing slashes, as api_new normalises them. */
static bool same_server(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	while (la > 0 && a[la - 1] == '/')
		la--;
	while (lb > 0 && b[lb - 1] == '/')
		lb--;
	return la == lb && strncmp(a, b, la) == 0;
}

int cli_open_session(struct cli_ctx *c, struct session **s, struct api **api)
{
	int err;
	*s = NULL;
	*api = NULL;
	struct session *ses = session_load(c->session_path, &err);
	if (!ses) {
		if (err == -ENOENT)
			cli_error(c, "not logged in; run '%s login USER'", c->prog);
		else
			cli_error(c, "cannot read session %s: %s; run '%s login USER'", c->session_path,
				  err == -EINVAL ? "malformed file" : strerror(-err), c->prog);
		return EXIT_AUTH;
	}
	const char *server = cli_server(c, ses);
	if (!same_server(server, session_server(ses))) {
		cli_error(c, "not logged in to %s (the session is for %s); run '%s --server %s login USER'",
			  server, session_server(ses), c->prog, server);
		session_free(ses);
		return EXIT_AUTH;
	}
	struct api *a = cli_api_new(server);
	if (!a) {
		cli_error(c, "cannot initialise the HTTP client");
		session_free(ses);
		return EXIT_ERR;
	}
	session_attach(ses, a, c->session_path);
	*s = ses;
	*api = a;
	return EXIT_OK;
}

int cli_check_response(const struct cli_ctx *c, struct api *api, int rc,
		       const struct api_response *r, const char *what)
{
	if (rc < 0) {
		cli_error(c, "cannot reach server %s: %s", api_base_url(api), r->error);
		return EXIT_ERR;
	}
	if (r->status >= 200 && r->status < 300)
		return EXIT_OK;
	char msg[200];
	api_error_message(r->body.data, msg, sizeof(msg));
	switch (r->status) {
	case 401:
		cli_error(c, "session expired or revoked%s%s; run '%s login USER'", msg[0] ? ": " : "", msg, c->prog);
		return EXIT_AUTH;
	case 404:
		if (what)
			cli_error(c, "not found: %s", what);
		else
			cli_error(c, "not found%s%s", msg[0] ? ": " : "", msg);
		return EXIT_NOTFOUND;
	case 429:
		if (r->retry_after >= 0)
			cli_error(c, "rate limited by %s; try again in %ld s", api_base_url(api), r->retry_after);
		else
			cli_error(c, "rate limited by %s; try again later", api_base_url(api));
		return EXIT_ERR;
	default:
		cli_error(c, "server %s answered %ld%s%s", api_base_url(api), r->status, msg[0] ? ": " : "", msg);
		return EXIT_ERR;
	}
}

int cli_parse_json_flag(struct cli_ctx *c, int argc, char **argv, bool *json, const char **pos, int maxpos)
{
	int npos = 0;
	bool literal = false;
	*json = false;
	for (int i = 1; i < argc; i++) {
		if (!literal && strcmp(argv[i], "--") == 0) {
			literal = true;
		} else if (!literal && strcmp(argv[i], "--json") == 0) {
			*json = true;
		} else if (!literal && argv[i][0] == '-' && argv[i][1]) {
			cli_error(c, "%s: unknown option '%s'", argv[0], argv[i]);
			return -1;
		} else if (npos >= maxpos) {
			cli_error(c, "%s: unexpected argument '%s'", argv[0], argv[i]);
			return -1;
		} else {
			pos[npos++] = argv[i];
		}
	}
	return npos;
}

void cli_print_raw(const struct buf *body)
{
	if (body->len)
		fwrite(body->data, 1, body->len, stdout);
	if (!body->len || body->data[body->len - 1] != '\n')
		putchar('\n');
}

/* Removes global options wherever they appear (before `--`), leaving the command line. */
static int parse_globals(struct cli_ctx *c, int *argc, char **argv, bool *done, int *code, int *want)
{
	int out = 1;
	bool literal = false;
	for (int i = 1; i < *argc; i++) {
		const char *a = argv[i];
		if (literal || a[0] != '-' || a[1] == 0) {
			argv[out++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			literal = true;
			argv[out++] = argv[i];
		} else if (out > 1 && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
			*want = 'h';  /* the subcommand's help, once it is known */
		} else if (out > 1 && (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0)) {
			if (!*want)
				*want = 'V';
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			help();
			*done = true;
			*code = EXIT_OK;
			return 0;
		} else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
			printf("encore %s\n", ENCORE_VERSION);
			*done = true;
			*code = EXIT_OK;
			return 0;
		} else if (strcmp(a, "--server") == 0) {
			if (i + 1 >= *argc) {
				cli_error(c, "--server needs a URL");
				return -EINVAL;
			}
			c->server_opt = argv[++i];
		} else if (strncmp(a, "--server=", 9) == 0) {
			c->server_opt = a + 9;
		} else if (out == 1 && strcmp(a, "--output") == 0) {
			/* Before a subcommand it is the UI's; after one (play --output) it is the
			 * subcommand's own option and passes through. */
			if (i + 1 >= *argc) {
				cli_error(c, "--output needs a sink (alsa, alsa:DEVICE, null, null:realtime, wav:FILE)");
				return -EINVAL;
			}
			c->output_opt = argv[++i];
		} else if (out == 1 && strncmp(a, "--output=", 9) == 0) {
			c->output_opt = a + 9;
		} else {
			argv[out++] = argv[i];  /* maybe a subcommand option such as --json */
		}
	}
	argv[out] = NULL;
	*argc = out;
	if (c->server_opt && strncmp(c->server_opt, "http://", 7) != 0 && strncmp(c->server_opt, "https://", 8) != 0) {
		cli_error(c, "--server wants an http:// or https:// URL, not '%s'", c->server_opt);
		return -EINVAL;
	}
	return 0;
}

int cli_main(int argc, char **argv)
{
	struct cli_ctx c = {.prog = "encore"};
	bool done = false;
	int code = EXIT_OK;
	int want = 0;
	if (parse_globals(&c, &argc, argv, &done, &code, &want) < 0) {
		usage_line(stderr);
		return EXIT_USAGE;
	}
	if (done)
		return code;
	c.server_env = getenv("ENCORE_SERVER");

	const char *cmd = argc > 1 ? argv[1] : NULL;
	int (*fn)(struct cli_ctx *, int, char **) = NULL;
	if (cmd) {
		for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
			if (strcmp(cmd, commands[i].name) == 0)
				fn = commands[i].fn;
		if (!fn) {
			if (cmd[0] == '-')
				cli_error(&c, "unknown option '%s'", cmd);
			else
				cli_error(&c, "unknown command '%s'", cmd);
			usage_line(stderr);
			return EXIT_USAGE;
		}
		if (want == 'h') {
			command_usage(cmd);
			return EXIT_OK;
		}
		if (want == 'V') {
			printf("encore %s\n", ENCORE_VERSION);
			return EXIT_OK;
		}
	}

	c.paths = paths_new(NULL, NULL, (unsigned)getuid());
	if (!c.paths) {
		cli_error(&c, "cannot find a home directory; set HOME or ENCORE_DATA_DIR");
		return EXIT_ERR;
	}
	c.session_path = paths_file(c.paths, PATHS_DATA, SESSION_FILE);
	code = fn ? fn(&c, argc - 1, argv + 1) : tui_run(&c);
	free(c.session_path);
	paths_free(c.paths);
	return code;
}
