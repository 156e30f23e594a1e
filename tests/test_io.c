/* test_io.c - the I/O calls of <sa/io.h>: results, errors, parking, deadlines, backends */

/*
 * Built twice: tests/test_io runs on the default backend (io_uring where
 * the kernel has it) and tests/test_io_threads with SA_IO=threads, the
 * thread-pool fallback (TEST_IO_BACKEND).  The test body is the main
 * uthread, so a call made there parks a uthread.
 */
#include <fcntl.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>

#include "helpers.h"
#include "sa/io.h"

#ifndef TEST_IO_BACKEND
#define TEST_IO_BACKEND ""
#endif

static bool io_threads_forced(void)
{
	return !strcmp(TEST_IO_BACKEND, "threads");
}

/* io_start - start with @vps VPs on this binary's backend. */
static void io_start(const char *vps)
{
	struct sa_stats st;

	if (io_threads_forced())
		setenv("SA_IO", "threads", 1);
	else
		unsetenv("SA_IO");
	signal(SIGPIPE, SIG_IGN);
	h_start_env(vps);
	st = h_stats();
	if (io_threads_forced())
		cr_assert_eq(st.io_backend, (uint64_t)SA_IO_BACKEND_THREADS);
	else
		cr_assert(st.io_backend == SA_IO_BACKEND_URING ||
			  st.io_backend == SA_IO_BACKEND_THREADS);
}

static void h_pipe(int p[2])
{
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0, "pipe2: %s", strerror(errno));
}

static void h_socketpair(int s[2])
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0,
		     "socketpair: %s", strerror(errno));
}

/* h_tmpfile - an unlinked regular file in the build directory's tmp. */
static int h_tmpfile(void)
{
	char path[] = "/tmp/sa-test-io-XXXXXX";
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
	unlink(path);
	return fd;
}

static void close2(int p[2])
{
	close(p[0]);
	close(p[1]);
}

/* A uthread that writes @len bytes of a pattern to an fd after a delay. */
struct delayed_write {
	int fd;
	uint64_t delay_ns;
	const char *data;
	size_t len;
};

static void *delayed_writer(void *arg)
{
	struct delayed_write *d = arg;

	sa_sleep_ns(d->delay_ns);
	UT_CHECK_EQ(sa_write(d->fd, d->data, d->len), (long long)d->len);
	return NULL;
}

/* ---- read ---- */

Test(io, read_returns_pipe_data, .timeout = 10)
{
	int p[2];
	char buf[8] = { 0 };

	io_start("2");
	h_pipe(p);
	cr_assert_eq(write(p[1], "abc", 3), 3);
	cr_assert_eq(sa_read(p[0], buf, sizeof(buf)), 3);
	cr_assert_str_eq(buf, "abc");
	close2(p);
}

Test(io, read_short_returns_what_is_there, .timeout = 10)
{
	int p[2];
	char buf[100];

	io_start("2");
	h_pipe(p);
	cr_assert_eq(write(p[1], "xy", 2), 2);
	cr_assert_eq(sa_read(p[0], buf, sizeof(buf)), 2);
	close2(p);
}

Test(io, read_bad_fd_ebadf, .timeout = 10)
{
	char c;

	io_start("2");
	cr_assert_eq(sa_read(-1, &c, 1), -EBADF);
	cr_assert_eq(sa_read(1000000, &c, 1), -EBADF);
}

Test(io, read_write_only_fd_ebadf, .timeout = 10)
{
	int p[2];
	char c;

	io_start("2");
	h_pipe(p);
	cr_assert_eq(sa_read(p[1], &c, 1), -EBADF);
	close2(p);
}

Test(io, read_bad_buffer_efault, .timeout = 10)
{
	int p[2];

	io_start("2");
	h_pipe(p);
	cr_assert_eq(write(p[1], "a", 1), 1);
	cr_assert_eq(sa_read(p[0], (void *)8, 1), -EFAULT);
	close2(p);
}

Test(io, read_directory_eisdir, .timeout = 10)
{
	int fd;
	char c;

	io_start("2");
	fd = open("/", O_RDONLY | O_DIRECTORY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(sa_read(fd, &c, 1), -EISDIR);
	close(fd);
}

Test(io, read_eof_when_writer_closed, .timeout = 10)
{
	int p[2];
	char c;

	io_start("2");
	h_pipe(p);
	close(p[1]);
	cr_assert_eq(sa_read(p[0], &c, 1), 0);
	close(p[0]);
}

static void *close_after_delay(void *arg)
{
	sa_sleep_ns(20 * NSEC_PER_MSEC);
	UT_CHECK_EQ(sa_close((int)IP(arg)), 0);
	return NULL;
}

Test(io, read_parked_wakes_with_eof_when_writer_closes, .timeout = 10)
{
	int p[2];
	char c;
	sa_uthread_t t;

	io_start("1");
	h_pipe(p);
	t = h_spawn(close_after_delay, UP(p[1]));
	cr_assert_eq(sa_read(p[0], &c, 1), 0);
	h_join(t);
	assert_no_ut_failures();
	close(p[0]);
}

/*
 * A completion does not wait for a compute-bound uthread's quantum: with a
 * 10 s quantum and the only VP held by a loop that makes no libsa call,
 * the watchdog sees completions waiting in the ring and sends the VP
 * through a scheduler pass, so the reader runs while the loop still does.
 */
static _Atomic int io_read_done;

static void *io_reader(void *arg)
{
	char c;

	UT_CHECK_EQ(sa_read((int)IP(arg), &c, 1), 1);
	atomic_store(&io_read_done, 1);
	return NULL;
}

static void *io_hog(void *arg)
{
	uint64_t until = h_mono() + 8 * NSEC_PER_SEC_, n = 0;

	(void)arg;
	while (!atomic_load_explicit(&io_read_done, memory_order_relaxed))
		if ((++n & 0xfffff) == 0 && h_mono() > until)
			break;
	return UP(atomic_load(&io_read_done));
}

static void *write_later(void *arg)
{
	h_os_sleep_ns(50 * NSEC_PER_MSEC);
	cr_assert_eq(write((int)IP(arg), "x", 1), 1);
	return NULL;
}

Test(io, completion_preempts_a_compute_bound_uthread, .timeout = 60)
{
	int p[2];
	sa_uthread_t r, h;
	pthread_t w;
	void *rv = NULL;

	if (io_threads_forced())
		cr_skip_test("the thread pool readies a uthread itself; it runs at the next quantum");
	setenv("SA_QUANTUM_US", "10000000", 1);
	unsetenv("SA_BLOCKED_US"); /* the watchdog on, at its default bound */
	io_start("1");
	if (h_stats().quantum_ns == 0)
		cr_skip_test("this machine cannot preempt (no XSAVE)");
	h_pipe(p);
	r = h_spawn(io_reader, UP(p[0]));
	SA_OK(sa_sleep_ns(20 * NSEC_PER_MSEC)); /* the reader parks in its read */
	h = h_spawn(io_hog, NULL);
	w = h_pthread(write_later, UP(p[1]));
	cr_assert_eq(sa_join(h, &rv), 0);
	h_join(r);
	h_pthread_join(w);
	assert_no_ut_failures();
	cr_assert_eq(IP(rv), 1u, "the compute loop ran 8 s without the reader running");
	close2(p);
}

Test(io, read_nonblocking_empty_eagain, .timeout = 10)
{
	int p[2];
	char c;

	io_start("2");
	cr_assert_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	cr_assert_eq(sa_read(p[0], &c, 1), -EAGAIN);
	close2(p);
}

Test(io, read_moves_file_position, .timeout = 10)
{
	int fd;
	char buf[4] = { 0 };

	io_start("2");
	fd = h_tmpfile();
	cr_assert_eq(write(fd, "012345", 6), 6);
	cr_assert_eq(lseek(fd, 1, SEEK_SET), 1);
	cr_assert_eq(sa_read(fd, buf, 2), 2);
	cr_assert_str_eq(buf, "12");
	cr_assert_eq(lseek(fd, 0, SEEK_CUR), 3);
	close(fd);
}

/* ---- write ---- */

Test(io, write_reaches_the_reader, .timeout = 10)
{
	int p[2];
	char buf[8] = { 0 };

	io_start("2");
	h_pipe(p);
	cr_assert_eq(sa_write(p[1], "hello", 5), 5);
	cr_assert_eq(read(p[0], buf, sizeof(buf)), 5);
	cr_assert_str_eq(buf, "hello");
	close2(p);
}

Test(io, write_no_reader_epipe, .timeout = 10)
{
	int p[2];

	io_start("2");
	h_pipe(p);
	close(p[0]);
	cr_assert_eq(sa_write(p[1], "x", 1), -EPIPE);
	close(p[1]);
}

Test(io, write_bad_fd_ebadf, .timeout = 10)
{
	int p[2];

	io_start("2");
	cr_assert_eq(sa_write(-1, "x", 1), -EBADF);
	h_pipe(p);
	cr_assert_eq(sa_write(p[0], "x", 1), -EBADF);
	close2(p);
}

Test(io, write_nonblocking_full_pipe_eagain, .timeout = 10)
{
	int p[2];
	static char big[1 << 16];
	ssize_t n;

	io_start("2");
	cr_assert_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	while (write(p[1], big, sizeof(big)) > 0)
		;
	n = sa_write(p[1], big, sizeof(big));
	cr_assert_eq(n, -EAGAIN, "sa_write = %zd", n);
	close2(p);
}

Test(io, write_short_into_nearly_full_nonblocking_pipe, .timeout = 10)
{
	int p[2];
	static char big[1 << 16];
	ssize_t n;
	int sz;

	io_start("2");
	cr_assert_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	sz = fcntl(p[1], F_GETPIPE_SZ);
	cr_assert_gt(sz, 4096);
	cr_assert_eq(write(p[1], big, (size_t)sz - 4096), sz - 4096);
	n = sa_write(p[1], big, sizeof(big));
	cr_assert_eq(n, 4096, "a write that does not fit is short: %zd", n);
	close2(p);
}

/* A slow reader of @len bytes: small reads with pauses, so that a write
 * far larger than the buffer finds it full many times over. */
struct slow_read {
	int fd;
	size_t len;
	const char *want;
};

static void *slow_reader(void *arg)
{
	struct slow_read *r = arg;
	static char buf[4096];
	size_t got = 0;
	unsigned n = 0;

	while (got < r->len) {
		ssize_t k = sa_read(r->fd, buf, sizeof(buf));

		if (k <= 0) {
			UT_CHECK(k > 0);
			break;
		}
		UT_CHECK(memcmp(buf, r->want + got, (size_t)k) == 0);
		got += (size_t)k;
		if (++n % 64 == 0)
			sa_sleep_ns(NSEC_PER_MSEC);
	}
	UT_CHECK_EQ(got, r->len);
	return NULL;
}

#define BIG_WRITE (4u << 20)

static char *big_pattern(void)
{
	char *b = malloc(BIG_WRITE);

	cr_assert(b);
	for (size_t i = 0; i < BIG_WRITE; i++)
		b[i] = (char)(i * 7 + i / 4096);
	return b;
}

/* A blocking write to a stream socket waits until all of it is written,
 * as write(2) does; a ring completes it when the buffer fills. */
Test(io, write_to_stream_socket_writes_all, .timeout = 30)
{
	char *b;
	int s[2];
	struct slow_read r;
	sa_uthread_t t;

	io_start("2");
	b = big_pattern();
	h_socketpair(s);
	r = (struct slow_read){ .fd = s[0], .len = BIG_WRITE, .want = b };
	t = h_spawn(slow_reader, &r);
	cr_assert_eq(sa_write(s[1], b, BIG_WRITE), (ssize_t)BIG_WRITE);
	h_join(t);
	assert_no_ut_failures();
	close2(s);
	free(b);
}

Test(io, writev_to_pipe_writes_all, .timeout = 30)
{
	char *b;
	int p[2];
	struct slow_read r;
	struct iovec iov[3];
	sa_uthread_t t;

	io_start("2");
	b = big_pattern();
	h_pipe(p);
	iov[0] = (struct iovec){ b, 1000 };
	iov[1] = (struct iovec){ b + 1000, BIG_WRITE / 2 - 1000 };
	iov[2] = (struct iovec){ b + BIG_WRITE / 2, BIG_WRITE / 2 };
	r = (struct slow_read){ .fd = p[0], .len = BIG_WRITE, .want = b };
	t = h_spawn(slow_reader, &r);
	cr_assert_eq(sa_writev(p[1], iov, 3), (ssize_t)BIG_WRITE);
	h_join(t);
	assert_no_ut_failures();
	close2(p);
	free(b);
}

/* SO_RCVTIMEO ends a wait for data with -EAGAIN, as recv(2) does. */
Test(io, recv_honours_so_rcvtimeo, .timeout = 30)
{
	struct timeval tv = { .tv_usec = 100000 };
	char c;
	int s[2];
	uint64_t t0, took;

	io_start("2");
	h_socketpair(s);
	cr_assert_eq(setsockopt(s[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	t0 = h_mono();
	cr_assert_eq(sa_recv(s[0], &c, 1, 0), -EAGAIN);
	took = h_mono() - t0;
	cr_assert_geq(took, 80 * NSEC_PER_MSEC, "took %llu ns", (unsigned long long)took);
	cr_assert_lt(took, 10 * NSEC_PER_SEC_);
	close2(s);
}

/* SO_SNDTIMEO: a send that filled the buffer and then timed out returns
 * what went, not an error. */
Test(io, send_so_sndtimeo_returns_the_part_sent, .timeout = 30)
{
	struct timeval tv = { .tv_usec = 100000 };
	char *b;
	int s[2];
	ssize_t n;

	io_start("2");
	b = big_pattern();
	h_socketpair(s);
	cr_assert_eq(setsockopt(s[1], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
	n = sa_send(s[1], b, BIG_WRITE, MSG_NOSIGNAL);
	cr_assert(n > 0 && n < (ssize_t)BIG_WRITE, "sa_send = %zd", n);
	cr_assert_eq(sa_send(s[1], b, BIG_WRITE, MSG_NOSIGNAL), -EAGAIN);
	close2(s);
	free(b);
}

/* ---- pread / pwrite ---- */

Test(io, pread_reads_at_offset_and_keeps_position, .timeout = 10)
{
	int fd;
	char buf[4] = { 0 };

	io_start("2");
	fd = h_tmpfile();
	cr_assert_eq(write(fd, "abcdef", 6), 6);
	cr_assert_eq(sa_pread(fd, buf, 3, 2), 3);
	cr_assert_str_eq(buf, "cde");
	cr_assert_eq(lseek(fd, 0, SEEK_CUR), 6);
	close(fd);
}

Test(io, pread_past_end_returns_0, .timeout = 10)
{
	int fd;
	char c;

	io_start("2");
	fd = h_tmpfile();
	cr_assert_eq(write(fd, "ab", 2), 2);
	cr_assert_eq(sa_pread(fd, &c, 1, 100), 0);
	cr_assert_eq(sa_pread(fd, &c, 10, 1), 1, "short read at the end");
	close(fd);
}

Test(io, pread_negative_offset_einval, .timeout = 10)
{
	int fd;
	char c;

	io_start("2");
	fd = h_tmpfile();
	cr_assert_eq(sa_pread(fd, &c, 1, -1), -EINVAL);
	cr_assert_eq(sa_pwrite(fd, &c, 1, -5), -EINVAL);
	close(fd);
}

Test(io, pread_pipe_espipe, .timeout = 10)
{
	int p[2];
	char c = 'a';

	io_start("2");
	h_pipe(p);
	cr_assert_eq(write(p[1], "z", 1), 1);
	cr_assert_eq(sa_pread(p[0], &c, 1, 0), -ESPIPE);
	cr_assert_eq(sa_pwrite(p[1], &c, 1, 0), -ESPIPE);
	close2(p);
}

Test(io, pwrite_writes_at_offset_and_keeps_position, .timeout = 10)
{
	int fd;
	char buf[8] = { 0 };

	io_start("2");
	fd = h_tmpfile();
	cr_assert_eq(write(fd, "aaaaaa", 6), 6);
	cr_assert_eq(sa_pwrite(fd, "XY", 2, 2), 2);
	cr_assert_eq(lseek(fd, 0, SEEK_CUR), 6);
	cr_assert_eq(pread(fd, buf, 6, 0), 6);
	cr_assert_str_eq(buf, "aaXYaa");
	close(fd);
}

Test(io, pwrite_bad_fd_ebadf, .timeout = 10)
{
	io_start("2");
	cr_assert_eq(sa_pwrite(-1, "x", 1, 0), -EBADF);
	cr_assert_eq(sa_pread(-1, (char[1]){ 0 }, 1, 0), -EBADF);
}

/* ---- readv / writev ---- */

Test(io, readv_scatters, .timeout = 10)
{
	int p[2];
	char a[3] = { 0 }, b[4] = { 0 };
	struct iovec iov[2] = { { a, 2 }, { b, 3 } };

	io_start("2");
	h_pipe(p);
	cr_assert_eq(write(p[1], "12345", 5), 5);
	cr_assert_eq(sa_readv(p[0], iov, 2), 5);
	cr_assert_str_eq(a, "12");
	cr_assert_str_eq(b, "345");
	close2(p);
}

Test(io, writev_gathers, .timeout = 10)
{
	int p[2];
	char buf[8] = { 0 };
	struct iovec iov[2] = { { "ab", 2 }, { "cde", 3 } };

	io_start("2");
	h_pipe(p);
	cr_assert_eq(sa_writev(p[1], iov, 2), 5);
	cr_assert_eq(read(p[0], buf, sizeof(buf)), 5);
	cr_assert_str_eq(buf, "abcde");
	close2(p);
}

Test(io, readv_writev_bad_count_einval, .timeout = 10)
{
	int p[2];
	struct iovec iov = { NULL, 0 };

	io_start("2");
	h_pipe(p);
	cr_assert_eq(sa_readv(p[0], &iov, -1), -EINVAL);
	cr_assert_eq(sa_writev(p[1], &iov, IOV_MAX + 1), -EINVAL);
	close2(p);
}

Test(io, readv_writev_bad_fd_ebadf, .timeout = 10)
{
	char c;
	struct iovec iov = { &c, 1 };

	io_start("2");
	cr_assert_eq(sa_readv(-1, &iov, 1), -EBADF);
	cr_assert_eq(sa_writev(-1, &iov, 1), -EBADF);
}

Test(io, writev_no_reader_epipe, .timeout = 10)
{
	int p[2];
	struct iovec iov = { "x", 1 };

	io_start("2");
	h_pipe(p);
	close(p[0]);
	cr_assert_eq(sa_writev(p[1], &iov, 1), -EPIPE);
	close(p[1]);
}

/* ---- sockets: accept / connect ---- */

static int h_listen_unix(struct sockaddr_un *sun, int type_flags)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | type_flags, 0);

	cr_assert_geq(fd, 0);
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	/* An abstract address: nothing to clean up. */
	snprintf(sun->sun_path + 1, sizeof(sun->sun_path) - 1, "sa-test-io-%d-%llu",
		 getpid(), (unsigned long long)h_mono());
	cr_assert_eq(bind(fd, (struct sockaddr *)sun, sizeof(*sun)), 0, "bind: %s",
		     strerror(errno));
	cr_assert_eq(listen(fd, 16), 0);
	return fd;
}

static struct sockaddr_un conn_addr;

static void *connect_and_send(void *arg)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	(void)arg;
	UT_CHECK(fd >= 0);
	sa_sleep_ns(10 * NSEC_PER_MSEC); /* let the acceptor park first */
	UT_CHECK_EQ(sa_connect(fd, (struct sockaddr *)&conn_addr, sizeof(conn_addr)), 0);
	UT_CHECK_EQ(sa_send(fd, "hi", 2, 0), 2);
	UT_CHECK_EQ(sa_close(fd), 0);
	return NULL;
}

Test(io, accept_parks_until_connect, .timeout = 10)
{
	int l, c;
	char buf[4] = { 0 };
	sa_uthread_t t;

	io_start("1");
	l = h_listen_unix(&conn_addr, 0);
	t = h_spawn(connect_and_send, NULL);
	c = sa_accept(l, NULL, NULL, SOCK_CLOEXEC);
	cr_assert_geq(c, 0, "sa_accept = %d", c);
	cr_assert(fcntl(c, F_GETFD) & FD_CLOEXEC);
	cr_assert_eq(sa_recv(c, buf, sizeof(buf), MSG_WAITALL), 2);
	cr_assert_str_eq(buf, "hi");
	h_join(t);
	assert_no_ut_failures();
	close(c);
	close(l);
}

Test(io, accept_stores_peer_address, .timeout = 10)
{
	struct sockaddr_un peer;
	socklen_t len = sizeof(peer);
	int l, c;
	sa_uthread_t t;

	io_start("2");
	l = h_listen_unix(&conn_addr, 0);
	t = h_spawn(connect_and_send, NULL);
	c = sa_accept(l, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK);
	cr_assert_geq(c, 0, "sa_accept = %d", c);
	cr_assert_eq(peer.sun_family, AF_UNIX);
	cr_assert(fcntl(c, F_GETFL) & O_NONBLOCK);
	h_join(t);
	assert_no_ut_failures();
	close(c);
	close(l);
}

Test(io, accept_bad_flags_einval, .timeout = 10)
{
	struct sockaddr_un sun;
	int l;

	io_start("2");
	l = h_listen_unix(&sun, SOCK_NONBLOCK);
	cr_assert_eq(sa_accept(l, NULL, NULL, 0x40000000), -EINVAL);
	close(l);
}

Test(io, accept_not_socket_enotsock, .timeout = 10)
{
	int p[2];

	io_start("2");
	h_pipe(p);
	cr_assert_eq(sa_accept(p[0], NULL, NULL, 0), -ENOTSOCK);
	cr_assert_eq(sa_accept(-1, NULL, NULL, 0), -EBADF);
	close2(p);
}

Test(io, accept_not_listening_einval, .timeout = 10)
{
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	io_start("2");
	cr_assert_geq(s, 0);
	cr_assert_eq(sa_accept(s, NULL, NULL, 0), -EINVAL);
	close(s);
}

Test(io, accept_nonblocking_listener_eagain, .timeout = 10)
{
	struct sockaddr_un sun;
	int l;

	io_start("2");
	l = h_listen_unix(&sun, SOCK_NONBLOCK);
	cr_assert_eq(sa_accept(l, NULL, NULL, 0), -EAGAIN);
	close(l);
}

Test(io, connect_no_listener_econnrefused, .timeout = 10)
{
	struct sockaddr_in in = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(in);
	int s, t;

	io_start("2");
	/* A port that was just free: bind, read it back, close. */
	t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(t, 0);
	cr_assert_eq(bind(t, (struct sockaddr *)&in, sizeof(in)), 0);
	cr_assert_eq(getsockname(t, (struct sockaddr *)&in, &len), 0);
	close(t);
	s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(s, 0);
	cr_assert_eq(sa_connect(s, (struct sockaddr *)&in, sizeof(in)), -ECONNREFUSED);
	close(s);
}

Test(io, connect_missing_unix_path_enoent, .timeout = 10)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX,
				   .sun_path = "/nonexistent/sa-test-io.sock" };
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	io_start("2");
	cr_assert_geq(s, 0);
	cr_assert_eq(sa_connect(s, (struct sockaddr *)&sun, sizeof(sun)), -ENOENT);
	cr_assert_eq(sa_connect(-1, (struct sockaddr *)&sun, sizeof(sun)), -EBADF);
	close(s);
}

Test(io, connect_tcp_loopback_succeeds, .timeout = 10)
{
	struct sockaddr_in in = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(in);
	int l, s, c;

	io_start("2");
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(l, 0);
	cr_assert_eq(bind(l, (struct sockaddr *)&in, sizeof(in)), 0);
	cr_assert_eq(listen(l, 4), 0);
	cr_assert_eq(getsockname(l, (struct sockaddr *)&in, &len), 0);
	s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(sa_connect(s, (struct sockaddr *)&in, sizeof(in)), 0);
	c = sa_accept(l, NULL, NULL, 0);
	cr_assert_geq(c, 0);
	cr_assert_eq(sa_send(s, "ok", 2, 0), 2);
	cr_assert_eq(sa_recv(c, (char[2]){ 0 }, 2, MSG_WAITALL), 2);
	close(c);
	close(s);
	close(l);
}

/* ---- recv / send ---- */

Test(io, send_recv_socketpair, .timeout = 10)
{
	int s[2];
	char buf[8] = { 0 };

	io_start("2");
	h_socketpair(s);
	cr_assert_eq(sa_send(s[0], "ping", 4, 0), 4);
	cr_assert_eq(sa_recv(s[1], buf, sizeof(buf), 0), 4);
	cr_assert_str_eq(buf, "ping");
	close2(s);
}

Test(io, recv_peer_closed_returns_0, .timeout = 10)
{
	int s[2];
	char c;

	io_start("2");
	h_socketpair(s);
	close(s[0]);
	cr_assert_eq(sa_recv(s[1], &c, 1, 0), 0);
	close(s[1]);
}

Test(io, send_peer_closed_epipe_nosignal, .timeout = 10)
{
	int s[2];

	io_start("2");
	h_socketpair(s);
	close(s[1]);
	cr_assert_eq(sa_send(s[0], "x", 1, MSG_NOSIGNAL), -EPIPE);
	close(s[0]);
}

Test(io, recv_peer_reset_econnreset, .timeout = 10)
{
	struct sockaddr_in in = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	socklen_t len = sizeof(in);
	int l, s, c;
	char buf[4];

	io_start("2");
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(bind(l, (struct sockaddr *)&in, sizeof(in)), 0);
	cr_assert_eq(listen(l, 4), 0);
	cr_assert_eq(getsockname(l, (struct sockaddr *)&in, &len), 0);
	s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(sa_connect(s, (struct sockaddr *)&in, sizeof(in)), 0);
	c = sa_accept(l, NULL, NULL, 0);
	cr_assert_geq(c, 0);
	/* Close with unread data and linger 0: the peer gets a reset. */
	cr_assert_eq(setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
	cr_assert_eq(close(c), 0);
	cr_assert_eq(sa_recv(s, buf, sizeof(buf), 0), -ECONNRESET);
	close(s);
	close(l);
}

Test(io, recv_dontwait_empty_eagain, .timeout = 10)
{
	int s[2];
	char c;

	io_start("2");
	h_socketpair(s);
	cr_assert_eq(sa_recv(s[0], &c, 1, MSG_DONTWAIT), -EAGAIN);
	close2(s);
}

Test(io, recv_nonblocking_socket_empty_eagain, .timeout = 10)
{
	int s[2];
	char c;

	io_start("2");
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, s), 0);
	cr_assert_eq(sa_recv(s[0], &c, 1, 0), -EAGAIN);
	cr_assert_eq(sa_read(s[0], &c, 1), -EAGAIN);
	close2(s);
}

Test(io, recv_send_not_socket_enotsock, .timeout = 10)
{
	int p[2];
	char c;

	io_start("2");
	h_pipe(p);
	cr_assert_eq(sa_recv(p[0], &c, 1, 0), -ENOTSOCK);
	cr_assert_eq(sa_send(p[1], "x", 1, 0), -ENOTSOCK);
	cr_assert_eq(sa_recv(-1, &c, 1, 0), -EBADF);
	cr_assert_eq(sa_send(-1, "x", 1, 0), -EBADF);
	close2(p);
}

static void *recv_one(void *arg)
{
	char c = 0;

	UT_CHECK_EQ(sa_recv((int)IP(arg), &c, 1, 0), 1);
	UT_CHECK_EQ(c, 'q');
	return NULL;
}

Test(io, recv_parks_until_data, .timeout = 10)
{
	int s[2];
	sa_uthread_t t;

	io_start("1");
	h_socketpair(s);
	t = h_spawn(recv_one, UP(s[1]));
	SA_OK(sa_sleep_ns(10 * NSEC_PER_MSEC));
	cr_assert_eq(sa_send(s[0], "q", 1, 0), 1);
	h_join(t);
	assert_no_ut_failures();
	close2(s);
}

/* ---- recvmsg / sendmsg ---- */

Test(io, sendmsg_recvmsg_roundtrip, .timeout = 10)
{
	int s[2];
	char a[3] = { 0 }, b[4] = { 0 };
	struct iovec out[2] = { { "abc", 3 }, { "de", 2 } };
	struct iovec in[2] = { { a, 2 }, { b, 3 } };
	struct msghdr mo = { .msg_iov = out, .msg_iovlen = 2 };
	struct msghdr mi = { .msg_iov = in, .msg_iovlen = 2 };

	io_start("2");
	h_socketpair(s);
	cr_assert_eq(sa_sendmsg(s[0], &mo, 0), 5);
	cr_assert_eq(sa_recvmsg(s[1], &mi, MSG_WAITALL), 5);
	cr_assert_str_eq(a, "ab");
	cr_assert_str_eq(b, "cde");
	close2(s);
}

Test(io, sendmsg_peer_closed_epipe, .timeout = 10)
{
	int s[2];
	struct iovec v = { "x", 1 };
	struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1 };

	io_start("2");
	h_socketpair(s);
	close(s[1]);
	cr_assert_eq(sa_sendmsg(s[0], &m, MSG_NOSIGNAL), -EPIPE);
	close(s[0]);
}

Test(io, recvmsg_sendmsg_bad_fd_ebadf, .timeout = 10)
{
	char c;
	struct iovec v = { &c, 1 };
	struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1 };

	io_start("2");
	cr_assert_eq(sa_recvmsg(-1, &m, 0), -EBADF);
	cr_assert_eq(sa_sendmsg(-1, &m, 0), -EBADF);
}

Test(io, recvmsg_peer_closed_returns_0, .timeout = 10)
{
	int s[2];
	char c;
	struct iovec v = { &c, 1 };
	struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1 };

	io_start("2");
	h_socketpair(s);
	close(s[0]);
	cr_assert_eq(sa_recvmsg(s[1], &m, 0), 0);
	close(s[1]);
}

/* ---- poll ---- */

Test(io, poll_ready_fd_returns_count, .timeout = 10)
{
	int p[2];
	struct pollfd f[2];

	io_start("2");
	h_pipe(p);
	cr_assert_eq(write(p[1], "a", 1), 1);
	f[0] = (struct pollfd){ .fd = p[0], .events = POLLIN };
	f[1] = (struct pollfd){ .fd = p[1], .events = POLLOUT };
	cr_assert_eq(sa_poll(f, 2, -1), 2);
	cr_assert(f[0].revents & POLLIN);
	cr_assert(f[1].revents & POLLOUT);
	close2(p);
}

Test(io, poll_times_out_returns_0, .timeout = 10)
{
	int p[2];
	struct pollfd f;
	uint64_t t0;

	io_start("2");
	h_pipe(p);
	f = (struct pollfd){ .fd = p[0], .events = POLLIN };
	t0 = h_mono();
	cr_assert_eq(sa_poll(&f, 1, 30), 0);
	cr_assert_geq(h_mono() - t0, 30 * NSEC_PER_MSEC);
	cr_assert_eq(f.revents, 0);
	close2(p);
}

Test(io, poll_zero_timeout_does_not_wait, .timeout = 10)
{
	int p[2];
	struct pollfd f;

	io_start("2");
	h_pipe(p);
	f = (struct pollfd){ .fd = p[0], .events = POLLIN };
	cr_assert_eq(sa_poll(&f, 1, 0), 0);
	close2(p);
}

Test(io, poll_parks_until_data, .timeout = 10)
{
	int p[2];
	struct pollfd f;
	struct delayed_write d;
	sa_uthread_t t;

	io_start("1");
	h_pipe(p);
	d = (struct delayed_write){ .fd = p[1], .delay_ns = 20 * NSEC_PER_MSEC,
				    .data = "z", .len = 1 };
	t = h_spawn(delayed_writer, &d);
	f = (struct pollfd){ .fd = p[0], .events = POLLIN };
	cr_assert_eq(sa_poll(&f, 1, 5000), 1);
	cr_assert(f.revents & POLLIN);
	h_join(t);
	assert_no_ut_failures();
	close2(p);
}

Test(io, poll_many_fds_one_becomes_ready, .timeout = 10)
{
	enum { N = 20 };
	int p[N][2];
	struct pollfd f[N];
	struct delayed_write d;
	sa_uthread_t t;

	io_start("1");
	for (int i = 0; i < N; i++) {
		h_pipe(p[i]);
		f[i] = (struct pollfd){ .fd = p[i][0], .events = POLLIN };
	}
	d = (struct delayed_write){ .fd = p[13][1], .delay_ns = 20 * NSEC_PER_MSEC,
				    .data = "z", .len = 1 };
	t = h_spawn(delayed_writer, &d);
	cr_assert_eq(sa_poll(f, N, -1), 1);
	for (int i = 0; i < N; i++)
		cr_assert_eq(f[i].revents, i == 13 ? POLLIN : 0, "fd %d revents %#x", i,
			     f[i].revents);
	h_join(t);
	assert_no_ut_failures();
	for (int i = 0; i < N; i++)
		close2(p[i]);
}

Test(io, poll_bad_fd_pollnval, .timeout = 10)
{
	struct pollfd f = { .fd = 1000000, .events = POLLIN };

	io_start("2");
	cr_assert_eq(sa_poll(&f, 1, -1), 1);
	cr_assert_eq(f.revents, POLLNVAL);
}

Test(io, poll_negative_fd_ignored, .timeout = 10)
{
	int p[2];
	struct pollfd f[2];

	io_start("2");
	h_pipe(p);
	f[0] = (struct pollfd){ .fd = -1, .events = POLLIN, .revents = 7 };
	f[1] = (struct pollfd){ .fd = p[0], .events = POLLIN };
	cr_assert_eq(sa_poll(f, 2, 20), 0);
	cr_assert_eq(f[0].revents, 0);
	close2(p);
}

Test(io, poll_bad_array_efault, .timeout = 10)
{
	io_start("2");
	cr_assert_eq(sa_poll((struct pollfd *)8, 1, 0), -EFAULT);
}

Test(io, poll_hangup_when_writer_closes, .timeout = 10)
{
	int p[2];
	struct pollfd f;
	sa_uthread_t t;

	io_start("1");
	h_pipe(p);
	t = h_spawn(close_after_delay, UP(p[1]));
	f = (struct pollfd){ .fd = p[0], .events = POLLIN };
	cr_assert_eq(sa_poll(&f, 1, 5000), 1);
	cr_assert(f.revents & POLLHUP);
	h_join(t);
	assert_no_ut_failures();
	close(p[0]);
}

/* ---- openat / close / fsync ---- */

Test(io, openat_creates_and_reopens, .timeout = 10)
{
	char dir[] = "/tmp/sa-test-io-dir-XXXXXX";
	int d, fd;

	io_start("2");
	cr_assert_not_null(mkdtemp(dir));
	d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(d, 0);
	fd = sa_openat(d, "f", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "sa_openat = %d", fd);
	cr_assert_eq(sa_write(fd, "data", 4), 4);
	SA_OK(sa_fsync(fd));
	SA_OK(sa_close(fd));
	cr_assert_eq(sa_openat(d, "f", O_CREAT | O_EXCL | O_WRONLY, 0600), -EEXIST);
	fd = sa_openat(d, "f", O_RDONLY | O_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	SA_OK(sa_close(fd));
	unlinkat(d, "f", 0);
	close(d);
	rmdir(dir);
}

/* A FIFO's reader, opening after a delay while the writer's open waits. */
static void *fifo_late_reader(void *arg)
{
	const char *path = arg;
	int fd;

	sa_sleep_ns(20 * 1000 * 1000);
	fd = sa_openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	UT_CHECK(fd >= 0);
	return (void *)(intptr_t)fd;
}

/* The ring's first try opens with O_NONBLOCK, which makes a FIFO's writer
 * fail with ENXIO while no reader has it open: the open must wait instead,
 * as openat(2) does, and park only its uthread. */
Test(io, openat_fifo_writer_waits_for_reader, .timeout = 10)
{
	char dir[] = "/tmp/sa-test-io-dir-XXXXXX", path[64];
	sa_uthread_t t;
	int fd, rfd;

	io_start("1");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/fifo", dir);
	cr_assert_eq(mkfifo(path, 0600), 0);
	t = h_spawn(fifo_late_reader, path);
	fd = sa_openat(AT_FDCWD, path, O_WRONLY | O_CLOEXEC, 0);
	cr_assert_geq(fd, 0, "sa_openat = %d", fd);
	rfd = (int)(intptr_t)h_join(t);
	assert_no_ut_failures();
	cr_assert_eq(sa_write(fd, "x", 1), 1);
	SA_OK(sa_close(fd));
	SA_OK(sa_close(rfd));
	unlink(path);
	rmdir(dir);
}

Test(io, openat_missing_enoent, .timeout = 10)
{
	io_start("2");
	cr_assert_eq(sa_openat(AT_FDCWD, "/nonexistent/sa-test-io", O_RDONLY, 0), -ENOENT);
}

Test(io, openat_bad_dirfd_ebadf, .timeout = 10)
{
	io_start("2");
	cr_assert_eq(sa_openat(-5, "relative", O_RDONLY, 0), -EBADF);
}

Test(io, openat_file_as_dir_enotdir, .timeout = 10)
{
	int fd;

	io_start("2");
	fd = h_tmpfile();
	cr_assert_eq(sa_openat(fd, "x", O_RDONLY, 0), -ENOTDIR);
	close(fd);
}

/* A uthread that waits in sa_read() on @arg's read end until data comes. */
static void *read_one(void *arg)
{
	char c;

	UT_CHECK(sa_read(*(int *)arg, &c, 1) == 1);
	return NULL;
}

/*
 * The second close of a descriptor must fail even when the pool starts a
 * worker for it: with two workers busy in reads, each close needs a new
 * one, whose own descriptor must not take the number just closed.
 */
Test(io, close_twice_ebadf_while_workers_start, .timeout = 10)
{
	int a[2], b[2], p[2];
	sa_uthread_t ta, tb;

	io_start("2");
	h_pipe(a);
	h_pipe(b);
	h_pipe(p);
	ta = h_spawn(read_one, &a[0]);
	sa_sleep_ns(10 * 1000 * 1000);
	SA_OK(sa_close(p[0]));
	tb = h_spawn(read_one, &b[0]);
	sa_sleep_ns(10 * 1000 * 1000);
	SA_ERR(sa_close(p[0]), -EBADF);
	cr_assert_eq(write(a[1], "x", 1), 1);
	cr_assert_eq(write(b[1], "x", 1), 1);
	h_join(ta);
	h_join(tb);
	assert_no_ut_failures();
	close2(a);
	close2(b);
	close(p[1]);
}

Test(io, close_twice_ebadf, .timeout = 10)
{
	int p[2];

	io_start("2");
	h_pipe(p);
	SA_OK(sa_close(p[0]));
	SA_ERR(sa_close(p[0]), -EBADF);
	SA_ERR(sa_close(-1), -EBADF);
	close(p[1]);
}

Test(io, fsync_bad_fd_ebadf, .timeout = 10)
{
	io_start("2");
	SA_ERR(sa_fsync(-1), -EBADF);
}

Test(io, fsync_pipe_einval, .timeout = 10)
{
	int p[2];

	io_start("2");
	h_pipe(p);
	SA_ERR(sa_fsync(p[1]), -EINVAL);
	close2(p);
}

/* ---- deadlines ---- */

Test(io, deadline_read_times_out, .timeout = 10)
{
	int p[2];
	char c;
	struct timespec dl;
	uint64_t t0;

	io_start("2");
	h_pipe(p);
	t0 = h_mono();
	dl = h_deadline(CLOCK_MONOTONIC, 30 * (int64_t)NSEC_PER_MSEC);
	SA_OK(sa_io_set_deadline(CLOCK_MONOTONIC, &dl));
	cr_assert_eq(sa_read(p[0], &c, 1), -ETIMEDOUT);
	cr_assert_geq(h_mono() - t0, 29 * NSEC_PER_MSEC);
	close2(p);
}

Test(io, deadline_realtime_clock_accepted, .timeout = 10)
{
	int s[2];
	char c;
	struct timespec dl;

	io_start("2");
	h_socketpair(s);
	dl = h_deadline(CLOCK_REALTIME, 20 * (int64_t)NSEC_PER_MSEC);
	SA_OK(sa_io_set_deadline(CLOCK_REALTIME, &dl));
	cr_assert_eq(sa_recv(s[0], &c, 1, 0), -ETIMEDOUT);
	close2(s);
}

Test(io, deadline_past_still_takes_ready_data, .timeout = 10)
{
	int p[2];
	char c;
	struct timespec dl;

	io_start("2");
	h_pipe(p);
	cr_assert_eq(write(p[1], "k", 1), 1);
	dl = h_deadline(CLOCK_MONOTONIC, -(int64_t)NSEC_PER_SEC_);
	SA_OK(sa_io_set_deadline(CLOCK_MONOTONIC, &dl));
	cr_assert_eq(sa_read(p[0], &c, 1), 1);
	cr_assert_eq(c, 'k');
	cr_assert_eq(sa_read(p[0], &c, 1), -ETIMEDOUT);
	close2(p);
}

Test(io, deadline_cleared_waits_again, .timeout = 10)
{
	int p[2];
	char c;
	struct timespec dl;
	struct delayed_write d;
	sa_uthread_t t;

	io_start("1");
	h_pipe(p);
	dl = h_deadline(CLOCK_MONOTONIC, -1);
	SA_OK(sa_io_set_deadline(CLOCK_MONOTONIC, &dl));
	SA_OK(sa_io_set_deadline(CLOCK_MONOTONIC, NULL));
	d = (struct delayed_write){ .fd = p[1], .delay_ns = 20 * NSEC_PER_MSEC,
				    .data = "w", .len = 1 };
	t = h_spawn(delayed_writer, &d);
	cr_assert_eq(sa_read(p[0], &c, 1), 1);
	h_join(t);
	assert_no_ut_failures();
	close2(p);
}

Test(io, deadline_bad_arguments_einval, .timeout = 10)
{
	struct timespec bad = { .tv_sec = 1, .tv_nsec = 1000000000 };
	struct timespec ok = { .tv_sec = 1, .tv_nsec = 0 };

	io_start("2");
	SA_ERR(sa_io_set_deadline(CLOCK_MONOTONIC, &bad), -EINVAL);
	SA_ERR(sa_io_set_deadline(CLOCK_PROCESS_CPUTIME_ID, &ok), -EINVAL);
	SA_ERR(sa_io_set_deadline(CLOCK_PROCESS_CPUTIME_ID, NULL), -EINVAL);
}

static void *read_with_no_deadline(void *arg)
{
	char c;

	UT_CHECK_EQ(sa_read((int)IP(arg), &c, 1), 1);
	return NULL;
}

Test(io, deadline_belongs_to_one_uthread, .timeout = 10)
{
	int p[2];
	struct timespec dl;
	sa_uthread_t t;

	io_start("1");
	h_pipe(p);
	dl = h_deadline(CLOCK_MONOTONIC, 0);
	SA_OK(sa_io_set_deadline(CLOCK_MONOTONIC, &dl));
	t = h_spawn(read_with_no_deadline, UP(p[0]));
	SA_OK(sa_sleep_ns(30 * NSEC_PER_MSEC)); /* it waits past our deadline */
	SA_OK(sa_io_set_deadline(CLOCK_MONOTONIC, NULL));
	cr_assert_eq(sa_write(p[1], "1", 1), 1);
	h_join(t);
	assert_no_ut_failures();
	close2(p);
}

Test(io, deadline_accept_times_out, .timeout = 10)
{
	struct sockaddr_un sun;
	struct timespec dl;
	int l;

	io_start("2");
	l = h_listen_unix(&sun, 0);
	dl = h_deadline(CLOCK_MONOTONIC, 20 * (int64_t)NSEC_PER_MSEC);
	SA_OK(sa_io_set_deadline(CLOCK_MONOTONIC, &dl));
	cr_assert_eq(sa_accept(l, NULL, NULL, 0), -ETIMEDOUT);
	close(l);
}

Test(io, deadline_before_poll_timeout_etimedout, .timeout = 10)
{
	int p[2];
	struct pollfd f;
	struct timespec dl;

	io_start("2");
	h_pipe(p);
	f = (struct pollfd){ .fd = p[0], .events = POLLIN };
	dl = h_deadline(CLOCK_MONOTONIC, 20 * (int64_t)NSEC_PER_MSEC);
	SA_OK(sa_io_set_deadline(CLOCK_MONOTONIC, &dl));
	cr_assert_eq(sa_poll(&f, 1, 5000), -ETIMEDOUT);
	close2(p);
}

Test(io, close_ignores_deadline, .timeout = 10)
{
	int p[2];
	struct timespec dl;

	io_start("2");
	h_pipe(p);
	dl = h_deadline(CLOCK_MONOTONIC, -(int64_t)NSEC_PER_SEC_);
	SA_OK(sa_io_set_deadline(CLOCK_MONOTONIC, &dl));
	SA_OK(sa_close(p[0]));
	SA_OK(sa_close(p[1]));
}

/* ---- parking only the caller ---- */

static _Atomic int ticks;

static void *ticker(void *arg)
{
	_Atomic int *stop = arg;

	while (!atomic_load(stop)) {
		atomic_fetch_add(&ticks, 1);
		sa_yield();
	}
	return NULL;
}

Test(io, blocked_read_leaves_vp_to_others, .timeout = 10)
{
	int p[2];
	char c;
	_Atomic int stop = 0;
	sa_uthread_t t;
	struct delayed_write d;
	sa_uthread_t w;

	io_start("1");
	h_pipe(p);
	t = h_spawn(ticker, &stop);
	d = (struct delayed_write){ .fd = p[1], .delay_ns = 30 * NSEC_PER_MSEC,
				    .data = "r", .len = 1 };
	w = h_spawn(delayed_writer, &d);
	cr_assert_eq(sa_read(p[0], &c, 1), 1);
	cr_assert_gt(atomic_load(&ticks), 100, "the VP ran others while we waited");
	atomic_store(&stop, 1);
	h_join(t);
	h_join(w);
	assert_no_ut_failures();
	close2(p);
}

enum { NREADERS = 1000 };
static int rpipe[NREADERS][2];
static _Atomic int readers_done, readers_parked;

static void *pipe_reader(void *arg)
{
	int i = (int)IP(arg);
	char c = 0;

	atomic_fetch_add(&readers_parked, 1);
	UT_CHECK_EQ(sa_read(rpipe[i][0], &c, 1), 1);
	UT_CHECK_EQ(c, (char)i);
	atomic_fetch_add(&readers_done, 1);
	return NULL;
}

static bool raise_nofile(rlim_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return false;
	if (rl.rlim_cur >= want)
		return true;
	if (rl.rlim_max < want)
		return false;
	rl.rlim_cur = want;
	return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

Test(io, thousand_pipe_readers_and_a_compute_uthread_on_one_vp, .timeout = 60)
{
	static sa_uthread_t t[NREADERS];
	_Atomic int stop = 0;
	sa_uthread_t comp;
	int before;

	if (!raise_nofile(2 * NREADERS + 64))
		cr_skip_test("needs %d descriptors", 2 * NREADERS + 64);
	io_start("1");
	for (int i = 0; i < NREADERS; i++) {
		h_pipe(rpipe[i]);
		t[i] = h_spawn(pipe_reader, UP(i));
	}
	comp = h_spawn(ticker, &stop);
	cr_assert(h_wait_atomic_ge(&readers_parked, NREADERS, 10 * NSEC_PER_SEC_));
	/* Every reader is blocked; the compute uthread keeps the VP. */
	before = atomic_load(&ticks);
	SA_OK(sa_sleep_ns(20 * NSEC_PER_MSEC));
	cr_assert_eq(atomic_load(&readers_done), 0);
	cr_assert_gt(atomic_load(&ticks), before + 100, "compute ran while readers blocked");
	for (int i = NREADERS - 1; i >= 0; i--) {
		char c = (char)i;

		cr_assert_eq(write(rpipe[i][1], &c, 1), 1);
	}
	cr_assert(h_wait_atomic_ge(&readers_done, NREADERS, 20 * NSEC_PER_SEC_),
		  "readers done: %d", atomic_load(&readers_done));
	atomic_store(&stop, 1);
	h_join(comp);
	for (int i = 0; i < NREADERS; i++) {
		h_join(t[i]);
		close2(rpipe[i]);
	}
	assert_no_ut_failures();
}

/* Pairs of uthreads ping-ponging over pipes on two VPs: VPs park in their
 * rings and are kicked; a lost wakeup hangs the test. */
enum { NPAIRS = 16, ROUNDS = 200 };
static int ping[NPAIRS][2], pong[NPAIRS][2];

static void *ping_side(void *arg)
{
	int i = (int)IP(arg);
	char c = 'a';

	for (int r = 0; r < ROUNDS; r++) {
		UT_CHECK_EQ(sa_write(ping[i][1], &c, 1), 1);
		UT_CHECK_EQ(sa_read(pong[i][0], &c, 1), 1);
	}
	return NULL;
}

static void *pong_side(void *arg)
{
	int i = (int)IP(arg);
	char c;

	for (int r = 0; r < ROUNDS; r++) {
		UT_CHECK_EQ(sa_read(ping[i][0], &c, 1), 1);
		UT_CHECK_EQ(sa_write(pong[i][1], &c, 1), 1);
	}
	return NULL;
}

Test(io, pipe_ping_pong_across_two_vps, .timeout = 60)
{
	sa_uthread_t a[NPAIRS], b[NPAIRS];

	io_start("2");
	for (int i = 0; i < NPAIRS; i++) {
		h_pipe(ping[i]);
		h_pipe(pong[i]);
		b[i] = h_spawn(pong_side, UP(i));
		a[i] = h_spawn(ping_side, UP(i));
	}
	for (int i = 0; i < NPAIRS; i++) {
		h_join(a[i]);
		h_join(b[i]);
		close2(ping[i]);
		close2(pong[i]);
	}
	assert_no_ut_failures();
}

/*
 * A worker that the pool starts for an op may finish the op and wake the
 * uthread before that uthread has parked, while it is still in the C
 * library's thread creation, where its carrier may block (a page fault
 * that waits for another thread's mmap()).  The wake waits for the
 * uthread's switch; the uthread must not meanwhile be queued by the
 * blocked and unblocked upcalls as well, or it runs twice.  Half of the
 * reads find their byte at once (early wakes), the other half hold their
 * workers, so that the pool keeps starting new ones.
 */
enum { EARLY_N = 48 };
static int early_p[EARLY_N][2];
static _Atomic int early_stop;

static void *early_reader(void *arg)
{
	int i = (int)IP(arg);
	char c = 0;

	UT_CHECK_EQ(sa_read(early_p[i][0], &c, 1), 1);
	UT_CHECK_EQ(c, 'e');
	return NULL;
}

static void *mmap_churn(void *arg)
{
	(void)arg;
	while (!atomic_load(&early_stop)) {
		char *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (m == MAP_FAILED)
			continue;
		m[0] = 1;
		munmap(m, 1 << 20);
	}
	return NULL;
}

Test(io, early_wake_from_a_new_pool_worker, .timeout = 60)
{
	sa_uthread_t t[EARLY_N];
	pthread_t churn;

	io_start("2");
	churn = h_pthread(mmap_churn, NULL);
	for (int i = 0; i < EARLY_N; i++) {
		h_pipe(early_p[i]);
		if (i % 2 == 0)
			cr_assert_eq(write(early_p[i][1], "e", 1), 1);
	}
	for (int i = 0; i < EARLY_N; i++)
		t[i] = h_spawn(early_reader, UP(i));
	SA_OK(sa_sleep_ns(10 * NSEC_PER_MSEC));
	for (int i = 1; i < EARLY_N; i += 2)
		cr_assert_eq(write(early_p[i][1], "e", 1), 1);
	for (int i = 0; i < EARLY_N; i++) {
		h_join(t[i]);
		close2(early_p[i]);
	}
	atomic_store(&early_stop, 1);
	h_pthread_join(churn);
	assert_no_ut_failures();
}

/* ---- plain threads ---- */

struct plain_read {
	int fd;
	ssize_t got;
	char c;
};

static void *plain_reader(void *arg)
{
	struct plain_read *pr = arg;

	pr->got = sa_read(pr->fd, &pr->c, 1);
	return NULL;
}

Test(io, plain_thread_read_blocks_and_returns_data, .timeout = 10)
{
	int p[2];
	struct plain_read pr = { 0 };
	pthread_t th;

	io_start("2");
	h_pipe(p);
	pr.fd = p[0];
	th = h_pthread(plain_reader, &pr);
	SA_OK(sa_sleep_ns(10 * NSEC_PER_MSEC));
	cr_assert_eq(sa_write(p[1], "P", 1), 1);
	h_pthread_join(th);
	cr_assert_eq(pr.got, 1);
	cr_assert_eq(pr.c, 'P');
	close2(p);
}

static void *plain_deadline_read(void *arg)
{
	struct plain_read *pr = arg;
	struct timespec dl = h_deadline(CLOCK_MONOTONIC, 20 * (int64_t)NSEC_PER_MSEC);

	if (sa_io_set_deadline(CLOCK_MONOTONIC, &dl) == 0)
		pr->got = sa_read(pr->fd, &pr->c, 1);
	return NULL;
}

Test(io, plain_thread_deadline_times_out, .timeout = 10)
{
	int p[2];
	struct plain_read pr = { 0 };
	pthread_t th;

	io_start("2");
	h_pipe(p);
	pr.fd = p[0];
	th = h_pthread(plain_deadline_read, &pr);
	h_pthread_join(th);
	cr_assert_eq(pr.got, -ETIMEDOUT);
	close2(p);
}

static void *plain_errors(void *arg)
{
	char c;

	(void)arg;
	UT_CHECK_EQ(sa_read(-1, &c, 1), -EBADF);
	UT_CHECK_EQ(sa_recv(-1, &c, 1, 0), -EBADF);
	UT_CHECK_EQ(sa_close(-1), -EBADF);
	UT_CHECK_EQ(sa_pread(-1, &c, 1, -1), -EINVAL);
	return NULL;
}

Test(io, plain_thread_errors_are_negative_errno, .timeout = 10)
{
	io_start("2");
	h_pthread_join(h_pthread(plain_errors, NULL));
	assert_no_ut_failures();
}

/* ---- signals ---- */

static void on_usr1(int sig)
{
	(void)sig;
}

static void *signal_vps_then_write(void *arg)
{
	int fd = (int)IP(arg);

	for (int i = 0; i < 20; i++) {
		kill(getpid(), SIGUSR1);
		h_os_sleep_ns(NSEC_PER_MSEC);
	}
	UT_CHECK_EQ(write(fd, "s", 1), 1);
	return NULL;
}

Test(io, signals_do_not_interrupt_a_parked_read, .timeout = 10)
{
	struct sigaction sa = { .sa_handler = on_usr1 }; /* no SA_RESTART */
	int p[2];
	char c;
	pthread_t th;

	io_start("1");
	cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	h_pipe(p);
	th = h_pthread(signal_vps_then_write, UP(p[1]));
	cr_assert_eq(sa_read(p[0], &c, 1), 1, "no -EINTR");
	h_pthread_join(th);
	assert_no_ut_failures();
	close2(p);
}

/* ---- backends and statistics ---- */

Test(io, stats_count_operations, .timeout = 10)
{
	int p[2];
	char c;
	struct sa_stats st;

	io_start("2");
	h_pipe(p);
	cr_assert_eq(write(p[1], "s", 1), 1);
	cr_assert_eq(sa_read(p[0], &c, 1), 1);
	st = h_stats();
	if (st.io_backend == SA_IO_BACKEND_URING) {
		cr_assert_geq(st.io_ops, 1);
		cr_assert_geq(st.io_completions, 1);
		cr_assert_geq(st.io_submits, 1);
		cr_assert_eq(st.io_fallback_ops, 0);
	} else {
		cr_assert_geq(st.io_fallback_ops, 1);
		cr_assert_eq(st.io_ops, 0);
	}
	close2(p);
}

Test(io, sa_io_unknown_value_fails_start, .timeout = 10)
{
	setenv("SA_IO", "bogus", 1);
	h_env_vps("1");
	SA_ERR(sa_init(0), -EINVAL);
}

Test(io, sa_io_uring_forced_when_available, .timeout = 10)
{
	struct sa_stats st;

	if (io_threads_forced())
		cr_skip_test("this binary runs the thread backend");
	setenv("SA_IO", "uring", 1);
	h_env_vps("1");
	if (sa_init(0) != 0)
		cr_skip_test("io_uring is not available here");
	st = h_stats();
	cr_assert_eq(st.io_backend, (uint64_t)SA_IO_BACKEND_URING);
}

/* io_uring_setup fails with ENOSYS from here on, as under a seccomp
 * sandbox that filters it. */
static bool deny_io_uring(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
	       prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

Test(io, no_io_uring_falls_back_to_threads, .timeout = 10)
{
	int p[2];
	char c;
	struct sa_stats st;

	if (!deny_io_uring())
		cr_skip_test("cannot install a seccomp filter here");
	unsetenv("SA_IO");
	h_start_env("1");
	st = h_stats();
	cr_assert_eq(st.io_backend, (uint64_t)SA_IO_BACKEND_THREADS);
	h_pipe(p);
	cr_assert_eq(write(p[1], "f", 1), 1);
	cr_assert_eq(sa_read(p[0], &c, 1), 1);
	cr_assert_eq(h_stats().io_fallback_ops, 1);
	close2(p);
}

Test(io, no_io_uring_forced_uring_fails_start, .timeout = 10)
{
	if (!deny_io_uring())
		cr_skip_test("cannot install a seccomp filter here");
	setenv("SA_IO", "uring", 1);
	h_env_vps("1");
	SA_ERR(sa_init(0), -ENOSYS);
}
