/* test_blocked.c - the blocked and unblocked upcalls: hidden blocking system calls */
#include <linux/membarrier.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "helpers.h"

#include <criterion/redirect.h>

#include "../libsa/upcall/sa_abi.h"

/*
 * Every test blocks a uthread in a raw read(2) of a pipe, which libsa
 * cannot see, on a runtime with one VP.  Without the blocked upcall
 * nothing else could run on that VP until the read returns.
 */
static int pipefd[2];
static _Atomic int reader_done;
static _Atomic uint64_t other_ran_at;
static char got;

/* start_blocked_vps - @vps VPs; @emulated_only: the test is about the
 * emulated backend's watchdog (else the kernel backend runs it too). */
static void start_blocked_vps(const char *vps, const char *blocked_us, bool emulated_only)
{
	struct sa_stats st;

	if (blocked_us)
		setenv("SA_BLOCKED_US", blocked_us, 1);
	h_start_env(vps);
	st = h_stats();
	if (st.backend == SA_BACKEND_KERNEL && !emulated_only) {
		cr_assert_eq(pipe(pipefd), 0);
		return;
	}
	if (st.backend != SA_BACKEND_EMULATED)
		cr_skip_test("the emulated backend is not in use");
	/* The hand-off's handshake needs membarrier(); /proc must say where
	 * a thread is. */
	if (!(syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0) &
	      MEMBARRIER_CMD_PRIVATE_EXPEDITED) ||
	    access("/proc/self/task", R_OK) != 0)
		cr_skip_test("no membarrier(PRIVATE_EXPEDITED) or no /proc here");
	cr_assert_eq(pipe(pipefd), 0);
}

/* start_blocked_on - start_blocked_vps() with one VP. */
static void start_blocked_on(const char *blocked_us, bool emulated_only)
{
	start_blocked_vps("1", blocked_us, emulated_only);
}

static void start_blocked(const char *blocked_us)
{
	start_blocked_on(blocked_us, false);
}

static void *hidden_reader(void *arg)
{
	long r = syscall(SYS_read, pipefd[0], &got, 1);

	UT_CHECK_EQ(r, 1);
	/* Back from the kernel: libsa works here, wherever we run now. */
	UT_CHECK(sa_vp_self() == 0);
	UT_CHECK_EQ(sa_yield(), 0);
	atomic_store(&reader_done, 1);
	(void)arg;
	return NULL;
}

static void *note_time(void *arg)
{
	(void)arg;
	atomic_store(&other_ran_at, h_mono());
	return NULL;
}

/* wait_for - sleep (the libsa way) until *@flag or 5 s. */
static void wait_for(_Atomic uint64_t *flag)
{
	uint64_t until = h_mono() + 5 * NSEC_PER_SEC_;

	while (!atomic_load(flag) && h_mono() < until)
		SA_OK(sa_sleep_ns(NSEC_PER_MSEC));
}

Test(blocked, hidden_syscall_does_not_stall_its_vp, .timeout = 30)
{
	sa_uthread_t r, o;
	struct sa_stats a, b;
	uint64_t t0;

	start_blocked(NULL);
	a = h_stats();
	r = h_spawn(hidden_reader, NULL);
	SA_OK(sa_sleep_ns(20 * NSEC_PER_MSEC)); /* the reader is in the kernel */
	t0 = h_mono();
	o = h_spawn(note_time, NULL);
	wait_for(&other_ran_at);
	cr_assert_neq(atomic_load(&other_ran_at), 0u, "nothing else ran on the VP");
	cr_assert_eq(atomic_load(&reader_done), 0);
	/* Bound: 1 ms by default; allow for a loaded machine. */
	cr_assert_lt(atomic_load(&other_ran_at) - t0, 500 * NSEC_PER_MSEC);
	cr_assert_eq(write(pipefd[1], "x", 1), 1);
	h_join(r);
	h_join(o);
	assert_no_ut_failures();
	cr_assert_eq(got, 'x');
	b = h_stats();
	cr_assert_geq(b.blocked_handoffs - a.blocked_handoffs, 1u);
	cr_assert_geq(b.unblocks - a.unblocks, 1u);
	cr_assert_geq(b.activations, 2u, "a spare carried the VP");
}

Test(blocked, main_uthread_blocked_in_the_kernel, .timeout = 30)
{
	sa_uthread_t o;
	char c;

	start_blocked(NULL);
	/* The spawned uthread can only run if our VP is handed over while
	 * we wait in read(2); it writes what we wait for. */
	atomic_store(&other_ran_at, 0);
	o = h_spawn(note_time, NULL);
	(void)o;
	{
		struct timespec ts = h_ns_to_ts(200 * NSEC_PER_MSEC);

		/* nanosleep through the raw call: libsa cannot see it */
		syscall(SYS_nanosleep, &ts, NULL);
	}
	cr_assert_neq(atomic_load(&other_ran_at), 0u,
		      "the spawned uthread did not run while we slept in the kernel");
	h_join(o);
	cr_assert_eq(sa_vp_self(), 0);
	c = 0;
	(void)c;
}

/*
 * A uthread that comes back from the kernel and computes without calling
 * libsa is stopped by the backend: from its return, the time during which
 * it and the VP's new carrier both run user code stays short.
 */
static _Atomic uint64_t heartbeat;
static _Atomic int hb_stop;
static uint64_t longest_overlap;

static void *beat(void *arg)
{
	(void)arg;
	while (!atomic_load_explicit(&hb_stop, memory_order_relaxed))
		atomic_fetch_add_explicit(&heartbeat, 1, memory_order_relaxed);
	return NULL;
}

static void *reader_then_compute(void *arg)
{
	uint64_t prev, start, stretch = 0, hb_prev;
	long r = syscall(SYS_read, pipefd[0], &got, 1);

	(void)arg;
	UT_CHECK_EQ(r, 1);
	start = prev = h_mono();
	hb_prev = atomic_load(&heartbeat);
	while (prev - start < 200 * NSEC_PER_MSEC) {
		uint64_t now = h_mono(), hb = atomic_load(&heartbeat);

		/* We ran from prev to now without a gap, and the beat went
		 * on meanwhile: two carriers ran user code of one VP. */
		if (now - prev < 100 * NSEC_PER_USEC && hb != hb_prev)
			stretch += now - prev;
		else
			stretch = 0;
		if (stretch > longest_overlap)
			longest_overlap = stretch;
		hb_prev = hb;
		prev = now;
	}
	atomic_store(&reader_done, 1);
	return NULL;
}

Test(blocked, returning_activation_gives_its_vp_back_within_the_bound, .timeout = 30)
{
	sa_uthread_t r, b;
	struct sa_stats st;

	start_blocked(NULL);
	r = h_spawn(reader_then_compute, NULL);
	SA_OK(sa_sleep_ns(20 * NSEC_PER_MSEC));
	b = h_spawn(beat, NULL);
	SA_OK(sa_sleep_ns(20 * NSEC_PER_MSEC)); /* the VP moved; the beat runs */
	cr_assert_gt(atomic_load(&heartbeat), 0u, "the VP was not handed over");
	cr_assert_eq(write(pipefd[1], "y", 1), 1);
	h_join(r);
	atomic_store(&hb_stop, 1);
	h_join(b);
	assert_no_ut_failures();
	st = h_stats();
	cr_assert_geq(st.unblocks, 1u);
	/* The bound is 1 ms plus a watchdog round; allow for a loaded host. */
	cr_assert_lt(longest_overlap, 50 * NSEC_PER_MSEC,
		     "two activations ran the VP's uthreads for %llu ns",
		     (unsigned long long)longest_overlap);
}

/*
 * Churn: pairs of uthreads on two VPs ping-pong through raw read(2) and
 * write(2), so that carriers block and come back all the time, often at
 * once on both VPs and with no spare ready, at the same instruction of the
 * C library, and a uthread that came back goes through libsa (a yield)
 * between two blocks.  A VP given two carriers, a uthread resumed twice
 * or never, or a block handled twice crashes or hangs it.
 */
enum { CHURN_PAIRS = 4, CHURN_ROUNDS = 300 };
static int churn_fd[CHURN_PAIRS][2][2]; /* [pair][0: ping, 1: pong][ends] */

static void churn_side(int i, int side)
{
	int in = churn_fd[i][!side][0], out = churn_fd[i][side][1];
	char c = (char)('a' + i);

	for (int r = 0; r < CHURN_ROUNDS; r++) {
		if (side == 0)
			UT_CHECK_EQ(syscall(SYS_write, out, &c, 1), 1);
		UT_CHECK_EQ(syscall(SYS_read, in, &c, 1), 1);
		UT_CHECK_EQ(c, (char)('a' + i));
		if (side == 1)
			UT_CHECK_EQ(syscall(SYS_write, out, &c, 1), 1);
		if (r % 4 == side)
			UT_CHECK_EQ(sa_yield(), 0);
	}
}

static void *churn_ping(void *arg)
{
	churn_side((int)(uintptr_t)arg, 0);
	return NULL;
}

static void *churn_pong(void *arg)
{
	churn_side((int)(uintptr_t)arg, 1);
	return NULL;
}

Test(blocked, hidden_ping_pong_churn_on_two_vps, .timeout = 120)
{
	sa_uthread_t t[CHURN_PAIRS][2];

	start_blocked_vps("2", NULL, false);
	for (int i = 0; i < CHURN_PAIRS; i++) {
		cr_assert_eq(pipe(churn_fd[i][0]), 0);
		cr_assert_eq(pipe(churn_fd[i][1]), 0);
		t[i][1] = h_spawn(churn_pong, (void *)(uintptr_t)i);
		t[i][0] = h_spawn(churn_ping, (void *)(uintptr_t)i);
	}
	for (int i = 0; i < CHURN_PAIRS; i++) {
		h_join(t[i][0]);
		h_join(t[i][1]);
		for (int j = 0; j < 2; j++) {
			close(churn_fd[i][j][0]);
			close(churn_fd[i][j][1]);
		}
	}
	assert_no_ut_failures();
	cr_assert_geq(h_stats().blocked_handoffs, 1u);
}

static void *late_writer(void *arg)
{
	(void)arg;
	h_os_sleep_ns(300 * NSEC_PER_MSEC);
	UT_CHECK_EQ(write(pipefd[1], "z", 1), 1);
	return NULL;
}

Test(blocked, zero_bound_turns_the_handoff_off, .timeout = 30)
{
	pthread_t w;
	sa_uthread_t r;
	uint64_t t0;

	start_blocked_on("0", true);
	w = h_pthread(late_writer, NULL);
	r = h_spawn(hidden_reader, NULL);
	t0 = h_mono();
	/* The reader takes the VP and sticks in the kernel: our 20 ms sleep
	 * ends only when the pthread's write sets it free. */
	SA_OK(sa_sleep_ns(20 * NSEC_PER_MSEC));
	cr_assert_gt(h_mono() - t0, 200 * NSEC_PER_MSEC, "the VP was handed over");
	h_join(r);
	h_pthread_join(w);
	assert_no_ut_failures();
	cr_assert_eq(h_stats().blocked_handoffs, 0u);
}

Test(blocked, malformed_bound_is_rejected, .timeout = 10, .init = cr_redirect_stderr)
{
	setenv("SA_BLOCKED_US", "soon", 1);
	SA_ERR(sa_init(1), -EINVAL);
}

/* ---- Fewer processors than VPs (kernel backend) ---- */

/*
 * The kernel divides the CPUs among the processes that use activations.
 * A rival process whose group asks for every CPU takes half of them from
 * us; while it holds its group our VPs outnumber our processors, and the
 * VPs without one must lose nothing: their uthreads run elsewhere.
 */
struct rival {
	_Atomic uint32_t cycles;  /* groups made and freed */
	_Atomic uint32_t stop;
	_Atomic uint32_t holding; /* a group exists now */
};

static struct rival *rival;

static void skip_unless_kernel_backend(void)
{
	const char *b = getenv("SA_BACKEND");

	if (!b || strcmp(b, "kernel") != 0)
		cr_skip_test("needs the kernel backend (the QEMU guest of tests/kernel)");
}

/* rival_start - fork the rival: it holds a group asking for every CPU for
 * @hold_ms, frees it for @gap_ms, and so on (@gap_ms 0: holds it until
 * told to stop). */
static pid_t rival_start(unsigned hold_ms, unsigned gap_ms)
{
	pid_t pid;

	rival = mmap(NULL, sizeof(*rival), PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(rival, MAP_FAILED);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct sa_params p = { .max_acts = 4, .processors = 0 };

		while (!atomic_load(&rival->stop) && getppid() != 1) {
			long fd = syscall(SA_NR_CREATE, &p, sizeof(p));

			if (fd < 0)
				_exit(2);
			atomic_store(&rival->holding, 1);
			h_os_sleep_ns(hold_ms * NSEC_PER_MSEC);
			while (!gap_ms && !atomic_load(&rival->stop) && getppid() != 1)
				h_os_sleep_ns(NSEC_PER_MSEC);
			close((int)fd);
			atomic_store(&rival->holding, 0);
			atomic_fetch_add(&rival->cycles, 1);
			h_os_sleep_ns(gap_ms * NSEC_PER_MSEC);
		}
		_exit(0);
	}
	return pid;
}

static void rival_end(pid_t pid)
{
	int st;

	atomic_store(&rival->stop, 1);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the rival failed: %#x", st);
}

/* wait_stats - poll until @ok(stats) or 5 s; the last stats. */
static struct sa_stats wait_stats(bool (*ok)(const struct sa_stats *))
{
	uint64_t until = h_mono() + 5 * NSEC_PER_SEC_;
	struct sa_stats st = h_stats();

	while (!ok(&st) && h_mono() < until) {
		SA_OK(sa_sleep_ns(NSEC_PER_MSEC));
		st = h_stats();
	}
	return st;
}

static bool some_dormant(const struct sa_stats *st)
{
	return st->vps_dormant > 0;
}

static bool none_dormant(const struct sa_stats *st)
{
	return st->vps_dormant == 0 && st->procs_added > 0;
}

static sa_mutex_t count_lock = SA_MUTEX_INITIALIZER;
static uint64_t count;
static _Atomic int keep_going;

enum { COUNTERS = 8, COUNTS = 3000 };

/* counter - COUNTS locked increments, yielding between them; then on
 * while keep_going. */
static void *counter(void *arg)
{
	uint64_t *mine = arg;

	for (int i = 0; i < COUNTS || atomic_load(&keep_going); i++) {
		UT_CHECK_EQ(sa_mutex_lock(&count_lock), 0);
		count++;
		UT_CHECK_EQ(sa_mutex_unlock(&count_lock), 0);
		(*mine)++;
		if (i % 4 == 0)
			UT_CHECK_EQ(sa_yield(), 0);
	}
	return NULL;
}

static uint64_t mine[COUNTERS];

static uint64_t mine_total(void)
{
	uint64_t t = 0;

	for (int i = 0; i < COUNTERS; i++)
		t += mine[i];
	return t;
}

Test(blocked, vps_outnumber_processors_from_the_start, .timeout = 120)
{
	unsigned n = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	sa_uthread_t c[COUNTERS], r;
	struct sa_stats st;
	char nv[16];
	pid_t pid;

	skip_unless_kernel_backend();
	if (n < 2)
		cr_skip_test("needs two CPUs to divide");
	pid = rival_start(0, 0);
	while (!atomic_load(&rival->holding))
		h_os_sleep_ns(NSEC_PER_MSEC);
	snprintf(nv, sizeof(nv), "%u", n);
	start_blocked_vps(nv, NULL, false);
	st = wait_stats(some_dormant);
	cr_assert_gt(st.vps_dormant, 0u, "every VP has a processor with the rival there");
	/* Everything runs: counters on every VP, and a raw read. */
	for (int i = 0; i < COUNTERS; i++)
		c[i] = h_spawn(counter, &mine[i]);
	r = h_spawn(hidden_reader, NULL);
	SA_OK(sa_sleep_ns(20 * NSEC_PER_MSEC));
	cr_assert_eq(write(pipefd[1], "x", 1), 1);
	h_join(r);
	for (int i = 0; i < COUNTERS; i++)
		h_join(c[i]);
	assert_no_ut_failures();
	cr_assert_eq(count, (uint64_t)COUNTERS * COUNTS);
	cr_assert_eq(got, 'x');
	/* The rival leaves: the kernel adds its processors to ours. */
	rival_end(pid);
	st = wait_stats(none_dormant);
	cr_assert_eq(st.vps_dormant, 0u, "VPs still without a processor");
	cr_assert_gt(st.procs_added, 0u);
}

Test(blocked, processors_taken_and_given_back_while_busy, .timeout = 180)
{
	unsigned n = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	sa_uthread_t c[COUNTERS];
	struct sa_stats st;
	uint64_t until;
	char nv[16];
	pid_t pid;

	skip_unless_kernel_backend();
	if (n < 2)
		cr_skip_test("needs two CPUs to divide");
	snprintf(nv, sizeof(nv), "%u", n);
	start_blocked_vps(nv, NULL, false);
	atomic_store(&keep_going, 1);
	for (int i = 0; i < COUNTERS; i++)
		c[i] = h_spawn(counter, &mine[i]);
	/* The rival comes and goes: processors are taken from busy VPs,
	 * wherever they are (in libsa's locks too), and given back. */
	pid = rival_start(20, 20);
	until = h_mono() + 60 * NSEC_PER_SEC_;
	while (atomic_load(&rival->cycles) < 8 && h_mono() < until)
		SA_OK(sa_sleep_ns(5 * NSEC_PER_MSEC));
	rival_end(pid);
	atomic_store(&keep_going, 0);
	for (int i = 0; i < COUNTERS; i++)
		h_join(c[i]);
	assert_no_ut_failures();
	cr_assert_geq(atomic_load(&rival->cycles), 8u);
	cr_assert_eq(count, mine_total(), "lost increments: %lu of %lu",
		     (unsigned long)count, (unsigned long)mine_total());
	st = wait_stats(none_dormant);
	cr_assert_gt(st.procs_taken, 0u, "the kernel never took a processor (added %lu, "
		     "dormant %lu, rival cycles %u)", (unsigned long)st.procs_added,
		     (unsigned long)st.vps_dormant, atomic_load(&rival->cycles));
	cr_assert_eq(st.vps_dormant, 0u, "VPs still without a processor");
}

/* ---- Many blocks at once (kernel backend) ---- */

static void *raw_nap(void *arg)
{
	struct timespec ts = { 0, 50 * 1000 * 1000 };

	UT_CHECK_EQ(syscall(SYS_nanosleep, &ts, NULL), 0);
	atomic_fetch_add((_Atomic int *)arg, 1);
	return NULL;
}

/*
 * Every activation blocked in the kernel holds a kernel thread: 300
 * uthreads in a raw sleep at once must not make 300 of them (a storm of
 * such blocks ran a 1 GiB guest out of memory).  Beyond libsa's bound a
 * block finds no spare and its VP waits for it, as with the emulated
 * backend; every sleep still ends.
 */
Test(blocked, block_storm_keeps_activations_bounded, .timeout = 120)
{
	enum { N = 300 };
	sa_uthread_t t[N];
	_Atomic int done = 0;
	struct sa_stats st;

	skip_unless_kernel_backend();
	start_blocked_on(NULL, false);
	for (int i = 0; i < N; i++)
		t[i] = h_spawn(raw_nap, &done);
	for (int i = 0; i < N; i++)
		h_join(t[i]);
	assert_no_ut_failures();
	cr_assert_eq(atomic_load(&done), N);
	st = h_stats();
	cr_assert_gt(st.blocked_handoffs, 0u, "no block was handed over");
	/* 64 + 4 per VP, plus the main thread and one the maker may have
	 * started as the bound was reached. */
	cr_assert_leq(st.activations, 64u + 4u + 2u, "%lu activations",
		      (unsigned long)st.activations);
}

/* ---- The demand: processors given back while idle (kernel backend) ---- */

static _Atomic int spin_stop;

static void *spin_until_stopped(void *arg)
{
	(void)arg;
	while (!atomic_load(&spin_stop))
		;
	return NULL;
}

/*
 * With SA_DEMAND=adaptive a process tells the kernel how many processors
 * it can use: idle, it asks for one and the others go back (to other processes); with work
 * for every VP again it asks for them all and gets them.
 */
Test(blocked, idle_process_gives_processors_back, .timeout = 120)
{
	unsigned n = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	sa_uthread_t t[2];
	struct sa_stats st;

	skip_unless_kernel_backend();
	if (n < 2)
		cr_skip_test("needs two CPUs");
	setenv("SA_DEMAND", "adaptive", 1);
	start_blocked_vps("2", NULL, false);
	SA_OK(sa_sleep_ns(1500 * NSEC_PER_MSEC)); /* every VP idle */
	st = wait_stats(some_dormant);
	cr_assert_gt(st.vps_dormant, 0u, "an idle process kept every processor");
	cr_assert_gt(st.procs_taken, 0u);
	for (int i = 0; i < 2; i++)
		t[i] = h_spawn(spin_until_stopped, NULL);
	st = wait_stats(none_dormant);
	atomic_store(&spin_stop, 1);
	for (int i = 0; i < 2; i++)
		h_join(t[i]);
	cr_assert_eq(st.vps_dormant, 0u, "busy VPs did not get their processors back "
		     "(taken %lu, added %lu)", (unsigned long)st.procs_taken,
		     (unsigned long)st.procs_added);
	cr_assert_gt(st.procs_added, 0u);
}
