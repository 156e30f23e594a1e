/* pt_sync.c - many pthreads sharing mutexes, a condvar queue, an rwlock, a barrier,
 * a semaphore, a spinlock, once and keys; every result is checked */
#include <errno.h>
#include <semaphore.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pt.h"

#define NTHREADS 64
#define ITERS 2000
#define QCAP 16
#define NITEMS 20000

static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t rec_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static pthread_mutex_t err_lock = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
static long counter_a, counter_b;

/* Counting under a static mutex and a static recursive mutex taken twice. */
static void *counting(void *arg)
{
	(void)arg;
	for (int i = 0; i < ITERS; i++) {
		PT_OK(pthread_mutex_lock(&count_lock));
		counter_a++;
		PT_OK(pthread_mutex_unlock(&count_lock));
		PT_OK(pthread_mutex_lock(&rec_lock));
		PT_OK(pthread_mutex_lock(&rec_lock));
		counter_b++;
		PT_OK(pthread_mutex_unlock(&rec_lock));
		PT_OK(pthread_mutex_unlock(&rec_lock));
		if (i % 97 == 0)
			sched_yield();
	}
	return NULL;
}

static void test_mutexes(void)
{
	pthread_t t[NTHREADS];

	for (int i = 0; i < NTHREADS; i++)
		PT_OK(pthread_create(&t[i], NULL, counting, NULL));
	for (int i = 0; i < NTHREADS; i++)
		PT_OK(pthread_join(t[i], NULL));
	PT_CHECK(counter_a == (long)NTHREADS * ITERS);
	PT_CHECK(counter_b == (long)NTHREADS * ITERS);
	PT_OK(pthread_mutex_lock(&err_lock));
	PT_CHECK(pthread_mutex_lock(&err_lock) == EDEADLK);
	PT_OK(pthread_mutex_unlock(&err_lock));
	PT_CHECK(pthread_mutex_unlock(&err_lock) == EPERM);
	PT_CHECK(pthread_mutex_trylock(&count_lock) == 0);
	PT_OK(pthread_mutex_unlock(&count_lock));
}

/* A bounded queue: producers and consumers on one mutex, two condvars. */
static struct {
	pthread_mutex_t m;
	pthread_cond_t not_empty, not_full;
	int buf[QCAP], head, n;
	long sum_in, sum_out;
	int produced, consumed;
} q = {
	.m = PTHREAD_MUTEX_INITIALIZER,
	.not_empty = PTHREAD_COND_INITIALIZER,
	.not_full = PTHREAD_COND_INITIALIZER,
};

static void *producer(void *arg)
{
	int base = (int)(long)arg;

	for (int i = 0; i < NITEMS / 8; i++) {
		int v = base * 100000 + i;

		pthread_mutex_lock(&q.m);
		while (q.n == QCAP)
			pthread_cond_wait(&q.not_full, &q.m);
		q.buf[(q.head + q.n++) % QCAP] = v;
		q.sum_in += v;
		q.produced++;
		pthread_cond_signal(&q.not_empty);
		pthread_mutex_unlock(&q.m);
	}
	return NULL;
}

static void *consumer(void *arg)
{
	long got = 0;

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&q.m);
		while (q.n == 0 && q.consumed < NITEMS)
			pthread_cond_wait(&q.not_empty, &q.m);
		if (q.consumed == NITEMS) {
			pthread_cond_broadcast(&q.not_empty);
			pthread_mutex_unlock(&q.m);
			return (void *)got;
		}
		q.sum_out += q.buf[q.head];
		q.head = (q.head + 1) % QCAP;
		q.n--;
		q.consumed++;
		got++;
		pthread_cond_signal(&q.not_full);
		pthread_mutex_unlock(&q.m);
	}
}

static void test_queue(void)
{
	pthread_t p[8], c[4];
	long total = 0;

	for (long i = 0; i < 8; i++)
		PT_OK(pthread_create(&p[i], NULL, producer, (void *)i));
	for (int i = 0; i < 4; i++)
		PT_OK(pthread_create(&c[i], NULL, consumer, NULL));
	for (int i = 0; i < 8; i++)
		PT_OK(pthread_join(p[i], NULL));
	for (int i = 0; i < 4; i++) {
		void *r;

		PT_OK(pthread_join(c[i], &r));
		total += (long)r;
	}
	PT_CHECK(q.produced == NITEMS && q.consumed == NITEMS && total == NITEMS);
	PT_CHECK(q.sum_in == q.sum_out);
}

/* Timed waits time out, on both clocks. */
static void test_timeouts(void)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t c = PTHREAD_COND_INITIALIZER;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += 2000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&m);
	PT_CHECK(pthread_cond_timedwait(&c, &m, &ts) == ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	PT_CHECK(pthread_cond_clockwait(&c, &m, CLOCK_MONOTONIC, &ts) == ETIMEDOUT);
	pthread_mutex_unlock(&m);
	PT_OK(pthread_cond_destroy(&c));
	PT_OK(pthread_mutex_destroy(&m));
}

/* Readers share, a writer excludes. */
static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static long rw_value;
static atomic_int rw_readers_in;

static void *rw_worker(void *arg)
{
	int writer = (int)(long)arg % 4 == 0;

	for (int i = 0; i < 500; i++) {
		if (writer) {
			PT_OK(pthread_rwlock_wrlock(&rw));
			PT_CHECK(atomic_load(&rw_readers_in) == 0);
			rw_value++;
			PT_OK(pthread_rwlock_unlock(&rw));
		} else {
			PT_OK(pthread_rwlock_rdlock(&rw));
			atomic_fetch_add(&rw_readers_in, 1);
			sched_yield();
			atomic_fetch_sub(&rw_readers_in, 1);
			PT_OK(pthread_rwlock_unlock(&rw));
		}
	}
	return NULL;
}

static void test_rwlock(void)
{
	pthread_t t[16];

	for (long i = 0; i < 16; i++)
		PT_OK(pthread_create(&t[i], NULL, rw_worker, (void *)i));
	for (int i = 0; i < 16; i++)
		PT_OK(pthread_join(t[i], NULL));
	PT_CHECK(rw_value == 4 * 500);
}

/* A barrier: one serial thread per round, nobody passes early. */
static pthread_barrier_t bar;
static atomic_int bar_arrived, bar_serial;

static void *bar_worker(void *arg)
{
	(void)arg;
	for (int round = 1; round <= 10; round++) {
		int r;

		atomic_fetch_add(&bar_arrived, 1);
		r = pthread_barrier_wait(&bar);
		PT_CHECK(r == 0 || r == PTHREAD_BARRIER_SERIAL_THREAD);
		if (r == PTHREAD_BARRIER_SERIAL_THREAD)
			atomic_fetch_add(&bar_serial, 1);
		PT_CHECK(atomic_load(&bar_arrived) >= round * 8);
		pthread_barrier_wait(&bar);
	}
	return NULL;
}

static void test_barrier(void)
{
	pthread_t t[8];

	PT_CHECK(pthread_barrier_init(&bar, NULL, 0) == EINVAL);
	PT_OK(pthread_barrier_init(&bar, NULL, 8));
	for (int i = 0; i < 8; i++)
		PT_OK(pthread_create(&t[i], NULL, bar_worker, NULL));
	for (int i = 0; i < 8; i++)
		PT_OK(pthread_join(t[i], NULL));
	PT_CHECK(atomic_load(&bar_serial) == 10);
	PT_OK(pthread_barrier_destroy(&bar));
}

/* A semaphore as a counter of tokens; sem_trywait and errno. */
static sem_t sem;
static atomic_int sem_taken;

static void *sem_worker(void *arg)
{
	(void)arg;
	for (int i = 0; i < 100; i++) {
		PT_CHECK(sem_wait(&sem) == 0);
		atomic_fetch_add(&sem_taken, 1);
	}
	return NULL;
}

static void test_semaphore(void)
{
	pthread_t t[4];
	int v = -1;

	PT_CHECK(sem_init(&sem, 0, 0) == 0);
	errno = 0;
	PT_CHECK(sem_trywait(&sem) == -1 && errno == EAGAIN);
	for (int i = 0; i < 4; i++)
		PT_OK(pthread_create(&t[i], NULL, sem_worker, NULL));
	for (int i = 0; i < 400; i++)
		PT_CHECK(sem_post(&sem) == 0);
	for (int i = 0; i < 4; i++)
		PT_OK(pthread_join(t[i], NULL));
	PT_CHECK(atomic_load(&sem_taken) == 400);
	PT_CHECK(sem_getvalue(&sem, &v) == 0 && v == 0);
	PT_CHECK(sem_destroy(&sem) == 0);
}

/* A spinlock, pthread_once and keys with destructors. */
static pthread_spinlock_t spin;
static long spin_count;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static atomic_int once_runs;
static pthread_key_t key;
static atomic_int dtor_runs;

static void once_fn(void)
{
	atomic_fetch_add(&once_runs, 1);
	usleep(1000); /* the others wait for it */
}

static void key_dtor(void *v)
{
	if (v)
		atomic_fetch_add(&dtor_runs, 1);
}

static void *misc_worker(void *arg)
{
	PT_OK(pthread_once(&once, once_fn));
	PT_CHECK(atomic_load(&once_runs) == 1);
	PT_OK(pthread_setspecific(key, arg));
	for (int i = 0; i < 1000; i++) {
		PT_OK(pthread_spin_lock(&spin));
		spin_count++;
		PT_OK(pthread_spin_unlock(&spin));
	}
	sched_yield();
	PT_CHECK(pthread_getspecific(key) == arg);
	return NULL;
}

static void test_misc(void)
{
	pthread_t t[16];

	PT_OK(pthread_spin_init(&spin, PTHREAD_PROCESS_PRIVATE));
	PT_OK(pthread_key_create(&key, key_dtor));
	for (long i = 0; i < 16; i++)
		PT_OK(pthread_create(&t[i], NULL, misc_worker, (void *)(i + 1)));
	for (int i = 0; i < 16; i++)
		PT_OK(pthread_join(t[i], NULL));
	PT_CHECK(spin_count == 16 * 1000);
	PT_CHECK(atomic_load(&dtor_runs) == 16);
	PT_OK(pthread_key_delete(key));
	PT_OK(pthread_spin_destroy(&spin));
}

/* Detached threads, pthread_exit, a join of a finished thread, bad input. */
static atomic_int detached_done;

static void *detached_fn(void *arg)
{
	(void)arg;
	atomic_fetch_add(&detached_done, 1);
	pthread_exit((void *)7);
}

static void *exit_fn(void *arg)
{
	(void)arg;
	pthread_exit((void *)42);
}

static void test_lifecycle(void)
{
	pthread_attr_t a;
	pthread_t t;
	void *r = NULL;
	char name[16];

	PT_OK(pthread_attr_init(&a));
	PT_OK(pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED));
	PT_OK(pthread_attr_setstacksize(&a, 64 * 1024));
	for (int i = 0; i < 10; i++)
		PT_OK(pthread_create(&t, &a, detached_fn, NULL));
	PT_OK(pthread_attr_destroy(&a));
	while (atomic_load(&detached_done) < 10)
		usleep(100);
	PT_OK(pthread_create(&t, NULL, exit_fn, NULL));
	usleep(2000); /* let it end before the join */
	PT_OK(pthread_join(t, &r));
	PT_CHECK(r == (void *)42);
	PT_CHECK(pthread_join(pthread_self(), NULL) == EDEADLK);
	PT_OK(pthread_create(&t, NULL, exit_fn, NULL));
	PT_CHECK(pthread_setname_np(t, "a-name-much-too-long") == ERANGE);
	PT_OK(pthread_setname_np(t, "worker"));
	PT_OK(pthread_getname_np(t, name, sizeof(name)));
	PT_CHECK(strcmp(name, "worker") == 0);
	PT_OK(pthread_detach(t));
}

int main(void)
{
	test_mutexes();
	test_queue();
	test_timeouts();
	test_rwlock();
	test_barrier();
	test_semaphore();
	test_misc();
	test_lifecycle();
	printf("pt_sync: %s\n", pt_exit_status() ? "FAILED" : "ok");
	return pt_exit_status();
}
