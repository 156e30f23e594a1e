/* pt_foreign.c - threads the shim never made (C11 thrd_create and a
 * SIGEV_THREAD timer use glibc's internal thread creation) share a mutex,
 * a condition variable and keys with pthreads */
#include <signal.h>
#include <threads.h>
#include <time.h>
#include <unistd.h>

#include "pt.h"

#define ITERS 5000

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t c = PTHREAD_COND_INITIALIZER;
static long counter;
static int timer_fired;
static pthread_key_t key;

static void count(void)
{
	for (int i = 0; i < ITERS; i++) {
		PT_OK(pthread_mutex_lock(&m));
		counter++;
		PT_OK(pthread_mutex_unlock(&m));
		if (i % 100 == 0)
			sched_yield();
	}
}

static int c11_thread(void *arg)
{
	PT_OK(pthread_setspecific(key, arg));
	count();
	PT_CHECK(pthread_getspecific(key) == arg);
	return 0;
}

static void *posix_thread(void *arg)
{
	PT_OK(pthread_setspecific(key, arg));
	count();
	PT_CHECK(pthread_getspecific(key) == arg);
	return NULL;
}

static void on_timer(union sigval v)
{
	(void)v;
	pthread_mutex_lock(&m);
	timer_fired = 1;
	pthread_cond_broadcast(&c);
	pthread_mutex_unlock(&m);
}

int main(void)
{
	struct sigevent sev = { .sigev_notify = SIGEV_THREAD,
				.sigev_notify_function = on_timer };
	struct itimerspec its = { .it_value = { .tv_nsec = 5000000 } };
	pthread_t p[4];
	thrd_t t[2];
	timer_t tm;

	PT_OK(pthread_key_create(&key, NULL));
	for (long i = 0; i < 2; i++)
		PT_CHECK(thrd_create(&t[i], c11_thread, (void *)(i + 1)) == thrd_success);
	for (long i = 0; i < 4; i++)
		PT_OK(pthread_create(&p[i], NULL, posix_thread, (void *)(i + 10)));
	for (int i = 0; i < 2; i++)
		PT_CHECK(thrd_join(t[i], NULL) == thrd_success);
	for (int i = 0; i < 4; i++)
		PT_OK(pthread_join(p[i], NULL));
	PT_CHECK(counter == 6L * ITERS);

	/* A pthread waits for a condition the timer's thread signals. */
	PT_OK(timer_create(CLOCK_MONOTONIC, &sev, &tm));
	PT_OK(timer_settime(tm, 0, &its, NULL));
	pthread_mutex_lock(&m);
	while (!timer_fired)
		pthread_cond_wait(&c, &m);
	pthread_mutex_unlock(&m);
	PT_OK(timer_delete(tm));
	printf("pt_foreign: %s\n", pt_exit_status() ? "FAILED" : "ok");
	return pt_exit_status();
}
