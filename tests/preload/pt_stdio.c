/* pt_stdio.c - stdio from many threads: glibc's FILE lock must see each
 * thread as its own owner, so no line is ever torn */
#include <string.h>
#include <unistd.h>

#include "pt.h"

#define NTHREADS 32
#define LINES 200

static FILE *out;

static void *writer(void *arg)
{
	int id = (int)(long)arg;

	for (int i = 0; i < LINES; i++) {
		/* Three calls, one line: flockfile makes it one unit, and
		 * the calls inside take the same lock again as its owner. */
		flockfile(out);
		fprintf(out, "%03d:", id);
		fprintf(out, "%04d:", i);
		fputs("abcdefghijklmnopqrstuvwxyz\n", out);
		funlockfile(out);
		if (i % 7 == 0)
			sched_yield();
		fprintf(out, "%03d+%04d+one-call\n", id, i);
	}
	return NULL;
}

int main(void)
{
	pthread_t t[NTHREADS];
	char line[128];
	int n = 0;

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
		int id, i;
		char tail[64];

		n++;
		if (sscanf(line, "%3d:%4d:%63s", &id, &i, tail) == 3)
			PT_CHECK(strcmp(tail, "abcdefghijklmnopqrstuvwxyz") == 0);
		else if (sscanf(line, "%3d+%4d+%63s", &id, &i, tail) == 3)
			PT_CHECK(strcmp(tail, "one-call") == 0);
		else
			PT_CHECK(!"a torn line");
	}
	PT_CHECK(n == NTHREADS * LINES * 2);
	printf("pt_stdio: %s (%d lines)\n", pt_exit_status() ? "FAILED" : "ok", n);
	return pt_exit_status();
}
