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

#endif /* SA_TESTS_PT_H */
