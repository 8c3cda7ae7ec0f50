/* cmd_account: `encore login`, `logout` and `whoami`. */
#include "card.h"
#include "cli.h"
#include "json.h"
#include "xmem.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define PASSWORD_MAX 1024

/* Reads a password from the controlling terminal without echo. Raw mode (no ICANON,
 * no ISIG) lets ^C cancel cleanly without a signal handler having to restore the
 * terminal. Returns 0 and a new string, -ECANCELED on ^C, or -errno (-ENXIO when
 * there is no terminal). */
static int prompt_password(const char *prompt, char **out)
{
	*out = NULL;
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -ENXIO;
	struct termios old, raw;
	if (tcgetattr(fd, &old) != 0) {
		close(fd);
		return -ENXIO;
	}
	raw = old;
	raw.c_lflag &= ~(tcflag_t)(ECHO | ICANON | ISIG);
	raw.c_cc[VMIN] = 1;
	raw.c_cc[VTIME] = 0;
	if (write(fd, prompt, strlen(prompt)) < 0 || tcsetattr(fd, TCSAFLUSH, &raw) != 0) {
		close(fd);
		return -EIO;
	}
	char *pw = xcalloc(1, PASSWORD_MAX + 1);
	size_t n = 0;
	int rc = 0;
	for (;;) {
		unsigned char ch;
		ssize_t r = read(fd, &ch, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = r < 0 ? -errno : 0;
			break;
		}
		if (ch == '\r' || ch == '\n' || ch == 4 /* ^D */)
			break;
		if (ch == 3 /* ^C */) {
			rc = -ECANCELED;
			break;
		}
		if (ch == 0x7f || ch == 8) {
			/* Erase a whole UTF-8 character, not just its last byte. */
			while (n > 0 && ((unsigned char)pw[n - 1] & 0xc0) == 0x80)
				n--;
			if (n > 0)
				n--;
			continue;
		}
		if (ch == 0x15 /* ^U */) {
			n = 0;
			continue;
		}
		if (n < PASSWORD_MAX)
			pw[n++] = (char)ch;
	}
	pw[n] = 0;
	tcsetattr(fd, TCSAFLUSH, &old);
	if (write(fd, "\n", 1) < 0) {
		/* The newline is cosmetic. */
	}
	close(fd);
	if (rc < 0) {
		explicit_bzero(pw, PASSWORD_MAX + 1);
		free(pw);
		return rc;
	}
	*out = pw;
	return 0;
}

static bool is_transport_error(int rc)
{
	return rc == -ECONNREFUSED || rc == -ETIMEDOUT || rc == -EHOSTUNREACH || rc == -EIO;
}

int cmd_login(struct cli_ctx *c, int argc, char **argv)
{
	const char *user = NULL;
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] == '-' && strcmp(argv[i], "--") != 0) {
			cli_error(c, "login: unknown option '%s'", argv[i]);
			goto usage;
		}
		if (strcmp(argv[i], "--") == 0)
			continue;
		if (user) {
			cli_error(c, "login: too many arguments");
			goto usage;
		}
		user = argv[i];
	}
	if (!user || !*user) {
		cli_error(c, "login: missing USER");
		goto usage;
	}

	int err;
	struct session *old = session_load(c->session_path, &err);
	const char *server = cli_server(c, old);
	char *server_copy = xstrdup(server);
	session_free(old);

	char *password = NULL;
	const char *envpw = getenv("ENCORE_PASSWORD");
	if (envpw) {
		password = xstrdup(envpw);
	} else {
		char *prompt = xasprintf("Password for %s at %s: ", user, server_copy);
		int rc = prompt_password(prompt, &password);
		free(prompt);
		if (rc == -ECANCELED) {
			free(server_copy);
			return EXIT_AUTH;
		}
		if (rc < 0) {
			cli_error(c, "login: no password: set ENCORE_PASSWORD or run on a terminal");
			free(server_copy);
			return EXIT_AUTH;
		}
	}

	int code = EXIT_OK;
	struct session *s = NULL;
	struct api *api = cli_api_new(server_copy);
	if (!api) {
		cli_error(c, "cannot initialise the HTTP client");
		code = EXIT_ERR;
		goto out;
	}
	char msg[256];
	int rc = session_login(api, user, password, &s, msg, sizeof(msg));
	if (rc == -EACCES) {
		cli_error(c, "login failed: %s", msg);
		code = EXIT_AUTH;
		goto out;
	}
	if (rc < 0) {
		if (is_transport_error(rc))
			cli_error(c, "cannot reach server %s: %s", api_base_url(api), msg);
		else
			cli_error(c, "login failed: %s", msg);
		code = EXIT_ERR;
		goto out;
	}
	rc = paths_ensure(c->paths, PATHS_DATA);
	if (rc == 0)
		rc = session_save(s, c->session_path);
	if (rc < 0) {
		cli_error(c, "cannot save session to %s: %s", c->session_path, strerror(-rc));
		code = EXIT_ERR;
		goto out;
	}
	printf("Logged in as %s on %s\n", user, api_base_url(api));
out:
	session_free(s);
	api_free(api);
	explicit_bzero(password, strlen(password));
	free(password);
	free(server_copy);
	return code;
usage:
	fprintf(stderr, "usage: encore login USER\n");
	return EXIT_USAGE;
}

int cmd_logout(struct cli_ctx *c, int argc, char **argv)
{
	if (argc > 1) {
		cli_error(c, "logout: unexpected argument '%s'", argv[1]);
		fprintf(stderr, "usage: encore logout\n");
		return EXIT_USAGE;
	}
	int err;
	struct session *s = session_load(c->session_path, &err);
	int rc = session_remove(c->session_path);
	if (rc == -ENOENT) {
		printf("Not logged in\n");
		session_free(s);
		return EXIT_OK;
	}
	if (rc < 0) {
		cli_error(c, "cannot remove %s: %s", c->session_path, strerror(-rc));
		session_free(s);
		return EXIT_ERR;
	}
	if (s)
		printf("Logged out %s from %s\n", session_username(s), session_server(s));
	else
		printf("Logged out\n");
	session_free(s);
	return EXIT_OK;
}

int cmd_whoami(struct cli_ctx *c, int argc, char **argv)
{
	bool json;
	if (cli_parse_json_flag(c, argc, argv, &json, NULL, 0) < 0) {
		fprintf(stderr, "usage: encore whoami [--json]\n");
		return EXIT_USAGE;
	}
	struct session *s;
	struct api *api;
	int code = cli_open_session(c, &s, &api);
	if (code != EXIT_OK)
		return code;
	struct api_response r;
	int rc = api_get(api, "/v1/me", &r);
	code = cli_check_response(c, api, rc, &r, NULL);
	if (code != EXIT_OK)
		goto out;
	if (json) {
		cli_print_raw(&r.body);
		goto out;
	}
	char perr[128];
	yajl_val me = json_parse(r.body.data ? r.body.data : "", perr, sizeof(perr));
	struct buf card = BUF_INIT;
	if (card_render_user(&card, me) < 0) {
		cli_error(c, "server sent a malformed user object");
		code = EXIT_ERR;
	} else {
		buf_printf(&card, "  %-10s %s\n", "server", api_base_url(api));
		fputs(card.data, stdout);
	}
	buf_free(&card);
	yajl_tree_free(me);
out:
	api_response_free(&r);
	api_free(api);
	session_free(s);
	return code;
}
