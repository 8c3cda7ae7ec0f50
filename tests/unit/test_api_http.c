/* Tests for api's HTTP behaviour against a scripted in-process HTTP/1.1 server on
 * loopback: connection reuse, retries and their limits, transparent token refresh
 * (including racing threads) and transport error reporting. No sleeps: retry steps
 * are shrunk to 1 ms through api_config.retry_base_ms. */
#include "api.h"
#include "tap.h"
#include "xmem.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONNS 32
#define MAX_LOG 512

struct req {
	char method[8];
	char path[256];
	char auth[256];
	char body[512];
	int conn;  /* which accepted connection carried it */
};

struct reply {
	int status;            /* 0: never answer (to provoke a timeout) */
	const char *headers;   /* extra header lines, each ending in \r\n */
	const char *body;
};

struct srv;
typedef void (*handler_fn)(struct srv *s, const struct req *r, struct reply *out);

struct srv {
	int lfd, port, wake[2];
	pthread_t th;
	pthread_mutex_t lock;
	struct req log[MAX_LOG];
	int nlog;
	int accepted;
	int counter;  /* free for handlers */
	handler_fn handler;
};

struct conn {
	int fd, id;
	struct buf in;
};

static bool handle_buffered(struct srv *s, struct conn *c)
{
	char *end = c->in.data ? strstr(c->in.data, "\r\n\r\n") : NULL;
	if (!end)
		return false;
	size_t hlen = (size_t)(end - c->in.data) + 4;
	size_t clen = 0;
	struct req r = {.conn = c->id};
	sscanf(c->in.data, "%7s %255s", r.method, r.path);
	for (char *line = strstr(c->in.data, "\r\n") + 2; line < end; line = strstr(line, "\r\n") + 2) {
		if (strncasecmp(line, "Content-Length:", 15) == 0)
			clen = strtoul(line + 15, NULL, 10);
		else if (strncasecmp(line, "Authorization: ", 15) == 0)
			sscanf(line + 15, "%255[^\r]", r.auth);
	}
	if (c->in.len < hlen + clen)
		return false;
	size_t bl = clen < sizeof(r.body) - 1 ? clen : sizeof(r.body) - 1;
	memcpy(r.body, c->in.data + hlen, bl);
	struct reply rep = {200, "", "{}"};
	pthread_mutex_lock(&s->lock);
	if (s->nlog < MAX_LOG)
		s->log[s->nlog++] = r;
	s->handler(s, &r, &rep);
	pthread_mutex_unlock(&s->lock);
	size_t rest = c->in.len - hlen - clen;
	memmove(c->in.data, c->in.data + hlen + clen, rest);
	c->in.len = rest;
	c->in.data[rest] = 0;
	if (rep.status == 0)
		return true;
	char *out = xasprintf("HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n%s",
			      rep.status, strlen(rep.body), rep.headers, rep.body);
	if (write(c->fd, out, strlen(out)) < 0) {
		/* the client went away; nothing to do */
	}
	free(out);
	return true;
}

static void *srv_main(void *arg)
{
	struct srv *s = arg;
	struct conn conns[MAX_CONNS];
	int n = 0;
	for (;;) {
		struct pollfd p[MAX_CONNS + 2] = {{s->lfd, POLLIN, 0}, {s->wake[0], POLLIN, 0}};
		for (int i = 0; i < n; i++)
			p[i + 2] = (struct pollfd){conns[i].fd, POLLIN, 0};
		if (poll(p, (nfds_t)n + 2, -1) < 0)
			continue;
		if (p[1].revents)
			break;
		if ((p[0].revents & POLLIN) && n < MAX_CONNS) {
			int fd = accept(s->lfd, NULL, NULL);
			if (fd >= 0) {
				pthread_mutex_lock(&s->lock);
				conns[n] = (struct conn){fd, s->accepted++, BUF_INIT};
				pthread_mutex_unlock(&s->lock);
				n++;
			}
		}
		for (int i = 0; i < n; i++) {
			if (!p[i + 2].revents)
				continue;
			char tmp[4096];
			ssize_t r = read(conns[i].fd, tmp, sizeof(tmp));
			if (r <= 0) {
				close(conns[i].fd);
				buf_free(&conns[i].in);
				conns[i] = conns[n - 1];
				p[i + 2] = p[n + 1];
				n--;
				i--;
				continue;
			}
			buf_append(&conns[i].in, tmp, (size_t)r);
			while (handle_buffered(s, &conns[i]))
				;
		}
	}
	for (int i = 0; i < n; i++) {
		close(conns[i].fd);
		buf_free(&conns[i].in);
	}
	return NULL;
}

static struct srv *srv_start(handler_fn h)
{
	struct srv *s = xcalloc(1, sizeof(*s));
	s->handler = h;
	pthread_mutex_init(&s->lock, NULL);
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	if (bind(s->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(s->lfd, 64) != 0 ||
	    getsockname(s->lfd, (struct sockaddr *)&a, &al) != 0 || pipe(s->wake) != 0) {
		perror("fake server");
		exit(99);
	}
	s->port = ntohs(a.sin_port);
	pthread_create(&s->th, NULL, srv_main, s);
	return s;
}

static void srv_stop(struct srv *s)
{
	if (write(s->wake[1], "x", 1) < 0)
		perror("wake");
	pthread_join(s->th, NULL);
	close(s->lfd);
	close(s->wake[0]);
	close(s->wake[1]);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static struct api *api_for(struct srv *s, int max_retries)
{
	char *url = xasprintf("http://127.0.0.1:%d/", s->port);  /* trailing slash on purpose */
	struct api_config cfg = {.base_url = url, .max_retries = max_retries, .retry_base_ms = 1, .timeout_ms = 10000};
	struct api *api = api_new(&cfg);
	free(url);
	return api;
}

/* ---- handlers ---- */

static void h_ok(struct srv *s, const struct req *r, struct reply *out)
{
	out->status = 200;
	out->headers = "ETag: \"v1\"\r\n";
	out->body = "{\"id\":\"alice\"}";
}

static void h_503_twice(struct srv *s, const struct req *r, struct reply *out)
{
	if (s->counter++ < 2) {
		out->status = 503;
		out->body = "{\"error\":{\"status\":503,\"message\":\"busy\"}}";
	} else {
		out->status = 200;
	}
}

static void h_always_503(struct srv *s, const struct req *r, struct reply *out)
{
	out->status = 503;
	out->body = "{\"error\":{\"status\":503,\"message\":\"busy\"}}";
}

static void h_429_then_ok(struct srv *s, const struct req *r, struct reply *out)
{
	if (s->counter++ == 0) {
		out->status = 429;
		out->headers = "Retry-After: 0\r\n";
	} else {
		out->status = 200;
	}
}

static void h_429_long(struct srv *s, const struct req *r, struct reply *out)
{
	out->status = 429;
	out->headers = "Retry-After: 3600\r\n";
}

/* Accepts only "Bearer new"; the token route turns refresh token r1 into new/r2. */
static void h_auth(struct srv *s, const struct req *r, struct reply *out)
{
	if (strcmp(r->path, "/api/token") == 0) {
		if (strcmp(r->body, "grant_type=refresh_token&refresh_token=r1") == 0) {
			out->status = 200;
			out->body = "{\"access_token\":\"new\",\"token_type\":\"Bearer\",\"expires_in\":3600,"
				    "\"refresh_token\":\"r2\"}";
		} else if (strcmp(r->body, "grant_type=password&username=alice&password=p%26ss+word") == 0) {
			out->status = 200;
			out->body = "{\"access_token\":\"new\",\"token_type\":\"Bearer\",\"expires_in\":60}";
		} else {
			out->status = 400;
			out->body = "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid credentials\"}";
		}
		return;
	}
	if (strcmp(r->auth, "Bearer new") == 0) {
		out->status = 200;
		out->body = "{\"id\":\"alice\"}";
	} else {
		out->status = 401;
		out->body = "{\"error\":{\"status\":401,\"message\":\"The access token expired\"}}";
	}
}

static void h_silent(struct srv *s, const struct req *r, struct reply *out)
{
	out->status = 0;
}

static int count_path(struct srv *s, const char *path)
{
	int n = 0;
	pthread_mutex_lock(&s->lock);
	for (int i = 0; i < s->nlog; i++)
		n += strcmp(s->log[i].path, path) == 0;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* ---- tests ---- */

static void test_sequential_requests_reuse_one_keepalive_connection(void)
{
	struct srv *s = srv_start(h_ok);
	struct api *api = api_for(s, 0);
	for (int i = 0; i < 5; i++) {
		struct api_response r;
		CHECK_INT(api_get(api, "/v1/me", &r), 0);
		CHECK_INT(r.status, 200);
		CHECK_STR(r.etag, "\"v1\"");
		CHECK_STR(r.content_type, "application/json");
		CHECK_STR(r.body.data, "{\"id\":\"alice\"}");
		api_response_free(&r);
	}
	struct api_stats st;
	api_get_stats(api, &st);
	CHECK_INT(st.requests, 5);
	CHECK_INT(st.connects, 1);
	CHECK_INT(st.reused, 4);
	CHECK_INT(s->accepted, 1);
	CHECK_STR(s->log[0].path, "/v1/me");  /* base URL's trailing slash not doubled */
	api_free(api);
	srv_stop(s);
}

struct worker {
	struct api *api;
	int ok;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < 10; i++) {
		struct api_response r;
		if (api_get(w->api, "/v1/me", &r) == 0 && r.status == 200)
			w->ok++;
		api_response_free(&r);
	}
	return NULL;
}

static void test_concurrent_threads_share_the_connection_pool(void)
{
	struct srv *s = srv_start(h_ok);
	struct api *api = api_for(s, 0);
	pthread_t th[4];
	struct worker w[4];
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){api, 0};
		pthread_create(&th[i], NULL, worker_main, &w[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CHECK_INT(w[i].ok, 10);
	}
	struct api_stats st;
	api_get_stats(api, &st);
	CHECK_INT(st.requests, 40);
	/* At most one connection per concurrently active thread; the rest are reuses. */
	CHECK(st.connects >= 1 && st.connects <= 4, "connects %lu", st.connects);
	CHECK_INT(st.connects + st.reused, 40);
	printf("# 4 threads x 10 GETs: %lu new connections, %lu reused\n", st.connects, st.reused);
	api_free(api);
	srv_stop(s);
}

static void test_get_is_retried_on_503_until_success(void)
{
	struct srv *s = srv_start(h_503_twice);
	struct api *api = api_for(s, 3);
	struct api_response r;
	CHECK_INT(api_get(api, "/v1/tracks/x", &r), 0);
	CHECK_INT(r.status, 200);
	CHECK_INT(r.attempts, 3);
	struct api_stats st;
	api_get_stats(api, &st);
	CHECK_INT(st.retries, 2);
	api_response_free(&r);
	api_free(api);
	srv_stop(s);
}

static void test_retries_stop_at_max_and_return_the_last_error(void)
{
	struct srv *s = srv_start(h_always_503);
	struct api *api = api_for(s, 2);
	struct api_response r;
	CHECK_INT(api_request(api, "PUT", "/v1/me/x", "application/json", "{}", 2, &r), 0);
	CHECK_INT(r.status, 503);
	CHECK_INT(r.attempts, 3);
	CHECK_INT(count_path(s, "/v1/me/x"), 3);
	api_response_free(&r);
	api_free(api);
	srv_stop(s);
}

static void test_post_is_never_retried(void)
{
	struct srv *s = srv_start(h_always_503);
	struct api *api = api_for(s, 3);
	struct api_response r;
	CHECK_INT(api_request(api, "POST", "/v1/me/player/next", NULL, NULL, 0, &r), 0);
	CHECK_INT(r.status, 503);
	CHECK_INT(r.attempts, 1);
	CHECK_INT(count_path(s, "/v1/me/player/next"), 1);
	api_response_free(&r);
	api_free(api);
	srv_stop(s);
}

static void test_429_honours_retry_after_and_gives_up_when_too_long(void)
{
	struct srv *s = srv_start(h_429_then_ok);
	struct api *api = api_for(s, 3);
	struct api_response r;
	CHECK_INT(api_get(api, "/v1/me", &r), 0);
	CHECK_INT(r.status, 200);
	CHECK_INT(r.attempts, 2);
	api_response_free(&r);
	api_free(api);
	srv_stop(s);

	s = srv_start(h_429_long);
	api = api_for(s, 3);
	CHECK_INT(api_get(api, "/v1/me", &r), 0);
	CHECK_INT(r.status, 429);
	CHECK_INT(r.retry_after, 3600);
	CHECK_INT(r.attempts, 1);
	api_response_free(&r);
	api_free(api);
	srv_stop(s);
}

struct cb_state {
	int calls;
	char access[64], refresh[64];
};

static void on_tokens(void *ctx, const struct api_token *t)
{
	struct cb_state *cb = ctx;
	cb->calls++;
	snprintf(cb->access, sizeof(cb->access), "%s", t->access_token);
	snprintf(cb->refresh, sizeof(cb->refresh), "%s", t->refresh_token ? t->refresh_token : "");
}

static void test_401_refreshes_once_persists_tokens_and_retries(void)
{
	struct srv *s = srv_start(h_auth);
	struct api *api = api_for(s, 0);
	struct cb_state cb = {0};
	api_set_tokens(api, "old", "r1");
	api_set_token_callback(api, on_tokens, &cb);
	struct api_response r;
	CHECK_INT(api_get(api, "/v1/me", &r), 0);
	CHECK_INT(r.status, 200);
	CHECK_INT(cb.calls, 1);
	CHECK_STR(cb.access, "new");
	CHECK_STR(cb.refresh, "r2");
	CHECK_INT(s->nlog, 3);
	CHECK_STR(s->log[0].auth, "Bearer old");
	CHECK_STR(s->log[1].path, "/api/token");
	CHECK_STR(s->log[1].method, "POST");
	CHECK_STR(s->log[1].auth, "");  /* the token route gets no bearer */
	CHECK_STR(s->log[2].auth, "Bearer new");
	api_response_free(&r);
	/* Later requests use the new token straight away. */
	CHECK_INT(api_get(api, "/v1/me", &r), 0);
	CHECK_INT(r.attempts, 1);
	api_response_free(&r);
	api_free(api);
	srv_stop(s);
}

static void test_401_with_rejected_refresh_is_returned_without_looping(void)
{
	struct srv *s = srv_start(h_auth);
	struct api *api = api_for(s, 3);
	struct cb_state cb = {0};
	api_set_tokens(api, "old", "revoked");
	api_set_token_callback(api, on_tokens, &cb);
	struct api_response r;
	CHECK_INT(api_get(api, "/v1/me", &r), 0);
	CHECK_INT(r.status, 401);
	CHECK_INT(cb.calls, 0);
	CHECK_INT(s->nlog, 2);  /* the request and one refresh attempt, nothing more */
	api_response_free(&r);
	/* Without a refresh token there is nothing to try. */
	api_set_tokens(api, "old", NULL);
	CHECK_INT(api_get(api, "/v1/me", &r), 0);
	CHECK_INT(r.status, 401);
	CHECK_INT(count_path(s, "/api/token"), 1);
	api_response_free(&r);
	api_free(api);
	srv_stop(s);
}

static void *refresh_worker(void *arg)
{
	struct worker *w = arg;
	struct api_response r;
	if (api_get(w->api, "/v1/me", &r) == 0 && r.status == 200)
		w->ok++;
	api_response_free(&r);
	return NULL;
}

static void test_racing_401s_share_a_single_refresh(void)
{
	struct srv *s = srv_start(h_auth);
	struct api *api = api_for(s, 0);
	struct cb_state cb = {0};
	api_set_tokens(api, "old", "r1");
	api_set_token_callback(api, on_tokens, &cb);
	pthread_t th[6];
	struct worker w[6];
	for (int i = 0; i < 6; i++) {
		w[i] = (struct worker){api, 0};
		pthread_create(&th[i], NULL, refresh_worker, &w[i]);
	}
	for (int i = 0; i < 6; i++) {
		pthread_join(th[i], NULL);
		CHECK_INT(w[i].ok, 1);
	}
	/* r1 is single-use on a rotating server: a second refresh would have failed. */
	CHECK_INT(count_path(s, "/api/token"), 1);
	CHECK_INT(cb.calls, 1);
	api_free(api);
	srv_stop(s);
}

static void test_login_sends_encoded_form_and_maps_invalid_grant_to_eacces(void)
{
	struct srv *s = srv_start(h_auth);
	struct api *api = api_for(s, 3);
	struct api_token t;
	char err[128] = "";
	CHECK_INT(api_login(api, "alice", "p&ss word", &t, err, sizeof(err)), 0);
	CHECK_STR(t.access_token, "new");
	CHECK(t.refresh_token == NULL, "unexpected refresh token");
	api_token_free(&t);
	CHECK_INT(api_login(api, "alice", "wrong", &t, err, sizeof(err)), -EACCES);
	CHECK_STR(err, "Invalid credentials");
	CHECK_INT(count_path(s, "/api/token"), 2);
	api_free(api);
	srv_stop(s);
}

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	bind(fd, (struct sockaddr *)&a, sizeof(a));
	getsockname(fd, (struct sockaddr *)&a, &al);
	close(fd);
	return ntohs(a.sin_port);
}

static void test_connection_refused_is_retried_then_reported_with_errno_text(void)
{
	char *url = xasprintf("http://127.0.0.1:%d", free_port());
	struct api_config cfg = {.base_url = url, .max_retries = 2, .retry_base_ms = 1};
	struct api *api = api_new(&cfg);
	struct api_response r;
	CHECK_INT(api_get(api, "/v1/me", &r), -ECONNREFUSED);
	CHECK_INT(r.status, 0);
	CHECK_INT(r.attempts, 3);
	CHECK_STR(r.error, "Connection refused");
	api_response_free(&r);
	struct api_token t;
	char err[128];
	CHECK_INT(api_login(api, "a", "b", &t, err, sizeof(err)), -ECONNREFUSED);
	struct api_stats st;
	api_get_stats(api, &st);
	CHECK_INT(st.requests, 4);  /* 3 GET attempts, 1 POST */
	CHECK_INT(st.reused, 0);
	api_free(api);
	free(url);
}

static void test_unanswered_request_times_out(void)
{
	struct srv *s = srv_start(h_silent);
	char *url = xasprintf("http://127.0.0.1:%d", s->port);
	struct api_config cfg = {.base_url = url, .max_retries = 0, .timeout_ms = 200};
	struct api *api = api_new(&cfg);
	struct api_response r;
	CHECK_INT(api_get(api, "/v1/me", &r), -ETIMEDOUT);
	CHECK(r.error[0] != 0, "no error text");
	api_response_free(&r);
	api_free(api);
	free(url);
	srv_stop(s);
}

int main(void)
{
	RUN(test_sequential_requests_reuse_one_keepalive_connection);
	RUN(test_concurrent_threads_share_the_connection_pool);
	RUN(test_get_is_retried_on_503_until_success);
	RUN(test_retries_stop_at_max_and_return_the_last_error);
	RUN(test_post_is_never_retried);
	RUN(test_429_honours_retry_after_and_gives_up_when_too_long);
	RUN(test_401_refreshes_once_persists_tokens_and_retries);
	RUN(test_401_with_rejected_refresh_is_returned_without_looping);
	RUN(test_racing_401s_share_a_single_refresh);
	RUN(test_login_sends_encoded_form_and_maps_invalid_grant_to_eacces);
	RUN(test_connection_refused_is_retried_then_reported_with_errno_text);
	RUN(test_unanswered_request_times_out);
	return TAP_DONE();
}
