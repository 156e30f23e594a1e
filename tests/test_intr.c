/* test_intr.c - ut_interrupt(): interruptible sleeps, cond, sem, join, lock and barrier waits */

/*
 * The LD_PRELOAD shim's pthread_kill() and pthread_cancel() end a wait
 * through ut_interrupt(), which libsa.so keeps hidden; these tests link
 * the same sources statically (tests/libsa-lockcheck.la) to reach it.
 * A wait that is cut short must really end early: each waits far longer
 * (WAIT_NS) than the generous bound (BOUND_NS) it is checked against.
 */

#include "helpers.h"

#include "defs.h"

#define WAIT_NS (30 * NSEC_PER_SEC_)
#define BOUND_NS (10 * NSEC_PER_SEC_)
#define SETTLE_NS (20 * NSEC_PER_MSEC) /* for a waiter to park */

TestSuite(intr, .timeout = 60);

static _Atomic int ready;
static _Atomic int release;

struct result {
	int ret;
	uint64_t took;
};

static sa_cond_t cond;
static sa_mutex_t mtx;
static sa_sem_t sem;

/* start - spawn @fn(@r) and give it time to park in its wait. */
static sa_uthread_t start(void *(*fn)(void *), struct result *r)
{
	sa_uthread_t t;

	atomic_store(&ready, 0);
	t = h_spawn(fn, r);
	while (!atomic_load(&ready))
		sa_sleep_ns(NSEC_PER_MSEC);
	sa_sleep_ns(SETTLE_NS);
	return t;
}

static void *sleeper(void *arg)
{
	struct result *r = arg;
	uint64_t t0 = h_mono();

	atomic_store(&ready, 1);
	r->ret = sleep_until_intr(t0 + WAIT_NS);
	r->took = h_mono() - t0;
	return NULL;
}

Test(intr, sleep_ends_with_eintr_at_once)
{
	struct result r = { 0 };
	sa_uthread_t t;

	h_start_env("2");
	t = start(sleeper, &r);
	SA_OK(ut_interrupt(t));
	h_join(t);
	cr_assert_eq(r.ret, -EINTR);
	cr_assert_lt(r.took, BOUND_NS, "the sleep took %llu ns", (unsigned long long)r.took);
}

Test(intr, sleep_ends_with_eintr_at_once_1vp)
{
	struct result r = { 0 };
	sa_uthread_t t;

	h_start_env("1");
	t = start(sleeper, &r);
	SA_OK(ut_interrupt(t));
	h_join(t);
	cr_assert_eq(r.ret, -EINTR);
	cr_assert_lt(r.took, BOUND_NS);
}

/* A request made while the uthread runs ends its next wait at once, and
 * is used up by it: the wait after that runs its course. */
static void *late_sleeper(void *arg)
{
	struct result *r = arg;
	uint64_t t0;

	atomic_store(&ready, 1);
	while (!atomic_load(&release))
		sa_yield();
	t0 = h_mono();
	r[0].ret = sleep_until_intr(t0 + WAIT_NS);
	r[0].took = h_mono() - t0;
	t0 = h_mono();
	r[1].ret = sleep_until_intr(t0 + SETTLE_NS);
	r[1].took = h_mono() - t0;
	return NULL;
}

Test(intr, request_before_the_wait_ends_it_and_is_used_up)
{
	struct result r[2] = { { 0 } };
	sa_uthread_t t;

	h_start_env("2");
	atomic_store(&release, 0);
	t = start(late_sleeper, r);
	SA_OK(ut_interrupt(t));
	atomic_store(&release, 1);
	h_join(t);
	cr_assert_eq(r[0].ret, -EINTR);
	cr_assert_lt(r[0].took, BOUND_NS);
	cr_assert_eq(r[1].ret, 0);
	cr_assert_geq(r[1].took, SETTLE_NS);
}

static void *plain_sleeper(void *arg)
{
	struct result *r = arg;
	uint64_t t0 = h_mono();

	atomic_store(&ready, 1);
	r->ret = sa_sleep_ns(10 * SETTLE_NS);
	r->took = h_mono() - t0;
	return NULL;
}

/* The public sleep is not interruptible: a native program never sees -EINTR. */
Test(intr, sa_sleep_runs_its_course)
{
	struct result r = { 0 };
	sa_uthread_t t;

	h_start_env("2");
	t = start(plain_sleeper, &r);
	SA_OK(ut_interrupt(t));
	h_join(t);
	cr_assert_eq(r.ret, 0);
	cr_assert_geq(r.took, 10 * SETTLE_NS);
}

static void *cond_waiter(void *arg)
{
	struct result *r = arg;
	uint64_t t0;

	sa_mutex_lock(&mtx);
	atomic_store(&ready, 1);
	t0 = h_mono();
	r->ret = cond_wait_intr(&cond, &mtx, COND_CLOCK_OWN, NULL);
	r->took = h_mono() - t0;
	/* Held again: unlocking succeeds. */
	UT_CHECK_EQ(sa_mutex_unlock(&mtx), 0);
	return NULL;
}

Test(intr, cond_wait_ends_with_eintr_mutex_held)
{
	struct result r = { 0 };
	sa_uthread_t t;

	h_start_env("2");
	SA_OK(sa_mutex_init(&mtx, SA_MUTEX_ERRORCHECK));
	SA_OK(sa_cond_init(&cond, CLOCK_MONOTONIC));
	t = start(cond_waiter, &r);
	SA_OK(ut_interrupt(t));
	h_join(t);
	cr_assert_eq(r.ret, -EINTR);
	cr_assert_lt(r.took, BOUND_NS);
	assert_no_ut_failures();
}

static void *sem_waiter(void *arg)
{
	struct result *r = arg;
	struct timespec abs = h_deadline(CLOCK_MONOTONIC, (int64_t)WAIT_NS);
	uint64_t t0;

	atomic_store(&ready, 1);
	t0 = h_mono();
	r->ret = sem_wait_intr(&sem, CLOCK_MONOTONIC, &abs);
	r->took = h_mono() - t0;
	return NULL;
}

Test(intr, sem_wait_ends_with_eintr_and_takes_no_unit)
{
	struct result r = { 0 };
	sa_uthread_t t;
	unsigned v = 99;

	h_start_env("2");
	SA_OK(sa_sem_init(&sem, 0));
	t = start(sem_waiter, &r);
	SA_OK(ut_interrupt(t));
	h_join(t);
	cr_assert_eq(r.ret, -EINTR);
	cr_assert_lt(r.took, BOUND_NS);
	SA_OK(sa_sem_post(&sem));
	SA_OK(sa_sem_getvalue(&sem, &v));
	cr_assert_eq(v, 1u, "the post went to a waiter that had left");
}

static void *held(void *arg)
{
	(void)arg;
	while (!atomic_load(&release))
		sa_sleep_ns(NSEC_PER_MSEC);
	return (void *)42;
}

static sa_uthread_t target;

static void *joiner(void *arg)
{
	struct result *r = arg;
	uint64_t t0;

	atomic_store(&ready, 1);
	t0 = h_mono();
	r->ret = ut_join(target, NULL, true);
	r->took = h_mono() - t0;
	return NULL;
}

Test(intr, join_ends_with_eintr_target_stays_joinable)
{
	struct result r = { 0 };
	sa_uthread_t t;

	h_start_env("2");
	atomic_store(&release, 0);
	target = h_spawn(held, NULL);
	t = start(joiner, &r);
	SA_OK(ut_interrupt(t));
	h_join(t);
	cr_assert_eq(r.ret, -EINTR);
	cr_assert_lt(r.took, BOUND_NS);
	atomic_store(&release, 1);
	cr_assert_eq(h_join(target), (void *)42);
}

/*
 * Lock and barrier waits end with -EINTR, the object not taken: the shim
 * runs the handler and waits again (POSIX has these waits go on).
 */
static sa_rwlock_t rwl;
static sa_barrier_t bar;

static void *mutex_locker(void *arg)
{
	struct result *r = arg;
	uint64_t t0;

	atomic_store(&ready, 1);
	t0 = h_mono();
	r->ret = mutex_lock_intr(&mtx, 0, NULL);
	r->took = h_mono() - t0;
	return NULL;
}

static void mutex_lock_eintr(int type)
{
	struct result r = { 0 };
	sa_uthread_t t;

	h_start_env("2");
	SA_OK(sa_mutex_init(&mtx, type));
	SA_OK(sa_mutex_lock(&mtx));
	t = start(mutex_locker, &r);
	SA_OK(ut_interrupt(t));
	h_join(t);
	cr_assert_eq(r.ret, -EINTR);
	cr_assert_lt(r.took, BOUND_NS);
	/* The unlock hands it to nobody: the waiter left. */
	SA_OK(sa_mutex_unlock(&mtx));
	SA_OK(sa_mutex_trylock(&mtx));
	SA_OK(sa_mutex_unlock(&mtx));
	SA_OK(sa_mutex_destroy(&mtx));
}

Test(intr, mutex_lock_ends_with_eintr_not_taken)
{
	mutex_lock_eintr(SA_MUTEX_NORMAL);
}

Test(intr, recursive_mutex_lock_ends_with_eintr_not_taken)
{
	mutex_lock_eintr(SA_MUTEX_RECURSIVE);
}

Test(intr, robust_mutex_lock_ends_with_eintr_not_taken)
{
	mutex_lock_eintr(SA_MUTEX_ERRORCHECK | SA_MUTEX_ROBUST);
}

static void *rw_writer(void *arg)
{
	struct result *r = arg;
	struct timespec abs = h_deadline(CLOCK_MONOTONIC, (int64_t)WAIT_NS);
	uint64_t t0;

	atomic_store(&ready, 1);
	t0 = h_mono();
	r->ret = rwlock_lock_intr(&rwl, true, CLOCK_MONOTONIC, &abs);
	r->took = h_mono() - t0;
	return NULL;
}

Test(intr, rwlock_wrlock_ends_with_eintr_and_holds_no_reader_back)
{
	struct result r = { 0 };
	sa_uthread_t t;

	h_start_env("2");
	SA_OK(sa_rwlock_init(&rwl));
	SA_OK(sa_rwlock_rdlock(&rwl));
	t = start(rw_writer, &r);
	SA_ERR(sa_rwlock_tryrdlock(&rwl), -EBUSY); /* a writer waits */
	SA_OK(ut_interrupt(t));
	h_join(t);
	cr_assert_eq(r.ret, -EINTR);
	cr_assert_lt(r.took, BOUND_NS);
	SA_OK(sa_rwlock_tryrdlock(&rwl)); /* none waits now */
	SA_OK(sa_rwlock_unlock(&rwl));
	SA_OK(sa_rwlock_unlock(&rwl));
	SA_OK(sa_rwlock_trywrlock(&rwl));
	SA_OK(sa_rwlock_unlock(&rwl));
}

static void *rw_reader(void *arg)
{
	struct result *r = arg;
	uint64_t t0;

	atomic_store(&ready, 1);
	t0 = h_mono();
	r->ret = rwlock_lock_intr(&rwl, false, 0, NULL);
	r->took = h_mono() - t0;
	return NULL;
}

Test(intr, rwlock_rdlock_ends_with_eintr_not_taken)
{
	struct result r = { 0 };
	sa_uthread_t t;

	h_start_env("2");
	SA_OK(sa_rwlock_init(&rwl));
	SA_OK(sa_rwlock_wrlock(&rwl));
	t = start(rw_reader, &r);
	SA_OK(ut_interrupt(t));
	h_join(t);
	cr_assert_eq(r.ret, -EINTR);
	cr_assert_lt(r.took, BOUND_NS);
	SA_OK(sa_rwlock_unlock(&rwl));
	SA_OK(sa_rwlock_trywrlock(&rwl)); /* no reader was let in */
	SA_OK(sa_rwlock_unlock(&rwl));
}

static void *bar_waiter(void *arg)
{
	struct result *r = arg;
	uint64_t t0;

	atomic_store(&ready, 1);
	t0 = h_mono();
	r->ret = barrier_wait_intr(&bar);
	r->took = h_mono() - t0;
	atomic_store(&release, 1);
	return NULL;
}

Test(intr, barrier_wait_ends_with_eintr_counted_out)
{
	struct result r = { 0 }, r2 = { 0 };
	sa_uthread_t t;
	int mine;

	h_start_env("2");
	SA_OK(sa_barrier_init(&bar, 2));
	atomic_store(&release, 0);
	t = start(bar_waiter, &r);
	SA_OK(ut_interrupt(t));
	h_join(t);
	cr_assert_eq(r.ret, -EINTR);
	cr_assert_lt(r.took, BOUND_NS);
	/* It left the round: the next arrival waits for another. */
	atomic_store(&release, 0);
	t = start(bar_waiter, &r2);
	cr_assert_eq(atomic_load(&release), 0, "the barrier still counted the waiter that left");
	mine = sa_barrier_wait(&bar);
	h_join(t);
	cr_assert(mine == SA_BARRIER_SERIAL ? r2.ret == 0 : r2.ret == SA_BARRIER_SERIAL,
		  "mine %d, the other's %d", mine, r2.ret);
	SA_OK(sa_barrier_destroy(&bar));
}

Test(intr, unknown_uthread_esrch)
{
	sa_uthread_t t;

	h_start_env("2");
	t = h_spawn(held, NULL);
	atomic_store(&release, 1);
	h_join(t);
	SA_ERR(ut_interrupt(t), -ESRCH);
}

/*
 * Interruptions racing with posts and timeouts: every unit posted is
 * taken exactly once (a waiter that an interruption ended gets none, a
 * post never goes to a waiter that left), and no waiter is made runnable
 * twice or never.
 */
#define RACE_WAITERS 4
#define RACE_POSTS 20000

static _Atomic uint64_t taken, eintrs;
static sa_uthread_t race_waiters[RACE_WAITERS];

static void *race_waiter(void *arg)
{
	(void)arg;
	while (!atomic_load(&release)) {
		struct timespec abs = h_deadline(CLOCK_MONOTONIC, 200 * (int64_t)NSEC_PER_USEC);
		int r = sem_wait_intr(&sem, CLOCK_MONOTONIC, &abs);

		if (r == 0)
			atomic_fetch_add(&taken, 1);
		else if (r == -EINTR)
			atomic_fetch_add(&eintrs, 1);
		else
			UT_CHECK_EQ(r, -ETIMEDOUT);
	}
	return NULL;
}

static void *race_interrupter(void *arg)
{
	(void)arg;
	for (unsigned i = 0; !atomic_load(&release); i++) {
		UT_CHECK_EQ(ut_interrupt(race_waiters[i % RACE_WAITERS]), 0);
		sa_yield();
	}
	return NULL;
}

Test(intr, races_with_posts_and_timeouts_lose_nothing)
{
	sa_uthread_t in;
	unsigned v = 0;

	h_start_env("2");
	atomic_store(&release, 0);
	SA_OK(sa_sem_init(&sem, 0));
	for (int i = 0; i < RACE_WAITERS; i++)
		race_waiters[i] = h_spawn(race_waiter, NULL);
	in = h_spawn(race_interrupter, NULL);
	for (int i = 0; i < RACE_POSTS; i++) {
		SA_OK(sa_sem_post(&sem));
		if (i % 16 == 0)
			sa_yield();
	}
	/* Let the waiters drain it before they stop. */
	for (int i = 0; i < 10000 && sa_sem_getvalue(&sem, &v) == 0 && v > 0; i++)
		sa_sleep_ns(NSEC_PER_MSEC);
	atomic_store(&release, 1);
	h_join(in);
	for (int i = 0; i < RACE_WAITERS; i++)
		h_join(race_waiters[i]);
	SA_OK(sa_sem_getvalue(&sem, &v));
	cr_assert_eq(atomic_load(&taken) + v, RACE_POSTS, "taken %llu + left %u",
		     (unsigned long long)atomic_load(&taken), v);
	cr_assert_gt(atomic_load(&eintrs), 0, "no wait was interrupted");
	assert_no_ut_failures();
}

/*
 * Interruptions racing with lock handoffs: a locker that an interruption
 * ended is never handed the mutex, and one that was handed it always gets
 * it (every increment done under the mutex is counted once).
 */
#define LOCK_RACE_ITERS 20000
static uint64_t locked_count;

static void *race_locker(void *arg)
{
	(void)arg;
	for (int i = 0; i < LOCK_RACE_ITERS; i++) {
		int r;

		while ((r = mutex_lock_intr(&mtx, 0, NULL)) == -EINTR)
			atomic_fetch_add(&eintrs, 1);
		UT_CHECK_EQ(r, 0);
		locked_count++;
		if (i % 8 == 0)
			sa_yield(); /* let the others queue behind us */
		UT_CHECK_EQ(sa_mutex_unlock(&mtx), 0);
	}
	return NULL;
}

/* As race_interrupter(), but the lockers end before it stops. */
static void *lock_race_interrupter(void *arg)
{
	(void)arg;
	for (unsigned i = 0; !atomic_load(&release); i++) {
		int r = ut_interrupt(race_waiters[i % RACE_WAITERS]);

		UT_CHECK(r == 0 || r == -ESRCH);
		sa_yield();
	}
	return NULL;
}

Test(intr, lock_races_with_handoffs_lose_nothing)
{
	sa_uthread_t in;

	uint64_t until;

	h_start_env("2");
	atomic_store(&eintrs, 0);
	SA_OK(sa_mutex_init(&mtx, SA_MUTEX_NORMAL));
	/* Rounds until one saw an interruption land in a wait (a slow or
	 * busy machine may schedule the interrupter late in a round). */
	until = h_mono() + 20 * NSEC_PER_SEC_;
	do {
		atomic_store(&release, 0);
		locked_count = 0;
		for (int i = 0; i < RACE_WAITERS; i++)
			race_waiters[i] = h_spawn(race_locker, NULL);
		in = h_spawn(lock_race_interrupter, NULL);
		for (int i = 0; i < RACE_WAITERS; i++)
			h_join(race_waiters[i]);
		atomic_store(&release, 1);
		h_join(in);
		cr_assert_eq(locked_count, (uint64_t)RACE_WAITERS * LOCK_RACE_ITERS);
	} while (!atomic_load(&eintrs) && h_mono() < until);
	cr_assert_gt(atomic_load(&eintrs), 0, "no wait was interrupted");
	SA_OK(sa_mutex_trylock(&mtx));
	SA_OK(sa_mutex_unlock(&mtx));
	assert_no_ut_failures();
}
