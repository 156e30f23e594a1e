/* io.c - libsa-preload.so: blocking libc I/O calls park the calling uthread, not its VP */

/*
 * Each call here is the C library's function of the same name for any
 * thread that is not a uthread (vp_self() is NULL: the program before its
 * first pthread_create(), threads the shim did not make, libsa's own
 * workers).  On a uthread it is libsa's I/O call of the same meaning
 * (<sa/io.h>), which parks the uthread while its VP runs others, and the
 * -errno it returns becomes -1 with errno, as the system call's would.
 *
 * What stays exact.  A descriptor in O_NONBLOCK mode, or a call with
 * MSG_DONTWAIT, makes the plain system call (the I/O layer checks), so
 * EAGAIN, EINPROGRESS and partial transfers are the kernel's own.  Every
 * error the kernel reports comes back with its errno.  A call that would
 * not wait (a zero poll or epoll timeout without a signal mask) is the C
 * library's.  ppoll, pselect and epoll_pwait with a mask make it the
 * uthread's mask for the wait (masked_begin()), and any handler that runs
 * meanwhile ends the wait with EINTR, as the kernel never restarts them.  A blocking write to a pipe
 * or stream socket writes all of it, and SO_RCVTIMEO and SO_SNDTIMEO
 * bound the waits, as in the kernel (the I/O layer again; setsockopt()
 * here tells it when to start looking for timeouts).
 *
 * Signals.  A routed wait ends as a blocked system call would when a
 * signal comes for its uthread: pthread_kill()'s (signal.c), or one sent
 * to the process that the shim forwards to it (signal.c).  Either way
 * preload_interrupt() ends the wait, intr_hook() below runs the handler
 * on the uthread, and the call fails with EINTR unless the handler has
 * SA_RESTART, in which case it goes on.  sigaction() here records every
 * handler the program installs and installs a wrapper in its place,
 * which decides whether the handler runs where the kernel delivered the
 * signal or is forwarded (preload_sig_here()); signal() is sigaction()
 * with SA_RESTART, as the C library's.  sigaction() reports the
 * program's own handler, never the wrapper.  Waits on the thread-pool
 * fallback (SA_IO=threads) are interrupted too (the I/O layer's own
 * protocol, libsa/io/io.c).
 *
 * How each call maps.  read, write, pread, pwrite, readv, writev, accept,
 * accept4, connect, recv, recvmsg, send and sendmsg have sa_* twins.
 * recvfrom and sendto with an address become recvmsg and sendmsg with one
 * buffer.  poll and ppoll are sa_poll; select and pselect become a poll of the same
 * descriptors, its sets rebuilt from revents as Linux does (POLLNVAL is
 * EBADF) and its timeout left holding the time not slept, as Linux leaves
 * it.  epoll_wait waits for the epoll descriptor to become readable with
 * sa_poll and then takes the events with a zero timeout.  The _FORTIFY_SOURCE
 * variants (__read_chk, ...) check their buffer, as glibc's do, and go the
 * same way.  The opens (open, openat, creat, their 64 and _FORTIFY_SOURCE
 * names) look at the path first and route only a FIFO's or a device's
 * open without O_NONBLOCK, to sa_openat(); fsync is sa_fsync() and
 * fdatasync its data-only form.
 */

#define SA_PRELOAD_NO_REDIRECT
#include "preload/shim.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "io/io.h"
#include "sa/io.h"

extern void __chk_fail(void) __attribute__((noreturn));
int __openat_2(int dirfd, const char *path, int flags);
int __open_2(const char *path, int flags);
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen);
ssize_t __pread64_chk(int fd, void *buf, size_t n, off_t off, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
		       struct sockaddr *addr, socklen_t *len);
int __poll_chk(struct pollfd *fds, nfds_t n, int timeout_ms, size_t fdslen);
int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *ts,
		const sigset_t *mask, size_t fdslen);

#define IO_POLL_STACK 64 /* select: pollfds on the stack */

/* on_uthread - the shim runs, and the caller is a uthread. */
static __always_inline bool on_uthread(void)
{
	preload_start();
	return vp_self() != NULL;
}

/* ------------------------------------------------------------------------
 * Reads and writes
 */

/*
 * intr_hook - asked by the I/O layer, on the uthread whose wait an
 * interruption cancelled: end it with EINTR (a handler without
 * SA_RESTART ran, or a cancellation is to be acted on), or wait again?
 */
static bool intr_hook(void)
{
	uint32_t before = preload_sig_tls.handled;
	bool intr = atomic_load_explicit(&preload_sig_tls.pending, memory_order_relaxed) &&
		    preload_sig_deliver(); /* its signals, run on this uthread */

	/* A wait with a signal mask (ppoll, pselect, epoll_pwait) is never
	 * restarted: any handler ends it. */
	if (preload_sig_tls.eintr_any && preload_sig_tls.handled != before)
		intr = true;
	return intr || preload_cancel_wanted();
}

/**
 * preload_io_init - have the I/O layer ask intr_hook() about interrupted
 * waits, and look for socket timeouts only once setsockopt() set one.
 * At start-up.
 */
void preload_io_init(void)
{
	io_set_intr_hook(intr_hook);
	io_sock_timeo_lazy();
}

/* wait_begin - a routed wait (a cancellation point) begins. */
static __always_inline void wait_begin(void)
{
	preload_testcancel();
}

/** preload_wait_begin - wait_begin() for a wait made outside this file. */
void preload_wait_begin(void)
{
	wait_begin();
}

/* wait_end - it ended with @r: act on a cancellation that interrupted it. */
static __always_inline ssize_t wait_end(ssize_t r)
{
	if (unlikely(r == -EINTR))
		preload_testcancel();
	return preload_errno_ret(r);
}

#define WAIT_CALL(call)                         \
	do {                                    \
		ssize_t r_;                     \
		wait_begin();                   \
		r_ = (call);                    \
		return wait_end(r_);            \
	} while (0)

SA_EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	if (!on_uthread())
		return preload_real.read(fd, buf, n);
	WAIT_CALL(sa_read(fd, buf, n));
}

SA_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	if (!on_uthread())
		return preload_real.write(fd, buf, n);
	WAIT_CALL(sa_write(fd, buf, n));
}

SA_EXPORT ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	if (!on_uthread())
		return preload_real.pread(fd, buf, n, off);
	WAIT_CALL(sa_pread(fd, buf, n, off));
}

SA_EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (!on_uthread())
		return preload_real.pwrite(fd, buf, n, off);
	WAIT_CALL(sa_pwrite(fd, buf, n, off));
}

/* On x86-64 off_t is 64 bits: pread64 is pread. */
SA_EXPORT ssize_t pread64(int fd, void *buf, size_t n, off_t off)
{
	return pread(fd, buf, n, off);
}

SA_EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	return pwrite(fd, buf, n, off);
}

SA_EXPORT ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
	if (!on_uthread())
		return preload_real.readv(fd, iov, cnt);
	WAIT_CALL(sa_readv(fd, iov, cnt));
}

SA_EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	if (!on_uthread())
		return preload_real.writev(fd, iov, cnt);
	WAIT_CALL(sa_writev(fd, iov, cnt));
}

/* ------------------------------------------------------------------------
 * Opening, closing, syncing: an open of a FIFO waits for its other end,
 * and fsync and fdatasync for the disk.  close is the plain system call
 * (a cancellation point first): it rarely waits (a lingering socket), and
 * the ring's round trip would double its cost.
 */

/* open_mode - the mode argument is there (and read) only for these flags. */
static __always_inline bool open_has_mode(int flags)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
}

#define OPEN_MODE(flags, mode)                                  \
	do {                                                    \
		if (open_has_mode(flags)) {                     \
			va_list ap_;                            \
			va_start(ap_, flags);                   \
			mode = va_arg(ap_, mode_t);             \
			va_end(ap_);                            \
		}                                               \
	} while (0)

/*
 * open_at - every open name comes here.  Only an open that may wait for
 * something else goes to the I/O layer: a FIFO's or a device's, unless
 * O_NONBLOCK (sa_openat() waits for those in the kernel's worker).  Any
 * other open is the plain system call, which costs half of the ring's
 * round trip; its rare long waits (a slow file system) are the blocked
 * upcall's to cover.
 */
static int open_at(int dirfd, const char *path, int flags, mode_t mode)
{
	if (!on_uthread() || !io_open_may_wait(dirfd, path, flags)) {
		preload_testcancel(); /* a cancellation point all the same */
		return preload_real.openat(dirfd, path, flags, mode);
	}
	WAIT_CALL(io_openat(dirfd, path, flags, mode, true));
}

SA_EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;

	OPEN_MODE(flags, mode);
	return open_at(dirfd, path, flags, mode);
}

SA_EXPORT int open(const char *path, int flags, ...)
{
	mode_t mode = 0;

	OPEN_MODE(flags, mode);
	return open_at(AT_FDCWD, path, flags, mode);
}

SA_EXPORT int creat(const char *path, mode_t mode)
{
	return open_at(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}


/* The _FORTIFY_SOURCE forms: a mode the call did not pass is fatal, with
 * the C library's message. */
SA_EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
	static const char msg[] =
		"*** invalid openat call: O_CREAT or O_TMPFILE without mode ***: terminated\n";

	if (open_has_mode(flags)) {
		preload_real.write(STDERR_FILENO, msg, sizeof(msg) - 1);
		abort();
	}
	return open_at(dirfd, path, flags, 0);
}

SA_EXPORT int __open_2(const char *path, int flags)
{
	return __openat_2(AT_FDCWD, path, flags);
}

/* On x86-64 every descriptor is large-file: the 64 names are the same. */
SA_EXPORT int open64(const char *path, int flags, ...) __attribute__((alias("open")));
SA_EXPORT int openat64(int dirfd, const char *path, int flags, ...) __attribute__((alias("openat")));
SA_EXPORT int creat64(const char *path, mode_t mode) __attribute__((alias("creat")));
SA_EXPORT int __open64_2(const char *path, int flags) __attribute__((alias("__open_2")));
SA_EXPORT int __openat64_2(int dirfd, const char *path, int flags) __attribute__((alias("__openat_2")));

SA_EXPORT int close(int fd)
{
	if (!on_uthread())
		return preload_real.close(fd);
	preload_testcancel();
	return preload_real.close(fd);
}

SA_EXPORT int fsync(int fd)
{
	if (!on_uthread())
		return preload_real.fsync(fd);
	WAIT_CALL(sa_fsync(fd));
}

SA_EXPORT int fdatasync(int fd)
{
	if (!on_uthread())
		return preload_real.fdatasync(fd);
	WAIT_CALL(io_fdatasync(fd));
}

/* ------------------------------------------------------------------------
 * Sockets
 */

SA_EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	if (!on_uthread())
		return preload_real.accept(fd, addr, len);
	WAIT_CALL(sa_accept(fd, addr, len, 0));
}

SA_EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	if (!on_uthread())
		return preload_real.accept4(fd, addr, len, flags);
	WAIT_CALL(sa_accept(fd, addr, len, flags));
}

SA_EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	if (!on_uthread())
		return preload_real.connect(fd, addr, len);
	WAIT_CALL(sa_connect(fd, addr, len));
}

SA_EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	if (!on_uthread())
		return preload_real.recv(fd, buf, n, flags);
	WAIT_CALL(sa_recv(fd, buf, n, flags));
}

SA_EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr,
			   socklen_t *len)
{
	struct iovec iov = { .iov_base = buf, .iov_len = n };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t r;

	if (!on_uthread())
		return preload_real.recvfrom(fd, buf, n, flags, addr, len);
	if (!addr || !len)
		WAIT_CALL(sa_recv(fd, buf, n, flags));
	msg.msg_name = addr;
	msg.msg_namelen = *len;
	wait_begin();
	r = sa_recvmsg(fd, &msg, flags);
	if (r >= 0)
		*len = msg.msg_namelen;
	return wait_end(r);
}

SA_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	if (!on_uthread())
		return preload_real.recvmsg(fd, msg, flags);
	WAIT_CALL(sa_recvmsg(fd, msg, flags));
}

SA_EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	if (!on_uthread())
		return preload_real.send(fd, buf, n, flags);
	WAIT_CALL(sa_send(fd, buf, n, flags));
}

SA_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags,
			 const struct sockaddr *addr, socklen_t len)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = n };
	struct msghdr msg = { .msg_name = (void *)addr, .msg_namelen = len,
			      .msg_iov = &iov, .msg_iovlen = 1 };

	if (!on_uthread())
		return preload_real.sendto(fd, buf, n, flags, addr, len);
	if (!addr)
		WAIT_CALL(sa_send(fd, buf, n, flags));
	WAIT_CALL(sa_sendmsg(fd, &msg, flags));
}

SA_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	if (!on_uthread())
		return preload_real.sendmsg(fd, msg, flags);
	WAIT_CALL(sa_sendmsg(fd, msg, flags));
}

/*
 * Socket timeouts: the I/O layer applies SO_RCVTIMEO and SO_SNDTIMEO to
 * routed calls, with a getsockopt per call once the process has set one.
 * Every setsockopt() of the program comes here (preload_io_init() makes
 * the layer wait for it), so one that never sets a timeout pays nothing.
 */
SA_EXPORT int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	preload_start();
	if (level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO ||
				    name == SO_RCVTIMEO_NEW || name == SO_SNDTIMEO_NEW))
		io_sock_timeo_note();
	return preload_real.setsockopt(fd, level, name, val, len);
}

/* ------------------------------------------------------------------------
 * poll, ppoll, select, epoll_wait
 */

/* ts_ms - @ts as milliseconds for sa_poll, rounded up; -1 for NULL. */
static int ts_ms(const struct timespec *ts)
{
	uint64_t ms;

	if (!ts)
		return -1;
	ms = (uint64_t)ts->tv_sec * 1000 + ((uint64_t)ts->tv_nsec + 999999) / 1000000;
	return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

/*
 * masked_begin - a wait with signal mask @mask (NULL: none) begins on a
 * uthread: @mask is its mask until masked_end(), and any handler ends the
 * wait with EINTR.  False if one ran already, as the mask let a pending
 * signal through: the wait is not to be made.
 */
static bool masked_begin(const sigset_t *mask, uint64_t *old)
{
	uint32_t before = preload_sig_tls.handled;

	wait_begin();
	/* The kernel never restarts these waits, masked or not: a handler
	 * ends them with EINTR even with SA_RESTART (signal(7)). */
	preload_sig_tls.eintr_any = true;
	if (!mask)
		return true;
	preload_sig_mask_swap(mask, old);
	return preload_sig_tls.handled == before;
}

static void masked_end(const sigset_t *mask, uint64_t old)
{
	int saved = errno;

	preload_sig_tls.eintr_any = false;
	if (mask)
		preload_sig_mask_restore(old);
	errno = saved;
}

SA_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
	uint64_t old = 0;
	long r;

	if (!on_uthread() || timeout_ms == 0)
		return preload_real.poll(fds, n, timeout_ms);
	masked_begin(NULL, &old);
	r = sa_poll(fds, n, timeout_ms);
	masked_end(NULL, old);
	return (int)wait_end(r);
}

SA_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts,
		    const sigset_t *mask)
{
	uint64_t old = 0;
	long r;

	if (!on_uthread() || (ts && !ts->tv_sec && !ts->tv_nsec && !mask) ||
	    (ts && (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000L)))
		return preload_real.ppoll(fds, n, ts, mask);
	r = masked_begin(mask, &old) ? sa_poll(fds, n, ts_ms(ts)) : -EINTR;
	masked_end(mask, old);
	return (int)wait_end(r);
}

#define SEL_IN (POLLIN | POLLRDNORM | POLLRDBAND | POLLHUP | POLLERR)
#define SEL_OUT (POLLOUT | POLLWRNORM | POLLWRBAND | POLLERR)
#define SEL_EX POLLPRI

/* sel_wait - select() and pselect() on a uthread: the sets as poll
 * events, a wait of @ms with @mask, the sets rebuilt.  0 or -errno. */
static int sel_wait(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, int ms, const sigset_t *mask)
{
	struct pollfd stack_fds[IO_POLL_STACK], *fds = stack_fds;
	uint64_t old = 0;
	int n = 0, r, count = 0;

	for (int fd = 0; fd < nfds; fd++)
		n += (rd && FD_ISSET(fd, rd)) || (wr && FD_ISSET(fd, wr)) ||
		     (ex && FD_ISSET(fd, ex));
	if (n > IO_POLL_STACK) {
		fds = malloc((size_t)n * sizeof(*fds));
		if (!fds) {
			errno = ENOMEM;
			return -1;
		}
	}
	n = 0;
	for (int fd = 0; fd < nfds; fd++) {
		short ev = (short)(((rd && FD_ISSET(fd, rd)) ? POLLIN : 0) |
				   ((wr && FD_ISSET(fd, wr)) ? POLLOUT : 0) |
				   ((ex && FD_ISSET(fd, ex)) ? POLLPRI : 0));

		if (ev)
			fds[n++] = (struct pollfd){ .fd = fd, .events = ev };
	}
	r = masked_begin(mask, &old) ? sa_poll(fds, (nfds_t)n, ms) : -EINTR;
	masked_end(mask, old);
	if (r == -EINTR)
		preload_testcancel();
	for (int i = 0; r > 0 && i < n; i++) {
		if (fds[i].revents & POLLNVAL)
			r = -EBADF;
	}
	if (r >= 0) {
		if (rd)
			FD_ZERO(rd);
		if (wr)
			FD_ZERO(wr);
		if (ex)
			FD_ZERO(ex);
		for (int i = 0; r > 0 && i < n; i++) {
			short re = fds[i].revents;

			if (rd && (fds[i].events & POLLIN) && (re & SEL_IN)) {
				FD_SET(fds[i].fd, rd);
				count++;
			}
			if (wr && (fds[i].events & POLLOUT) && (re & SEL_OUT)) {
				FD_SET(fds[i].fd, wr);
				count++;
			}
			if (ex && (fds[i].events & POLLPRI) && (re & SEL_EX)) {
				FD_SET(fds[i].fd, ex);
				count++;
			}
		}
		r = count;
	}
	if (fds != stack_fds)
		free(fds);
	return r;
}

SA_EXPORT int select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv)
{
	uint64_t start;
	int ms = -1, r;

	if (!on_uthread() || nfds < 0 || nfds > FD_SETSIZE ||
	    (tv && (tv->tv_sec < 0 || tv->tv_usec < 0 || (!tv->tv_sec && !tv->tv_usec))))
		return preload_real.select(nfds, rd, wr, ex, tv);
	if (tv) {
		uint64_t t = (uint64_t)tv->tv_sec * 1000 + ((uint64_t)tv->tv_usec + 999) / 1000;

		ms = t > INT32_MAX ? INT32_MAX : (int)t;
	}
	start = now_ns();
	r = sel_wait(nfds, rd, wr, ex, ms, NULL);
	if (tv) {
		uint64_t slept = now_ns() - start;
		uint64_t want = (uint64_t)tv->tv_sec * NSEC_PER_SEC + (uint64_t)tv->tv_usec * 1000;
		uint64_t left = slept >= want ? 0 : want - slept;

		tv->tv_sec = (time_t)(left / NSEC_PER_SEC);
		tv->tv_usec = (suseconds_t)(left % NSEC_PER_SEC / 1000);
	}
	return (int)preload_errno_ret(r);
}

SA_EXPORT int pselect(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, const struct timespec *ts,
		      const sigset_t *mask)
{
	if (!on_uthread() || nfds < 0 || nfds > FD_SETSIZE || (ts && !ts->tv_sec && !ts->tv_nsec && !mask) ||
	    (ts && (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000L)))
		return preload_real.pselect(nfds, rd, wr, ex, ts, mask);
	return (int)preload_errno_ret(sel_wait(nfds, rd, wr, ex, ts_ms(ts), mask));
}

/* epoll_park - wait for @epfd's events: readable, then a look without waiting. */
static int epoll_park(int epfd, struct epoll_event *ev, int max, int timeout_ms)
{
	uint64_t end = timeout_ms < 0 ? DEADLINE_NONE :
		       now_ns() + (uint64_t)timeout_ms * 1000000ull;
	int r;

	wait_begin();
	for (;;) {
		struct pollfd p = { .fd = epfd, .events = POLLIN };
		int ms = -1;

		r = preload_real.epoll_wait(epfd, ev, max, 0);
		if (r != 0)
			break;
		if (end != DEADLINE_NONE) {
			uint64_t now = now_ns();

			if (now >= end)
				break;
			ms = (int)((end - now + 999999) / 1000000);
		}
		r = sa_poll(&p, 1, ms);
		if (r < 0)
			return (int)wait_end(r);
	}
	return r;
}

SA_EXPORT int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout_ms)
{
	return epoll_pwait(epfd, ev, max, timeout_ms, NULL);
}

SA_EXPORT int epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout_ms,
			  const sigset_t *mask)
{
	uint64_t old = 0;
	int r;

	if (!on_uthread() || (timeout_ms == 0 && !mask))
		return preload_real.epoll_pwait(epfd, ev, max, timeout_ms, mask);
	if (!masked_begin(mask, &old)) {
		masked_end(mask, old);
		errno = EINTR; /* a handler ran before the wait */
		return -1;
	}
	r = epoll_park(epfd, ev, max, timeout_ms);
	masked_end(mask, old);
	return r;
}

/* ------------------------------------------------------------------------
 * _FORTIFY_SOURCE variants: check the buffer as glibc does, then as above.
 */

SA_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	if (n > buflen)
		__chk_fail();
	return read(fd, buf, n);
}

SA_EXPORT ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
	if (n > buflen)
		__chk_fail();
	return pread(fd, buf, n, off);
}

SA_EXPORT ssize_t __pread64_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
	if (n > buflen)
		__chk_fail();
	return pread(fd, buf, n, off);
}

SA_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
	if (n > buflen)
		__chk_fail();
	return recv(fd, buf, n, flags);
}

SA_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
				 struct sockaddr *addr, socklen_t *len)
{
	if (n > buflen)
		__chk_fail();
	return recvfrom(fd, buf, n, flags, addr, len);
}

SA_EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout_ms, size_t fdslen)
{
	if (fdslen / sizeof(*fds) < n)
		__chk_fail();
	return poll(fds, n, timeout_ms);
}

SA_EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *ts,
			  const sigset_t *mask, size_t fdslen)
{
	if (fdslen / sizeof(*fds) < n)
		__chk_fail();
	return ppoll(fds, n, ts, mask);
}

/* ------------------------------------------------------------------------
 * Signal handlers
 */

/* The program's handler per signal, for those the wrapper stands in for. */
static struct {
	_Atomic uintptr_t fn;  /* sa_sigaction or sa_handler, by ->flags */
	_Atomic int flags;
} user_act[_NSIG];

static void intr_wrapper(int sig, siginfo_t *si, void *uc)
{
	uintptr_t fn = atomic_load(&user_act[sig].fn);
	int saved = errno;

	if (!preload_sig_here(sig, si)) { /* forwarded, or held */
		errno = saved;
		return;
	}
	if (fn) {
		errno = saved;
		if (atomic_load(&user_act[sig].flags) & SA_SIGINFO)
			((void (*)(int, siginfo_t *, void *))fn)(sig, si, uc);
		else
			((void (*)(int))fn)(sig);
		saved = errno;
	}
	errno = saved;
}

/**
 * preload_user_handler - the program's handler for @sig if the shim's
 * wrapper stands in for it: @fn and its @flags.  False otherwise.
 */
bool preload_user_handler(int sig, uintptr_t *fn, int *flags)
{
	struct sigaction cur;

	if (sig <= 0 || sig >= _NSIG || preload_real.sigaction(sig, NULL, &cur) ||
	    !(cur.sa_flags & SA_SIGINFO) || cur.sa_sigaction != intr_wrapper)
		return false;
	*fn = atomic_load(&user_act[sig].fn);
	*flags = atomic_load(&user_act[sig].flags);
	return *fn != 0;
}

SA_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	struct sigaction mine, prev;
	bool wrap;
	int r;

	preload_start();
	if (sig <= 0 || sig >= _NSIG)
		return preload_real.sigaction(sig, act, old);
	wrap = act && act->sa_handler != SIG_DFL && act->sa_handler != SIG_IGN &&
	       sig != SIGKILL && sig != SIGSTOP;
	if (wrap)
		preload_sig_forwarder_start();
	if (wrap) {
		mine = *act;
		mine.sa_flags |= SA_SIGINFO;
		mine.sa_sigaction = intr_wrapper;
		atomic_store(&user_act[sig].flags, act->sa_flags);
		atomic_store(&user_act[sig].fn, (act->sa_flags & SA_SIGINFO) ?
						(uintptr_t)act->sa_sigaction :
						(uintptr_t)act->sa_handler);
	}
	r = preload_real.sigaction(sig, wrap ? &mine : act, &prev);
	if (r)
		return r;
	if (old) {
		*old = prev;
		if ((prev.sa_flags & SA_SIGINFO) && prev.sa_sigaction == intr_wrapper) {
			int fl = atomic_load(&user_act[sig].flags);

			old->sa_flags = fl;
			if (fl & SA_SIGINFO)
				old->sa_sigaction = (void (*)(int, siginfo_t *, void *))
						    atomic_load(&user_act[sig].fn);
			else
				old->sa_handler = (void (*)(int))atomic_load(&user_act[sig].fn);
		}
	}
	if (act && !wrap)
		atomic_store(&user_act[sig].fn, 0);
	return 0;
}

SA_EXPORT sighandler_t signal(int sig, sighandler_t h)
{
	struct sigaction act = { .sa_handler = h, .sa_flags = SA_RESTART }, old;

	sigemptyset(&act.sa_mask);
	if (sig > 0 && sig < _NSIG)
		sigaddset(&act.sa_mask, sig);
	if (sigaction(sig, &act, &old))
		return SIG_ERR;
	return old.sa_handler;
}
