/* cmd_remote: `encore remote CMD...`, like cmus-remote: sends one command to a running
 * client's control socket and prints its one-line answer; `subscribe` streams state
 * changes as JSON lines until interrupted. */
#include "cli.h"
#include "xmem.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int cmd_remote(struct cli_ctx *c, int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0) {
		fprintf(argc < 2 ? stderr : stdout,
			"usage: encore remote play [URI...]|pause|toggle|next|prev|stop|seek [+-]SEC|volume [+-]N|\n"
			"                     shuffle [on|off]|repeat off|one|all|normalize on|off|\n"
			"                     queue [add|next URI|rm I|mv FROM TO|clear]|status [--json]|subscribe\n");
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	if (argv[1][0] == '-' && argv[1][1] == '-') {
		/* Commands are words; "seek -5" style arguments come after one. */
		cli_error(c, "remote: unknown option '%s'", argv[1]);
		fprintf(stderr, "usage: encore remote CMD [ARG...] (see encore remote --help)\n");
		return EXIT_USAGE;
	}
	if (paths_ensure(c->paths, PATHS_RUNTIME) != 0) {
		cli_error(c, "remote: no runtime directory");
		return EXIT_ERR;
	}
	char *path = paths_file(c->paths, PATHS_RUNTIME, "socket");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		cli_error(c, "remote: no encore is running (nothing listens on %s)", path);
		free(path);
		if (fd >= 0)
			close(fd);
		return EXIT_ERR;
	}
	free(path);
	struct buf line = BUF_INIT;
	for (int i = 1; i < argc; i++) {
		if (i > 1)
			buf_putc(&line, ' ');
		buf_puts(&line, argv[i]);
	}
	bool subscribe = strcmp(line.data, "subscribe") == 0;
	buf_putc(&line, '\n');
	int code = EXIT_OK;
	if (write(fd, line.data, line.len) != (ssize_t)line.len) {
		cli_error(c, "remote: cannot send the command");
		code = EXIT_ERR;
		goto out;
	}
	FILE *in = fdopen(fd, "r");
	fd = -1;
	char *reply = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&reply, &cap, in)) > 0) {
		fputs(reply, stdout);
		fflush(stdout);
		if (strncmp(reply, "error:", 6) == 0)
			code = EXIT_USAGE;
		if (!subscribe)
			break;
	}
	if (n <= 0 && !subscribe && !reply) {
		cli_error(c, "remote: the client closed the connection without answering");
		code = EXIT_ERR;
	}
	free(reply);
	fclose(in);
out:
	if (fd >= 0)
		close(fd);
	buf_free(&line);
	return code;
}
