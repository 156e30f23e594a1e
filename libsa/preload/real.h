/* real.h - inside libsa-preload.so, libsa's own pthread calls go to the C library */
#ifndef SA_PRELOAD_REAL_H
#define SA_PRELOAD_REAL_H

/*
 * libsa-preload.so defines pthread_create, sched_yield, ... for the whole
 * process, so a call from libsa's own code (a VP's kernel thread, the key
 * of external threads) would come back to the shim.  The libsa sources are
 * compiled a second time for the shim with this header forced in first
 * (-include), which sends those calls to the C library's functions,
 * resolved once by real_init() (preload.c).  The same goes for the
 * blocking I/O calls the shim routes to libsa's I/O layer (preload/io.c),
 * opening, closing and syncing included:
 * the layer's own plain system calls (non-blocking descriptors, plain
 * threads, the thread pool) must be the C library's, or a call would come
 * back to the layer it came from.
 */

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

struct preload_real {
	int (*pthread_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
	int (*pthread_join)(pthread_t, void **);
	int (*pthread_detach)(pthread_t);
	void (*pthread_exit)(void *) __attribute__((noreturn));
	int (*pthread_key_create)(pthread_key_t *, void (*)(void *));
	int (*pthread_setspecific)(pthread_key_t, const void *);
	int (*pthread_once)(pthread_once_t *, void (*)(void));
	int (*pthread_getattr_np)(pthread_t, pthread_attr_t *);
	int (*sched_yield)(void);
	int (*clock_nanosleep)(clockid_t, int, const struct timespec *, struct timespec *);
	/* The blocking calls preload/io.c routes to libsa's I/O layer. */
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*pread)(int, void *, size_t, off_t);
	ssize_t (*pwrite)(int, const void *, size_t, off_t);
	ssize_t (*readv)(int, const struct iovec *, int);
	ssize_t (*writev)(int, const struct iovec *, int);
	int (*accept)(int, struct sockaddr *, socklen_t *);
	int (*accept4)(int, struct sockaddr *, socklen_t *, int);
	int (*connect)(int, const struct sockaddr *, socklen_t);
	ssize_t (*recv)(int, void *, size_t, int);
	ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
	ssize_t (*recvmsg)(int, struct msghdr *, int);
	ssize_t (*send)(int, const void *, size_t, int);
	ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
	ssize_t (*sendmsg)(int, const struct msghdr *, int);
	int (*poll)(struct pollfd *, nfds_t, int);
	int (*ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
	int (*select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
	int (*pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *,
		       const sigset_t *);
	int (*epoll_wait)(int, struct epoll_event *, int, int);
	int (*epoll_pwait)(int, struct epoll_event *, int, int, const sigset_t *);
	int (*setsockopt)(int, int, int, const void *, socklen_t);
	int (*open)(const char *, int, ...);
	int (*openat)(int, const char *, int, ...);
	int (*close)(int);
	int (*fsync)(int);
	int (*fdatasync)(int);
	int (*sigaction)(int, const struct sigaction *, struct sigaction *);
	int (*pthread_kill)(pthread_t, int);
	int (*pthread_sigmask)(int, const sigset_t *, sigset_t *);
	int (*sigprocmask)(int, const sigset_t *, sigset_t *);
};

extern struct preload_real preload_real __attribute__((visibility("hidden")));

#ifndef SA_PRELOAD_NO_REDIRECT
#define pthread_create(...) preload_real.pthread_create(__VA_ARGS__)
#define pthread_join(...) preload_real.pthread_join(__VA_ARGS__)
#define pthread_detach(...) preload_real.pthread_detach(__VA_ARGS__)
#define pthread_exit(...) preload_real.pthread_exit(__VA_ARGS__)
#define pthread_key_create(...) preload_real.pthread_key_create(__VA_ARGS__)
#define pthread_setspecific(...) preload_real.pthread_setspecific(__VA_ARGS__)
#define pthread_once(...) preload_real.pthread_once(__VA_ARGS__)
#define pthread_getattr_np(...) preload_real.pthread_getattr_np(__VA_ARGS__)
#define sched_yield(...) preload_real.sched_yield(__VA_ARGS__)
#define clock_nanosleep(...) preload_real.clock_nanosleep(__VA_ARGS__)
#define read(...) preload_real.read(__VA_ARGS__)
#define write(...) preload_real.write(__VA_ARGS__)
#define pread(...) preload_real.pread(__VA_ARGS__)
#define pwrite(...) preload_real.pwrite(__VA_ARGS__)
#define readv(...) preload_real.readv(__VA_ARGS__)
#define writev(...) preload_real.writev(__VA_ARGS__)
#define accept(...) preload_real.accept(__VA_ARGS__)
#define accept4(...) preload_real.accept4(__VA_ARGS__)
#define connect(...) preload_real.connect(__VA_ARGS__)
#define recv(...) preload_real.recv(__VA_ARGS__)
#define recvfrom(...) preload_real.recvfrom(__VA_ARGS__)
#define recvmsg(...) preload_real.recvmsg(__VA_ARGS__)
#define send(...) preload_real.send(__VA_ARGS__)
#define sendto(...) preload_real.sendto(__VA_ARGS__)
#define sendmsg(...) preload_real.sendmsg(__VA_ARGS__)
#define poll(...) preload_real.poll(__VA_ARGS__)
#define ppoll(...) preload_real.ppoll(__VA_ARGS__)
#define select(...) preload_real.select(__VA_ARGS__)
#define pselect(...) preload_real.pselect(__VA_ARGS__)
#define epoll_wait(...) preload_real.epoll_wait(__VA_ARGS__)
#define epoll_pwait(...) preload_real.epoll_pwait(__VA_ARGS__)
#define open(...) preload_real.open(__VA_ARGS__)
#define openat(...) preload_real.openat(__VA_ARGS__)
#define close(...) preload_real.close(__VA_ARGS__)
#define fsync(...) preload_real.fsync(__VA_ARGS__)
#define fdatasync(...) preload_real.fdatasync(__VA_ARGS__)
#define sigaction(...) preload_real.sigaction(__VA_ARGS__)
#define pthread_kill(...) preload_real.pthread_kill(__VA_ARGS__)
#define pthread_sigmask(...) preload_real.pthread_sigmask(__VA_ARGS__)
#define sigprocmask(...) preload_real.sigprocmask(__VA_ARGS__)
#endif

#endif /* SA_PRELOAD_REAL_H */
