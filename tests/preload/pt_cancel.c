/* pt_cancel.c - pthread_exit() and cancellation with cleanup handlers
 *
 * Built twice: as plain C, where pthread_cleanup_push() registers a
 * buffer with __pthread_register_cancel(), and with -fexceptions
 * (PT_CANCEL_EXC), where it becomes a cleanup attribute that forced
 * unwinding runs.  The same checks must hold under NPTL.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "pt.h"

static char order[16];
static atomic_int order_n;

static void note(void *arg)
{
	int n = atomic_fetch_add(&order_n, 1);

	if (n < (int)sizeof(order) - 1)
		order[n] = (char)(long)arg;
}

static void reset(void)
{
	memset(order, 0, sizeof(order));
	atomic_store(&order_n, 0);
}

/* ---- pthread_exit runs the handlers, innermost first ---- */

static int deep_exit(int depth);
static int (*volatile deeper)(int) = deep_exit; /* frames for the unwinder */

static int deep_exit(int depth)
{
	if (depth > 0)
		return deeper(depth - 1) + 1;
	pthread_exit((void *)42);
}

static void *exiter(void *arg)
{
	(void)arg;
	pthread_cleanup_push(note, (void *)'a');
	pthread_cleanup_push(note, (void *)'b');
	pthread_cleanup_push(note, (void *)'x');
	pthread_cleanup_pop(1); /* runs x now */
	pthread_cleanup_push(note, (void *)'y');
	pthread_cleanup_pop(0); /* y never runs */
	pthread_cleanup_push(note, (void *)'c');
	deep_exit(5);
	pthread_cleanup_pop(0);
	pthread_cleanup_pop(0);
	pthread_cleanup_pop(0);
	return NULL;
}

static void test_exit(void)
{
	pthread_t t;
	void *r;

	reset();
	PT_OK(pthread_create(&t, NULL, exiter, NULL));
	PT_OK(pthread_join(t, &r));
	PT_CHECK(r == (void *)42);
	PT_CHECK(strcmp(order, "xcba") == 0);
}

/* ---- the old interface: _pthread_cleanup_push/_pop, as binaries built
 * against glibc 2.2 call it (no header declares it any more) ---- */

void _pthread_cleanup_push(struct _pthread_cleanup_buffer *b, void (*fn)(void *), void *arg);
void _pthread_cleanup_pop(struct _pthread_cleanup_buffer *b, int execute);

static void *old_style(void *arg)
{
	struct _pthread_cleanup_buffer b1, b2;

	(void)arg;
	_pthread_cleanup_push(&b1, note, (void *)'1');
	_pthread_cleanup_push(&b2, note, (void *)'2');
	_pthread_cleanup_pop(&b2, 1);
	_pthread_cleanup_push(&b2, note, (void *)'3');
	deep_exit(3);
	return NULL;
}

static void test_exit_old_style(void)
{
	pthread_t t;
	void *r;

	reset();
	PT_OK(pthread_create(&t, NULL, old_style, NULL));
	PT_OK(pthread_join(t, &r));
	PT_CHECK(r == (void *)42);
	PT_CHECK(strcmp(order, "231") == 0);
}

/* ---- a thread waiting in read() is cancelled ---- */

static int pipe_fds[2];

static void *reader(void *arg)
{
	char c;

	(void)arg;
	pthread_cleanup_push(note, (void *)'r');
	for (;;)
		if (read(pipe_fds[0], &c, 1) < 0 && errno != EINTR)
			break;
	pthread_cleanup_pop(0);
	return NULL;
}

static void test_cancel_read(void)
{
	pthread_t t;
	void *r;

	reset();
	PT_OK(pipe(pipe_fds));
	PT_OK(pthread_create(&t, NULL, reader, NULL));
	usleep(20000);
	PT_OK(pthread_cancel(t));
	PT_OK(pthread_join(t, &r));
	PT_CHECK(r == PTHREAD_CANCELED);
	PT_CHECK(strcmp(order, "r") == 0);
	close(pipe_fds[0]);
	close(pipe_fds[1]);
}

/* ---- a condition wait: the handler runs with the mutex held ---- */

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t c = PTHREAD_COND_INITIALIZER;
static int never;

static void unlock(void *arg)
{
	note((void *)'u');
	PT_OK(pthread_mutex_unlock(arg));
}

static void *waiter(void *arg)
{
	(void)arg;
	PT_OK(pthread_mutex_lock(&m));
	pthread_cleanup_push(unlock, &m);
	while (!never)
		pthread_cond_wait(&c, &m);
	pthread_cleanup_pop(1);
	return NULL;
}

static void test_cancel_cond(void)
{
	pthread_t t;
	void *r;

	reset();
	PT_OK(pthread_create(&t, NULL, waiter, NULL));
	usleep(20000);
	PT_OK(pthread_cancel(t));
	/* A wake-up it may need to see the request; a spurious one is legal. */
	usleep(20000);
	PT_OK(pthread_mutex_lock(&m));
	PT_OK(pthread_cond_broadcast(&c));
	PT_OK(pthread_mutex_unlock(&m));
	PT_OK(pthread_join(t, &r));
	PT_CHECK(r == PTHREAD_CANCELED);
	PT_CHECK(strcmp(order, "u") == 0);
	PT_OK(pthread_mutex_trylock(&m)); /* the handler released it */
	PT_OK(pthread_mutex_unlock(&m));
}

/* ---- disabled, then enabled; pthread_testcancel ---- */

static atomic_int phase;

static void *toggler(void *arg)
{
	int old;

	(void)arg;
	PT_OK(pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old));
	PT_CHECK(old == PTHREAD_CANCEL_ENABLE);
	atomic_store(&phase, 1);
	while (atomic_load(&phase) != 2)
		usleep(1000);
	pthread_testcancel(); /* disabled: nothing happens */
	usleep(1000);         /* nor at another cancellation point */
	note((void *)'d');
	PT_OK(pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old));
	PT_CHECK(old == PTHREAD_CANCEL_DISABLE);
	pthread_cleanup_push(note, (void *)'t');
	pthread_testcancel(); /* acts here */
	note((void *)'!');
	pthread_cleanup_pop(0);
	return NULL;
}

static void test_disable_enable(void)
{
	pthread_t t;
	void *r;

	reset();
	atomic_store(&phase, 0);
	PT_OK(pthread_create(&t, NULL, toggler, NULL));
	while (atomic_load(&phase) != 1)
		usleep(1000);
	PT_OK(pthread_cancel(t));
	atomic_store(&phase, 2);
	PT_OK(pthread_join(t, &r));
	PT_CHECK(r == PTHREAD_CANCELED);
	PT_CHECK(strcmp(order, "dt") == 0);
}

/* ---- a loop that only yields and tests ---- */

static void *spinner(void *arg)
{
	(void)arg;
	for (;;) {
		sched_yield();
		pthread_testcancel();
	}
	return NULL;
}

static void test_testcancel_loop(void)
{
	pthread_t t;
	void *r;

	PT_OK(pthread_create(&t, NULL, spinner, NULL));
	usleep(10000);
	PT_OK(pthread_cancel(t));
	PT_OK(pthread_join(t, &r));
	PT_CHECK(r == PTHREAD_CANCELED);
}

/* ---- arguments ---- */

static void *args_checker(void *arg)
{
	int old;

	(void)arg;
	PT_CHECK(pthread_setcancelstate(12345, &old) == EINVAL);
	PT_CHECK(pthread_setcanceltype(12345, &old) == EINVAL);
	PT_OK(pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, &old));
	PT_CHECK(old == PTHREAD_CANCEL_DEFERRED);
	PT_OK(pthread_setcanceltype(PTHREAD_CANCEL_DEFERRED, &old));
	PT_CHECK(old == PTHREAD_CANCEL_ASYNCHRONOUS);
	return (void *)7;
}

static void test_args(void)
{
	pthread_t t;
	void *r;

	PT_OK(pthread_create(&t, NULL, args_checker, NULL));
	PT_OK(pthread_join(t, &r));
	PT_CHECK(r == (void *)7);
}

/* ---- many at once ---- */

#define MANY 64

static void *sleeper(void *arg)
{
	(void)arg;
	pthread_cleanup_push(note, (void *)'s');
	for (;;)
		usleep(1000);
	pthread_cleanup_pop(0);
	return NULL;
}

static void test_many(void)
{
	pthread_t t[MANY];
	int canceled = 0;

	reset();
	for (int i = 0; i < MANY; i++)
		PT_OK(pthread_create(&t[i], NULL, i % 2 ? sleeper : reader, NULL));
	usleep(20000);
	for (int i = 0; i < MANY; i++)
		PT_OK(pthread_cancel(t[i]));
	for (int i = 0; i < MANY; i++) {
		void *r;

		PT_OK(pthread_join(t[i], &r));
		canceled += r == PTHREAD_CANCELED;
	}
	PT_CHECK(canceled == MANY);
	PT_CHECK(atomic_load(&order_n) == MANY);
}

int main(void)
{
	pt_alarm(60);
	test_exit();
	test_exit_old_style();
	test_cancel_read();
	test_cancel_cond();
	test_disable_enable();
	test_testcancel_loop();
	test_args();
	PT_OK(pipe(pipe_fds));
	test_many();
	printf("pt_cancel: %s\n", pt_exit_status() ? "FAILED" : "ok");
	return pt_exit_status();
}
