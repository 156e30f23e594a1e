/* pingpong.c - guest benchmarks: a pipe ping-pong and futex wake-ups between two threads */

/*
 * Runs inside the check-kernel guest, on the stock kernel and on the
 * patched one with the same config (check-kernel --bench, or
 * tests/kernel/bench-kernel for both side by side).
 *
 *  - pipe_pingpong: two threads bounce one byte through two pipes; each
 *    round trip is two blocking reads and two wake-ups.  Neither thread
 *    uses activations: this is the cost the series' scheduler hooks add
 *    to every other task, which should be nil.
 *  - futex_pingpong: the same with FUTEX_WAIT/FUTEX_WAKE on two words.
 *  - futex_wake: one way, from just before FUTEX_WAKE in one thread to
 *    just after FUTEX_WAIT returns in the other: the reference that the
 *    blocked-activation-to-spare latency is compared with.
 *
 * Each runs with both threads pinned to CPU 0 ("same") and, when there are
 * two CPUs, on CPUs 0 and 1 ("cross").  A run is calibrated to last about
 * RUN_NS; the median and minimum of RUNS runs are printed as a table and
 * as one JSON object a line, prefixed "SA-BENCH ", for the host to collect.
 *
 * Under TCG (software emulation) the absolute figures mean little: compare
 * ratios, between the two kernels or between two benchmarks of one run.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define RUNS 7
#define RUN_NS 300000000ull	/* per run, after calibration */
#define CAL_ITERS 200

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "pingpong: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0)
		die("sched_setaffinity");
}

static long futex(atomic_uint *uaddr, int op, unsigned int val)
{
	return syscall(SYS_futex, uaddr, op | FUTEX_PRIVATE_FLAG, val, NULL, NULL, 0);
}

/* futex_wait_while - sleep while *@w == @val. */
static void futex_wait_while(atomic_uint *w, unsigned int val)
{
	while (atomic_load(w) == val)
		if (futex(w, FUTEX_WAIT, val) != 0 && errno != EAGAIN && errno != EINTR)
			die("FUTEX_WAIT");
}

/* ---- one benchmark: a pair of threads, the partner runs partner() ---- */

struct pair {
	int cpu[2];
	uint64_t iters;
	int pipe_ab[2], pipe_ba[2];
	atomic_uint ping, pong;		/* futex words: round numbers */
	_Atomic uint64_t t_wake;	/* futex_wake: stamp before FUTEX_WAKE */
	uint64_t lat_sum;		/* futex_wake: sum of one-way latencies */
};

static void *pipe_partner(void *arg)
{
	struct pair *p = arg;
	char c;

	pin(p->cpu[1]);
	for (uint64_t i = 0; i < p->iters; i++) {
		if (read(p->pipe_ab[0], &c, 1) != 1)
			die("read");
		if (write(p->pipe_ba[1], &c, 1) != 1)
			die("write");
	}
	return NULL;
}

static void pipe_main(struct pair *p)
{
	char c = 'x';

	for (uint64_t i = 0; i < p->iters; i++) {
		if (write(p->pipe_ab[1], &c, 1) != 1)
			die("write");
		if (read(p->pipe_ba[0], &c, 1) != 1)
			die("read");
	}
}

static void *futex_partner(void *arg)
{
	struct pair *p = arg;

	pin(p->cpu[1]);
	for (unsigned int i = 0; i < p->iters; i++) {
		futex_wait_while(&p->ping, i);
		atomic_store(&p->pong, i + 1);
		futex(&p->pong, FUTEX_WAKE, 1);
	}
	return NULL;
}

static void futex_main(struct pair *p)
{
	for (unsigned int i = 0; i < p->iters; i++) {
		atomic_store(&p->ping, i + 1);
		futex(&p->ping, FUTEX_WAKE, 1);
		futex_wait_while(&p->pong, i);
	}
}

static void *wake_partner(void *arg)
{
	struct pair *p = arg;

	pin(p->cpu[1]);
	for (unsigned int i = 0; i < p->iters; i++) {
		futex_wait_while(&p->ping, i);
		p->lat_sum += now_ns() - atomic_load(&p->t_wake);
		atomic_store(&p->pong, i + 1);
		futex(&p->pong, FUTEX_WAKE, 1);
	}
	return NULL;
}

static void wake_main(struct pair *p)
{
	for (unsigned int i = 0; i < p->iters; i++) {
		/*
		 * Give the partner time to be asleep in FUTEX_WAIT; yielding
		 * lets it get there when both threads share a CPU.
		 */
		for (uint64_t t = now_ns(); now_ns() - t < 20000;)
			sched_yield();
		atomic_store(&p->t_wake, now_ns());
		atomic_store(&p->ping, i + 1);
		futex(&p->ping, FUTEX_WAKE, 1);
		futex_wait_while(&p->pong, i);
	}
}

struct bench {
	const char *name;
	const char *unit;
	void *(*partner)(void *);
	void (*main)(struct pair *);
	int one_way;		/* report lat_sum / iters, not time / iters */
};

static const struct bench benches[] = {
	{ "pipe_pingpong", "ns/round-trip", pipe_partner, pipe_main, 0 },
	{ "futex_pingpong", "ns/round-trip", futex_partner, futex_main, 0 },
	{ "futex_wake", "ns/wake-up", wake_partner, wake_main, 1 },
};

/* run_once - ns per iteration of @b with @iters iterations on @cpu0/@cpu1. */
static double run_once(const struct bench *b, int cpu0, int cpu1, uint64_t iters)
{
	struct pair p = { .cpu = { cpu0, cpu1 }, .iters = iters };
	pthread_t t;
	uint64_t t0, t1;

	if (pipe(p.pipe_ab) || pipe(p.pipe_ba))
		die("pipe");
	pin(cpu0);
	t0 = now_ns();
	if (pthread_create(&t, NULL, b->partner, &p))
		die("pthread_create");
	b->main(&p);
	pthread_join(t, NULL);
	t1 = now_ns();
	close(p.pipe_ab[0]); close(p.pipe_ab[1]);
	close(p.pipe_ba[0]); close(p.pipe_ba[1]);
	if (b->one_way)
		return (double)p.lat_sum / (double)iters;
	return (double)(t1 - t0) / (double)iters;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(void)
{
	int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
	const char *place[2] = { "same", "cross" };

	printf("NOTE: under TCG (QEMU software emulation) the absolute figures are not\n"
	       "NOTE: meaningful; compare ratios between kernels or between benchmarks.\n");
	printf("%-16s %-6s %-14s %10s %12s %12s\n",
	       "benchmark", "cpus", "unit", "iters", "median", "min");
	for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++) {
		const struct bench *b = &benches[i];

		for (int x = 0; x < 2; x++) {
			int cpu1 = x;	/* same: 0 and 0; cross: 0 and 1 */
			double r[RUNS], cal;
			uint64_t iters;

			if (x == 1 && ncpu < 2)
				continue;
			/* The fastest of three short runs: one slow start-up
			 * must not shrink every run to a handful of iterations. */
			cal = run_once(b, 0, cpu1, CAL_ITERS);
			for (int k = 0; k < 2; k++) {
				double c = run_once(b, 0, cpu1, CAL_ITERS);

				cal = c < cal ? c : cal;
			}
			if (b->one_way)	/* the 20 us spin dominates its time */
				cal += 20000 + 2 * cal;
			iters = (uint64_t)(RUN_NS / (cal > 1 ? cal : 1));
			if (iters < 100)
				iters = 100;
			for (int k = 0; k < RUNS; k++)
				r[k] = run_once(b, 0, cpu1, iters);
			qsort(r, RUNS, sizeof(r[0]), cmp_double);
			printf("%-16s %-6s %-14s %10llu %12.0f %12.0f\n", b->name,
			       place[x], b->unit, (unsigned long long)iters,
			       r[RUNS / 2], r[0]);
			printf("SA-BENCH {\"bench\":\"%s\",\"cpus\":\"%s\",\"unit\":\"%s\","
			       "\"iters\":%llu,\"runs\":%d,\"median\":%.1f,\"min\":%.1f,"
			       "\"max\":%.1f,\"ncpu\":%d}\n", b->name, place[x], b->unit,
			       (unsigned long long)iters, RUNS, r[RUNS / 2], r[0],
			       r[RUNS - 1], ncpu);
			fflush(stdout);
		}
	}
	return 0;
}
