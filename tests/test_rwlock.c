/* test_rwlock.c - reader-writer locks: sharing, exclusion, writer preference */
#include "helpers.h"

static sa_rwlock_t rw;
static _Atomic int step;

/* A uthread holding rw (shared or exclusive) until told to let go. */
struct holder {
	int write;
	sa_sem_t held, release;
	int rc;
};

static void *hold_rw(void *arg)
{
	struct holder *h = arg;

	h->rc = h->write ? sa_rwlock_wrlock(&rw) : sa_rwlock_rdlock(&rw);
	sa_sem_post(&h->held);
	sa_sem_wait(&h->release);
	if (h->rc == 0)
		UT_CHECK_EQ(sa_rwlock_unlock(&rw), 0);
	return NULL;
}

static sa_uthread_t start_holder(struct holder *h, int write)
{
	sa_uthread_t t;

	h->write = write;
	SA_OK(sa_sem_init(&h->held, 0));
	SA_OK(sa_sem_init(&h->release, 0));
	t = h_spawn(hold_rw, h);
	SA_OK(sa_sem_wait(&h->held));
	cr_assert_eq(h->rc, 0);
	return t;
}

static void stop_holder(struct holder *h, sa_uthread_t t)
{
	SA_OK(sa_sem_post(&h->release));
	h_join(t);
	assert_no_ut_failures();
}

Test(rwlock, init_null_einval, .timeout = 10)
{
	SA_ERR(sa_rwlock_init(NULL), -EINVAL);
}

Test(rwlock, zeroed_object_einval, .timeout = 10)
{
	sa_rwlock_t z;
	struct timespec dl;

	h_start(0);
	memset(&z, 0, sizeof(z));
	dl = h_deadline(CLOCK_MONOTONIC, NSEC_PER_MSEC);
	SA_ERR(sa_rwlock_rdlock(&z), -EINVAL);
	SA_ERR(sa_rwlock_wrlock(&z), -EINVAL);
	SA_ERR(sa_rwlock_tryrdlock(&z), -EINVAL);
	SA_ERR(sa_rwlock_trywrlock(&z), -EINVAL);
	SA_ERR(sa_rwlock_timedrdlock(&z, CLOCK_MONOTONIC, &dl), -EINVAL);
	SA_ERR(sa_rwlock_timedwrlock(&z, CLOCK_MONOTONIC, &dl), -EINVAL);
	SA_ERR(sa_rwlock_unlock(&z), -EINVAL);
	SA_ERR(sa_rwlock_destroy(&z), -EINVAL);
}

Test(rwlock, destroyed_object_einval, .timeout = 10)
{
	h_start(0);
	SA_OK(sa_rwlock_init(&rw));
	SA_OK(sa_rwlock_destroy(&rw));
	SA_ERR(sa_rwlock_rdlock(&rw), -EINVAL);
	SA_ERR(sa_rwlock_wrlock(&rw), -EINVAL);
}

Test(rwlock, static_initializer_works, .timeout = 10)
{
	sa_rwlock_t s = SA_RWLOCK_INITIALIZER;

	h_start(0);
	SA_OK(sa_rwlock_rdlock(&s));
	SA_OK(sa_rwlock_unlock(&s));
	SA_OK(sa_rwlock_wrlock(&s));
	SA_OK(sa_rwlock_unlock(&s));
	SA_OK(sa_rwlock_destroy(&s));
}

Test(rwlock, trylocks_while_write_held_by_self_ebusy, .timeout = 10)
{
	h_start(0);
	SA_OK(sa_rwlock_init(&rw));
	SA_OK(sa_rwlock_wrlock(&rw));
	/* the try variants report only -EBUSY, -EAGAIN or -EINVAL */
	SA_ERR(sa_rwlock_tryrdlock(&rw), -EBUSY);
	SA_ERR(sa_rwlock_trywrlock(&rw), -EBUSY);
	SA_OK(sa_rwlock_unlock(&rw));
}

/* Every reader holds the lock when it reaches the barrier: if sharing did
 * not work, the barrier would never fill (timeout). */
static sa_barrier_t all_in;

static void *read_and_meet(void *arg)
{
	(void)arg;
	UT_CHECK_EQ(sa_rwlock_rdlock(&rw), 0);
	UT_CHECK(sa_barrier_wait(&all_in) >= 0);
	UT_CHECK_EQ(sa_rwlock_unlock(&rw), 0);
	return NULL;
}

Test(rwlock, readers_share, .timeout = 10)
{
	enum { N = 16 };
	sa_uthread_t t[N];

	h_start(0);
	SA_OK(sa_rwlock_init(&rw));
	SA_OK(sa_barrier_init(&all_in, N));
	for (int i = 0; i < N; i++)
		t[i] = h_spawn(read_and_meet, NULL);
	for (int i = 0; i < N; i++)
		h_join(t[i]);
	assert_no_ut_failures();
}

Test(rwlock, writer_excludes_everyone, .timeout = 10)
{
	struct holder h;
	sa_uthread_t t;
	struct timespec dl;

	h_start(0);
	SA_OK(sa_rwlock_init(&rw));
	t = start_holder(&h, 1);
	SA_ERR(sa_rwlock_tryrdlock(&rw), -EBUSY);
	SA_ERR(sa_rwlock_trywrlock(&rw), -EBUSY);
	dl = h_deadline(CLOCK_MONOTONIC, 10 * NSEC_PER_MSEC);
	SA_ERR(sa_rwlock_timedrdlock(&rw, CLOCK_MONOTONIC, &dl), -ETIMEDOUT);
	stop_holder(&h, t);
	SA_OK(sa_rwlock_trywrlock(&rw));
	SA_OK(sa_rwlock_unlock(&rw));
}

Test(rwlock, reader_excludes_writer_not_reader, .timeout = 10)
{
	struct holder h;
	sa_uthread_t t;

	h_start(0);
	SA_OK(sa_rwlock_init(&rw));
	t = start_holder(&h, 0);
	SA_ERR(sa_rwlock_trywrlock(&rw), -EBUSY);
	SA_OK(sa_rwlock_tryrdlock(&rw));
	SA_OK(sa_rwlock_unlock(&rw));
	stop_holder(&h, t);
	SA_OK(sa_rwlock_trywrlock(&rw));
	SA_OK(sa_rwlock_unlock(&rw));
}

static char order_log[8];
static _Atomic int order_pos;

static void *take_and_log(void *arg)
{
	int write = (int)IP(arg);

	atomic_fetch_add(&step, 1);
	UT_CHECK_EQ(write ? sa_rwlock_wrlock(&rw) : sa_rwlock_rdlock(&rw), 0);
	order_log[atomic_fetch_add(&order_pos, 1)] = write ? 'W' : 'R';
	if (write)
		sa_sleep_ns(5 * NSEC_PER_MSEC);
	UT_CHECK_EQ(sa_rwlock_unlock(&rw), 0);
	return NULL;
}

Test(rwlock, waiting_writer_blocks_new_readers, .timeout = 10)
{
	sa_uthread_t w, r;

	h_start(0);
	SA_OK(sa_rwlock_init(&rw));
	SA_OK(sa_rwlock_rdlock(&rw));
	w = h_spawn(take_and_log, UP(1));
	cr_assert(h_wait_atomic_ge(&step, 1, 5 * NSEC_PER_SEC_));
	SA_OK(sa_sleep_ns(20 * NSEC_PER_MSEC)); /* w now waits */
	SA_ERR(sa_rwlock_tryrdlock(&rw), -EBUSY);
	r = h_spawn(take_and_log, UP(0));
	cr_assert(h_wait_atomic_ge(&step, 2, 5 * NSEC_PER_SEC_));
	SA_OK(sa_sleep_ns(20 * NSEC_PER_MSEC)); /* r now waits behind w */
	cr_assert_eq(atomic_load(&order_pos), 0, "a reader got in: %s", order_log);
	SA_OK(sa_rwlock_unlock(&rw));
	h_join(w);
	h_join(r);
	assert_no_ut_failures();
	cr_assert_str_eq(order_log, "WR");
}

Test(rwlock, rdlock_while_write_held_by_self_edeadlk, .timeout = 10)
{
	struct timespec dl;

	h_start(0);
	SA_OK(sa_rwlock_init(&rw));
	SA_OK(sa_rwlock_wrlock(&rw));
	SA_ERR(sa_rwlock_rdlock(&rw), -EDEADLK);
	dl = h_deadline(CLOCK_MONOTONIC, 10 * NSEC_PER_MSEC);
	SA_ERR(sa_rwlock_timedrdlock(&rw, CLOCK_MONOTONIC, &dl), -EDEADLK);
	SA_OK(sa_rwlock_unlock(&rw));
}

Test(rwlock, wrlock_twice_edeadlk, .timeout = 10)
{
	struct timespec dl;

	h_start(0);
	SA_OK(sa_rwlock_init(&rw));
	SA_OK(sa_rwlock_wrlock(&rw));
	SA_ERR(sa_rwlock_wrlock(&rw), -EDEADLK);
	dl = h_deadline(CLOCK_MONOTONIC, 10 * NSEC_PER_MSEC);
	SA_ERR(sa_rwlock_timedwrlock(&rw, CLOCK_MONOTONIC, &dl), -EDEADLK);
	SA_OK(sa_rwlock_unlock(&rw));
}

Test(rwlock, unlock_not_held_eperm, .timeout = 10)
{
	h_start(0);
	SA_OK(sa_rwlock_init(&rw));
	SA_ERR(sa_rwlock_unlock(&rw), -EPERM);
	SA_OK(sa_rwlock_wrlock(&rw));
	SA_OK(sa_rwlock_unlock(&rw));
	SA_ERR(sa_rwlock_unlock(&rw), -EPERM);
	SA_OK(sa_rwlock_rdlock(&rw));
	SA_OK(sa_rwlock_unlock(&rw));
	SA_ERR(sa_rwlock_unlock(&rw), -EPERM);
}

Test(rwlock, unlock_write_held_by_other_eperm, .timeout = 10)
{
	struct holder h;
	sa_uthread_t t;

	h_start(0);
	SA_OK(sa_rwlock_init(&rw));
	t = start_holder(&h, 1);
	SA_ERR(sa_rwlock_unlock(&rw), -EPERM);
	SA_ERR(sa_rwlock_tryrdlock(&rw), -EBUSY); /* still write-held */
	stop_holder(&h, t);
}

static void timed_times_out(int write, clockid_t clk)
{
	struct holder h;
	sa_uthread_t t;
	struct timespec dl;
	uint64_t t0;

	SA_OK(sa_rwlock_init(&rw));
	t = start_holder(&h, !write); /* a reader blocks writers, a writer readers */
	dl = h_deadline(clk, 40 * NSEC_PER_MSEC);
	t0 = h_mono();
	if (write)
		SA_ERR(sa_rwlock_timedwrlock(&rw, clk, &dl), -ETIMEDOUT);
	else
		SA_ERR(sa_rwlock_timedrdlock(&rw, clk, &dl), -ETIMEDOUT);
	cr_assert_geq(h_now(clk), h_ts_ns(&dl), "timed out before the deadline");
	cr_assert_geq(h_mono() - t0, 30 * NSEC_PER_MSEC);
	stop_holder(&h, t);
	/* the timed-out wait left nothing behind */
	SA_OK(sa_rwlock_trywrlock(&rw));
	SA_OK(sa_rwlock_unlock(&rw));
	SA_OK(sa_rwlock_destroy(&rw));
}

Test(rwlock, timedrdlock_times_out_monotonic, .timeout = 10)
{
	h_start(0);
	timed_times_out(0, CLOCK_MONOTONIC);
}

Test(rwlock, timedrdlock_times_out_realtime, .timeout = 10)
{
	h_start(0);
	timed_times_out(0, CLOCK_REALTIME);
}

Test(rwlock, timedwrlock_times_out_monotonic, .timeout = 10)
{
	h_start(0);
	timed_times_out(1, CLOCK_MONOTONIC);
}

Test(rwlock, timedwrlock_times_out_realtime, .timeout = 10)
{
	h_start(0);
	timed_times_out(1, CLOCK_REALTIME);
}

Test(rwlock, timed_writer_timeout_lets_readers_in, .timeout = 10)
{
	struct holder h;
	sa_uthread_t t;
	struct timespec dl;

	h_start(0);
	SA_OK(sa_rwlock_init(&rw));
	t = start_holder(&h, 0);
	dl = h_deadline(CLOCK_MONOTONIC, 20 * NSEC_PER_MSEC);
	SA_ERR(sa_rwlock_timedwrlock(&rw, CLOCK_MONOTONIC, &dl), -ETIMEDOUT);
	/* no writer waits any more: a new reader gets in */
	SA_OK(sa_rwlock_tryrdlock(&rw));
	SA_OK(sa_rwlock_unlock(&rw));
	stop_holder(&h, t);
}

Test(rwlock, timed_succeed_when_free, .timeout = 10)
{
	struct timespec dl;

	h_start(0);
	SA_OK(sa_rwlock_init(&rw));
	dl = h_deadline(CLOCK_REALTIME, -(int64_t)NSEC_PER_SEC_);
	SA_OK(sa_rwlock_timedrdlock(&rw, CLOCK_REALTIME, &dl));
	SA_OK(sa_rwlock_unlock(&rw));
	SA_OK(sa_rwlock_timedwrlock(&rw, CLOCK_REALTIME, &dl));
	SA_OK(sa_rwlock_unlock(&rw));
}

Test(rwlock, timed_bad_clock_einval, .timeout = 10)
{
	struct holder h;
	sa_uthread_t t;
	struct timespec dl;

	h_start(0);
	SA_OK(sa_rwlock_init(&rw));
	t = start_holder(&h, 1);
	dl = h_deadline(CLOCK_MONOTONIC, 10 * NSEC_PER_MSEC);
	SA_ERR(sa_rwlock_timedrdlock(&rw, CLOCK_PROCESS_CPUTIME_ID, &dl), -EINVAL);
	SA_ERR(sa_rwlock_timedwrlock(&rw, CLOCK_PROCESS_CPUTIME_ID, &dl), -EINVAL);
	dl.tv_nsec = 1000000000;
	SA_ERR(sa_rwlock_timedrdlock(&rw, CLOCK_MONOTONIC, &dl), -EINVAL);
	SA_ERR(sa_rwlock_timedwrlock(&rw, CLOCK_MONOTONIC, &dl), -EINVAL);
	stop_holder(&h, t);
}

Test(rwlock, destroy_held_ebusy, .timeout = 10)
{
	h_start(0);
	SA_OK(sa_rwlock_init(&rw));
	SA_OK(sa_rwlock_rdlock(&rw));
	SA_ERR(sa_rwlock_destroy(&rw), -EBUSY);
	SA_OK(sa_rwlock_unlock(&rw));
	SA_OK(sa_rwlock_wrlock(&rw));
	SA_ERR(sa_rwlock_destroy(&rw), -EBUSY);
	SA_OK(sa_rwlock_unlock(&rw));
	SA_OK(sa_rwlock_destroy(&rw));
}

/* ---- consistency under load ---- */

static long pair_a, pair_b;

static void *rw_worker(void *arg)
{
	uint64_t seed = IP(arg) * 7919 + 1;

	for (int i = 0; i < 300; i++) {
		if (h_rand(&seed) % 4 == 0) {
			UT_CHECK_EQ(sa_rwlock_wrlock(&rw), 0);
			UT_CHECK_EQ(atomic_fetch_add(&step, 1), 0);
			pair_a++;
			if (i % 5 == 0)
				sa_yield();
			pair_b++;
			atomic_fetch_sub(&step, 1);
			UT_CHECK_EQ(sa_rwlock_unlock(&rw), 0);
		} else {
			UT_CHECK_EQ(sa_rwlock_rdlock(&rw), 0);
			UT_CHECK_EQ(atomic_load(&step), 0);
			long a = pair_a;
			if (i % 5 == 0)
				sa_yield();
			UT_CHECK_EQ(pair_b, a);
			UT_CHECK_EQ(sa_rwlock_unlock(&rw), 0);
		}
	}
	return NULL;
}

Test(rwlock, writers_exclusive_readers_consistent, .timeout = 30)
{
	enum { N = 64 };
	sa_uthread_t t[N];

	h_start(0);
	SA_OK(sa_rwlock_init(&rw));
	for (int i = 0; i < N; i++)
		t[i] = h_spawn(rw_worker, UP(i));
	for (int i = 0; i < N; i++)
		h_join(t[i]);
	assert_no_ut_failures();
	cr_assert_eq(pair_a, pair_b);
	cr_assert_gt(pair_a, 0);
}

/* ---- plain pthreads ---- */

static _Atomic int ext_state;

static void *ext_writer(void *arg)
{
	(void)arg;
	atomic_store(&ext_state, 1);
	UT_CHECK_EQ(sa_rwlock_wrlock(&rw), 0);
	atomic_store(&ext_state, 2);
	UT_CHECK_EQ(sa_rwlock_unlock(&rw), 0);
	return NULL;
}

Test(rwlock, pthread_writer_waits_for_uthread_reader, .timeout = 10)
{
	pthread_t p;

	h_start(0);
	SA_OK(sa_rwlock_init(&rw));
	SA_OK(sa_rwlock_rdlock(&rw));
	p = h_pthread(ext_writer, NULL);
	while (atomic_load(&ext_state) == 0)
		SA_OK(sa_sleep_ns(NSEC_PER_MSEC));
	SA_OK(sa_sleep_ns(30 * NSEC_PER_MSEC));
	cr_assert_eq(atomic_load(&ext_state), 1);
	SA_OK(sa_rwlock_unlock(&rw));
	h_pthread_join(p);
	assert_no_ut_failures();
	cr_assert_eq(atomic_load(&ext_state), 2);
}

static void *ext_hold_write(void *arg)
{
	(void)arg;
	UT_CHECK_EQ(sa_rwlock_wrlock(&rw), 0);
	atomic_store(&ext_state, 1);
	h_os_sleep_ns(30 * NSEC_PER_MSEC);
	atomic_store(&ext_state, 2);
	UT_CHECK_EQ(sa_rwlock_unlock(&rw), 0);
	return NULL;
}

Test(rwlock, uthread_reader_waits_for_pthread_writer, .timeout = 10)
{
	pthread_t p;

	h_start(0);
	SA_OK(sa_rwlock_init(&rw));
	p = h_pthread(ext_hold_write, NULL);
	while (atomic_load(&ext_state) == 0)
		SA_OK(sa_sleep_ns(NSEC_PER_MSEC));
	SA_OK(sa_rwlock_rdlock(&rw));
	cr_assert_eq(atomic_load(&ext_state), 2);
	SA_OK(sa_rwlock_unlock(&rw));
	h_pthread_join(p);
	assert_no_ut_failures();
}
