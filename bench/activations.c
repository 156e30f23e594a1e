/* activations.c - what activations are for: a CPU hog, blocking I/O, a hidden system call */

/*
 * Built twice, like micro.c: bench-activations-sa (libsa) and
 * bench-activations-nptl (glibc NPTL).  One process runs one benchmark:
 *
 *	bench-activations-sa [--json] [--reps N] [--time-ms MS] BENCH
 *	bench-activations-sa --list
 *
 * hog-pingpong (1 processor).  Two threads ping-pong through one mutex and
 * one condvar per side (the cond-pingpong of micro.c) while a third spins
 * in a loop that never blocks or yields.  Side 0 timestamps every round
 * trip; a run lasts 4 x --time-ms (200 ms by default: 50 of libsa's 4 ms
 * quanta).  Per run: the median, 99th percentile and maximum round trip;
 * reported: the median over --reps runs of the first two (hog-pingpong,
 * hog-pingpong-p99) and the largest maximum.  Also reported: the hog's
 * share of the CPU time the process used in the run, in percent
 * (hog-pingpong-share: its loop count divided by its rate per CPU ns when
 * it ran alone just before), because a runtime that starves the hog shows
 * a fine ping-pong.  On libsa the hog leaves the VP only when the preemption
 * tick (SA_QUANTUM_US) takes it away.
 *
 * io-overlap (2 processors).  IO_PAIRS client/server pairs, each a thread
 * per task, make IO_ROUNDS request/response exchanges of IO_MSG bytes over
 * two pipes with blocking reads and writes (bt_read/bt_write: sa_read and
 * sa_write on libsa, read(2) and write(2) on NPTL), while IO_COMPUTE
 * compute threads each run a fixed CPU job.  Reported: the seconds until
 * everything is done (io-overlap), and until the last I/O pair is done
 * (io-overlap-io).  Median of --reps runs after an untimed one.
 *
 * hidden-syscall (1 processor).  A thread enters a blocking system call
 * that the runtime does not see, syscall(SYS_nanosleep) of 20 ms, while
 * another thread is runnable (it yields in a loop until the first has
 * published the time it entered the call).  Reported: the milliseconds
 * from the entry to the moment the other thread runs.  On stock Linux
 * libsa's watchdog hands the VP to a spare activation once it has made no
 * switch for SA_BLOCKED_US (1 ms by default); NPTL's kernel runs the
 * other thread at once.  Median of --reps runs after an untimed one.
 *
 * Processors: libsa VPs (sa_init(n)), NPTL with the process pinned to n
 * CPUs (sched_setaffinity, before any thread exists).  --json prints one
 * JSON object per reported figure, as micro.c does, with "metric" "ns" (a
 * latency), "percent", "seconds" or "milliseconds"; extra keys carry the
 * figures the table does not show.  Every benchmark checks its result.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "impl.h"

#define BENCH_PROG "bench-activations"
#include "harness.h"

static double median_of(double *v, int n)
{
	for (int i = 1; i < n; i++) /* insertion sort: n <= 64 */
		for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
			double t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return v[n / 2];
}

/* Print one reported figure; @extra is "" or ", \"key\": value, ...". */
static void emit(const struct bench_args *o, const char *bench, const char *metric,
		 double value, int prec, const char *extra)
{
	if (o->json)
		printf("{\"bench\": \"%s\", \"impl\": \"%s\", \"metric\": "
		       "\"%s\", \"value\": %.*f%s}\n", bench, BT_IMPL_NAME,
		       metric, prec, value, extra);
	else
		printf("%-20s %-6s %12.*f %s%s\n", bench, BT_IMPL_NAME, prec,
		       value, metric, extra);
	fflush(stdout);
}

/*
 * spin_unit - a fixed piece of CPU work: 1024 steps of a 64-bit LCG with
 * an xorshift, each depending on the last.  The Go peer does the same.
 */
static uint64_t spin_unit(uint64_t x)
{
	for (int i = 0; i < 1024; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		x ^= x >> 29;
	}
	return x;
}

static volatile uint64_t spin_sink;

/* ------------------------------------------------------------------------
 * hog-pingpong
 */

#define HOG_SAMPLES_MAX (16u << 20)

struct hog {
	struct gate g;
	bt_mutex_t m;
	bt_cond_t c[2];
	int turn;           /* under m */
	bool stop;          /* under m */
	atomic_int hog_stop;
	uint64_t run_ns;
	uint32_t *lat;      /* side 0's round trips, ns */
	size_t nlat;
	uint64_t hog_units;
	uint64_t turns[2];
};

static void *hog_spinner(void *p)
{
	struct hog *h = p;
	uint64_t x = 1, units = 0;

	gate_arrive(&h->g);
	while (!atomic_load_explicit(&h->hog_stop, memory_order_relaxed)) {
		x = spin_unit(x);
		units++;
	}
	spin_sink = x;
	h->hog_units = units;
	return NULL;
}

static void *hog_ping(void *p)
{
	struct hog *h = p;
	uint64_t start, t0, t1;

	gate_arrive(&h->g);
	CHECK(bt_mutex_lock(&h->m));
	start = t0 = now_ns();
	for (;;) {
		if (t0 - start >= h->run_ns || h->nlat == HOG_SAMPLES_MAX) {
			h->stop = true;
			h->turn = 1;
			CHECK(bt_cond_signal(&h->c[1]));
			break;
		}
		h->turn = 1;
		h->turns[0]++;
		CHECK(bt_cond_signal(&h->c[1]));
		while (h->turn != 0)
			CHECK(bt_cond_wait(&h->c[0], &h->m));
		t1 = now_ns();
		h->lat[h->nlat++] = (uint32_t)(t1 - t0 > UINT32_MAX ? UINT32_MAX : t1 - t0);
		t0 = t1;
	}
	CHECK(bt_mutex_unlock(&h->m));
	atomic_store(&h->hog_stop, 1);
	return NULL;
}

static void *hog_pong(void *p)
{
	struct hog *h = p;

	gate_arrive(&h->g);
	CHECK(bt_mutex_lock(&h->m));
	for (;;) {
		while (h->turn != 1)
			CHECK(bt_cond_wait(&h->c[1], &h->m));
		if (h->stop)
			break;
		h->turn = 0;
		h->turns[1]++;
		CHECK(bt_cond_signal(&h->c[0]));
	}
	CHECK(bt_mutex_unlock(&h->m));
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t cpu_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * The hog loop's rate alone, in units per ns of the calling kernel
 * thread's CPU time (for libsa: the VP's, which runs nothing else now), so
 * that other processes on the machine do not skew it.
 */
static double hog_rate_alone(void)
{
	uint64_t x = 1, units = 0, t0 = cpu_ns(CLOCK_THREAD_CPUTIME_ID), t;

	do {
		for (int i = 0; i < 16; i++)
			x = spin_unit(x);
		units += 16;
		t = cpu_ns(CLOCK_THREAD_CPUTIME_ID);
	} while (t - t0 < 20000000u);
	spin_sink = x;
	return (double)units / (double)(t - t0);
}

struct hog_result {
	double med, p99, max, share;
	size_t n;
};

static void run_hog_once(struct hog *h, double rate, struct hog_result *r)
{
	bt_thread_t t[3];
	void *(*fn[3])(void *) = { hog_spinner, hog_ping, hog_pong };
	uint64_t cpu0 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID), cpu1;

	h->g = (struct gate){ 0, 0 };
	h->turn = 0;
	h->stop = false;
	atomic_store(&h->hog_stop, 0);
	h->nlat = 0;
	h->turns[0] = h->turns[1] = 0;
	for (int i = 0; i < 3; i++)
		CHECK(bt_spawn(&t[i], fn[i], h));
	gate_open(&h->g, 3);
	for (int i = 0; i < 3; i++)
		CHECK(bt_join(t[i], NULL));
	cpu1 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
	if (h->nlat == 0 || h->turns[0] != h->nlat || h->turns[1] != h->nlat)
		die_wrong("round trips", h->turns[1], h->nlat);
	qsort(h->lat, h->nlat, sizeof(h->lat[0]), cmp_u32);
	r->n = h->nlat;
	r->med = h->lat[h->nlat / 2];
	r->p99 = h->lat[h->nlat * 99 / 100];
	r->max = h->lat[h->nlat - 1];
	r->share = (double)h->hog_units / rate / (double)(cpu1 - cpu0);
}

static void bench_hog_pingpong(const struct bench_args *o)
{
	struct hog h = { .run_ns = 4 * o->time_ns };
	struct hog_result r;
	double med[64], p99[64], share[64], max = 0, rate;
	size_t n = 0;
	char extra[256];

	h.lat = malloc(HOG_SAMPLES_MAX * sizeof(h.lat[0]));
	if (!h.lat)
		die("malloc", -ENOMEM);
	CHECK(bt_mutex_init(&h.m));
	CHECK(bt_cond_init(&h.c[0]));
	CHECK(bt_cond_init(&h.c[1]));
	rate = hog_rate_alone();
	for (int i = 0; i < o->reps; i++) {
		run_hog_once(&h, rate, &r);
		med[i] = r.med;
		p99[i] = r.p99;
		share[i] = r.share;
		if (r.max > max)
			max = r.max;
		n += r.n;
	}
	CHECK(bt_cond_destroy(&h.c[1]));
	CHECK(bt_cond_destroy(&h.c[0]));
	CHECK(bt_mutex_destroy(&h.m));
	free(h.lat);
	snprintf(extra, sizeof(extra), ", \"max_ns\": %.0f, \"round_trips\": %zu",
		 max, n);
	emit(o, "hog-pingpong", "ns", median_of(med, o->reps), 1, extra);
	emit(o, "hog-pingpong-p99", "ns", median_of(p99, o->reps), 1, "");
	emit(o, "hog-pingpong-share", "percent",
	     100.0 * median_of(share, o->reps), 1, "");
}

/* ------------------------------------------------------------------------
 * io-overlap
 */

#define IO_PAIRS 64
#define IO_ROUNDS 200
#define IO_MSG 64
#define IO_COMPUTE 2
#define IO_COMPUTE_UNITS 60000

struct io_run;

struct io_pair {
	struct io_run *run;
	unsigned idx;
	int req[2];         /* client -> server */
	int rsp[2];         /* server -> client */
	uint64_t done_ns;
};

struct io_run {
	bt_sem_t start;
	struct io_pair pair[IO_PAIRS];
	uint64_t compute_out[IO_COMPUTE];
	uint64_t compute_done_ns[IO_COMPUTE];
};

static void io_full(int fd, void *buf, bool wr)
{
	size_t got = 0;

	while (got < IO_MSG) {
		ssize_t r = wr ? bt_write(fd, (char *)buf + got, IO_MSG - got)
			       : bt_read(fd, (char *)buf + got, IO_MSG - got);

		if (r < 0)
			die(wr ? "bt_write" : "bt_read", (int)r);
		if (r == 0)
			die("bt_read (end of file)", -EPIPE);
		got += (size_t)r;
	}
}

/* A message: its pair and round in the first 8 bytes, then a pattern. */
static void io_fill(uint8_t *msg, unsigned idx, unsigned round)
{
	uint64_t tag = (uint64_t)idx << 32 | round;

	memcpy(msg, &tag, sizeof(tag));
	for (unsigned i = sizeof(tag); i < IO_MSG; i++)
		msg[i] = (uint8_t)(idx + round + i);
}

static void *io_client(void *p)
{
	struct io_pair *pr = p;
	uint8_t out[IO_MSG], in[IO_MSG];

	CHECK(bt_sem_wait(&pr->run->start));
	for (unsigned r = 0; r < IO_ROUNDS; r++) {
		io_fill(out, pr->idx, r);
		io_full(pr->req[1], out, true);
		io_full(pr->rsp[0], in, false);
		out[IO_MSG - 1] ^= 0xff; /* what the server sends back */
		if (memcmp(in, out, IO_MSG) != 0)
			die_wrong("response of pair", pr->idx, r);
	}
	pr->done_ns = now_ns();
	return NULL;
}

static void *io_server(void *p)
{
	struct io_pair *pr = p;
	uint8_t buf[IO_MSG];

	CHECK(bt_sem_wait(&pr->run->start));
	for (unsigned r = 0; r < IO_ROUNDS; r++) {
		io_full(pr->req[0], buf, false);
		buf[IO_MSG - 1] ^= 0xff;
		io_full(pr->rsp[1], buf, true);
	}
	return NULL;
}

struct io_compute_arg {
	struct io_run *run;
	unsigned idx;
};

static void *io_compute(void *p)
{
	struct io_compute_arg *a = p;
	uint64_t x = 1;

	CHECK(bt_sem_wait(&a->run->start));
	for (unsigned i = 0; i < IO_COMPUTE_UNITS; i++)
		x = spin_unit(x);
	a->run->compute_out[a->idx] = x;
	a->run->compute_done_ns[a->idx] = now_ns();
	return NULL;
}

/* One run: *io_ns until the last pair is done, *cpu_ns until the last
 * compute thread is done; returns the ns until all are joined. */
static uint64_t run_io_once(struct io_run *run, uint64_t *io_ns, uint64_t *cpu_ns,
			    uint64_t *compute_out)
{
	enum { NT = 2 * IO_PAIRS + IO_COMPUTE };
	bt_thread_t t[NT];
	struct io_compute_arg ca[IO_COMPUTE];
	uint64_t t0, end, io = 0, cpu = 0;
	unsigned k = 0;

	CHECK(bt_sem_init(&run->start, 0));
	for (unsigned i = 0; i < IO_PAIRS; i++) {
		struct io_pair *pr = &run->pair[i];

		pr->run = run;
		pr->idx = i;
		if (pipe(pr->req) || pipe(pr->rsp))
			die("pipe", -errno);
		CHECK(bt_spawn(&t[k++], io_client, pr));
		CHECK(bt_spawn(&t[k++], io_server, pr));
	}
	for (unsigned i = 0; i < IO_COMPUTE; i++) {
		ca[i] = (struct io_compute_arg){ run, i };
		CHECK(bt_spawn(&t[k++], io_compute, &ca[i]));
	}
	t0 = now_ns();
	for (unsigned i = 0; i < NT; i++)
		CHECK(bt_sem_post(&run->start));
	for (unsigned i = 0; i < NT; i++)
		CHECK(bt_join(t[i], NULL));
	end = now_ns();
	for (unsigned i = 0; i < IO_PAIRS; i++) {
		struct io_pair *pr = &run->pair[i];

		if (pr->done_ns - t0 > io)
			io = pr->done_ns - t0;
		close(pr->req[0]);
		close(pr->req[1]);
		close(pr->rsp[0]);
		close(pr->rsp[1]);
	}
	for (unsigned i = 0; i < IO_COMPUTE; i++) {
		if (*compute_out && run->compute_out[i] != *compute_out)
			die_wrong("compute result", run->compute_out[i], *compute_out);
		*compute_out = run->compute_out[i];
		if (run->compute_done_ns[i] - t0 > cpu)
			cpu = run->compute_done_ns[i] - t0;
	}
	CHECK(bt_sem_destroy(&run->start));
	*io_ns = io;
	*cpu_ns = cpu;
	return end - t0;
}

static void bench_io_overlap(const struct bench_args *o)
{
	struct io_run *run = calloc(1, sizeof(*run));
	double all[64], io[64], cpu[64];
	uint64_t io_ns, cpu_ns, out = 0;
	char extra[256];

	if (!run)
		die("calloc", -ENOMEM);
	run_io_once(run, &io_ns, &cpu_ns, &out); /* warm-up */
	for (int i = 0; i < o->reps; i++) {
		all[i] = (double)run_io_once(run, &io_ns, &cpu_ns, &out) * 1e-9;
		io[i] = (double)io_ns * 1e-9;
		cpu[i] = (double)cpu_ns * 1e-9;
	}
	free(run);
	snprintf(extra, sizeof(extra), ", \"compute_done_s\": %.4f, \"pairs\": %d, "
		 "\"rounds\": %d, \"compute_threads\": %d",
		 median_of(cpu, o->reps), IO_PAIRS, IO_ROUNDS, IO_COMPUTE);
	emit(o, "io-overlap", "seconds", median_of(all, o->reps), 4, extra);
	emit(o, "io-overlap-io", "seconds", median_of(io, o->reps), 4, "");
}

/* ------------------------------------------------------------------------
 * hidden-syscall
 */

#define HIDDEN_SLEEP_NS 20000000u

struct hidden {
	atomic_uint waiting;
	_Atomic uint64_t entered;  /* when the sleeper entered the call */
	uint64_t other_ran;        /* when the waiter first ran after that */
	uint64_t returned;         /* when the call returned */
};

static void *hidden_waiter(void *p)
{
	struct hidden *h = p;

	atomic_store(&h->waiting, 1);
	while (!atomic_load(&h->entered))
		CHECK(bt_yield());
	h->other_ran = now_ns();
	return NULL;
}

static void *hidden_sleeper(void *p)
{
	struct hidden *h = p;
	struct timespec ts = { 0, HIDDEN_SLEEP_NS };

	while (!atomic_load(&h->waiting))
		CHECK(bt_yield());
	atomic_store(&h->entered, now_ns());
	/* The raw system call: no runtime wrapper sees it. */
	if (syscall(SYS_nanosleep, &ts, NULL) != 0)
		die("syscall(SYS_nanosleep)", -errno);
	h->returned = now_ns();
	return NULL;
}

static void run_hidden_once(double *to_other_ms, double *call_ms)
{
	struct hidden h = { 0 };
	bt_thread_t w, s;

	CHECK(bt_spawn(&w, hidden_waiter, &h));
	CHECK(bt_spawn(&s, hidden_sleeper, &h));
	CHECK(bt_join(s, NULL));
	CHECK(bt_join(w, NULL));
	if (h.returned - h.entered < HIDDEN_SLEEP_NS)
		die_wrong("nanosleep ns", h.returned - h.entered, HIDDEN_SLEEP_NS);
	*to_other_ms = (double)(h.other_ran - h.entered) * 1e-6;
	*call_ms = (double)(h.returned - h.entered) * 1e-6;
}

static void bench_hidden_syscall(const struct bench_args *o)
{
	double other[64], call[64];
	char extra[128];

	run_hidden_once(&other[0], &call[0]); /* warm-up */
	for (int i = 0; i < o->reps; i++)
		run_hidden_once(&other[i], &call[i]);
	snprintf(extra, sizeof(extra), ", \"syscall_ms\": %.3f",
		 median_of(call, o->reps));
	emit(o, "hidden-syscall", "milliseconds", median_of(other, o->reps), 3, extra);
}

/* ------------------------------------------------------------------------
 * The table and main.
 */

struct abench {
	const char *name;
	unsigned procs;
	void (*run)(const struct bench_args *o);
	const char *what;
};

static const struct abench abenches[] = {
	{ "hog-pingpong", 1, bench_hog_pingpong,
	  "condvar round trip beside a CPU hog (median; also -p99)" },
	{ "io-overlap", 2, bench_io_overlap,
	  "64 pipe request/response pairs beside 2 compute threads (s)" },
	{ "hidden-syscall", 1, bench_hidden_syscall,
	  "ms from a hidden 20 ms nanosleep to the other thread running" },
};

#define NABENCH (sizeof(abenches) / sizeof(abenches[0]))

static void usage(FILE *f)
{
	fprintf(f, "usage: bench-activations-%s [--json] [--reps N] [--time-ms MS] "
		"BENCH\n       bench-activations-%s --list\nbenchmarks:\n",
		BT_IMPL_NAME, BT_IMPL_NAME);
	for (size_t i = 0; i < NABENCH; i++)
		fprintf(f, "  %-16s %s, %u procs\n", abenches[i].name,
			abenches[i].what, abenches[i].procs);
}

static const char *abench_name(size_t i)
{
	return abenches[i].name;
}

int main(int argc, char **argv)
{
	struct bench_args a;
	const struct abench *b;
	int rc = bench_parse_args(argc, argv, NABENCH, abench_name, usage, &a);

	if (rc >= 0)
		return rc;
	b = &abenches[a.which];
	cur_bench = b->name;
	CHECK(bt_setup(b->procs));
	b->run(&a);
	return 0;
}
