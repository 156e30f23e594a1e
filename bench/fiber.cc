/* fiber.cc - the Boost.Fiber peer of bench/micro.c */

/*
 * Same benchmarks, names, calibration and output as bench/micro.c (read its
 * header comment), mapped onto Boost.Fiber:
 *
 *	create-join        boost::fibers::fiber + join()
 *	yield              boost::this_fiber::yield(), two fibers
 *	mutex-*            boost::fibers::mutex
 *	cond-pingpong-*    one fibers::mutex, one fibers::condition_variable per side
 *	sem-pingpong-*     no semaphore in Boost.Fiber: two buffered_channel<int>
 *	                   of capacity 2 (push = post, pop = wait)
 *	skynet-*           a fiber per node; a child stores its sum in the
 *	                   parent's slot, the parent reads it after join()
 *
 * Scheduler: a benchmark on one processor runs on one thread with the
 * default round_robin algorithm; on two processors, on two threads (main
 * and one helper) with algo::work_stealing(2) (idle threads spin, the
 * default).  Fibers use the default launch policy (post) and the default
 * stack allocator (fixedsize_stack, malloc'ed, 128 KiB).
 *
 *	bench-fiber [--json] [--reps N] [--time-ms MS] BENCH | --list
 */

#include <boost/fiber/all.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

namespace fibers = boost::fibers;
namespace this_fiber = boost::this_fiber;

static const char *cur_bench = "?";

static uint64_t now_ns()
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

[[noreturn]] static void die_wrong(const char *what, uint64_t got,
				   uint64_t want)
{
	fprintf(stderr, "bench-fiber: %s: wrong result: %s is %" PRIu64
		", expected %" PRIu64 "\n", cur_bench, what, got, want);
	exit(2);
}

/* Start gate, as in micro.c: arrive, yield until the clock starts. */
struct gate {
	std::atomic<unsigned> ready{0};
	std::atomic<unsigned> go{0};

	void arrive()
	{
		ready.fetch_add(1);
		while (!go.load(std::memory_order_acquire))
			this_fiber::yield();
	}
};

static uint64_t run_workers(unsigned n, const std::function<void(int)> &fn)
{
	gate g;
	std::vector<fibers::fiber> t;
	uint64_t t0;

	for (unsigned i = 0; i < n; i++)
		t.emplace_back([&g, &fn, i] { g.arrive(); fn((int)i); });
	while (g.ready.load() < n)
		this_fiber::yield();
	t0 = now_ns();
	g.go.store(1, std::memory_order_release);
	for (auto &f : t)
		f.join();
	return now_ns() - t0;
}

static uint64_t run_create_join(uint64_t n)
{
	uint64_t t0 = now_ns();

	for (uint64_t i = 0; i < n; i++) {
		fibers::fiber f([] {});
		f.join();
	}
	return now_ns() - t0;
}

static uint64_t run_yield(uint64_t n)
{
	return run_workers(2, [n](int) {
		for (uint64_t i = 0; i < n / 2; i++)
			this_fiber::yield();
	});
}

static uint64_t run_mutex_uncontended(uint64_t n)
{
	fibers::mutex m;
	volatile uint64_t counter = 0;
	uint64_t t0 = now_ns(), elapsed;

	for (uint64_t i = 0; i < n; i++) {
		m.lock();
		counter++;
		m.unlock();
	}
	elapsed = now_ns() - t0;
	if (counter != n)
		die_wrong("counter", counter, n);
	return elapsed;
}

static const unsigned contended_threads = 2;

static uint64_t run_mutex_contended(uint64_t n)
{
	fibers::mutex m;
	uint64_t counter = 0, per = n / contended_threads, elapsed;

	elapsed = run_workers(contended_threads, [&](int) {
		for (uint64_t i = 0; i < per; i++) {
			m.lock();
			counter++;
			m.unlock();
		}
	});
	if (counter != per * contended_threads)
		die_wrong("counter", counter, per * contended_threads);
	return elapsed;
}

static uint64_t run_cond_pingpong(uint64_t n)
{
	fibers::mutex m;
	fibers::condition_variable c[2];
	int turn = 0;
	uint64_t done[2] = { 0, 0 }, elapsed;

	elapsed = run_workers(2, [&](int me) {
		std::unique_lock<fibers::mutex> lk(m);
		for (uint64_t i = 0; i < n; i++) {
			while (turn != me)
				c[me].wait(lk);
			turn = !me;
			done[me]++;
			c[!me].notify_one();
		}
	});
	if (done[0] != n || done[1] != n)
		die_wrong("turns", done[0] + done[1], 2 * n);
	return elapsed;
}

static uint64_t run_sem_pingpong(uint64_t n)
{
	/* capacity must be a power of two; one slot is kept free: 2 holds 1 */
	fibers::buffered_channel<int> s0(2), s1(2);
	uint64_t done[2] = { 0, 0 }, elapsed;
	int v;

	elapsed = run_workers(2, [&](int me) {
		for (uint64_t i = 0; i < n; i++) {
			if (me == 0) {
				s1.push(1);
				s0.pop(v);
			} else {
				s1.pop(v);
				s0.push(1);
			}
			done[me]++;
		}
	});
	if (done[0] != n || done[1] != n)
		die_wrong("rounds", done[0] + done[1], 2 * n);
	return elapsed;
}

static void skynet(uint64_t *out, uint64_t num, uint64_t size)
{
	uint64_t res[10], step = size / 10, sum = 0;
	fibers::fiber t[10];

	if (size == 1) {
		*out = num;
		return;
	}
	for (int i = 0; i < 10; i++)
		t[i] = fibers::fiber(skynet, &res[i], num + i * step, step);
	for (int i = 0; i < 10; i++) {
		t[i].join();
		sum += res[i];
	}
	*out = sum;
}

static uint64_t run_skynet(uint64_t leaves)
{
	uint64_t t0 = now_ns(), sum;

	skynet(&sum, 0, leaves);
	if (sum != leaves * (leaves - 1) / 2)
		die_wrong("sum", sum, leaves * (leaves - 1) / 2);
	return now_ns() - t0;
}

struct bench {
	const char *name;
	const char *what;
	unsigned procs;
	uint64_t (*run)(uint64_t n);
	uint64_t leaves;
	uint64_t align;
};

static const bench benches[] = {
	{ "create-join", "fiber+join", 2, run_create_join, 0, 1 },
	{ "create-join-1cpu", "fiber+join", 1, run_create_join, 0, 1 },
	{ "yield", "this_fiber::yield", 1, run_yield, 0, 2 },
	{ "mutex-uncontended", "lock+unlock", 2, run_mutex_uncontended, 0, 1 },
	{ "mutex-contended", "critical section, 2 fibers", 2,
	  run_mutex_contended, 0, contended_threads },
	{ "cond-pingpong-1cpu", "round trip", 1, run_cond_pingpong, 0, 1 },
	{ "cond-pingpong-2cpu", "round trip", 2, run_cond_pingpong, 0, 1 },
	{ "sem-pingpong-1cpu", "channel round trip", 1, run_sem_pingpong, 0, 1 },
	{ "sem-pingpong-2cpu", "channel round trip", 2, run_sem_pingpong, 0, 1 },
	{ "skynet-10k", "10,000 leaves", 2, run_skynet, 10000, 0 },
	{ "skynet-1m", "1,000,000 leaves", 2, run_skynet, 1000000, 0 },
};

static uint64_t calibrate(const bench *b, uint64_t target_ns)
{
	uint64_t n = 16, elapsed;

	for (;;) {
		elapsed = b->run(n);
		if (elapsed >= 10000000u || n >= (1ull << 40))
			break;
		n *= elapsed < 1000000u ? 8 : 2;
	}
	n = (uint64_t)((double)n * (double)target_ns /
		       (double)(elapsed ? elapsed : 1));
	n = (n + b->align - 1) / b->align * b->align;
	return n ? n : b->align;
}

/*
 * Run @body on a scheduler for @procs threads: round_robin on this thread
 * for one, work_stealing on this thread plus procs-1 helpers otherwise.
 * The helpers schedule fibers until @body has returned.
 */
static void with_scheduler(unsigned procs, const std::function<void()> &body)
{
	std::vector<std::thread> helpers;
	fibers::mutex mx;
	fibers::condition_variable cv;
	bool done = false;

	if (procs <= 1) {
		body();
		return;
	}
	for (unsigned i = 1; i < procs; i++)
		helpers.emplace_back([&] {
			fibers::use_scheduling_algorithm<
				fibers::algo::work_stealing>(procs);
			std::unique_lock<fibers::mutex> lk(mx);
			cv.wait(lk, [&] { return done; });
		});
	fibers::use_scheduling_algorithm<fibers::algo::work_stealing>(procs);
	body();
	{
		std::unique_lock<fibers::mutex> lk(mx);
		done = true;
	}
	cv.notify_all();
	for (auto &h : helpers)
		h.join();
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench-fiber [--json] [--reps N] [--time-ms MS] "
		"BENCH | --list\n");
}

int main(int argc, char **argv)
{
	const bench *b = nullptr;
	bool json = false;
	int reps = 5;
	uint64_t target_ns = 50000000u;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "--list")) {
			for (const auto &k : benches)
				printf("%s\n", k.name);
			return 0;
		} else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
			reps = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--time-ms") && i + 1 < argc) {
			target_ns = strtoull(argv[++i], nullptr, 10) * 1000000u;
		} else if (argv[i][0] != '-' && !b) {
			for (const auto &k : benches)
				if (!strcmp(argv[i], k.name))
					b = &k;
			if (!b) {
				fprintf(stderr, "unknown benchmark %s\n", argv[i]);
				return 1;
			}
		} else {
			usage(stderr);
			return 1;
		}
	}
	if (!b || reps < 1 || target_ns == 0) {
		usage(stderr);
		return 1;
	}
	cur_bench = b->name;

	std::vector<uint64_t> samples;
	uint64_t n = 0;
	double scale = 1.0;

	with_scheduler(b->procs, [&] {
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
			samples.push_back(b->run(n));
	});
	std::sort(samples.begin(), samples.end());

	double med = samples[reps / 2] * scale;
	double lo = samples[0] * scale, hi = samples[reps - 1] * scale;

	if (json)
		printf("{\"bench\": \"%s\", \"impl\": \"boost-fiber\", \"metric\": "
		       "\"%s\", \"value\": %.*f}\n", b->name,
		       b->leaves ? "seconds" : "ns_per_op", b->leaves ? 4 : 2, med);
	else if (b->leaves)
		printf("%-20s %-6s %10.4f s       (%s on %u threads; median of "
		       "%d, min %.4f max %.4f)\n", b->name, "fiber", med, b->what,
		       b->procs, reps, lo, hi);
	else
		printf("%-20s %-6s %10.1f ns/op   (%s on %u threads; median of "
		       "%d x %" PRIu64 " ops, min %.1f max %.1f)\n", b->name,
		       "fiber", med, b->what, b->procs, reps, n, lo, hi);
	return 0;
}
