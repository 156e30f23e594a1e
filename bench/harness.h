/* harness.h - what every C benchmark program shares: errors, the clock, the start gate */
#ifndef BENCH_HARNESS_H
#define BENCH_HARNESS_H

/*
 * Included by a benchmark program after impl.h, with BENCH_PROG defined to
 * the program's base name ("bench-micro", ...) for its messages.  The
 * program sets cur_bench to the benchmark it runs.
 */

#include <inttypes.h>
#include <stdatomic.h>
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

#endif /* BENCH_HARNESS_H */
