/* pt_tls.c - per-thread errno, __thread variables and pthread_self() across
 * 10,000 threads that yield and sleep while they hold their values */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "pt.h"

#define NTHREADS 10000

static __thread int tls_int = 17;
static __thread char tls_buf[64] = "initial";
static pthread_t selves[NTHREADS];

static void *worker(void *arg)
{
	int id = (int)(long)arg;
	pthread_t me = pthread_self();

	/* A new thread sees the initial values, not another thread's. */
	PT_CHECK(tls_int == 17);
	PT_CHECK(strcmp(tls_buf, "initial") == 0);
	PT_CHECK(isdigit('7') && toupper('a') == 'A'); /* <ctype.h> tables */
	errno = 1000 + id;
	tls_int = id;
	snprintf(tls_buf, sizeof(tls_buf), "thread %d", id);
	for (int i = 0; i < 3; i++) {
		sched_yield();
		if (id % 100 == 0)
			usleep(100);
		PT_CHECK(errno == 1000 + id);
		PT_CHECK(tls_int == id);
		PT_CHECK(pthread_equal(pthread_self(), me));
	}
	{
		char want[64];

		snprintf(want, sizeof(want), "thread %d", id);
		PT_CHECK(strcmp(tls_buf, want) == 0);
	}
	PT_CHECK(__errno_location() == &errno);
	selves[id] = me;
	return (void *)(long)(id + 1);
}

static int cmp(const void *a, const void *b)
{
	pthread_t x = *(const pthread_t *)a, y = *(const pthread_t *)b;

	return x < y ? -1 : x > y;
}

int main(void)
{
	static pthread_t t[NTHREADS];
	pthread_t main_self = pthread_self();
	int created = 0;

	errno = 5;
	tls_int = -1;
	for (int i = 0; i < NTHREADS; i++) {
		pthread_attr_t a;

		pthread_attr_init(&a);
		pthread_attr_setstacksize(&a, 64 * 1024);
		if (pthread_create(&t[i], &a, worker, (void *)(long)i) == 0)
			created++;
		pthread_attr_destroy(&a);
	}
	PT_CHECK(created == NTHREADS);
	for (int i = 0; i < created; i++) {
		void *r;

		PT_OK(pthread_join(t[i], &r));
		PT_CHECK(r == (void *)(long)(i + 1));
		PT_CHECK(pthread_equal(t[i], selves[i]));
	}
	/* All alive at once were distinct; here all are, since each ran. */
	qsort(selves, NTHREADS, sizeof(selves[0]), cmp);
	for (int i = 1; i < NTHREADS; i++)
		PT_CHECK(selves[i] != selves[i - 1]);
	PT_CHECK(errno == 5 && tls_int == -1);
	PT_CHECK(pthread_equal(pthread_self(), main_self));
	printf("pt_tls: %s\n", pt_exit_status() ? "FAILED" : "ok");
	return pt_exit_status();
}
