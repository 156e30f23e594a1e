/* micro.c - thread, lock and wake-up micro-benchmarks, written once for libsa and NPTL */

/*
 * Built twice: bench-micro-sa (impl_sa.h, libsa) and bench-micro-nptl
 * (impl_nptl.h, glibc NPTL).  One process runs one benchmark, because the
 * processor count is fixed when the runtime starts:
 *
 *	bench-micro-sa [--json] [--reps N] [--time-ms MS] BENCH
 *	bench-micro-sa --list
 *
 * A micro-benchmark first calibrates: it doubles its operation count until
 * one run takes 10 ms (this is the warm-up), scales the count so that a run
 * takes --time-ms (default 50), then times --reps runs (default 5) with
 * CLOCK_MONOTONIC and reports the median in ns per operation.  Skynet runs
 * once untimed, then --reps times (at most 3 for a million leaves), and
 * reports the median in seconds.  Threads are created before the clock
 * starts and released through a start gate; the clock stops after the last
 * join.  Every benchmark checks its result (counter, sum) so that a broken
 * primitive cannot look fast.
 *
 * --json prints one JSON object per benchmark on stdout:
 *	{"bench": NAME, "impl": "libsa"|"nptl", "metric": M, "value": V}
 * where M is "ns_per_op" or "seconds"; a benchmark the implementation cannot
 * run has "value": null and a "skipped" reason.  Any failing call ends the
 * process with status 2 and a message naming the call.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "impl.h"

#define BENCH_PROG "bench-micro"
#include "harness.h"

/* Spawn @n workers running @fn(@arg), open the gate, join them: elapsed ns. */
static uint64_t run_workers(unsigned n, void *(*fn)(void *), void **args,
			    struct gate *g)
{
	bt_thread_t t[8];
	uint64_t t0;

	for (unsigned i = 0; i < n; i++)
		CHECK(bt_spawn(&t[i], fn, args[i]));
	t0 = gate_open(g, n);
	for (unsigned i = 0; i < n; i++)
		CHECK(bt_join(t[i], NULL));
	return now_ns() - t0;
}

/* ------------------------------------------------------------------------
 * create+join: one thread creates a thread that returns at once, joins it.
 */

static void *return_arg(void *arg)
{
	return arg;
}

static uint64_t run_create_join(uint64_t n)
{
	uint64_t t0 = now_ns();

	for (uint64_t i = 0; i < n; i++) {
		bt_thread_t t;
		void *ret;

		CHECK(bt_spawn(&t, return_arg, (void *)(uintptr_t)i));
		CHECK(bt_join(t, &ret));
		if ((uintptr_t)ret != i)
			die_wrong("join value", (uintptr_t)ret, i);
	}
	return now_ns() - t0;
}

/* ------------------------------------------------------------------------
 * yield: two threads on one processor yield to each other; per yield call.
 */

struct loop_arg {
	struct gate *g;
	uint64_t n;
};

static void *yield_worker(void *p)
{
	struct loop_arg *a = p;

	gate_arrive(a->g);
	for (uint64_t i = 0; i < a->n; i++)
		CHECK(bt_yield());
	return NULL;
}

static uint64_t run_yield(uint64_t n)
{
	struct gate g = { 0, 0 };
	struct loop_arg a = { &g, n / 2 };
	void *args[2] = { &a, &a };

	return run_workers(2, yield_worker, args, &g);
}

/* ------------------------------------------------------------------------
 * Mutexes: an uncontended lock+unlock pair, and two threads incrementing
 * one counter under one mutex (per critical section).
 *
 * The uncontended loop runs on a thread the main thread created and joins,
 * so that the process is multi-threaded as any program that locks is:
 * glibc's lock takes no atomic instruction while a process has only its
 * first thread, which would time a case no threaded program meets.
 */

struct uncontended {
	uint64_t n, elapsed;
};

static void *mutex_uncontended_worker(void *p)
{
	struct uncontended *u = p;
	bt_mutex_t m;
	volatile uint64_t counter = 0;
	uint64_t t0;

	CHECK(bt_mutex_init(&m));
	t0 = now_ns();
	for (uint64_t i = 0; i < u->n; i++) {
		CHECK(bt_mutex_lock(&m));
		counter++;
		CHECK(bt_mutex_unlock(&m));
	}
	u->elapsed = now_ns() - t0;
	CHECK(bt_mutex_destroy(&m));
	if (counter != u->n)
		die_wrong("counter", counter, u->n);
	return NULL;
}

static uint64_t run_mutex_uncontended(uint64_t n)
{
	struct uncontended u = { n, 0 };
	bt_thread_t t;

	CHECK(bt_spawn(&t, mutex_uncontended_worker, &u));
	CHECK(bt_join(t, NULL));
	return u.elapsed;
}

#define CONTENDED_THREADS 2

struct contended {
	struct gate g;
	bt_mutex_t m;
	uint64_t per_thread;
	uint64_t counter; /* only under m */
};

static void *contended_worker(void *p)
{
	struct contended *c = p;

	gate_arrive(&c->g);
	for (uint64_t i = 0; i < c->per_thread; i++) {
		CHECK(bt_mutex_lock(&c->m));
		c->counter++;
		CHECK(bt_mutex_unlock(&c->m));
	}
	return NULL;
}

static uint64_t run_mutex_contended(uint64_t n)
{
	struct contended c = { .per_thread = n / CONTENDED_THREADS };
	void *args[CONTENDED_THREADS];
	uint64_t elapsed;

	CHECK(bt_mutex_init(&c.m));
	for (unsigned i = 0; i < CONTENDED_THREADS; i++)
		args[i] = &c;
	elapsed = run_workers(CONTENDED_THREADS, contended_worker, args, &c.g);
	CHECK(bt_mutex_destroy(&c.m));
	if (c.counter != c.per_thread * CONTENDED_THREADS)
		die_wrong("counter", c.counter, c.per_thread * CONTENDED_THREADS);
	return elapsed;
}

/* ------------------------------------------------------------------------
 * Condition-variable ping-pong: one mutex, one condvar per side, a turn
 * variable; one round trip is a turn of each side.
 */

struct pingpong {
	struct gate g;
	bt_mutex_t m;
	bt_cond_t c[2];
	bt_sem_t s[2];
	int turn;        /* under m */
	uint64_t rounds;
	uint64_t done[2];
};

struct side {
	struct pingpong *pp;
	int me;
};

static void *cond_side(void *p)
{
	struct side *s = p;
	struct pingpong *pp = s->pp;
	int me = s->me;

	gate_arrive(&pp->g);
	CHECK(bt_mutex_lock(&pp->m));
	for (uint64_t i = 0; i < pp->rounds; i++) {
		while (pp->turn != me)
			CHECK(bt_cond_wait(&pp->c[me], &pp->m));
		pp->turn = !me;
		pp->done[me]++;
		CHECK(bt_cond_signal(&pp->c[!me]));
	}
	CHECK(bt_mutex_unlock(&pp->m));
	return NULL;
}

static uint64_t run_cond_pingpong(uint64_t n)
{
	struct pingpong pp = { .rounds = n };
	struct side sides[2] = { { &pp, 0 }, { &pp, 1 } };
	void *args[2] = { &sides[0], &sides[1] };
	uint64_t elapsed;

	CHECK(bt_mutex_init(&pp.m));
	CHECK(bt_cond_init(&pp.c[0]));
	CHECK(bt_cond_init(&pp.c[1]));
	elapsed = run_workers(2, cond_side, args, &pp.g);
	CHECK(bt_cond_destroy(&pp.c[1]));
	CHECK(bt_cond_destroy(&pp.c[0]));
	CHECK(bt_mutex_destroy(&pp.m));
	if (pp.done[0] != n || pp.done[1] != n)
		die_wrong("turns", pp.done[0] + pp.done[1], 2 * n);
	return elapsed;
}

/* ------------------------------------------------------------------------
 * Semaphore ping-pong: side 0 posts s[1] and waits on s[0]; side 1 waits
 * on s[1] and posts s[0].  One round trip per iteration.
 */

static void *sem_side(void *p)
{
	struct side *s = p;
	struct pingpong *pp = s->pp;

	gate_arrive(&pp->g);
	for (uint64_t i = 0; i < pp->rounds; i++) {
		if (s->me == 0) {
			CHECK(bt_sem_post(&pp->s[1]));
			CHECK(bt_sem_wait(&pp->s[0]));
		} else {
			CHECK(bt_sem_wait(&pp->s[1]));
			CHECK(bt_sem_post(&pp->s[0]));
		}
		pp->done[s->me]++;
	}
	return NULL;
}

static uint64_t run_sem_pingpong(uint64_t n)
{
	struct pingpong pp = { .rounds = n };
	struct side sides[2] = { { &pp, 0 }, { &pp, 1 } };
	void *args[2] = { &sides[0], &sides[1] };
	uint64_t elapsed;

	CHECK(bt_sem_init(&pp.s[0], 0));
	CHECK(bt_sem_init(&pp.s[1], 0));
	elapsed = run_workers(2, sem_side, args, &pp.g);
	CHECK(bt_sem_destroy(&pp.s[1]));
	CHECK(bt_sem_destroy(&pp.s[0]));
	if (pp.done[0] != n || pp.done[1] != n)
		die_wrong("rounds", pp.done[0] + pp.done[1], 2 * n);
	return elapsed;
}

/* ------------------------------------------------------------------------
 * Skynet: every node with more than one leaf below it spawns 10 children
 * and sums what their joins return; a leaf returns its number.
 */

struct sky {
	uint64_t num;
	uint64_t size; /* leaves below this node */
};

static void *skynet(void *p)
{
	struct sky *a = p;
	struct sky kids[10];
	bt_thread_t t[10];
	uint64_t sum = 0, step = a->size / 10;

	if (a->size == 1)
		return (void *)(uintptr_t)a->num;
	for (int i = 0; i < 10; i++) {
		kids[i].num = a->num + (uint64_t)i * step;
		kids[i].size = step;
		CHECK(bt_spawn(&t[i], skynet, &kids[i]));
	}
	for (int i = 0; i < 10; i++) {
		void *ret;

		CHECK(bt_join(t[i], &ret));
		sum += (uintptr_t)ret;
	}
	return (void *)(uintptr_t)sum;
}

static uint64_t run_skynet(uint64_t leaves)
{
	struct sky root = { 0, leaves };
	uint64_t t0 = now_ns(), sum;

	sum = (uintptr_t)skynet(&root);
	if (sum != leaves * (leaves - 1) / 2)
		die_wrong("sum", sum, leaves * (leaves - 1) / 2);
	return now_ns() - t0;
}

/* ------------------------------------------------------------------------
 * The table and the harness.
 */

struct bench {
	const char *name;
	const char *what;     /* what one operation is */
	unsigned procs;       /* processors (VPs, pinned CPUs) */
	uint64_t (*run)(uint64_t n);
	uint64_t leaves;      /* skynet: fixed size, reported in seconds */
	uint64_t n_align;     /* the operation count is a multiple of this */
};

static const struct bench benches[] = {
	{ "create-join", "create+join", 2, run_create_join, 0, 1 },
	{ "create-join-1cpu", "create+join", 1, run_create_join, 0, 1 },
	{ "yield", "yield", 1, run_yield, 0, 2 },
	{ "mutex-uncontended", "lock+unlock", 2, run_mutex_uncontended, 0, 1 },
	{ "mutex-contended", "critical section, 2 threads", 2,
	  run_mutex_contended, 0, CONTENDED_THREADS },
	{ "cond-pingpong-1cpu", "round trip", 1, run_cond_pingpong, 0, 1 },
	{ "cond-pingpong-2cpu", "round trip", 2, run_cond_pingpong, 0, 1 },
	{ "sem-pingpong-1cpu", "round trip", 1, run_sem_pingpong, 0, 1 },
	{ "sem-pingpong-2cpu", "round trip", 2, run_sem_pingpong, 0, 1 },
	{ "skynet-10k", "10,000 leaves", 2, run_skynet, 10000, 0 },
	{ "skynet-1m", "1,000,000 leaves", 2, run_skynet, 1000000, 0 },
};

#define NBENCH (sizeof(benches) / sizeof(benches[0]))

/*
 * Kernel threads cannot do skynet at a million leaves in reasonable time:
 * the harness reports it skipped instead of running it.
 */
#define KTHREAD_SKYNET_MAX_LEAVES 10000
#define KTHREAD_SKYNET_SKIP "1,111,111 kernel threads: each is a kernel " \
	"task with an 8 MiB stack mapping, limited by threads-max and " \
	"vm.max_map_count and minutes of clone+exit; compare skynet-10k"

static void report(const struct bench *b, bool json, double value,
		   double lo, double hi, int reps, uint64_t n)
{
	const char *metric = b->leaves ? "seconds" : "ns_per_op";

	if (json) {
		printf("{\"bench\": \"%s\", \"impl\": \"%s\", \"metric\": "
		       "\"%s\", \"value\": %.*f}\n", b->name, BT_IMPL_NAME,
		       metric, b->leaves ? 4 : 2, value);
	} else if (b->leaves) {
		printf("%-20s %-6s %10.4f s       (%s on %u procs; median of %d, "
		       "min %.4f max %.4f)\n", b->name, BT_IMPL_NAME, value,
		       b->what, b->procs, reps, lo, hi);
	} else {
		printf("%-20s %-6s %10.1f ns/op   (%s on %u procs; median of "
		       "%d x %" PRIu64 " ops, min %.1f max %.1f)\n", b->name,
		       BT_IMPL_NAME, value, b->what, b->procs, reps, n, lo, hi);
	}
	fflush(stdout);
}

static void report_skipped(const struct bench *b, bool json, const char *why)
{
	if (json)
		printf("{\"bench\": \"%s\", \"impl\": \"%s\", \"metric\": "
		       "\"seconds\", \"value\": null, \"skipped\": \"%s\"}\n",
		       b->name, BT_IMPL_NAME, why);
	else
		printf("%-20s %-6s skipped: %s\n", b->name, BT_IMPL_NAME, why);
}

static uint64_t calibrate(const struct bench *b, uint64_t target_ns)
{
	uint64_t n = 16, elapsed;

	for (;;) {
		elapsed = b->run(n);
		if (elapsed >= 10000000u || n >= (1ull << 40))
			break;
		n *= elapsed < 1000000u ? 8 : 2;
	}
	n = (uint64_t)((double)n * (double)target_ns / (double)(elapsed ?: 1));
	n = (n + b->n_align - 1) / b->n_align * b->n_align;
	return n ?: b->n_align;
}

static void run_bench(const struct bench *b, bool json, int reps,
		      uint64_t target_ns)
{
	uint64_t samples[64], n;
	double scale;

	if (BT_KERNEL_THREADS && b->leaves > KTHREAD_SKYNET_MAX_LEAVES) {
		report_skipped(b, json, KTHREAD_SKYNET_SKIP);
		return;
	}
	if (b->leaves) {
		if (b->leaves >= 1000000 && reps > 3)
			reps = 3;
		n = b->leaves;
		b->run(n); /* warm-up */
		scale = 1e-9;
	} else {
		n = calibrate(b, target_ns);
		scale = 1.0 / (double)n;
	}
	for (int i = 0; i < reps; i++)
		samples[i] = b->run(n);
	qsort(samples, reps, sizeof(samples[0]), cmp_u64);
	report(b, json, samples[reps / 2] * scale, samples[0] * scale,
	       samples[reps - 1] * scale, reps, n);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench-micro-%s [--json] [--reps N] [--time-ms MS] "
		"BENCH\n       bench-micro-%s --list\nbenchmarks:\n",
		BT_IMPL_NAME, BT_IMPL_NAME);
	for (size_t i = 0; i < NBENCH; i++)
		fprintf(f, "  %-20s %s on %u procs\n", benches[i].name,
			benches[i].what, benches[i].procs);
}

static const char *bench_name(size_t i)
{
	return benches[i].name;
}

int main(int argc, char **argv)
{
	struct bench_args a;
	const struct bench *b;
	int rc = bench_parse_args(argc, argv, NBENCH, bench_name, usage, &a);

	if (rc >= 0)
		return rc;
	b = &benches[a.which];
	cur_bench = b->name;
	CHECK(bt_setup(b->procs));
	run_bench(b, a.json, a.reps, a.time_ns);
	return 0;
}
