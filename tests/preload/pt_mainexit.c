/* pt_mainexit.c - pthread_exit() from main: main's frames unwind, the process lives on
 *
 * main calls pthread_exit() from a few frames down with cleanup handlers
 * pushed (plain C, or cleanup attributes with -fexceptions:
 * PT_MAINEXIT_EXC) and a thread-specific value set.  POSIX: the handlers
 * run innermost first, then main's key destructor; the process goes on
 * while another thread runs, and ends with status 0 when that thread
 * returns.  An atexit handler checks the order; the same under NPTL.
 * With the argument "solo" main makes no thread first: the process ends
 * with status 0 once main's handlers and destructor ran.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "pt.h"

static char order[16];
static atomic_int order_n;
static atomic_int main_gone;
static pthread_key_t key;

static void note(void *arg)
{
	int n = atomic_fetch_add(&order_n, 1);

	if (n < (int)sizeof(order) - 1)
		order[n] = (char)(long)arg;
}

static void key_dtor(void *v)
{
	note(v);
	atomic_store(&main_gone, 1);
}

/* The thread that outlives main: it waits for main's destructor. */
static void *survivor(void *arg)
{
	(void)arg;
	for (int i = 0; i < 5000 && !atomic_load(&main_gone); i++)
		usleep(1000);
	note((void *)'w');
	return NULL;
}

static const char *expected = "bakwe";

static void at_exit_check(void)
{
	note((void *)'e');
	if (strcmp(order, expected) != 0) {
		fprintf(stderr, "pt_mainexit: order \"%s\", expected \"%s\"\n", order, expected);
		_exit(1);
	}
	if (pt_exit_status())
		_exit(1);
}

static int deep_exit(int depth);
static int (*volatile deeper)(int) = deep_exit; /* frames for the unwinder */

static int deep_exit(int depth)
{
	if (depth > 0)
		return deeper(depth - 1) + 1;
	pthread_exit(NULL);
}

int main(int argc, char **argv)
{
	bool solo = argc == 2 && strcmp(argv[1], "solo") == 0;
	pthread_t t;

	pt_alarm(20);
	PT_OK(atexit(at_exit_check));
	PT_OK(pthread_key_create(&key, key_dtor));
	PT_OK(pthread_setspecific(key, (void *)'k'));
	if (solo) {
		expected = "bake";
	} else {
		PT_OK(pthread_create(&t, NULL, survivor, NULL));
		PT_OK(pthread_detach(t));
	}
	pthread_cleanup_push(note, (void *)'a');
	pthread_cleanup_push(note, (void *)'b');
	deep_exit(4);
	pthread_cleanup_pop(0);
	pthread_cleanup_pop(0);
	fprintf(stderr, "pt_mainexit: pthread_exit returned\n");
	return 1;
}
