/* test_preempt.c - the "preempted" upcall: time slices, state kept, backends */
#include <fenv.h>

#include "helpers.h"

#include <criterion/redirect.h>

/*
 * h_start_quantum - start the runtime with @vps VPs and a @us microsecond
 * quantum ("0" turns preemption off).  Skips the test where the backend
 * cannot preempt (no XSAVE).
 */
static void h_start_quantum(const char *vps, const char *us)
{
	struct sa_stats st;

	setenv("SA_QUANTUM_US", us, 1);
	h_start_env(vps);
	st = h_stats();
	if (strcmp(us, "0") != 0 && st.quantum_ns == 0)
		cr_skip_test("this machine cannot preempt (no XSAVE)");
}

/*
 * wait_preemptions - sleep until @n more preemptions happened (or 20 s).
 * Quanta are CPU time: on a busy host a fixed wall-clock window may hold
 * only a few of them.
 */
static void wait_preemptions(uint64_t n)
{
	uint64_t base = h_stats().preemptions, until = h_mono() + 20 * NSEC_PER_SEC_;

	while (h_stats().preemptions - base < n && h_mono() < until)
		SA_OK(sa_sleep_ns(10 * NSEC_PER_MSEC));
}

/* A CPU hog: spins without any libsa call until *stop or 10 s. */
struct hog {
	_Atomic int *stop;
	_Atomic uint64_t iters;
	_Atomic uint64_t on_vp[2];
};

static void *hog_fn(void *arg)
{
	struct hog *h = arg;
	uint64_t until = h_mono() + 30 * NSEC_PER_SEC_, n = 0;

	/* A tight loop of its own code: a tick that lands in libsa or the C
	 * library is not taken there (see libsa(7)), so call them rarely. */
	while (!atomic_load_explicit(h->stop, memory_order_relaxed)) {
		if ((++n & 0xfff) == 0) {
			int vp = sa_vp_self();

			if (vp >= 0 && vp < 2)
				atomic_fetch_add_explicit(&h->on_vp[vp], 1, memory_order_relaxed);
			if (h_mono() > until)
				break;
		}
	}
	atomic_store(&h->iters, n);
	return NULL;
}

static _Atomic int stop_flag;

static void *set_stop(void *arg)
{
	(void)arg;
	atomic_store(&stop_flag, 1);
	return NULL;
}

Test(preempt, tight_loop_does_not_starve_its_vp, .timeout = 20)
{
	struct hog h = { .stop = &stop_flag };
	sa_uthread_t hog, setter;
	uint64_t t0;

	h_start_quantum("1", "1000");
	hog = h_spawn(hog_fn, &h);
	SA_OK(sa_sleep_ns(5 * NSEC_PER_MSEC)); /* the hog has the VP now */
	t0 = h_mono();
	setter = h_spawn(set_stop, NULL);
	h_join(setter);
	h_join(hog);
	cr_assert_eq(atomic_load(&stop_flag), 1);
	cr_assert_lt(h_mono() - t0, 5 * NSEC_PER_SEC_, "the hog kept the VP");
	cr_assert_gt(h_stats().preemptions, 0u);
}

Test(preempt, hogs_share_one_vp, .timeout = 30)
{
	enum { N = 3 };
	struct hog h[N];
	sa_uthread_t t[N];
	uint64_t total = 0;

	h_start_quantum("1", "1000");
	for (int i = 0; i < N; i++) {
		memset(&h[i], 0, sizeof(h[i]));
		h[i].stop = &stop_flag;
		t[i] = h_spawn(hog_fn, &h[i]);
	}
	/* Every hog has had its turn after a dozen preemptions. */
	wait_preemptions(12);
	atomic_store(&stop_flag, 1);
	for (int i = 0; i < N; i++)
		h_join(t[i]);
	for (int i = 0; i < N; i++)
		total += atomic_load(&h[i].iters);
	for (int i = 0; i < N; i++)
		cr_assert_gt(atomic_load(&h[i].iters) * 10, total,
			     "hog %d got %llu of %llu iterations", i,
			     (unsigned long long)atomic_load(&h[i].iters),
			     (unsigned long long)total);
}

Test(preempt, sleeper_next_to_a_hog_wakes_within_a_few_quanta, .timeout = 30)
{
	struct hog h = { .stop = &stop_flag };
	sa_uthread_t hog;
	uint64_t t0, worst = 0;

	h_start_quantum("1", "2000");
	hog = h_spawn(hog_fn, &h);
	for (int i = 0; i < 20; i++) {
		t0 = h_mono();
		SA_OK(sa_sleep_ns(NSEC_PER_MSEC));
		if (h_mono() - t0 > worst)
			worst = h_mono() - t0;
	}
	atomic_store(&stop_flag, 1);
	h_join(hog);
	/* A tick every 2 ms of the hog's CPU time; allow for a busy host. */
	cr_assert_lt(worst, 500 * NSEC_PER_MSEC, "a 1 ms sleep took %llu ns",
		     (unsigned long long)worst);
}

Test(preempt, preempted_hog_is_stolen_by_an_idle_vp, .timeout = 30)
{
	struct hog h[3];
	sa_uthread_t t[3];
	uint64_t on1 = 0;

	h_start_quantum("2", "1000");
	cr_assert_eq(sa_vp_self(), 0);
	for (int i = 0; i < 3; i++) {
		memset(&h[i], 0, sizeof(h[i]));
		h[i].stop = &stop_flag;
		t[i] = h_spawn(hog_fn, &h[i]);
	}
	wait_preemptions(12);
	atomic_store(&stop_flag, 1);
	for (int i = 0; i < 3; i++)
		h_join(t[i]);
	for (int i = 0; i < 3; i++)
		on1 += atomic_load(&h[i].on_vp[1]);
	cr_assert_gt(on1, 0u, "no hog ever ran on VP 1");
}

/*
 * A ping-pong pair hands the VP back and forth through the next slot many
 * times a quantum; the handoff passes the time slice on, so a hog queued
 * behind the pair still gets its share of the VP's CPU time.
 */
static sa_sem_t ping, pong;

static uint64_t cpu_ns(clockid_t clk)
{
	return h_now(clk);
}

static void *pinger(void *arg)
{
	for (int i = 0; !atomic_load(&stop_flag); i++) {
		UT_CHECK_EQ(sa_sem_post(&ping), 0);
		UT_CHECK_EQ(sa_sem_wait(&pong), 0);
	}
	UT_CHECK_EQ(sa_sem_post(&ping), 0); /* let the ponger see the flag */
	(void)arg;
	return NULL;
}

static void *ponger(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_flag)) {
		UT_CHECK_EQ(sa_sem_wait(&ping), 0);
		UT_CHECK_EQ(sa_sem_post(&pong), 0);
	}
	return NULL;
}

/* Counts the CPU time of its carrier that passed while it ran. */
static void *cpu_hog(void *arg)
{
	_Atomic uint64_t *ran = arg;
	uint64_t last = cpu_ns(CLOCK_THREAD_CPUTIME_ID), total = 0;

	while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
		uint64_t now = cpu_ns(CLOCK_THREAD_CPUTIME_ID);

		/* A jump means we were off the VP (or it ran others). */
		if (now - last < 50 * NSEC_PER_USEC)
			total += now - last;
		last = now;
	}
	atomic_store(ran, total);
	return NULL;
}

Test(preempt, hog_gets_its_share_beside_a_ping_pong, .timeout = 30)
{
	_Atomic uint64_t hog_ran = 0;
	sa_uthread_t a, b, h;
	uint64_t cpu0, cpu;

	h_skip_in_qemu_guest("the hog's share of the CPU time");
	h_start_quantum("1", "2000");
	SA_OK(sa_sem_init(&ping, 0));
	SA_OK(sa_sem_init(&pong, 0));
	cpu0 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
	a = h_spawn(pinger, NULL);
	b = h_spawn(ponger, NULL);
	h = h_spawn(cpu_hog, (void *)&hog_ran);
	SA_OK(sa_sleep_ns(400 * NSEC_PER_MSEC));
	atomic_store(&stop_flag, 1);
	h_join(h);
	h_join(a);
	h_join(b);
	cpu = cpu_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
	assert_no_ut_failures();
	/* Three uthreads, two of them in one slice: about half for the hog. */
	cr_assert_gt(atomic_load(&hog_ran) * 4, cpu,
		     "the hog ran %llu ns of %llu ns of CPU time",
		     (unsigned long long)atomic_load(&hog_ran), (unsigned long long)cpu);
}

/* A system-class hog is not preempted for normal-class work. */
static _Atomic int normal_ran;

static void *mark_normal(void *arg)
{
	(void)arg;
	atomic_store(&normal_ran, 1);
	return NULL;
}

static void *system_hog(void *arg)
{
	uint64_t until = h_mono() + 100 * NSEC_PER_MSEC;
	sa_uthread_t n;

	(void)arg;
	UT_CHECK_EQ(sa_spawn(&n, NULL, mark_normal, NULL), 0);
	while (h_mono() < until)
		UT_CHECK_EQ(atomic_load(&normal_ran), 0);
	UT_CHECK_EQ(sa_join(n, NULL), 0);
	return NULL;
}

Test(preempt, lower_class_work_does_not_preempt_higher, .timeout = 20)
{
	sa_uthread_t t;

	h_start_quantum("1", "1000");
	t = h_spawn_prio(system_hog, NULL, SA_PRIO_SYSTEM);
	h_join(t);
	assert_no_ut_failures();
	cr_assert_eq(atomic_load(&normal_ran), 1);
}

/*
 * Registers survive preemption: an assembly loop keeps known values in
 * rbx, r8-r15 and xmm0-xmm15 and checks them on every iteration while
 * other uthreads (which clobber them) are switched in and out.
 */
static uint64_t reg_loop(uint64_t iters)
{
	uint64_t bad = 0;

	asm volatile(
		"movq $0x1111111111111111, %%rbx\n\t"
		"movq $0x8888888888888888, %%r8\n\t"
		"movq $0x9999999999999999, %%r9\n\t"
		"movq $0xaaaaaaaaaaaaaaaa, %%r10\n\t"
		"movq $0xbbbbbbbbbbbbbbbb, %%r11\n\t"
		"movq $0xcccccccccccccccc, %%r12\n\t"
		"movq $0xdddddddddddddddd, %%r13\n\t"
		"movq $0xeeeeeeeeeeeeeeee, %%r14\n\t"
		"movq $0x0f0f0f0f0f0f0f0f, %%r15\n\t"
#define SETX(n) "movq $" #n "+1, %%rax\n\tmovq %%rax, %%xmm" #n "\n\tpunpcklqdq %%xmm" #n ", %%xmm" #n "\n\t"
		SETX(0) SETX(1) SETX(2) SETX(3) SETX(4) SETX(5) SETX(6) SETX(7)
		SETX(8) SETX(9) SETX(10) SETX(11) SETX(12) SETX(13) SETX(14) SETX(15)
#undef SETX
		"1:\n\t"
		"movq $0x1111111111111111, %%rax\n\tcmpq %%rax, %%rbx\n\tjne 3f\n\t"
		"movq $0x8888888888888888, %%rax\n\tcmpq %%rax, %%r8\n\tjne 3f\n\t"
		"movq $0x9999999999999999, %%rax\n\tcmpq %%rax, %%r9\n\tjne 3f\n\t"
		"movq $0xaaaaaaaaaaaaaaaa, %%rax\n\tcmpq %%rax, %%r10\n\tjne 3f\n\t"
		"movq $0xbbbbbbbbbbbbbbbb, %%rax\n\tcmpq %%rax, %%r11\n\tjne 3f\n\t"
		"movq $0xcccccccccccccccc, %%rax\n\tcmpq %%rax, %%r12\n\tjne 3f\n\t"
		"movq $0xdddddddddddddddd, %%rax\n\tcmpq %%rax, %%r13\n\tjne 3f\n\t"
		"movq $0xeeeeeeeeeeeeeeee, %%rax\n\tcmpq %%rax, %%r14\n\tjne 3f\n\t"
		"movq $0x0f0f0f0f0f0f0f0f, %%rax\n\tcmpq %%rax, %%r15\n\tjne 3f\n\t"
#define CHKX(n) "movq %%xmm" #n ", %%rax\n\tcmpq $" #n "+1, %%rax\n\tjne 3f\n\t" \
		"pextrq $1, %%xmm" #n ", %%rax\n\tcmpq $" #n "+1, %%rax\n\tjne 3f\n\t"
		CHKX(0) CHKX(1) CHKX(2) CHKX(3) CHKX(4) CHKX(5) CHKX(6) CHKX(7)
		CHKX(8) CHKX(9) CHKX(10) CHKX(11) CHKX(12) CHKX(13) CHKX(14) CHKX(15)
#undef CHKX
		"jmp 2f\n\t"
		"3:\n\t"
		"incq %[bad]\n\t"
		"2:\n\t"
		"decq %[n]\n\t"
		"jnz 1b\n\t"
		: [bad] "+m"(bad), [n] "+r"(iters)
		:
		: "rax", "rbx", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
		  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
		  "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15",
		  "cc", "memory");
	return bad;
}

/* In the QEMU guest of tests/kernel the CPU is emulated in software,
 * about ten times slower: a tenth of the loop still spans many quanta. */
static void *reg_checker(void *arg)
{
	uint64_t *bad = arg;

	*bad = reg_loop(getenv("SA_HARNESS_SMP") ? 30000000ull : 300000000ull);
	return NULL;
}

/* Clobbers every register the checker uses, between yields. */
static void *clobberer(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_flag)) {
		volatile double d = 3.25;

		asm volatile("movq $-1, %%rbx\n\tmovq $-1, %%r12\n\tpcmpeqd %%xmm7, %%xmm7\n\t"
			     "pcmpeqd %%xmm15, %%xmm15\n\tmovq $-1, %%r11"
			     ::: "rbx", "r11", "r12", "xmm7", "xmm15");
		d = d * d;
		(void)d;
	}
	return NULL;
}

Test(preempt, registers_survive_preemption, .timeout = 60)
{
	uint64_t bad = 12345;
	sa_uthread_t c, k;
	struct sa_stats a;

	h_start_quantum("1", "1000");
	a = h_stats();
	c = h_spawn(reg_checker, &bad);
	k = h_spawn(clobberer, NULL);
	h_join(c);
	atomic_store(&stop_flag, 1);
	h_join(k);
	cr_assert_eq(bad, 0u, "%llu iterations saw a clobbered register",
		     (unsigned long long)bad);
	cr_assert_gt(h_stats().preemptions - a.preemptions, 1u);
}

/*
 * errno read and written through functions the compiler cannot inline:
 * errno is *__errno_location(), a const function, so a loop may keep the
 * address it returned - the carrying kernel thread's errno - across a
 * preemption that moves the uthread to another VP, and then see whatever
 * the uthread now running on the old VP writes there.  Preemption keeps a
 * uthread's errno value (sched_preempt_yield), not that address.
 */
static __attribute__((noinline)) int errno_get(void)
{
	return errno;
}

static __attribute__((noinline)) void errno_set(int e)
{
	errno = e;
}

/* The rounding mode (MXCSR) and errno are the uthread's own. */
static void *rounding_and_errno(void *arg)
{
	uint64_t until = h_mono() + 300 * NSEC_PER_MSEC;
	volatile float one = 1.0f, three = 3.0f;
	float up;

	(void)arg;
	UT_CHECK_EQ(fesetround(FE_UPWARD), 0);
	errno_set(4242);
	up = one / three;
	while (h_mono() < until) {
		float q = one / three;

		if (q != up || errno_get() != 4242) {
			UT_CHECK(q == up);
			UT_CHECK_EQ(errno_get(), 4242);
			break;
		}
	}
	UT_CHECK_EQ(fegetround(), FE_UPWARD);
	return NULL;
}

static void *default_rounding_spinner(void *arg)
{
	uint64_t until = h_mono() + 300 * NSEC_PER_MSEC;

	(void)arg;
	while (h_mono() < until) {
		UT_CHECK_EQ(fegetround(), FE_TONEAREST);
		errno_set(7);
	}
	return NULL;
}

Test(preempt, fp_control_and_errno_survive_preemption, .timeout = 30)
{
	sa_uthread_t a, b, c;

	h_start_quantum("2", "1000");
	a = h_spawn(rounding_and_errno, NULL);
	b = h_spawn(default_rounding_spinner, NULL);
	c = h_spawn(default_rounding_spinner, NULL);
	h_join(a);
	h_join(b);
	h_join(c);
	assert_no_ut_failures();
	cr_assert_gt(h_stats().preemptions, 0u);
}

/* Preemption off: a hog keeps its VP. */
static void *spin_100ms_check_flag(void *arg)
{
	uint64_t until = h_mono() + 100 * NSEC_PER_MSEC;

	(void)arg;
	while (h_mono() < until)
		;
	UT_CHECK_EQ(atomic_load(&stop_flag), 0);
	return NULL;
}

Test(preempt, zero_quantum_turns_preemption_off, .timeout = 20)
{
	sa_uthread_t hog, setter;
	struct sa_stats st;

	h_start_quantum("1", "0");
	st = h_stats();
	cr_assert_eq(st.quantum_ns, 0u);
	hog = h_spawn(spin_100ms_check_flag, NULL);
	setter = h_spawn(set_stop, NULL);
	h_join(hog);
	h_join(setter);
	assert_no_ut_failures();
	st = h_stats();
	cr_assert_eq(st.ticks, 0u);
	cr_assert_eq(st.preemptions, 0u);
}

/* ---- backends and their environment ---- */

Test(backend, default_on_a_stock_kernel_is_emulated, .timeout = 10)
{
	unsetenv("SA_BACKEND");
	h_start_env("1");
	cr_assert_not_null(sa_backend());
	if (strcmp(sa_backend(), "kernel") == 0)
		cr_skip_test("this kernel has the libsa patch series");
	cr_assert_str_eq(sa_backend(), "emulated");
	cr_assert_eq(h_stats().backend, (uint64_t)SA_BACKEND_EMULATED);
}

Test(backend, forced_emulated, .timeout = 10)
{
	setenv("SA_BACKEND", "emulated", 1);
	h_start_env("1");
	cr_assert_str_eq(sa_backend(), "emulated");
	cr_assert_eq(h_stats().quantum_ns, 4000000u, "default quantum is 4 ms");
}

Test(backend, none_before_start, .timeout = 10)
{
	cr_assert_null(sa_backend());
}

static void read_stderr_line(char *buf, size_t n)
{
	FILE *f;

	fflush(stderr);
	f = cr_get_redirected_stderr();
	buf[0] = '\0';
	if (!fgets(buf, (int)n, f))
		buf[0] = '\0';
}

Test(backend, forced_kernel_fails_clearly_on_a_stock_kernel, .timeout = 10,
     .init = cr_redirect_stderr)
{
	char line[256];
	sa_uthread_t t;
	int r;

	setenv("SA_BACKEND", "kernel", 1);
	r = sa_init(1);
	if (r == 0)
		cr_skip_test("this kernel has the libsa patch series");
	cr_assert_lt(r, 0);
	cr_assert_null(sa_backend());
	read_stderr_line(line, sizeof(line));
	cr_assert_not_null(strstr(line, "SA_BACKEND=kernel: not available"),
			   "stderr said: %s", line);
	/* Nothing runs on a backend the user did not ask for. */
	SA_ERR(sa_spawn(&t, NULL, set_stop, NULL), r);
}

Test(backend, unknown_name_is_rejected, .timeout = 10, .init = cr_redirect_stderr)
{
	char line[256];

	setenv("SA_BACKEND", "turbo", 1);
	SA_ERR(sa_init(1), -EINVAL);
	read_stderr_line(line, sizeof(line));
	cr_assert_not_null(strstr(line, "SA_BACKEND=turbo"), "stderr said: %s", line);
}

Test(backend, malformed_quantum_is_rejected, .timeout = 10, .init = cr_redirect_stderr)
{
	static const char *bad[] = { "abc", "-5", "12ms", "99999999999" };
	char line[256];

	/* Each failed start leaves the runtime off, so the next try reads
	 * the variable again. */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("SA_QUANTUM_US", bad[i], 1);
		SA_ERR(sa_init(1), -EINVAL);
		read_stderr_line(line, sizeof(line));
		cr_assert_not_null(strstr(line, "SA_QUANTUM_US="), "stderr said: %s", line);
	}
}
