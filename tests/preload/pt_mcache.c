/* pt_mcache.c - ended threads give their malloc caches back
 *
 * Each thread mallocs and frees chunks of several sizes, which glibc keeps
 * in that thread's own cache; a thread that ends must not leave the cache
 * behind.  20,000 threads, one at a time: the resident set may grow by
 * far less than the 1.5 KiB a thread that a lost cache costs (30 MiB).
 */
#include "pt.h"

#define THREADS 20000
#define MAX_GROWTH_KIB 4096

static void *churn(void *arg)
{
	void *p[16];

	for (int i = 0; i < 16; i++)
		p[i] = malloc(24 + 16 * (size_t)i);
	for (int i = 0; i < 16; i++)
		free(p[i]);
	return arg;
}

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long size = 0, resident = 0;

	if (!f || fscanf(f, "%ld %ld", &size, &resident) != 2)
		resident = -1;
	if (f)
		fclose(f);
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void run(int n)
{
	for (int i = 0; i < n; i++) {
		pthread_t t;

		PT_OK(pthread_create(&t, NULL, churn, NULL));
		PT_OK(pthread_join(t, NULL));
	}
}

int main(void)
{
	long before, growth;

	pt_alarm(60);
	run(1000); /* the stacks, caches and pools settle */
	before = rss_kib();
	PT_CHECK(before > 0);
	run(THREADS);
	growth = rss_kib() - before;
	if (growth > MAX_GROWTH_KIB)
		fprintf(stderr, "pt_mcache: %d threads grew the resident set by %ld KiB\n",
			THREADS, growth);
	PT_CHECK(growth <= MAX_GROWTH_KIB);
	return pt_exit_status();
}
