/* pt_threadctl.c - pthread_tryjoin_np, timed joins, scheduling parameters
 * and affinity, with their error cases; the same checks hold under NPTL */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pt.h"

static atomic_int release;

static void *waits_for_release(void *arg)
{
	while (!atomic_load(&release))
		usleep(1000);
	return arg;
}

static void *returns_at_once(void *arg)
{
	return arg;
}

static struct timespec in_ms(clockid_t clk, long ms)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

static void test_joins(void)
{
	pthread_t t, d;
	pthread_attr_t a;
	struct timespec ts;
	void *r = NULL;

	atomic_store(&release, 0);
	PT_OK(pthread_create(&t, NULL, waits_for_release, (void *)11));
	PT_CHECK(pthread_tryjoin_np(t, &r) == EBUSY);
	ts = in_ms(CLOCK_REALTIME, 30);
	PT_CHECK(pthread_timedjoin_np(t, &r, &ts) == ETIMEDOUT);
	ts = in_ms(CLOCK_MONOTONIC, 30);
	PT_CHECK(pthread_clockjoin_np(t, &r, CLOCK_MONOTONIC, &ts) == ETIMEDOUT);
	PT_CHECK(pthread_clockjoin_np(t, &r, CLOCK_PROCESS_CPUTIME_ID, &ts) == EINVAL);
	atomic_store(&release, 1);
	ts = in_ms(CLOCK_REALTIME, 10000);
	PT_OK(pthread_timedjoin_np(t, &r, &ts));
	PT_CHECK(r == (void *)11);

	PT_OK(pthread_create(&t, NULL, returns_at_once, (void *)12));
	for (int i = 0; i < 10000 && pthread_tryjoin_np(t, &r) == EBUSY; i++)
		usleep(1000);
	PT_CHECK(r == (void *)12);

	/* The caller itself, and a detached thread: tryjoin says only that
	 * they run (glibc's order of checks); a join that would wait says
	 * what is wrong. */
	PT_CHECK(pthread_tryjoin_np(pthread_self(), &r) == EBUSY);
	ts = in_ms(CLOCK_REALTIME, 10);
	PT_CHECK(pthread_timedjoin_np(pthread_self(), &r, &ts) == EDEADLK);
	atomic_store(&release, 0);
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	PT_OK(pthread_create(&d, &a, waits_for_release, NULL));
	pthread_attr_destroy(&a);
	PT_CHECK(pthread_tryjoin_np(d, &r) == EBUSY);
	ts = in_ms(CLOCK_REALTIME, 10);
	PT_CHECK(pthread_timedjoin_np(d, &r, &ts) == EINVAL);
	atomic_store(&release, 1);
}

static void *report_sched(void *arg)
{
	struct sched_param p;
	int *out = arg, policy;

	PT_OK(pthread_getschedparam(pthread_self(), &policy, &p));
	out[0] = policy;
	out[1] = p.sched_priority;
	return NULL;
}

static void test_sched(void)
{
	struct sched_param p = { 0 };
	pthread_attr_t a;
	pthread_t t;
	int policy, got[2];

	PT_OK(pthread_getschedparam(pthread_self(), &policy, &p));
	PT_CHECK(policy == SCHED_OTHER && p.sched_priority == 0);
	p.sched_priority = 0;
	PT_OK(pthread_setschedparam(pthread_self(), SCHED_BATCH, &p));
	PT_OK(pthread_getschedparam(pthread_self(), &policy, &p));
	PT_CHECK(policy == SCHED_BATCH && p.sched_priority == 0);
	/* Errors as sched_setscheduler(2) gives them. */
	p.sched_priority = 5;
	PT_CHECK(pthread_setschedparam(pthread_self(), SCHED_OTHER, &p) == EINVAL);
	p.sched_priority = 0;
	PT_CHECK(pthread_setschedparam(pthread_self(), SCHED_FIFO, &p) == EINVAL);
	PT_CHECK(pthread_setschedparam(pthread_self(), 12345, &p) == EINVAL);
	PT_CHECK(pthread_setschedprio(pthread_self(), 7) == EINVAL);
	PT_OK(pthread_setschedprio(pthread_self(), 0));

	/* A new thread inherits them, unless the attributes say otherwise. */
	PT_OK(pthread_create(&t, NULL, report_sched, got));
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(got[0] == SCHED_BATCH && got[1] == 0);
	pthread_attr_init(&a);
	PT_OK(pthread_attr_setinheritsched(&a, PTHREAD_EXPLICIT_SCHED));
	PT_OK(pthread_attr_setschedpolicy(&a, SCHED_OTHER));
	PT_OK(pthread_attr_setschedparam(&a, &p));
	PT_OK(pthread_create(&t, &a, report_sched, got));
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(got[0] == SCHED_OTHER && got[1] == 0);
	pthread_attr_destroy(&a);
	PT_OK(pthread_setschedparam(pthread_self(), SCHED_OTHER, &p));
}

static void *report_cpus(void *arg)
{
	PT_OK(pthread_getaffinity_np(pthread_self(), sizeof(cpu_set_t), arg));
	return NULL;
}

static void test_affinity(void)
{
	cpu_set_t all, one, got, none;
	pthread_attr_t a;
	pthread_t t;
	int first = -1;

	PT_OK(sched_getaffinity(0, sizeof(all), &all));
	for (int i = 0; i < CPU_SETSIZE && first < 0; i++)
		if (CPU_ISSET(i, &all))
			first = i;
	PT_CHECK(first >= 0);
	CPU_ZERO(&one);
	CPU_SET(first, &one);

	/* A new thread with a CPU set from its attributes reports it. */
	pthread_attr_init(&a);
	PT_OK(pthread_attr_setaffinity_np(&a, sizeof(one), &one));
	PT_OK(pthread_create(&t, &a, report_cpus, &got));
	PT_OK(pthread_join(t, NULL));
	pthread_attr_destroy(&a);
	PT_CHECK(CPU_EQUAL(&got, &one));

	/* Set and read back on another thread; pthread_getattr_np agrees. */
	atomic_store(&release, 0);
	PT_OK(pthread_create(&t, NULL, waits_for_release, NULL));
	PT_OK(pthread_getaffinity_np(t, sizeof(got), &got));
	PT_CHECK(CPU_EQUAL(&got, &all));
	PT_OK(pthread_setaffinity_np(t, sizeof(one), &one));
	PT_OK(pthread_getaffinity_np(t, sizeof(got), &got));
	PT_CHECK(CPU_EQUAL(&got, &one));
	PT_OK(pthread_getattr_np(t, &a));
	CPU_ZERO(&got);
	PT_OK(pthread_attr_getaffinity_np(&a, sizeof(got), &got));
	PT_CHECK(CPU_EQUAL(&got, &one));
	pthread_attr_destroy(&a);
	CPU_ZERO(&none);
	PT_CHECK(pthread_setaffinity_np(t, sizeof(none), &none) == EINVAL);
	atomic_store(&release, 1);
	PT_OK(pthread_join(t, NULL));
}

int main(void)
{
	alarm(60);
	test_joins();
	test_sched();
	test_affinity();
	printf("pt_threadctl: %s\n", pt_exit_status() ? "FAILED" : "ok");
	return pt_exit_status();
}
