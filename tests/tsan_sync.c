/* tsan_sync.c - sync objects under contention, for ThreadSanitizer builds */

/*
 * Criterion's runner cannot start under -fsanitize=thread (its shared
 * arena fails to map), so the TSan build runs this plain program instead:
 * each check hammers one sync object from uthreads on every VP and from a
 * plain pthread, verifies an invariant that a data race or a lost wakeup
 * would break, and prints one line.  ThreadSanitizer reports races in
 * libsa itself (halt_on_error=1 in CI makes them fail the run).  Ends with
 * "N passed, N failed".
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "sa/sa.h"

#define NT 8
#define ITERS 2000

static int passed, failed;

static void check(const char *name, int ok)
{
	printf("%s: %s\n", ok ? "PASS" : "FAIL", name);
	if (ok)
		passed++;
	else
		failed++;
}

static sa_uthread_t spawn(void *(*fn)(void *), void *arg)
{
	sa_uthread_t t;

	if (sa_spawn(&t, NULL, fn, arg)) {
		fprintf(stderr, "sa_spawn failed\n");
		exit(2);
	}
	return t;
}

static void join_all(sa_uthread_t *t, int n)
{
	for (int i = 0; i < n; i++)
		sa_join(t[i], NULL);
}

/* --- mutex: a plain counter under the lock, from uthreads and a pthread */

static sa_mutex_t mtx = SA_MUTEX_INITIALIZER;
static long counter;

static void *mutex_worker(void *arg)
{
	for (int i = 0; i < ITERS; i++) {
		sa_mutex_lock(&mtx);
		counter++;
		if ((i & 63) == 0)
			sa_yield();
		sa_mutex_unlock(&mtx);
	}
	return arg;
}

static void test_mutex(void)
{
	sa_uthread_t t[NT];
	pthread_t p;

	counter = 0;
	pthread_create(&p, NULL, mutex_worker, NULL);
	for (int i = 0; i < NT; i++)
		t[i] = spawn(mutex_worker, NULL);
	join_all(t, NT);
	pthread_join(p, NULL);
	check("mutex counter", counter == (long)(NT + 1) * ITERS);
}

/* --- condvar: a bounded queue between producers and consumers */

static sa_mutex_t qm = SA_MUTEX_INITIALIZER;
static sa_cond_t notfull = SA_COND_INITIALIZER, notempty = SA_COND_INITIALIZER;
static int q[4], qn, qh;
static long consumed_sum;

static void *producer(void *arg)
{
	for (int i = 1; i <= ITERS; i++) {
		sa_mutex_lock(&qm);
		while (qn == 4)
			sa_cond_wait(&notfull, &qm);
		q[(qh + qn++) % 4] = i;
		sa_cond_signal(&notempty);
		sa_mutex_unlock(&qm);
	}
	return arg;
}

static void *consumer(void *arg)
{
	for (int i = 0; i < ITERS; i++) {
		sa_mutex_lock(&qm);
		while (qn == 0)
			sa_cond_wait(&notempty, &qm);
		consumed_sum += q[qh];
		qh = (qh + 1) % 4;
		qn--;
		sa_cond_signal(&notfull);
		sa_mutex_unlock(&qm);
	}
	return arg;
}

static void test_cond(void)
{
	sa_uthread_t t[NT];

	for (int i = 0; i < NT; i += 2) {
		t[i] = spawn(producer, NULL);
		t[i + 1] = spawn(consumer, NULL);
	}
	join_all(t, NT);
	check("condvar queue", consumed_sum == (long)(NT / 2) * ITERS * (ITERS + 1) / 2 && qn == 0);
}

/* --- rwlock: writers keep two fields equal; readers check it */

static sa_rwlock_t rw = SA_RWLOCK_INITIALIZER;
static long rw_a, rw_b;
static atomic_int rw_bad;

static void *rw_worker(void *arg)
{
	long id = (long)arg;

	for (int i = 0; i < ITERS; i++) {
		if ((i + id) % 4 == 0) {
			sa_rwlock_wrlock(&rw);
			rw_a++;
			sa_yield();
			rw_b++;
			sa_rwlock_unlock(&rw);
		} else {
			sa_rwlock_rdlock(&rw);
			if (rw_a != rw_b)
				atomic_store(&rw_bad, 1);
			sa_rwlock_unlock(&rw);
		}
	}
	return NULL;
}

static void test_rwlock(void)
{
	sa_uthread_t t[NT];

	for (long i = 0; i < NT; i++)
		t[i] = spawn(rw_worker, (void *)i);
	join_all(t, NT);
	check("rwlock invariant", !atomic_load(&rw_bad) && rw_a == rw_b && rw_a == (long)NT * ITERS / 4);
}

/* --- semaphore: ping-pong with a pthread, then a counting pool */

static sa_sem_t ping, pong, pool;
static atomic_int in_pool, pool_max;

static void *ponger(void *arg)
{
	for (int i = 0; i < ITERS; i++) {
		sa_sem_wait(&ping);
		sa_sem_post(&pong);
	}
	return arg;
}

static void *pool_worker(void *arg)
{
	for (int i = 0; i < ITERS / 4; i++) {
		sa_sem_wait(&pool);
		int n = atomic_fetch_add(&in_pool, 1) + 1, m = atomic_load(&pool_max);

		while (n > m && !atomic_compare_exchange_weak(&pool_max, &m, n))
			;
		sa_yield();
		atomic_fetch_sub(&in_pool, 1);
		sa_sem_post(&pool);
	}
	return arg;
}

static void test_sem(void)
{
	sa_uthread_t t[NT];
	pthread_t p;
	unsigned v = 99;

	sa_sem_init(&ping, 0);
	sa_sem_init(&pong, 0);
	pthread_create(&p, NULL, ponger, NULL);
	for (int i = 0; i < ITERS; i++) {
		sa_sem_post(&ping);
		sa_sem_wait(&pong);
	}
	pthread_join(p, NULL);
	sa_sem_getvalue(&ping, &v);
	check("semaphore ping-pong with a pthread", v == 0);

	sa_sem_init(&pool, 3);
	for (int i = 0; i < NT; i++)
		t[i] = spawn(pool_worker, NULL);
	join_all(t, NT);
	check("semaphore bounds concurrency", atomic_load(&pool_max) <= 3);
}

/* --- barrier and once */

static sa_barrier_t bar;
static atomic_int phase_count[50], serials, bar_bad;
static sa_once_t once = SA_ONCE_INIT;
static atomic_int once_runs;
static int once_value;

static void once_fn(void)
{
	atomic_fetch_add(&once_runs, 1);
	once_value = 42;
}

static void *bar_worker(void *arg)
{
	sa_once(&once, once_fn);
	if (once_value != 42)
		atomic_store(&bar_bad, 1);
	for (int r = 0; r < 50; r++) {
		atomic_fetch_add(&phase_count[r], 1);
		if (sa_barrier_wait(&bar) == SA_BARRIER_SERIAL)
			atomic_fetch_add(&serials, 1);
		if (atomic_load(&phase_count[r]) != NT)
			atomic_store(&bar_bad, 1);
		sa_barrier_wait(&bar);
	}
	return arg;
}

static void test_barrier_once(void)
{
	sa_uthread_t t[NT];

	sa_barrier_init(&bar, NT);
	for (int i = 0; i < NT; i++)
		t[i] = spawn(bar_worker, NULL);
	join_all(t, NT);
	check("barrier rounds", !atomic_load(&bar_bad) && atomic_load(&serials) == 50);
	check("once ran once", atomic_load(&once_runs) == 1);
}

/* --- timed waits racing with wakeups */

static sa_mutex_t tm = SA_MUTEX_INITIALIZER;
static sa_cond_t tc;
static atomic_int tw_done;

static void *timed_waiter(void *arg)
{
	for (int i = 0; i < 200; i++) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += 20000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		sa_mutex_lock(&tm);
		sa_cond_timedwait(&tc, &tm, &ts);
		sa_mutex_unlock(&tm);
	}
	atomic_fetch_add(&tw_done, 1);
	return arg;
}

static void *signaller(void *arg)
{
	while (atomic_load(&tw_done) < NT / 2) {
		sa_cond_signal(&tc);
		sa_yield();
	}
	return arg;
}

static void test_timed(void)
{
	sa_uthread_t t[NT];

	sa_cond_init(&tc, CLOCK_MONOTONIC);
	for (int i = 0; i < NT / 2; i++)
		t[i] = spawn(timed_waiter, NULL);
	for (int i = NT / 2; i < NT; i++)
		t[i] = spawn(signaller, NULL);
	join_all(t, NT);
	check("timed waits racing signals", atomic_load(&tw_done) == NT / 2);
}

int main(void)
{
	if (sa_init(2)) {
		fprintf(stderr, "sa_init failed\n");
		return 2;
	}
	test_mutex();
	test_cond();
	test_rwlock();
	test_sem();
	test_barrier_once();
	test_timed();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
