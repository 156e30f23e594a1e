/* helpers.h - shared helpers for the libsa Criterion tests */
#ifndef SA_TESTS_HELPERS_H
#define SA_TESTS_HELPERS_H

/*
 * Rules the helpers encode:
 *  - Criterion assertions (cr_assert*) run only in the test's own body, which
 *    is the uthread that started the runtime (its own stack, so Criterion's
 *    longjmp on failure stays on that stack).  Spawned uthreads and plain
 *    pthreads report problems with UT_CHECK(), which records the first
 *    failure; the body then calls assert_no_ut_failures().
 *  - Every deadline is absolute on a named clock; h_deadline() builds one.
 */

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sa/sa.h"

#define NSEC_PER_MSEC 1000000ull
#define NSEC_PER_USEC 1000ull
#define NSEC_PER_SEC_ 1000000000ull

/* ---- time ---- */

static inline uint64_t h_now(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC_ + (uint64_t)ts.tv_nsec;
}

static inline uint64_t h_mono(void)
{
	return h_now(CLOCK_MONOTONIC);
}

static inline struct timespec h_ns_to_ts(uint64_t ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(ns / NSEC_PER_SEC_),
		.tv_nsec = (long)(ns % NSEC_PER_SEC_),
	};
	return ts;
}

/* h_deadline - absolute time @delta_ns from now on @clk (may be negative). */
static inline struct timespec h_deadline(clockid_t clk, int64_t delta_ns)
{
	return h_ns_to_ts((uint64_t)((int64_t)h_now(clk) + delta_ns));
}

static inline uint64_t h_ts_ns(const struct timespec *ts)
{
	return (uint64_t)ts->tv_sec * NSEC_PER_SEC_ + (uint64_t)ts->tv_nsec;
}

/* h_os_sleep_ns - sleep the kernel thread (never the libsa way). */
static inline void h_os_sleep_ns(uint64_t ns)
{
	struct timespec ts = h_ns_to_ts(ns);

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- failure recording from uthreads and pthreads ---- */

static _Atomic int h_ut_failures;
static char h_ut_first_failure[512];

static inline void h_ut_fail(const char *file, int line, const char *what)
{
	if (atomic_fetch_add(&h_ut_failures, 1) == 0)
		snprintf(h_ut_first_failure, sizeof(h_ut_first_failure),
			 "%s:%d: %s", file, line, what);
}

/* UT_CHECK - usable anywhere (uthread, pthread): records, never jumps. */
#define UT_CHECK(cond)                                                  \
	do {                                                            \
		if (!(cond))                                            \
			h_ut_fail(__FILE__, __LINE__, "check failed: " #cond); \
	} while (0)

/* UT_CHECK_EQ - as UT_CHECK for integer equality, naming both values. */
#define UT_CHECK_EQ(a, b)                                               \
	do {                                                            \
		long long a__ = (long long)(a), b__ = (long long)(b);   \
		if (a__ != b__) {                                       \
			char m__[256];                                  \
			snprintf(m__, sizeof(m__), "%s == %s: %lld != %lld", \
				 #a, #b, a__, b__);                     \
			h_ut_fail(__FILE__, __LINE__, m__);             \
		}                                                       \
	} while (0)

#define assert_no_ut_failures()                                             \
	cr_assert_eq(atomic_load(&h_ut_failures), 0,                        \
		     "%d failure(s) in uthreads/pthreads, first: %s",       \
		     atomic_load(&h_ut_failures), h_ut_first_failure)

/* ---- assertions on libsa return codes (test body only) ---- */

#define SA_OK(expr)                                                        \
	do {                                                               \
		int r__ = (expr);                                          \
		cr_assert_eq(r__, 0, "%s returned %d (%s), expected 0",    \
			     #expr, r__, strerror(r__ < 0 ? -r__ : r__));  \
	} while (0)

#define SA_ERR(expr, err)                                                  \
	do {                                                               \
		int r__ = (expr);                                          \
		int e__ = (err);                                           \
		cr_assert_eq(r__, e__, "%s returned %d (%s), expected %d (%s)", \
			     #expr, r__, strerror(r__ < 0 ? -r__ : r__),   \
			     e__, strerror(-e__));                         \
	} while (0)

/* ---- environment ---- */

/* h_env_vps - set (or, for NULL, clear) $SA_VPS; call before any sa_* call. */
static inline void h_env_vps(const char *v)
{
	if (v)
		setenv("SA_VPS", v, 1);
	else
		unsetenv("SA_VPS");
}

/*
 * h_skip_in_qemu_guest - skip a test that measures time or CPU shares
 * when it runs in the QEMU guest of tests/kernel (whose init exports
 * SA_HARNESS_SMP): there the CPU is emulated in software (TCG), and what
 * such a test measures is the emulator.  @why says what is measured.
 */
#define h_skip_in_qemu_guest(why)                                             \
	do {                                                                  \
		if (getenv("SA_HARNESS_SMP"))                                 \
			cr_skip_test("%s: not measurable under QEMU's software " \
				     "emulation (TCG)", why);                 \
	} while (0)

/* h_start - start the runtime with @n VPs (0: default with $SA_VPS unset). */
/* h_init - sa_init(@n).  With the kernel backend the VPs may outnumber
 * the processors the kernel grants: those wait for one (dormant). */
static inline void h_init(unsigned n)
{
	SA_OK(sa_init(n));
}

static inline void h_start(unsigned n)
{
	if (n == 0)
		h_env_vps(NULL);
	h_init(n);
}

/* h_start_env - start the runtime the default way with $SA_VPS set to @v. */
static inline void h_start_env(const char *v)
{
	h_env_vps(v);
	h_init(0);
	cr_assert_eq(sa_nvps(), (unsigned)atoi(v));
}

/* ---- uthreads ---- */

static inline sa_uthread_t h_spawn(void *(*fn)(void *), void *arg)
{
	sa_uthread_t t = 0;

	SA_OK(sa_spawn(&t, NULL, fn, arg));
	cr_assert_neq(t, 0, "sa_spawn stored handle 0");
	return t;
}

static inline sa_uthread_t h_spawn_prio(void *(*fn)(void *), void *arg,
					int prio)
{
	sa_attr_t a;
	sa_uthread_t t = 0;

	SA_OK(sa_attr_init(&a));
	SA_OK(sa_attr_setprio(&a, prio));
	SA_OK(sa_spawn(&t, &a, fn, arg));
	return t;
}

static inline void *h_join(sa_uthread_t t)
{
	void *rv = (void *)(uintptr_t)0xdeadbeef;

	SA_OK(sa_join(t, &rv));
	return rv;
}

static inline struct sa_stats h_stats(void)
{
	struct sa_stats st;

	memset(&st, 0, sizeof(st));
	SA_OK(sa_stats_get(&st, sizeof(st)));
	return st;
}

/* ---- plain pthreads ---- */

static inline pthread_t h_pthread(void *(*fn)(void *), void *arg)
{
	pthread_t p;
	int r = pthread_create(&p, NULL, fn, arg);

	cr_assert_eq(r, 0, "pthread_create: %s", strerror(r));
	return p;
}

static inline void *h_pthread_join(pthread_t p)
{
	void *rv = NULL;
	int r = pthread_join(p, &rv);

	cr_assert_eq(r, 0, "pthread_join: %s", strerror(r));
	return rv;
}

/* ---- misc ---- */

/* h_rand - xorshift64*, for per-uthread deterministic randomness. */
static inline uint64_t h_rand(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* h_spin_ns - burn CPU for @ns without yielding (keeps a VP busy). */
static inline void h_spin_ns(uint64_t ns)
{
	uint64_t end = h_mono() + ns;

	while (h_mono() < end)
		__builtin_ia32_pause();
}

/* h_wait_atomic_ge - yield until *@p >= @v or @timeout_ns passes. */
static inline bool h_wait_atomic_ge(_Atomic int *p, int v, uint64_t timeout_ns)
{
	uint64_t end = h_mono() + timeout_ns;

	while (atomic_load(p) < v) {
		if (h_mono() > end)
			return false;
		sa_sleep_ns(100 * NSEC_PER_USEC);
	}
	return true;
}

#define UP(x) ((void *)(uintptr_t)(x))
#define IP(p) ((uintptr_t)(p))

#endif /* SA_TESTS_HELPERS_H */
