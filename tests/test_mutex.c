/* test_mutex.c - normal, recursive and error-checking mutexes */
#include "helpers.h"

/* A uthread that takes @m, reports it holds it, and keeps it until @release. */
struct holder {
	sa_mutex_t *m;
	sa_sem_t locked;
	sa_sem_t release;
	int rc;
};

static void *hold_mutex(void *arg)
{
	struct holder *h = arg;

	h->rc = sa_mutex_lock(h->m);
	sa_sem_post(&h->locked);
	sa_sem_wait(&h->release);
	if (h->rc == 0)
		UT_CHECK_EQ(sa_mutex_unlock(h->m), 0);
	return NULL;
}

static sa_uthread_t start_holder(struct holder *h, sa_mutex_t *m)
{
	sa_uthread_t t;

	h->m = m;
	SA_OK(sa_sem_init(&h->locked, 0));
	SA_OK(sa_sem_init(&h->release, 0));
	t = h_spawn(hold_mutex, h);
	SA_OK(sa_sem_wait(&h->locked));
	cr_assert_eq(h->rc, 0, "holder failed to lock: %d", h->rc);
	return t;
}

static void stop_holder(struct holder *h, sa_uthread_t t)
{
	SA_OK(sa_sem_post(&h->release));
	h_join(t);
	assert_no_ut_failures();
}

/* ---- init / invalid objects ---- */

Test(mutex, init_null_einval, .timeout = 10)
{
	SA_ERR(sa_mutex_init(NULL, SA_MUTEX_NORMAL), -EINVAL);
}

Test(mutex, init_unknown_type_einval, .timeout = 10)
{
	sa_mutex_t m;

	SA_ERR(sa_mutex_init(&m, 3), -EINVAL);
	SA_ERR(sa_mutex_init(&m, -1), -EINVAL);
}

Test(mutex, zeroed_object_einval, .timeout = 10)
{
	sa_mutex_t m;
	struct timespec dl;

	h_start(0);
	memset(&m, 0, sizeof(m));
	dl = h_deadline(CLOCK_MONOTONIC, NSEC_PER_MSEC);
	SA_ERR(sa_mutex_lock(&m), -EINVAL);
	SA_ERR(sa_mutex_trylock(&m), -EINVAL);
	SA_ERR(sa_mutex_timedlock(&m, CLOCK_MONOTONIC, &dl), -EINVAL);
	SA_ERR(sa_mutex_unlock(&m), -EINVAL);
	SA_ERR(sa_mutex_destroy(&m), -EINVAL);
}

Test(mutex, destroyed_object_einval, .timeout = 10)
{
	sa_mutex_t m;

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_NORMAL));
	SA_OK(sa_mutex_destroy(&m));
	SA_ERR(sa_mutex_lock(&m), -EINVAL);
	SA_ERR(sa_mutex_trylock(&m), -EINVAL);
	SA_ERR(sa_mutex_destroy(&m), -EINVAL);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_NORMAL));
	SA_OK(sa_mutex_lock(&m));
	SA_OK(sa_mutex_unlock(&m));
}

Test(mutex, static_initializer_normal, .timeout = 10)
{
	sa_mutex_t m = SA_MUTEX_INITIALIZER;

	h_start(0);
	SA_OK(sa_mutex_lock(&m));
	SA_ERR(sa_mutex_trylock(&m), -EBUSY);
	SA_OK(sa_mutex_unlock(&m));
	SA_OK(sa_mutex_destroy(&m));
}

Test(mutex, static_initializer_recursive, .timeout = 10)
{
	sa_mutex_t m = SA_MUTEX_RECURSIVE_INITIALIZER;

	h_start(0);
	SA_OK(sa_mutex_lock(&m));
	SA_OK(sa_mutex_lock(&m));
	SA_OK(sa_mutex_unlock(&m));
	SA_OK(sa_mutex_unlock(&m));
	SA_ERR(sa_mutex_unlock(&m), -EPERM);
}

Test(mutex, static_initializer_errorcheck, .timeout = 10)
{
	sa_mutex_t m = SA_MUTEX_ERRORCHECK_INITIALIZER;

	h_start(0);
	SA_OK(sa_mutex_lock(&m));
	SA_ERR(sa_mutex_lock(&m), -EDEADLK);
	SA_OK(sa_mutex_unlock(&m));
}

Test(mutex, works_before_runtime_start, .timeout = 10)
{
	sa_mutex_t m = SA_MUTEX_INITIALIZER;

	/* the first call starts the runtime (or works without it) */
	SA_OK(sa_mutex_lock(&m));
	SA_OK(sa_mutex_unlock(&m));
}

/* ---- mutual exclusion ---- */

static sa_mutex_t cmtx;
static long counter;
static _Atomic int inside;
enum { EX_N = 64, EX_ITERS = 300 };

static void *increment(void *arg)
{
	(void)arg;
	for (int i = 0; i < EX_ITERS; i++) {
		UT_CHECK_EQ(sa_mutex_lock(&cmtx), 0);
		UT_CHECK_EQ(atomic_fetch_add(&inside, 1), 0);
		long c = counter;
		if (i % 7 == 0)
			sa_yield();
		counter = c + 1;
		atomic_fetch_sub(&inside, 1);
		UT_CHECK_EQ(sa_mutex_unlock(&cmtx), 0);
	}
	return NULL;
}

static void run_exclusion(int type)
{
	sa_uthread_t t[EX_N];

	SA_OK(sa_mutex_init(&cmtx, type));
	for (int i = 0; i < EX_N; i++)
		t[i] = h_spawn(increment, NULL);
	for (int i = 0; i < EX_N; i++)
		h_join(t[i]);
	assert_no_ut_failures();
	cr_assert_eq(counter, (long)EX_N * EX_ITERS);
}

Test(mutex, normal_mutual_exclusion, .timeout = 20)
{
	h_start(0);
	run_exclusion(SA_MUTEX_NORMAL);
}

Test(mutex, recursive_mutual_exclusion, .timeout = 20)
{
	h_start(0);
	run_exclusion(SA_MUTEX_RECURSIVE);
}

Test(mutex, errorcheck_mutual_exclusion, .timeout = 20)
{
	h_start(0);
	run_exclusion(SA_MUTEX_ERRORCHECK);
}

Test(mutex, mutual_exclusion_many_vps, .timeout = 20)
{
	h_start_env("4");
	run_exclusion(SA_MUTEX_NORMAL);
}

/* ---- FIFO handoff ---- */

static int fifo_log[8];
static _Atomic int fifo_pos;

static void *lock_and_log(void *arg)
{
	UT_CHECK_EQ(sa_mutex_lock(&cmtx), 0);
	fifo_log[atomic_fetch_add(&fifo_pos, 1)] = (int)IP(arg);
	UT_CHECK_EQ(sa_mutex_unlock(&cmtx), 0);
	return NULL;
}

Test(mutex, handoff_in_arrival_order, .timeout = 10)
{
	enum { N = 5 };
	sa_uthread_t t[N];

	h_start(0);
	SA_OK(sa_mutex_init(&cmtx, SA_MUTEX_NORMAL));
	SA_OK(sa_mutex_lock(&cmtx));
	for (int i = 0; i < N; i++) {
		t[i] = h_spawn(lock_and_log, UP(i));
		SA_OK(sa_sleep_ns(15 * NSEC_PER_MSEC)); /* i now waits */
	}
	SA_OK(sa_mutex_unlock(&cmtx));
	for (int i = 0; i < N; i++)
		h_join(t[i]);
	assert_no_ut_failures();
	for (int i = 0; i < N; i++)
		cr_assert_eq(fifo_log[i], i, "waiter %d got the lock %dth",
			     fifo_log[i], i);
}

/* ---- trylock ---- */

Test(mutex, trylock_free_succeeds, .timeout = 10)
{
	sa_mutex_t m;

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_NORMAL));
	SA_OK(sa_mutex_trylock(&m));
	SA_OK(sa_mutex_unlock(&m));
}

Test(mutex, trylock_held_by_other_ebusy, .timeout = 10)
{
	static const int types[] = { SA_MUTEX_NORMAL, SA_MUTEX_RECURSIVE,
				     SA_MUTEX_ERRORCHECK };

	h_start(0);
	for (int i = 0; i < 3; i++) {
		sa_mutex_t m;
		struct holder h;
		sa_uthread_t t;

		SA_OK(sa_mutex_init(&m, types[i]));
		t = start_holder(&h, &m);
		SA_ERR(sa_mutex_trylock(&m), -EBUSY);
		stop_holder(&h, t);
		SA_OK(sa_mutex_trylock(&m));
		SA_OK(sa_mutex_unlock(&m));
	}
}

Test(mutex, trylock_by_owner_nonrecursive_ebusy, .timeout = 10)
{
	sa_mutex_t n, e;

	h_start(0);
	SA_OK(sa_mutex_init(&n, SA_MUTEX_NORMAL));
	SA_OK(sa_mutex_init(&e, SA_MUTEX_ERRORCHECK));
	SA_OK(sa_mutex_lock(&n));
	SA_OK(sa_mutex_lock(&e));
	SA_ERR(sa_mutex_trylock(&n), -EBUSY);
	SA_ERR(sa_mutex_trylock(&e), -EBUSY);
	SA_OK(sa_mutex_unlock(&n));
	SA_OK(sa_mutex_unlock(&e));
}

Test(mutex, trylock_by_owner_recursive_counts, .timeout = 10)
{
	sa_mutex_t m;
	struct holder h;
	sa_uthread_t t;

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_RECURSIVE));
	SA_OK(sa_mutex_lock(&m));
	SA_OK(sa_mutex_trylock(&m));
	SA_OK(sa_mutex_unlock(&m));
	/* still held once: another uthread must wait */
	h.m = &m;
	SA_OK(sa_sem_init(&h.locked, 0));
	SA_OK(sa_sem_init(&h.release, 1));
	t = h_spawn(hold_mutex, &h);
	SA_OK(sa_sleep_ns(20 * NSEC_PER_MSEC));
	SA_ERR(sa_sem_trywait(&h.locked), -EAGAIN);
	SA_OK(sa_mutex_unlock(&m));
	SA_OK(sa_sem_wait(&h.locked));
	h_join(t);
	assert_no_ut_failures();
}

/* ---- recursive ---- */

Test(mutex, recursive_needs_as_many_unlocks, .timeout = 10)
{
	sa_mutex_t m;
	struct holder h;
	sa_uthread_t t;

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_RECURSIVE));
	for (int i = 0; i < 3; i++)
		SA_OK(sa_mutex_lock(&m));
	for (int i = 0; i < 2; i++)
		SA_OK(sa_mutex_unlock(&m));
	h.m = &m;
	SA_OK(sa_sem_init(&h.locked, 0));
	SA_OK(sa_sem_init(&h.release, 1));
	t = h_spawn(hold_mutex, &h);
	SA_OK(sa_sleep_ns(20 * NSEC_PER_MSEC));
	SA_ERR(sa_sem_trywait(&h.locked), -EAGAIN); /* still held */
	SA_OK(sa_mutex_unlock(&m));
	SA_OK(sa_sem_wait(&h.locked));
	h_join(t);
	assert_no_ut_failures();
	SA_ERR(sa_mutex_unlock(&m), -EPERM);
}

/* ---- error checks ---- */

Test(mutex, errorcheck_relock_edeadlk, .timeout = 10)
{
	sa_mutex_t m;

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_ERRORCHECK));
	SA_OK(sa_mutex_lock(&m));
	SA_ERR(sa_mutex_lock(&m), -EDEADLK);
	SA_OK(sa_mutex_unlock(&m));
}

Test(mutex, errorcheck_timedlock_relock_edeadlk, .timeout = 10)
{
	sa_mutex_t m;
	struct timespec dl;

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_ERRORCHECK));
	SA_OK(sa_mutex_lock(&m));
	dl = h_deadline(CLOCK_MONOTONIC, 10 * NSEC_PER_MSEC);
	SA_ERR(sa_mutex_timedlock(&m, CLOCK_MONOTONIC, &dl), -EDEADLK);
	SA_OK(sa_mutex_unlock(&m));
}

static void unowned_unlock_eperm(int type)
{
	sa_mutex_t m;
	struct holder h;
	sa_uthread_t t;

	SA_OK(sa_mutex_init(&m, type));
	t = start_holder(&h, &m);
	SA_ERR(sa_mutex_unlock(&m), -EPERM);
	stop_holder(&h, t); /* the holder's own unlock still works */
}

Test(mutex, errorcheck_unlock_by_non_owner_eperm, .timeout = 10)
{
	h_start(0);
	unowned_unlock_eperm(SA_MUTEX_ERRORCHECK);
}

Test(mutex, recursive_unlock_by_non_owner_eperm, .timeout = 10)
{
	h_start(0);
	unowned_unlock_eperm(SA_MUTEX_RECURSIVE);
}

Test(mutex, unlock_of_unlocked_eperm_all_types, .timeout = 10)
{
	static const int types[] = { SA_MUTEX_NORMAL, SA_MUTEX_RECURSIVE,
				     SA_MUTEX_ERRORCHECK };

	h_start(0);
	for (int i = 0; i < 3; i++) {
		sa_mutex_t m;

		SA_OK(sa_mutex_init(&m, types[i]));
		SA_ERR(sa_mutex_unlock(&m), -EPERM);
		SA_OK(sa_mutex_lock(&m));
		SA_OK(sa_mutex_unlock(&m));
		SA_ERR(sa_mutex_unlock(&m), -EPERM);
	}
}

/* ---- destroy ---- */

Test(mutex, destroy_locked_ebusy, .timeout = 10)
{
	sa_mutex_t m;

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_NORMAL));
	SA_OK(sa_mutex_lock(&m));
	SA_ERR(sa_mutex_destroy(&m), -EBUSY);
	SA_OK(sa_mutex_unlock(&m));
	SA_OK(sa_mutex_destroy(&m));
}

Test(mutex, destroy_with_waiter_ebusy, .timeout = 10)
{
	sa_uthread_t t;

	h_start(0);
	SA_OK(sa_mutex_init(&cmtx, SA_MUTEX_NORMAL));
	SA_OK(sa_mutex_lock(&cmtx));
	t = h_spawn(lock_and_log, UP(0));
	SA_OK(sa_sleep_ns(20 * NSEC_PER_MSEC)); /* t waits */
	SA_ERR(sa_mutex_destroy(&cmtx), -EBUSY);
	SA_OK(sa_mutex_unlock(&cmtx));
	h_join(t);
	assert_no_ut_failures();
	SA_OK(sa_mutex_destroy(&cmtx));
}

/* ---- timedlock ---- */

static void timedlock_times_out(clockid_t clk)
{
	sa_mutex_t m;
	struct holder h;
	sa_uthread_t t;
	struct timespec dl;
	uint64_t t0;

	SA_OK(sa_mutex_init(&m, SA_MUTEX_NORMAL));
	t = start_holder(&h, &m);
	dl = h_deadline(clk, 40 * NSEC_PER_MSEC);
	t0 = h_mono();
	SA_ERR(sa_mutex_timedlock(&m, clk, &dl), -ETIMEDOUT);
	cr_assert_geq(h_now(clk), h_ts_ns(&dl), "timed out before the deadline");
	cr_assert_geq(h_mono() - t0, 30 * NSEC_PER_MSEC);
	stop_holder(&h, t);
	/* the failed wait left no trace: the mutex is free now */
	SA_OK(sa_mutex_trylock(&m));
	SA_OK(sa_mutex_unlock(&m));
	SA_OK(sa_mutex_destroy(&m));
}

Test(mutex, timedlock_times_out_monotonic, .timeout = 10)
{
	h_start(0);
	timedlock_times_out(CLOCK_MONOTONIC);
}

Test(mutex, timedlock_times_out_realtime, .timeout = 10)
{
	h_start(0);
	timedlock_times_out(CLOCK_REALTIME);
}

Test(mutex, timedlock_past_deadline_free_locks, .timeout = 10)
{
	sa_mutex_t m;
	struct timespec dl;

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_NORMAL));
	dl = h_deadline(CLOCK_MONOTONIC, -(int64_t)NSEC_PER_SEC_);
	SA_OK(sa_mutex_timedlock(&m, CLOCK_MONOTONIC, &dl));
	SA_OK(sa_mutex_unlock(&m));
}

Test(mutex, timedlock_past_deadline_held_times_out, .timeout = 10)
{
	sa_mutex_t m;
	struct holder h;
	sa_uthread_t t;
	struct timespec dl;
	uint64_t t0;

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_NORMAL));
	t = start_holder(&h, &m);
	dl = h_deadline(CLOCK_REALTIME, -(int64_t)NSEC_PER_SEC_);
	t0 = h_mono();
	SA_ERR(sa_mutex_timedlock(&m, CLOCK_REALTIME, &dl), -ETIMEDOUT);
	cr_assert_lt(h_mono() - t0, 500 * NSEC_PER_MSEC);
	stop_holder(&h, t);
}

static void *release_later(void *arg)
{
	sa_sleep_ns(20 * NSEC_PER_MSEC);
	UT_CHECK_EQ(sa_mutex_unlock(arg), -EPERM); /* not ours */
	return NULL;
}

Test(mutex, timedlock_gets_lock_released_before_deadline, .timeout = 10)
{
	sa_mutex_t m;
	struct holder h;
	sa_uthread_t t;
	struct timespec dl;

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_ERRORCHECK));
	t = start_holder(&h, &m);
	SA_OK(sa_sem_post(&h.release)); /* holder unlocks soon */
	dl = h_deadline(CLOCK_MONOTONIC, 5 * NSEC_PER_SEC_);
	SA_OK(sa_mutex_timedlock(&m, CLOCK_MONOTONIC, &dl));
	h_join(t);
	h_join(h_spawn(release_later, &m));
	assert_no_ut_failures();
	SA_OK(sa_mutex_unlock(&m)); /* we own it */
}

Test(mutex, timedlock_bad_clock_einval, .timeout = 10)
{
	sa_mutex_t m;
	struct holder h;
	sa_uthread_t t;
	struct timespec dl;

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_NORMAL));
	t = start_holder(&h, &m);
	dl = h_deadline(CLOCK_MONOTONIC, 10 * NSEC_PER_MSEC);
	SA_ERR(sa_mutex_timedlock(&m, CLOCK_THREAD_CPUTIME_ID, &dl), -EINVAL);
	stop_holder(&h, t);
}

Test(mutex, timedlock_bad_timespec_einval, .timeout = 10)
{
	sa_mutex_t m;
	struct holder h;
	sa_uthread_t t;
	struct timespec dl;

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_NORMAL));
	t = start_holder(&h, &m);
	dl = h_deadline(CLOCK_MONOTONIC, NSEC_PER_SEC_);
	dl.tv_nsec = 1000000000;
	SA_ERR(sa_mutex_timedlock(&m, CLOCK_MONOTONIC, &dl), -EINVAL);
	dl.tv_nsec = -5;
	SA_ERR(sa_mutex_timedlock(&m, CLOCK_MONOTONIC, &dl), -EINVAL);
	SA_ERR(sa_mutex_timedlock(&m, CLOCK_MONOTONIC, NULL), -EINVAL);
	stop_holder(&h, t);
}

/* ---- plain pthreads ---- */

static _Atomic int ext_state;

static void *ext_lock_unlock(void *arg)
{
	atomic_store(&ext_state, 1);
	UT_CHECK_EQ(sa_mutex_lock(arg), 0);
	atomic_store(&ext_state, 2);
	UT_CHECK_EQ(sa_mutex_unlock(arg), 0);
	return NULL;
}

Test(mutex, pthread_waits_for_uthread_owner, .timeout = 10)
{
	sa_mutex_t m;
	pthread_t p;

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_ERRORCHECK));
	SA_OK(sa_mutex_lock(&m));
	p = h_pthread(ext_lock_unlock, &m);
	while (atomic_load(&ext_state) == 0)
		SA_OK(sa_sleep_ns(NSEC_PER_MSEC));
	SA_OK(sa_sleep_ns(30 * NSEC_PER_MSEC));
	cr_assert_eq(atomic_load(&ext_state), 1, "pthread got a held mutex");
	SA_OK(sa_mutex_unlock(&m));
	h_pthread_join(p);
	assert_no_ut_failures();
	cr_assert_eq(atomic_load(&ext_state), 2);
}

static void *ext_hold(void *arg)
{
	UT_CHECK_EQ(sa_mutex_lock(arg), 0);
	atomic_store(&ext_state, 1);
	h_os_sleep_ns(40 * NSEC_PER_MSEC);
	atomic_store(&ext_state, 2);
	UT_CHECK_EQ(sa_mutex_unlock(arg), 0);
	return NULL;
}

Test(mutex, uthread_waits_for_pthread_owner, .timeout = 10)
{
	sa_mutex_t m;
	pthread_t p;

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_ERRORCHECK));
	p = h_pthread(ext_hold, &m);
	while (atomic_load(&ext_state) == 0)
		SA_OK(sa_sleep_ns(NSEC_PER_MSEC));
	SA_ERR(sa_mutex_trylock(&m), -EBUSY);
	SA_OK(sa_mutex_lock(&m));
	cr_assert_eq(atomic_load(&ext_state), 2, "locked while the pthread held it");
	SA_OK(sa_mutex_unlock(&m));
	h_pthread_join(p);
	assert_no_ut_failures();
}

static void *ext_increment(void *arg)
{
	(void)arg;
	for (int i = 0; i < EX_ITERS; i++) {
		UT_CHECK_EQ(sa_mutex_lock(&cmtx), 0);
		UT_CHECK_EQ(atomic_fetch_add(&inside, 1), 0);
		long c = counter;
		if (i % 7 == 0)
			sched_yield();
		counter = c + 1;
		atomic_fetch_sub(&inside, 1);
		UT_CHECK_EQ(sa_mutex_unlock(&cmtx), 0);
	}
	return NULL;
}

Test(mutex, pthreads_and_uthreads_exclude_each_other, .timeout = 20)
{
	enum { P = 3 };
	sa_uthread_t t[EX_N];
	pthread_t p[P];

	h_start(0);
	SA_OK(sa_mutex_init(&cmtx, SA_MUTEX_NORMAL));
	for (int i = 0; i < P; i++)
		p[i] = h_pthread(ext_increment, NULL);
	for (int i = 0; i < EX_N; i++)
		t[i] = h_spawn(increment, NULL);
	for (int i = 0; i < EX_N; i++)
		h_join(t[i]);
	for (int i = 0; i < P; i++)
		h_pthread_join(p[i]);
	assert_no_ut_failures();
	cr_assert_eq(counter, (long)(EX_N + P) * EX_ITERS);
}

/* ---- robust mutexes ---- */

/* A uthread or pthread that locks each of @n robust mutexes and ends
 * holding them. */
struct dier {
	sa_mutex_t *m[3];
	int n;
};

static void *lock_and_end(void *arg)
{
	struct dier *d = arg;

	for (int i = 0; i < d->n; i++)
		UT_CHECK_EQ(sa_mutex_lock(d->m[i]), 0);
	return NULL;
}

/* robust_orphan - init @m robust of @type; a uthread locks it and ends. */
static void robust_orphan(sa_mutex_t *m, int type)
{
	struct dier d = { { m }, 1 };

	SA_OK(sa_mutex_init(m, SA_MUTEX_ROBUST | type));
	h_join(h_spawn(lock_and_end, &d));
	assert_no_ut_failures();
}

Test(mutex, robust_init_each_type, .timeout = 10)
{
	sa_mutex_t m;

	SA_OK(sa_mutex_init(&m, SA_MUTEX_ROBUST | SA_MUTEX_NORMAL));
	SA_OK(sa_mutex_init(&m, SA_MUTEX_ROBUST | SA_MUTEX_RECURSIVE));
	SA_OK(sa_mutex_init(&m, SA_MUTEX_ROBUST | SA_MUTEX_ERRORCHECK));
	SA_ERR(sa_mutex_init(&m, SA_MUTEX_ROBUST | 3), -EINVAL);
	SA_ERR(sa_mutex_init(&m, SA_MUTEX_ROBUST | 0x20), -EINVAL);
}

Test(mutex, robust_uncontended_lock_unlock, .timeout = 10)
{
	sa_mutex_t m;

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_ROBUST));
	for (int i = 0; i < 1000; i++) {
		SA_OK(sa_mutex_lock(&m));
		SA_OK(sa_mutex_unlock(&m));
	}
	SA_OK(sa_mutex_destroy(&m));
}

Test(mutex, robust_owner_end_next_lock_eownerdead, .timeout = 10)
{
	sa_mutex_t m;

	h_start(0);
	robust_orphan(&m, SA_MUTEX_NORMAL);
	SA_ERR(sa_mutex_lock(&m), -EOWNERDEAD);
	SA_ERR(sa_mutex_trylock(&m), -EBUSY); /* the caller owns it now */
	SA_OK(sa_mutex_consistent(&m));
	SA_OK(sa_mutex_unlock(&m));
	SA_OK(sa_mutex_lock(&m));
	SA_OK(sa_mutex_unlock(&m));
	SA_OK(sa_mutex_destroy(&m));
}

Test(mutex, robust_owner_end_trylock_eownerdead, .timeout = 10)
{
	sa_mutex_t m;

	h_start(0);
	robust_orphan(&m, SA_MUTEX_ERRORCHECK);
	SA_ERR(sa_mutex_trylock(&m), -EOWNERDEAD);
	SA_OK(sa_mutex_consistent(&m));
	SA_OK(sa_mutex_unlock(&m));
}

Test(mutex, robust_owner_end_timedlock_eownerdead, .timeout = 10)
{
	sa_mutex_t m;
	struct timespec dl;

	h_start(0);
	robust_orphan(&m, SA_MUTEX_RECURSIVE);
	dl = h_deadline(CLOCK_MONOTONIC, 100 * NSEC_PER_MSEC);
	SA_ERR(sa_mutex_timedlock(&m, CLOCK_MONOTONIC, &dl), -EOWNERDEAD);
	SA_OK(sa_mutex_consistent(&m));
	SA_OK(sa_mutex_unlock(&m));
}

/* A waiter parked while the owner ends is handed the mutex, dead owner
 * and all. */
struct robust_waiter {
	sa_mutex_t *m;
	_Atomic int started;
	int rc;
};

static void *robust_wait_lock(void *arg)
{
	struct robust_waiter *w = arg;

	atomic_store(&w->started, 1);
	w->rc = sa_mutex_lock(w->m);
	if (w->rc == -EOWNERDEAD) {
		UT_CHECK_EQ(sa_mutex_consistent(w->m), 0);
		UT_CHECK_EQ(sa_mutex_unlock(w->m), 0);
	}
	return NULL;
}

static _Atomic int release_holder;

static void *lock_wait_end(void *arg)
{
	UT_CHECK_EQ(sa_mutex_lock(arg), 0);
	while (!atomic_load(&release_holder))
		sa_sleep_ns(NSEC_PER_MSEC);
	return NULL;
}

Test(mutex, robust_owner_end_wakes_waiter_eownerdead, .timeout = 10)
{
	struct robust_waiter w = { 0 };
	sa_uthread_t holder, waiter;
	sa_mutex_t m;

	h_start(1);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_ROBUST));
	w.m = &m;
	holder = h_spawn(lock_wait_end, &m);
	SA_OK(sa_sleep_ns(5 * NSEC_PER_MSEC));
	waiter = h_spawn(robust_wait_lock, &w);
	while (!atomic_load(&w.started))
		SA_OK(sa_sleep_ns(NSEC_PER_MSEC));
	SA_OK(sa_sleep_ns(5 * NSEC_PER_MSEC)); /* it is parked on m */
	atomic_store(&release_holder, 1);
	h_join(holder);
	h_join(waiter);
	assert_no_ut_failures();
	cr_assert_eq(w.rc, -EOWNERDEAD);
	SA_OK(sa_mutex_lock(&m)); /* made consistent by the waiter */
	SA_OK(sa_mutex_unlock(&m));
}

Test(mutex, robust_pthread_owner_end_eownerdead, .timeout = 10)
{
	struct dier d;
	sa_mutex_t m;

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_ROBUST));
	d = (struct dier){ { &m }, 1 };
	h_pthread_join(h_pthread(lock_and_end, &d));
	assert_no_ut_failures();
	SA_ERR(sa_mutex_lock(&m), -EOWNERDEAD);
	SA_OK(sa_mutex_consistent(&m));
	SA_OK(sa_mutex_unlock(&m));
}

Test(mutex, robust_every_held_mutex_released_at_end, .timeout = 10)
{
	sa_mutex_t m[3];
	struct dier d = { { &m[0], &m[1], &m[2] }, 3 };

	h_start(0);
	for (int i = 0; i < 3; i++)
		SA_OK(sa_mutex_init(&m[i], SA_MUTEX_ROBUST));
	h_join(h_spawn(lock_and_end, &d));
	assert_no_ut_failures();
	for (int i = 0; i < 3; i++) {
		SA_ERR(sa_mutex_lock(&m[i]), -EOWNERDEAD);
		SA_OK(sa_mutex_consistent(&m[i]));
		SA_OK(sa_mutex_unlock(&m[i]));
	}
}

Test(mutex, robust_unlocked_mutex_not_reported_at_end, .timeout = 10)
{
	sa_mutex_t m[2];
	struct dier d = { { &m[0], &m[1] }, 2 };

	h_start(0);
	SA_OK(sa_mutex_init(&m[0], SA_MUTEX_ROBUST));
	SA_OK(sa_mutex_init(&m[1], SA_MUTEX_ROBUST));
	d.n = 1;
	h_join(h_spawn(lock_and_end, &d)); /* ends holding m[0] only */
	SA_OK(sa_mutex_lock(&m[1]));
	SA_OK(sa_mutex_unlock(&m[1]));
	SA_ERR(sa_mutex_lock(&m[0]), -EOWNERDEAD);
	SA_OK(sa_mutex_consistent(&m[0]));
	SA_OK(sa_mutex_unlock(&m[0]));
	assert_no_ut_failures();
}

Test(mutex, robust_unlock_inconsistent_notrecoverable, .timeout = 10)
{
	sa_mutex_t m;
	struct timespec dl;

	h_start(0);
	robust_orphan(&m, SA_MUTEX_NORMAL);
	SA_ERR(sa_mutex_lock(&m), -EOWNERDEAD);
	SA_OK(sa_mutex_unlock(&m));
	dl = h_deadline(CLOCK_MONOTONIC, NSEC_PER_MSEC);
	SA_ERR(sa_mutex_lock(&m), -ENOTRECOVERABLE);
	SA_ERR(sa_mutex_trylock(&m), -ENOTRECOVERABLE);
	SA_ERR(sa_mutex_timedlock(&m, CLOCK_MONOTONIC, &dl), -ENOTRECOVERABLE);
	SA_ERR(sa_mutex_unlock(&m), -EPERM);
	SA_OK(sa_mutex_destroy(&m));
}

Test(mutex, robust_notrecoverable_wakes_every_waiter, .timeout = 10)
{
	struct robust_waiter w[2] = { { 0 }, { 0 } };
	sa_uthread_t t[2];
	sa_mutex_t m;

	h_start(1);
	robust_orphan(&m, SA_MUTEX_NORMAL);
	SA_ERR(sa_mutex_lock(&m), -EOWNERDEAD);
	for (int i = 0; i < 2; i++) {
		w[i].m = &m;
		t[i] = h_spawn(robust_wait_lock, &w[i]);
	}
	while (!atomic_load(&w[0].started) || !atomic_load(&w[1].started))
		SA_OK(sa_sleep_ns(NSEC_PER_MSEC));
	SA_OK(sa_sleep_ns(5 * NSEC_PER_MSEC)); /* both are parked on m */
	SA_OK(sa_mutex_unlock(&m));
	for (int i = 0; i < 2; i++) {
		h_join(t[i]);
		cr_assert_eq(w[i].rc, -ENOTRECOVERABLE, "waiter %d got %d", i, w[i].rc);
	}
	assert_no_ut_failures();
}

Test(mutex, robust_consistent_on_consistent_einval, .timeout = 10)
{
	sa_mutex_t m;

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_ROBUST));
	SA_ERR(sa_mutex_consistent(&m), -EINVAL);
	SA_OK(sa_mutex_lock(&m));
	SA_ERR(sa_mutex_consistent(&m), -EINVAL);
	SA_OK(sa_mutex_unlock(&m));
}

Test(mutex, robust_consistent_twice_einval, .timeout = 10)
{
	sa_mutex_t m;

	h_start(0);
	robust_orphan(&m, SA_MUTEX_NORMAL);
	SA_ERR(sa_mutex_lock(&m), -EOWNERDEAD);
	SA_OK(sa_mutex_consistent(&m));
	SA_ERR(sa_mutex_consistent(&m), -EINVAL);
	SA_OK(sa_mutex_unlock(&m));
}

Test(mutex, robust_consistent_on_non_robust_einval, .timeout = 10)
{
	sa_mutex_t m = SA_MUTEX_INITIALIZER;

	h_start(0);
	SA_ERR(sa_mutex_consistent(NULL), -EINVAL);
	SA_ERR(sa_mutex_consistent(&m), -EINVAL);
	SA_OK(sa_mutex_lock(&m));
	SA_ERR(sa_mutex_consistent(&m), -EINVAL);
	SA_OK(sa_mutex_unlock(&m));
}

static void *consistent_einval(void *arg)
{
	UT_CHECK_EQ(sa_mutex_consistent(arg), -EINVAL);
	return NULL;
}

Test(mutex, robust_consistent_by_non_owner_einval, .timeout = 10)
{
	sa_mutex_t m;

	h_start(0);
	robust_orphan(&m, SA_MUTEX_NORMAL);
	SA_ERR(sa_mutex_lock(&m), -EOWNERDEAD);
	h_join(h_spawn(consistent_einval, &m));
	assert_no_ut_failures();
	SA_OK(sa_mutex_consistent(&m));
	SA_OK(sa_mutex_unlock(&m));
}

static void *unlock_eperm(void *arg)
{
	UT_CHECK_EQ(sa_mutex_unlock(arg), -EPERM);
	return NULL;
}

Test(mutex, robust_normal_unlock_by_non_owner_eperm, .timeout = 10)
{
	sa_mutex_t m;

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_ROBUST | SA_MUTEX_NORMAL));
	SA_OK(sa_mutex_lock(&m));
	h_join(h_spawn(unlock_eperm, &m));
	assert_no_ut_failures();
	SA_OK(sa_mutex_unlock(&m));
}

Test(mutex, robust_recursive_counts_and_reports_once, .timeout = 10)
{
	sa_mutex_t m;

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_ROBUST | SA_MUTEX_RECURSIVE));
	SA_OK(sa_mutex_lock(&m));
	SA_OK(sa_mutex_lock(&m));
	SA_OK(sa_mutex_trylock(&m));
	SA_OK(sa_mutex_unlock(&m));
	SA_OK(sa_mutex_unlock(&m));
	SA_OK(sa_mutex_unlock(&m));
	SA_ERR(sa_mutex_unlock(&m), -EPERM);
	SA_OK(sa_mutex_destroy(&m));
}

Test(mutex, robust_errorcheck_relock_edeadlk, .timeout = 10)
{
	sa_mutex_t m;

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_ROBUST | SA_MUTEX_ERRORCHECK));
	SA_OK(sa_mutex_lock(&m));
	SA_ERR(sa_mutex_lock(&m), -EDEADLK);
	SA_ERR(sa_mutex_trylock(&m), -EBUSY);
	SA_OK(sa_mutex_unlock(&m));
}

Test(mutex, robust_timedlock_times_out, .timeout = 10)
{
	struct holder h;
	sa_uthread_t t;
	struct timespec dl;
	sa_mutex_t m;

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_ROBUST));
	t = start_holder(&h, &m);
	dl = h_deadline(CLOCK_MONOTONIC, 20 * NSEC_PER_MSEC);
	SA_ERR(sa_mutex_timedlock(&m, CLOCK_MONOTONIC, &dl), -ETIMEDOUT);
	stop_holder(&h, t);
	SA_OK(sa_mutex_lock(&m));
	SA_OK(sa_mutex_unlock(&m));
}

static sa_mutex_t rmtx;
static long rcounter;

static void *robust_increment(void *arg)
{
	(void)arg;
	for (int i = 0; i < 2000; i++) {
		UT_CHECK_EQ(sa_mutex_lock(&rmtx), 0);
		long c = rcounter;
		if (i % 13 == 0)
			sa_yield();
		rcounter = c + 1;
		UT_CHECK_EQ(sa_mutex_unlock(&rmtx), 0);
	}
	return NULL;
}

Test(mutex, robust_mutual_exclusion, .timeout = 20)
{
	sa_uthread_t t[8];

	h_start(0);
	SA_OK(sa_mutex_init(&rmtx, SA_MUTEX_ROBUST));
	for (int i = 0; i < 8; i++)
		t[i] = h_spawn(robust_increment, NULL);
	for (int i = 0; i < 8; i++)
		h_join(t[i]);
	assert_no_ut_failures();
	cr_assert_eq(rcounter, 8L * 2000);
}

/* A condition wait relocks a robust mutex whose owner ended meanwhile. */
static sa_cond_t rcond;
static _Atomic int rcond_waiting;

static void *signal_and_end(void *arg)
{
	UT_CHECK_EQ(sa_mutex_lock(arg), 0);
	UT_CHECK_EQ(sa_cond_signal(&rcond), 0);
	return NULL; /* ends holding the mutex */
}

static void *cond_wait_robust(void *arg)
{
	int r;

	UT_CHECK_EQ(sa_mutex_lock(arg), 0);
	atomic_store(&rcond_waiting, 1);
	r = sa_cond_wait(&rcond, arg);
	UT_CHECK_EQ(r, -EOWNERDEAD);
	if (r == -EOWNERDEAD)
		UT_CHECK_EQ(sa_mutex_consistent(arg), 0);
	UT_CHECK_EQ(sa_mutex_unlock(arg), 0);
	return NULL;
}

Test(mutex, robust_cond_wait_relock_eownerdead, .timeout = 10)
{
	sa_uthread_t w;
	sa_mutex_t m;

	h_start(1);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_ROBUST));
	SA_OK(sa_cond_init(&rcond, CLOCK_MONOTONIC));
	w = h_spawn(cond_wait_robust, &m);
	while (!atomic_load(&rcond_waiting))
		SA_OK(sa_sleep_ns(NSEC_PER_MSEC));
	h_join(h_spawn(signal_and_end, &m));
	h_join(w);
	assert_no_ut_failures();
}
