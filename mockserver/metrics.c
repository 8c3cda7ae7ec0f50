/* metrics: a small table of series under one mutex. Observations come from the service
 * thread (once per request) and renders from a worker, so contention is negligible. */
#include "metrics.h"
#include "xmem.h"
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double METRICS_BOUNDS[METRICS_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5};

struct series {
	char route[96];
	char method[8];
	int status;
	uint64_t count;
	uint64_t buckets[METRICS_BUCKETS];   /* non-cumulative; summed when rendered */
	double sum_s;
};

struct metrics {
	pthread_mutex_t mu;
	struct series *s;
	int n;
};

struct metrics *metrics_new(void)
{
	struct metrics *m = xcalloc(1, sizeof(*m));
	pthread_mutex_init(&m->mu, NULL);
	m->s = xcalloc(METRICS_MAX_SERIES + 1, sizeof(*m->s));
	return m;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	pthread_mutex_destroy(&m->mu);
	free(m->s);
	free(m);
}

static struct series *find(struct metrics *m, const char *route, const char *method, int status)
{
	for (int i = 0; i < m->n; i++)
		if (m->s[i].status == status && strcmp(m->s[i].route, route) == 0 && strcmp(m->s[i].method, method) == 0)
			return &m->s[i];
	if (m->n == METRICS_MAX_SERIES) {
		if (strcmp(route, "other") == 0)
			return &m->s[METRICS_MAX_SERIES];   /* the overflow series itself */
		return find(m, "other", "other", 0);
	}
	struct series *s = &m->s[m->n++];
	snprintf(s->route, sizeof(s->route), "%s", route);
	snprintf(s->method, sizeof(s->method), "%s", method);
	s->status = status;
	return s;
}

void metrics_observe(struct metrics *m, const char *route, const char *method, int status, int64_t latency_us)
{
	double sec = (double)latency_us / 1e6;
	pthread_mutex_lock(&m->mu);
	struct series *s = find(m, route, method, status);
	if (!s->route[0]) {
		snprintf(s->route, sizeof(s->route), "other");
		snprintf(s->method, sizeof(s->method), "other");
	}
	s->count++;
	s->sum_s += sec;
	for (int b = 0; b < METRICS_BUCKETS; b++)
		if (sec <= METRICS_BOUNDS[b]) {
			s->buckets[b]++;
			break;
		}
	pthread_mutex_unlock(&m->mu);
}

void metrics_escape(struct buf *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			buf_puts(out, "\\\\");
		else if (*s == '"')
			buf_puts(out, "\\\"");
		else if (*s == '\n')
			buf_puts(out, "\\n");
		else
			buf_putc(out, *s);
	}
}

static void number(struct buf *out, double v)
{
	if (isnan(v))
		buf_puts(out, "NaN");
	else if (isinf(v))
		buf_puts(out, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 1e15)
		buf_printf(out, "%.0f", v);
	else
		buf_printf(out, "%.9g", v);
}

void metrics_sample(struct buf *out, const char *name, const char *type, const char *help, const char *labels, double v)
{
	if (help)
		buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
	buf_puts(out, name);
	if (labels && labels[0])
		buf_printf(out, "{%s}", labels);
	buf_putc(out, ' ');
	number(out, v);
	buf_putc(out, '\n');
}

static void labels(struct buf *out, const struct series *s)
{
	buf_puts(out, "route=\"");
	metrics_escape(out, s->route);
	buf_printf(out, "\",method=\"%s\",status=\"%d\"", s->method, s->status);
}

void metrics_render(struct metrics *m, struct buf *out)
{
	pthread_mutex_lock(&m->mu);
	int n = m->n + (m->s[METRICS_MAX_SERIES].count ? 1 : 0);
	struct series *copy = xcalloc((size_t)(n ? n : 1), sizeof(*copy));
	memcpy(copy, m->s, (size_t)m->n * sizeof(*copy));
	if (n > m->n)
		copy[m->n] = m->s[METRICS_MAX_SERIES];
	pthread_mutex_unlock(&m->mu);

	buf_puts(out, "# HELP encore_http_requests_total HTTP requests by route pattern, method and status.\n"
		      "# TYPE encore_http_requests_total counter\n");
	for (int i = 0; i < n; i++) {
		buf_puts(out, "encore_http_requests_total{");
		labels(out, &copy[i]);
		buf_printf(out, "} %llu\n", (unsigned long long)copy[i].count);
	}
	buf_puts(out, "# HELP encore_http_request_duration_seconds Request latency, from the request line to the last byte queued.\n"
		      "# TYPE encore_http_request_duration_seconds histogram\n");
	for (int i = 0; i < n; i++) {
		uint64_t cum = 0;
		for (int b = 0; b <= METRICS_BUCKETS; b++) {
			buf_puts(out, "encore_http_request_duration_seconds_bucket{");
			labels(out, &copy[i]);
			if (b < METRICS_BUCKETS) {
				cum += copy[i].buckets[b];
				buf_puts(out, ",le=\"");
				number(out, METRICS_BOUNDS[b]);
				buf_puts(out, "\"} ");
			} else {
				cum = copy[i].count;
				buf_puts(out, ",le=\"+Inf\"} ");
			}
			buf_printf(out, "%llu\n", (unsigned long long)cum);
		}
		buf_puts(out, "encore_http_request_duration_seconds_sum{");
		labels(out, &copy[i]);
		buf_puts(out, "} ");
		number(out, copy[i].sum_s);
		buf_puts(out, "\nencore_http_request_duration_seconds_count{");
		labels(out, &copy[i]);
		buf_printf(out, "} %llu\n", (unsigned long long)copy[i].count);
	}
	free(copy);
}
