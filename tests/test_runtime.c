/* test_runtime.c - runtime start (sa_init, $SA_VPS, defaults), sa_vp_self, stats */
#include "helpers.h"

static void *ret_arg(void *arg)
{
	return arg;
}

Test(runtime, init_explicit_sets_vp_count, .timeout = 10)
{
	h_env_vps(NULL);
	SA_OK(sa_init(2));
	cr_assert_eq(sa_nvps(), 2u);
}

Test(runtime, init_same_count_again_ok, .timeout = 10)
{
	h_env_vps(NULL);
	h_init(3);
	SA_OK(sa_init(3));
	cr_assert_eq(sa_nvps(), 3u);
}

Test(runtime, init_zero_when_running_ok, .timeout = 10)
{
	h_env_vps(NULL);
	SA_OK(sa_init(2));
	SA_OK(sa_init(0));
	cr_assert_eq(sa_nvps(), 2u);
}

Test(runtime, init_different_count_ebusy, .timeout = 10)
{
	h_env_vps(NULL);
	SA_OK(sa_init(2));
	SA_ERR(sa_init(3), -EBUSY);
	cr_assert_eq(sa_nvps(), 2u);
}

Test(runtime, init_over_max_einval, .timeout = 10)
{
	h_env_vps(NULL);
	SA_ERR(sa_init(SA_VPS_MAX + 1), -EINVAL);
}

Test(runtime, init_max_accepted, .timeout = 20)
{
	int r;

	h_env_vps(NULL);
	r = sa_init(SA_VPS_MAX);
	if (r == -EAGAIN || r == -ENOMEM)
		cr_skip_test("cannot create %d kernel threads here (%d)",
			     SA_VPS_MAX, r);
	cr_assert_eq(r, 0, "sa_init(SA_VPS_MAX) = %d", r);
	cr_assert_eq(sa_nvps(), (unsigned)SA_VPS_MAX);
}

Test(runtime, implicit_start_on_spawn, .timeout = 10)
{
	sa_uthread_t t;
	void *rv = NULL;

	h_env_vps(NULL);
	SA_OK(sa_spawn(&t, NULL, ret_arg, UP(77)));
	SA_OK(sa_join(t, &rv));
	cr_assert_eq(IP(rv), 77u);
	cr_assert_gt(sa_nvps(), 0u);
}

Test(runtime, implicit_start_on_nvps, .timeout = 10)
{
	h_env_vps("2");
	cr_assert_eq(sa_nvps(), 2u);
	cr_assert_eq(sa_vp_self(), 0, "caller must now be a uthread on VP 0");
}

Test(runtime, caller_becomes_uthread_on_vp0, .timeout = 10)
{
	h_start(2);
	cr_assert_eq(sa_vp_self(), 0);
	cr_assert_neq(sa_self(), 0);
}

Test(runtime, env_vps_overrides_default, .timeout = 10)
{
	h_env_vps("3");
	h_init(0);
	cr_assert_eq(sa_nvps(), 3u);
}

Test(runtime, env_vps_ignored_for_explicit_count, .timeout = 10)
{
	h_env_vps("3");
	SA_OK(sa_init(2));
	cr_assert_eq(sa_nvps(), 2u);
}

Test(runtime, env_vps_then_other_count_ebusy, .timeout = 10)
{
	h_env_vps("3");
	h_init(0);
	SA_ERR(sa_init(2), -EBUSY);
}

Test(runtime, env_vps_over_max_einval, .timeout = 10)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%d", SA_VPS_MAX + 1);
	h_env_vps(buf);
	SA_ERR(sa_init(0), -EINVAL);
}

Test(runtime, env_vps_garbage_einval, .timeout = 10)
{
	h_env_vps("lots");
	SA_ERR(sa_init(0), -EINVAL);
}

Test(runtime, env_vps_trailing_garbage_einval, .timeout = 10)
{
	h_env_vps("2x");
	SA_ERR(sa_init(0), -EINVAL);
}

Test(runtime, env_vps_negative_einval, .timeout = 10)
{
	h_env_vps("-1");
	SA_ERR(sa_init(0), -EINVAL);
}

Test(runtime, default_vps_is_affinity_cpu_count, .timeout = 10)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
	h_start(0);
	cr_assert_eq(sa_nvps(), (unsigned)CPU_COUNT(&set));
}

Test(runtime, default_vps_follows_restricted_affinity, .timeout = 10)
{
	cpu_set_t set;
	int cpu = -1, status = 0;
	pid_t pid;

	CPU_ZERO(&set);
	cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
	for (int i = 0; i < CPU_SETSIZE; i++) {
		if (CPU_ISSET(i, &set)) {
			cpu = i;
			break;
		}
	}
	cr_assert_geq(cpu, 0);

	pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		cpu_set_t one;
		unsigned n;

		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		if (sched_setaffinity(0, sizeof(one), &one) != 0)
			_exit(100);
		unsetenv("SA_VPS");
		n = sa_nvps();
		_exit(n == 1 ? 0 : (int)(n > 99 ? 99 : n) + 1);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status), "child died (status 0x%x)", status);
	cr_assert_neq(WEXITSTATUS(status), 100, "child sched_setaffinity failed");
	cr_assert_eq(WEXITSTATUS(status), 0,
		     "with 1 CPU in the affinity mask sa_nvps() = %d, expected 1",
		     WEXITSTATUS(status) - 1);
}

static void *record_vp(void *arg)
{
	int *out = arg;

	*out = sa_vp_self();
	return NULL;
}

Test(runtime, vp_self_in_range_in_uthreads, .timeout = 10)
{
	enum { N = 64 };
	int vp[N];
	sa_uthread_t t[N];
	unsigned nvps;

	h_env_vps("3");
	nvps = sa_nvps();
	cr_assert_eq(nvps, 3u);
	for (int i = 0; i < N; i++) {
		vp[i] = -1000;
		t[i] = h_spawn(record_vp, &vp[i]);
	}
	for (int i = 0; i < N; i++)
		h_join(t[i]);
	for (int i = 0; i < N; i++)
		cr_assert(vp[i] >= 0 && vp[i] < (int)nvps,
			  "uthread %d: sa_vp_self() = %d", i, vp[i]);
}

static void *ext_vp_self(void *arg)
{
	(void)arg;
	return UP((intptr_t)sa_vp_self());
}

Test(runtime, vp_self_from_pthread_eperm, .timeout = 10)
{
	pthread_t p;

	h_start(2);
	p = h_pthread(ext_vp_self, NULL);
	cr_assert_eq((int)(intptr_t)h_pthread_join(p), -EPERM);
}

Test(runtime, vp_self_before_start_from_pthread_eperm, .timeout = 10)
{
	pthread_t p;

	h_env_vps(NULL);
	p = h_pthread(ext_vp_self, NULL);
	cr_assert_eq((int)(intptr_t)h_pthread_join(p), -EPERM);
}

Test(runtime, stats_before_start_enosys, .timeout = 10)
{
	struct sa_stats st;

	h_env_vps(NULL);
	SA_ERR(sa_stats_get(&st, sizeof(st)), -ENOSYS);
}

Test(runtime, stats_null_einval, .timeout = 10)
{
	h_start(2);
	SA_ERR(sa_stats_get(NULL, sizeof(struct sa_stats)), -EINVAL);
}

Test(runtime, stats_count_spawns_and_exits, .timeout = 10)
{
	enum { N = 100 };
	struct sa_stats a, b;
	sa_uthread_t t[N];

	h_start(2);
	a = h_stats();
	cr_assert_eq(a.nvps, 2u);
	for (int i = 0; i < N; i++)
		t[i] = h_spawn(ret_arg, NULL);
	for (int i = 0; i < N; i++)
		h_join(t[i]);
	b = h_stats();
	cr_assert_geq(b.spawned - a.spawned, (uint64_t)N);
	cr_assert_geq(b.exited - a.exited, (uint64_t)N);
	cr_assert_eq(b.live, a.live, "live %lu before, %lu after joining all",
		     (unsigned long)a.live, (unsigned long)b.live);
	cr_assert_gt(b.switches, a.switches);
	cr_assert_gt(b.stacks_mapped, 0u);
}

Test(runtime, stats_count_timers, .timeout = 10)
{
	struct sa_stats a, b;

	h_start(2);
	a = h_stats();
	SA_OK(sa_sleep_ns(2 * NSEC_PER_MSEC));
	b = h_stats();
	cr_assert_gt(b.timers_fired, a.timers_fired);
}

Test(runtime, stats_count_parks_of_idle_vps, .timeout = 10)
{
	struct sa_stats st;

	h_start(2);
	SA_OK(sa_sleep_ns(50 * NSEC_PER_MSEC));
	st = h_stats();
	cr_assert_gt(st.parks, 0u, "an idle VP must park");
}

Test(runtime, stats_short_size_writes_prefix_only, .timeout = 10)
{
	struct sa_stats st;
	size_t n = offsetof(struct sa_stats, live);

	h_start(2);
	memset(&st, 0xa5, sizeof(st));
	SA_OK(sa_stats_get(&st, n));
	cr_assert_eq(st.nvps, 2u);
	for (size_t i = n; i < sizeof(st); i++)
		cr_assert_eq(((unsigned char *)&st)[i], 0xa5,
			     "byte %zu past size was written", i);
}

/*
 * sa_exit() from the main uthread: the process lives until the last uthread
 * ends, then exits with status 0.  Done in a child so the test survives.
 */
static int exit_pipe_wr = -1;

static void *late_writer(void *arg)
{
	(void)arg;
	sa_sleep_ns(50 * NSEC_PER_MSEC);
	if (write(exit_pipe_wr, "done", 4) != 4)
		_exit(3);
	return NULL;
}

Test(runtime, exit_from_main_waits_for_last_uthread, .timeout = 10)
{
	int fds[2], status = 0;
	char buf[8] = {0};
	ssize_t n, got = 0;
	pid_t pid;

	cr_assert_eq(pipe(fds), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		sa_attr_t a;

		close(fds[0]);
		exit_pipe_wr = fds[1];
		unsetenv("SA_VPS");
		if (sa_init(2) != 0 || sa_attr_init(&a) != 0 ||
		    sa_attr_setdetached(&a, 1) != 0 ||
		    sa_spawn(NULL, &a, late_writer, NULL) != 0)
			_exit(4);
		sa_exit(NULL);
	}
	close(fds[1]);
	while ((n = read(fds[0], buf + got, sizeof(buf) - 1 - (size_t)got)) > 0)
		got += n;
	close(fds[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert_str_eq(buf, "done", "the last uthread did not finish");
	cr_assert(WIFEXITED(status), "child died by a signal (0x%x)", status);
	cr_assert_eq(WEXITSTATUS(status), 0);
}

static void *spin_1ms(void *arg)
{
	h_spin_ns(NSEC_PER_MSEC);
	return arg;
}

static void *ext_start_and_use(void *arg)
{
	sa_uthread_t t[16];
	void *rv;

	(void)arg;
	for (int i = 0; i < 16; i++)
		UT_CHECK_EQ(sa_spawn(&t[i], NULL, spin_1ms, UP(i + 1)), 0);
	for (int i = 0; i < 16; i++) {
		rv = NULL;
		UT_CHECK_EQ(sa_join(t[i], &rv), 0);
		UT_CHECK_EQ(IP(rv), i + 1);
	}
	return NULL;
}

Test(runtime, implicit_start_from_pthread, .timeout = 10)
{
	h_env_vps("2");
	h_pthread_join(h_pthread(ext_start_and_use, NULL));
	assert_no_ut_failures();
	cr_assert_eq(sa_nvps(), 2u);
	cr_assert_eq(IP(h_join(h_spawn(ret_arg, UP(3)))), 3u);
}

Test(runtime, nvps_zero_when_start_fails, .timeout = 10)
{
	h_env_vps("garbage");
	cr_assert_eq(sa_nvps(), 0u);
}

Test(runtime, spawn_reports_init_error, .timeout = 10)
{
	sa_uthread_t t;

	h_env_vps("garbage");
	SA_ERR(sa_spawn(&t, NULL, ret_arg, NULL), -EINVAL);
}

/* ---- fork() from a uthread: the child starts a runtime of its own ---- */

/*
 * skip_child_runtime_under_asan - the tests whose child starts a runtime
 * (threads, allocations) do not run under AddressSanitizer: the one in
 * this toolchain (GCC 12) does not hold its allocator's region locks
 * across fork(), so the child of a multi-threaded parent can hang for
 * good in its first allocation of a size class that another parent
 * thread was refilling (seen in SizeClassAllocator64::GetFromAllocator,
 * in most runs).  The plain build runs them.
 */
static void skip_child_runtime_under_asan(void)
{
#ifdef __SANITIZE_ADDRESS__
	cr_skip_test("AddressSanitizer's allocator is not fork-safe in a multi-threaded parent");
#endif
}

/* wait_child - the child's exit status, or 128 + its signal. */
static int wait_child(pid_t pid)
{
	int status = 0;

	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static sa_mutex_t fork_m;
static long fork_count;

static void *fork_adder(void *arg)
{
	(void)arg;
	for (int i = 0; i < 1000; i++) {
		sa_mutex_lock(&fork_m);
		fork_count++;
		sa_mutex_unlock(&fork_m);
		if (i % 100 == 0)
			sa_yield();
	}
	return NULL;
}

/* In the child: four uthreads on a fresh runtime; exit 0 if all went well. */
static void child_runs_uthreads(void)
{
	sa_uthread_t t[4];

	alarm(10);
	fork_count = 0;
	for (int i = 0; i < 4; i++)
		if (sa_spawn(&t[i], NULL, fork_adder, NULL) != 0)
			_exit(2);
	for (int i = 0; i < 4; i++)
		if (sa_join(t[i], NULL) != 0)
			_exit(3);
	_exit(fork_count == 4000 && sa_nvps() == 2 ? 0 : 4);
}

static void *forker(void *arg)
{
	pid_t pid;

	(void)arg;
	pid = fork();
	if (pid == 0)
		child_runs_uthreads();
	return (void *)(intptr_t)wait_child(pid);
}

Test(runtime, fork_child_of_a_uthread_runs_uthreads, .timeout = 20)
{
	sa_uthread_t t;
	void *st;

	skip_child_runtime_under_asan();
	h_start(2);
	SA_OK(sa_mutex_init(&fork_m, SA_MUTEX_NORMAL));
	t = h_spawn(forker, NULL);
	st = h_join(t);
	cr_assert_eq((intptr_t)st, 0, "the child exited %ld", (long)(intptr_t)st);
}

Test(runtime, fork_child_of_the_main_uthread_runs_uthreads, .timeout = 20)
{
	pid_t pid;

	skip_child_runtime_under_asan();
	h_start(2);
	SA_OK(sa_mutex_init(&fork_m, SA_MUTEX_NORMAL));
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		child_runs_uthreads();
	cr_assert_eq(wait_child(pid), 0);
}

/* ---- the parent's waiters are not the child's ---- */

static sa_cond_t fork_c;
static atomic_int fork_queued;

static void *mutex_waiter(void *arg)
{
	(void)arg;
	atomic_store(&fork_queued, 1);
	UT_CHECK(sa_mutex_lock(&fork_m) == 0);
	UT_CHECK(sa_mutex_unlock(&fork_m) == 0);
	return NULL;
}

/* A uthread of the parent waits for a mutex the forking uthread holds:
 * the child's unlock must leave the mutex free, not hand it to a uthread
 * that does not exist there. */
Test(runtime, fork_child_unlock_skips_parent_waiter, .timeout = 20)
{
	sa_uthread_t t;
	pid_t pid;

	h_start(2);
	SA_OK(sa_mutex_init(&fork_m, SA_MUTEX_NORMAL));
	SA_OK(sa_mutex_lock(&fork_m));
	t = h_spawn(mutex_waiter, NULL);
	while (!atomic_load(&fork_queued))
		sa_yield();
	sa_sleep_ns(20 * 1000 * 1000); /* it is queued by now */
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		alarm(10);
		if (sa_mutex_unlock(&fork_m) != 0)
			_exit(2);
		_exit(sa_mutex_trylock(&fork_m) == 0 ? 0 : 3);
	}
	SA_OK(sa_mutex_unlock(&fork_m));
	h_join(t);
	assert_no_ut_failures();
	cr_assert_eq(wait_child(pid), 0, "the child's mutex went to the parent's waiter");
}

static void *cond_waiter(void *arg)
{
	struct timespec abs;
	int r;

	(void)arg;
	clock_gettime(CLOCK_MONOTONIC, &abs);
	abs.tv_sec += 3;
	UT_CHECK(sa_mutex_lock(&fork_m) == 0);
	atomic_fetch_add(&fork_queued, 1);
	r = sa_cond_timedwait(&fork_c, &fork_m, &abs);
	UT_CHECK(sa_mutex_unlock(&fork_m) == 0);
	return (void *)(intptr_t)r;
}

/* A parent's uthread waits on a condition variable at the fork; in the
 * child a uthread waits on it too, and one signal must wake that one. */
Test(runtime, fork_child_signal_skips_parent_waiter, .timeout = 20)
{
	sa_uthread_t t;
	pid_t pid;

	skip_child_runtime_under_asan();
	h_start(2);
	SA_OK(sa_mutex_init(&fork_m, SA_MUTEX_NORMAL));
	SA_OK(sa_cond_init(&fork_c, CLOCK_MONOTONIC));
	t = h_spawn(cond_waiter, NULL);
	while (atomic_load(&fork_queued) < 1)
		sa_yield();
	SA_OK(sa_mutex_lock(&fork_m)); /* it is in its wait once we have it */
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		sa_uthread_t c;
		void *r = NULL;

		alarm(10);
		sa_mutex_unlock(&fork_m);
		if (sa_spawn(&c, NULL, cond_waiter, NULL) != 0)
			_exit(2);
		while (atomic_load(&fork_queued) < 2)
			sa_yield();
		sa_mutex_lock(&fork_m); /* the child's waiter is in its wait */
		sa_cond_signal(&fork_c);
		sa_mutex_unlock(&fork_m);
		if (sa_join(c, &r) != 0)
			_exit(3);
		_exit((intptr_t)r == 0 ? 0 : 4);
	}
	SA_OK(sa_cond_signal(&fork_c));
	SA_OK(sa_mutex_unlock(&fork_m));
	cr_assert_eq((intptr_t)h_join(t), 0);
	assert_no_ut_failures();
	cr_assert_eq(wait_child(pid), 0, "the child's signal went to the parent's waiter");
}
