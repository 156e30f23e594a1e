/* test_stress.c - thousands of uthreads mixing every sync object; parked-VP wakeups */
#include "helpers.h"

/*
 * mixed_sync: every uthread runs ROUNDS rounds.  In each round it does a few
 * random independent steps (mutex, rwlock, semaphore, once, sleep, yield),
 * then a condition-variable ping-pong with its partner, then waits on its
 * group's barrier.  Everybody does the same dependent steps in the same
 * order, so the only way not to finish is a lost wakeup (timeout).  A
 * per-uthread "running" flag, flipped with atomic_exchange around sections
 * that yield, catches a uthread that runs twice at once; return values
 * prove every uthread was joined exactly once.
 */

enum {
	NUT = 5000,      /* uthreads */
	ROUNDS = 10,
	STEPS = 6,       /* independent steps per round */
	GROUP = 8,       /* barrier group size (divides NUT) */
	SEM_UNITS = 16,  /* concurrency allowed inside the semaphore section */
};

static sa_mutex_t big_mutex = SA_MUTEX_INITIALIZER;
static long big_counter;                 /* under big_mutex */
static _Atomic long big_expected;

static sa_rwlock_t pair_rw = SA_RWLOCK_INITIALIZER;
static long pair_a, pair_b;              /* equal whenever read-held */

static sa_sem_t limit_sem;
static _Atomic int in_sem;

static sa_once_t round_once[ROUNDS];
static _Atomic int once_calls;

struct pair {
	sa_mutex_t m;
	sa_cond_t c;
	int turn;                        /* 0 or 1: whose move it is */
};
static struct pair pairs[NUT / 2];
static sa_barrier_t groups[NUT / GROUP];

static _Atomic int running[NUT];
static _Atomic int double_runs;
static _Atomic int errors;

static void once_fn(void)
{
	atomic_fetch_add(&once_calls, 1);
}

#define EXPECT0(expr)                                          \
	do {                                                   \
		if ((expr) != 0)                               \
			atomic_fetch_add(&errors, 1);          \
	} while (0)

static void enter(int me)
{
	if (atomic_exchange(&running[me], 1) != 0)
		atomic_fetch_add(&double_runs, 1);
}

static void leave(int me)
{
	if (atomic_exchange(&running[me], 0) != 1)
		atomic_fetch_add(&double_runs, 1);
}

static void step(int me, uint64_t *seed)
{
	switch (h_rand(seed) % 6) {
	case 0: /* mutex with a yield inside */
		EXPECT0(sa_mutex_lock(&big_mutex));
		enter(me);
		{
			long c = big_counter;

			sa_yield();
			big_counter = c + 1;
		}
		leave(me);
		EXPECT0(sa_mutex_unlock(&big_mutex));
		atomic_fetch_add(&big_expected, 1);
		break;
	case 1: /* rwlock writer */
		EXPECT0(sa_rwlock_wrlock(&pair_rw));
		enter(me);
		pair_a++;
		sa_yield();
		pair_b++;
		leave(me);
		EXPECT0(sa_rwlock_unlock(&pair_rw));
		break;
	case 2: /* rwlock reader */
		EXPECT0(sa_rwlock_rdlock(&pair_rw));
		enter(me);
		{
			long a = pair_a;

			sa_yield();
			if (pair_b != a)
				atomic_fetch_add(&errors, 1);
		}
		leave(me);
		EXPECT0(sa_rwlock_unlock(&pair_rw));
		break;
	case 3: /* counting semaphore as a concurrency limit */
		EXPECT0(sa_sem_wait(&limit_sem));
		enter(me);
		if (atomic_fetch_add(&in_sem, 1) >= SEM_UNITS)
			atomic_fetch_add(&errors, 1);
		sa_sleep_ns(h_rand(seed) % (50 * NSEC_PER_USEC));
		atomic_fetch_sub(&in_sem, 1);
		leave(me);
		EXPECT0(sa_sem_post(&limit_sem));
		break;
	case 4: /* short sleep */
		enter(me);
		sa_sleep_ns(h_rand(seed) % (200 * NSEC_PER_USEC));
		leave(me);
		break;
	default: /* plain yields */
		enter(me);
		sa_yield();
		sa_yield();
		leave(me);
		break;
	}
}

static void cond_pingpong(int me)
{
	struct pair *p = &pairs[me / 2];
	int side = me & 1;

	EXPECT0(sa_mutex_lock(&p->m));
	while (p->turn != side)
		EXPECT0(sa_cond_wait(&p->c, &p->m));
	enter(me);
	sa_yield();
	p->turn = !side;
	leave(me);
	EXPECT0(sa_cond_broadcast(&p->c));
	EXPECT0(sa_mutex_unlock(&p->m));
}

static void *mixed_worker(void *arg)
{
	int me = (int)IP(arg);
	uint64_t seed = (uint64_t)me * 0x9e3779b97f4a7c15ull + 1;

	for (int r = 0; r < ROUNDS; r++) {
		for (int s = 0; s < STEPS; s++)
			step(me, &seed);
		EXPECT0(sa_once(&round_once[r], once_fn));
		if (atomic_load(&once_calls) < r + 1)
			atomic_fetch_add(&errors, 1);
		cond_pingpong(me);
		int b = sa_barrier_wait(&groups[me / GROUP]);
		if (b != 0 && b != SA_BARRIER_SERIAL)
			atomic_fetch_add(&errors, 1);
	}
	return UP(me ^ 0x5a5a);
}

static void run_mixed(void)
{
	static sa_uthread_t t[NUT];
	static unsigned char joined[NUT];
	unsigned v = 0;

	SA_OK(sa_sem_init(&limit_sem, SEM_UNITS));
	for (int i = 0; i < ROUNDS; i++) {
		sa_once_t o = SA_ONCE_INIT;

		round_once[i] = o;
	}
	for (int i = 0; i < NUT / 2; i++) {
		SA_OK(sa_mutex_init(&pairs[i].m, SA_MUTEX_NORMAL));
		SA_OK(sa_cond_init(&pairs[i].c, CLOCK_MONOTONIC));
	}
	for (int i = 0; i < NUT / GROUP; i++)
		SA_OK(sa_barrier_init(&groups[i], GROUP));
	for (int i = 0; i < NUT; i++)
		t[i] = h_spawn(mixed_worker, UP(i));
	for (int i = 0; i < NUT; i++) {
		uintptr_t rv = IP(h_join(t[i]));
		int who = (int)(rv ^ 0x5a5a);

		cr_assert(who >= 0 && who < NUT, "bad return value %#lx",
			  (unsigned long)rv);
		cr_assert_eq(joined[who], 0, "uthread %d reported twice", who);
		joined[who] = 1;
	}
	for (int i = 0; i < NUT; i++)
		cr_assert_eq(joined[i], 1, "uthread %d never reported", i);
	for (int i = 0; i < NUT; i += 101)
		SA_ERR(sa_join(t[i], NULL), -ESRCH);

	cr_assert_eq(atomic_load(&double_runs), 0, "%d double runs",
		     atomic_load(&double_runs));
	cr_assert_eq(atomic_load(&errors), 0, "%d invariant errors",
		     atomic_load(&errors));
	cr_assert_eq(big_counter, atomic_load(&big_expected));
	cr_assert_eq(pair_a, pair_b);
	cr_assert_eq(atomic_load(&once_calls), ROUNDS);
	SA_OK(sa_sem_getvalue(&limit_sem, &v));
	cr_assert_eq(v, (unsigned)SEM_UNITS);
	for (int i = 0; i < NUT / 2; i++)
		cr_assert_eq(pairs[i].turn, 0, "pair %d out of step", i);
}

Test(stress, mixed_sync_objects_all_vps, .timeout = 60)
{
	h_start(0);
	run_mixed();
}

Test(stress, mixed_sync_objects_oversubscribed_vps, .timeout = 60)
{
	h_start_env("6"); /* more VPs than CPUs: kernel preemption mixes more */
	run_mixed();
}

Test(stress, mixed_sync_objects_one_vp, .timeout = 60)
{
	h_start_env("1");
	run_mixed();
}

/* ---- spawning storms: uthreads that spawn and join uthreads ---- */

static _Atomic long leaves;

static void *tree(void *arg)
{
	int depth = (int)IP(arg);
	sa_uthread_t kids[4];
	long sum = 1;
	int n;

	if (depth == 0) {
		atomic_fetch_add(&leaves, 1);
		return UP(1);
	}
	n = depth % 2 ? 4 : 3;
	for (int i = 0; i < n; i++)
		if (sa_spawn(&kids[i], NULL, tree, UP(depth - 1)) != 0)
			atomic_fetch_add(&errors, 1);
	for (int i = 0; i < n; i++) {
		void *rv = NULL;

		if (sa_join(kids[i], &rv) != 0)
			atomic_fetch_add(&errors, 1);
		sum += (long)IP(rv);
	}
	return UP(sum);
}

Test(stress, spawn_tree_joins_every_node, .timeout = 60)
{
	long nodes = 1, level = 1;

	h_start(0);
	for (int d = 7; d > 0; d--) {
		level *= d % 2 ? 4 : 3;
		nodes += level;
	}
	cr_assert_eq((long)IP(h_join(h_spawn(tree, UP(7)))), nodes);
	cr_assert_eq(atomic_load(&errors), 0);
	cr_assert_eq(atomic_load(&leaves), level);
}

/* ---- parked-VP wakeups ---- */

/*
 * Every round, all VPs go idle: the workers wait on their semaphores and
 * the main uthread waits on `done`.  A plain pthread then wakes the workers
 * (sa_sem_post from a non-uthread) after a short OS sleep; each worker
 * sleeps a little on a libsa timer (a parked VP must be woken for it) and
 * posts `done`.  A lost wakeup shows up as a timeout.
 */
enum { WAKE_ROUNDS = 4000, MAX_WORKERS = 8 };
static sa_sem_t work[MAX_WORKERS], done;
static int nworkers;
static _Atomic int stop_workers;
static _Atomic long worker_rounds;

static void *wake_worker(void *arg)
{
	int me = (int)IP(arg);
	uint64_t seed = (uint64_t)me + 77;

	for (;;) {
		EXPECT0(sa_sem_wait(&work[me]));
		if (atomic_load(&stop_workers))
			return NULL;
		if (h_rand(&seed) % 2)
			sa_sleep_ns(h_rand(&seed) % (100 * NSEC_PER_USEC));
		atomic_fetch_add(&worker_rounds, 1);
		EXPECT0(sa_sem_post(&done));
	}
}

static sa_sem_t round_go;

static void *waker_pthread(void *arg)
{
	uint64_t seed = 12345;

	(void)arg;
	for (int r = 0; r < WAKE_ROUNDS; r++) {
		if (sa_sem_wait(&round_go) != 0)
			atomic_fetch_add(&errors, 1);
		h_os_sleep_ns(h_rand(&seed) % (150 * NSEC_PER_USEC));
		for (int i = 0; i < nworkers; i++)
			if (sa_sem_post(&work[i]) != 0)
				atomic_fetch_add(&errors, 1);
	}
	return NULL;
}

Test(stress, parked_vps_woken_by_pthread_and_timers, .timeout = 60)
{
	sa_uthread_t w[MAX_WORKERS];
	pthread_t p;
	struct sa_stats a, b;

	h_start(0);
	nworkers = (int)sa_nvps() + 1;
	if (nworkers > MAX_WORKERS)
		nworkers = MAX_WORKERS;
	SA_OK(sa_sem_init(&done, 0));
	SA_OK(sa_sem_init(&round_go, 0));
	for (int i = 0; i < nworkers; i++) {
		SA_OK(sa_sem_init(&work[i], 0));
		w[i] = h_spawn(wake_worker, UP(i));
	}
	a = h_stats();
	p = h_pthread(waker_pthread, NULL);
	for (int r = 0; r < WAKE_ROUNDS; r++) {
		uint64_t seed = (uint64_t)r + 1;

		/* a libsa timer wakes us with every VP idle */
		if (r % 3 == 0)
			SA_OK(sa_sleep_ns(h_rand(&seed) % (100 * NSEC_PER_USEC)));
		SA_OK(sa_sem_post(&round_go));
		for (int i = 0; i < nworkers; i++)
			SA_OK(sa_sem_wait(&done));
	}
	h_pthread_join(p);
	b = h_stats();
	atomic_store(&stop_workers, 1);
	for (int i = 0; i < nworkers; i++)
		SA_OK(sa_sem_post(&work[i]));
	for (int i = 0; i < nworkers; i++)
		h_join(w[i]);
	cr_assert_eq(atomic_load(&errors), 0);
	cr_assert_eq(atomic_load(&worker_rounds), (long)WAKE_ROUNDS * nworkers);
	cr_assert_gt(b.parks, a.parks);
	cr_assert_gt(b.timers_fired, a.timers_fired);
}

/* Timers alone: sleepers on every VP with nothing else to do. */
static void *timer_sleeper(void *arg)
{
	uint64_t seed = IP(arg) + 5;

	for (int i = 0; i < 1000; i++) {
		uint64_t ns = 20 * NSEC_PER_USEC + h_rand(&seed) % (300 * NSEC_PER_USEC);
		uint64_t t0 = h_mono();

		EXPECT0(sa_sleep_ns(ns));
		if (h_mono() - t0 < ns)
			atomic_fetch_add(&errors, 1);
	}
	return NULL;
}

Test(stress, timer_wakeups_of_idle_vps, .timeout = 60)
{
	sa_uthread_t t[MAX_WORKERS];
	int n;

	h_start(0);
	n = (int)sa_nvps() + 2;
	if (n > MAX_WORKERS)
		n = MAX_WORKERS;
	for (int i = 0; i < n; i++)
		t[i] = h_spawn(timer_sleeper, UP(i));
	for (int i = 0; i < n; i++)
		h_join(t[i]);
	cr_assert_eq(atomic_load(&errors), 0, "%d early or failed sleeps",
		     atomic_load(&errors));
}

/* External pthreads spawn detached uthreads into an idle runtime. */
enum { EXT_SPAWNS = 3000 };
static sa_sem_t spawned_done;

static void *post_done(void *arg)
{
	(void)arg;
	EXPECT0(sa_sem_post(&spawned_done));
	return NULL;
}

static void *ext_spawner(void *arg)
{
	sa_attr_t a;
	uint64_t seed = IP(arg) + 99;

	EXPECT0(sa_attr_init(&a));
	EXPECT0(sa_attr_setdetached(&a, 1));
	for (int i = 0; i < EXT_SPAWNS; i++) {
		if (h_rand(&seed) % 4 == 0)
			h_os_sleep_ns(h_rand(&seed) % (100 * NSEC_PER_USEC));
		EXPECT0(sa_spawn(NULL, &a, post_done, NULL));
	}
	return NULL;
}

Test(stress, pthreads_spawn_into_idle_runtime, .timeout = 60)
{
	pthread_t p[2];

	h_start(0);
	SA_OK(sa_sem_init(&spawned_done, 0));
	for (int i = 0; i < 2; i++)
		p[i] = h_pthread(ext_spawner, UP(i));
	for (int i = 0; i < 2 * EXT_SPAWNS; i++)
		SA_OK(sa_sem_wait(&spawned_done));
	for (int i = 0; i < 2; i++)
		h_pthread_join(p[i]);
	cr_assert_eq(atomic_load(&errors), 0);
}
