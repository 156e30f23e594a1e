/* preload.c - libsa-preload.so: unmodified pthreads programs run on uthreads */

/*
 * Design
 * ======
 *
 * Vocabulary.  "The shim" is this library, loaded with LD_PRELOAD (or by
 * sa-run) into a program linked normally against glibc.  It defines the
 * pthread functions the program calls through the PLT; the dynamic linker
 * binds every such call, from the program and from every shared library,
 * to the shim, which is searched before the C library.  "Real" names the C
 * library's own function, found with dlsym(RTLD_NEXT).  A "carrier" is a
 * kernel thread that carries a VP.
 *
 * What a thread is.  Every pthread_create() makes a uthread in libsa's TLS
 * mode (libsa/tls.c): it has a TLS block and TCB of its own, built by the
 * dynamic loader's own allocator, and the context switch moves %fs.  So
 * errno, __thread variables, C++ thread_local and glibc's owner identity
 * (THREAD_SELF for stdio locks, a unique tid for the loader's recursive
 * locks) are the uthread's.  A pthread_t is the TCB address, exactly as in
 * glibc, so pthread_self() and pthread_equal() are glibc's own, unchanged,
 * and so is every function that only looks at the calling thread's TCB.
 * The shim finds the uthread behind a pthread_t through a word in that
 * TCB's static TLS block (tls_handle_of()); a TCB of a thread that is not a
 * uthread (made before the shim was loaded, by a raw clone(), or by glibc
 * internally) holds 0 there, and the call goes to the real function.
 * Rejected: pthread_t = sa_uthread_t handle.  glibc's own functions that
 * take a pthread_t (and glibc's internal calls to pthread_self()) would
 * then see a value that is not a TCB.
 *
 * The shim starts in its constructor, or earlier, at the first pthread
 * call, when a library initialised before the shim (its constructor runs
 * first) already uses threads: every entry point calls preload_start(),
 * which after the start costs one predictable branch.  The VPs start at
 * the first pthread_create(), and the thread that calls it, normally the
 * main thread, becomes the main uthread on VP 0.  Until then the program
 * is exactly what it was (a shell that forks pays nothing); a mutex or key
 * used before is used as libsa's external thread, whose record the main
 * uthread inherits.
 *
 * Objects.  The sync objects live in the program's own pthread_mutex_t,
 * pthread_cond_t, ... storage.  The libsa object fits in each (checked at
 * compile time in sync.c), except the barrier (allocated by
 * pthread_barrier_init) and pthread_once_t and pthread_spinlock_t (an int:
 * implemented here).  The static initialisers are all zero, except the
 * kind word of glibc's recursive, error-checking and adaptive mutex
 * initialisers.  A word 0 where libsa keeps its magic means "initialised
 * statically": the first user claims the object with a CAS to a busy mark,
 * reads the kind, builds the libsa object and publishes its magic last
 * (release); concurrent first users wait for the magic.  Attribute objects
 * (pthread_attr_t, pthread_mutexattr_t, ...) are glibc's and are read with
 * glibc's getters, so every attribute setter stays glibc's.
 *
 * Errors.  libsa returns -errno; the shim returns the positive value as
 * pthreads does, or -1 with errno for sem_* and the sleep calls.  What
 * libsa cannot do says so: a process-shared mutex, condition variable,
 * rwlock or barrier gets ENOTSUP at init.  A process-shared or named
 * semaphore is the C library's (its first word is not libsa's magic),
 * but a uthread that must wait on one parks on its futex word through
 * the VP's ring (sync.c), never blocking the VP.
 *
 * Blocking.  The sleeps (nanosleep, clock_nanosleep on the monotonic and
 * realtime clocks, usleep, sleep), which pthread_kill() and
 * pthread_cancel() cut short (cancel.c), and the yields (sched_yield, and
 * pthread_yield and thrd_yield, which glibc sends to the kernel's
 * sched_yield directly) park or requeue the uthread instead of its VP.
 * flockfile() waits by yielding (sync.c).  The blocking I/O calls (read, write,
 * pread, pwrite, readv, writev, accept, accept4, connect, recv, recvfrom,
 * recvmsg, send, sendto, sendmsg, poll, ppoll, select, pselect,
 * epoll_wait, epoll_pwait, fsync, fdatasync, and the opens of FIFOs and
 * devices) go to libsa's io_uring layer from a uthread (preload/io.c says
 * how each maps and how EINTR is kept); the signal waits (sigwait,
 * sigwaitinfo, sigtimedwait, sigsuspend) park the uthread (signal.c);
 * anything else calls the C library.
 * glibc's internal calls (stdio's write and fopen's open, for two) do not
 * come through the PLT, and the shim leaves close and wait alone; the
 * activations layer's blocked upcall covers them.
 *
 * Joins with a time limit, scheduling parameters, affinity: thread.c.
 * C11 <threads.h>, which glibc builds on its pthread functions out of the
 * shim's sight: c11.c.
 *
 * pthread_exit() and cancellation: cancel.c.
 *
 * fork.  A child of fork() has one kernel thread, the caller's.  The
 * shim's atfork child handler, registered first so that it runs before
 * the program's child handlers, resets the runtime (rt_fork_child()): the
 * caller goes on as a plain thread on its own stack and TLS block, and if
 * it was a uthread, the runtime adopts it as its main uthread when the
 * child starts threads again.  The C library's own fork does the rest:
 * atfork handlers in POSIX order, its locks, the thread's tid.
 *
 * pthread_kill() and signal masks: signal.c.
 *
 * Robust mutexes are libsa's (mutex.c): the shim passes the attribute
 * on, and a uthread's end, which pthread_exit() and cancellation reach
 * by returning from the trampoline, releases the robust mutexes it holds.
 *
 * Not yet: process-shared objects.  libsa-preload(7) lists the limits
 * for users.
 */

#define SA_PRELOAD_NO_REDIRECT
#include "preload/shim.h"

#include <dlfcn.h>

#include "io/io.h"

struct preload_real preload_real;

static struct {
	int (*setname)(pthread_t, const char *);
	int (*getname)(pthread_t, char *, size_t);
	int (*nanosleep)(const struct timespec *, struct timespec *);
	int (*usleep)(useconds_t);
	unsigned (*sleep)(unsigned);
	int (*sem_init)(sem_t *, int, unsigned);
} real_more;

/* The program's default thread stack size (ulimit -s, as glibc's). */
static size_t default_stack = 8ul << 20;

_Atomic uint32_t preload_state;

/**
 * preload_real_sym - the C library's definition of @name.  A C library
 * without it cannot run the program under the shim: exit 127 and say so.
 */
void *preload_real_sym(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);

	if (!p) {
		fprintf(stderr, "libsa-preload: the C library has no %s\n", name);
		_exit(127);
	}
	return p;
}

static void real_init(void)
{
	preload_real.pthread_create = preload_real_sym("pthread_create");
	preload_real.pthread_join = preload_real_sym("pthread_join");
	preload_real.pthread_detach = preload_real_sym("pthread_detach");
	preload_real.pthread_exit = preload_real_sym("pthread_exit");
	preload_real.pthread_key_create = preload_real_sym("pthread_key_create");
	preload_real.pthread_setspecific = preload_real_sym("pthread_setspecific");
	preload_real.pthread_once = preload_real_sym("pthread_once");
	preload_real.pthread_getattr_np = preload_real_sym("pthread_getattr_np");
	preload_real.sched_yield = preload_real_sym("sched_yield");
	preload_real.clock_nanosleep = preload_real_sym("clock_nanosleep");
	real_more.setname = preload_real_sym("pthread_setname_np");
	real_more.getname = preload_real_sym("pthread_getname_np");
	real_more.nanosleep = preload_real_sym("nanosleep");
	real_more.usleep = preload_real_sym("usleep");
	real_more.sleep = preload_real_sym("sleep");
	real_more.sem_init = preload_real_sym("sem_init");
#define REAL(name) preload_real.name = preload_real_sym(#name)
	REAL(read); REAL(write); REAL(pread); REAL(pwrite); REAL(readv); REAL(writev);
	REAL(accept); REAL(accept4); REAL(connect); REAL(recv); REAL(recvfrom);
	REAL(recvmsg); REAL(send); REAL(sendto); REAL(sendmsg); REAL(poll); REAL(ppoll);
	REAL(select); REAL(pselect); REAL(epoll_wait); REAL(epoll_pwait); REAL(setsockopt); REAL(sigaction);
	REAL(open); REAL(openat); REAL(close); REAL(fsync); REAL(fdatasync);
	REAL(pthread_kill); REAL(pthread_sigmask); REAL(sigprocmask);
#undef REAL
	preload_sync_init_real();
}

/**
 * __preload_start - slow path of preload_start(): find the C library's
 * functions and switch libsa to the TLS mode.  A second caller waits for
 * the first.  A failure is fatal: the program cannot run without its
 * threads, so it ends with status 127 and a message.
 */
void __preload_start(void)
{
	uint32_t s = PRELOAD_OFF;
	pthread_attr_t a;
	int r;

	if (!atomic_compare_exchange_strong(&preload_state, &s, PRELOAD_STARTING)) {
		while (atomic_load_explicit(&preload_state, memory_order_acquire) != PRELOAD_ON)
			syscall(SYS_sched_yield);
		return;
	}
	real_init();
	if (pthread_getattr_default_np(&a) == 0) {
		size_t sz;

		if (pthread_attr_getstacksize(&a, &sz) == 0 && sz >= SA_STACK_MIN &&
		    sz <= SA_STACK_MAX)
			default_stack = sz;
		pthread_attr_destroy(&a);
	}
	preload_io_init(); /* routed calls keep EINTR (preload/io.c) */
	r = tls_enable();
	if (r) {
		fprintf(stderr, "libsa-preload: cannot start: %s\n", strerror(-r));
		_exit(127);
	}
	preload_cancel_init();
	preload_thread_init();
	preload_signal_init();
	/* First among the child handlers of the program's atfork handlers
	 * (registered later, run later): they may take mutexes already. */
	pthread_atfork(NULL, NULL, rt_fork_child);
	atomic_store_explicit(&preload_state, PRELOAD_ON, memory_order_release);
}

/*
 * runtime_start - start the VPs, at the first pthread_create().  A program
 * that never makes a thread (a shell, a compiler started by a build) then
 * pays nothing and forks as it always did.  The caller, normally the main
 * thread, becomes a uthread.
 */
static __noinline void runtime_start(void)
{
	int saved_errno = errno, r = sa_init(0);

	errno = saved_errno; /* pthread_create() leaves errno alone */
	if (r) {
		fprintf(stderr, "libsa-preload: cannot start the runtime: %s%s\n",
			strerror(-r),
			r == -EINVAL ? " (SA_VPS must be a number from 1 to 256)" : "");
		_exit(127);
	}
}

__attribute__((constructor)) static void preload_ctor(void)
{
	preload_start();
}

/* ------------------------------------------------------------------------
 * Threads
 */

static int attr_to_sa(const pthread_attr_t *pa, sa_attr_t *a)
{
	size_t stack = default_stack, guard = 0;
	int detached = PTHREAD_CREATE_JOINABLE;

	sa_attr_init(a);
	if (pa) {
		void *addr = NULL;
		size_t sz = 0;

		if (pthread_attr_getdetachstate(pa, &detached) ||
		    pthread_attr_getstacksize(pa, &stack) ||
		    pthread_attr_getguardsize(pa, &guard))
			return EINVAL;
		/* A stack the caller provides is not used: a uthread runs on
		 * a libsa stack of the same size (libsa-preload(7)). */
		if (pthread_attr_getstack(pa, &addr, &sz) == 0 && addr && sz)
			stack = sz;
	}
	if (stack < SA_STACK_MIN)
		stack = SA_STACK_MIN;
	if (sa_attr_setstacksize(a, stack) ||
	    (guard > 16384 && sa_attr_setguardsize(a, guard)))
		return EINVAL;
	sa_attr_setdetached(a, detached == PTHREAD_CREATE_DETACHED);
	return 0;
}

/*
 * attr_sched - the new thread's scheduling parameters and CPU set: the
 * creator's, as a clone inherits them, unless @pa says otherwise
 * (PTHREAD_EXPLICIT_SCHED, pthread_attr_setaffinity_np()).
 */
static int attr_sched(const pthread_attr_t *pa, struct preload_sched *s)
{
	int inherit = PTHREAD_INHERIT_SCHED;
	cpu_set_t cpus;

	*s = preload_sched_tls;
	if (!pa)
		return 0;
	if (pthread_attr_getinheritsched(pa, &inherit) == 0 &&
	    inherit == PTHREAD_EXPLICIT_SCHED) {
		struct sched_param p;
		int policy, r;

		if (pthread_attr_getschedpolicy(pa, &policy) ||
		    pthread_attr_getschedparam(pa, &p))
			return EINVAL;
		r = preload_sched_check(policy, p.sched_priority);
		if (r)
			return r;
		s->policy = policy;
		s->prio = p.sched_priority;
	}
	CPU_ZERO(&cpus);
	if (pthread_attr_getaffinity_np(pa, sizeof(cpus), &cpus) == 0 && CPU_COUNT(&cpus)) {
		if (preload_cpus_check(sizeof(cpus), &cpus))
			return EINVAL;
		s->cpus = cpus;
		s->has_cpus = true;
	}
	return 0;
}

SA_EXPORT int pthread_create(pthread_t *thread, const pthread_attr_t *pa,
			     void *(*fn)(void *), void *arg)
{
	struct preload_sched sched;
	sa_uthread_t h;
	sa_attr_t a;
	void *tp = NULL;
	int r;

	preload_start();
	if (!thread || !fn)
		return EINVAL;
	if (unlikely(atomic_load_explicit(&rt.state, memory_order_acquire) != RT_RUNNING))
		runtime_start();
	r = attr_to_sa(pa, &a);
	if (!r)
		r = attr_sched(pa, &sched);
	if (r)
		return r;
	r = preload_spawn(&h, &a, fn, arg, &sched, &tp);
	if (r)
		return r == -EINVAL ? EINVAL : EAGAIN;
	*thread = (pthread_t)tp;
	return 0;
}

/* handle_of - the uthread behind @t, or 0 for a thread that is not one. */
static sa_uthread_t handle_of(pthread_t t)
{
	return t ? tls_handle_of((const void *)t) : 0;
}

SA_EXPORT int pthread_join(pthread_t t, void **retval)
{
	sa_uthread_t h;

	preload_start();
	preload_testcancel();
	h = handle_of(t);
	if (!h)
		return t ? preload_real.pthread_join(t, retval) : ESRCH;
	for (;;) {
		int r = ut_join(h, retval, true);

		if (r != -EINTR)
			return -r;
		/* A handler ran, or nothing was for us: join on, as NPTL
		 * does.  A cancellation acts here; @t stays joinable. */
		preload_wait_intr();
	}
}

SA_EXPORT int pthread_detach(pthread_t t)
{
	sa_uthread_t h;

	preload_start();
	h = handle_of(t);
	if (!h)
		return t ? preload_real.pthread_detach(t) : ESRCH;
	return -sa_detach(h);
}

SA_EXPORT int pthread_getattr_np(pthread_t t, pthread_attr_t *attr)
{
	sa_uthread_t h;
	size_t size, guard;
	void *lo;
	int r;

	preload_start();
	h = handle_of(t);
	if (!h)
		return preload_real.pthread_getattr_np(t, attr);
	r = ut_stack_of(h, &lo, &size, &guard);
	if (r)
		return -r;
	r = pthread_attr_init(attr);
	if (!r)
		r = pthread_attr_setstack(attr, lo, size);
	if (!r)
		r = pthread_attr_setguardsize(attr, guard);
	if (!r) {
		struct sched_param p = { .sched_priority = preload_sched_of(t)->prio };
		cpu_set_t cpus;

		pthread_attr_setschedpolicy(attr, preload_sched_of(t)->policy);
		pthread_attr_setschedparam(attr, &p);
		if (preload_cpus_of(t, sizeof(cpus), &cpus) == 0)
			pthread_attr_setaffinity_np(attr, sizeof(cpus), &cpus);
	}
	return r;
}

SA_EXPORT int pthread_setname_np(pthread_t t, const char *name)
{
	sa_uthread_t h;

	preload_start();
	h = handle_of(t);
	if (!h)
		return real_more.setname(t, name);
	if (!name)
		return EINVAL;
	if (strlen(name) > 15)
		return ERANGE;
	return -sa_setname(h, name);
}

SA_EXPORT int pthread_getname_np(pthread_t t, char *buf, size_t len)
{
	sa_uthread_t h;

	preload_start();
	h = handle_of(t);
	if (!h)
		return real_more.getname(t, buf, len);
	return -sa_getname(h, buf, len);
}

/* ------------------------------------------------------------------------
 * Yield and sleeps: a uthread parks, anything else calls the C library.
 */

SA_EXPORT int sched_yield(void)
{
	if (likely(vp_self()))
		return sa_yield();
	return (int)syscall(SYS_sched_yield);
}

/* glibc's own pthread_yield (a compat symbol since 2.34, which programs
 * built before still call: sysbench) and C11 thrd_yield call the kernel's
 * sched_yield directly, never the one above. */
int preload_pthread_yield(void) __asm__("pthread_yield"); /* <pthread.h> renames it */
SA_EXPORT int preload_pthread_yield(void)
{
	return sched_yield();
}

void thrd_yield(void);
SA_EXPORT void thrd_yield(void)
{
	sched_yield();
}

/* deadline_in - now plus @ns, monotonic, saturated. */
static uint64_t deadline_in(uint64_t ns)
{
	uint64_t now = now_ns();

	return ns > DEADLINE_NONE - 1 - now ? DEADLINE_NONE - 1 : now + ns;
}

/*
 * sleep_until - sleep until @deadline, a cancellation point that
 * pthread_kill() and pthread_cancel() cut short: 0, or -EINTR after a
 * signal handler ran (any handler: the sleeps are never restarted), with
 * *@left the time not slept if @left.  A cancellation acts here.
 */
static int sleep_until(uint64_t deadline, uint64_t *left)
{
	for (;;) {
		uint64_t now;

		if (!sleep_until_intr(deadline))
			return 0;
		if (preload_wait_intr() == PRELOAD_INTR_NONE)
			continue;
		now = now_ns();
		if (left)
			*left = deadline > now ? deadline - now : 0;
		return -EINTR;
	}
}

/* timespec_ns - @ts as nanoseconds, saturated; -EINVAL if it is invalid. */
static int timespec_ns(const struct timespec *ts, uint64_t *ns)
{
	if (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= (long)NSEC_PER_SEC)
		return -EINVAL;
	if ((uint64_t)ts->tv_sec >= (UINT64_MAX - NSEC_PER_SEC) / NSEC_PER_SEC)
		*ns = UINT64_MAX - 1;
	else
		*ns = (uint64_t)ts->tv_sec * NSEC_PER_SEC + (uint64_t)ts->tv_nsec;
	return 0;
}

/* sleep_rel - a relative sleep of @req, leaving the time not slept in
 * @rem on EINTR (if @rem), as nanosleep(2) does.  0 or -errno. */
static int sleep_rel(const struct timespec *req, struct timespec *rem)
{
	uint64_t ns, left;
	int r;

	if (timespec_ns(req, &ns))
		return -EINVAL;
	r = sleep_until(deadline_in(ns), &left);
	if (r == -EINTR && rem)
		ns_to_timespec(left, rem);
	return r;
}

SA_EXPORT int nanosleep(const struct timespec *req, struct timespec *rem)
{
	preload_start();
	if (!vp_self() || !req)
		return real_more.nanosleep(req, rem);
	preload_testcancel();
	return (int)preload_errno_ret(sleep_rel(req, rem));
}

SA_EXPORT int clock_nanosleep(clockid_t clk, int flags, const struct timespec *req,
			      struct timespec *rem)
{
	uint64_t d;
	int r;

	preload_start();
	if (!vp_self() || !req || (clk != CLOCK_MONOTONIC && clk != CLOCK_REALTIME))
		return preload_real.clock_nanosleep(clk, flags, req, rem);
	preload_testcancel();
	if (!(flags & TIMER_ABSTIME))
		return -sleep_rel(req, rem);
	r = deadline_from_abs(clk, req, &d);
	/* An absolute sleep leaves @rem alone, as the kernel does. */
	return r ? -r : -sleep_until(d, NULL);
}

SA_EXPORT int usleep(useconds_t us)
{
	preload_start();
	if (!vp_self())
		return real_more.usleep(us);
	preload_testcancel();
	return (int)preload_errno_ret(sleep_until(deadline_in((uint64_t)us * 1000), NULL));
}

SA_EXPORT unsigned sleep(unsigned s)
{
	uint64_t left;

	preload_start();
	if (!vp_self())
		return real_more.sleep(s);
	preload_testcancel();
	if (sleep_until(deadline_in((uint64_t)s * NSEC_PER_SEC), &left) == 0)
		return 0;
	/* The seconds not slept, rounded as glibc rounds them. */
	return (unsigned)(left / NSEC_PER_SEC) + (left % NSEC_PER_SEC >= NSEC_PER_SEC / 2);
}

/* For sync.c: the C library's sem_init, for process-shared semaphores. */
int preload_real_sem_init(sem_t *s, int pshared, unsigned value)
{
	return real_more.sem_init(s, pshared, value);
}
