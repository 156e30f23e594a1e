/* pt_io.c - blocking I/O calls from threads: one thread waits in a call
 * while another, on the same (single) processor, gives it what it waits for
 *
 * test_preload runs it with SA_VPS=1 and the blocked-syscall hand-off off
 * (SA_BLOCKED_US=0): a call the shim does not route to libsa's I/O layer
 * then blocks the only kernel thread, the helper never runs, and the
 * alarm ends the program.  It also runs under plain NPTL, where every
 * check must hold the same.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "pt.h"

static atomic_long ticks;
static atomic_int stop_ticker;

/* A thread that keeps counting while others wait: proof that they park. */
static void *ticker(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_ticker)) {
		atomic_fetch_add(&ticks, 1);
		sched_yield();
	}
	return NULL;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* nap - sleep 20 ms (a uthread parks) and see the ticker run meanwhile;
 * a busy machine may hold a kernel thread back longer, so wait up to 5 s. */
static void nap_and_see_ticks(void)
{
	long before = atomic_load(&ticks);
	int i = 0;

	do
		usleep(20000);
	while (atomic_load(&ticks) == before && ++i < 250);
	PT_CHECK(atomic_load(&ticks) > before);
}

struct job {
	int fd, fd2;
	ssize_t got;
	int err;
	char buf[256];
};

static pthread_t start(void *(*fn)(void *), struct job *j)
{
	pthread_t t;

	PT_OK(pthread_create(&t, NULL, fn, j));
	return t;
}

/* ---- read, readv, write on pipes ---- */

static void *do_read(void *arg)
{
	struct job *j = arg;

	j->got = read(j->fd, j->buf, sizeof(j->buf));
	j->err = errno;
	return NULL;
}

static void *do_readv(void *arg)
{
	struct job *j = arg;
	struct iovec iov[2] = { { j->buf, 3 }, { j->buf + 3, sizeof(j->buf) - 3 } };

	j->got = readv(j->fd, iov, 2);
	return NULL;
}

static void *do_big_write(void *arg)
{
	struct job *j = arg;
	static char big[1 << 20];
	size_t done = 0;

	memset(big, 'w', sizeof(big));
	while (done < sizeof(big)) {
		ssize_t n = write(j->fd, big + done, sizeof(big) - done);

		if (n <= 0)
			break;
		done += (size_t)n;
	}
	j->got = (ssize_t)done;
	return NULL;
}

static void test_pipes(void)
{
	int p[2];
	struct job j = { 0 };
	pthread_t t;
	char sink[65536];
	size_t total = 0;

	PT_OK(pipe(p));
	j.fd = p[0];
	t = start(do_read, &j);
	nap_and_see_ticks();
	PT_CHECK(write(p[1], "hello", 5) == 5);
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(j.got == 5 && memcmp(j.buf, "hello", 5) == 0);

	t = start(do_readv, &j);
	nap_and_see_ticks();
	{
		struct iovec iov[2] = { { "ab", 2 }, { "cdef", 4 } };

		PT_CHECK(writev(p[1], iov, 2) == 6);
	}
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(j.got == 6 && memcmp(j.buf, "abcdef", 6) == 0);

	/* A writer blocked on a full pipe. */
	j.fd = p[1];
	t = start(do_big_write, &j);
	nap_and_see_ticks();
	while (total < (1u << 20)) {
		ssize_t n = read(p[0], sink, sizeof(sink));

		if (n <= 0)
			break;
		total += (size_t)n;
	}
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(j.got == (1 << 20) && total == (1u << 20));

	/* Errors are the kernel's. */
	PT_CHECK(read(-1, sink, 1) == -1 && errno == EBADF);
	close(p[0]);
	signal(SIGPIPE, SIG_IGN);
	PT_CHECK(write(p[1], "x", 1) == -1 && errno == EPIPE);
	close(p[1]);

	/* Non-blocking descriptors keep EAGAIN. */
	PT_OK(pipe2(p, O_NONBLOCK));
	PT_CHECK(read(p[0], sink, 1) == -1 && errno == EAGAIN);
	close(p[0]);
	close(p[1]);
}

/* ---- pread, pwrite ---- */

static void test_positional(void)
{
	char path[] = "/tmp/pt_io-XXXXXX", buf[8] = { 0 };
	int fd = mkstemp(path), p[2];

	PT_CHECK(fd >= 0);
	unlink(path);
	PT_CHECK(pwrite(fd, "0123456789", 10, 0) == 10);
	PT_CHECK(pread(fd, buf, 4, 3) == 4 && memcmp(buf, "3456", 4) == 0);
	PT_CHECK(lseek(fd, 0, SEEK_CUR) == 0); /* the position did not move */
	PT_CHECK(pread(fd, buf, 4, -1) == -1 && errno == EINVAL);
	PT_CHECK(pread(fd, buf, 4, 100) == 0);
	close(fd);
	PT_OK(pipe(p));
	PT_CHECK(pread(p[0], buf, 1, 0) == -1 && errno == ESPIPE);
	PT_CHECK(pwrite(p[1], buf, 1, 0) == -1 && errno == ESPIPE);
	close(p[0]);
	close(p[1]);
}

/* ---- sockets ---- */

static void *do_recv(void *arg)
{
	struct job *j = arg;

	j->got = recv(j->fd, j->buf, sizeof(j->buf), 0);
	return NULL;
}

static void *do_recvmsg(void *arg)
{
	struct job *j = arg;
	struct iovec iov = { j->buf, sizeof(j->buf) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

	j->got = recvmsg(j->fd, &m, 0);
	return NULL;
}

static void *do_recvfrom(void *arg)
{
	struct job *j = arg;
	struct sockaddr_in from;
	socklen_t len = sizeof(from);

	j->got = recvfrom(j->fd, j->buf, sizeof(j->buf), 0, (struct sockaddr *)&from, &len);
	j->err = len == sizeof(from) && from.sin_family == AF_INET ? ntohs(from.sin_port) : -1;
	return NULL;
}

static void *do_accept(void *arg)
{
	struct job *j = arg;
	struct sockaddr_in peer;
	socklen_t len = sizeof(peer);
	int c = accept4(j->fd, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC);

	j->got = c;
	if (c >= 0) {
		j->err = (fcntl(c, F_GETFD) & FD_CLOEXEC) && len == sizeof(peer);
		j->fd2 = c;
	}
	return NULL;
}

static int loopback_socket(int type, struct sockaddr_in *a)
{
	socklen_t len = sizeof(*a);
	int s = socket(AF_INET, type, 0);

	*a = (struct sockaddr_in){ .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	PT_CHECK(s >= 0 && bind(s, (struct sockaddr *)a, sizeof(*a)) == 0);
	PT_CHECK(getsockname(s, (struct sockaddr *)a, &len) == 0);
	return s;
}

static void test_sockets(void)
{
	struct job j = { 0 };
	struct sockaddr_in la, ua, ub;
	int sv[2], l, c, u1, u2;
	pthread_t t;

	PT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	j.fd = sv[0];
	t = start(do_recv, &j);
	nap_and_see_ticks();
	PT_CHECK(send(sv[1], "ping", 4, 0) == 4);
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(j.got == 4 && memcmp(j.buf, "ping", 4) == 0);

	t = start(do_recvmsg, &j);
	nap_and_see_ticks();
	{
		struct iovec iov = { "msg!", 4 };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

		PT_CHECK(sendmsg(sv[1], &m, 0) == 4);
	}
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(j.got == 4 && memcmp(j.buf, "msg!", 4) == 0);
	PT_CHECK(recv(sv[0], j.buf, 1, MSG_DONTWAIT) == -1 && errno == EAGAIN);
	PT_CHECK(recv(0 > 1 ? 0 : -1, j.buf, 1, 0) == -1 && errno == EBADF);
	close(sv[0]);
	close(sv[1]);

	/* TCP on loopback: a thread waits in accept, this one connects. */
	l = loopback_socket(SOCK_STREAM, &la);
	PT_OK(listen(l, 8));
	j.fd = l;
	t = start(do_accept, &j);
	nap_and_see_ticks();
	c = socket(AF_INET, SOCK_STREAM, 0);
	PT_CHECK(connect(c, (struct sockaddr *)&la, sizeof(la)) == 0);
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(j.got >= 0 && j.err == 1);
	if (j.got >= 0) {
		struct job r = { .fd = (int)j.fd2 };

		t = start(do_recv, &r);
		nap_and_see_ticks();
		PT_CHECK(write(c, "tcp", 3) == 3);
		PT_OK(pthread_join(t, NULL));
		PT_CHECK(r.got == 3 && memcmp(r.buf, "tcp", 3) == 0);
		close((int)j.fd2);
	}
	close(c);
	/* A non-blocking listener with nobody waiting: EAGAIN. */
	fcntl(l, F_SETFL, O_NONBLOCK);
	PT_CHECK(accept(l, NULL, NULL) == -1 && errno == EAGAIN);
	close(l);

	/* UDP: recvfrom and sendto with addresses. */
	u1 = loopback_socket(SOCK_DGRAM, &ua);
	u2 = loopback_socket(SOCK_DGRAM, &ub);
	j.fd = u1;
	t = start(do_recvfrom, &j);
	nap_and_see_ticks();
	PT_CHECK(sendto(u2, "udp", 3, 0, (struct sockaddr *)&ua, sizeof(ua)) == 3);
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(j.got == 3 && memcmp(j.buf, "udp", 3) == 0 && j.err == ntohs(ub.sin_port));
	close(u1);
	close(u2);
}

/* ---- poll, ppoll, select, epoll_wait ---- */

static void *do_poll(void *arg)
{
	struct job *j = arg;
	struct pollfd p = { .fd = j->fd, .events = POLLIN };

	j->got = poll(&p, 1, -1);
	j->err = p.revents;
	return NULL;
}

static void *do_select(void *arg)
{
	struct job *j = arg;
	fd_set r;

	FD_ZERO(&r);
	FD_SET(j->fd, &r);
	j->got = select(j->fd + 1, &r, NULL, NULL, NULL);
	j->err = FD_ISSET(j->fd, &r);
	return NULL;
}

static void *do_epoll(void *arg)
{
	struct job *j = arg;
	struct epoll_event ev;

	j->got = epoll_wait(j->fd, &ev, 1, -1);
	j->err = (int)ev.data.u32;
	return NULL;
}

static void test_waits(void)
{
	struct job j = { 0 };
	struct pollfd pf;
	struct timeval tv;
	fd_set r;
	char c;
	int p[2], ep;
	long t0;
	pthread_t t;

	PT_OK(pipe(p));
	j.fd = p[0];
	t = start(do_poll, &j);
	nap_and_see_ticks();
	PT_CHECK(write(p[1], "x", 1) == 1);
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(j.got == 1 && j.err == POLLIN);
	PT_CHECK(read(p[0], &c, 1) == 1);

	t = start(do_select, &j);
	nap_and_see_ticks();
	PT_CHECK(write(p[1], "x", 1) == 1);
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(j.got == 1 && j.err == 1);
	PT_CHECK(read(p[0], &c, 1) == 1);

	/* Time limits: nothing comes, the calls return 0 no sooner. */
	pf = (struct pollfd){ .fd = p[0], .events = POLLIN };
	t0 = now_ms();
	PT_CHECK(poll(&pf, 1, 30) == 0 && pf.revents == 0);
	PT_CHECK(now_ms() - t0 >= 29);
	{
		struct timespec ts = { 0, 30 * 1000 * 1000 };

		t0 = now_ms();
		PT_CHECK(ppoll(&pf, 1, &ts, NULL) == 0);
		PT_CHECK(now_ms() - t0 >= 29);
	}
	FD_ZERO(&r);
	FD_SET(p[0], &r);
	tv = (struct timeval){ 0, 30000 };
	t0 = now_ms();
	PT_CHECK(select(p[0] + 1, &r, NULL, NULL, &tv) == 0 && !FD_ISSET(p[0], &r));
	PT_CHECK(now_ms() - t0 >= 29 && tv.tv_sec == 0 && tv.tv_usec == 0);
	/* select on a descriptor that is not open: EBADF.  Not one just
	 * closed, which the runtime may take for itself meanwhile, and not
	 * beyond the process's descriptor table (64 slots at first), which
	 * select(2) ignores: the highest free slot of the first 64. */
	{
		int bad = 63;

		while (bad > 3 && fcntl(bad, F_GETFD) != -1)
			bad--;
		FD_ZERO(&r);
		FD_SET(bad, &r);
		tv = (struct timeval){ 1, 0 };
		PT_CHECK(select(bad + 1, &r, NULL, NULL, &tv) == -1 && errno == EBADF);
	}

	ep = epoll_create1(0);
	{
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = 77 };

		PT_OK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
	}
	j.fd = ep;
	t = start(do_epoll, &j);
	nap_and_see_ticks();
	PT_CHECK(write(p[1], "x", 1) == 1);
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(j.got == 1 && j.err == 77);
	PT_CHECK(read(p[0], &c, 1) == 1);
	{
		struct epoll_event ev;

		t0 = now_ms();
		PT_CHECK(epoll_wait(ep, &ev, 1, 30) == 0);
		PT_CHECK(now_ms() - t0 >= 29);
		PT_CHECK(epoll_wait(-1, &ev, 1, 30) == -1 && errno == EBADF);
	}
	close(ep);
	close(p[0]);
	close(p[1]);
}

/* ---- signals: a handler without SA_RESTART interrupts a wait ---- */

static atomic_int handled;

static void on_usr1(int sig)
{
	(void)sig;
	atomic_fetch_add(&handled, 1);
}

/* The one thread that takes SIGUSR1 (the others block it): under NPTL the
 * kernel then interrupts this thread's read and no other. */
static void *do_read_usr1(void *arg)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
	return do_read(arg);
}

static void test_eintr(void)
{
	struct sigaction sa = { .sa_handler = on_usr1 }, old;
	struct job j = { 0 };
	pthread_t t;
	int p[2];

	PT_OK(pipe(p));
	sigemptyset(&sa.sa_mask);
	PT_OK(sigaction(SIGUSR1, &sa, NULL));
	/* The program sees its own handler, whatever the shim installed. */
	PT_OK(sigaction(SIGUSR1, NULL, &old));
	PT_CHECK(old.sa_handler == on_usr1 && !(old.sa_flags & SA_RESTART));
	j.fd = p[0];
	t = start(do_read_usr1, &j);
	nap_and_see_ticks();
	PT_OK(kill(getpid(), SIGUSR1));
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(j.got == -1 && j.err == EINTR);
	PT_CHECK(atomic_load(&handled) == 1);

	/* With SA_RESTART the wait goes on and gets its data. */
	sa.sa_flags = SA_RESTART;
	PT_OK(sigaction(SIGUSR1, &sa, NULL));
	t = start(do_read_usr1, &j);
	nap_and_see_ticks();
	PT_OK(kill(getpid(), SIGUSR1));
	nap_and_see_ticks();
	PT_CHECK(write(p[1], "after", 5) == 5);
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(j.got == 5 && memcmp(j.buf, "after", 5) == 0);
	PT_CHECK(atomic_load(&handled) == 2);
	signal(SIGUSR1, SIG_DFL);
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	pthread_t tick;
	sigset_t usr1;

	pt_alarm(60); /* a call that blocks the only VP ends the program here */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL); /* see do_read_usr1() */
	PT_OK(pthread_create(&tick, NULL, ticker, NULL));
	test_pipes();
	test_positional();
	test_sockets();
	test_waits();
	test_eintr();
	atomic_store(&stop_ticker, 1);
	PT_OK(pthread_join(tick, NULL));
	printf("pt_io: %s\n", pt_exit_status() ? "FAILED" : "ok");
	return pt_exit_status();
}
