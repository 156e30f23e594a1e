/* runtime.c - runtime start-up and shutdown, VP threads, environment, statistics */

/*
 * The runtime starts on the first call that needs it (sa_spawn, sa_nvps,
 * ...) or on sa_init().  If the starting thread is the process's main
 * thread, it becomes VP 0's carrier and keeps running as a uthread (the
 * "main" uthread) on its own kernel stack; VP 0's idle context gets a small
 * stack of its own.  Any other thread stays an ordinary thread: it may
 * return from its start routine at any time, and the VP it carried would go
 * with it.  Then VP 0 too gets a kernel thread of its own.  Those threads
 * start in their idle loop and wait for work.
 *
 * At exit() the runtime stops: parked VPs are woken and their threads end;
 * a VP that is running a uthread is left alone (exit_group() ends it, as it
 * ends any thread).  With SA_STATS=1 the counters go to stderr first.
 */

#include <asm/prctl.h>
#include <sched.h>
#include <stdarg.h>

#include "defs.h"
#include "upcall/upcall.h"
#include "io/io.h"

#define IDLE_STACK (64 * 1024)
#define IDLE_GUARD (16 * 1024)

struct runtime rt;
__thread struct vp *sa_tls_vp __attribute__((tls_model("initial-exec")));
__thread bool sa_tls_internal __attribute__((tls_model("initial-exec")));

void sa_panic(const char *fmt, ...)
{
	va_list ap;

	fputs("libsa: fatal: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

#define SPIN_HELP_MASK ((1u << 14) - 1)

void __spin_lock_slow(spinlock_t *l)
{
	for (;;) {
		unsigned n = 0;

		while (atomic_load_explicit(l, memory_order_relaxed)) {
			cpu_relax();
			/* The holder may have lost its processor (kernel.c). */
			if (unlikely(upcall_kernel_on) && !(++n & SPIN_HELP_MASK))
				kernel_spin_help();
		}
		if (spin_trylock(l))
			return;
	}
}

/*
 * env_vps - $SA_VPS as a VP count.  Returns 1 if it is not set, 0 with the
 * count in *out, -EINVAL if it is not a number in 1..SA_VPS_MAX.
 */
static int env_vps(unsigned *out)
{
	const char *s = getenv("SA_VPS");
	char *end;
	unsigned long v;

	if (!s)
		return 1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v == 0 || v > SA_VPS_MAX)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

static unsigned affinity_cpus(void)
{
	cpu_set_t *set = CPU_ALLOC(4096);
	size_t sz = CPU_ALLOC_SIZE(4096);
	long n = 0;

	if (set && sched_getaffinity(0, sz, set) == 0)
		n = CPU_COUNT_S(sz, set);
	CPU_FREE(set);
	if (n <= 0)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n <= 0)
		n = 1;
	return n > SA_VPS_MAX ? SA_VPS_MAX : (unsigned)n;
}

static void stack_bounds_of_self(struct uthread *ut)
{
	pthread_attr_t a;
	void *addr;
	size_t sz;

	if (pthread_getattr_np(pthread_self(), &a))
		return;
	if (!pthread_attr_getstack(&a, &addr, &sz)) {
		ut->stack_lo = addr;
		ut->stack_hi = (char *)addr + sz;
	}
	pthread_attr_destroy(&a);
}

static void vp0_idle_entry(void)
{
	san_switch_end(vp_self()->idle);
	sched_finish_switch();
	struct vp *vp = vp_self();

	sched_upcall_add_processor(vp);
	/* The kernel backend's VPs may be given up for another. */
	if (upcall_kernel_on && !atomic_load(&rt.stopping))
		act_give_up(act_self(), vp);
	sa_panic("VP 0's idle loop returned");
}


static void rt_shutdown(void)
{
	struct sa_stats st;

	if (atomic_load_explicit(&rt.state, memory_order_acquire) != RT_RUNNING)
		return;
	if (rt.print_stats && sa_stats_get(&st, sizeof(st)) == 0)
		fprintf(stderr,
			"libsa: stats: vps=%llu spawned=%llu exited=%llu live=%llu "
			"switches=%llu next_handoffs=%llu steals=%llu stolen=%llu "
			"parks=%llu wakes=%llu timers_fired=%llu stacks_mapped=%llu "
			"stacks_cached=%llu stacks_released=%llu guard_regions=%llu "
			"backend=%s quantum_ns=%llu ticks=%llu preemptions=%llu "
			"preempt_skipped=%llu cs_recoveries=%llu activations=%llu "
			"blocked_handoffs=%llu unblocks=%llu unblock_max_ns=%llu "
			"io_backend=%s io_ops=%llu io_completions=%llu io_submits=%llu "
			"io_fallback_ops=%llu procs_taken=%llu procs_added=%llu\n",
			(unsigned long long)st.nvps, (unsigned long long)st.spawned,
			(unsigned long long)st.exited, (unsigned long long)st.live,
			(unsigned long long)st.switches, (unsigned long long)st.next_handoffs,
			(unsigned long long)st.steals, (unsigned long long)st.stolen,
			(unsigned long long)st.parks, (unsigned long long)st.wakes,
			(unsigned long long)st.timers_fired, (unsigned long long)st.stacks_mapped,
			(unsigned long long)st.stacks_cached, (unsigned long long)st.stacks_released,
			(unsigned long long)st.guard_regions, upcall_backend->name,
			(unsigned long long)st.quantum_ns, (unsigned long long)st.ticks,
			(unsigned long long)st.preemptions, (unsigned long long)st.preempt_skipped,
			(unsigned long long)st.cs_recoveries, (unsigned long long)st.activations,
			(unsigned long long)st.blocked_handoffs, (unsigned long long)st.unblocks,
			(unsigned long long)st.unblock_max_ns,
			st.io_backend == SA_IO_BACKEND_URING ? "uring" : "threads",
			(unsigned long long)st.io_ops, (unsigned long long)st.io_completions,
			(unsigned long long)st.io_submits, (unsigned long long)st.io_fallback_ops,
			(unsigned long long)st.procs_taken, (unsigned long long)st.procs_added);
	atomic_store(&rt.stopping, 1);
	/* The kernel backend dissolves its group: with the VPs stopping,
	 * nobody would resume a thread the kernel parked, and the exiting
	 * thread may need what such a thread holds (a lock in libc). */
	if (upcall_backend->exiting)
		upcall_backend->exiting();
	sched_wake_all_idle();
	act_wake_spares();
}

/**
 * rt_fork_child - in a child of fork() (an atfork child handler, the first
 * one of the LD_PRELOAD shim): the child has one kernel thread, the caller, and
 * none of the VPs, activations or pool workers.  Forget them all; the
 * next start (pthread_create(), sa_init()) makes a fresh runtime.  A
 * uthread that forked goes on as the calling thread's record, so the
 * runtime adopts it as its main uthread then.  libsa's internal locks
 * that another kernel thread held at the fork are released, and the
 * parent's uthreads still queued on sync objects are passed over by the
 * child's wakers (sa_fork_epoch).
 */
uint32_t sa_fork_epoch;

void rt_fork_child(void)
{
	struct vp *vp = vp_self_nodivert();
	bool tls_mode = rt.tls_mode;

	if (atomic_load(&rt.state) == RT_OFF)
		return;
	sa_fork_epoch++; /* every queued waiter is the parent's */
	if (vp && !(vp->cur->flags & UTF_IDLE))
		ut_fork_child(vp->cur);
	sa_tls_vp = NULL;
	sa_syscall6(SYS_arch_prctl, ARCH_SET_GS, 0, 0, 0, 0, 0);
	memset(sa_gs_slots, 0, sizeof(sa_gs_slots));
	memset(&rt, 0, sizeof(rt));
	rt.tls_mode = tls_mode;
	keys_fork_child();
	stack_fork_child();
	io_fork_child();
	upcall_fork_child();
}

/* rt_run - the VPs run: start the backend's helpers.  Failing here leaves
 * a runtime that schedules but cannot hand off blocked VPs: say so. */
static int rt_run(void)
{
	int r = upcall_run();

	if (r)
		fprintf(stderr, "libsa: %s backend: cannot start its watchdog: %s\n",
			upcall_backend->name, strerror(-r));
	return 0;
}

static int rt_init(unsigned n)
{
	static bool atexit_done;
	struct uthread *me, *idle0;
	bool adopt = getpid() == (pid_t)syscall(SYS_gettid);
	unsigned i, first = adopt ? 1 : 0;
	struct vp *vps;
	int r;

	if (!n) {
		r = env_vps(&n);
		if (r < 0)
			return r;
		if (r > 0)
			n = affinity_cpus();
	}
	if (n == 0 || n > SA_VPS_MAX)
		return -EINVAL;
	r = upcall_init(n);
	if (r)
		return r;
	r = io_init(); /* I/O: the backend, from $SA_IO and a probe */
	if (r < 0)
		return r;

	vps = aligned_alloc(CACHE_LINE, n * sizeof(*vps));
	if (!vps)
		return -ENOMEM;
	memset(vps, 0, n * sizeof(*vps));
	stack_init();
	for (i = 0; i < n; i++) {
		struct act *a;

		sched_vp_init(&vps[i], i);
		vps[i].watch = calloc(n, sizeof(*vps[i].watch));
		/* The records stay in the tables if this fails: harmless. */
		a = vps[i].watch ? act_new() : NULL;
		if (!a)
			goto fail_free;
		vps[i].act = a;
		WRITE_ONCE(vps[i].idle, a->idle);
		WRITE_ONCE(a->idle->vp, &vps[i]);
	}
	idle0 = vps[0].idle;
	if (adopt) {
		if (stack_alloc(idle0, IDLE_STACK, IDLE_GUARD))
			goto fail_free;
		sa_ctx_init(&idle0->ctx, idle0->stack_hi, vp0_idle_entry);
		san_fiber_create(idle0);
		/* The main uthread keeps the main thread's TLS block and may
		 * move away: VP 0's idle context needs a block of its own. */
		if (rt.tls_mode && tls_alloc(idle0)) {
			stack_free(idle0);
			goto fail_free;
		}
	}

	rt.vps = vps;
	rt.nvps = n;
	atomic_store(&rt.stopping, 0);
	for (i = first; i < n; i++) {
		if (act_start_thread(vps[i].act, &vps[i])) {
			/* Those started are detached and idle: let them end. */
			atomic_store(&rt.stopping, 1);
			sched_wake_all_idle();
			return -EAGAIN;
		}
	}

	stack_signal_init();
	rt.print_stats = getenv("SA_STATS") && strcmp(getenv("SA_STATS"), "0") != 0;
	if (!atexit_done) {
		atexit(rt_shutdown);
		/* The LD_PRELOAD shim registers its own, first of all. */
		if (!rt.tls_mode)
			pthread_atfork(NULL, NULL, rt_fork_child);
		atexit_done = true;
	}
	/* Nobody joins activations: at exit they end or exit_group() ends them. */
	if (!adopt)
		return rt_run();

	/* The main thread becomes the main uthread on VP 0. */
	me = ut_ext_adopt();
	if (!me)
		me = ut_alloc();
	if (!me)
		sa_panic("no memory for the main uthread after the VPs started");
	me->flags = UTF_MAIN;
	WRITE_ONCE(me->state, UT_RUNNING);
	me->prio = SA_PRIO_NORMAL;
	WRITE_ONCE(me->vp, &vps[0]);
	strcpy(me->name, "main");
	atomic_store_explicit(&me->on_cpu, 1, memory_order_relaxed);
	stack_bounds_of_self(me);
	san_thread_adopt(me);
	rt.main_ut = me;
	/* The main thread is VP 0's activation; its own context (VP 0's idle
	 * context) lives on the small stack made above. */
	act_thread_setup(vps[0].act);
	vps[0].act->thread = pthread_self();
	vps[0].act->base_sp = idle0->stack_hi;
	act_carry(vps[0].act, &vps[0]);
	atomic_store_explicit(&idle0->on_cpu, 0, memory_order_relaxed);
	WRITE_ONCE(vps[0].cur, me);
	if (rt.tls_mode)
		tls_adopt(me);
	return rt_run();

fail_free:
	for (i = 0; i < n; i++)
		free(vps[i].watch);
	free(vps);
	return -ENOMEM;
}

/* rt_start_n - start with @want VPs (0: the default), or check a running
 * runtime against @want. */
static int rt_start_n(unsigned want)
{
	for (;;) {
		uint32_t s = atomic_load_explicit(&rt.state, memory_order_acquire);

		if (s == RT_RUNNING)
			return (want && want != rt.nvps) ? -EBUSY : 0;
		if (s == RT_OFF) {
			int r;

			if (!atomic_compare_exchange_strong(&rt.state, &s, RT_STARTING))
				continue;
			r = rt_init(want);
			atomic_store_explicit(&rt.state, r ? RT_OFF : RT_RUNNING,
					      memory_order_release);
			return r;
		}
		sched_yield(); /* another thread is starting it */
	}
}

int rt_ensure(void)
{
	return rt_start_n(0);
}

SA_EXPORT int sa_init(unsigned nvps)
{
	if (nvps > SA_VPS_MAX)
		return -EINVAL;
	return rt_start_n(nvps);
}

SA_EXPORT unsigned sa_nvps(void)
{
	return rt_start() ? 0 : rt.nvps;
}

SA_EXPORT int sa_vp_self(void)
{
	struct vp *vp = vp_self();

	return vp ? (int)vp->index : -EPERM;
}

SA_EXPORT int sa_stats_get(struct sa_stats *out, size_t size)
{
	struct sa_stats st;

	if (!out)
		return -EINVAL;
	if (atomic_load_explicit(&rt.state, memory_order_acquire) != RT_RUNNING)
		return -ENOSYS;
	memset(&st, 0, sizeof(st));
	st.nvps = rt.nvps;
	st.spawned = atomic_load(&rt.ext_spawned);
	st.exited = atomic_load(&rt.ext_exited);
	st.wakes = atomic_load(&rt.ext_wakes);
	for (uint32_t i = 0; i < rt.nvps; i++) {
		struct vp_stats *s = &rt.vps[i].stats;

		st.spawned += atomic_load_explicit(&s->spawned, memory_order_relaxed);
		st.exited += atomic_load_explicit(&s->exited, memory_order_relaxed);
		st.switches += atomic_load_explicit(&s->switches, memory_order_relaxed);
		st.next_handoffs += atomic_load_explicit(&s->next_handoffs, memory_order_relaxed);
		st.steals += atomic_load_explicit(&s->steals, memory_order_relaxed);
		st.stolen += atomic_load_explicit(&s->stolen, memory_order_relaxed);
		st.parks += atomic_load_explicit(&s->parks, memory_order_relaxed);
		st.wakes += atomic_load_explicit(&s->wakes, memory_order_relaxed);
		st.timers_fired += atomic_load_explicit(&s->timers_fired, memory_order_relaxed);
	}
	st.live = st.spawned - st.exited;
	st.stacks_mapped = atomic_load(&rt.stacks_mapped);
	st.stacks_released = atomic_load(&rt.stacks_released);
	st.stacks_cached = stack_cached_count();
	st.guard_regions = stack_guard_supported();
	upcall_stats(&st);
	io_stats_add(&st);
	memcpy(out, &st, size < sizeof(st) ? size : sizeof(st));
	return 0;
}
