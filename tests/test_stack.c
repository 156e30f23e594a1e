/* test_stack.c - stack sizes honoured, guard overflow detection, a million stacks */
#include "helpers.h"

#include <sys/resource.h>

/* ---- a uthread can use nearly all of the stack it asked for ---- */

static __attribute__((noinline)) unsigned use_stack(size_t n)
{
	volatile unsigned char buf[n];
	unsigned sum = 0;

	/* touch from the top down, as a growing stack would */
	for (size_t i = n; i-- > 0;)
		buf[i] = (unsigned char)i;
	for (size_t i = 0; i < n; i++)
		sum += buf[i];
	return sum;
}

static unsigned expected_sum(size_t n)
{
	unsigned sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += (unsigned char)i;
	return sum;
}

static void *stack_user(void *arg)
{
	return UP(use_stack(IP(arg)));
}

static void check_usable(size_t stack, size_t use)
{
	sa_attr_t a;
	sa_uthread_t t;

	SA_OK(sa_attr_init(&a));
	if (stack)
		SA_OK(sa_attr_setstacksize(&a, stack));
	SA_OK(sa_spawn(&t, &a, stack_user, UP(use)));
	cr_assert_eq((unsigned)IP(h_join(t)), expected_sum(use));
}

Test(stack, min_stack_mostly_usable, .timeout = 10)
{
	h_start(0);
	check_usable(SA_STACK_MIN, SA_STACK_MIN - 1024);
}

Test(stack, small_stack_nearly_all_usable, .timeout = 10)
{
	h_start(0);
	check_usable(64 * 1024, 64 * 1024 - 2048);
}

Test(stack, unaligned_size_nearly_all_usable, .timeout = 10)
{
	h_start(0);
	check_usable(100000, 100000 - 2048);
}

Test(stack, default_stack_nearly_all_usable, .timeout = 10)
{
	h_start(0);
	check_usable(0, SA_STACK_DEFAULT - 2048);
}

Test(stack, large_stack_nearly_all_usable, .timeout = 10)
{
	h_start(0);
	check_usable(8u << 20, (8u << 20) - 2048);
}

Test(stack, many_sizes_reused_stacks_usable, .timeout = 20)
{
	static const size_t sizes[] = { 4096, 8192, 20000, 65536, 300000, 1 << 20 };

	h_start(0);
	for (int round = 0; round < 3; round++)
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
			check_usable(sizes[i], sizes[i] - 1024);
}

/* ---- overflow into the guard: the process dies and names the uthread ---- */

static volatile int stop_recursion;

static __attribute__((noinline)) int recurse(int n)
{
	volatile char frame[256];

	frame[0] = (char)n;
	frame[255] = (char)n;
	if (stop_recursion)
		return frame[0];
	return recurse(n + 1) + frame[255];
}

static void *overflow_small_frames(void *arg)
{
	if (arg)
		sa_setname(sa_self(), arg);
	return UP(recurse(0));
}

static void *overflow_big_frame(void *arg)
{
	volatile char big[256 * 1024];

	(void)arg;
	big[0] = 1; /* lowest byte first: far below a 64 KiB stack */
	big[sizeof(big) - 1] = 1;
	return UP(big[0] + big[sizeof(big) - 1]);
}

struct overflow_case {
	const char *attr_name;    /* set through the attribute */
	const char *self_name;    /* set by the uthread itself */
	size_t stack, guard;
	void *(*fn)(void *);
};

/*
 * run_overflow - in a child that has not started libsa, spawn @c's uthread
 * and let it overflow.  Returns the child's wait status; its stderr is in
 * @msg.
 */
static int run_overflow(const struct overflow_case *c, char *msg, size_t len)
{
	int fds[2], status = 0;
	size_t got = 0;
	ssize_t n;
	pid_t pid;

	cr_assert_eq(pipe(fds), 0);
	pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		struct rlimit no_core = { 0, 0 };
		sa_attr_t a;
		sa_uthread_t t;

		setrlimit(RLIMIT_CORE, &no_core);
		close(fds[0]);
		dup2(fds[1], STDERR_FILENO);
		unsetenv("SA_VPS");
		if (sa_init(2) != 0 || sa_attr_init(&a) != 0)
			_exit(50);
		if (c->stack && sa_attr_setstacksize(&a, c->stack) != 0)
			_exit(51);
		if (c->guard && sa_attr_setguardsize(&a, c->guard) != 0)
			_exit(52);
		if (c->attr_name && sa_attr_setname(&a, c->attr_name) != 0)
			_exit(53);
		if (sa_spawn(&t, &a, c->fn, (void *)c->self_name) != 0)
			_exit(54);
		sa_join(t, NULL);
		_exit(0); /* survived: wrong */
	}
	close(fds[1]);
	while (got < len - 1 &&
	       (n = read(fds[0], msg + got, len - 1 - got)) > 0)
		got += (size_t)n;
	msg[got] = '\0';
	close(fds[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	return status;
}

static void check_overflow(const struct overflow_case *c, const char *name)
{
	char msg[4096];
	int status;

#ifdef SA_SANITIZE
	cr_skip_test("sanitizers catch stack overflows themselves");
#endif
	status = run_overflow(c, msg, sizeof(msg));
	cr_assert(!WIFEXITED(status),
		  "child exited with %d instead of dying; stderr: %s",
		  WEXITSTATUS(status), msg);
	cr_assert(WIFSIGNALED(status), "child status 0x%x", status);
	cr_assert_not_null(strstr(msg, "stack overflow"),
			   "no \"stack overflow\" message; stderr: %s", msg);
	cr_assert_not_null(strstr(msg, name),
			   "message does not name uthread \"%s\": %s", name, msg);
}

Test(stack, overflow_kills_with_message_naming_uthread, .timeout = 20)
{
	struct overflow_case c = {
		.attr_name = "deep-diver", .stack = 64 * 1024,
		.fn = overflow_small_frames,
	};

	check_overflow(&c, "deep-diver");
}

Test(stack, overflow_message_uses_name_set_by_setname, .timeout = 20)
{
	struct overflow_case c = {
		.self_name = "renamed-diver", .fn = overflow_small_frames,
	};

	check_overflow(&c, "renamed-diver");
}

Test(stack, overflow_of_min_stack_detected, .timeout = 20)
{
	struct overflow_case c = {
		.attr_name = "tiny", .stack = SA_STACK_MIN,
		.fn = overflow_small_frames,
	};

	check_overflow(&c, "tiny");
}

Test(stack, large_guard_catches_large_frame, .timeout = 20)
{
	struct overflow_case c = {
		.attr_name = "big-frame", .stack = 64 * 1024,
		.guard = 1u << 20, .fn = overflow_big_frame,
	};

	check_overflow(&c, "big-frame");
}

/* ---- a million uthreads with 4 KiB stacks, all alive at once ---- */

enum { MILLION = 1000000 };
static sa_barrier_t million_barrier;
static _Atomic int million_arrived;

static void *park_on_barrier(void *arg)
{
	(void)arg;
	atomic_fetch_add_explicit(&million_arrived, 1, memory_order_relaxed);
	sa_barrier_wait(&million_barrier);
	return NULL;
}

Test(stack, million_uthreads_alive_at_once, .timeout = 60)
{
	struct sa_stats st;
	sa_uthread_t *t;
	sa_attr_t a;
	int r;

#ifdef SA_SANITIZE
	cr_skip_test("a million stacks do not fit with sanitizers");
#endif
	h_start(0);
	st = h_stats();
	if (st.guard_regions == 0)
		cr_skip_test("no madvise guard regions: one mapping per stack "
			     "would exceed vm.max_map_count");
	t = calloc(MILLION, sizeof(*t));
	cr_assert_not_null(t);
	SA_OK(sa_barrier_init(&million_barrier, MILLION + 1));
	SA_OK(sa_attr_init(&a));
	SA_OK(sa_attr_setstacksize(&a, 4096));
	for (int i = 0; i < MILLION; i++) {
		r = sa_spawn(&t[i], &a, park_on_barrier, NULL);
		cr_assert_eq(r, 0, "spawn %d failed: %d (%s)", i, r, strerror(-r));
	}
	cr_assert(h_wait_atomic_ge(&million_arrived, MILLION, 40 * NSEC_PER_SEC_),
		  "only %d of %d uthreads reached the barrier",
		  atomic_load(&million_arrived), MILLION);
	st = h_stats();
	cr_assert_geq(st.live, (uint64_t)MILLION);
	/* the barrier opens only when all of them are parked on it at once */
	r = sa_barrier_wait(&million_barrier);
	cr_assert(r == 0 || r == SA_BARRIER_SERIAL, "barrier: %d", r);
	for (int i = 0; i < MILLION; i++) {
		r = sa_join(t[i], NULL);
		cr_assert_eq(r, 0, "join %d: %d", i, r);
	}
	free(t);
}

/* ---- out of address space: -EAGAIN, and the runtime goes on ---- */

static void *ret_seven(void *arg)
{
	(void)arg;
	return UP(7);
}

Test(stack, spawn_without_address_space_eagain, .timeout = 20)
{
	int status = 0;
	pid_t pid;

#ifdef SA_SANITIZE
	cr_skip_test("sanitizers reserve huge address ranges");
#endif
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct rlimit lim;
		long pages = 0, rss;
		sa_attr_t a;
		sa_uthread_t t;
		void *rv = NULL;
		FILE *f;
		int r;

		unsetenv("SA_VPS");
		if (sa_init(2) != 0)
			_exit(60);
		f = fopen("/proc/self/statm", "r");
		if (!f || fscanf(f, "%ld %ld", &pages, &rss) != 2)
			_exit(61);
		fclose(f);
		/* room for small stacks, none for a 1 GiB one */
		lim.rlim_cur = lim.rlim_max =
			(rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (256u << 20);
		if (setrlimit(RLIMIT_AS, &lim) != 0)
			_exit(62);
		if (sa_attr_init(&a) != 0 ||
		    sa_attr_setstacksize(&a, SA_STACK_MAX) != 0)
			_exit(63);
		r = sa_spawn(&t, &a, ret_seven, NULL);
		if (r != -EAGAIN)
			_exit(r == 0 ? 64 : 65);
		if (sa_spawn(&t, NULL, ret_seven, NULL) != 0 ||
		    sa_join(t, &rv) != 0 || rv != UP(7))
			_exit(66);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status), "child died (0x%x)", status);
	cr_assert_neq(WEXITSTATUS(status), 64, "1 GiB stack spawned under the limit");
	cr_assert_neq(WEXITSTATUS(status), 65, "spawn failed, but not with -EAGAIN");
	cr_assert_neq(WEXITSTATUS(status), 66, "runtime unusable after -EAGAIN");
	cr_assert_eq(WEXITSTATUS(status), 0, "child setup failed: %d",
		     WEXITSTATUS(status));
}

/* ---- stacks are never backed by transparent huge pages ---- */

/* stack_no_huge - whether the mapping that holds @addr says "nh" (no
 * huge pages) among its VmFlags in /proc/self/smaps; -1 if not found. */
static int stack_no_huge(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in = false;
	int r = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
			continue;
		}
		if (in && strncmp(line, "VmFlags:", 8) == 0) {
			r = strstr(line, " nh") != NULL;
			break;
		}
	}
	fclose(f);
	return r;
}

static void *report_no_huge(void *arg)
{
	int here = 0;

	(void)arg;
	return UP(stack_no_huge(&here) + 1);
}

static void check_no_huge(size_t guard)
{
	sa_attr_t a;
	sa_uthread_t t;

	if (access("/sys/kernel/mm/transparent_hugepage/enabled", R_OK) != 0)
		cr_skip_test("no transparent huge pages here");
	h_start(1);
	SA_OK(sa_attr_init(&a));
	if (guard)
		SA_OK(sa_attr_setguardsize(&a, guard));
	SA_OK(sa_spawn(&t, &a, report_no_huge, NULL));
	cr_assert_eq(IP(h_join(t)) - 1, 1, "the stack may be backed by huge pages");
}

/* With THP "always" every stack's first touch took 2 MiB.  Linux 6.7 and
 * later keep MAP_STACK mappings off huge pages themselves; 6.1 (the
 * guest of tests/kernel) does not, and there these failed before. */
Test(stack, stacks_are_not_huge_page_backed, .timeout = 10) { check_no_huge(0); }
Test(stack, own_guard_stacks_are_not_huge_page_backed, .timeout = 10) { check_no_huge(3 * 4096); }
