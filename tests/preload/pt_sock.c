/* pt_sock.c - blocking writes to a stream socket or pipe write everything;
 * one case per run */

/*
 * Usage: pt_sock CASE.  The writes are far larger than a socket's or a
 * pipe's buffer and the reader takes its time, so a write that returns
 * when the buffer is full returns a part; a blocking write under NPTL
 * returns only once all of it went.
 */

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "pt.h"

#define BIG (4u << 20)   /* bytes each write moves */
#define CHUNK 4096       /* what the slow reader takes at a time */

static int fds[2];
static char *out;

/* slow_reader - read BIG bytes in small pieces with pauses; check them. */
static void *slow_reader(void *arg)
{
	static char buf[CHUNK];
	size_t got = 0;
	unsigned n = 0;

	(void)arg;
	while (got < BIG) {
		ssize_t r = read(fds[0], buf, sizeof(buf));

		if (r <= 0) {
			PT_CHECK(r > 0);
			break;
		}
		PT_CHECK(memcmp(buf, out + got, (size_t)r) == 0);
		got += (size_t)r;
		if (++n % 64 == 0)
			usleep(1000);
	}
	PT_CHECK(got == BIG);
	return NULL;
}

static void fill(void)
{
	if (out)
		return;
	out = malloc(BIG);
	PT_CHECK(out != NULL);
	for (size_t i = 0; i < BIG; i++)
		out[i] = (char)(i * 7 + i / 4096);
}

/* writes_all - one call of @how writes all BIG bytes to fds[1]. */
static void writes_all(const char *how)
{
	pthread_t t;
	ssize_t n = -1;

	fill();
	PT_OK(pthread_create(&t, NULL, slow_reader, NULL));
	if (!strcmp(how, "write")) {
		n = write(fds[1], out, BIG);
	} else if (!strcmp(how, "send")) {
		n = send(fds[1], out, BIG, MSG_NOSIGNAL);
	} else {
		struct iovec iov[3] = {
			{ out, 1000 }, { out + 1000, BIG / 2 - 1000 }, { out + BIG / 2, BIG / 2 },
		};
		struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 3 };

		if (!strcmp(how, "writev"))
			n = writev(fds[1], iov, 3);
		else
			n = sendmsg(fds[1], &msg, MSG_NOSIGNAL);
	}
	PT_CHECK(n == (ssize_t)BIG);
	if (n != (ssize_t)BIG)
		fprintf(stderr, "pt_sock: %s wrote %zd of %u\n", how, n, BIG);
	PT_OK(pthread_join(t, NULL));
}

int main(int argc, char **argv)
{
	const char *c = argc == 2 ? argv[1] : "";

	alarm(60);
	if (!strncmp(c, "pipe_", 5)) {
		PT_OK(pipe(fds));
	} else {
		PT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds));
	}
	if (!strcmp(c, "pipe_write_all") || !strcmp(c, "stream_write_all")) {
		writes_all("write");
	} else if (!strcmp(c, "pipe_writev_all") || !strcmp(c, "stream_writev_all")) {
		writes_all("writev");
	} else if (!strcmp(c, "stream_send_all")) {
		writes_all("send");
	} else if (!strcmp(c, "stream_sendmsg_all")) {
		writes_all("sendmsg");
	} else {
		fprintf(stderr, "usage: pt_sock CASE (no case \"%s\")\n", c);
		return 2;
	}
	printf("pt_sock %s: %s\n", c, pt_exit_status() ? "FAILED" : "ok");
	return pt_exit_status();
}
