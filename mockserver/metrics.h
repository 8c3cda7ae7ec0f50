/* metrics: request counters and latency histograms per route pattern, method and status,
 * rendered in the Prometheus text exposition format (version 0.0.4). Thread-safe. */
#ifndef ENCORE_METRICS_H
#define ENCORE_METRICS_H
#include "buf.h"
#include <stdint.h>

#define METRICS_MAX_SERIES 512
#define METRICS_BUCKETS 12

struct metrics;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);
/* Counts one finished request. route is a pattern ("/v1/tracks/{id}") or "unmatched";
 * beyond METRICS_MAX_SERIES new label sets are counted under route="other". */
void metrics_observe(struct metrics *m, const char *route, const char *method, int status, int64_t latency_us);
/* Appends encore_http_requests_total and encore_http_request_duration_seconds. */
void metrics_render(struct metrics *m, struct buf *out);

/* Appends one sample with its HELP and TYPE lines (pure). labels is "" or 'a="b",c="d"'. */
void metrics_sample(struct buf *out, const char *name, const char *type, const char *help, const char *labels, double v);
/* Appends s escaped as a Prometheus label value (backslash, quote, newline) (pure). */
void metrics_escape(struct buf *out, const char *s);
/* The histogram's upper bounds in seconds, ascending (+Inf is implied). */
extern const double METRICS_BOUNDS[METRICS_BUCKETS];

#endif
