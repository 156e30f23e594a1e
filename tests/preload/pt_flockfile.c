/* pt_flockfile.c - threads that yield while they hold a stdio stream
 *
 * Each of many threads locks one shared stream, writes half a line,
 * yields, and writes the rest.  Under the shim on one VP with the blocked
 * hand-off off, a thread that waited for the stream in glibc's futex would
 * stop the holder for good; the alarm then ends the program.
 */
#include <string.h>
#include <unistd.h>

#include "pt.h"

#define NTHREADS 2000

static FILE *out;

static void *writer(void *arg)
{
	int id = (int)(long)arg;

	flockfile(out);
	fprintf(out, "%04d:", id);
	sched_yield();
	usleep(id % 50 == 0 ? 100 : 0);
	fprintf(out, "%04d\n", id);
	funlockfile(out);
	return NULL;
}

int main(void)
{
	static pthread_t t[NTHREADS];
	char line[64];
	int n = 0;

	pt_alarm(120);
	out = tmpfile();
	PT_CHECK(out != NULL);
	if (!out)
		return 1;
	for (long i = 0; i < NTHREADS; i++)
		PT_OK(pthread_create(&t[i], NULL, writer, (void *)i));
	for (int i = 0; i < NTHREADS; i++)
		PT_OK(pthread_join(t[i], NULL));
	rewind(out);
	while (fgets(line, sizeof(line), out)) {
		int a, b;

		n++;
		PT_CHECK(sscanf(line, "%4d:%4d", &a, &b) == 2 && a == b);
	}
	PT_CHECK(n == NTHREADS);
	printf("pt_flockfile: %s (%d lines)\n", pt_exit_status() ? "FAILED" : "ok", n);
	return pt_exit_status();
}
