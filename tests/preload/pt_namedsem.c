/* pt_namedsem.c - waits on the C library's semaphores (named, process-shared) park one thread */

/*
 * One behaviour per run: `pt_namedsem CASE` (the names are in cases[]).
 * While a thread waits on a named or process-shared semaphore, a ticker
 * thread must keep running: on one VP with the hand-off of blocked
 * kernel threads off, a wait that blocked the VP would stop it, and the
 * alarm would end the program.  The results must equal NPTL's.
 */
#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdint.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pt.h"

#define TICKS 20

static char name_a[64], name_b[64];
static atomic_int ticks, stop_ticking;

static void *ticker(void *arg)
{
	struct timespec ms = { 0, 1000000 };

	(void)arg;
	while (!atomic_load(&stop_ticking)) {
		atomic_fetch_add(&ticks, 1);
		nanosleep(&ms, NULL);
	}
	return NULL;
}

/* ticks_pass - wait until the ticker ran TICKS more times. */
static void ticks_pass(void)
{
	int start = atomic_load(&ticks);

	while (atomic_load(&ticks) < start + TICKS)
		usleep(1000);
}

static sem_t *open_new(char *name, const char *tag, unsigned value)
{
	sem_t *s;

	snprintf(name, 64, "/pt_namedsem_%d_%s", (int)getpid(), tag);
	s = sem_open(name, O_CREAT | O_EXCL, 0600, value);
	PT_CHECK(s != SEM_FAILED);
	if (s == SEM_FAILED)
		exit(pt_exit_status());
	return s;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct waiter {
	sem_t *s;
	atomic_int started, done;
	int rc, err;
};

static void *wait_on(void *arg)
{
	struct waiter *w = arg;

	atomic_store(&w->started, 1);
	w->rc = sem_wait(w->s);
	w->err = errno;
	atomic_store(&w->done, 1);
	return NULL;
}

/* cross_process - another process posts what a thread here waits for;
 * the ticker runs meanwhile. */
static void run_cross_process(sem_t *go, sem_t *ready)
{
	struct waiter w = { .s = go };
	pthread_t wt, tt;
	pid_t child;
	int st;

	child = fork();
	PT_CHECK(child >= 0);
	if (child == 0) {
		while (sem_wait(ready) != 0 && errno == EINTR)
			;
		_exit(sem_post(go) == 0 ? 0 : 1);
	}
	PT_OK(pthread_create(&tt, NULL, ticker, NULL));
	PT_OK(pthread_create(&wt, NULL, wait_on, &w));
	while (!atomic_load(&w.started))
		usleep(1000);
	ticks_pass();
	PT_CHECK(!atomic_load(&w.done)); /* nobody posted yet */
	PT_OK(sem_post(ready));
	PT_OK(pthread_join(wt, NULL));
	PT_CHECK(w.rc == 0);
	atomic_store(&stop_ticking, 1);
	PT_OK(pthread_join(tt, NULL));
	PT_CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void case_named_cross_process(void)
{
	sem_t *go = open_new(name_a, "go", 0), *ready = open_new(name_b, "ready", 0);

	run_cross_process(go, ready);
	PT_OK(sem_close(go));
	PT_OK(sem_close(ready));
	PT_OK(sem_unlink(name_a));
	PT_OK(sem_unlink(name_b));
}

static void case_pshared_cross_process(void)
{
	sem_t *s = mmap(NULL, 2 * sizeof(sem_t), PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	PT_CHECK(s != MAP_FAILED);
	PT_OK(sem_init(&s[0], 1, 0));
	PT_OK(sem_init(&s[1], 1, 0));
	run_cross_process(&s[0], &s[1]);
	PT_OK(sem_destroy(&s[0]));
	PT_OK(sem_destroy(&s[1]));
}

/* Several threads wait; posts from this process wake each once. */
static void case_named_many_waiters(void)
{
	enum { N = 4 };
	sem_t *s = open_new(name_a, "many", 0);
	struct waiter w[N];
	pthread_t t[N];
	int v = -1;

	for (int i = 0; i < N; i++) {
		w[i] = (struct waiter){ .s = s };
		PT_OK(pthread_create(&t[i], NULL, wait_on, &w[i]));
	}
	for (int i = 0; i < N; i++)
		while (!atomic_load(&w[i].started))
			usleep(1000);
	usleep(20000);
	for (int i = 0; i < N; i++)
		PT_OK(sem_post(s));
	for (int i = 0; i < N; i++) {
		PT_OK(pthread_join(t[i], NULL));
		PT_CHECK(w[i].rc == 0);
	}
	PT_OK(sem_getvalue(s, &v));
	PT_CHECK(v == 0);
	PT_CHECK(sem_trywait(s) == -1 && errno == EAGAIN);
	PT_OK(sem_close(s));
	PT_OK(sem_unlink(name_a));
}

/* A timed wait that nobody posts times out; the ticker runs meanwhile. */
static void timed_out(int clocked)
{
	sem_t *s = open_new(name_a, "timeout", 0);
	struct timespec dl;
	pthread_t tt;
	uint64_t t0;
	int r, start;

	PT_OK(pthread_create(&tt, NULL, ticker, NULL));
	start = atomic_load(&ticks);
	clock_gettime(clocked ? CLOCK_MONOTONIC : CLOCK_REALTIME, &dl);
	dl.tv_nsec += 100 * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	t0 = mono_ms();
	r = clocked ? sem_clockwait(s, CLOCK_MONOTONIC, &dl) : sem_timedwait(s, &dl);
	PT_CHECK(r == -1 && errno == ETIMEDOUT);
	PT_CHECK(mono_ms() - t0 >= 99);
	PT_CHECK(atomic_load(&ticks) > start); /* it ran while this one waited */
	atomic_store(&stop_ticking, 1);
	PT_OK(pthread_join(tt, NULL));
	PT_OK(sem_close(s));
	PT_OK(sem_unlink(name_a));
}

static void case_named_timedwait_timeout(void)
{
	timed_out(0);
}

static void case_named_clockwait_timeout(void)
{
	timed_out(1);
}

static void case_named_timedwait_posted(void)
{
	sem_t *s = open_new(name_a, "posted", 1);
	struct timespec dl;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 5;
	PT_OK(sem_timedwait(s, &dl));
	dl.tv_sec -= 10; /* a past deadline with no unit: at once */
	PT_CHECK(sem_timedwait(s, &dl) == -1 && errno == ETIMEDOUT);
	PT_OK(sem_close(s));
	PT_OK(sem_unlink(name_a));
}

static void *einval_cases(void *arg)
{
	sem_t *s = arg;
	struct timespec bad = { 0, 1000000000 }, neg = { 0, -1 }, ok;

	clock_gettime(CLOCK_MONOTONIC, &ok);
	PT_CHECK(sem_timedwait(s, &bad) == -1 && errno == EINVAL);
	PT_CHECK(sem_timedwait(s, &neg) == -1 && errno == EINVAL);
	PT_CHECK(sem_clockwait(s, CLOCK_MONOTONIC, &bad) == -1 && errno == EINVAL);
	PT_CHECK(sem_clockwait(s, CLOCK_PROCESS_CPUTIME_ID, &ok) == -1 && errno == EINVAL);
	return NULL;
}

static void case_named_einval(void)
{
	sem_t *s = open_new(name_a, "einval", 0);
	pthread_t t;

	PT_OK(pthread_create(&t, NULL, einval_cases, s)); /* as a thread too */
	PT_OK(pthread_join(t, NULL));
	einval_cases(s);
	PT_OK(sem_close(s));
	PT_OK(sem_unlink(name_a));
}

/* A handler without SA_RESTART interrupts a wait: EINTR, as POSIX says. */
static atomic_int handled;

static void on_usr1(int sig)
{
	(void)sig;
	atomic_fetch_add(&handled, 1);
}

static void case_named_eintr(void)
{
	sem_t *s = open_new(name_a, "eintr", 0);
	struct sigaction sa;
	struct waiter w = { .s = s };
	pthread_t t;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	PT_OK(sigaction(SIGUSR1, &sa, NULL));
	PT_OK(pthread_create(&t, NULL, wait_on, &w));
	while (!atomic_load(&w.started))
		usleep(1000);
	/* Again until it returns: a signal that came before the wait began
	 * does not end it. */
	while (!atomic_load(&w.done)) {
		PT_OK(pthread_kill(t, SIGUSR1));
		usleep(10000);
	}
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(w.rc == -1 && w.err == EINTR);
	PT_CHECK(atomic_load(&handled) > 0);
	PT_OK(sem_post(s));
	PT_OK(sem_trywait(s)); /* the waiter took no unit */
	PT_OK(sem_close(s));
	PT_OK(sem_unlink(name_a));
}

/* A thread waiting on a named semaphore is cancelled. */
static void case_named_cancel(void)
{
	sem_t *s = open_new(name_a, "cancel", 0);
	struct waiter w = { .s = s };
	pthread_t t;
	void *rv = NULL;

	PT_OK(pthread_create(&t, NULL, wait_on, &w));
	while (!atomic_load(&w.started))
		usleep(1000);
	usleep(20000);
	PT_OK(pthread_cancel(t));
	PT_OK(pthread_join(t, &rv));
	PT_CHECK(rv == PTHREAD_CANCELED);
	PT_CHECK(!atomic_load(&w.done));
	PT_OK(sem_post(s));
	PT_OK(sem_trywait(s));
	PT_OK(sem_close(s));
	PT_OK(sem_unlink(name_a));
}

static const struct pt_case cases[] = {
	{ "named_cross_process", case_named_cross_process },
	{ "pshared_cross_process", case_pshared_cross_process },
	{ "named_many_waiters", case_named_many_waiters },
	{ "named_timedwait_timeout", case_named_timedwait_timeout },
	{ "named_clockwait_timeout", case_named_clockwait_timeout },
	{ "named_timedwait_posted", case_named_timedwait_posted },
	{ "named_einval", case_named_einval },
	{ "named_eintr", case_named_eintr },
	{ "named_cancel", case_named_cancel },
};

int main(int argc, char **argv)
{
	return pt_main("pt_namedsem", cases, sizeof(cases) / sizeof(cases[0]), 30, argc, argv);
}
