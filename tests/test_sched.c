/* test_sched.c - priority classes, next-slot handoffs, stealing across VPs */
#include "helpers.h"

/* A run log for one-VP tests: no locking needed with SA_VPS=1. */
static char run_log[64];
static int run_pos;

static void *log_char(void *arg)
{
	run_log[run_pos++] = (char)IP(arg);
	return NULL;
}

static sa_uthread_t spawn_prio_log(int prio, char c)
{
	return h_spawn_prio(log_char, UP(c), prio);
}

Test(sched, spawned_higher_class_runs_first, .timeout = 10)
{
	sa_uthread_t t[5];

	h_start_env("1");
	cr_assert_eq(sa_nvps(), 1u);
	t[0] = spawn_prio_log(SA_PRIO_NORMAL, 'n');
	t[1] = spawn_prio_log(SA_PRIO_NORMAL, 'n');
	t[2] = spawn_prio_log(SA_PRIO_SYSTEM, 's');
	t[3] = spawn_prio_log(SA_PRIO_NORMAL, 'n');
	t[4] = spawn_prio_log(SA_PRIO_DEREF, 'd');
	for (int i = 0; i < 5; i++)
		h_join(t[i]);
	cr_assert_str_eq(run_log, "dsnnn");
}

static sa_sem_t wake_sem;

static void *wait_then_log(void *arg)
{
	UT_CHECK_EQ(sa_sem_wait(&wake_sem), 0);
	run_log[run_pos++] = (char)IP(arg);
	return NULL;
}

Test(sched, woken_higher_class_runs_before_queued_lower, .timeout = 10)
{
	sa_uthread_t h, n[3];

	h_start_env("1");
	SA_OK(sa_sem_init(&wake_sem, 0));
	h = h_spawn_prio(wait_then_log, UP('S'), SA_PRIO_SYSTEM);
	SA_OK(sa_sleep_ns(10 * NSEC_PER_MSEC)); /* h parks on the semaphore */
	cr_assert_eq(run_pos, 0);
	for (int i = 0; i < 3; i++)
		n[i] = spawn_prio_log(SA_PRIO_NORMAL, 'n');
	SA_OK(sa_sem_post(&wake_sem));
	h_join(h);
	for (int i = 0; i < 3; i++)
		h_join(n[i]);
	assert_no_ut_failures();
	cr_assert_str_eq(run_log, "Snnn");
}

Test(sched, woken_deref_runs_before_woken_system, .timeout = 10)
{
	sa_uthread_t a, b;

	h_start_env("1");
	SA_OK(sa_sem_init(&wake_sem, 0));
	a = h_spawn_prio(wait_then_log, UP('s'), SA_PRIO_SYSTEM);
	SA_OK(sa_sleep_ns(5 * NSEC_PER_MSEC));
	b = h_spawn_prio(wait_then_log, UP('d'), SA_PRIO_DEREF);
	SA_OK(sa_sleep_ns(5 * NSEC_PER_MSEC));
	/* both parked, a first: a is woken first but b has the higher class */
	SA_OK(sa_sem_post(&wake_sem));
	SA_OK(sa_sem_post(&wake_sem));
	h_join(a);
	h_join(b);
	assert_no_ut_failures();
	cr_assert_str_eq(run_log, "ds");
}

Test(sched, setprio_applies_when_queued, .timeout = 10)
{
	sa_uthread_t a, b;

	h_start_env("1");
	SA_OK(sa_sem_init(&wake_sem, 0));
	a = h_spawn(wait_then_log, UP('a'));
	SA_OK(sa_sleep_ns(5 * NSEC_PER_MSEC));
	b = h_spawn(wait_then_log, UP('b'));
	SA_OK(sa_sleep_ns(5 * NSEC_PER_MSEC));
	SA_OK(sa_setprio(b, SA_PRIO_SYSTEM));
	SA_OK(sa_sem_post(&wake_sem)); /* wakes a (normal) */
	SA_OK(sa_sem_post(&wake_sem)); /* wakes b (now system) */
	h_join(a);
	h_join(b);
	assert_no_ut_failures();
	cr_assert_str_eq(run_log, "ba");
}

static void *yielding_logger(void *arg)
{
	for (int i = 0; i < 3; i++) {
		run_log[run_pos++] = (char)IP(arg);
		sa_yield();
	}
	return NULL;
}

Test(sched, higher_class_yield_does_not_run_lower, .timeout = 10)
{
	sa_uthread_t n, d;

	h_start_env("1");
	n = spawn_prio_log(SA_PRIO_NORMAL, 'n');
	d = h_spawn_prio(yielding_logger, UP('d'), SA_PRIO_DEREF);
	h_join(d);
	h_join(n);
	cr_assert_str_eq(run_log, "dddn");
}

Test(sched, yield_round_robin_within_class, .timeout = 10)
{
	sa_uthread_t a, b;

	h_start_env("1");
	a = h_spawn_prio(yielding_logger, UP('a'), SA_PRIO_SYSTEM);
	b = h_spawn_prio(yielding_logger, UP('b'), SA_PRIO_SYSTEM);
	h_join(a);
	h_join(b);
	cr_assert_eq(run_pos, 6);
	cr_assert_neq(run_log[0], run_log[1]);
	for (int i = 2; i < 6; i++)
		cr_assert_eq(run_log[i], run_log[i - 2], "log %s", run_log);
}

/* ---- next slot ---- */

static sa_sem_t ping, pong;
enum { PINGS = 1000 };

static void *ponger(void *arg)
{
	(void)arg;
	for (int i = 0; i < PINGS; i++) {
		UT_CHECK_EQ(sa_sem_wait(&ping), 0);
		UT_CHECK_EQ(sa_sem_post(&pong), 0);
	}
	return NULL;
}

Test(sched, wake_handoff_uses_next_slot, .timeout = 10)
{
	struct sa_stats a, b;
	sa_uthread_t t;

	h_start_env("1");
	SA_OK(sa_sem_init(&ping, 0));
	SA_OK(sa_sem_init(&pong, 0));
	t = h_spawn(ponger, NULL);
	a = h_stats();
	for (int i = 0; i < PINGS; i++) {
		SA_OK(sa_sem_post(&ping));
		SA_OK(sa_sem_wait(&pong));
	}
	b = h_stats();
	h_join(t);
	assert_no_ut_failures();
	cr_assert_geq(b.switches - a.switches, (uint64_t)PINGS);
	cr_assert_geq(b.next_handoffs - a.next_handoffs, (uint64_t)PINGS,
		      "%lu next-slot handoffs in %d ping-pongs",
		      (unsigned long)(b.next_handoffs - a.next_handoffs), PINGS);
}

Test(sched, next_slot_keeps_ping_pong_on_one_vp_multi, .timeout = 10)
{
	struct sa_stats a, b;
	sa_uthread_t t;

	h_start_env("2");
	SA_OK(sa_sem_init(&ping, 0));
	SA_OK(sa_sem_init(&pong, 0));
	t = h_spawn(ponger, NULL);
	a = h_stats();
	for (int i = 0; i < PINGS; i++) {
		SA_OK(sa_sem_post(&ping));
		SA_OK(sa_sem_wait(&pong));
	}
	b = h_stats();
	h_join(t);
	assert_no_ut_failures();
	cr_assert_gt(b.next_handoffs - a.next_handoffs, 0u);
}

/* ---- stealing ---- */

static _Atomic int vp_seen[SA_VPS_MAX];

static void *spin_and_record(void *arg)
{
	int vp;

	h_spin_ns(IP(arg));
	vp = sa_vp_self();
	UT_CHECK(vp >= 0 && vp < SA_VPS_MAX);
	if (vp >= 0 && vp < SA_VPS_MAX)
		atomic_fetch_add(&vp_seen[vp], 1);
	return NULL;
}

Test(sched, idle_vp_steals_queued_work, .timeout = 10)
{
	enum { N = 40 };
	sa_uthread_t t[N];
	struct sa_stats a, b;

	h_start_env("2");
	cr_assert_eq(sa_nvps(), 2u);
	cr_assert_eq(sa_vp_self(), 0);
	a = h_stats();
	/* all spawned on VP 0, the caller's VP */
	for (int i = 0; i < N; i++)
		t[i] = h_spawn(spin_and_record, UP(3 * NSEC_PER_MSEC));
	for (int i = 0; i < N; i++)
		h_join(t[i]);
	b = h_stats();
	assert_no_ut_failures();
	cr_assert_gt(atomic_load(&vp_seen[1]), 0, "nothing ran on VP 1");
	cr_assert_gt(b.steals - a.steals, 0u);
	cr_assert_geq(b.stolen - a.stolen, b.steals - a.steals);
}

/*
 * Stealing respects classes: the caller keeps VP 0 busy (it never yields)
 * while VP 1 steals everything it queued.  A thief takes only the highest
 * non-empty class, so every higher-class uthread starts before any of a
 * lower class.
 */
static _Atomic int steal_seq;
static int steal_order[64];

static _Atomic int blocker_state; /* 1: running, 2: may return */
static _Atomic int blocker_vp = -1;

static void *record_start(void *arg)
{
	steal_order[atomic_fetch_add(&steal_seq, 1)] = IP(arg);
	return NULL;
}

static void *hold_vp(void *arg)
{
	(void)arg;
	atomic_store(&blocker_state, 1);
	while (atomic_load(&blocker_state) != 2)
		atomic_store(&blocker_vp, sa_vp_self());
	return NULL;
}

Test(sched, stealing_takes_highest_class_first, .timeout = 30)
{
	enum { N = 36, MARK = 100 };
	static const int cls[3] = { SA_PRIO_NORMAL, SA_PRIO_SYSTEM, SA_PRIO_DEREF };
	sa_uthread_t t[N + 1], blocker;
	uint64_t until = h_mono() + 10 * NSEC_PER_SEC_;
	int i, prev = SA_PRIO_DEREF, marks = 0;

	h_start_env("2");
	/* The blocker takes a VP and spins there; we wait, without
	 * yielding, until it spins on the other VP than ours.  With that VP
	 * busy, nothing we queue can be stolen before all of it is queued. */
	blocker = h_spawn(hold_vp, NULL);
	SA_OK(sa_sleep_ns(20 * NSEC_PER_MSEC));
	while ((atomic_load(&blocker_state) != 1 || atomic_load(&blocker_vp) < 0 ||
		atomic_load(&blocker_vp) == sa_vp_self()) && h_mono() < until)
		;
	cr_assert_eq(atomic_load(&blocker_state), 1, "the blocker did not start");
	cr_assert_neq(atomic_load(&blocker_vp), sa_vp_self());
	/* Interleave the classes in spawn order: n s d n s d ... */
	for (i = 0; i < N; i++)
		t[i] = h_spawn_prio(record_start, UP(cls[i % 3]), cls[i % 3]);
	/* The last spawn sits in our next slot, which a thief takes only
	 * once the queues are empty, and we may run it first if we are
	 * preempted; it is not part of the order checked. */
	t[N] = h_spawn_prio(record_start, UP(MARK), SA_PRIO_DEREF);
	atomic_store(&blocker_state, 2);
	/* Keep our VP busy (no yield): the other VP steals the work. */
	while (atomic_load(&steal_seq) < N + 1 && h_mono() < until)
		;
	cr_assert_eq(atomic_load(&steal_seq), N + 1, "the work did not run");
	for (i = 0; i <= N; i++) {
		int c = steal_order[i];

		if (c == MARK) {
			marks++;
			continue;
		}
		cr_assert_geq(c, prev, "class %d started after class %d (position %d)",
			      c, prev, i);
		prev = c;
	}
	cr_assert_eq(marks, 1);
	for (i = 0; i <= N; i++)
		h_join(t[i]);
	h_join(blocker);
	assert_no_ut_failures();
}

Test(sched, work_spreads_over_vps, .timeout = 20)
{
	enum { N = 128 };
	sa_uthread_t t[N];
	int used = 0;

	h_start(4);
	for (int i = 0; i < N; i++)
		t[i] = h_spawn(spin_and_record, UP(2 * NSEC_PER_MSEC));
	for (int i = 0; i < N; i++)
		h_join(t[i]);
	assert_no_ut_failures();
	for (int v = 0; v < 4; v++)
		used += atomic_load(&vp_seen[v]) > 0;
	cr_assert_geq(used, 2, "only %d of 4 VPs ran work", used);
}

static void *ext_spawner(void *arg)
{
	sa_uthread_t t[16];

	(void)arg;
	for (int i = 0; i < 16; i++)
		UT_CHECK_EQ(sa_spawn(&t[i], NULL, spin_and_record,
				     UP(NSEC_PER_MSEC)), 0);
	for (int i = 0; i < 16; i++)
		UT_CHECK_EQ(sa_join(t[i], NULL), 0);
	return NULL;
}

Test(sched, spawn_from_pthread_wakes_idle_vps, .timeout = 10)
{
	int total = 0;

	h_start(2);
	SA_OK(sa_sleep_ns(20 * NSEC_PER_MSEC)); /* let VPs go idle */
	h_pthread_join(h_pthread(ext_spawner, NULL));
	assert_no_ut_failures();
	for (int v = 0; v < 2; v++)
		total += atomic_load(&vp_seen[v]);
	cr_assert_eq(total, 16);
}

static sa_sem_t ext_sem;

static void *ext_post_later(void *arg)
{
	(void)arg;
	h_os_sleep_ns(30 * NSEC_PER_MSEC);
	UT_CHECK_EQ(sa_sem_post(&ext_sem), 0);
	return NULL;
}

Test(sched, idle_vps_park_and_are_woken, .timeout = 10)
{
	struct sa_stats a, b;
	pthread_t p;

	h_start(2);
	SA_OK(sa_sem_init(&ext_sem, 0));
	a = h_stats();
	/* every VP goes idle while the only uthread waits for a pthread */
	p = h_pthread(ext_post_later, NULL);
	SA_OK(sa_sem_wait(&ext_sem));
	b = h_stats();
	h_pthread_join(p);
	assert_no_ut_failures();
	cr_assert_gt(b.parks, a.parks, "no VP parked while all were idle");
	cr_assert_gt(b.wakes, a.wakes, "no futex wake of a parked VP was counted");
}

static _Atomic int sleeper_woke;

static void *sleep_briefly(void *arg)
{
	(void)arg;
	sa_sleep_ns(5 * NSEC_PER_MSEC);
	atomic_store(&sleeper_woke, 1);
	return NULL;
}

Test(sched, lone_yielder_lets_due_sleeper_run, .timeout = 10)
{
	uint64_t end;
	sa_uthread_t t;

	h_start_env("1");
	t = h_spawn(sleep_briefly, NULL);
	SA_OK(sa_yield()); /* it runs and parks on its timer */
	/* We yield with nobody else runnable: the yield itself must run the
	 * timer, since no switch does. */
	end = h_mono() + 2 * NSEC_PER_SEC_;
	while (!atomic_load(&sleeper_woke) && h_mono() < end)
		SA_OK(sa_yield());
	cr_assert(atomic_load(&sleeper_woke), "a yielding uthread starved a sleeper");
	h_join(t);
}
