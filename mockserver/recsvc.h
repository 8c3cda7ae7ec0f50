/* recsvc: the model serving holds. One background thread polls reco_models (every
 * check_interval_ms) and swaps in a newer version when one is published; requests hold a
 * reference while they use a model, so a swap never frees one under a reader. The same
 * thread retrains every train_interval_s when that is set. A fault flag (--fault-recs-error,
 * POST /v1/admin/recs/fault) makes acquire fail as if no model existed, to exercise fallbacks. */
#ifndef ENCORE_RECSVC_H
#define ENCORE_RECSVC_H
#include "recmodel.h"
#include <stdbool.h>
#include <stdint.h>

struct recsvc_options {
	const char *data_dir;
	int check_interval_ms;     /* default 1000 */
	int train_interval_s;      /* 0 = no scheduled training */
	int max_age_s;             /* a model older than this is stale (not served); 0 = never */
	bool fault;                /* start with the fault on */
	int64_t clock_offset_s;    /* added to the wall clock for the cache periods of the
				    * weekly/daily products (--clock-offset-s; tests only) */
	struct recmodel_train_opts train;
};

enum recsvc_source { RECSVC_PERSONAL, RECSVC_GENRE, RECSVC_POPULAR, RECSVC_NSOURCES };

struct recsvc_status {
	int64_t version, created_at;   /* 0 when no model is loaded */
	bool fault, stale;
	uint64_t reloads, trainings, train_failures;
	uint64_t served[RECSVC_NSOURCES];
};

struct recsvc;

void recsvc_options_defaults(struct recsvc_options *o);
/* Loads the newest model if there is one and starts the thread. NULL with err on failure. */
struct recsvc *recsvc_new(const struct recsvc_options *o, char *err, size_t errlen);
void recsvc_free(struct recsvc *s);
/* The current model with a reference held, or NULL (none, stale or faulted). Pair with recsvc_release.
 * Like the other calls below, accepts s == NULL (tools and tests run without the service). */
const struct recmodel *recsvc_acquire(struct recsvc *s);
void recsvc_release(struct recsvc *s, const struct recmodel *m);
void recsvc_set_fault(struct recsvc *s, bool on);
/* Checks for a newer version now; 1 if one was loaded, 0 if not, -errno on a load failure. */
int recsvc_reload(struct recsvc *s);
/* The clock of the recommendation products: now plus the configured offset (unix seconds). */
int64_t recsvc_now(struct recsvc *s);
/* Counts one response by the source that produced it. */
void recsvc_count(struct recsvc *s, enum recsvc_source src);
void recsvc_status(struct recsvc *s, struct recsvc_status *out);
const char *recsvc_source_name(enum recsvc_source src);

#endif
