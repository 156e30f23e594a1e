/* pt_fork.c - fork() from a thread while others run: atfork handlers in
 * POSIX order, a child that keeps the caller's identity and can make
 * threads again, exec from the child; the same under NPTL */
#include <errno.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pt.h"

static char trail[64];
static atomic_int trail_n;
static pthread_key_t key;
static __thread int tls_mark;
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;  /* the busy threads' */
static pthread_mutex_t fm = PTHREAD_MUTEX_INITIALIZER; /* held across fork */
static pthread_mutex_t cm = PTHREAD_MUTEX_INITIALIZER; /* the child's threads' */
static pthread_cond_t c = PTHREAD_COND_INITIALIZER;
static int counter;
static atomic_int stop;

static void mark(char ch)
{
	int n = atomic_fetch_add(&trail_n, 1);

	if (n < (int)sizeof(trail) - 1)
		trail[n] = ch;
}

/* POSIX: prepare handlers in reverse order, parent and child in order. */
static void prep1(void) { mark('P'); pthread_mutex_lock(&fm); }
static void prep2(void) { mark('p'); }
static void parent1(void) { mark('A'); pthread_mutex_unlock(&fm); }
static void parent2(void) { mark('a'); }
static void child1(void) { mark('C'); pthread_mutex_unlock(&fm); }
static void child2(void) { mark('c'); }

static void *busy(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		pthread_mutex_lock(&m);
		counter++;
		pthread_cond_broadcast(&c);
		pthread_mutex_unlock(&m);
		usleep(100);
	}
	return NULL;
}

static void *adder(void *arg)
{
	for (int i = 0; i < 1000; i++) {
		pthread_mutex_lock(&cm);
		counter++;
		pthread_mutex_unlock(&cm);
		if (i % 100 == 0)
			sched_yield();
	}
	return arg;
}

/* In the child: one thread, this one, that can make threads again. */
static int child_main(pthread_t self_before)
{
	pthread_t t[8];
	int bad = 0;

	bad |= strcmp(trail, "pPCc") != 0;
	bad |= !pthread_equal(pthread_self(), self_before);
	bad |= pthread_getspecific(key) != (void *)&key;
	bad |= tls_mark != 77;
	counter = 0;
	for (long i = 0; i < 8; i++)
		bad |= pthread_create(&t[i], NULL, adder, (void *)i) != 0;
	for (long i = 0; i < 8; i++) {
		void *r;

		bad |= pthread_join(t[i], &r) != 0 || r != (void *)i;
	}
	bad |= counter != 8000;
	bad |= pthread_mutex_trylock(&fm) != 0; /* child1 released it */
	pthread_mutex_unlock(&fm);
	errno = 0;
	bad |= close(-1) != -1 || errno != EBADF;
	if (bad)
		fprintf(stderr, "child: trail %s counter %d\n", trail, counter);
	return bad;
}

static void *forker(void *arg)
{
	pthread_t me = pthread_self();
	int st;
	pid_t pid;

	(void)arg;
	tls_mark = 77;
	PT_OK(pthread_setspecific(key, &key));
	memset(trail, 0, sizeof(trail));
	atomic_store(&trail_n, 0);
	pid = fork();
	if (pid == 0)
		_exit(child_main(me));
	PT_CHECK(pid > 0);
	PT_CHECK(waitpid(pid, &st, 0) == pid);
	PT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	PT_CHECK(strcmp(trail, "pPAa") == 0);

	/* exec from the child of a thread. */
	pid = fork();
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", "exit 3", (char *)NULL);
		_exit(127);
	}
	PT_CHECK(waitpid(pid, &st, 0) == pid);
	PT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3);
	return NULL;
}

int main(void)
{
	pthread_t b[4], f;
	int st;
	pid_t pid;

	pt_alarm(60);
	PT_OK(pthread_key_create(&key, NULL));
	PT_OK(pthread_atfork(prep1, parent1, child1));
	PT_OK(pthread_atfork(prep2, parent2, child2));
	for (int i = 0; i < 4; i++)
		PT_OK(pthread_create(&b[i], NULL, busy, NULL));
	/* From a thread that is not the main one, while others run. */
	PT_OK(pthread_create(&f, NULL, forker, NULL));
	PT_OK(pthread_join(f, NULL));
	/* From the main thread, too. */
	tls_mark = 77;
	PT_OK(pthread_setspecific(key, &key));
	memset(trail, 0, sizeof(trail));
	atomic_store(&trail_n, 0);
	pid = fork();
	if (pid == 0)
		_exit(child_main(pthread_self()));
	PT_CHECK(waitpid(pid, &st, 0) == pid);
	PT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	atomic_store(&stop, 1);
	for (int i = 0; i < 4; i++)
		PT_OK(pthread_join(b[i], NULL));
	printf("pt_fork: %s\n", pt_exit_status() ? "FAILED" : "ok");
	return pt_exit_status();
}
