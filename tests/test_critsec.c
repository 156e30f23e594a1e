/* test_critsec.c - critical-section copies: every section recovered, no lock held off-processor */

/*
 * These tests link the tests' own build of the library (tests/local.mk:
 * the same sources, copies and checks, plus SA_DEBUG_LOCKS), statically,
 * so that they can read the critical-section table and the lock checker's
 * counter, which libsa.so does not export.  The runtime starts with
 * SA_DEBUG_TICK_US: a wall-clock tick every few microseconds on each VP,
 * every tick counting as the end of a quantum (upcall.h), so ticks land
 * inside critical sections often enough to recover each one within
 * seconds even on a loaded machine.  A workload that lives in every
 * section runs until each table entry has been recovered at least once,
 * or a deadline passes.
 */
#include "helpers.h"

#include "defs.h"
#include "critsec/critsec.h"

extern _Atomic uint64_t sa_debug_lock_violations;

#define TICK_US "20"
#define MIX_LIMIT_NS (100 * NSEC_PER_SEC_) /* 1-5 s on a quiet machine */

/*
 * Sanitizer builds: the copies are built and checked as always, but the
 * forced tick is not run there.  The sanitizer runtimes keep per-kernel-
 * thread state (LSan's disable count, ASan's fiber switch), and a uthread
 * preempted inside one of their interceptors resumes on another VP's
 * thread: with a tick every few microseconds that is certain to happen.
 */
#ifdef SA_SANITIZE
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

static void start_ticking(void)
{
	struct sa_stats st;

	if (SANITIZED)
		cr_skip_test("sanitizer runtimes cannot take a tick every few microseconds");
	setenv("SA_BACKEND", "emulated", 1);
	setenv("SA_DEBUG_TICK_US", TICK_US, 1);
	h_start_env("2");
	st = h_stats();
	if (st.quantum_ns == 0)
		cr_skip_test("this machine cannot preempt (no XSAVE)");
}

static size_t table_len(void)
{
	return (size_t)(__stop_sa_cs_table - __start_sa_cs_table);
}

static bool all_recovered(void)
{
	for (struct cs_entry *e = __start_sa_cs_table; e < __stop_sa_cs_table; e++)
		if (atomic_load_explicit(&e->count, memory_order_relaxed) == 0)
			return false;
	return true;
}

/* names_recovered - has every section of the NULL-ended list @names (a
 * workload's own) been recovered?  A workload that has done its part
 * stops, leaving the processors to the others. */
static bool names_recovered(const char *const *names)
{
	for (; *names; names++)
		for (struct cs_entry *e = __start_sa_cs_table; e < __stop_sa_cs_table; e++)
			if (strcmp(e->name, *names) == 0 &&
			    atomic_load_explicit(&e->count, memory_order_relaxed) == 0)
				return false;
	return true;
}

/* ---- the workload ---- */

static _Atomic int stop;
static sa_mutex_t mtx;
static sa_cond_t cond;
static uint64_t counter;          /* under mtx */
static _Atomic unsigned churn_rounds;
static _Atomic uint64_t increments;
static char scratch[2][4096];

/*
 * Time in libc, where a tick may preempt.  Through a pointer, so that the
 * compiler cannot inline it: this program carries libsa's text, and ticks
 * in libsa's text (which here is all of the program) never preempt.
 */
static void *(*volatile libc_memset)(void *, int, size_t) = memset;

static void libc_work(int i)
{
	libc_memset(scratch[i & 1], i, sizeof(scratch[0]));
}

static void *yielder(void *arg)
{
	sa_uthread_t *peer = arg;
	unsigned n = 0;

	while (!atomic_load(&stop)) {
		sa_yield();
		libc_work((int)n);
		if ((++n & 7) == 0 && *peer)   /* re-class a queued uthread */
			sa_setprio(*peer, (n & 8) ? SA_PRIO_NORMAL : SA_PRIO_SYSTEM);
	}
	return NULL;
}

static void *child(void *arg)
{
	libc_work((int)IP(arg));
	return arg;
}

static void *spawner(void *arg)
{
	(void)arg;
	for (uintptr_t i = 0; !atomic_load(&stop); i++) {
		sa_uthread_t t[4];

		for (int k = 0; k < 4; k++)
			UT_CHECK(sa_spawn(&t[k], NULL, child, UP(i + k)) == 0);
		for (int k = 0; k < 4; k++) {
			void *rv = NULL;

			UT_CHECK(sa_join(t[k], &rv) == 0);
			UT_CHECK(IP(rv) == i + k);
		}
		sa_yield(); /* to the back of the queue: let the others run */
	}
	return NULL;
}

static void *sleeper(void *arg)
{
	uint64_t s = IP(arg);

	while (!atomic_load(&stop)) {
		sa_sleep_ns(1000 + h_rand(&s) % 40000);
		libc_work((int)s);
	}
	return NULL;
}

static void *locker(void *arg)
{
	uint64_t s = IP(arg);

	while (!atomic_load(&stop)) {
		struct timespec dl = h_deadline(CLOCK_MONOTONIC, (int64_t)(h_rand(&s) % 30000));

		sa_mutex_lock(&mtx);
		counter++;
		atomic_fetch_add(&increments, 1);
		libc_work((int)s);
		/* Yield holding the mutex: the others queue on it (the
		 * slow paths of lock and unlock). */
		if ((s & 7) == 1)
			sa_yield();
		/* Timed waits: some time out (the waiter takes itself off
		 * the queue), some are woken first (the timer is cancelled). */
		if ((s & 3) == 0)
			sa_cond_timedwait(&cond, &mtx, &dl);
		sa_mutex_unlock(&mtx);
		if (s & 1)
			sa_cond_signal(&cond);
		else
			sa_cond_broadcast(&cond);
	}
	return NULL;
}

/* churner - every sync object's life: init, each operation, destroy. */
static _Atomic unsigned once_runs;

static void once_fn(void)
{
	atomic_fetch_add(&once_runs, 1);
}

static const char *const churner_sections[] = {
	"mutex_retire", "cond_retire", "sem_retire", "barrier_retire", "rw_retire",
	"barrier_arrive", "barrier_leave", "once_begin", "once_end", NULL,
};

static void *churner(void *arg)
{
	uint64_t s = IP(arg);
	unsigned rounds = 0;

	while (!atomic_load(&stop) && !names_recovered(churner_sections)) {
		sa_mutex_t m;
		sa_cond_t c;
		sa_sem_t sem;
		sa_barrier_t b, b2;
		sa_rwlock_t rw;
		sa_once_t o = SA_ONCE_INIT;

		UT_CHECK(sa_mutex_init(&m, SA_MUTEX_RECURSIVE) == 0);
		UT_CHECK(sa_cond_init(&c, CLOCK_MONOTONIC) == 0);
		UT_CHECK(sa_sem_init(&sem, 0) == 0);
		UT_CHECK(sa_barrier_init(&b, 1) == 0);
		UT_CHECK(sa_rwlock_init(&rw) == 0);
		UT_CHECK(sa_mutex_lock(&m) == 0);
		UT_CHECK(sa_cond_signal(&c) == 0);
		UT_CHECK(sa_cond_broadcast(&c) == 0);
		UT_CHECK(sa_mutex_unlock(&m) == 0);
		UT_CHECK(sa_sem_post(&sem) == 0);
		UT_CHECK(sa_sem_wait(&sem) == 0);
		UT_CHECK(sa_barrier_wait(&b) == SA_BARRIER_SERIAL);
		/* An interrupted arrival counts itself out (barrier_leave). */
		UT_CHECK(sa_barrier_init(&b2, 2) == 0);
		UT_CHECK(ut_interrupt(sa_self()) == 0);
		UT_CHECK(barrier_wait_intr(&b2) == -EINTR);
		UT_CHECK(sa_barrier_destroy(&b2) == 0);
		UT_CHECK(sa_rwlock_rdlock(&rw) == 0);
		UT_CHECK(sa_rwlock_unlock(&rw) == 0);
		UT_CHECK(sa_rwlock_wrlock(&rw) == 0);
		UT_CHECK(sa_rwlock_unlock(&rw) == 0);
		UT_CHECK(sa_once(&o, once_fn) == 0);
		UT_CHECK(sa_once(&o, once_fn) == 0);
		UT_CHECK(sa_mutex_destroy(&m) == 0);
		UT_CHECK(sa_cond_destroy(&c) == 0);
		UT_CHECK(sa_sem_destroy(&sem) == 0);
		UT_CHECK(sa_barrier_destroy(&b) == 0);
		UT_CHECK(sa_rwlock_destroy(&rw) == 0);
		libc_work((int)s);
		if ((++rounds & 15) == 0)
			sa_yield();
	}
	atomic_fetch_add(&churn_rounds, rounds);
	return NULL;
}

/*
 * Contended sync objects: a semaphore ping-pong (waits that queue, posts
 * that hand a unit over) and a reader-writer lock whose writer holds it
 * long enough that timed readers and writers give up (rw_give_up).
 */
static sa_sem_t ping, pong;
static sa_rwlock_t rwl;

static const char *const pinger_sections[] = {
	"sem_take_locking", "sem_give", "rw_acquire", "rw_release", "rw_give_up",
	"rw_grant_locked", NULL,
};

static void *pinger(void *arg)
{
	sa_sem_t *mine = (IP(arg) & 1) ? &ping : &pong;
	sa_sem_t *theirs = (IP(arg) & 1) ? &pong : &ping;
	uint64_t s = IP(arg) + 5;

	while (!atomic_load(&stop) && !names_recovered(pinger_sections)) {
		struct timespec dl = h_deadline(CLOCK_MONOTONIC, 1000000);
		int r;

		UT_CHECK(sa_sem_post(theirs) == 0);
		r = sa_sem_timedwait(mine, CLOCK_MONOTONIC, &dl);
		UT_CHECK(r == 0 || r == -ETIMEDOUT);
		dl = h_deadline(CLOCK_MONOTONIC, (int64_t)(h_rand(&s) % 20000));
		r = (s & 1) ? sa_rwlock_timedrdlock(&rwl, CLOCK_MONOTONIC, &dl)
			    : sa_rwlock_timedwrlock(&rwl, CLOCK_MONOTONIC, &dl);
		UT_CHECK(r == 0 || r == -ETIMEDOUT);
		if (r == 0) {
			if ((s & 1) == 0)
				sa_sleep_ns(h_rand(&s) % 30000);
			UT_CHECK(sa_rwlock_unlock(&rwl) == 0);
		}
	}
	return NULL;
}

/*
 * Robust mutexes: a contended lock (waiters queue and are handed it) whose
 * owner now and then is a uthread that ends holding it, so that the next
 * owner gets -EOWNERDEAD and makes it consistent.
 */
static sa_mutex_t robust_mtx;
static _Atomic uint64_t robust_dead, robust_reported;

static const char *const robust_sections[] = {
	"robust_take_or_flag", "robust_release", NULL,
};

static void *robust_end_holding(void *arg)
{
	(void)arg;
	if (sa_mutex_lock(&robust_mtx) == -EOWNERDEAD) {
		atomic_fetch_add(&robust_reported, 1);
		UT_CHECK(sa_mutex_consistent(&robust_mtx) == 0);
	}
	atomic_fetch_add(&robust_dead, 1);
	return NULL;
}

static void *robuster(void *arg)
{
	uint64_t s = IP(arg);

	while (!atomic_load(&stop) && !names_recovered(robust_sections)) {
		int r = sa_mutex_lock(&robust_mtx);

		UT_CHECK(r == 0 || r == -EOWNERDEAD);
		if (r == -EOWNERDEAD) {
			atomic_fetch_add(&robust_reported, 1);
			UT_CHECK(sa_mutex_consistent(&robust_mtx) == 0);
		}
		/* Now and then only: a tick in the C library is not taken, and
		 * the sections sought are the lock's own. */
		if ((h_rand(&s) & 7) == 0)
			libc_work((int)s);
		if ((h_rand(&s) & 3) == 0)
			sa_yield();
		UT_CHECK(sa_mutex_unlock(&robust_mtx) == 0);
		if ((h_rand(&s) & 15) == 0)
			h_join(h_spawn(robust_end_holding, NULL));
	}
	return NULL;
}

/*
 * The stopper is a plain thread, not a uthread: the spawners' create+join
 * cycles keep handing the VP through the next slot, which may keep a
 * queued uthread (the test body) off its VP for a long time.
 */
static uint64_t mix_end;

static void *stopper(void *arg)
{
	(void)arg;
	while (!all_recovered() && h_mono() < mix_end)
		h_os_sleep_ns(10 * NSEC_PER_MSEC);
	atomic_store(&stop, 1);
	return NULL;
}

/* run_mix - run the workload until every section was recovered or
 * @limit_ns passes; returns whether every one was. */
static bool run_mix(uint64_t limit_ns)
{
	sa_uthread_t t[20], ya = 0, yb = 0;
	pthread_t st;
	int n = 0, r;

	atomic_store(&stop, 0);
	SA_OK(sa_mutex_init(&mtx, SA_MUTEX_NORMAL));
	SA_OK(sa_cond_init(&cond, CLOCK_MONOTONIC));
	SA_OK(sa_sem_init(&ping, 0));
	SA_OK(sa_sem_init(&pong, 0));
	SA_OK(sa_rwlock_init(&rwl));
	SA_OK(sa_mutex_init(&robust_mtx, SA_MUTEX_ROBUST));
	atomic_store(&robust_dead, 0);
	atomic_store(&robust_reported, 0);
	atomic_store(&once_runs, 0);
	atomic_store(&churn_rounds, 0);
	t[n++] = ya = h_spawn(yielder, &yb);
	t[n++] = yb = h_spawn(yielder, &ya);
	t[n++] = h_spawn(yielder, &ya);
	t[n++] = h_spawn(spawner, NULL);
	t[n++] = h_spawn(spawner, NULL);
	for (int i = 0; i < 4; i++)
		t[n++] = h_spawn(sleeper, UP(i + 1));
	for (int i = 0; i < 3; i++)
		t[n++] = h_spawn(locker, UP(i + 11));
	for (int i = 0; i < 2; i++)
		t[n++] = h_spawn(churner, UP(i + 21));
	for (int i = 0; i < 4; i++)
		t[n++] = h_spawn(pinger, UP(i));
	for (int i = 0; i < 2; i++)
		t[n++] = h_spawn(robuster, UP(i + 31));
	mix_end = h_mono() + limit_ns;
	st = h_pthread(stopper, NULL);
	for (int i = 0; i < n; i++)
		h_join(t[i]);
	h_pthread_join(st);
	assert_no_ut_failures();
	cr_assert_eq(counter, atomic_load(&increments), "the mutex lost updates");
	r = sa_mutex_lock(&robust_mtx); /* the last owner may have ended */
	cr_assert(r == 0 || r == -EOWNERDEAD, "robust lock: %d", r);
	if (r == -EOWNERDEAD) {
		atomic_fetch_add(&robust_reported, 1);
		SA_OK(sa_mutex_consistent(&robust_mtx));
	}
	SA_OK(sa_mutex_unlock(&robust_mtx));
	cr_assert_eq(atomic_load(&robust_reported), atomic_load(&robust_dead),
		     "%llu robust owners ended, %llu reported",
		     (unsigned long long)atomic_load(&robust_dead),
		     (unsigned long long)atomic_load(&robust_reported));
	cr_assert_eq(atomic_load(&once_runs), atomic_load(&churn_rounds),
		     "once ran %u times in %u rounds", atomic_load(&once_runs),
		     atomic_load(&churn_rounds));
	return all_recovered();
}

/* ---- tests ---- */

Test(critsec, every_section_is_recovered, .timeout = 150)
{
	char missing[2048] = "";
	size_t len = 0;

	start_ticking();
	cr_assert_gt(table_len(), 0u, "no critical sections in the build");
	run_mix(MIX_LIMIT_NS);
	for (struct cs_entry *e = __start_sa_cs_table; e < __stop_sa_cs_table; e++)
		if (atomic_load(&e->count) == 0 && len < sizeof(missing) - 64)
			len += (size_t)snprintf(missing + len, sizeof(missing) - len, " %s", e->name);
	cr_assert_eq(len, 0u, "never recovered:%s", missing);
}

Test(critsec, recoveries_are_counted_once, .timeout = 120)
{
	uint64_t sum = 0;
	struct sa_stats st;

	start_ticking();
	run_mix(2 * NSEC_PER_SEC_);
	for (struct cs_entry *e = __start_sa_cs_table; e < __stop_sa_cs_table; e++)
		sum += atomic_load(&e->count);
	st = h_stats();
	cr_assert_gt(sum, 0u, "no recovery at all");
	cr_assert_eq(st.cs_recoveries, sum, "stats say %llu recoveries, the table %llu",
		     (unsigned long long)st.cs_recoveries, (unsigned long long)sum);
}

Test(critsec, no_lock_is_held_by_a_preempted_uthread, .timeout = 120)
{
	struct sa_stats st;

	start_ticking();
	run_mix(5 * NSEC_PER_SEC_);
	st = h_stats();
	cr_assert_gt(st.preemptions, 0u, "nothing was preempted: the check saw nothing");
	cr_assert_gt(st.cs_recoveries, 0u);
	cr_assert_eq(atomic_load(&sa_debug_lock_violations), 0u,
		     "%llu preemptions of a uthread that held a spinlock",
		     (unsigned long long)atomic_load(&sa_debug_lock_violations));
}

Test(critsec, table_matches_the_copies, .timeout = 20)
{
	for (struct cs_entry *e = __start_sa_cs_table; e < __stop_sa_cs_table; e++) {
		cr_assert_gt(e->end, e->start, "%s: empty", e->name);
		cr_assert(e->copy >= e->end || e->copy + (e->end - e->start) <= e->start,
			  "%s: copy overlaps its original", e->name);
		cr_assert_eq(critsec_find(e->start), e, "%s: lookup of its start", e->name);
		cr_assert_eq(critsec_find(e->end - 1), e, "%s: lookup of its last byte", e->name);
		cr_assert_null(critsec_find(e->copy), "%s: a copy is never recovered", e->name);
	}
}
