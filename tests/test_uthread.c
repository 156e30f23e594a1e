/* test_uthread.c - spawn, join, detach, exit, yield, sleep, attributes, names, prio */
#include "helpers.h"

static void *ret_arg(void *arg)
{
	return arg;
}

static void *ret_self(void *arg)
{
	(void)arg;
	return UP(sa_self());
}

static void *wait_sem(void *arg)
{
	UT_CHECK_EQ(sa_sem_wait(arg), 0);
	return UP(5);
}

static void *post_sem(void *arg)
{
	sa_sem_post(arg);
	return NULL;
}

static sa_uthread_t spawn_detached(void *(*fn)(void *), void *arg)
{
	sa_attr_t a;
	sa_uthread_t t = 0;

	SA_OK(sa_attr_init(&a));
	SA_OK(sa_attr_setdetached(&a, 1));
	SA_OK(sa_spawn(&t, &a, fn, arg));
	return t;
}

/* ---- spawn / join ---- */

Test(uthread, join_reports_return_value, .timeout = 10)
{
	h_start(0);
	cr_assert_eq(IP(h_join(h_spawn(ret_arg, UP(0x1234)))), 0x1234u);
}

Test(uthread, join_null_retval_ok, .timeout = 10)
{
	h_start(0);
	SA_OK(sa_join(h_spawn(ret_arg, NULL), NULL));
}

Test(uthread, many_spawned_all_joined_with_values, .timeout = 20)
{
	enum { N = 10000 };
	static sa_uthread_t t[N];

	h_start(0);
	for (int i = 0; i < N; i++)
		t[i] = h_spawn(ret_arg, UP(i + 1));
	for (int i = 0; i < N; i++)
		cr_assert_eq(IP(h_join(t[i])), (uintptr_t)i + 1);
}

Test(uthread, spawn_null_fn_einval, .timeout = 10)
{
	sa_uthread_t t;

	h_start(0);
	SA_ERR(sa_spawn(&t, NULL, NULL, NULL), -EINVAL);
}

Test(uthread, spawn_joinable_null_out_einval, .timeout = 10)
{
	h_start(0);
	SA_ERR(sa_spawn(NULL, NULL, ret_arg, NULL), -EINVAL);
}

Test(uthread, spawn_uninitialised_attr_einval, .timeout = 10)
{
	sa_attr_t a;
	sa_uthread_t t;

	h_start(0);
	memset(&a, 0, sizeof(a));
	SA_ERR(sa_spawn(&t, &a, ret_arg, NULL), -EINVAL);
}

Test(uthread, spawn_detached_null_out_runs, .timeout = 10)
{
	sa_attr_t a;
	sa_sem_t s;

	h_start(0);
	SA_OK(sa_sem_init(&s, 0));
	SA_OK(sa_attr_init(&a));
	SA_OK(sa_attr_setdetached(&a, 1));
	SA_OK(sa_spawn(NULL, &a, post_sem, &s));
	SA_OK(sa_sem_wait(&s));
}

static void *ext_spawn_join(void *arg)
{
	sa_uthread_t t = 0;
	void *rv = NULL;

	(void)arg;
	UT_CHECK_EQ(sa_spawn(&t, NULL, ret_arg, UP(99)), 0);
	UT_CHECK_EQ(sa_join(t, &rv), 0);
	UT_CHECK_EQ(IP(rv), 99);
	return NULL;
}

Test(uthread, spawn_and_join_from_pthread, .timeout = 10)
{
	h_start(2);
	h_pthread_join(h_pthread(ext_spawn_join, NULL));
	assert_no_ut_failures();
}

Test(uthread, self_is_handle_from_spawn, .timeout = 10)
{
	sa_uthread_t t;

	h_start(0);
	t = h_spawn(ret_self, NULL);
	cr_assert_eq((sa_uthread_t)IP(h_join(t)), t);
}

static void *ext_self(void *arg)
{
	(void)arg;
	return UP(sa_self());
}

Test(uthread, self_from_pthread_is_zero, .timeout = 10)
{
	h_start(2);
	cr_assert_eq(IP(h_pthread_join(h_pthread(ext_self, NULL))), 0u);
}

Test(uthread, join_twice_esrch, .timeout = 10)
{
	sa_uthread_t t;

	h_start(0);
	t = h_spawn(ret_arg, NULL);
	h_join(t);
	SA_ERR(sa_join(t, NULL), -ESRCH);
}

Test(uthread, join_zero_handle_esrch, .timeout = 10)
{
	h_start(0);
	SA_ERR(sa_join(0, NULL), -ESRCH);
}

Test(uthread, join_never_existed_esrch, .timeout = 10)
{
	h_start(0);
	SA_ERR(sa_join(((sa_uthread_t)12345 << 32) | 0x7ffff000u, NULL), -ESRCH);
}

Test(uthread, handles_never_reused, .timeout = 20)
{
	enum { N = 2000 };
	static sa_uthread_t t[N];

	h_start(1);
	for (int i = 0; i < N; i++) {
		t[i] = h_spawn(ret_arg, NULL);
		h_join(t[i]);
		for (int j = 0; j < i; j++)
			cr_assert_neq(t[i], t[j], "handle %d reused as %d", j, i);
	}
	for (int i = 0; i < N; i += 97)
		SA_ERR(sa_join(t[i], NULL), -ESRCH);
}

Test(uthread, join_detached_einval, .timeout = 10)
{
	sa_sem_t s;
	sa_uthread_t t;

	h_start(0);
	SA_OK(sa_sem_init(&s, 0));
	t = spawn_detached(wait_sem, &s);
	SA_ERR(sa_join(t, NULL), -EINVAL);
	SA_OK(sa_sem_post(&s));
	assert_no_ut_failures();
}

struct joiner_arg {
	sa_uthread_t target;
	_Atomic int entered;
	int rc;
};

static void *joiner(void *arg)
{
	struct joiner_arg *j = arg;

	atomic_store(&j->entered, 1);
	j->rc = sa_join(j->target, NULL);
	return NULL;
}

Test(uthread, join_already_being_joined_einval, .timeout = 10)
{
	sa_sem_t s;
	struct joiner_arg j = { 0 };
	sa_uthread_t jt;

	h_start(0);
	SA_OK(sa_sem_init(&s, 0));
	j.target = h_spawn(wait_sem, &s);
	jt = h_spawn(joiner, &j);
	cr_assert(h_wait_atomic_ge(&j.entered, 1, 5 * NSEC_PER_SEC_));
	SA_OK(sa_sleep_ns(30 * NSEC_PER_MSEC)); /* let it park in sa_join */
	SA_ERR(sa_join(j.target, NULL), -EINVAL);
	SA_OK(sa_sem_post(&s));
	h_join(jt);
	cr_assert_eq(j.rc, 0, "the first joiner got %d", j.rc);
}

Test(uthread, join_self_edeadlk, .timeout = 10)
{
	h_start(0);
	SA_ERR(sa_join(sa_self(), NULL), -EDEADLK);
}

static void *join_self_in_uthread(void *arg)
{
	(void)arg;
	return UP((intptr_t)sa_join(sa_self(), NULL));
}

Test(uthread, join_self_in_spawned_edeadlk, .timeout = 10)
{
	h_start(0);
	cr_assert_eq((int)(intptr_t)h_join(h_spawn(join_self_in_uthread, NULL)),
		     -EDEADLK);
}

/* ---- detach ---- */

Test(uthread, detach_then_join_einval, .timeout = 10)
{
	sa_sem_t s;
	sa_uthread_t t;

	h_start(0);
	SA_OK(sa_sem_init(&s, 0));
	t = h_spawn(wait_sem, &s);
	SA_OK(sa_detach(t));
	SA_ERR(sa_join(t, NULL), -EINVAL);
	SA_OK(sa_sem_post(&s));
}

Test(uthread, detach_twice_einval, .timeout = 10)
{
	sa_sem_t s;
	sa_uthread_t t;

	h_start(0);
	SA_OK(sa_sem_init(&s, 0));
	t = h_spawn(wait_sem, &s);
	SA_OK(sa_detach(t));
	SA_ERR(sa_detach(t), -EINVAL);
	SA_OK(sa_sem_post(&s));
}

Test(uthread, detach_joined_handle_esrch, .timeout = 10)
{
	sa_uthread_t t;

	h_start(0);
	t = h_spawn(ret_arg, NULL);
	h_join(t);
	SA_ERR(sa_detach(t), -ESRCH);
}

Test(uthread, detach_zero_handle_esrch, .timeout = 10)
{
	h_start(0);
	SA_ERR(sa_detach(0), -ESRCH);
}

Test(uthread, detach_while_being_joined_einval, .timeout = 10)
{
	sa_sem_t s;
	struct joiner_arg j = { 0 };
	sa_uthread_t jt;

	h_start(0);
	SA_OK(sa_sem_init(&s, 0));
	j.target = h_spawn(wait_sem, &s);
	jt = h_spawn(joiner, &j);
	cr_assert(h_wait_atomic_ge(&j.entered, 1, 5 * NSEC_PER_SEC_));
	SA_OK(sa_sleep_ns(30 * NSEC_PER_MSEC));
	SA_ERR(sa_detach(j.target), -EINVAL);
	SA_OK(sa_sem_post(&s));
	h_join(jt);
	cr_assert_eq(j.rc, 0);
}

Test(uthread, detach_after_end_releases, .timeout = 10)
{
	sa_uthread_t t;

	h_start(0);
	t = h_spawn(ret_arg, NULL);
	SA_OK(sa_sleep_ns(20 * NSEC_PER_MSEC)); /* let it end, unjoined */
	SA_OK(sa_detach(t));
	SA_ERR(sa_join(t, NULL), -ESRCH);
}

Test(uthread, detached_uthreads_release_resources, .timeout = 20)
{
	enum { N = 2000 };
	struct sa_stats a, b;
	sa_sem_t s;

	h_start(0);
	SA_OK(sa_sem_init(&s, 0));
	a = h_stats();
	for (int i = 0; i < N; i++)
		spawn_detached(post_sem, &s);
	for (int i = 0; i < N; i++)
		SA_OK(sa_sem_wait(&s));
	SA_OK(sa_sleep_ns(50 * NSEC_PER_MSEC));
	b = h_stats();
	cr_assert_geq(b.exited - a.exited, (uint64_t)N);
	cr_assert_leq(b.live, a.live,
		      "live: %lu before, %lu after all detached uthreads ended",
		      (unsigned long)a.live, (unsigned long)b.live);
}

/* ---- sa_exit ---- */

static _Atomic int after_exit_ran;

static __attribute__((noinline)) void exit_deep(int depth)
{
	if (depth > 0)
		exit_deep(depth - 1);
	if (depth == 0)
		sa_exit(UP(0xabc));
	atomic_store(&after_exit_ran, 1);
}

static void *exits_with_value(void *arg)
{
	(void)arg;
	exit_deep(5);
	atomic_store(&after_exit_ran, 1);
	return UP(1);
}

Test(uthread, exit_value_reported_by_join, .timeout = 10)
{
	h_start(0);
	cr_assert_eq(IP(h_join(h_spawn(exits_with_value, NULL))), 0xabcu);
	cr_assert_eq(atomic_load(&after_exit_ran), 0, "sa_exit returned");
}

static void *ext_exit(void *arg)
{
	(void)arg;
	sa_exit(UP(4242));
}

Test(uthread, exit_from_pthread_is_pthread_exit, .timeout = 10)
{
	h_start(2);
	cr_assert_eq(IP(h_pthread_join(h_pthread(ext_exit, NULL))), 4242u);
}

/* ---- yield ---- */

Test(uthread, yield_returns_zero, .timeout = 10)
{
	h_start(0);
	SA_OK(sa_yield());
}

static void *ext_yield(void *arg)
{
	(void)arg;
	return UP((intptr_t)sa_yield());
}

Test(uthread, yield_from_pthread_returns_zero, .timeout = 10)
{
	h_start(2);
	cr_assert_eq(IP(h_pthread_join(h_pthread(ext_yield, NULL))), 0u);
}

static _Atomic int flag_set;

static void *set_flag(void *arg)
{
	(void)arg;
	atomic_store(&flag_set, 1);
	return NULL;
}

Test(uthread, yield_runs_queued_uthread_first, .timeout = 10)
{
	sa_uthread_t t;

	h_start_env("1");
	t = h_spawn(set_flag, NULL);
	SA_OK(sa_yield());
	cr_assert_eq(atomic_load(&flag_set), 1,
		     "after one sa_yield the runnable uthread must have run");
	h_join(t);
}

enum { RR_N = 4, RR_ROUNDS = 6 };
static int rr_log[RR_N * RR_ROUNDS];
static int rr_pos;

static void *rr_worker(void *arg)
{
	for (int i = 0; i < RR_ROUNDS; i++) {
		rr_log[rr_pos++] = (int)IP(arg);
		sa_yield();
	}
	return NULL;
}

Test(uthread, yield_round_robin_on_one_vp, .timeout = 10)
{
	sa_uthread_t t[RR_N];

	h_start_env("1");
	cr_assert_eq(sa_nvps(), 1u);
	for (int i = 0; i < RR_N; i++)
		t[i] = h_spawn(rr_worker, UP(i));
	for (int i = 0; i < RR_N; i++)
		h_join(t[i]);
	cr_assert_eq(rr_pos, RR_N * RR_ROUNDS);
	/* the first round names every uthread once ... */
	for (int i = 0; i < RR_N; i++)
		for (int j = i + 1; j < RR_N; j++)
			cr_assert_neq(rr_log[i], rr_log[j],
				      "first round repeats uthread %d", rr_log[i]);
	/* ... and every later round repeats it in the same order */
	for (int i = RR_N; i < RR_N * RR_ROUNDS; i++)
		cr_assert_eq(rr_log[i], rr_log[i - RR_N],
			     "log[%d] = %d but log[%d] = %d: not round-robin", i,
			     rr_log[i], i - RR_N, rr_log[i - RR_N]);
}

/* ---- sleep ---- */

Test(uthread, sleep_ns_never_early, .timeout = 10)
{
	static const uint64_t ns[] = { 1, 1000, 50000, 1000000, 5000000, 20000000 };

	h_start(0);
	for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		uint64_t t0 = h_mono(), dt;

		SA_OK(sa_sleep_ns(ns[i]));
		dt = h_mono() - t0;
		cr_assert_geq(dt, ns[i], "sa_sleep_ns(%lu) returned after %lu ns",
			      (unsigned long)ns[i], (unsigned long)dt);
	}
}

Test(uthread, sleep_ns_zero_returns, .timeout = 10)
{
	h_start(0);
	SA_OK(sa_sleep_ns(0));
}

static void *sleeper(void *arg)
{
	uint64_t seed = IP(arg) + 1;

	for (int i = 0; i < 20; i++) {
		uint64_t ns = h_rand(&seed) % (2 * NSEC_PER_MSEC);
		uint64_t t0 = h_mono();

		UT_CHECK_EQ(sa_sleep_ns(ns), 0);
		UT_CHECK(h_mono() - t0 >= ns);
	}
	return NULL;
}

Test(uthread, sleep_ns_many_concurrent_never_early, .timeout = 20)
{
	enum { N = 200 };
	sa_uthread_t t[N];

	h_start(0);
	for (int i = 0; i < N; i++)
		t[i] = h_spawn(sleeper, UP(i));
	for (int i = 0; i < N; i++)
		h_join(t[i]);
	assert_no_ut_failures();
}

static void *ext_sleep(void *arg)
{
	uint64_t t0 = h_mono();

	(void)arg;
	UT_CHECK_EQ(sa_sleep_ns(20 * NSEC_PER_MSEC), 0);
	UT_CHECK(h_mono() - t0 >= 20 * NSEC_PER_MSEC);
	return NULL;
}

Test(uthread, sleep_ns_from_pthread_never_early, .timeout = 10)
{
	h_start(2);
	h_pthread_join(h_pthread(ext_sleep, NULL));
	assert_no_ut_failures();
}

static void check_sleep_until(clockid_t clk)
{
	struct timespec dl = h_deadline(clk, 30 * NSEC_PER_MSEC);

	SA_OK(sa_sleep_until(clk, &dl));
	cr_assert_geq(h_now(clk), h_ts_ns(&dl), "woke before the deadline");
}

Test(uthread, sleep_until_monotonic, .timeout = 10)
{
	h_start(0);
	check_sleep_until(CLOCK_MONOTONIC);
}

Test(uthread, sleep_until_realtime, .timeout = 10)
{
	h_start(0);
	check_sleep_until(CLOCK_REALTIME);
}

Test(uthread, sleep_until_past_returns_at_once, .timeout = 10)
{
	struct timespec dl;
	uint64_t t0;

	h_start(0);
	dl = h_deadline(CLOCK_MONOTONIC, -(int64_t)NSEC_PER_SEC_);
	t0 = h_mono();
	SA_OK(sa_sleep_until(CLOCK_MONOTONIC, &dl));
	cr_assert_lt(h_mono() - t0, 500 * NSEC_PER_MSEC);
}

Test(uthread, sleep_until_null_einval, .timeout = 10)
{
	h_start(0);
	SA_ERR(sa_sleep_until(CLOCK_MONOTONIC, NULL), -EINVAL);
}

Test(uthread, sleep_until_bad_nsec_einval, .timeout = 10)
{
	struct timespec big = { .tv_sec = 0, .tv_nsec = 1000000000 };
	struct timespec neg = { .tv_sec = 0, .tv_nsec = -1 };

	h_start(0);
	big.tv_sec = (time_t)(h_mono() / NSEC_PER_SEC_) + 1;
	neg.tv_sec = big.tv_sec;
	SA_ERR(sa_sleep_until(CLOCK_MONOTONIC, &big), -EINVAL);
	SA_ERR(sa_sleep_until(CLOCK_REALTIME, &neg), -EINVAL);
}

Test(uthread, sleep_until_bad_clock_einval, .timeout = 10)
{
	struct timespec dl;

	h_start(0);
	dl = h_deadline(CLOCK_MONOTONIC, 1000);
	SA_ERR(sa_sleep_until(CLOCK_PROCESS_CPUTIME_ID, &dl), -EINVAL);
	SA_ERR(sa_sleep_until(CLOCK_BOOTTIME, &dl), -EINVAL);
}

/* ---- attributes ---- */

Test(uthread, attr_init_null_einval, .timeout = 10)
{
	SA_ERR(sa_attr_init(NULL), -EINVAL);
}

Test(uthread, attr_stacksize_limits, .timeout = 10)
{
	sa_attr_t a;

	SA_OK(sa_attr_init(&a));
	SA_ERR(sa_attr_setstacksize(&a, SA_STACK_MIN - 1), -EINVAL);
	SA_ERR(sa_attr_setstacksize(&a, 0), -EINVAL);
	SA_ERR(sa_attr_setstacksize(&a, SA_STACK_MAX + 1), -EINVAL);
	SA_OK(sa_attr_setstacksize(&a, SA_STACK_MIN));
	SA_OK(sa_attr_setstacksize(&a, SA_STACK_MAX));
	SA_OK(sa_attr_setstacksize(&a, 100000)); /* not page aligned */
}

Test(uthread, attr_guardsize_limits, .timeout = 10)
{
	sa_attr_t a;

	SA_OK(sa_attr_init(&a));
	SA_OK(sa_attr_setguardsize(&a, 0));
	SA_OK(sa_attr_setguardsize(&a, 1));
	SA_OK(sa_attr_setguardsize(&a, 64ul << 20));
	SA_ERR(sa_attr_setguardsize(&a, (64ul << 20) + 1), -EINVAL);
}

Test(uthread, attr_prio_unknown_einval, .timeout = 10)
{
	sa_attr_t a;

	SA_OK(sa_attr_init(&a));
	SA_OK(sa_attr_setprio(&a, SA_PRIO_DEREF));
	SA_OK(sa_attr_setprio(&a, SA_PRIO_SYSTEM));
	SA_OK(sa_attr_setprio(&a, SA_PRIO_NORMAL));
	SA_ERR(sa_attr_setprio(&a, SA_NR_PRIO), -EINVAL);
	SA_ERR(sa_attr_setprio(&a, -1), -EINVAL);
}

Test(uthread, attr_name_null_einval, .timeout = 10)
{
	sa_attr_t a;

	SA_OK(sa_attr_init(&a));
	SA_ERR(sa_attr_setname(&a, NULL), -EINVAL);
}

Test(uthread, attr_setters_on_uninitialised_einval, .timeout = 10)
{
	sa_attr_t a;

	memset(&a, 0, sizeof(a));
	SA_ERR(sa_attr_setstacksize(&a, 65536), -EINVAL);
	SA_ERR(sa_attr_setguardsize(&a, 4096), -EINVAL);
	SA_ERR(sa_attr_setprio(&a, SA_PRIO_NORMAL), -EINVAL);
	SA_ERR(sa_attr_setdetached(&a, 1), -EINVAL);
	SA_ERR(sa_attr_setname(&a, "x"), -EINVAL);
}

Test(uthread, attr_null_setters_einval, .timeout = 10)
{
	SA_ERR(sa_attr_setstacksize(NULL, 65536), -EINVAL);
	SA_ERR(sa_attr_setguardsize(NULL, 4096), -EINVAL);
	SA_ERR(sa_attr_setprio(NULL, SA_PRIO_NORMAL), -EINVAL);
	SA_ERR(sa_attr_setdetached(NULL, 1), -EINVAL);
	SA_ERR(sa_attr_setname(NULL, "x"), -EINVAL);
}

static void *get_own_prio(void *arg)
{
	int p = -1;

	(void)arg;
	UT_CHECK_EQ(sa_getprio(sa_self(), &p), 0);
	return UP(p);
}

Test(uthread, attr_prio_applied, .timeout = 10)
{
	h_start(0);
	cr_assert_eq(IP(h_join(h_spawn_prio(get_own_prio, NULL, SA_PRIO_SYSTEM))),
		     (uintptr_t)SA_PRIO_SYSTEM);
	assert_no_ut_failures();
}

Test(uthread, default_prio_normal, .timeout = 10)
{
	int p = -1;

	h_start(0);
	cr_assert_eq(IP(h_join(h_spawn(get_own_prio, NULL))),
		     (uintptr_t)SA_PRIO_NORMAL);
	SA_OK(sa_getprio(sa_self(), &p));
	cr_assert_eq(p, SA_PRIO_NORMAL);
}

Test(uthread, setprio_getprio_roundtrip, .timeout = 10)
{
	sa_sem_t s;
	sa_uthread_t t;
	int p = -1;

	h_start(0);
	SA_OK(sa_sem_init(&s, 0));
	t = h_spawn(wait_sem, &s);
	SA_OK(sa_setprio(t, SA_PRIO_DEREF));
	SA_OK(sa_getprio(t, &p));
	cr_assert_eq(p, SA_PRIO_DEREF);
	SA_OK(sa_setprio(sa_self(), SA_PRIO_SYSTEM));
	SA_OK(sa_getprio(sa_self(), &p));
	cr_assert_eq(p, SA_PRIO_SYSTEM);
	SA_OK(sa_sem_post(&s));
	h_join(t);
}

Test(uthread, setprio_unknown_einval, .timeout = 10)
{
	h_start(0);
	SA_ERR(sa_setprio(sa_self(), SA_NR_PRIO), -EINVAL);
	SA_ERR(sa_setprio(sa_self(), -1), -EINVAL);
}

Test(uthread, getprio_null_einval, .timeout = 10)
{
	h_start(0);
	SA_ERR(sa_getprio(sa_self(), NULL), -EINVAL);
}

Test(uthread, prio_stale_handle_esrch, .timeout = 10)
{
	sa_uthread_t t;
	int p;

	h_start(0);
	t = h_spawn(ret_arg, NULL);
	h_join(t);
	SA_ERR(sa_setprio(t, SA_PRIO_NORMAL), -ESRCH);
	SA_ERR(sa_getprio(t, &p), -ESRCH);
}

/* ---- names ---- */

static void *get_own_name(void *arg)
{
	char *buf = arg;

	UT_CHECK_EQ(sa_getname(sa_self(), buf, 16), 0);
	return NULL;
}

Test(uthread, attr_name_applied, .timeout = 10)
{
	sa_attr_t a;
	sa_uthread_t t;
	char buf[16] = "garbage";

	h_start(0);
	SA_OK(sa_attr_init(&a));
	SA_OK(sa_attr_setname(&a, "worker-7"));
	SA_OK(sa_spawn(&t, &a, get_own_name, buf));
	h_join(t);
	assert_no_ut_failures();
	cr_assert_str_eq(buf, "worker-7");
}

Test(uthread, default_name_empty, .timeout = 10)
{
	char buf[16] = "garbage";

	h_start(0);
	h_join(h_spawn(get_own_name, buf));
	assert_no_ut_failures();
	cr_assert_str_eq(buf, "");
}

Test(uthread, attr_name_truncated_to_15, .timeout = 10)
{
	sa_attr_t a;
	sa_uthread_t t;
	char buf[16];

	h_start(0);
	SA_OK(sa_attr_init(&a));
	SA_OK(sa_attr_setname(&a, "0123456789abcdefghij"));
	SA_OK(sa_spawn(&t, &a, get_own_name, buf));
	h_join(t);
	assert_no_ut_failures();
	cr_assert_str_eq(buf, "0123456789abcde");
}

Test(uthread, setname_getname_other, .timeout = 10)
{
	sa_sem_t s;
	sa_uthread_t t;
	char buf[32];

	h_start(0);
	SA_OK(sa_sem_init(&s, 0));
	t = h_spawn(wait_sem, &s);
	SA_OK(sa_setname(t, "renamed"));
	SA_OK(sa_getname(t, buf, sizeof(buf)));
	cr_assert_str_eq(buf, "renamed");
	SA_OK(sa_sem_post(&s));
	h_join(t);
}

Test(uthread, setname_self_truncated, .timeout = 10)
{
	char buf[16];

	h_start(0);
	SA_OK(sa_setname(sa_self(), "a-very-long-uthread-name"));
	SA_OK(sa_getname(sa_self(), buf, sizeof(buf)));
	cr_assert_str_eq(buf, "a-very-long-uth");
}

Test(uthread, getname_short_buffer_erange, .timeout = 10)
{
	char buf[16];

	h_start(0);
	SA_OK(sa_setname(sa_self(), "x"));
	SA_ERR(sa_getname(sa_self(), buf, 15), -ERANGE);
	SA_ERR(sa_getname(sa_self(), buf, 0), -ERANGE);
}

Test(uthread, getname_null_buf_einval, .timeout = 10)
{
	h_start(0);
	SA_ERR(sa_getname(sa_self(), NULL, 16), -EINVAL);
}

Test(uthread, setname_null_einval, .timeout = 10)
{
	h_start(0);
	SA_ERR(sa_setname(sa_self(), NULL), -EINVAL);
}

Test(uthread, names_stale_handle_esrch, .timeout = 10)
{
	sa_uthread_t t;
	char buf[16];

	h_start(0);
	t = h_spawn(ret_arg, NULL);
	h_join(t);
	SA_ERR(sa_setname(t, "late"), -ESRCH);
	SA_ERR(sa_getname(t, buf, sizeof(buf)), -ESRCH);
}

/* ---- blocking parks the uthread, never its VP ---- */

static _Atomic int parked_then_woken;

static void *wait_sem_flag(void *arg)
{
	UT_CHECK_EQ(sa_sem_wait(arg), 0);
	atomic_store(&parked_then_woken, 1);
	return NULL;
}

Test(uthread, blocking_wait_parks_uthread_not_vp, .timeout = 10)
{
	sa_sem_t s;
	sa_uthread_t t;

	h_start_env("1");
	SA_OK(sa_sem_init(&s, 0));
	t = h_spawn(wait_sem_flag, &s);
	SA_OK(sa_yield()); /* t runs and parks; the only VP must come back */
	cr_assert_eq(atomic_load(&parked_then_woken), 0);
	SA_OK(sa_sem_post(&s));
	h_join(t);
	assert_no_ut_failures();
	cr_assert_eq(atomic_load(&parked_then_woken), 1);
}

static _Atomic int sleeper_done;

static void *long_sleeper(void *arg)
{
	(void)arg;
	sa_sleep_ns(100 * NSEC_PER_MSEC);
	atomic_store(&sleeper_done, 1);
	return NULL;
}

Test(uthread, sleep_parks_uthread_not_vp, .timeout = 10)
{
	sa_uthread_t t;
	int spins = 0;

	h_start_env("1");
	t = h_spawn(long_sleeper, NULL);
	SA_OK(sa_yield()); /* the sleeper starts sleeping */
	while (atomic_load(&sleeper_done) == 0 && spins < 1000000) {
		SA_OK(sa_yield());
		spins++;
	}
	h_join(t);
	cr_assert_gt(spins, 0, "the VP slept along with the uthread");
	cr_assert_eq(atomic_load(&sleeper_done), 1);
}
