/* pt.h - helpers for the programs that run under libsa-preload.so */
#ifndef SA_TESTS_PT_H
#define SA_TESTS_PT_H

/*
 * These programs know nothing of libsa: they are plain pthreads programs
 * that check their own results and exit 0 only if every check held.
 * test_preload runs them under sa-run.  PT_CHECK prints what failed.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_int pt_failures;

#define PT_CHECK(cond)                                                        \
	do {                                                                  \
		if (!(cond)) {                                                \
			if (atomic_fetch_add(&pt_failures, 1) < 10)           \
				fprintf(stderr, "%s:%d: check failed: %s\n",  \
					__FILE__, __LINE__, #cond);           \
		}                                                             \
	} while (0)

/* PT_OK - 0 (pthread success) or the failure is reported. */
#define PT_OK(call) PT_CHECK((call) == 0)

static inline int pt_exit_status(void)
{
	return atomic_load(&pt_failures) ? 1 : 0;
}

/* One behaviour per run: the program runs the case its argument names. */
struct pt_case {
	const char *name;
	void (*fn)(void);
};

/*
 * pt_alarm - end the program after @secs seconds, three times as many in
 * the QEMU guest of tests/kernel (its init exports SA_HARNESS_SMP), whose
 * CPU is emulated in software: pt_flockfile's 4 million switches take 40 s
 * there.
 */
static inline void pt_alarm(unsigned secs)
{
	alarm(getenv("SA_HARNESS_SMP") ? 3 * secs : secs);
}

/* pt_main - run case argv[1] of @cases with a @secs alarm; exit status. */
static inline int pt_main(const char *prog, const struct pt_case *cases, size_t n,
			  unsigned secs, int argc, char **argv)
{
	pt_alarm(secs);
	for (size_t i = 0; argc == 2 && i < n; i++) {
		if (strcmp(argv[1], cases[i].name) == 0) {
			cases[i].fn();
			return pt_exit_status();
		}
	}
	fprintf(stderr, "usage: %s CASE\n", prog);
	return 2;
}

#endif /* SA_TESTS_PT_H */
