/* tui: the full-screen interactive client, started by `encore` with no subcommand. */
#ifndef ENCORE_TUI_H
#define ENCORE_TUI_H
#include "cli.h"

/* Runs the interactive UI until the user quits. Returns a process exit code. */
int tui_run(struct cli_ctx *c);

#endif
