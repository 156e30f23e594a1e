/* pt_yield.c - two threads take turns through every yield call a program
 * may make: sched_yield, the old pthread_yield (compat symbol; sysbench
 * calls it), C11 thrd_yield
 *
 * Run on one VP without preemption ticks or blocked hand-off, a yield
 * that went to the kernel instead of the scheduler would never let the
 * other thread take its turn; the alarm then ends the program.
 */
#include <threads.h>
#include <unistd.h>

#include "pt.h"

#define TURNS 2000

/* A reference to pthread_yield@GLIBC_2.2.5, as binaries built against
 * glibc before 2.34 have (no header names it any more). */
__asm__(".symver old_pthread_yield, pthread_yield@GLIBC_2.2.5");
extern int old_pthread_yield(void);

static atomic_int turn;
static int (*yield_fn)(void);

static int c11_yield(void)
{
	thrd_yield();
	return 0;
}

static void *player(void *arg)
{
	int me = (int)(long)arg;

	for (int i = 0; i < TURNS; i++) {
		while (atomic_load(&turn) % 2 != me)
			yield_fn();
		atomic_fetch_add(&turn, 1);
	}
	return NULL;
}

static void play(int (*fn)(void))
{
	pthread_t t[2];

	yield_fn = fn;
	atomic_store(&turn, 0);
	for (long i = 0; i < 2; i++)
		PT_OK(pthread_create(&t[i], NULL, player, (void *)i));
	for (int i = 0; i < 2; i++)
		PT_OK(pthread_join(t[i], NULL));
	PT_CHECK(atomic_load(&turn) == 2 * TURNS);
}

int main(void)
{
	alarm(20); /* all of it takes milliseconds when the yields switch */
	play(sched_yield);
	play(old_pthread_yield);
	play(c11_yield);
	printf("pt_yield: %s\n", pt_exit_status() ? "FAILED" : "ok");
	return pt_exit_status();
}
