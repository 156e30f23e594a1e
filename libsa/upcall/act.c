/* act.c - activations: the kernel threads that carry VPs, spares, hand-offs */

/*
 * Design
 * ======
 *
 * An activation (struct act) is a kernel thread that can carry a VP.  The
 * runtime starts one per VP (the add-processor upcall: the activation runs
 * the VP's idle loop, which runs uthreads) and keeps a pool of spares,
 * which wait on a futex word of their own.  VP and activation are separate
 * because the kernel thread that carries a VP can get stuck in the kernel
 * for a uthread (a system call libsa cannot see, a page fault): the blocked
 * upcall then gives the VP to a spare, which goes on running the VP's other
 * uthreads, and the stuck activation, when its kernel call returns,
 * delivers the unblocked upcall: its uthread goes back to a run queue and
 * the activation becomes a spare.  The backend decides when an activation
 * is stuck and when it is back (emulated.c: a watchdog); this file does the
 * moving.
 *
 * Who is where.  Every activation owns a slot of sa_gs_slots, found through
 * its gs base, that names the VP it carries and the activation itself; the
 * native per-thread word sa_tls_vp names the VP too (see vp_self() in
 * defs.h).  A carrier's own context (act->idle, on its kernel stack) is the
 * VP's idle context while it carries it: vp->idle and vp->kfs follow the
 * carrier.
 *
 * Taking a VP from a stuck activation A (act_takeover(), called by the
 * backend) is a handshake, because A may come back from the kernel at any
 * moment and must then not touch the VP:
 *   1. A->handshake = 1, and VP_DISPLACED goes where A's vp_self() looks;
 *   2. a process-wide memory barrier (membarrier()), after which A, if it
 *      runs at all, sees the marker;
 *   3. the backend checks that A was in the kernel the whole time (its
 *      context-switch count did not move), so it cannot have read the VP
 *      pointer before step 1 and still be using it;
 *   4. commit - A is ACT_BLOCKED with its uthread recorded, the spare gets
 *      the VP - or undo: the VP pointer goes back.  handshake = 0.
 * A uthread that calls vp_self() while the marker is there waits for the
 * handshake to end (vp_self_slow()); if it was undone it carries on.
 *
 * A stuck activation only ever runs uthread code in the kernel or outside
 * libsa: the backend never takes a VP from an activation whose user PC is
 * in libsa or that is inside a libc call libsa bracketed (vp->np), and
 * every libsa entry reads vp_self() before it takes an internal lock.  So
 * the first vp_self() after the kernel call returns is where the uthread
 * learns it lost its VP, and at that point it holds nothing of libsa's.
 *
 * Coming back (act_unblocked()).  The uthread switches from its own
 * context to a fresh context on the activation's kernel stack (the old
 * idle frames there belong to a VP that is no longer ours and are never
 * resumed).  That context publishes the uthread (on_cpu = 0, then
 * sched_ready() from a thread that is not a VP: the uthread's VP's queue
 * and a kick), and the activation becomes a spare.  When a VP later runs
 * the uthread, it resumes inside vp_self_slow(), which returns that VP.
 * A uthread that comes back and never calls libsa is stopped by the
 * backend instead (emulated.c sends its activation a signal), through the
 * preemption stub, which calls vp_self() and so ends up here too.
 */

#include <asm/prctl.h>
#include <linux/membarrier.h>
#include <signal.h>

#include "upcall/upcall.h"

struct gs_slot sa_gs_slots[SA_ACTS_MAX + 1];

#define SPARES_MAX 16                /* spares kept; more end */
#define ACT_GUARD (16 * 1024)

/* clock_ns - CLOCK_MONOTONIC without now_ns()'s bracket, which would ask
 * vp_self() - the very call that is being answered here. */
static uint64_t clock_ns(void)
{
	struct timespec ts;

	sa_syscall6(SYS_clock_gettime, CLOCK_MONOTONIC, (long)&ts, 0, 0, 0, 0);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* act_self - the activation the caller's kernel thread is, or NULL. */
struct act *act_self(void)
{
	struct act *a;

	asm volatile("movq %%gs:sa_gs_slots+8(%%rip), %0" : "=r"(a) : : "memory");
	return a;
}

/*
 * act_publish_vp - where vp_self() of @a's kernel thread looks.  Its own
 * word sa_tls_vp, unless that word says VP_VIA_GS: in the TLS mode the
 * main thread's block is the main uthread's, which goes through the gs
 * slot wherever it runs, and must keep saying so.
 */
static void act_publish_vp(struct act *a, struct vp *v)
{
	_Atomic(struct vp *) *w = (_Atomic(struct vp *) *)a->tls_vp;

	if (atomic_load_explicit(w, memory_order_relaxed) != VP_VIA_GS)
		atomic_store_explicit(w, v, memory_order_release);
	atomic_store_explicit((_Atomic(struct vp *) *)&sa_gs_slots[a->slot].vp, v,
			      memory_order_release);
}

/**
 * act_new - a new activation record with a slot and an idle uthread
 * record; its kernel thread is made by the caller.  NULL if out of slots
 * or memory.
 */
struct act *act_new(void)
{
	struct act *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->idle = ut_alloc();
	if (!a->idle) {
		free(a);
		return NULL;
	}
	a->idle->flags = UTF_IDLE;
	WRITE_ONCE(a->idle->state, UT_RUNNING);
	a->fd_syscall = a->fd_schedstat = -1;
	a->kid = -1;
	spin_lock(&rt.act_lock);
	if (rt.nacts == SA_ACTS_MAX) {
		spin_unlock(&rt.act_lock);
		spin_lock(&a->idle->lock);
		ut_free(a->idle);
		free(a);
		return NULL;
	}
	a->slot = rt.nacts + 1;
	rt.acts[rt.nacts++] = a;
	spin_unlock(&rt.act_lock);
	sa_gs_slots[a->slot].act = a;
	atomic_fetch_add(&rt.acts_made, 1);
	return a;
}

/**
 * act_thread_setup - first steps of @a's kernel thread (or of the main
 * thread when it becomes VP 0's carrier): gs base, thread pointer, signal
 * stack.
 */
void act_thread_setup(struct act *a)
{
	unsigned long off = a->slot * sizeof(struct gs_slot);

	if (sa_syscall6(SYS_arch_prctl, ARCH_SET_GS, (long)off, 0, 0, 0, 0))
		sa_panic("arch_prctl(ARCH_SET_GS) failed");
	a->tid = (pid_t)sa_syscall6(SYS_gettid, 0, 0, 0, 0, 0, 0);
	a->tls_vp = &sa_tls_vp;
	tls_record_act(a);
	stack_altstack_setup(&a->altstack);
}

/*
 * act_fresh - @ctx, when switched to, starts @entry() on @a's own stack at
 * base_sp.  The frames there belong to a context that is never resumed.
 */
static void act_fresh(struct act *a, struct sa_ctx *ctx, void (*entry)(void))
{
	if (a->idle->stack_lo)
		san_stack_reuse(a->idle->stack_lo, a->base_sp);
	sa_ctx_init(ctx, a->base_sp, entry);
}

/* act_bind - @a is @vp's carrier, with its own context as @vp's idle
 * context; the caller has set @vp->cur. */
static void act_bind(struct act *a, struct vp *vp)
{
	atomic_store_explicit(&vp->dormant, VPD_ACTIVE, memory_order_relaxed);
	atomic_store_explicit(&a->vp, vp, memory_order_relaxed);
	atomic_store_explicit(&a->state, ACT_CARRYING, memory_order_relaxed);
	WRITE_ONCE(a->idle->vp, vp);
	WRITE_ONCE(vp->idle, a->idle);
	vp->kfs = a->kfs;
	atomic_store_explicit(&vp->act, a, memory_order_release);
	act_publish_vp(a, vp);
}

/**
 * act_carry - the calling activation @a carries @vp from now on, with its
 * own context as @vp's idle context, which is what runs now.
 */
void act_carry(struct act *a, struct vp *vp)
{
	if (act_carry_try(a, vp))
		sa_panic("VP %u: the %s backend could not start an activation",
			 vp->index, upcall_backend->name);
}

/* act_drop - @a stops carrying @vp, which is left without a processor. */
static void act_drop(struct act *a, struct vp *vp)
{
	atomic_store_explicit(&a->vp, NULL, memory_order_relaxed);
	atomic_store_explicit(&a->state, ACT_SPARE, memory_order_relaxed);
	act_publish_vp(a, NULL);
	sched_vp_dormant(vp, VPD_FREE);
}

/**
 * act_carry_try - act_carry(), or -EBUSY if the backend has no processor
 * for @a (kernel backend: the group holds fewer than it has VPs); @vp is
 * then dormant and @a carries nothing.
 */
int act_carry_try(struct act *a, struct vp *vp)
{
	int r;

	atomic_store_explicit(&a->idle->on_cpu, 1, memory_order_relaxed);
	WRITE_ONCE(vp->cur, a->idle);
	act_bind(a, vp);
	r = upcall_enter(a);
	if (r == -EBUSY)
		act_drop(a, vp);
	else if (r)
		sa_panic("VP %u: the %s backend could not start an activation: %s",
			 vp->index, upcall_backend->name, strerror(-r));
	return r;
}

/**
 * act_give_up - the calling activation @a, whose idle loop returned while
 * the runtime goes on, leaves @vp without a processor and goes on as a
 * spare that holds one (kernel_give_up()).
 */
void act_give_up(struct act *a, struct vp *vp)
{
	upcall_leave(a);
	act_drop(a, vp);
	act_run_spare(a);
}

/* ------------------------------------------------------------------------
 * The carriers' signal mask.  A carrier applies the newest one itself, at
 * the next switch on its VP (sched_finish_switch()), before its VP parks,
 * and when it starts: act_sigmask_set() costs no system call on any other
 * thread, and a switch pays a load and a compare.  A spare blocks every
 * signal it may (it runs nothing of the program's) and applies the mask
 * again when it is given a VP.
 */

_Atomic uint32_t act_sigmask_gen;         /* 0: never set */
static _Atomic uint64_t act_sigmask_want; /* signal n is bit n - 1 */

#define SIGBIT(s) (1ull << ((s) - 1))
/* What no carrier blocks: what the kernel would not let it (SIGKILL,
 * SIGSTOP), faults (a blocked one kills the process), the C library's
 * own two (cancellation and setxid), and the tick and activation signal. */
#define ACT_SIG_NEVER (SIGBIT(SIGKILL) | SIGBIT(SIGSTOP) | SIGBIT(SIGSEGV) |   \
		       SIGBIT(SIGBUS) | SIGBIT(SIGILL) | SIGBIT(SIGFPE) |      \
		       SIGBIT(SIGTRAP) | SIGBIT(SIGSYS) | SIGBIT(SIGURG) |    \
		       SIGBIT(32) | SIGBIT(33))

static void sigmask_apply(uint64_t m)
{
	m &= ~ACT_SIG_NEVER;
	sa_syscall6(SYS_rt_sigprocmask, SIG_SETMASK, (long)&m, 0, sizeof(m), 0, 0);
}

/** __act_sigmask_sync - slow path of act_sigmask_sync(). */
void __act_sigmask_sync(uint32_t gen)
{
	struct act *a = act_self();

	if (!a || a->sigmask_gen == gen)
		return;
	a->sigmask_gen = gen; /* a later change bumps it again */
	sigmask_apply(atomic_load_explicit(&act_sigmask_want, memory_order_relaxed));
}

/**
 * act_sigmask_set - from now on carriers block @mask (less the signals
 * no carrier blocks).  The caller's carrier applies it at once, the others
 * at their next switch; with @kick, parked VPs wake to apply it now.
 */
void act_sigmask_set(uint64_t mask, bool kick)
{
	uint32_t g;

	atomic_store_explicit(&act_sigmask_want, mask, memory_order_relaxed);
	g = atomic_fetch_add_explicit(&act_sigmask_gen, 1, memory_order_release) + 1;
	if (unlikely(!g))
		atomic_fetch_add_explicit(&act_sigmask_gen, 1, memory_order_release);
	act_sigmask_sync();
	if (kick)
		sched_wake_all_idle();
}

/**
 * act_sigmask_internal - the calling thread blocks every signal but the
 * activation signal, its old mask in @old: a thread of libsa's that it
 * makes now (the watchdog, the kernel backend's spare maker) starts so,
 * and takes no signal sent to the process that the program's threads
 * hold back.  The caller puts @old back.
 */
void act_sigmask_internal(sigset_t *old)
{
	sigset_t all;

	sigfillset(&all);
	sigdelset(&all, SIGURG);
	pthread_sigmask(SIG_SETMASK, &all, old);
}

/* sigmask_spare - @a becomes a spare: it blocks what it may. */
static void sigmask_spare(struct act *a)
{
	if (!atomic_load_explicit(&act_sigmask_gen, memory_order_relaxed))
		return;
	a->sigmask_gen = 0;
	sigmask_apply(~0ull);
}

/* ------------------------------------------------------------------------
 * Spares
 */

/* act_run - carry VPs until the runtime stops: first @a->vp if set, then
 * whatever the pool hands us.  Runs on @a's kernel stack. */
static void act_run(struct act *a) __attribute__((noreturn));

static void *act_thread_main(void *arg)
{
	struct act *a = arg;

	sa_tls_internal = true;
	act_thread_setup(a);
	{
		pthread_attr_t at;
		void *lo;
		size_t sz;

		if (!pthread_getattr_np(pthread_self(), &at)) {
			if (!pthread_attr_getstack(&at, &lo, &sz)) {
				a->idle->stack_lo = lo;
				a->idle->stack_hi = (char *)lo + sz;
			}
			pthread_attr_destroy(&at);
		}
	}
	san_thread_adopt(a->idle);
	/* Fresh contexts after an unblock start here, below this frame. */
	a->base_sp = (char *)__builtin_frame_address(0) - 512;
	atomic_store_explicit(&a->ready, 1, memory_order_release);
	futex_wake(&a->ready, 1);
	act_sigmask_sync();
	act_run(a);
}

/**
 * act_start_thread - give @a a kernel thread of its own that starts
 * carrying @vp (NULL: as a spare).  Returns 0 or -EAGAIN.
 */
int act_start_thread(struct act *a, struct vp *vp)
{
	pthread_attr_t at;
	int r;

	a->own_thread = true;
	atomic_store_explicit(&a->vp, vp, memory_order_relaxed);
	atomic_store_explicit(&a->state, vp ? ACT_CARRYING : ACT_SPARE, memory_order_relaxed);
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	r = pthread_create(&a->thread, &at, act_thread_main, a);
	pthread_attr_destroy(&at);
	if (r)
		return -EAGAIN;
	/* The caller may hand it a VP as soon as this returns. */
	while (!atomic_load_explicit(&a->ready, memory_order_acquire))
		futex_wait(&a->ready, 0, NULL);
	return 0;
}

/*
 * act_spare_wait - put @a in the spare pool and wait until it is given a
 * VP (returned) or the runtime stops (NULL; then it must end).  A pool
 * already full ends the activation instead.
 */
static struct vp *act_spare_wait(struct act *a)
{
	struct vp *vp;

	sigmask_spare(a);
	if (upcall_backend->spare_wait) {
		atomic_store_explicit(&a->state, ACT_SPARE, memory_order_relaxed);
		return upcall_backend->spare_wait(a);
	}
	atomic_store_explicit(&a->wake, 0, memory_order_relaxed);
	spin_lock(&rt.act_lock);
	if (rt.nspares >= SPARES_MAX || atomic_load(&rt.stopping)) {
		spin_unlock(&rt.act_lock);
		return NULL;
	}
	atomic_store_explicit(&a->state, ACT_SPARE, memory_order_relaxed);
	a->spare_next = rt.spares;
	rt.spares = a;
	rt.nspares++;
	spin_unlock(&rt.act_lock);
	while (!atomic_load_explicit(&a->wake, memory_order_acquire))
		futex_wait(&a->wake, 0, NULL);
	vp = atomic_load_explicit(&a->vp, memory_order_relaxed);
	return vp;
}

/** act_spare_get - a spare from the pool (taken out of it), or NULL. */
struct act *act_spare_get(void)
{
	struct act *a;

	spin_lock(&rt.act_lock);
	a = rt.spares;
	if (a) {
		rt.spares = a->spare_next;
		rt.nspares--;
	}
	spin_unlock(&rt.act_lock);
	return a;
}

/** act_spare_give - wake spare @s (from act_spare_get()) to carry @vp;
 * @vp NULL: back to the pool. */
void act_spare_give(struct act *s, struct vp *vp)
{
	if (!vp) {
		spin_lock(&rt.act_lock);
		s->spare_next = rt.spares;
		rt.spares = s;
		rt.nspares++;
		spin_unlock(&rt.act_lock);
		return;
	}
	atomic_store_explicit(&s->vp, vp, memory_order_relaxed);
	atomic_store_explicit(&s->wake, 1, memory_order_release);
	futex_wake(&s->wake, 1);
}

/** act_wake_spares - the runtime stops: let every spare end. */
void act_wake_spares(void)
{
	struct act *a;

	if (upcall_backend && upcall_backend->wake_spares) {
		upcall_backend->wake_spares();
		return;
	}
	while ((a = act_spare_get()) != NULL) {
		atomic_store_explicit(&a->vp, NULL, memory_order_relaxed);
		atomic_store_explicit(&a->wake, 1, memory_order_release);
		futex_wake(&a->wake, 1);
	}
}

/* act_end - the activation stops carrying VPs for good. */
static void act_end(struct act *a) __attribute__((noreturn));

static void act_end(struct act *a)
{
	/*
	 * The main thread is an activation too (VP 0's first carrier), but
	 * its kernel stack is the main uthread's stack, which may be running
	 * on another activation now: it must never unwind or return.  The
	 * process's exit ends it.
	 */
	if (!a->own_thread)
		for (;;)
			futex_wait(&a->wake, 2, NULL);
	pthread_exit(NULL);
}

static void act_run(struct act *a)
{
	struct vp *vp = atomic_load_explicit(&a->vp, memory_order_relaxed);

	for (;; vp = NULL) {
		if (!vp)
			vp = act_spare_wait(a);
		if (!vp)
			break;
		if (act_carry_try(a, vp))
			continue; /* no processor for it: a spare */
		sched_upcall_add_processor(vp);
		upcall_leave(a);
		if (atomic_load(&rt.stopping))
			break;
		act_drop(a, vp); /* given up for another (kernel backend) */
	}
	act_end(a);
}

/** act_run_spare - the caller, an activation that carries no VP, waits
 * as a spare and carries what it is given. */
void act_run_spare(struct act *a)
{
	atomic_store_explicit(&a->vp, NULL, memory_order_relaxed);
	act_run(a);
}

/* ------------------------------------------------------------------------
 * The blocked and unblocked upcalls
 */

static int mb_ok = -1;

/**
 * act_takeover_prepare - register for expedited memory barriers, once,
 * from the thread that will hand VPs over.  The registration waits for an
 * RCU grace period (tens of milliseconds): done when the watchdog starts,
 * not in the middle of the first hand-off.
 */
void act_takeover_prepare(void)
{
	if (mb_ok < 0)
		mb_ok = sa_syscall6(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
				    0, 0, 0, 0, 0) == 0;
}

/**
 * act_takeover_begin - steps 1-2 of the handshake on stuck activation @a.
 * Returns false if no memory barrier can be had (no hand-off then).
 */
bool act_takeover_begin(struct act *a)
{
	act_takeover_prepare();
	if (!mb_ok)
		return false;
	atomic_store(&a->handshake, 1);
	act_publish_vp(a, VP_DISPLACED);
	sa_syscall6(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0, 0, 0, 0);
	return true;
}

/**
 * act_takeover_end - step 4: @commit gives @a's VP to spare @s (blocked
 * upcall), else the VP stays with @a and @s (if any) goes back to the
 * pool.
 */
void act_takeover_end(struct act *a, struct act *s, bool commit)
{
	struct vp *vp = atomic_load_explicit(&a->vp, memory_order_relaxed);

	if (!commit) {
		act_publish_vp(a, vp);
		atomic_store(&a->handshake, 0);
		if (s)
			act_spare_give(s, NULL);
		return;
	}
	act_takeover_commit(a);
	upcall_backend->displaced(a);
	act_spare_give(s, vp);
}

/**
 * act_takeover_commit - step 4's commit on stuck activation @a, whose VP
 * the caller gives to a spare: @a is ACT_BLOCKED with its uthread.
 */
void act_takeover_commit(struct act *a)
{
	struct vp *vp = atomic_load_explicit(&a->vp, memory_order_relaxed);

	a->blocked = vp->cur;
	__atomic_store_n(&a->unblock_seen, 0, __ATOMIC_RELAXED);
	atomic_store_explicit(&a->vp, NULL, memory_order_relaxed);
	atomic_store(&a->state, ACT_BLOCKED);
	atomic_store(&a->handshake, 0);
	atomic_fetch_add(&rt.blocked_handoffs, 1);
}

/* Fresh context of an activation whose uthread came back: publish the
 * uthread, become a spare. */
static void act_unblocked_entry(void)
{
	struct act *a = act_self();
	struct uthread *me = a->blocked;
	uint64_t seen = __atomic_load_n(&a->unblock_seen, __ATOMIC_RELAXED);

	san_switch_end(a->idle);
	act_publish_vp(a, NULL); /* not a VP's carrier any more */
	a->blocked = NULL;
	upcall_leave(a);
	atomic_store_explicit(&me->on_cpu, 0, memory_order_release);
	atomic_fetch_add(&rt.unblocks, 1);
	if (seen) {
		uint64_t d = clock_ns() - seen, m = atomic_load(&rt.unblock_max_ns);

		while (d > m && !atomic_compare_exchange_weak(&rt.unblock_max_ns, &m, d))
			;
	}
	sched_ready(me); /* not a VP now: queued on me->vp, which is kicked */
	act_run(a);
}

/*
 * act_unblocked - the unblocked upcall, on the activation that came back
 * from the kernel, from its uthread's vp_self().  Switches the uthread out
 * to a fresh context (which makes it runnable and turns the activation
 * into a spare) and, when some VP runs the uthread again, returns it.
 */
static struct vp *act_unblocked(struct act *a)
{
	struct uthread *me = a->blocked;
	struct vp *vp;

	if (me->flags & UTF_TLS)
		tls_set_fs(a->kfs);
	act_fresh(a, &a->idle->ctx, act_unblocked_entry);
	san_switch_begin(me, a->idle, false);
	sa_ctx_switch(&me->ctx, &a->idle->ctx);
	/* Resumed by switch_to() on some VP: finish its switch. */
	san_switch_end(me);
	sched_finish_switch();
	vp = vp_self();
	return vp;
}

/**
 * vp_self_slow - vp_self() when the word it read is a marker: the uthread
 * runs on a TLS block of its own (read the gs slot), or its activation
 * lost its VP while it was in the kernel.
 */
struct vp *vp_self_slow(struct vp *v)
{
	struct act *a;

	for (;;) {
		if (v == VP_VIA_GS)
			asm volatile("movq %%gs:sa_gs_slots(%%rip), %0" : "=r"(v) : : "memory");
		if (v != VP_DISPLACED)
			return v;
		/* The process is exiting and the VPs stop: go on as a thread
		 * that carries no VP. */
		if (atomic_load(&rt.stopping))
			return NULL;
		a = act_self();
		while (atomic_load(&a->handshake))
			cpu_relax();
		if (atomic_load(&a->state) == ACT_BLOCKED) {
			/* The kernel backend may have resumed it through a
			 * claim meanwhile: then it carries that VP. */
			if (upcall_kernel_on && !kernel_self_claim(a)) {
				v = atomic_load_explicit((_Atomic(struct vp *) *)a->tls_vp,
							 memory_order_acquire);
				continue;
			}
			if (!__atomic_load_n(&a->unblock_seen, __ATOMIC_RELAXED))
				__atomic_store_n(&a->unblock_seen, clock_ns(), __ATOMIC_RELAXED);
			return act_unblocked(a);
		}
		/* The hand-off was undone: read again. */
		v = atomic_load_explicit((_Atomic(struct vp *) *)a->tls_vp, memory_order_acquire);
	}
}

/* ------------------------------------------------------------------------
 * Resuming a uthread whose activation is parked in the kernel
 */

/*
 * With the kernel backend, a uthread that blocked in the kernel stays in
 * its activation C when the VP moves on: C comes back from the kernel
 * parked (it runs no user code of its own accord), and the uthread is put
 * in a run queue marked UTF_KPARKED.  A VP that picks it cannot switch to
 * a saved context: the uthread's registers are in the kernel, with C.  So
 * the VP goes to C instead.  Its carrier X (the caller of switch_to())
 * leaves the context it was in as usual, then on a fresh context of its
 * own stack finishes the switch, makes C the VP's carrier with the
 * uthread current, and asks the kernel to switch: C returns to user mode
 * inside the uthread, with the VP and X's processor, and X becomes a
 * spare.  C's idle context for the VP is a fresh one on C's own stack,
 * which the uthread reaches at its next switch.
 */

/* C's idle context for the VP it was handed: runs the idle loop. */
static void act_carried_entry(void)
{
	struct act *c = act_self();
	struct vp *vp;

	san_switch_end(c->idle);
	sched_finish_switch();
	vp = atomic_load_explicit(&c->vp, memory_order_relaxed);
	sched_upcall_add_processor(vp);
	if (!atomic_load(&rt.stopping))
		act_give_up(c, vp);
	upcall_leave(c);
	act_end(c);
}

/**
 * act_carry_parked - parked activation @c carries @vp from the moment it
 * runs again, inside @vp's current uthread; its idle context for @vp is a
 * fresh one on its own stack.  Called by the VP's carrier before the
 * kernel switch.
 */
void act_carry_parked(struct act *c, struct vp *vp)
{
	act_fresh(c, &c->idle->ctx, act_carried_entry);
	atomic_store_explicit(&c->idle->on_cpu, 0, memory_order_relaxed);
	c->blocked = NULL;
	act_bind(c, vp);
}

/* X's fresh context: finish the switch, hand the VP to C, become a spare. */
static void act_resume_entry(void)
{
	struct act *x = act_self();
	struct uthread *next = x->resume;
	struct act *c = next->kact;
	struct vp *vp;
	long r;

	san_switch_end(x->idle);
	sched_finish_switch();
	vp = atomic_load_explicit(&x->vp, memory_order_relaxed);
	next->kact = NULL;
	next->flags &= ~UTF_KPARKED;
	/* next is the VP's current uthread again (act_resume_parked()). */
	WRITE_ONCE(vp->cur, next);
	atomic_fetch_add(&rt.unblocks, 1);
	act_carry_parked(c, vp);
	/* X carries nothing now. */
	atomic_store_explicit(&x->vp, NULL, memory_order_relaxed);
	atomic_store_explicit(&x->state, ACT_SPARE, memory_order_relaxed);
	act_publish_vp(x, NULL);
	upcall_leave(x);
	r = kernel_switch(c);
	/* Until here a block of X is one inside libsa (kernel.c). */
	WRITE_ONCE(x->resume, NULL);
	if (r < 0 && r != -EINTR && !atomic_load(&rt.stopping))
		sa_panic("the kernel refused to resume activation %d: %s", c->kid,
			 strerror((int)-r));
	act_run_spare(x);
}

/**
 * act_resume_parked - switch_to()'s step for a UTF_KPARKED @next: leave
 * @prev (saved as in any switch) for a fresh context of the calling
 * activation, which resumes @next's activation.  Returns when @prev runs
 * again.
 */
void act_resume_parked(struct vp *vp, struct uthread *prev, struct uthread *next,
		       bool prev_dies)
{
	struct act *x = act_self();

	WRITE_ONCE(x->resume, next);
	/*
	 * Until the hand-over, what runs on the VP is this activation's own
	 * code, not next: a tick must not take it for next's (a critical
	 * section's copy would give the VP back as next, saving this
	 * context as next's).  A VP whose current context is an idle one is
	 * never preempted.
	 */
	WRITE_ONCE(vp->cur, x->idle);
	san_switch_begin(prev, x->idle, prev_dies);
	if (prev->flags & UTF_TLS)
		tls_set_fs(x->kfs);
	act_fresh(x, &x->fresh, act_resume_entry);
	sa_ctx_switch(&prev->ctx, &x->fresh);
}
