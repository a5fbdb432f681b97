/*
 * client.c - the client side of the two sockets.
 *
 * --client SOCKET streams stdin to the request socket as it is (any bytes:
 * the server judges the lines) while it prints the replies as they come.
 * At the end of stdin it half-closes the connection (shutdown SHUT_WR) and
 * reads on until the server has answered every line and closed: so a
 * pipe of requests gets all its replies, and an interactive session works
 * line by line.  Exit status 1 if the server closed before answering every
 * line.
 *
 * --control SOCKET.ctl COMMAND sends one control command and prints the
 * reply (exit status 1 if it is "ERR ...").
 */
#include "vmclua.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static size_t count_lf(const char *p, size_t n)
{
	size_t k = 0;
	for (const char *e = p + n; (p = memchr(p, '\n', (size_t)(e - p))); p++)
		k++;
	return k;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int vl_client(const char *path)
{
	static char in[65536], out[65536];
	size_t ilen = 0, ioff = 0, lines = 0, replies = 0;
	int fd = vl_connect(path), reading = 1, last_lf = 1;

	if (fd < 0) {
		fprintf(stderr, "vmc-lua: %s: %s\n", path, strerror(errno));
		return 1;
	}
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = reading && ioff == ilen ? 0 : -1, .events = POLLIN },
			{ .fd = fd, .events = POLLIN | (ioff < ilen ? POLLOUT : 0) },
		};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents) {
			ssize_t r = read(0, in, sizeof in);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				reading = 0;
				lines += !last_lf;       /* the server answers a last line without LF */
				shutdown(fd, SHUT_WR);
			} else {
				ilen = (size_t)r;
				ioff = 0;
				lines += count_lf(in, ilen);
				last_lf = in[ilen - 1] == '\n';
			}
		}
		if ((p[1].revents & POLLOUT) && ioff < ilen) {
			ssize_t w = send(fd, in + ioff, ilen - ioff, MSG_NOSIGNAL);
			if (w < 0 && errno != EINTR && errno != EAGAIN)
				break;
			ioff += w > 0 ? (size_t)w : 0;
		}
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = recv(fd, out, sizeof out, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0 || write_all(1, out, (size_t)r))
				break;
			replies += count_lf(out, (size_t)r);
		}
	}
	close(fd);
	if (replies < lines || reading) {
		fprintf(stderr, "vmc-lua: the server closed the connection after %zu of %zu replies\n",
			replies, lines);
		return 1;
	}
	return 0;
}

int vl_control_client(const char *path, const char *line)
{
	char buf[65536];
	int fd = vl_connect(path), first = 1, err = 0;
	size_t n = strlen(line);

	if (fd < 0) {
		fprintf(stderr, "vmc-lua: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (send(fd, line, n, MSG_NOSIGNAL) != (ssize_t)n || send(fd, "\n", 1, MSG_NOSIGNAL) != 1) {
		fprintf(stderr, "vmc-lua: %s: %s\n", path, strerror(errno));
		close(fd);
		return 1;
	}
	shutdown(fd, SHUT_WR);
	for (ssize_t r; (r = recv(fd, buf, sizeof buf, 0)) != 0;) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || write_all(1, buf, (size_t)r))
			break;
		err |= first && r >= 3 && !memcmp(buf, "ERR", 3);
		first = 0;
	}
	close(fd);
	return err;
}
