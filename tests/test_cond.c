/* test_cond.c - condition variables: signal, broadcast, timed waits, errors */
#include "helpers.h"

static sa_mutex_t m;
static sa_cond_t c;
static int ready;              /* under m */
static _Atomic int waiting;    /* uthreads inside the wait */
static _Atomic int woken;

Test(cond, init_null_einval, .timeout = 10)
{
	SA_ERR(sa_cond_init(NULL, CLOCK_MONOTONIC), -EINVAL);
}

Test(cond, init_bad_clock_einval, .timeout = 10)
{
	sa_cond_t cv;

	SA_ERR(sa_cond_init(&cv, CLOCK_PROCESS_CPUTIME_ID), -EINVAL);
	SA_ERR(sa_cond_init(&cv, CLOCK_BOOTTIME), -EINVAL);
	SA_OK(sa_cond_init(&cv, CLOCK_REALTIME));
	SA_OK(sa_cond_init(&cv, CLOCK_MONOTONIC));
}

Test(cond, zeroed_object_einval, .timeout = 10)
{
	sa_cond_t cv;
	sa_mutex_t mx = SA_MUTEX_INITIALIZER;
	struct timespec dl;

	h_start(0);
	memset(&cv, 0, sizeof(cv));
	SA_ERR(sa_cond_signal(&cv), -EINVAL);
	SA_ERR(sa_cond_broadcast(&cv), -EINVAL);
	SA_ERR(sa_cond_destroy(&cv), -EINVAL);
	SA_OK(sa_mutex_lock(&mx));
	SA_ERR(sa_cond_wait(&cv, &mx), -EINVAL);
	dl = h_deadline(CLOCK_REALTIME, NSEC_PER_MSEC);
	SA_ERR(sa_cond_timedwait(&cv, &mx, &dl), -EINVAL);
	SA_OK(sa_mutex_unlock(&mx));
}

Test(cond, wait_with_zeroed_mutex_einval, .timeout = 10)
{
	sa_cond_t cv = SA_COND_INITIALIZER;
	sa_mutex_t mx;

	h_start(0);
	memset(&mx, 0, sizeof(mx));
	SA_ERR(sa_cond_wait(&cv, &mx), -EINVAL);
}

Test(cond, destroyed_object_einval, .timeout = 10)
{
	sa_cond_t cv;

	h_start(0);
	SA_OK(sa_cond_init(&cv, CLOCK_MONOTONIC));
	SA_OK(sa_cond_destroy(&cv));
	SA_ERR(sa_cond_signal(&cv), -EINVAL);
	SA_ERR(sa_cond_destroy(&cv), -EINVAL);
}

static void *wait_ready(void *arg)
{
	(void)arg;
	UT_CHECK_EQ(sa_mutex_lock(&m), 0);
	atomic_fetch_add(&waiting, 1);
	while (!ready)
		UT_CHECK_EQ(sa_cond_wait(&c, &m), 0);
	atomic_fetch_add(&woken, 1);
	UT_CHECK_EQ(sa_mutex_unlock(&m), 0);
	return NULL;
}

static void set_ready_and(int (*wake)(sa_cond_t *))
{
	SA_OK(sa_mutex_lock(&m));
	ready = 1;
	SA_OK(wake(&c));
	SA_OK(sa_mutex_unlock(&m));
}

Test(cond, static_initializers_work, .timeout = 10)
{
	sa_mutex_t mi = SA_MUTEX_INITIALIZER;
	sa_cond_t ci = SA_COND_INITIALIZER;
	sa_uthread_t t;

	h_start(0);
	m = mi;
	c = ci;
	t = h_spawn(wait_ready, NULL);
	SA_OK(sa_sleep_ns(10 * NSEC_PER_MSEC));
	set_ready_and(sa_cond_signal);
	h_join(t);
	assert_no_ut_failures();
	cr_assert_eq(atomic_load(&woken), 1);
}

Test(cond, signal_wakes_a_waiter, .timeout = 10)
{
	sa_uthread_t t;

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_NORMAL));
	SA_OK(sa_cond_init(&c, CLOCK_MONOTONIC));
	t = h_spawn(wait_ready, NULL);
	cr_assert(h_wait_atomic_ge(&waiting, 1, 5 * NSEC_PER_SEC_));
	SA_OK(sa_sleep_ns(10 * NSEC_PER_MSEC));
	cr_assert_eq(atomic_load(&woken), 0);
	set_ready_and(sa_cond_signal);
	h_join(t);
	assert_no_ut_failures();
	cr_assert_eq(atomic_load(&woken), 1);
}

Test(cond, signal_without_waiters_is_noop, .timeout = 10)
{
	h_start(0);
	SA_OK(sa_cond_init(&c, CLOCK_MONOTONIC));
	SA_OK(sa_cond_signal(&c));
	SA_OK(sa_cond_broadcast(&c));
	SA_OK(sa_cond_destroy(&c));
}

static void *wait_once(void *arg)
{
	(void)arg;
	UT_CHECK_EQ(sa_mutex_lock(&m), 0);
	atomic_fetch_add(&waiting, 1);
	UT_CHECK_EQ(sa_cond_wait(&c, &m), 0);
	atomic_fetch_add(&woken, 1);
	UT_CHECK_EQ(sa_mutex_unlock(&m), 0);
	return NULL;
}

Test(cond, signal_wakes_only_one, .timeout = 10)
{
	enum { N = 8 };
	sa_uthread_t t[N];

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_NORMAL));
	SA_OK(sa_cond_init(&c, CLOCK_MONOTONIC));
	for (int i = 0; i < N; i++)
		t[i] = h_spawn(wait_once, NULL);
	cr_assert(h_wait_atomic_ge(&waiting, N, 5 * NSEC_PER_SEC_));
	SA_OK(sa_mutex_lock(&m)); /* all N are inside sa_cond_wait now */
	SA_OK(sa_cond_signal(&c));
	SA_OK(sa_mutex_unlock(&m));
	SA_OK(sa_sleep_ns(30 * NSEC_PER_MSEC));
	cr_assert_eq(atomic_load(&woken), 1, "one signal woke %d waiters",
		     atomic_load(&woken));
	SA_OK(sa_cond_broadcast(&c));
	for (int i = 0; i < N; i++)
		h_join(t[i]);
	assert_no_ut_failures();
	cr_assert_eq(atomic_load(&woken), N);
}

Test(cond, broadcast_wakes_all, .timeout = 10)
{
	enum { N = 100 };
	sa_uthread_t t[N];

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_NORMAL));
	SA_OK(sa_cond_init(&c, CLOCK_REALTIME));
	for (int i = 0; i < N; i++)
		t[i] = h_spawn(wait_ready, NULL);
	cr_assert(h_wait_atomic_ge(&waiting, N, 5 * NSEC_PER_SEC_));
	set_ready_and(sa_cond_broadcast);
	for (int i = 0; i < N; i++)
		h_join(t[i]);
	assert_no_ut_failures();
	cr_assert_eq(atomic_load(&woken), N);
}

Test(cond, each_signal_wakes_one_more, .timeout = 10)
{
	enum { N = 4 };
	sa_uthread_t t[N];

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_NORMAL));
	SA_OK(sa_cond_init(&c, CLOCK_MONOTONIC));
	for (int i = 0; i < N; i++) {
		t[i] = h_spawn(wait_once, NULL);
		cr_assert(h_wait_atomic_ge(&waiting, i + 1, 5 * NSEC_PER_SEC_));
	}
	for (int i = 0; i < N; i++) {
		SA_OK(sa_mutex_lock(&m));
		SA_OK(sa_cond_signal(&c));
		SA_OK(sa_mutex_unlock(&m));
		cr_assert(h_wait_atomic_ge(&woken, i + 1, 5 * NSEC_PER_SEC_),
			  "signal %d woke nobody", i);
	}
	for (int i = 0; i < N; i++)
		h_join(t[i]);
	assert_no_ut_failures();
}

/* ---- timed waits ---- */

static void check_timeout_relocks(sa_cond_t *cv, clockid_t clk, bool clockwait)
{
	sa_mutex_t mx;
	struct timespec dl;
	uint64_t t0;
	int r;

	SA_OK(sa_mutex_init(&mx, SA_MUTEX_ERRORCHECK));
	SA_OK(sa_mutex_lock(&mx));
	dl = h_deadline(clk, 40 * NSEC_PER_MSEC);
	t0 = h_mono();
	if (clockwait)
		r = sa_cond_clockwait(cv, &mx, clk, &dl);
	else
		r = sa_cond_timedwait(cv, &mx, &dl);
	cr_assert_eq(r, -ETIMEDOUT, "timed wait returned %d", r);
	cr_assert_geq(h_now(clk), h_ts_ns(&dl), "timed out before the deadline");
	cr_assert_geq(h_mono() - t0, 30 * NSEC_PER_MSEC);
	/* the mutex is ours again: errorcheck relock says so */
	SA_ERR(sa_mutex_trylock(&mx), -EBUSY);
	SA_ERR(sa_mutex_lock(&mx), -EDEADLK);
	SA_OK(sa_mutex_unlock(&mx));
	SA_OK(sa_mutex_destroy(&mx));
}

Test(cond, timedwait_monotonic_times_out_relocked, .timeout = 10)
{
	sa_cond_t cv;

	h_start(0);
	SA_OK(sa_cond_init(&cv, CLOCK_MONOTONIC));
	check_timeout_relocks(&cv, CLOCK_MONOTONIC, false);
}

Test(cond, timedwait_realtime_times_out_relocked, .timeout = 10)
{
	sa_cond_t cv = SA_COND_INITIALIZER;

	h_start(0);
	check_timeout_relocks(&cv, CLOCK_REALTIME, false);
}

Test(cond, clockwait_monotonic_times_out_relocked, .timeout = 10)
{
	sa_cond_t cv = SA_COND_INITIALIZER; /* REALTIME cond, MONOTONIC wait */

	h_start(0);
	check_timeout_relocks(&cv, CLOCK_MONOTONIC, true);
}

Test(cond, clockwait_realtime_times_out_relocked, .timeout = 10)
{
	sa_cond_t cv;

	h_start(0);
	SA_OK(sa_cond_init(&cv, CLOCK_MONOTONIC));
	check_timeout_relocks(&cv, CLOCK_REALTIME, true);
}

Test(cond, timedwait_past_deadline_times_out, .timeout = 10)
{
	sa_cond_t cv;
	sa_mutex_t mx = SA_MUTEX_ERRORCHECK_INITIALIZER;
	struct timespec dl;

	h_start(0);
	SA_OK(sa_cond_init(&cv, CLOCK_MONOTONIC));
	SA_OK(sa_mutex_lock(&mx));
	dl = h_deadline(CLOCK_MONOTONIC, -(int64_t)NSEC_PER_SEC_);
	SA_ERR(sa_cond_timedwait(&cv, &mx, &dl), -ETIMEDOUT);
	SA_OK(sa_mutex_unlock(&mx));
}

Test(cond, clockwait_bad_clock_einval, .timeout = 10)
{
	sa_cond_t cv = SA_COND_INITIALIZER;
	sa_mutex_t mx = SA_MUTEX_INITIALIZER;
	struct timespec dl;

	h_start(0);
	SA_OK(sa_mutex_lock(&mx));
	dl = h_deadline(CLOCK_MONOTONIC, 10 * NSEC_PER_MSEC);
	SA_ERR(sa_cond_clockwait(&cv, &mx, CLOCK_PROCESS_CPUTIME_ID, &dl), -EINVAL);
	SA_OK(sa_mutex_unlock(&mx));
}

Test(cond, timedwait_bad_timespec_einval, .timeout = 10)
{
	sa_cond_t cv = SA_COND_INITIALIZER;
	sa_mutex_t mx = SA_MUTEX_INITIALIZER;
	struct timespec dl;

	h_start(0);
	SA_OK(sa_mutex_lock(&mx));
	dl = h_deadline(CLOCK_REALTIME, NSEC_PER_SEC_);
	dl.tv_nsec = 1000000000;
	SA_ERR(sa_cond_timedwait(&cv, &mx, &dl), -EINVAL);
	SA_ERR(sa_cond_timedwait(&cv, &mx, NULL), -EINVAL);
	SA_OK(sa_mutex_unlock(&mx));
}

static void *timed_wait_ready(void *arg)
{
	struct timespec dl = h_deadline(CLOCK_MONOTONIC, 5 * NSEC_PER_SEC_);
	int r = 0;

	(void)arg;
	UT_CHECK_EQ(sa_mutex_lock(&m), 0);
	atomic_fetch_add(&waiting, 1);
	while (!ready && r == 0)
		r = sa_cond_clockwait(&c, &m, CLOCK_MONOTONIC, &dl);
	UT_CHECK_EQ(r, 0);
	atomic_fetch_add(&woken, 1);
	UT_CHECK_EQ(sa_mutex_unlock(&m), 0);
	return NULL;
}

Test(cond, timedwait_signalled_before_deadline_returns_zero, .timeout = 10)
{
	sa_uthread_t t;

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_NORMAL));
	SA_OK(sa_cond_init(&c, CLOCK_MONOTONIC));
	t = h_spawn(timed_wait_ready, NULL);
	cr_assert(h_wait_atomic_ge(&waiting, 1, 5 * NSEC_PER_SEC_));
	SA_OK(sa_sleep_ns(10 * NSEC_PER_MSEC));
	set_ready_and(sa_cond_signal);
	h_join(t);
	assert_no_ut_failures();
	cr_assert_eq(atomic_load(&woken), 1);
}

/* ---- ownership ---- */

Test(cond, wait_unowned_errorcheck_eperm, .timeout = 10)
{
	sa_cond_t cv = SA_COND_INITIALIZER;
	sa_mutex_t mx = SA_MUTEX_ERRORCHECK_INITIALIZER;

	h_start(0);
	SA_ERR(sa_cond_wait(&cv, &mx), -EPERM);
}

Test(cond, wait_unlocked_normal_mutex_eperm, .timeout = 10)
{
	sa_cond_t cv = SA_COND_INITIALIZER;
	sa_mutex_t mx = SA_MUTEX_INITIALIZER;

	h_start(0);
	SA_ERR(sa_cond_wait(&cv, &mx), -EPERM);
}

static sa_sem_t hold_go;

static void *hold_m(void *arg)
{
	UT_CHECK_EQ(sa_mutex_lock(arg), 0);
	atomic_store(&waiting, 1);
	sa_sem_wait(&hold_go);
	UT_CHECK_EQ(sa_mutex_unlock(arg), 0);
	return NULL;
}

Test(cond, wait_mutex_of_other_owner_eperm, .timeout = 10)
{
	static const int types[] = { SA_MUTEX_ERRORCHECK, SA_MUTEX_RECURSIVE };
	sa_cond_t cv = SA_COND_INITIALIZER;

	h_start(0);
	for (int i = 0; i < 2; i++) {
		sa_mutex_t mx;
		sa_uthread_t t;
		struct timespec dl = h_deadline(CLOCK_REALTIME, 20 * NSEC_PER_MSEC);

		atomic_store(&waiting, 0);
		SA_OK(sa_sem_init(&hold_go, 0));
		SA_OK(sa_mutex_init(&mx, types[i]));
		t = h_spawn(hold_m, &mx);
		cr_assert(h_wait_atomic_ge(&waiting, 1, 5 * NSEC_PER_SEC_));
		SA_ERR(sa_cond_wait(&cv, &mx), -EPERM);
		SA_ERR(sa_cond_timedwait(&cv, &mx, &dl), -EPERM);
		SA_OK(sa_sem_post(&hold_go));
		h_join(t);
	}
	assert_no_ut_failures();
}

/* ---- destroy ---- */

Test(cond, destroy_with_waiter_ebusy, .timeout = 10)
{
	sa_uthread_t t;

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_NORMAL));
	SA_OK(sa_cond_init(&c, CLOCK_MONOTONIC));
	t = h_spawn(wait_ready, NULL);
	cr_assert(h_wait_atomic_ge(&waiting, 1, 5 * NSEC_PER_SEC_));
	SA_OK(sa_mutex_lock(&m)); /* the waiter is inside sa_cond_wait */
	SA_ERR(sa_cond_destroy(&c), -EBUSY);
	ready = 1;
	SA_OK(sa_cond_signal(&c));
	SA_OK(sa_mutex_unlock(&m));
	h_join(t);
	assert_no_ut_failures();
	SA_OK(sa_cond_destroy(&c));
}

/* ---- plain pthreads ---- */

static void *ext_set_ready(void *arg)
{
	(void)arg;
	h_os_sleep_ns(20 * NSEC_PER_MSEC);
	UT_CHECK_EQ(sa_mutex_lock(&m), 0);
	ready = 1;
	UT_CHECK_EQ(sa_cond_broadcast(&c), 0);
	UT_CHECK_EQ(sa_mutex_unlock(&m), 0);
	return NULL;
}

Test(cond, pthread_signals_waiting_uthreads, .timeout = 10)
{
	enum { N = 10 };
	sa_uthread_t t[N];
	pthread_t p;

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_NORMAL));
	SA_OK(sa_cond_init(&c, CLOCK_MONOTONIC));
	for (int i = 0; i < N; i++)
		t[i] = h_spawn(wait_ready, NULL);
	p = h_pthread(ext_set_ready, NULL);
	for (int i = 0; i < N; i++)
		h_join(t[i]);
	h_pthread_join(p);
	assert_no_ut_failures();
	cr_assert_eq(atomic_load(&woken), N);
}

Test(cond, pthread_waits_uthread_signals, .timeout = 10)
{
	pthread_t p;

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_NORMAL));
	SA_OK(sa_cond_init(&c, CLOCK_MONOTONIC));
	p = h_pthread(wait_ready, NULL);
	cr_assert(h_wait_atomic_ge(&waiting, 1, 5 * NSEC_PER_SEC_));
	SA_OK(sa_sleep_ns(20 * NSEC_PER_MSEC));
	cr_assert_eq(atomic_load(&woken), 0);
	set_ready_and(sa_cond_signal);
	h_pthread_join(p);
	assert_no_ut_failures();
	cr_assert_eq(atomic_load(&woken), 1);
}

static void *ext_timed_wait(void *arg)
{
	sa_mutex_t mx = SA_MUTEX_ERRORCHECK_INITIALIZER;
	sa_cond_t cv = SA_COND_INITIALIZER;
	struct timespec dl = h_deadline(CLOCK_REALTIME, 30 * NSEC_PER_MSEC);

	(void)arg;
	UT_CHECK_EQ(sa_mutex_lock(&mx), 0);
	UT_CHECK_EQ(sa_cond_timedwait(&cv, &mx, &dl), -ETIMEDOUT);
	UT_CHECK(h_now(CLOCK_REALTIME) >= h_ts_ns(&dl));
	UT_CHECK_EQ(sa_mutex_unlock(&mx), 0);
	return NULL;
}

Test(cond, pthread_timedwait_times_out, .timeout = 10)
{
	h_start(0);
	h_pthread_join(h_pthread(ext_timed_wait, NULL));
	assert_no_ut_failures();
}

/* ---- producer / consumer across VPs ---- */

enum { Q_CAP = 16, ITEMS = 20000, PRODUCERS = 4, CONSUMERS = 4 };
static long q_buf[Q_CAP];
static int q_head, q_len;
static sa_cond_t not_full, not_empty;
static long consumed_sum;
static int consumed_n;

static void *producer(void *arg)
{
	long base = (long)IP(arg) * (ITEMS / PRODUCERS);

	for (long i = 0; i < ITEMS / PRODUCERS; i++) {
		sa_mutex_lock(&m);
		while (q_len == Q_CAP)
			sa_cond_wait(&not_full, &m);
		q_buf[(q_head + q_len++) % Q_CAP] = base + i + 1;
		sa_cond_signal(&not_empty);
		sa_mutex_unlock(&m);
	}
	return NULL;
}

static void *consumer(void *arg)
{
	(void)arg;
	for (;;) {
		sa_mutex_lock(&m);
		while (q_len == 0 && consumed_n < ITEMS)
			sa_cond_wait(&not_empty, &m);
		if (q_len == 0) {
			sa_mutex_unlock(&m);
			return NULL;
		}
		consumed_sum += q_buf[q_head];
		q_head = (q_head + 1) % Q_CAP;
		q_len--;
		if (++consumed_n == ITEMS)
			sa_cond_broadcast(&not_empty);
		sa_cond_signal(&not_full);
		sa_mutex_unlock(&m);
	}
}

Test(cond, producer_consumer_no_lost_wakeup, .timeout = 30)
{
	sa_uthread_t p[PRODUCERS], q[CONSUMERS];
	long n = ITEMS;

	h_start(0);
	SA_OK(sa_mutex_init(&m, SA_MUTEX_NORMAL));
	SA_OK(sa_cond_init(&not_full, CLOCK_MONOTONIC));
	SA_OK(sa_cond_init(&not_empty, CLOCK_MONOTONIC));
	for (int i = 0; i < CONSUMERS; i++)
		q[i] = h_spawn(consumer, NULL);
	for (int i = 0; i < PRODUCERS; i++)
		p[i] = h_spawn(producer, UP(i));
	for (int i = 0; i < PRODUCERS; i++)
		h_join(p[i]);
	for (int i = 0; i < CONSUMERS; i++)
		h_join(q[i]);
	cr_assert_eq(consumed_n, ITEMS);
	cr_assert_eq(consumed_sum, n * (n + 1) / 2);
}
