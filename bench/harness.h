/* harness.h - what every C benchmark program shares: errors, the clock, the start gate */
#ifndef BENCH_HARNESS_H
#define BENCH_HARNESS_H

/*
 * Included by a benchmark program after impl.h, with BENCH_PROG defined to
 * the program's base name ("bench-micro", ...) for its messages.  The
 * program sets cur_bench to the benchmark it runs.  Every function is
 * static inline, so a program pays only for what it uses.
 */

#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef BENCH_PROG
#error "define BENCH_PROG before including harness.h"
#endif

static const char *cur_bench = "?";

static inline __attribute__((noreturn)) void die(const char *what, int rc)
{
	fprintf(stderr, BENCH_PROG " (%s): %s: %s failed: %s\n",
		BT_IMPL_NAME, cur_bench, what, strerror(-rc));
	exit(2);
}

/* CHECK - run a bt_* call; any error ends the benchmark. */
#define CHECK(call) do {				\
	int rc_ = (call);				\
	if (rc_ != 0)					\
		die(#call, rc_);			\
} while (0)

static inline __attribute__((noreturn)) void die_wrong(const char *what,
						       uint64_t got, uint64_t want)
{
	fprintf(stderr, BENCH_PROG " (%s): %s: wrong result: %s is %" PRIu64
		", expected %" PRIu64 "\n", BT_IMPL_NAME, cur_bench, what,
		got, want);
	exit(2);
}

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* ------------------------------------------------------------------------
 * Start gate: workers arrive and wait (yielding, so that it also works on
 * one processor without preemption); the timer starts when all arrived.
 */

struct gate {
	atomic_uint ready;
	atomic_uint go;
};

static inline void gate_arrive(struct gate *g)
{
	atomic_fetch_add(&g->ready, 1);
	while (!atomic_load_explicit(&g->go, memory_order_acquire))
		CHECK(bt_yield());
}

static inline uint64_t gate_open(struct gate *g, unsigned n)
{
	uint64_t t0;

	while (atomic_load(&g->ready) < n)
		CHECK(bt_yield());
	t0 = now_ns();
	atomic_store_explicit(&g->go, 1, memory_order_release);
	return t0;
}

/* ------------------------------------------------------------------------
 * Command line: [--json] [--reps N] [--time-ms MS] BENCH, --list, --help.
 */

struct bench_args {
	bool json;          /* one JSON object per figure */
	int reps;           /* timed runs, 1 to 64 (default 5) */
	uint64_t time_ns;   /* --time-ms (default 50) */
	size_t which;       /* the benchmark named */
};

/*
 * bench_parse_args - read the command line into @a
 * @name_at: the name of benchmark @i, for @i below @n
 * @usage:   prints the usage and the benchmarks to a stream
 * Returns -1 when the program is to run benchmark @a->which, else the
 * status to exit with: 0 after --list or --help, 1 after a usage error.
 */
static inline int bench_parse_args(int argc, char **argv, size_t n,
				   const char *(*name_at)(size_t i),
				   void (*usage)(FILE *f), struct bench_args *a)
{
	bool named = false;

	*a = (struct bench_args){ false, 5, 50000000u, 0 };
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			a->json = true;
		} else if (!strcmp(argv[i], "--list")) {
			for (size_t k = 0; k < n; k++)
				printf("%s\n", name_at(k));
			return 0;
		} else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
			a->reps = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--time-ms") && i + 1 < argc) {
			a->time_ns = strtoull(argv[++i], NULL, 10) * 1000000u;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else if (argv[i][0] != '-' && !named) {
			for (size_t k = 0; k < n && !named; k++)
				if (!strcmp(argv[i], name_at(k))) {
					a->which = k;
					named = true;
				}
			if (!named) {
				fprintf(stderr, "unknown benchmark %s\n", argv[i]);
				usage(stderr);
				return 1;
			}
		} else {
			usage(stderr);
			return 1;
		}
	}
	if (!named || a->reps < 1 || a->reps > 64 || a->time_ns == 0) {
		usage(stderr);
		return 1;
	}
	return -1;
}

#endif /* BENCH_HARNESS_H */
