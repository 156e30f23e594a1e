/* test_barrier_once.c - barriers (serial caller, rounds) and sa_once */
#include "helpers.h"

static sa_barrier_t b;

Test(barrier, init_null_einval, .timeout = 10)
{
	SA_ERR(sa_barrier_init(NULL, 2), -EINVAL);
}

Test(barrier, init_zero_count_einval, .timeout = 10)
{
	SA_ERR(sa_barrier_init(&b, 0), -EINVAL);
}

Test(barrier, zeroed_object_einval, .timeout = 10)
{
	sa_barrier_t z;

	h_start(0);
	memset(&z, 0, sizeof(z));
	SA_ERR(sa_barrier_wait(&z), -EINVAL);
}

Test(barrier, destroyed_object_einval, .timeout = 10)
{
	h_start(0);
	SA_OK(sa_barrier_init(&b, 1));
	SA_OK(sa_barrier_destroy(&b));
	SA_ERR(sa_barrier_wait(&b), -EINVAL);
}

Test(barrier, count_one_always_serial, .timeout = 10)
{
	h_start(0);
	SA_OK(sa_barrier_init(&b, 1));
	for (int i = 0; i < 5; i++)
		SA_ERR(sa_barrier_wait(&b), SA_BARRIER_SERIAL);
}

enum { BN = 32, ROUNDS = 20 };
static _Atomic int arrived[ROUNDS];
static _Atomic int serials[ROUNDS];
static _Atomic int bad_returns;

static void *barrier_rounds(void *arg)
{
	uint64_t seed = IP(arg) + 11;

	for (int r = 0; r < ROUNDS; r++) {
		if (h_rand(&seed) % 3 == 0)
			sa_sleep_ns(h_rand(&seed) % (200 * NSEC_PER_USEC));
		atomic_fetch_add(&arrived[r], 1);
		int rc = sa_barrier_wait(&b);
		if (rc == SA_BARRIER_SERIAL)
			atomic_fetch_add(&serials[r], 1);
		else if (rc != 0)
			atomic_fetch_add(&bad_returns, 1);
		/* nobody leaves round r before everyone arrived in it */
		UT_CHECK_EQ(atomic_load(&arrived[r]), BN);
	}
	return NULL;
}

static void run_rounds(void *(*fn)(void *), int spawn_n)
{
	sa_uthread_t t[BN];

	SA_OK(sa_barrier_init(&b, BN));
	for (int i = 0; i < spawn_n; i++)
		t[i] = h_spawn(fn, UP(i));
	for (int i = 0; i < spawn_n; i++)
		h_join(t[i]);
}

Test(barrier, one_serial_per_round_many_rounds, .timeout = 20)
{
	h_start(0);
	run_rounds(barrier_rounds, BN);
	assert_no_ut_failures();
	cr_assert_eq(atomic_load(&bad_returns), 0);
	for (int r = 0; r < ROUNDS; r++)
		cr_assert_eq(atomic_load(&serials[r]), 1,
			     "round %d had %d serial callers", r,
			     atomic_load(&serials[r]));
	SA_OK(sa_barrier_destroy(&b));
}

Test(barrier, one_serial_per_round_one_vp, .timeout = 20)
{
	h_start_env("1");
	run_rounds(barrier_rounds, BN);
	assert_no_ut_failures();
	for (int r = 0; r < ROUNDS; r++)
		cr_assert_eq(atomic_load(&serials[r]), 1, "round %d", r);
}

static _Atomic int passed;

static void *wait_barrier(void *arg)
{
	int rc = sa_barrier_wait(&b);

	(void)arg;
	UT_CHECK(rc == 0 || rc == SA_BARRIER_SERIAL);
	atomic_fetch_add(&passed, 1);
	return UP(rc);
}

Test(barrier, waits_for_last_arrival, .timeout = 10)
{
	sa_uthread_t t;
	int mine, theirs;

	h_start(0);
	SA_OK(sa_barrier_init(&b, 2));
	t = h_spawn(wait_barrier, NULL);
	SA_OK(sa_sleep_ns(30 * NSEC_PER_MSEC));
	cr_assert_eq(atomic_load(&passed), 0, "passed a barrier of 2 alone");
	mine = sa_barrier_wait(&b);
	theirs = (int)IP(h_join(t));
	assert_no_ut_failures();
	cr_assert_eq(atomic_load(&passed), 1);
	cr_assert_eq((mine == SA_BARRIER_SERIAL) + (theirs == SA_BARRIER_SERIAL), 1,
		     "returns %d and %d", mine, theirs);
}

Test(barrier, destroy_during_round_ebusy, .timeout = 10)
{
	sa_uthread_t t;

	h_start(0);
	SA_OK(sa_barrier_init(&b, 2));
	t = h_spawn(wait_barrier, NULL);
	SA_OK(sa_sleep_ns(20 * NSEC_PER_MSEC));
	SA_ERR(sa_barrier_destroy(&b), -EBUSY);
	cr_assert_geq(sa_barrier_wait(&b), 0);
	h_join(t);
	assert_no_ut_failures();
	SA_OK(sa_barrier_destroy(&b));
}

static void *ext_barrier_rounds(void *arg)
{
	return barrier_rounds(arg);
}

Test(barrier, pthreads_and_uthreads_meet, .timeout = 20)
{
	enum { P = 4 };
	sa_uthread_t t[BN - P];
	pthread_t p[P];

	h_start(0);
	SA_OK(sa_barrier_init(&b, BN));
	for (int i = 0; i < P; i++)
		p[i] = h_pthread(ext_barrier_rounds, UP(1000 + i));
	for (int i = 0; i < BN - P; i++)
		t[i] = h_spawn(barrier_rounds, UP(i));
	for (int i = 0; i < BN - P; i++)
		h_join(t[i]);
	for (int i = 0; i < P; i++)
		h_pthread_join(p[i]);
	assert_no_ut_failures();
	cr_assert_eq(atomic_load(&bad_returns), 0);
	for (int r = 0; r < ROUNDS; r++)
		cr_assert_eq(atomic_load(&serials[r]), 1, "round %d", r);
}

/* ---- once ---- */

static _Atomic int once_calls;
static _Atomic int once_done;
static sa_once_t once = SA_ONCE_INIT;

static void slow_init(void)
{
	atomic_fetch_add(&once_calls, 1);
	sa_sleep_ns(20 * NSEC_PER_MSEC);
	atomic_store(&once_done, 1);
}

static void *call_once(void *arg)
{
	(void)arg;
	UT_CHECK_EQ(sa_once(&once, slow_init), 0);
	/* nobody returns before the one call has returned */
	UT_CHECK_EQ(atomic_load(&once_done), 1);
	return NULL;
}

Test(once, null_args_einval, .timeout = 10)
{
	h_start(0);
	SA_ERR(sa_once(NULL, slow_init), -EINVAL);
	SA_ERR(sa_once(&once, NULL), -EINVAL);
	cr_assert_eq(atomic_load(&once_calls), 0);
}

Test(once, runs_once_sequentially, .timeout = 10)
{
	h_start(0);
	for (int i = 0; i < 5; i++)
		SA_OK(sa_once(&once, slow_init));
	cr_assert_eq(atomic_load(&once_calls), 1);
}

Test(once, runs_once_under_concurrency, .timeout = 10)
{
	enum { N = 200 };
	sa_uthread_t t[N];

	h_start(0);
	for (int i = 0; i < N; i++)
		t[i] = h_spawn(call_once, NULL);
	for (int i = 0; i < N; i++)
		h_join(t[i]);
	assert_no_ut_failures();
	cr_assert_eq(atomic_load(&once_calls), 1);
}

Test(once, runs_once_with_pthreads_too, .timeout = 10)
{
	enum { N = 50, P = 4 };
	sa_uthread_t t[N];
	pthread_t p[P];

	h_start(0);
	for (int i = 0; i < P; i++)
		p[i] = h_pthread(call_once, NULL);
	for (int i = 0; i < N; i++)
		t[i] = h_spawn(call_once, NULL);
	for (int i = 0; i < N; i++)
		h_join(t[i]);
	for (int i = 0; i < P; i++)
		h_pthread_join(p[i]);
	assert_no_ut_failures();
	cr_assert_eq(atomic_load(&once_calls), 1);
}

static sa_once_t onces[10];
static _Atomic int many_calls;

static void count_call(void)
{
	atomic_fetch_add(&many_calls, 1);
}

Test(once, separate_objects_each_run_once, .timeout = 10)
{
	h_start(0);
	for (int i = 0; i < 10; i++) {
		sa_once_t init = SA_ONCE_INIT;

		onces[i] = init;
	}
	for (int k = 0; k < 3; k++)
		for (int i = 0; i < 10; i++)
			SA_OK(sa_once(&onces[i], count_call));
	cr_assert_eq(atomic_load(&many_calls), 10);
}
