/* pt_robust.c - robust mutexes: an owner's end is reported, consistent, not recoverable */

/*
 * One behaviour per run: `pt_robust CASE` (the names are in cases[]).
 * Every case must give the same results under NPTL and under the shim,
 * except pshared_enotsup, which checks the shim's documented limit.  A
 * thread that ends holding a robust mutex ends by returning, by
 * pthread_exit() or by cancellation; the next locker gets EOWNERDEAD.
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pt.h"

static pthread_mutex_t m;

static void robust_init(int type)
{
	pthread_mutexattr_t a;

	PT_OK(pthread_mutexattr_init(&a));
	PT_OK(pthread_mutexattr_settype(&a, type));
	PT_OK(pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST));
	PT_OK(pthread_mutex_init(&m, &a));
	PT_OK(pthread_mutexattr_destroy(&a));
}

static void *lock_and_return(void *arg)
{
	(void)arg;
	PT_OK(pthread_mutex_lock(&m));
	return NULL;
}

static void *lock_and_exit(void *arg)
{
	(void)arg;
	PT_OK(pthread_mutex_lock(&m));
	pthread_exit(NULL);
}

/* orphan - a thread locks m and returns holding it. */
static void orphan(void)
{
	pthread_t t;

	PT_OK(pthread_create(&t, NULL, lock_and_return, NULL));
	PT_OK(pthread_join(t, NULL));
}

/* recover - m was just locked with EOWNERDEAD: repair, unlock, relock. */
static void recover(void)
{
	PT_OK(pthread_mutex_consistent(&m));
	PT_OK(pthread_mutex_unlock(&m));
	PT_OK(pthread_mutex_lock(&m));
	PT_OK(pthread_mutex_unlock(&m));
}

static void case_attr(void)
{
	pthread_mutexattr_t a;
	int v = -1;

	PT_OK(pthread_mutexattr_init(&a));
	PT_OK(pthread_mutexattr_getrobust(&a, &v));
	PT_CHECK(v == PTHREAD_MUTEX_STALLED);
	PT_OK(pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST));
	PT_OK(pthread_mutexattr_getrobust(&a, &v));
	PT_CHECK(v == PTHREAD_MUTEX_ROBUST);
	PT_CHECK(pthread_mutexattr_setrobust(&a, 42) == EINVAL);
	PT_OK(pthread_mutexattr_destroy(&a));
}

static void case_owner_return(void)
{
	robust_init(PTHREAD_MUTEX_NORMAL);
	orphan();
	PT_CHECK(pthread_mutex_lock(&m) == EOWNERDEAD);
	recover();
}

static void case_owner_pthread_exit(void)
{
	pthread_t t;

	robust_init(PTHREAD_MUTEX_ERRORCHECK);
	PT_OK(pthread_create(&t, NULL, lock_and_exit, NULL));
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(pthread_mutex_lock(&m) == EOWNERDEAD);
	recover();
}

static volatile int locked;
static int never[2];

static void *lock_and_read(void *arg)
{
	char c;

	(void)arg;
	PT_OK(pthread_mutex_lock(&m));
	locked = 1;
	PT_CHECK(read(never[0], &c, 1) < 0); /* a cancellation point */
	PT_CHECK(!"not cancelled");
	return NULL;
}

static void case_owner_cancelled(void)
{
	pthread_t t;
	void *rv;

	robust_init(PTHREAD_MUTEX_NORMAL);
	PT_OK(pipe(never));
	PT_OK(pthread_create(&t, NULL, lock_and_read, NULL));
	while (!locked)
		usleep(1000);
	PT_OK(pthread_cancel(t));
	PT_OK(pthread_join(t, &rv));
	PT_CHECK(rv == PTHREAD_CANCELED);
	PT_CHECK(pthread_mutex_lock(&m) == EOWNERDEAD);
	recover();
}

static void case_trylock_eownerdead(void)
{
	robust_init(PTHREAD_MUTEX_NORMAL);
	orphan();
	PT_CHECK(pthread_mutex_trylock(&m) == EOWNERDEAD);
	recover();
}

static void case_timedlock_eownerdead(void)
{
	struct timespec dl;

	robust_init(PTHREAD_MUTEX_RECURSIVE);
	orphan();
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 5;
	PT_CHECK(pthread_mutex_timedlock(&m, &dl) == EOWNERDEAD);
	recover();
}

/* A waiter already blocked when the owner ends is the one told. */
static volatile int release_owner, waiter_started;
static int waiter_rc;

static void *lock_until_released(void *arg)
{
	(void)arg;
	PT_OK(pthread_mutex_lock(&m));
	while (!release_owner)
		usleep(1000);
	return NULL;
}

static void *wait_for_lock(void *arg)
{
	(void)arg;
	waiter_started = 1;
	waiter_rc = pthread_mutex_lock(&m);
	if (waiter_rc == EOWNERDEAD)
		PT_OK(pthread_mutex_consistent(&m));
	if (waiter_rc == 0 || waiter_rc == EOWNERDEAD)
		PT_OK(pthread_mutex_unlock(&m));
	return NULL;
}

static void case_waiter_eownerdead(void)
{
	pthread_t owner, waiter;

	robust_init(PTHREAD_MUTEX_NORMAL);
	PT_OK(pthread_create(&owner, NULL, lock_until_released, NULL));
	while (pthread_mutex_trylock(&m) == 0) /* until the owner has it */
		PT_OK(pthread_mutex_unlock(&m));
	PT_OK(pthread_create(&waiter, NULL, wait_for_lock, NULL));
	while (!waiter_started)
		usleep(1000);
	usleep(20000); /* it is blocked in the lock */
	release_owner = 1;
	PT_OK(pthread_join(owner, NULL));
	PT_OK(pthread_join(waiter, NULL));
	PT_CHECK(waiter_rc == EOWNERDEAD);
	PT_OK(pthread_mutex_lock(&m)); /* the waiter made it consistent */
	PT_OK(pthread_mutex_unlock(&m));
}

/*
 * An unlock without pthread_mutex_consistent(): every later lock fails.
 * One call per case: glibc 2.36's pthread_mutex_lock() blocks for ever
 * on a mutex that an earlier call already reported unrecoverable.
 */
static void unrecoverable(void)
{
	robust_init(PTHREAD_MUTEX_NORMAL);
	orphan();
	PT_CHECK(pthread_mutex_lock(&m) == EOWNERDEAD);
	PT_OK(pthread_mutex_unlock(&m)); /* without pthread_mutex_consistent */
}

static void case_notrecoverable_lock(void)
{
	unrecoverable();
	PT_CHECK(pthread_mutex_lock(&m) == ENOTRECOVERABLE);
}

static void case_notrecoverable_trylock(void)
{
	unrecoverable();
	PT_CHECK(pthread_mutex_trylock(&m) == ENOTRECOVERABLE);
}

static void case_notrecoverable_timedlock(void)
{
	struct timespec dl;

	unrecoverable();
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 5;
	PT_CHECK(pthread_mutex_timedlock(&m, &dl) == ENOTRECOVERABLE);
}

static void *lock_enotrecoverable(void *arg)
{
	(void)arg;
	PT_CHECK(pthread_mutex_lock(&m) == ENOTRECOVERABLE);
	return NULL;
}

static void case_notrecoverable_other_thread(void)
{
	pthread_t t;

	unrecoverable();
	PT_OK(pthread_create(&t, NULL, lock_enotrecoverable, NULL));
	PT_OK(pthread_join(t, NULL));
}

static void case_consistent_einval(void)
{
	pthread_mutex_t plain = PTHREAD_MUTEX_INITIALIZER;

	PT_CHECK(pthread_mutex_consistent(&plain) == EINVAL); /* not robust */
	PT_OK(pthread_mutex_lock(&plain));
	PT_CHECK(pthread_mutex_consistent(&plain) == EINVAL);
	PT_OK(pthread_mutex_unlock(&plain));
	robust_init(PTHREAD_MUTEX_NORMAL);
	PT_OK(pthread_mutex_lock(&m));
	PT_CHECK(pthread_mutex_consistent(&m) == EINVAL); /* consistent */
	PT_OK(pthread_mutex_unlock(&m));
	orphan();
	PT_CHECK(pthread_mutex_lock(&m) == EOWNERDEAD);
	PT_OK(pthread_mutex_consistent(&m));
	PT_CHECK(pthread_mutex_consistent(&m) == EINVAL); /* already */
	PT_OK(pthread_mutex_unlock(&m));
}

static void *unlock_eperm(void *arg)
{
	(void)arg;
	PT_CHECK(pthread_mutex_unlock(&m) == EPERM);
	return NULL;
}

static void case_unlock_by_other_eperm(void)
{
	pthread_t t;

	robust_init(PTHREAD_MUTEX_NORMAL);
	PT_OK(pthread_mutex_lock(&m));
	PT_OK(pthread_create(&t, NULL, unlock_eperm, NULL));
	PT_OK(pthread_join(t, NULL));
	PT_OK(pthread_mutex_unlock(&m));
}

/* A condition wait relocks a mutex whose owner ended meanwhile. */
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static volatile int cv_waiting;

static void *signal_and_return(void *arg)
{
	(void)arg;
	PT_OK(pthread_mutex_lock(&m));
	PT_OK(pthread_cond_signal(&cv));
	return NULL; /* holding m */
}

static void case_cond_wait_eownerdead(void)
{
	pthread_t t;
	int r;

	robust_init(PTHREAD_MUTEX_NORMAL);
	PT_OK(pthread_mutex_lock(&m));
	PT_OK(pthread_create(&t, NULL, signal_and_return, NULL));
	r = pthread_cond_wait(&cv, &m);
	PT_CHECK(r == EOWNERDEAD);
	PT_OK(pthread_join(t, NULL));
	if (r == EOWNERDEAD)
		PT_OK(pthread_mutex_consistent(&m));
	PT_OK(pthread_mutex_unlock(&m));
}

/* The shim's limit: libsa's objects are private to a process. */
static void case_pshared_enotsup(void)
{
	pthread_mutexattr_t a;
	pthread_mutex_t pm;

	PT_OK(pthread_mutexattr_init(&a));
	PT_OK(pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST));
	PT_OK(pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED));
	PT_CHECK(pthread_mutex_init(&pm, &a) == ENOTSUP);
	PT_OK(pthread_mutexattr_destroy(&a));
}

static const struct pt_case cases[] = {
	{ "attr", case_attr },
	{ "owner_return", case_owner_return },
	{ "owner_pthread_exit", case_owner_pthread_exit },
	{ "owner_cancelled", case_owner_cancelled },
	{ "trylock_eownerdead", case_trylock_eownerdead },
	{ "timedlock_eownerdead", case_timedlock_eownerdead },
	{ "waiter_eownerdead", case_waiter_eownerdead },
	{ "notrecoverable_lock", case_notrecoverable_lock },
	{ "notrecoverable_trylock", case_notrecoverable_trylock },
	{ "notrecoverable_timedlock", case_notrecoverable_timedlock },
	{ "notrecoverable_other_thread", case_notrecoverable_other_thread },
	{ "consistent_einval", case_consistent_einval },
	{ "unlock_by_other_eperm", case_unlock_by_other_eperm },
	{ "cond_wait_eownerdead", case_cond_wait_eownerdead },
	{ "pshared_enotsup", case_pshared_enotsup },
};

int main(int argc, char **argv)
{
	return pt_main("pt_robust", cases, sizeof(cases) / sizeof(cases[0]), 30, argc, argv);
}
