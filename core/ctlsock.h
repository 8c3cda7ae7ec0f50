/* ctlsock: the control socket a running client listens on, like cmus-remote's: a Unix
 * stream socket (mode 0600, in a 0700 directory) that takes one remote command per line
 * and answers one line. "subscribe" turns the connection into a stream of status JSON
 * lines, one per change. Runs on its own thread; never touches the UI or audio. */
#ifndef ENCORE_CTLSOCK_H
#define ENCORE_CTLSOCK_H
#include <stddef.h>

struct engine;
struct ctlsock;

/* Listens on path (replacing a stale socket; refusing if another client is live there).
 * NULL with err on failure. */
struct ctlsock *ctlsock_start(struct engine *e, const char *path, char *err, size_t errlen);
/* Stops the thread, closes every connection, removes the socket file. */
void ctlsock_stop(struct ctlsock *c);

#endif
