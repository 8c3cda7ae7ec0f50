/* cmd_events: `encore events status|flush`: the listening-event outbox, by hand. */
#include "cli.h"
#include "outbox.h"
#include "xmem.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct outbox *cli_open_outbox(struct cli_ctx *c)
{
	if (paths_ensure(c->paths, PATHS_DATA) != 0) {
		cli_error(c, "cannot create the data directory %s", paths_dir(c->paths, PATHS_DATA));
		return NULL;
	}
	char *path = paths_file(c->paths, PATHS_DATA, "outbox.db");
	char err[512];
	struct outbox *o = outbox_open(path, err, sizeof(err));
	free(path);
	if (!o)
		cli_error(c, "%s", err);
	return o;
}

static void usage(void)
{
	fprintf(stderr, "usage: encore events status [--json] | encore events flush\n");
}

int cmd_events(struct cli_ctx *c, int argc, char **argv)
{
	if (argc < 2 || (strcmp(argv[1], "status") != 0 && strcmp(argv[1], "flush") != 0)) {
		usage();
		return EXIT_USAGE;
	}
	bool json = false;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0 && strcmp(argv[1], "status") == 0)
			json = true;
		else {
			cli_error(c, "events: unexpected argument '%s'", argv[i]);
			usage();
			return EXIT_USAGE;
		}
	}
	struct outbox *o = cli_open_outbox(c);
	if (!o)
		return EXIT_ERR;
	int code = EXIT_OK;
	if (strcmp(argv[1], "status") == 0) {
		long long n = outbox_pending(o);
		if (n < 0) {
			cli_error(c, "cannot read the outbox");
			code = EXIT_ERR;
		} else if (json)
			printf("{\"pending\":%lld}\n", n);
		else
			printf("%lld event%s waiting to upload\n", n, n == 1 ? "" : "s");
		outbox_close(o);
		return code;
	}
	struct session *s = NULL;
	struct api *api = NULL;
	code = cli_open_session(c, &s, &api);
	if (code == EXIT_OK) {
		int sent = 0, dropped = 0;
		char err[256];
		int rc = outbox_flush(o, api, &sent, &dropped, err, sizeof(err));
		printf("uploaded %d event%s%s\n", sent, sent == 1 ? "" : "s", dropped ? " (some refused and dropped)" : "");
		if (rc != 0) {
			cli_error(c, "events: upload failed: %s (%lld still waiting)", err, outbox_pending(o));
			code = rc == -EACCES ? EXIT_AUTH : EXIT_ERR;
		}
	}
	api_free(api);
	session_free(s);
	outbox_close(o);
	return code;
}
