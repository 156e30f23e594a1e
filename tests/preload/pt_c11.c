/* pt_c11.c - C11 <threads.h>: threads, mutexes, condition variables,
 * thread-specific storage and call_once, with their results
 *
 * On one VP with the blocked hand-off off, a cnd_wait or mtx_lock that
 * waited in the kernel instead of parking would stop the thread that is
 * to wake it; the alarm then ends the program.
 */
#include <threads.h>
#include <time.h>
#include <unistd.h>

#include "pt.h"

#define NTHREADS 64

static mtx_t m;
static cnd_t c;
static int counter, turn;
static once_flag once = ONCE_FLAG_INIT;
static atomic_int once_runs, dtors;
static tss_t key;
static atomic_int held, release_tm;

static void init_once(void)
{
	atomic_fetch_add(&once_runs, 1);
}

static void dtor(void *v)
{
	(void)v;
	atomic_fetch_add(&dtors, 1);
}

static int worker(void *arg)
{
	int id = (int)(long)arg;

	call_once(&once, init_once);
	PT_CHECK(tss_set(key, (char *)arg + 1) == thrd_success); /* never NULL */
	for (int i = 0; i < 200; i++) {
		PT_CHECK(mtx_lock(&m) == thrd_success);
		counter++;
		PT_CHECK(mtx_unlock(&m) == thrd_success);
		if (i % 50 == 0)
			thrd_yield();
	}
	PT_CHECK(tss_get(key) == (char *)arg + 1);
	return id * 2;
}

static int pinger(void *arg)
{
	int me = (int)(long)arg;

	for (int i = 0; i < 500; i++) {
		mtx_lock(&m);
		while (turn % 2 != me)
			cnd_wait(&c, &m);
		turn++;
		cnd_broadcast(&c);
		mtx_unlock(&m);
	}
	return 0;
}

static int holder(void *arg)
{
	mtx_t *tm = arg;
	struct timespec d = { 0, 1000 * 1000 };

	mtx_lock(tm);
	atomic_store(&held, 1);
	while (!atomic_load(&release_tm))
		thrd_sleep(&d, NULL);
	mtx_unlock(tm);
	return 0;
}

int main(void)
{
	thrd_t t[NTHREADS], p[2], h;
	mtx_t tm;
	struct timespec ts;
	int res;

	pt_alarm(60);
	PT_CHECK(mtx_init(&m, mtx_plain) == thrd_success);
	PT_CHECK(cnd_init(&c) == thrd_success);
	PT_CHECK(tss_create(&key, dtor) == thrd_success);
	for (long i = 0; i < NTHREADS; i++)
		PT_CHECK(thrd_create(&t[i], worker, (void *)i) == thrd_success);
	for (int i = 0; i < NTHREADS; i++) {
		PT_CHECK(thrd_join(t[i], &res) == thrd_success);
		PT_CHECK(res == i * 2);
	}
	PT_CHECK(counter == NTHREADS * 200);
	PT_CHECK(atomic_load(&once_runs) == 1);
	PT_CHECK(atomic_load(&dtors) == NTHREADS);

	for (long i = 0; i < 2; i++)
		PT_CHECK(thrd_create(&p[i], pinger, (void *)i) == thrd_success);
	for (int i = 0; i < 2; i++)
		PT_CHECK(thrd_join(p[i], NULL) == thrd_success);
	PT_CHECK(turn == 1000);

	/* Busy and timed out. */
	PT_CHECK(mtx_init(&tm, mtx_timed) == thrd_success);
	PT_CHECK(thrd_create(&h, holder, &tm) == thrd_success);
	while (!atomic_load(&held))
		usleep(1000);
	PT_CHECK(mtx_trylock(&tm) == thrd_busy);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += 5 * 1000 * 1000;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	PT_CHECK(mtx_timedlock(&tm, &ts) == thrd_timedout);
	atomic_store(&release_tm, 1);
	PT_CHECK(thrd_join(h, NULL) == thrd_success);
	mtx_lock(&m);
	clock_gettime(CLOCK_REALTIME, &ts);
	PT_CHECK(cnd_timedwait(&c, &m, &ts) == thrd_timedout);
	mtx_unlock(&m);
	PT_CHECK(thrd_equal(thrd_current(), thrd_current()));
	mtx_destroy(&tm);
	mtx_destroy(&m);
	cnd_destroy(&c);
	tss_delete(key);
	printf("pt_c11: %s\n", pt_exit_status() ? "FAILED" : "ok");
	return pt_exit_status();
}
