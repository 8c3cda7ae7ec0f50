/* remote: the command language shared by `encore remote`, the control socket and the
 * TUI's ':' prompt, so one word means one thing everywhere:
 *
 *   play [URI...] | pause | toggle | next | prev | stop | seek [+|-]SEC | volume [+|-]N
 *   shuffle [on|off] | repeat off|one|all | normalize on|off
 *   queue add URI | queue next URI | queue rm INDEX | queue mv FROM TO | queue clear | queue
 *   status [--json]
 *
 * Pure parsing plus engine calls; no I/O of its own. */
#ifndef ENCORE_REMOTE_H
#define ENCORE_REMOTE_H
#include "buf.h"

struct engine;

/* Runs one command line against the engine and appends a one-line human reply (or, for
 * "status --json" and "queue --json", one JSON object) to reply.
 * Returns 0, or -EINVAL for an unknown command or bad argument (reply says why). */
int remote_exec(struct engine *e, const char *line, struct buf *reply);
/* Appends the snapshot as one JSON object (the `status --json` shape) to reply. */
void remote_status_json(struct engine *e, struct buf *reply);

#endif
