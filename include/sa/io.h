/* io.h - libsa public API: I/O calls that park the calling uthread, not its VP */
#ifndef SA_IO_H
#define SA_IO_H

/*
 * Each call does what the system call of the same name does and returns
 * what it returns, except that an error is returned as a negative errno
 * value (-EBADF, -EAGAIN, ...) and errno is never set.  A short read is
 * returned as it is, as the system call would return it.  A write, writev,
 * send or sendmsg to a blocking pipe or stream socket waits until all of
 * it is written, as the system call does; if an error or the deadline
 * comes after part of it went, the call returns that part's count.
 *
 * From a uthread, a call parks the calling uthread only: its VP runs other
 * uthreads while the operation is in flight (on the VP's io_uring, or on
 * the thread-pool fallback when io_uring is unavailable; see libsa(7),
 * SA_IO).  From a thread that is not a uthread, the call is the blocking
 * system call.
 *
 * Signals: no call returns -EINTR.  An operation in flight on a uthread is
 * not interrupted by a signal; on a plain thread an interrupted system call
 * is restarted (poll with the time that is left; connect by waiting for the
 * connection to complete; close is not repeated, see sa_close()).
 *
 * Writes to a pipe or socket whose reader has gone fail with -EPIPE; they
 * may also raise SIGPIPE, on whichever kernel thread performs them.  Ignore
 * SIGPIPE, or pass MSG_NOSIGNAL to sa_send() and sa_sendmsg().
 *
 * Socket timeouts: SO_RCVTIMEO and SO_SNDTIMEO bound a call's wait as
 * they bound the system call's: -EAGAIN (-EINPROGRESS for sa_connect), or
 * the count of the part of a write that went.
 *
 * Deadlines: sa_io_set_deadline() gives the calling uthread (or thread) a
 * deadline that bounds every I/O call it makes from then on, until it is
 * cleared.  A call still waiting at the deadline returns -ETIMEDOUT having
 * transferred nothing (or the count of a write's part that went).
 */

#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "sa/sa.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * sa_read - read up to @count bytes from @fd at its file position, as read(2).
 * Returns the number of bytes read (0 at end of file or when the peer
 * closed), or -EBADF, -EFAULT, -EINVAL, -EISDIR, -EAGAIN (only for an
 * O_NONBLOCK descriptor), -EIO, -ETIMEDOUT (deadline), ...
 */
ssize_t sa_read(int fd, void *buf, size_t count);

/**
 * sa_write - write up to @count bytes to @fd at its file position, as
 * write(2).
 * Returns the number of bytes written (maybe fewer than @count), or -EBADF,
 * -EFAULT, -EPIPE (no reader), -EAGAIN (O_NONBLOCK), -ENOSPC, -ETIMEDOUT, ...
 */
ssize_t sa_write(int fd, const void *buf, size_t count);

/**
 * sa_pread - read up to @count bytes from @fd at @offset, as pread(2); the
 * file position does not move.
 * Returns the number of bytes read, or -EINVAL (negative @offset), -ESPIPE
 * (@fd is a pipe or socket), -EBADF, -EFAULT, ...
 */
ssize_t sa_pread(int fd, void *buf, size_t count, off_t offset);

/**
 * sa_pwrite - write up to @count bytes to @fd at @offset, as pwrite(2).
 * Returns the number of bytes written, or -EINVAL (negative @offset),
 * -ESPIPE, -EBADF, -EFAULT, -ENOSPC, ...
 */
ssize_t sa_pwrite(int fd, const void *buf, size_t count, off_t offset);

/**
 * sa_readv - scatter read into @iovcnt buffers, as readv(2).
 * Returns the number of bytes read, or -EINVAL (@iovcnt negative or above
 * IOV_MAX), -EBADF, -EFAULT, -ETIMEDOUT, ...
 */
ssize_t sa_readv(int fd, const struct iovec *iov, int iovcnt);

/**
 * sa_writev - gather write from @iovcnt buffers, as writev(2).
 * Returns the number of bytes written, or -EINVAL, -EBADF, -EFAULT, -EPIPE,
 * -ETIMEDOUT, ...
 */
ssize_t sa_writev(int fd, const struct iovec *iov, int iovcnt);

/**
 * sa_accept - accept a connection on listening socket @fd, as accept4(2)
 * @addr, @addrlen: where to store the peer's address (both may be NULL)
 * @flags: 0 or SOCK_NONBLOCK | SOCK_CLOEXEC
 * Returns the new descriptor, or -EBADF, -ENOTSOCK, -EINVAL (not
 * listening, bad @flags), -EAGAIN (O_NONBLOCK), -EMFILE, -ETIMEDOUT, ...
 */
int sa_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags);

/**
 * sa_connect - connect socket @fd to @addr, as connect(2).
 * Returns 0, or -ECONNREFUSED, -ENOENT (no such UNIX socket), -EISCONN,
 * -EBADF, -ENOTSOCK, -EINPROGRESS (O_NONBLOCK), -ETIMEDOUT, ...
 */
int sa_connect(int fd, const struct sockaddr *addr, socklen_t addrlen);

/**
 * sa_recv - receive up to @len bytes from socket @fd, as recv(2).
 * Returns the number of bytes received (0 when the peer shut down), or
 * -ENOTSOCK, -EBADF, -ECONNRESET, -EAGAIN (O_NONBLOCK or MSG_DONTWAIT),
 * -ETIMEDOUT, ...
 */
ssize_t sa_recv(int fd, void *buf, size_t len, int flags);

/**
 * sa_send - send up to @len bytes on socket @fd, as send(2).
 * Returns the number of bytes sent, or -EPIPE (pass MSG_NOSIGNAL to avoid
 * SIGPIPE), -ECONNRESET, -ENOTSOCK, -EBADF, -EAGAIN, -ETIMEDOUT, ...
 */
ssize_t sa_send(int fd, const void *buf, size_t len, int flags);

/**
 * sa_recvmsg - receive a message on socket @fd, as recvmsg(2).
 * Returns the number of bytes received, or a negative errno as sa_recv().
 */
ssize_t sa_recvmsg(int fd, struct msghdr *msg, int flags);

/**
 * sa_sendmsg - send a message on socket @fd, as sendmsg(2).
 * Returns the number of bytes sent, or a negative errno as sa_send().
 */
ssize_t sa_sendmsg(int fd, const struct msghdr *msg, int flags);

/**
 * sa_poll - wait for events on @nfds descriptors, as poll(2)
 * @fds:        the descriptors and the events wanted; revents is filled in.
 *              An entry with a negative fd is ignored (revents 0); a bad
 *              descriptor gets POLLNVAL.
 * @timeout_ms: the longest wait in milliseconds; negative: no limit,
 *              0: do not wait
 *
 * Returns the number of entries with a non-zero revents, 0 when
 * @timeout_ms passed first, -ETIMEDOUT when the I/O deadline of
 * sa_io_set_deadline() passed first, -EFAULT, -EINVAL (@nfds above the
 * descriptor limit), -ENOMEM.
 */
int sa_poll(struct pollfd *fds, nfds_t nfds, int timeout_ms);

/**
 * sa_openat - open @path relative to directory @dirfd, as openat(2).
 * Returns the new descriptor, or -ENOENT, -EACCES, -EEXIST, -EBADF, -EMFILE,
 * -EINVAL, ...
 */
int sa_openat(int dirfd, const char *path, int flags, mode_t mode);

/**
 * sa_close - close @fd, as close(2).
 * Returns 0, -EBADF, or -EIO.  The descriptor is released in every case
 * but -EBADF (an interruption is reported as 0, since Linux has closed the
 * descriptor by then).  Deadlines do not apply: close is never cancelled.
 * WARNING: as with close(2), closing a descriptor another uthread is
 * blocked on does not wake it.
 */
int sa_close(int fd);

/**
 * sa_fsync - flush @fd's data and metadata to its device, as fsync(2).
 * Returns 0, or -EBADF, -EIO, -EINVAL (@fd does not support it), -ENOSPC.
 */
int sa_fsync(int fd);

/**
 * sa_io_set_deadline - bound the caller's I/O calls by a deadline
 * @clk: CLOCK_MONOTONIC or CLOCK_REALTIME
 * @abs: absolute time on @clk; NULL clears the deadline
 *
 * From now on, every call of this header that the calling uthread (or
 * thread) makes and that is still waiting at @abs returns -ETIMEDOUT, with
 * nothing transferred, until the deadline is cleared or replaced.  A
 * deadline in the past is legal: each call makes one attempt and times out
 * if it would have to wait.  A deadline is per uthread: a spawned uthread
 * starts with none.  sa_close() ignores it.  Operations that cannot be
 * cancelled once started (regular-file I/O, openat, fsync) finish and
 * return their result.  On the thread-pool fallback and on plain threads,
 * the deadline bounds the wait for the descriptor to become ready; connect,
 * pread, pwrite, openat and fsync do not wait for it there.
 *
 * Returns 0, or -EINVAL for a clock other than the two above or a tv_nsec
 * outside 0..999999999 (the deadline is then unchanged).
 */
int sa_io_set_deadline(clockid_t clk, const struct timespec *abs);

#ifdef __cplusplus
}
#endif

#endif /* SA_IO_H */
