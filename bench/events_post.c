/* Load generator for bench/events.sh: posts pre-rendered event batches to encored over
 * keep-alive connections, one blocking thread per connection, and checks every answer.
 * A Python client spent about a fifth as much CPU as encored per event on the same two
 * cores; this one spends a few percent, so the figure measures the server.
 * Usage: bench_events_post HOST PORT TOKEN BODIES_FILE CONNECTIONS EXPECT_ACCEPTED
 * BODIES_FILE holds one JSON body per line. Prints "SECONDS CPU_SECONDS" (wall time from
 * the first request to the last answer, and this process's CPU over the run); exit 1 on
 * any refused or unexpected answer. */
#include "buf.h"
#include "xmem.h"
#include <pthread.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct shared {
	const char *host, *token;
	int port, conns, expect;
	char **bodies;
	size_t *lens, nbodies;
	pthread_barrier_t start;
	int failed;
};

struct worker {
	struct shared *sh;
	int index;
	pthread_t th;
};

static int connect_to(const char *host, int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
		return -1;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads one response (headers and a Content-Length body; the answers are small) into
 * b[cap]. 0 or -1. */
static int read_response(int fd, char *b, size_t cap, int *status, const char **body)
{
	size_t len = 0, hdr_end = 0, need = 0;
	for (;;) {
		if (len + 1 >= cap)
			return -1;
		ssize_t r = recv(fd, b + len, cap - len - 1, 0);
		if (r <= 0)
			return -1;
		len += (size_t)r;
		b[len] = 0;
		if (!hdr_end) {
			char *e = strstr(b, "\r\n\r\n");
			if (!e)
				continue;
			hdr_end = (size_t)(e - b) + 4;
			const char *cl = strcasestr(b, "\r\ncontent-length:");
			if (!cl || cl > e || sscanf(b, "HTTP/1.1 %d", status) != 1)
				return -1;
			need = hdr_end + strtoul(cl + 17, NULL, 10);
		}
		if (len >= need) {
			*body = b + hdr_end;
			return 0;
		}
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct shared *sh = w->sh;
	int fd = connect_to(sh->host, sh->port);
	struct buf req = BUF_INIT;
	char resp[16384];
	char want[64];
	snprintf(want, sizeof(want), "\"accepted\":%d", sh->expect);
	pthread_barrier_wait(&sh->start);
	for (size_t i = (size_t)w->index; fd >= 0 && i < sh->nbodies; i += (size_t)sh->conns) {
		req.len = 0;
		buf_printf(&req, "POST /v1/events HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n"
				 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
			   sh->host, sh->port, sh->token, sh->lens[i]);
		buf_append(&req, sh->bodies[i], sh->lens[i]);
		int status = 0;
		const char *body = NULL;
		if (send_all(fd, req.data, req.len) != 0 || read_response(fd, resp, sizeof(resp), &status, &body) != 0 || status != 200 ||
		    !strstr(body, want)) {
			fprintf(stderr, "events_post: batch %zu: bad answer %d %.200s\n", i, status, body ? body : "(none)");
			__atomic_store_n(&sh->failed, 1, __ATOMIC_RELAXED);
			break;
		}
	}
	if (fd < 0) {
		fprintf(stderr, "events_post: cannot connect to %s:%d\n", sh->host, sh->port);
		__atomic_store_n(&sh->failed, 1, __ATOMIC_RELAXED);
	} else {
		close(fd);
	}
	buf_free(&req);
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv)
{
	if (argc != 7) {
		fprintf(stderr, "usage: %s HOST PORT TOKEN BODIES_FILE CONNECTIONS EXPECT_ACCEPTED\n", argv[0]);
		return 2;
	}
	struct shared sh = {.host = argv[1], .port = atoi(argv[2]), .token = argv[3], .conns = atoi(argv[5]),
			    .expect = atoi(argv[6])};
	FILE *f = fopen(argv[4], "r");
	if (!f || sh.conns < 1) {
		fprintf(stderr, "events_post: cannot read %s\n", argv[4]);
		return 2;
	}
	char *line = NULL;
	size_t cap = 0, alloc = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, f)) > 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = 0;
		if (n == 0)
			continue;
		if (sh.nbodies == alloc) {
			alloc = alloc ? 2 * alloc : 256;
			sh.bodies = xrealloc(sh.bodies, alloc * sizeof(*sh.bodies));
			sh.lens = xrealloc(sh.lens, alloc * sizeof(*sh.lens));
		}
		sh.bodies[sh.nbodies] = xstrdup(line);
		sh.lens[sh.nbodies++] = (size_t)n;
	}
	free(line);
	fclose(f);
	struct worker *w = xcalloc((size_t)sh.conns, sizeof(*w));
	pthread_barrier_init(&sh.start, NULL, (unsigned)sh.conns + 1);
	for (int i = 0; i < sh.conns; i++) {
		w[i].sh = &sh;
		w[i].index = i;
		if (pthread_create(&w[i].th, NULL, worker_main, &w[i]) != 0)
			abort();
	}
	pthread_barrier_wait(&sh.start);
	double t0 = now_s(), c0 = cpu_s();
	for (int i = 0; i < sh.conns; i++)
		pthread_join(w[i].th, NULL);
	printf("%.6f %.6f\n", now_s() - t0, cpu_s() - c0);
	for (size_t i = 0; i < sh.nbodies; i++)
		free(sh.bodies[i]);
	free(sh.bodies);
	free(sh.lens);
	free(w);
	pthread_barrier_destroy(&sh.start);
	return sh.failed ? 1 : 0;
}
