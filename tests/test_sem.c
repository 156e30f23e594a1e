/* test_sem.c - counting semaphores */
#include "helpers.h"

static sa_sem_t s;
static _Atomic int passed;

Test(sem, init_null_einval, .timeout = 10)
{
	SA_ERR(sa_sem_init(NULL, 0), -EINVAL);
}

Test(sem, init_above_max_einval, .timeout = 10)
{
	SA_ERR(sa_sem_init(&s, SA_SEM_VALUE_MAX + 1u), -EINVAL);
	SA_ERR(sa_sem_init(&s, UINT32_MAX), -EINVAL);
}

Test(sem, init_max_ok, .timeout = 10)
{
	unsigned v = 0;

	h_start(0);
	SA_OK(sa_sem_init(&s, SA_SEM_VALUE_MAX));
	SA_OK(sa_sem_getvalue(&s, &v));
	cr_assert_eq(v, SA_SEM_VALUE_MAX);
}

Test(sem, zeroed_object_einval, .timeout = 10)
{
	sa_sem_t z;
	unsigned v;
	struct timespec dl;

	h_start(0);
	memset(&z, 0, sizeof(z));
	dl = h_deadline(CLOCK_MONOTONIC, NSEC_PER_MSEC);
	SA_ERR(sa_sem_wait(&z), -EINVAL);
	SA_ERR(sa_sem_trywait(&z), -EINVAL);
	SA_ERR(sa_sem_timedwait(&z, CLOCK_MONOTONIC, &dl), -EINVAL);
	SA_ERR(sa_sem_post(&z), -EINVAL);
	SA_ERR(sa_sem_getvalue(&z, &v), -EINVAL);
	SA_ERR(sa_sem_destroy(&z), -EINVAL);
}

Test(sem, destroyed_object_einval, .timeout = 10)
{
	h_start(0);
	SA_OK(sa_sem_init(&s, 1));
	SA_OK(sa_sem_destroy(&s));
	SA_ERR(sa_sem_post(&s), -EINVAL);
	SA_ERR(sa_sem_trywait(&s), -EINVAL);
}

Test(sem, getvalue_tracks_posts_and_waits, .timeout = 10)
{
	unsigned v = 99;

	h_start(0);
	SA_OK(sa_sem_init(&s, 2));
	SA_OK(sa_sem_getvalue(&s, &v));
	cr_assert_eq(v, 2u);
	SA_OK(sa_sem_post(&s));
	SA_OK(sa_sem_getvalue(&s, &v));
	cr_assert_eq(v, 3u);
	SA_OK(sa_sem_wait(&s));
	SA_OK(sa_sem_trywait(&s));
	SA_OK(sa_sem_getvalue(&s, &v));
	cr_assert_eq(v, 1u);
}

Test(sem, getvalue_null_einval, .timeout = 10)
{
	h_start(0);
	SA_OK(sa_sem_init(&s, 0));
	SA_ERR(sa_sem_getvalue(&s, NULL), -EINVAL);
}

Test(sem, trywait_empty_eagain, .timeout = 10)
{
	h_start(0);
	SA_OK(sa_sem_init(&s, 1));
	SA_OK(sa_sem_trywait(&s));
	SA_ERR(sa_sem_trywait(&s), -EAGAIN);
}

Test(sem, post_at_max_eoverflow, .timeout = 10)
{
	unsigned v = 0;

	h_start(0);
	SA_OK(sa_sem_init(&s, SA_SEM_VALUE_MAX - 1));
	SA_OK(sa_sem_post(&s));
	SA_ERR(sa_sem_post(&s), -EOVERFLOW);
	SA_OK(sa_sem_getvalue(&s, &v));
	cr_assert_eq(v, SA_SEM_VALUE_MAX);
}

static void *wait_and_count(void *arg)
{
	UT_CHECK_EQ(sa_sem_wait(arg ? arg : &s), 0);
	atomic_fetch_add(&passed, 1);
	return NULL;
}

Test(sem, wait_parks_until_post, .timeout = 10)
{
	sa_uthread_t t;

	h_start(0);
	SA_OK(sa_sem_init(&s, 0));
	t = h_spawn(wait_and_count, NULL);
	SA_OK(sa_sleep_ns(30 * NSEC_PER_MSEC));
	cr_assert_eq(atomic_load(&passed), 0);
	SA_OK(sa_sem_post(&s));
	h_join(t);
	assert_no_ut_failures();
	cr_assert_eq(atomic_load(&passed), 1);
}

Test(sem, each_post_wakes_one_waiter, .timeout = 10)
{
	enum { N = 10 };
	sa_uthread_t t[N];
	unsigned v = 99;

	h_start(0);
	SA_OK(sa_sem_init(&s, 0));
	for (int i = 0; i < N; i++)
		t[i] = h_spawn(wait_and_count, NULL);
	SA_OK(sa_sleep_ns(20 * NSEC_PER_MSEC));
	for (int i = 1; i <= N; i++) {
		SA_OK(sa_sem_post(&s));
		cr_assert(h_wait_atomic_ge(&passed, i, 5 * NSEC_PER_SEC_));
		SA_OK(sa_sleep_ns(2 * NSEC_PER_MSEC));
		cr_assert_eq(atomic_load(&passed), i, "post %d let %d through", i,
			     atomic_load(&passed));
	}
	for (int i = 0; i < N; i++)
		h_join(t[i]);
	SA_OK(sa_sem_getvalue(&s, &v));
	cr_assert_eq(v, 0u);
	assert_no_ut_failures();
}

static void timedwait_times_out(clockid_t clk)
{
	struct timespec dl;
	uint64_t t0;
	unsigned v = 99;

	SA_OK(sa_sem_init(&s, 0));
	dl = h_deadline(clk, 40 * NSEC_PER_MSEC);
	t0 = h_mono();
	SA_ERR(sa_sem_timedwait(&s, clk, &dl), -ETIMEDOUT);
	cr_assert_geq(h_now(clk), h_ts_ns(&dl), "timed out before the deadline");
	cr_assert_geq(h_mono() - t0, 30 * NSEC_PER_MSEC);
	SA_OK(sa_sem_getvalue(&s, &v));
	cr_assert_eq(v, 0u);
	/* the timed-out waiter is gone: a post stays in the semaphore */
	SA_OK(sa_sem_post(&s));
	SA_OK(sa_sem_trywait(&s));
	SA_OK(sa_sem_destroy(&s));
}

Test(sem, timedwait_times_out_monotonic, .timeout = 10)
{
	h_start(0);
	timedwait_times_out(CLOCK_MONOTONIC);
}

Test(sem, timedwait_times_out_realtime, .timeout = 10)
{
	h_start(0);
	timedwait_times_out(CLOCK_REALTIME);
}

Test(sem, timedwait_past_deadline_takes_available_unit, .timeout = 10)
{
	struct timespec dl;

	h_start(0);
	SA_OK(sa_sem_init(&s, 1));
	dl = h_deadline(CLOCK_MONOTONIC, -(int64_t)NSEC_PER_SEC_);
	SA_OK(sa_sem_timedwait(&s, CLOCK_MONOTONIC, &dl));
	SA_ERR(sa_sem_timedwait(&s, CLOCK_MONOTONIC, &dl), -ETIMEDOUT);
}

static void *post_later(void *arg)
{
	(void)arg;
	sa_sleep_ns(20 * NSEC_PER_MSEC);
	UT_CHECK_EQ(sa_sem_post(&s), 0);
	return NULL;
}

Test(sem, timedwait_gets_post_before_deadline, .timeout = 10)
{
	struct timespec dl;
	sa_uthread_t t;

	h_start(0);
	SA_OK(sa_sem_init(&s, 0));
	t = h_spawn(post_later, NULL);
	dl = h_deadline(CLOCK_REALTIME, 5 * NSEC_PER_SEC_);
	SA_OK(sa_sem_timedwait(&s, CLOCK_REALTIME, &dl));
	h_join(t);
	assert_no_ut_failures();
}

Test(sem, timedwait_bad_args_einval, .timeout = 10)
{
	struct timespec dl;

	h_start(0);
	SA_OK(sa_sem_init(&s, 0));
	dl = h_deadline(CLOCK_MONOTONIC, 10 * NSEC_PER_MSEC);
	SA_ERR(sa_sem_timedwait(&s, CLOCK_THREAD_CPUTIME_ID, &dl), -EINVAL);
	SA_ERR(sa_sem_timedwait(&s, CLOCK_MONOTONIC, NULL), -EINVAL);
	dl.tv_nsec = -1;
	SA_ERR(sa_sem_timedwait(&s, CLOCK_MONOTONIC, &dl), -EINVAL);
}

Test(sem, destroy_with_waiter_ebusy, .timeout = 10)
{
	sa_uthread_t t;

	h_start(0);
	SA_OK(sa_sem_init(&s, 0));
	t = h_spawn(wait_and_count, NULL);
	SA_OK(sa_sleep_ns(20 * NSEC_PER_MSEC));
	SA_ERR(sa_sem_destroy(&s), -EBUSY);
	SA_OK(sa_sem_post(&s));
	h_join(t);
	SA_OK(sa_sem_destroy(&s));
}

/* ---- counting across VPs ---- */

enum { PC_N = 8, PC_ITEMS = 5000 };
static sa_sem_t slots, items;
static _Atomic long produced_sum, consumed_sum;

static void *sem_producer(void *arg)
{
	for (long i = 0; i < PC_ITEMS; i++) {
		UT_CHECK_EQ(sa_sem_wait(&slots), 0);
		atomic_fetch_add(&produced_sum, (long)IP(arg) + i);
		UT_CHECK_EQ(sa_sem_post(&items), 0);
	}
	return NULL;
}

static void *sem_consumer(void *arg)
{
	(void)arg;
	for (long i = 0; i < PC_ITEMS; i++) {
		UT_CHECK_EQ(sa_sem_wait(&items), 0);
		atomic_fetch_add(&consumed_sum, 1);
		UT_CHECK_EQ(sa_sem_post(&slots), 0);
	}
	return NULL;
}

Test(sem, bounded_buffer_counts_exact, .timeout = 30)
{
	sa_uthread_t p[PC_N], c[PC_N];
	unsigned v = 0;

	h_start(0);
	SA_OK(sa_sem_init(&slots, 4));
	SA_OK(sa_sem_init(&items, 0));
	for (int i = 0; i < PC_N; i++) {
		c[i] = h_spawn(sem_consumer, NULL);
		p[i] = h_spawn(sem_producer, UP(i));
	}
	for (int i = 0; i < PC_N; i++) {
		h_join(p[i]);
		h_join(c[i]);
	}
	assert_no_ut_failures();
	cr_assert_eq(atomic_load(&consumed_sum), (long)PC_N * PC_ITEMS);
	SA_OK(sa_sem_getvalue(&items, &v));
	cr_assert_eq(v, 0u);
	SA_OK(sa_sem_getvalue(&slots, &v));
	cr_assert_eq(v, 4u);
}

/* ---- plain pthreads ---- */

static void *ext_post(void *arg)
{
	(void)arg;
	for (int i = 0; i < 3; i++) {
		h_os_sleep_ns(10 * NSEC_PER_MSEC);
		UT_CHECK_EQ(sa_sem_post(&s), 0);
	}
	return NULL;
}

Test(sem, pthread_posts_uthread_waits, .timeout = 10)
{
	pthread_t p;

	h_start(0);
	SA_OK(sa_sem_init(&s, 0));
	p = h_pthread(ext_post, NULL);
	for (int i = 0; i < 3; i++)
		SA_OK(sa_sem_wait(&s));
	h_pthread_join(p);
	assert_no_ut_failures();
}

static void *ext_wait(void *arg)
{
	(void)arg;
	UT_CHECK_EQ(sa_sem_wait(&s), 0);
	atomic_fetch_add(&passed, 1);
	return NULL;
}

Test(sem, pthread_waits_uthread_posts, .timeout = 10)
{
	pthread_t p;

	h_start(0);
	SA_OK(sa_sem_init(&s, 0));
	p = h_pthread(ext_wait, NULL);
	SA_OK(sa_sleep_ns(30 * NSEC_PER_MSEC));
	cr_assert_eq(atomic_load(&passed), 0);
	SA_OK(sa_sem_post(&s));
	h_pthread_join(p);
	assert_no_ut_failures();
	cr_assert_eq(atomic_load(&passed), 1);
}

static void *ext_timedwait(void *arg)
{
	struct timespec dl = h_deadline(CLOCK_MONOTONIC, 30 * NSEC_PER_MSEC);

	(void)arg;
	UT_CHECK_EQ(sa_sem_timedwait(&s, CLOCK_MONOTONIC, &dl), -ETIMEDOUT);
	UT_CHECK(h_mono() >= h_ts_ns(&dl));
	return NULL;
}

Test(sem, pthread_timedwait_times_out, .timeout = 10)
{
	h_start(0);
	SA_OK(sa_sem_init(&s, 0));
	h_pthread_join(h_pthread(ext_timedwait, NULL));
	assert_no_ut_failures();
}

Test(sem, works_from_pthread_before_runtime_start, .timeout = 10)
{
	pthread_t p;

	h_env_vps(NULL);
	SA_OK(sa_sem_init(&s, 0));
	p = h_pthread(ext_post, NULL);
	for (int i = 0; i < 3; i++)
		SA_OK(sa_sem_wait(&s));
	h_pthread_join(p);
	assert_no_ut_failures();
}
