/* pt_sock.c - blocking writes to a stream socket or pipe write everything;
 * SO_RCVTIMEO and SO_SNDTIMEO end waits with EAGAIN; one case per run */

/*
 * Usage: pt_sock CASE.  The writes are far larger than a socket's or a
 * pipe's buffer and the reader takes its time, so a write that returns
 * when the buffer is full returns a part; a blocking write under NPTL
 * returns only once all of it went.
 */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "pt.h"

#define BIG (4u << 20)   /* bytes each write moves */
#define CHUNK 4096       /* what the slow reader takes at a time */

static int fds[2];
static char *out;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

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

/* ------------------------------------------------------------------------
 * Socket timeouts
 */

static void set_timeo(int fd, int opt, long usec)
{
	struct timeval tv = { .tv_sec = usec / 1000000, .tv_usec = usec % 1000000 };

	PT_OK(setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv)));
}

struct res {
	ssize_t n;
	int err;
	double took;
};

static struct res res;
static const char *op;

static void *timed_op(void *arg)
{
	char buf[64];
	double t0 = now_s();

	(void)arg;
	errno = 0;
	if (!strcmp(op, "recv"))
		res.n = recv(fds[0], buf, sizeof(buf), 0);
	else if (!strcmp(op, "read"))
		res.n = read(fds[0], buf, sizeof(buf));
	else if (!strcmp(op, "accept"))
		res.n = accept(fds[0], NULL, NULL);
	else /* send: fill the buffer, then wait */
		res.n = send(fds[1], out, BIG, MSG_NOSIGNAL);
	res.err = errno;
	res.took = now_s() - t0;
	return NULL;
}

/* times_out - @what waits on a socket with a 200 ms timeout, on a thread
 * of its own: it fails with EAGAIN after about that long. */
static void times_out(const char *what)
{
	pthread_t t;

	op = what;
	PT_OK(pthread_create(&t, NULL, timed_op, NULL));
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(res.n == -1 && (res.err == EAGAIN || res.err == EWOULDBLOCK));
	PT_CHECK(res.took >= 0.15 && res.took < 10);
}

static void listener(void)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char name[] = "/tmp/pt_sock-XXXXXX";
	int fd = mkstemp(name);

	PT_CHECK(fd >= 0);
	close(fd);
	unlink(name);
	memcpy(a.sun_path, name, sizeof(name));
	fds[0] = socket(AF_UNIX, SOCK_STREAM, 0);
	PT_CHECK(fds[0] >= 0);
	PT_OK(bind(fds[0], (struct sockaddr *)&a, sizeof(a)));
	PT_OK(listen(fds[0], 1));
	unlink(name);
}

int main(int argc, char **argv)
{
	const char *c = argc == 2 ? argv[1] : "";

	pt_alarm(60);
	if (!strncmp(c, "pipe_", 5)) {
		PT_OK(pipe(fds));
	} else if (!strcmp(c, "accept_rcvtimeo")) {
		listener();
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
	} else if (!strcmp(c, "recv_rcvtimeo")) {
		set_timeo(fds[0], SO_RCVTIMEO, 200000);
		times_out("recv");
	} else if (!strcmp(c, "read_rcvtimeo")) {
		set_timeo(fds[0], SO_RCVTIMEO, 200000);
		times_out("read");
	} else if (!strcmp(c, "accept_rcvtimeo")) {
		set_timeo(fds[0], SO_RCVTIMEO, 200000);
		times_out("accept");
	} else if (!strcmp(c, "send_sndtimeo_returns_the_part_sent")) {
		/* Nobody reads: the buffer fills, the rest times out, and the
		 * call returns what went, not an error. */
		fill();
		set_timeo(fds[1], SO_SNDTIMEO, 200000);
		op = "send";
		{
			pthread_t t;

			PT_OK(pthread_create(&t, NULL, timed_op, NULL));
			PT_OK(pthread_join(t, NULL));
		}
		PT_CHECK(res.n > 0 && res.n < (ssize_t)BIG);
		PT_CHECK(res.took >= 0.15 && res.took < 10);
		/* And with the buffer full, nothing goes: EAGAIN. */
		fill();
		times_out("send");
	} else {
		fprintf(stderr, "usage: pt_sock CASE (no case \"%s\")\n", c);
		return 2;
	}
	printf("pt_sock %s: %s\n", c, pt_exit_status() ? "FAILED" : "ok");
	return pt_exit_status();
}
