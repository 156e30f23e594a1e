/* c_threads10k.c - 10,000 threads hammering errno, __thread variables and stdio
 *
 * A plain C program built against glibc alone.  Every thread makes system
 * calls that fail with a known errno, keeps state in __thread variables
 * across yields and sleeps, and writes lines to stdout and to a shared
 * file.  It prints one line per thread (in any order) and a summary; the
 * sorted output must be the same under NPTL and under libsa-preload.so.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NTHREADS 10000
#define ROUNDS 4

static __thread int tls_id = -1;
static __thread char tls_name[32] = "unset";
static __thread unsigned long tls_sum;
static FILE *shared;
static atomic_int bad;

static void check(int ok, const char *what, int id)
{
	if (!ok && atomic_fetch_add(&bad, 1) < 10)
		fprintf(stderr, "thread %d: %s\n", id, what);
}

static void *worker(void *arg)
{
	int id = (int)(long)arg;

	check(tls_id == -1 && strcmp(tls_name, "unset") == 0 && tls_sum == 0,
	      "fresh __thread values", id);
	tls_id = id;
	snprintf(tls_name, sizeof(tls_name), "w%05d", id);
	for (int r = 0; r < ROUNDS; r++) {
		int e = (id + r) % 3;

		if (e == 0)
			check(close(-1 - id) == -1 && errno == EBADF, "close EBADF", id);
		else if (e == 1)
			check(open("/nonexistent/c_threads10k", O_RDONLY) == -1 && errno == ENOENT,
			      "open ENOENT", id);
		else
			check(lseek(0, 0, 99) == -1 && errno == EINVAL, "lseek EINVAL", id);
		int saved = errno;

		tls_sum += (unsigned long)id * (r + 1);
		if (id % 3 == 0)
			sched_yield();
		else if (id % 97 == 0)
			usleep(50);
		check(errno == saved, "errno kept across a switch", id);
		check(tls_id == id, "__thread int kept", id);
		flockfile(shared);
		fprintf(shared, "%s ", tls_name);
		fprintf(shared, "round %d\n", r);
		funlockfile(shared);
	}
	check(tls_sum == (unsigned long)id * (ROUNDS * (ROUNDS + 1) / 2), "__thread sum", id);
	printf("%s sum %lu\n", tls_name, tls_sum);
	return (void *)(long)id;
}

int main(void)
{
	static pthread_t t[NTHREADS];
	pthread_attr_t a;
	char line[128];
	long lines = 0;
	int created = 0;

	shared = tmpfile();
	if (!shared)
		return 1;
	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, 64 * 1024);
	for (long i = 0; i < NTHREADS; i++)
		created += pthread_create(&t[i], &a, worker, (void *)i) == 0;
	pthread_attr_destroy(&a);
	for (int i = 0; i < created; i++) {
		void *r;

		check(pthread_join(t[i], &r) == 0 && r == (void *)(long)i, "join", i);
	}
	rewind(shared);
	while (fgets(line, sizeof(line), shared)) {
		int id, r;

		lines++;
		check(sscanf(line, "w%5d round %d", &id, &r) == 2 && id >= 0 && id < NTHREADS &&
		      r >= 0 && r < ROUNDS, "a whole line in the shared file", -1);
	}
	printf("created %d lines %ld bad %d\n", created, lines, atomic_load(&bad));
	return atomic_load(&bad) != 0;
}
