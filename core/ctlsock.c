/* ctlsock: one poll loop over the listening socket, a wake-up pipe, an engine listener
 * and the clients. Replies are small and clients read them at once, so writes are done
 * directly; a client that does not read (a full socket buffer) is disconnected rather
 * than allowed to stall the loop. */
#include "ctlsock.h"
#include "buf.h"
#include "engine.h"
#include "remote.h"
#include "xmem.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CTL_MAX_CLIENTS 16
#define CTL_MAX_LINE 4096

struct client {
	int fd;
	bool subscribed;
	struct buf in;
};

struct ctlsock {
	struct engine *e;
	char *path;
	int listen_fd;
	int wake[2];
	int events;
	struct client clients[CTL_MAX_CLIENTS];
	int nclients;
	pthread_t thread;
};

static void drop(struct ctlsock *c, int i)
{
	close(c->clients[i].fd);
	buf_free(&c->clients[i].in);
	c->clients[i] = c->clients[--c->nclients];
}

static bool send_line(int fd, const char *s, size_t n)
{
	struct buf b = BUF_INIT;
	buf_append(&b, s, n);
	buf_putc(&b, '\n');
	ssize_t w = send(fd, b.data, b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
	bool ok = w == (ssize_t)b.len;
	buf_free(&b);
	return ok;
}

static bool handle_line(struct ctlsock *c, struct client *cl, char *line)
{
	size_t n = strlen(line);
	while (n && (line[n - 1] == '\r' || line[n - 1] == ' '))
		line[--n] = 0;
	struct buf reply = BUF_INIT;
	if (strcmp(line, "subscribe") == 0) {
		cl->subscribed = true;
		remote_status_json(c->e, &reply);
	} else {
		remote_exec(c->e, line, &reply);
	}
	bool ok = send_line(cl->fd, reply.data, reply.len);
	buf_free(&reply);
	return ok;
}

static void *ctl_main(void *arg)
{
	struct ctlsock *c = arg;
	struct pollfd pfd[3 + CTL_MAX_CLIENTS];
	for (;;) {
		int n = 0;
		pfd[n++] = (struct pollfd){.fd = c->wake[0], .events = POLLIN};
		pfd[n++] = (struct pollfd){.fd = c->listen_fd, .events = POLLIN};
		pfd[n++] = (struct pollfd){.fd = c->events, .events = POLLIN};
		for (int i = 0; i < c->nclients; i++)
			pfd[n++] = (struct pollfd){.fd = c->clients[i].fd, .events = POLLIN};
		if (poll(pfd, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[0].revents)
			break;
		if (pfd[2].revents & POLLIN) {
			uint64_t v;
			ssize_t r = read(c->events, &v, sizeof(v));
			(void)r;
			struct buf st = BUF_INIT;
			bool have = false;
			for (int i = c->nclients - 1; i >= 0; i--) {
				if (!c->clients[i].subscribed)
					continue;
				if (!have) {
					remote_status_json(c->e, &st);
					have = true;
				}
				if (!send_line(c->clients[i].fd, st.data, st.len))
					drop(c, i);
			}
			buf_free(&st);
		}
		/* Clients before accepting, so indices in pfd still match. */
		for (int i = c->nclients - 1; i >= 0; i--) {
			if (!(pfd[3 + i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			char tmp[1024];
			ssize_t r = recv(c->clients[i].fd, tmp, sizeof(tmp), MSG_DONTWAIT);
			if (r <= 0) {
				drop(c, i);
				continue;
			}
			struct client *cl = &c->clients[i];
			buf_append(&cl->in, tmp, (size_t)r);
			bool ok = true;
			char *nl;
			while (ok && cl->in.len && (nl = memchr(cl->in.data, '\n', cl->in.len))) {
				*nl = 0;
				ok = handle_line(c, cl, cl->in.data);
				size_t used = (size_t)(nl - cl->in.data) + 1;
				memmove(cl->in.data, cl->in.data + used, cl->in.len - used);
				cl->in.len -= used;
				cl->in.data[cl->in.len] = 0;
			}
			if (!ok || cl->in.len > CTL_MAX_LINE)
				drop(c, i);
		}
		if (pfd[1].revents & POLLIN) {
			int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0) {
				if (c->nclients == CTL_MAX_CLIENTS) {
					send_line(fd, "error: too many control connections", 35);
					close(fd);
				} else {
					c->clients[c->nclients++] = (struct client){.fd = fd};
				}
			}
		}
	}
	return NULL;
}

struct ctlsock *ctlsock_start(struct engine *e, const char *path, char *err, size_t errlen)
{
	struct ctlsock *c = xcalloc(1, sizeof(*c));
	c->e = e;
	c->path = xstrdup(path);
	c->listen_fd = c->events = -1;
	c->wake[0] = c->wake[1] = -1;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "control socket path too long: %s", path);
		goto fail;
	}
	strcpy(sa.sun_path, path);
	/* A socket file that nobody answers on is a leftover from a crash: replace it. */
	int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(probe);
		snprintf(err, errlen, "another encore is already listening on %s", path);
		goto fail;
	}
	if (probe >= 0)
		close(probe);
	unlink(path);
	c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	mode_t old = umask(0177);
	int b = bind(c->listen_fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (c->listen_fd < 0 || b != 0 || chmod(path, 0600) != 0 || listen(c->listen_fd, 8) != 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(errno));
		goto fail;
	}
	if (pipe2(c->wake, O_CLOEXEC) != 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	c->events = engine_add_listener(e);
	if (c->events < 0) {
		snprintf(err, errlen, "too many engine listeners");
		goto fail;
	}
	if (pthread_create(&c->thread, NULL, ctl_main, c) != 0) {
		snprintf(err, errlen, "cannot start the control thread");
		goto fail;
	}
	return c;
fail:
	if (c->events >= 0)
		engine_remove_listener(e, c->events);
	if (c->listen_fd >= 0) {
		close(c->listen_fd);
		unlink(path);
	}
	if (c->wake[0] >= 0) {
		close(c->wake[0]);
		close(c->wake[1]);
	}
	free(c->path);
	free(c);
	return NULL;
}

void ctlsock_stop(struct ctlsock *c)
{
	if (!c)
		return;
	ssize_t w = write(c->wake[1], "x", 1);
	(void)w;
	pthread_join(c->thread, NULL);
	for (int i = c->nclients - 1; i >= 0; i--)
		drop(c, i);
	close(c->listen_fd);
	unlink(c->path);
	close(c->wake[0]);
	close(c->wake[1]);
	engine_remove_listener(c->e, c->events);
	free(c->path);
	free(c);
}
