/* fetcher: API requests off the UI thread. The UI queues a request and goes on; worker
 * threads perform it with the (thread-safe) api client, and finished results are
 * collected by the UI when fetcher_fd polls readable (an eventfd).
 *
 * Debounce and supersede: a request may wait delay_ms before starting, and queueing a
 * request of a "slot" replaces the slot's request that has not started yet, so typing
 * fast sends only the last query. A request already on the wire cannot be recalled; its
 * result still arrives and the UI drops it by comparing gen with the latest it issued. */
#ifndef ENCORE_FETCHER_H
#define ENCORE_FETCHER_H
#include <stdint.h>

struct api;

struct fetch_result {
	int kind;               /* caller's tag */
	uint64_t gen;           /* as returned by fetcher_submit */
	char *tag;              /* caller's string (e.g. the URI asked about), or NULL; owned */
	int rc;                 /* api_request's return: 0, or -errno when no response came */
	long status;            /* HTTP status (0 when rc < 0) */
	char *body;             /* response body, NUL-terminated, never NULL; owned */
	char error[256];        /* transport error when rc < 0 */
	struct fetch_result *next;
};

struct fetcher;

/* Starts nthreads workers on api (borrowed; must outlive the fetcher). NULL if a thread
 * cannot be started. */
struct fetcher *fetcher_new(struct api *api, int nthreads);
/* Drops queued requests, waits for in-flight ones to finish, frees undelivered results. */
void fetcher_free(struct fetcher *f);
/* Polls readable when results are waiting. */
int fetcher_fd(struct fetcher *f);

/* Queues METHOD path (copied; body may be NULL) to start after delay_ms. slot >= 0
 * replaces a not-yet-started request with the same slot; slot < 0 never replaces.
 * tag is copied into the result. Returns the request's gen (> 0, increasing). */
uint64_t fetcher_submit(struct fetcher *f, int kind, int slot, const char *method, const char *path,
			const char *body, const char *tag, int delay_ms);
/* Takes every finished result, oldest first (caller frees with fetch_result_free), and
 * resets the fd. NULL when none. */
struct fetch_result *fetcher_take(struct fetcher *f);
/* Frees a list of results. */
void fetch_result_free(struct fetch_result *r);
/* Requests queued or running now (the UI's spinner). */
int fetcher_busy(struct fetcher *f);

#endif
