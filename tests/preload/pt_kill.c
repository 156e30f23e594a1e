/* pt_kill.c - pthread_kill() to a thread and per-thread signal masks: the
 * handler runs on the target, interrupts its wait or not as SA_RESTART
 * says, waits while blocked; the same under NPTL */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "pt.h"

static atomic_int handled;
static _Atomic(pthread_t) handled_on;
static int fds[2];

static void on_sig(int sig)
{
	(void)sig;
	atomic_store(&handled_on, pthread_self());
	atomic_fetch_add(&handled, 1);
}

static void set_handler(int sig, int flags)
{
	struct sigaction sa = { .sa_handler = on_sig, .sa_flags = flags };

	sigemptyset(&sa.sa_mask);
	PT_OK(sigaction(sig, &sa, NULL));
}

struct result {
	ssize_t got;
	int err;
	char buf[16];
};

static void *reader(void *arg)
{
	struct result *r = arg;

	r->got = read(fds[0], r->buf, sizeof(r->buf));
	r->err = errno;
	return NULL;
}

static void test_interrupts_a_wait(void)
{
	struct result r = { 0 };
	pthread_t t;

	atomic_store(&handled, 0);
	set_handler(SIGUSR1, 0); /* no SA_RESTART: the read fails */
	PT_OK(pthread_create(&t, NULL, reader, &r));
	usleep(20000);
	PT_OK(pthread_kill(t, SIGUSR1));
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(r.got == -1 && r.err == EINTR);
	PT_CHECK(atomic_load(&handled) == 1);
	PT_CHECK(pthread_equal(atomic_load(&handled_on), t));
}

static void test_restarts_a_wait(void)
{
	struct result r = { 0 };
	pthread_t t;

	atomic_store(&handled, 0);
	set_handler(SIGUSR1, SA_RESTART);
	PT_OK(pthread_create(&t, NULL, reader, &r));
	usleep(20000);
	PT_OK(pthread_kill(t, SIGUSR1));
	for (int i = 0; i < 5000 && !atomic_load(&handled); i++)
		usleep(1000);
	PT_CHECK(atomic_load(&handled) == 1);
	PT_CHECK(write(fds[1], "data", 4) == 4);
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(r.got == 4 && memcmp(r.buf, "data", 4) == 0);
	PT_CHECK(pthread_equal(atomic_load(&handled_on), t));
}

static atomic_int phase;

static void *masker(void *arg)
{
	sigset_t s, cur;

	(void)arg;
	/* Started with its creator's mask: SIGUSR2 blocked. */
	PT_OK(pthread_sigmask(SIG_BLOCK, NULL, &cur));
	PT_CHECK(sigismember(&cur, SIGUSR2) == 1);
	atomic_store(&phase, 1);
	while (atomic_load(&phase) != 2)
		usleep(1000);
	usleep(20000);
	PT_CHECK(atomic_load(&handled) == 0); /* held back by the mask */
	sigemptyset(&s);
	sigaddset(&s, SIGUSR2);
	PT_OK(pthread_sigmask(SIG_UNBLOCK, &s, NULL));
	/* Delivered when unblocked, on this thread. */
	for (int i = 0; i < 5000 && !atomic_load(&handled); i++)
		usleep(1000);
	PT_CHECK(atomic_load(&handled) == 1);
	PT_CHECK(pthread_equal(atomic_load(&handled_on), pthread_self()));
	PT_OK(pthread_sigmask(SIG_BLOCK, NULL, &cur));
	PT_CHECK(sigismember(&cur, SIGUSR2) == 0);
	return NULL;
}

static void test_mask(void)
{
	sigset_t s, old;
	pthread_t t;

	atomic_store(&handled, 0);
	set_handler(SIGUSR2, SA_RESTART);
	sigemptyset(&s);
	sigaddset(&s, SIGUSR2);
	PT_OK(pthread_sigmask(SIG_BLOCK, &s, &old));
	PT_CHECK(sigismember(&old, SIGUSR2) == 0);
	PT_OK(pthread_create(&t, NULL, masker, NULL));
	PT_OK(pthread_sigmask(SIG_SETMASK, &old, NULL));
	while (atomic_load(&phase) != 1)
		usleep(1000);
	PT_OK(pthread_kill(t, SIGUSR2));
	atomic_store(&phase, 2);
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(pthread_sigmask(12345, &s, NULL) == EINVAL);
}

static void *idle_thread(void *arg)
{
	(void)arg;
	while (atomic_load(&phase) != 3)
		usleep(1000);
	return NULL;
}

static void test_args_and_ignored(void)
{
	pthread_t t;

	PT_OK(pthread_create(&t, NULL, idle_thread, NULL));
	PT_OK(pthread_kill(t, 0));
	PT_CHECK(pthread_kill(t, 12345) == EINVAL);
	signal(SIGUSR1, SIG_IGN);
	PT_OK(pthread_kill(t, SIGUSR1)); /* ignored: nothing happens */
	PT_OK(pthread_kill(t, SIGCHLD)); /* default: ignored */
	usleep(10000);
	atomic_store(&phase, 3);
	PT_OK(pthread_join(t, NULL));
}

int main(void)
{
	pt_alarm(60);
	PT_OK(pipe(fds));
	test_interrupts_a_wait();
	test_restarts_a_wait();
	test_mask();
	test_args_and_ignored();
	printf("pt_kill: %s\n", pt_exit_status() ? "FAILED" : "ok");
	return pt_exit_status();
}
