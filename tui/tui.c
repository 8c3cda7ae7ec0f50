/* tui: STUB. Placeholder until the ncurses TUI is written; the real implementation
 * replaces this whole file (and keeps the tui_run contract in tui.h). */
#include "tui.h"
#include <stdio.h>

int tui_run(struct cli_ctx *c)
{
	fprintf(stderr, "%s: TUI not built yet; see '%s --help' for the available subcommands\n",
		c->prog, c->prog);
	return EXIT_ERR;
}
