/* defs.h - libsa internal definitions shared by every file of the library */
#ifndef SA_DEFS_H
#define SA_DEFS_H

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sa/sa.h"

/* ========================================================================
 * Compiler helpers
 */

#define SA_EXPORT __attribute__((visibility("default")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define __noinline __attribute__((noinline))
#undef __always_inline
#define __always_inline inline __attribute__((always_inline))
#define __cacheline_aligned __attribute__((aligned(64)))
#define CACHE_LINE 64
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define container_of(p, type, member) \
	((type *)((char *)(p) - offsetof(type, member)))

/*
 * SA_CRITSEC - marks a critical section: a function that holds, takes or
 * releases a libsa-internal lock and may be preempted in uthread context.
 * The build gives it a copy that ends by asking to give the VP up
 * (critsec/critsec.c).  It may call only other SA_CRITSEC functions and the
 * few in critsec/leaf.list; gen-copies fails the build otherwise.  Kept out
 * of line and unique (no clones), with no instrumentation call in it: no
 * stack protector, no sanitizer (the copies must be callless).
 */
#ifdef __SANITIZE_THREAD__
/* ThreadSanitizer must see the sections' atomics, or it loses every
 * happens-before edge libsa's locks and queues make: its calls are allowed
 * there (critsec/leaf.list; TSan builds run without preemption). */
#define SA_CRITSEC_NO_SANITIZE no_sanitize("address", "undefined")
#else
#define SA_CRITSEC_NO_SANITIZE no_sanitize("address", "undefined", "thread")
#endif
#define SA_CRITSEC                                                            \
	__attribute__((section(".text.sa_cs"), noinline, noclone, used,       \
		       no_stack_protector, SA_CRITSEC_NO_SANITIZE))

#define READ_ONCE(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define WRITE_ONCE(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)

/*
 * smp_mb - full memory barrier, for the store->load orderings of the
 * parking protocol (sched.c).  What atomic_thread_fence(seq_cst) compiles
 * to on x86-64, written out because GCC's ThreadSanitizer rejects fences.
 */
static __always_inline void smp_mb(void)
{
	asm volatile("lock; orq $0, (%%rsp)" ::: "memory", "cc");
}

static __always_inline void cpu_relax(void)
{
	__builtin_ia32_pause();
}

/* Counters written by one VP and read by anyone: relaxed, never torn. */
static __always_inline void stat_inc(_Atomic uint64_t *c)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

/*
 * sa_panic - an invariant of the runtime does not hold: print a message that
 * names it and abort.  Never used for bad input from a caller.
 */
__attribute__((noreturn, format(printf, 1, 2))) void sa_panic(const char *fmt, ...);
#define SA_BUG_ON(cond)                                                      \
	do {                                                                 \
		if (unlikely(cond))                                          \
			sa_panic("invariant violated at %s:%d: %s", __FILE__, \
				 __LINE__, #cond);                           \
	} while (0)

/* ========================================================================
 * Spinlocks: internal locks for short critical sections.  Lock order, outer
 * first: uthread join lock / sync-object lock -> timer-heap lock -> run-queue
 * lock -> idle-list lock.  Two run-queue locks are never held together.
 */

typedef _Atomic uint32_t spinlock_t;

/*
 * Lock checking for the critical-section tests (SA_DEBUG_LOCKS, set only
 * for the tests' own build of the library): every acquire and release is
 * counted on the VP, and a preemption that finds the count non-zero is an
 * error (sched_upcall_preempted).  Stubs otherwise.
 */
struct vp;
#ifdef SA_DEBUG_LOCKS
void spin_debug_acquired(void);
void spin_debug_released(void);
void spin_debug_preempting(struct vp *vp);
#else
static inline void spin_debug_acquired(void) { }
static inline void spin_debug_released(void) { }
static inline void spin_debug_preempting(struct vp *vp) { (void)vp; }
#endif

static __always_inline bool spin_trylock(spinlock_t *l)
{
	if (atomic_exchange_explicit(l, 1, memory_order_acquire))
		return false;
	spin_debug_acquired();
	return true;
}

void __spin_lock_slow(spinlock_t *l);

/* spin_lock - fast path: one exchange; slow path spins reading. */
static __always_inline void spin_lock(spinlock_t *l)
{
	if (likely(spin_trylock(l)))
		return;
	__spin_lock_slow(l);
}

static __always_inline void spin_unlock(spinlock_t *l)
{
	spin_debug_released();
	atomic_store_explicit(l, 0, memory_order_release);
}

static __always_inline bool spin_is_locked(spinlock_t *l)
{
	return atomic_load_explicit(l, memory_order_relaxed) != 0;
}

#define assert_spin_lock_held(l) SA_BUG_ON(!spin_is_locked(l))

/* ========================================================================
 * Futex and time helpers
 */

/*
 * Raw system calls, inline: the instruction is in libsa's own text, so a
 * preemption tick that lands in it sees a libsa PC (upcall/emulated.c),
 * and no errno is touched.  They return the kernel's -errno.
 */
static __always_inline long sa_syscall6(long nr, long a1, long a2, long a3,
					long a4, long a5, long a6)
{
	register long r10 asm("r10") = a4;
	register long r8 asm("r8") = a5;
	register long r9 asm("r9") = a6;
	long ret;

	asm volatile("syscall"
		     : "=a"(ret)
		     : "0"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
		     : "rcx", "r11", "memory");
	return ret;
}

static __always_inline long futex_wait(_Atomic uint32_t *uaddr, uint32_t val,
				       const struct timespec *abs_mono)
{
	/* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline. */
	return sa_syscall6(SYS_futex, (long)uaddr, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG,
			   (long)val, (long)abs_mono, 0, (long)FUTEX_BITSET_MATCH_ANY);
}

static __always_inline long futex_wake(_Atomic uint32_t *uaddr, int n)
{
	return sa_syscall6(SYS_futex, (long)uaddr, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, n,
			   0, 0, 0);
}

#define NSEC_PER_SEC 1000000000ull
#define DEADLINE_NONE UINT64_MAX

extern int (*sa_vdso_clock_gettime)(clockid_t, struct timespec *);
static __always_inline uint64_t now_ns(void);

static inline void ns_to_timespec(uint64_t ns, struct timespec *ts)
{
	ts->tv_sec = (time_t)(ns / NSEC_PER_SEC);
	ts->tv_nsec = (long)(ns % NSEC_PER_SEC);
}

/*
 * deadline_from_abs - convert an absolute @abs on @clk to monotonic ns.
 * Returns 0 and stores it in *out, or -EINVAL for a bad clock or timespec.
 */
int deadline_from_abs(clockid_t clk, const struct timespec *abs, uint64_t *out);

/* ========================================================================
 * Context switch (switch.S)
 *
 * A saved context is only a stack pointer: the callee-saved registers and
 * the x87/SSE control words are pushed on the uthread's own stack.
 */

struct sa_ctx {
	void *rsp;
};

void sa_ctx_switch(struct sa_ctx *from, struct sa_ctx *to);
void sa_ctx_trampoline(void);
/* sa_ctx_init - prepare @ctx so that switching to it calls @entry(). */
void sa_ctx_init(struct sa_ctx *ctx, void *stack_top, void (*entry)(void));

/* ========================================================================
 * uthreads
 */

enum ut_state {
	UT_FREE = 0,   /* slot unused */
	UT_RUNNABLE,   /* in a run queue or a next slot */
	UT_RUNNING,    /* current on a VP */
	UT_PARKED,     /* waiting for ready() */
	UT_DONE,       /* ended; joinable uthreads wait here for sa_join() */
};

enum ut_flags {
	UTF_DETACHED = 1u << 0,
	UTF_MAIN = 1u << 1,     /* the thread that started the runtime */
	UTF_EXTERNAL = 1u << 2, /* a kernel thread that is not a uthread */
	UTF_IDLE = 1u << 3,     /* a VP's idle context */
	UTF_TLS = 1u << 4,      /* runs on a TLS block of its own (->tp, tls.c) */
	UTF_KPARKED = 1u << 5,  /* its context is an activation parked in the
				 * kernel (->kact): run by switching to it */
};

struct vp;
struct key_block;
struct io_vp;

/*
 * struct uthread - a user-level thread.  Lives in the uthread table
 * (uthread.c) and is never unmapped, so a stale handle can still be locked
 * and checked against its generation.
 */
struct __cacheline_aligned uthread {
	/* line 0: touched on every switch */
	struct sa_ctx ctx;          /* saved stack pointer */
	struct uthread *rq_next;    /* run-queue links, under vp->rq_lock */
	struct uthread *rq_prev;
	struct vp *_Atomic vp;      /* VP it runs on or is queued on */
	_Atomic uint32_t on_cpu;    /* 1 until its context is saved */
	uint8_t prio;               /* enum sa_prio */
	_Atomic uint8_t on_rq;      /* in vp's run queue (written under rq_lock) */
	_Atomic uint8_t state;      /* enum ut_state (read unlocked as a hint) */
	uint8_t pad0;
	uint32_t flags;             /* enum ut_flags */
	uint32_t id;                /* table index + 1; mutex owner identity */
	void *tsan_fiber;           /* ThreadSanitizer fiber, when built so */
	void *asan_fake;            /* AddressSanitizer fake-stack cookie */

	/* line 1: lifetime, under ->lock */
	spinlock_t lock;            /* join / detach / state DONE */
	_Atomic uint32_t gen;       /* handle generation */
	struct uthread *joiner;     /* who waits in sa_join() */
	void *retval;
	void *(*fn)(void *);
	void *arg;
	struct uthread *free_next;  /* free-list link */

	/* line 2: stack and identity */
	void *stack_lo;             /* lowest usable byte */
	void *stack_hi;             /* one past the highest usable byte */
	void *map_base;             /* mapping incl. guard (NULL: not ours) */
	size_t guard;               /* guard bytes below stack_lo */
	uint8_t stack_class;        /* size class in stack.c */
	char name[16];
	void *tp;                   /* its thread pointer when UTF_TLS */

	/* line 3: waiting; robust mutexes held (touched by itself only) */
	_Atomic uint32_t park_word; /* external threads park on this futex */
	_Atomic uint32_t join_state; /* enum wait_state of its sa_join() wait */
	struct key_block **keys;    /* per-uthread key values */
	uint64_t io_deadline;       /* sa_io_set_deadline(), monotonic ns or 0 */
	sa_mutex_t **robust;        /* robust mutexes it owns (mutex.c) */
	uint32_t nrobust;           /* entries in use */
	uint32_t robust_cap;        /* entries the mapping holds */
	_Atomic uint32_t *_Atomic intr_wait; /* the state word of its
				      * interruptible wait, or NULL (wait.c) */
	_Atomic uint32_t intr_req;  /* ut_interrupt() asked, not yet consumed */
	_Atomic uint32_t intr_busy; /* ut_interrupt() calls reading intr_wait */
	struct act *kact;           /* UTF_KPARKED: the activation that holds it */
};

#define UT_ID_MAX 0x7ffffffeu

static inline sa_uthread_t ut_handle(struct uthread *ut)
{
	return ((uint64_t)atomic_load_explicit(&ut->gen, memory_order_relaxed) << 32) |
	       ut->id;
}

/* uthread.c */
int ut_spawn(sa_uthread_t *out, const sa_attr_t *attr, void *(*fn)(void *),
	     void *arg, void **tp);
int ut_stack_of(sa_uthread_t h, void **lo, size_t *size, size_t *guard);
struct uthread *ut_alloc(void);
void ut_free(struct uthread *ut);
struct uthread *ut_lookup_lock(sa_uthread_t h);
int ut_join_ready(sa_uthread_t h);
int ut_join(sa_uthread_t h, void **retval, bool intr);
sa_uthread_t ut_find(bool (*want)(struct uthread *ut, void *arg), void *arg);
int ut_interrupt(sa_uthread_t h);
void ut_fork_child(struct uthread *ut);
void keys_fork_child(void);
void stack_fork_child(void);
void rt_fork_child(void);
struct uthread *ut_ext_self(void);
void ut_exit_current(void *retval) __attribute__((noreturn));
void ut_release_dead(struct uthread *ut);
struct uthread *ut_ext_adopt(void);
void keys_run_destructors(struct uthread *ut);
void keys_release(struct uthread *ut);

/* ========================================================================
 * Stacks (stack.c)
 */

int stack_alloc(struct uthread *ut, size_t stack_size, size_t guard);
void stack_free(struct uthread *ut);
void stack_init(void);
bool stack_guard_supported(void);
void stack_signal_init(void);
int stack_altstack_setup(void **mem);
size_t stack_cached_count(void);

/* ========================================================================
 * Timers (timer.c)
 */

enum timer_state {
	TIMER_IDLE = 0,
	TIMER_PENDING,
	TIMER_RUNNING,
	TIMER_DONE,
};

/*
 * struct sa_timer - one deadline in a VP's heap.  Usually on the stack of
 * the uthread that waits for it; timer_cancel_sync() makes sure no callback
 * still touches it before that frame goes away.
 */
struct sa_timer {
	uint64_t deadline;
	struct vp *vp;
	uint32_t idx;                 /* heap slot, under vp->timer_lock */
	_Atomic uint32_t state;
	void (*fn)(struct sa_timer *);
};

void timer_arm(struct sa_timer *t, uint64_t deadline, void (*fn)(struct sa_timer *));
void timer_cancel_sync(struct sa_timer *t);
void timers_run(struct vp *vp, uint64_t now);
void timers_run_all(uint64_t now);
uint64_t timers_next_deadline(void);
void timer_heap_grow_np(struct vp *vp);

/* ========================================================================
 * Waiters: one uthread (or external thread) waiting on a sync object
 */

enum wait_state {
	W_WAITING = 0,
	W_WOKEN,
	W_TIMEDOUT,
	W_INTERRUPTED, /* ut_interrupt() ended an interruptible wait */
};

/*
 * struct sa_waiter - lives on the waiting uthread's stack while it waits.
 * Queue links are under the object's lock; ->state is decided by one CAS
 * from W_WAITING, and the winner alone makes the uthread runnable.
 */
struct sa_waiter {
	struct sa_waiter *next, *prev;
	struct uthread *ut;
	_Atomic uint32_t state;
	uint32_t queued;              /* under the object's lock */
	uint32_t kind;                /* per object: reader/writer, ... */
	uint32_t epoch;               /* sa_fork_epoch when queued */
	struct sa_timer timer;
};

/*
 * sa_fork_epoch - how many times this process is a child of fork() of a
 * running runtime.  A waiter queued in another epoch belongs to a uthread
 * that does not exist in this process (it waited in the parent when the
 * parent forked): waiter_claim() skips it, so that an unlock, a signal or
 * a post in the child goes to a uthread of the child.
 */
extern uint32_t sa_fork_epoch;

struct waitq {
	struct sa_waiter *head, *tail;
};

void waitq_push(struct waitq *q, struct sa_waiter *w);
void waitq_remove(struct waitq *q, struct sa_waiter *w);
struct sa_waiter *waitq_pop(struct waitq *q);
bool waiter_claim(struct sa_waiter *w);
struct uthread *waitq_take_one(spinlock_t *lock, struct waitq *q);
struct sa_waiter *waitq_take_all(spinlock_t *lock, struct waitq *q);
struct sa_waiter *waitq_claim_all(struct waitq *q);
void waitq_ready_chain(struct sa_waiter *w);
int wait_park_unlock(spinlock_t *lock, struct waitq *q, struct sa_waiter *w,
		     uint64_t deadline);
int wait_park_unlock_intr(spinlock_t *lock, struct waitq *q, struct sa_waiter *w,
			  uint64_t deadline);
bool wait_intr_arm(struct uthread *me, _Atomic uint32_t *state);
void wait_intr_disarm(struct uthread *me, _Atomic uint32_t *state);

/*
 * Interruptible waits of the calling uthread, for the LD_PRELOAD shim:
 * as their sa_* twins, but ut_interrupt() ends them with -EINTR (a cond
 * wait with the mutex taken again).  @abs NULL: no time limit.
 * COND_CLOCK_OWN: the condition variable's own clock.
 */
#define COND_CLOCK_OWN ((clockid_t)-1)
int cond_wait_intr(sa_cond_t *pc, sa_mutex_t *m, clockid_t clk, const struct timespec *abs);
int sem_wait_intr(sa_sem_t *p, clockid_t clk, const struct timespec *abs);
int sleep_until_intr(uint64_t deadline);
/* These return -EINTR with the object not taken: the caller runs what
 * interrupted it and waits again, as POSIX has these waits go on. */
int mutex_lock_intr(sa_mutex_t *pm, clockid_t clk, const struct timespec *abs);
int rwlock_lock_intr(sa_rwlock_t *p, bool write, clockid_t clk, const struct timespec *abs);
int barrier_wait_intr(sa_barrier_t *p);

/* ========================================================================
 * Virtual processors and the scheduler (sched/sched.c)
 */

struct rq_list {
	struct uthread *head, *tail;
};

/* What the context switched to does on behalf of the one switched from. */
struct post_switch {
	struct uthread *prev;      /* the context switched away from */
	spinlock_t *unlock;        /* release after prev's context is saved */
	uint32_t requeue;          /* push prev on this VP's run queue (yield) */
	uint32_t dead;             /* prev ended: release its stack */
};

/* What an idle VP saw in another VP's next slot, and since when. */
struct next_watch {
	struct uthread *seen;
	uint64_t switches;
	uint64_t since;
};

struct vp_stats {
	_Atomic uint64_t spawned, exited, switches, next_handoffs;
	_Atomic uint64_t steals, stolen, parks, wakes, timers_fired;
	/* preemption (upcall/) */
	_Atomic uint64_t ticks, preemptions, preempt_skipped, cs_recoveries;
};

#define STACK_CLASSES 19
#define STACK_CACHE_PER_CLASS 32

struct stack_cache {
	uint32_t n[STACK_CLASSES];
	void *slot[STACK_CLASSES][STACK_CACHE_PER_CLASS];
};

#define UT_CACHE_MAX 256

/*
 * struct vp - one virtual processor.  Laid out by who writes it: the owner
 * lines are written only by the kernel thread carrying the VP; the run-queue
 * line by anyone holding rq_lock; the park line by wakers.
 */
struct vp {
	/* line 0: owner only, every switch */
	struct uthread *cur;          /* running context (maybe ->idle) */
	struct uthread *_Atomic next; /* LIFO handoff slot (owner puts) */
	struct post_switch post;      /* actions for the incoming context */
	uint32_t index;
	uint16_t spinning;            /* counted in rt.nr_spinning */
	uint16_t need_resched;        /* end the slice at the next switch */
	struct uthread *idle;         /* this VP's idle context */
	uint64_t rand;                /* victim selection */

	/* line 1: run queues, under rq_lock */
	spinlock_t rq_lock __cacheline_aligned;
	_Atomic uint32_t nr_queued;   /* readable without the lock */
	struct rq_list q[SA_NR_PRIO];

	/* line 2: parking */
	_Atomic uint32_t park_word __cacheline_aligned; /* futex: 1 = woken */
	_Atomic uint32_t parked;      /* on the idle list */
	struct vp *idle_next;         /* idle list link, under rt.idle_lock */
	_Atomic uint32_t park_ring;   /* parks in its io_uring, not the futex */
	_Atomic uint32_t dormant;     /* VPD_*: it has no processor (kernel.c) */
	_Atomic uint32_t spin_uncounted; /* left rt.nr_spinning while dormant */

	/* line 3: timers */
	spinlock_t timer_lock __cacheline_aligned;
	uint32_t timer_n;
	uint32_t timer_cap;
	uint32_t io_inflight;         /* ring ops not yet harvested (owner) */
	struct sa_timer **timer_heap;
	_Atomic uint64_t timer_next;  /* earliest deadline, or DEADLINE_NONE */
	struct io_vp *io;             /* this VP's ring (io/io.c), or NULL */

	/* line 4: stats (owner writes, anyone reads) */
	struct vp_stats stats __cacheline_aligned;

	/* owner-only caches */
	struct next_watch *watch;     /* other VPs' next slots, for stealing */
	struct uthread *ut_cache;     /* free uthread structs */
	uint32_t ut_cache_n;
	struct stack_cache stacks __cacheline_aligned;

	/* preemption: the owner and its tick handler only (upcall/) */
	uint64_t slices;              /* time slices started (sched.c) */
	uint64_t tick_slices;         /* slices at the last tick */
	uint32_t np;                  /* > 0: libsa is in a libc call; no preemption */
	uint32_t dbg_locks;           /* spinlocks held (SA_DEBUG_LOCKS builds only) */
	/* a critical-section copy of this uthread ended (critsec/exit.S):
	 * preempt it at the first tick outside libsa, quantum or not */
	struct uthread *resched;

	/* the carrier (upcall/act.c); changes when an activation blocks */
	struct act *_Atomic act;      /* the activation carrying this VP */
	void *kfs;                    /* the carrier's own thread pointer */
} __cacheline_aligned;

/*
 * vp->dormant: with the kernel backend the group may hold fewer processors
 * than there are VPs (the kernel divides the CPUs among processes), and a
 * VP without one runs nothing until it gets one (upcall/kernel.c).
 */
enum {
	VPD_ACTIVE = 0, /* carried by a running activation */
	VPD_FREE,       /* no carrier: the next free processor takes it */
	VPD_TAKEN,      /* its carrier lost its processor where it stood */
};

/*
 * struct act - an activation: a kernel thread that can carry a VP
 * (upcall/act.c).  It carries one VP, or waits in the spare pool, or is
 * "blocked": stuck in the kernel for a uthread while a spare carries its
 * VP, until the unblocked upcall makes it a spare again.
 */
enum act_state {
	ACT_CARRYING = 0,
	ACT_SPARE,
	ACT_BLOCKED,
};

struct act {
	struct uthread *idle;         /* its own context: its kernel stack */
	struct vp *_Atomic vp;        /* the VP it carries, NULL while spare */
	_Atomic uint32_t state;       /* ACT_* */
	_Atomic uint32_t wake;        /* futex: a spare waits for a VP here */
	_Atomic uint32_t handshake;   /* a hand-off of its VP is being decided */
	_Atomic uint32_t ready;       /* its kernel thread has set itself up */
	uint32_t sigmask_gen;         /* the carrier mask it applied (act_sigmask_*) */
	uint32_t slot;                /* index in sa_gs_slots (its gs base) */
	pid_t tid;
	struct vp **tls_vp;           /* its sa_tls_vp, which the watchdog rewrites */
	struct uthread *blocked;      /* the uthread left in the kernel */
	void *base_sp;                /* where a spare's fresh context starts */
	void *kfs;                    /* its own thread pointer (TLS mode) */
	void *altstack;
	timer_t tick_timer;
	bool tick_made, tick_armed;
	bool own_thread;              /* a thread libsa made (not the main one) */
	pthread_t thread;
	struct act *spare_next;       /* spare pool link, under rt.act_lock */
	/* the watchdog's view (upcall/emulated.c) */
	int fd_syscall, fd_schedstat;
	uint64_t seen_switches, seen_since;
	struct uthread *seen_cur;
	uint64_t unblock_seen;        /* when it was first seen back from the kernel */
	/* the kernel backend's view (upcall/kernel.c) */
	int kid;                      /* its id in the kernel's group, -1: none */
	_Atomic uint32_t klost;       /* it blocked with no spare to hand over to */
	_Atomic uint32_t kclaim;      /* its block was claimed: KCLAIM_* */
	_Atomic uint32_t kbusy;       /* a spare decides about its block */
	_Atomic uint32_t kpending;    /* another block of it waits for that */
	_Atomic uint32_t ktaken;      /* parked without a processor: resume it */
	bool krescue;                 /* registers RUNNING: takes a free processor */
	bool kidle;                   /* in its idle wait (SA_CTL_IDLE) */
	uint64_t kmb_seq;             /* the last mailbox it acted on */
	struct uthread *resume;       /* act_resume_parked(): whom it hands on */
	struct sa_ctx fresh;          /* a context on its own stack */
};

_Static_assert(offsetof(struct vp, cur) == 0, "vp: cur first");
_Static_assert(offsetof(struct vp, rq_lock) == 64, "vp: run queue on line 1");
_Static_assert(offsetof(struct vp, park_word) == 128, "vp: park on line 2");
_Static_assert(offsetof(struct vp, timer_lock) == 192, "vp: timers on line 3");
_Static_assert(offsetof(struct vp, stats) == 256, "vp: stats on line 4");
_Static_assert(offsetof(struct vp, io_inflight) / 64 == offsetof(struct vp, timer_next) / 64,
	       "vp: io_inflight shares the line that every switch reads");

#define SA_ACTS_MAX 1024              /* activations, spares included */

/* Global runtime state (runtime.c). */
struct runtime {
	_Atomic uint32_t state;        /* RT_* */
	uint32_t nvps;
	struct vp *vps;
	struct uthread *main_ut;
	_Atomic uint32_t main_exited;
	_Atomic uint32_t stopping;
	_Atomic uint32_t spawn_rr;     /* round robin for external spawns */

	/* idle VPs (sched.c) */
	_Atomic uint32_t nr_spinning __cacheline_aligned;
	_Atomic uint32_t nr_idle;
	spinlock_t idle_lock;
	struct vp *idle_list;

	/* global pools behind the per-VP caches */
	spinlock_t ut_pool_lock __cacheline_aligned;
	struct uthread *ut_pool;
	uint32_t ut_pool_n;

	/* stats of VPs that no longer run plus external threads */
	_Atomic uint64_t ext_spawned, ext_exited, ext_wakes;
	_Atomic uint64_t stacks_mapped, stacks_released;
	bool print_stats;
	bool tls_mode;                 /* every uthread gets a TLS block (tls.c) */

	/* activations (upcall/act.c) */
	spinlock_t act_lock __cacheline_aligned;
	struct act *acts[SA_ACTS_MAX];
	uint32_t nacts;
	struct act *_Atomic spares;
	uint32_t nspares;
	_Atomic uint64_t acts_made, blocked_handoffs, unblocks;
	_Atomic uint64_t unblock_max_ns;
	_Atomic uint64_t procs_taken, procs_added; /* kernel.c */
};

enum { RT_OFF = 0, RT_STARTING, RT_RUNNING, RT_FAILED };

extern struct runtime rt;

/*
 * Which VP a kernel thread carries.  Natively it is the __thread variable
 * sa_tls_vp, read through %fs.  In the per-uthread TLS mode (tls.c) %fs
 * belongs to the running uthread and changes at every switch, so a
 * uthread's own block holds VP_VIA_GS there instead, and the answer comes
 * from the %gs base, which glibc leaves alone on x86-64 and which stays
 * with the kernel thread:
 *
 *   sa_gs_slots[0] is always empty, and activation a owns slot a->slot
 *   (from 1), which holds the VP it carries and the activation itself.  The
 *   kernel thread sets its gs base to the byte offset of its slot
 *   (act_gs_attach()), and %gs:sa_gs_slots(%rip) reads gs base +
 *   &sa_gs_slots: its slot.  With a gs base never set (0) the same load
 *   reads slot 0, NULL, with no test and no fault.
 *
 * Rejected: %gs alone.  clone() copies the gs base into every thread the
 * carrier creates, glibc's own helper threads (SIGEV_THREAD timers, AIO)
 * included, and those must not believe they carry the VP.  A fresh thread
 * gets a fresh TLS block, where sa_tls_vp is NULL, so the %fs word is what
 * tells a carrier (or a uthread on one) from its children.  The native
 * path stays one load and a branch that is never taken.
 *
 * Displaced activations.  When an activation is stuck in the kernel and a
 * spare takes its VP over (upcall/act.c), the watchdog writes VP_DISPLACED
 * where that activation's vp_self() looks (its sa_tls_vp, or its gs slot):
 * the first vp_self() of its uthread after the kernel call returns takes
 * the slow path, which hands the uthread back to a run queue and resumes it
 * on whichever VP runs it next - where vp_self() then returns that VP.
 */
#define VP_VIA_GS ((struct vp *)1)
#define VP_DISPLACED ((struct vp *)2)

struct gs_slot {
	struct vp *vp;
	struct act *act;
};

extern __thread struct vp *sa_tls_vp __attribute__((tls_model("initial-exec")));
/* True on the kernel threads libsa makes for itself (activations, the
 * watchdog): what runs on their own blocks is never the program's. */
extern __thread bool sa_tls_internal __attribute__((tls_model("initial-exec")));
extern struct gs_slot sa_gs_slots[SA_ACTS_MAX + 1] __attribute__((visibility("hidden")));
struct vp *vp_self_slow(struct vp *v);

/*
 * vp_self - the VP the caller runs on, or NULL on a thread that is not a VP.
 * Fast path: one %fs load.  Read fresh every time: a uthread can move to
 * another kernel thread at any switch, so the compiler must never cache
 * the TLS address or the answer.
 */
/* vp_tls_word - the caller's sa_tls_vp, read through %fs (one load). */
static __always_inline struct vp *vp_tls_word(void)
{
	struct vp *v;
	uint64_t off;

	asm("movq sa_tls_vp@gottpoff(%%rip), %0" : "=r"(off));
	asm volatile("movq %%fs:(%1), %0" : "=r"(v) : "r"(off) : "memory");
	return v;
}

static __always_inline struct vp *vp_self(void)
{
	struct vp *v = vp_tls_word();

	if (unlikely((uintptr_t)v - 1 < 2)) { /* VP_VIA_GS or VP_DISPLACED */
		/* The gs slot inline: in the per-uthread TLS mode every call
		 * comes here, and a call to the slow path costs more than
		 * the load. */
		if (v == VP_VIA_GS)
			asm volatile("movq %%gs:sa_gs_slots(%%rip), %0" : "=r"(v) : : "memory");
		if (unlikely(v == VP_DISPLACED))
			v = vp_self_slow(v);
	}
	return v;
}

/*
 * vp_self_nodivert - vp_self() for bookkeeping that must not deliver the
 * unblocked upcall (exit-time code, statistics): NULL where vp_self()
 * would take its slow path for a displaced activation.
 */
static __always_inline struct vp *vp_self_nodivert(void)
{
	struct vp *v = vp_tls_word();

	if (unlikely(v == VP_VIA_GS))
		asm volatile("movq %%gs:sa_gs_slots(%%rip), %0" : "=r"(v) : : "memory");
	return v == VP_DISPLACED ? NULL : v;
}

/*
 * sa_enter - at the top of a libsa entry that may take an internal lock and
 * then call vp_self() under it: a uthread whose activation lost its VP
 * (act.c) learns it here, holding nothing, not with the lock held.
 */
static __always_inline void sa_enter(void)
{
	(void)vp_self();
}

/* ut_self - the calling uthread, or the caller's external record. */
static __always_inline struct uthread *ut_self(void)
{
	struct vp *v = vp_self();

	return likely(v) ? v->cur : ut_ext_self();
}

/*
 * Memory for libsa's own growing arrays on scheduling paths, straight from
 * the kernel (mmap/mremap/munmap, inline).  Never malloc there: a uthread
 * preempted inside malloc holds its arena lock, and libsa calling malloc
 * on the same VP would wait for a lock whose holder cannot run.
 * Sizes are rounded up to pages; *_zalloc memory is zeroed.
 */
#define SA_PAGE 4096ul

static __always_inline size_t sa_mem_round(size_t n)
{
	return (n + SA_PAGE - 1) & ~(SA_PAGE - 1);
}

static __always_inline void *sa_mem_zalloc(size_t n)
{
	long p = sa_syscall6(SYS_mmap, 0, (long)sa_mem_round(n), 3 /* RW */,
			     0x22 /* MAP_PRIVATE | MAP_ANONYMOUS */, -1, 0);

	return p < 0 && p > -4096 ? NULL : (void *)p;
}

/* sa_mem_grow - @p (@old bytes, maybe NULL) grown to @new bytes; the new
 * part is zeroed.  NULL (and @p untouched) when out of memory. */
static __always_inline void *sa_mem_grow(void *p, size_t old, size_t new)
{
	long r;

	if (!p)
		return sa_mem_zalloc(new);
	r = sa_syscall6(SYS_mremap, (long)p, (long)sa_mem_round(old),
			(long)sa_mem_round(new), 1 /* MREMAP_MAYMOVE */, 0, 0);
	return r < 0 && r > -4096 ? NULL : (void *)r;
}

static __always_inline void sa_mem_free(void *p, size_t n)
{
	if (p)
		sa_syscall6(SYS_munmap, (long)p, (long)sa_mem_round(n), 0, 0, 0, 0);
}

/*
 * np_enter/np_exit - bracket a libc call that libsa makes while it holds a
 * lock or is in the middle of updating VP state: a preemption tick that
 * lands in libc meanwhile must not preempt (upcall/upcall.c).  They nest.
 * Only rare paths need them (allocations, mappings); system calls and
 * clock reads are inline or in the vDSO.
 */
static __always_inline struct vp *np_enter(void)
{
	struct vp *v = vp_self();

	if (v) {
		__atomic_store_n(&v->np, v->np + 1, __ATOMIC_RELAXED); /* the watchdog reads it */
		asm volatile("" ::: "memory");
	}
	return v;
}

static __always_inline void np_exit(struct vp *v)
{
	if (v) {
		asm volatile("" ::: "memory");
		__atomic_store_n(&v->np, v->np - 1, __ATOMIC_RELAXED);
	}
}

/*
 * now_ns - CLOCK_MONOTONIC in ns, through the vDSO's clock_gettime called
 * directly (found at start-up by upcall.c), or the system call.  The vDSO
 * is not libsa's text, so the read is bracketed like a libc call: a tick
 * that lands in it then leaves libsa alone.
 */
static __always_inline uint64_t now_ns(void)
{
	struct timespec ts;
	struct vp *np = np_enter();

	if (likely(sa_vdso_clock_gettime))
		sa_vdso_clock_gettime(CLOCK_MONOTONIC, &ts);
	else
		sa_syscall6(SYS_clock_gettime, CLOCK_MONOTONIC, (long)&ts, 0, 0, 0, 0);
	np_exit(np);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

int rt_ensure(void);
static __always_inline int rt_start(void)
{
	if (likely(atomic_load_explicit(&rt.state, memory_order_acquire) == RT_RUNNING))
		return 0;
	return rt_ensure();
}

/* tls.c: the per-uthread TLS mode */
int tls_enable(void);
int tls_alloc(struct uthread *ut);
void tls_adopt(struct uthread *ut);
void tls_free(struct uthread *ut);
void tls_thread_start(void);
void tls_thread_exit(void);
extern void (*tls_exit_hook)(void);
void tls_record_act(struct act *a);
void tls_set_fs(void *tp);
sa_uthread_t tls_handle_of(const void *tp);
long tls_tcb_find(const void *tp, const void *value);
void __tls_switch(struct vp *vp, struct uthread *next);

/*
 * tls_switch - point %fs at @next's TLS block if either side of the switch
 * from @prev runs on a block of its own.  Fast path: a flag test on line 0,
 * which switch_to() reads anyway; slow path out of line (tls.c).
 * WARNING: from here to sa_ctx_switch() no code may touch %fs-relative TLS.
 */
static __always_inline void tls_switch(struct vp *vp, struct uthread *prev,
				       struct uthread *next)
{
	if (unlikely((prev->flags | next->flags) & UTF_TLS))
		__tls_switch(vp, next);
}

/*
 * act.c: the signal mask of the kernel threads that carry VPs.  Nobody
 * sets one in a native program (generation 0: carriers keep the mask they
 * were made with); the LD_PRELOAD shim sets the signals that every
 * uthread blocks (preload/signal.c).
 */
extern _Atomic uint32_t act_sigmask_gen;
void __act_sigmask_sync(uint32_t gen);
void act_sigmask_set(uint64_t mask, bool kick);

/*
 * act_sigmask_sync - the calling carrier applies the newest carrier mask.
 * Fast path: one load and a branch while none was ever set; then a load
 * of the activation's own generation.  Slow path: one system call.
 */
static __always_inline void act_sigmask_sync(void)
{
	uint32_t g = atomic_load_explicit(&act_sigmask_gen, memory_order_acquire);

	if (unlikely(g))
		__act_sigmask_sync(g);
}

/* sched.c */
void sched_ready(struct uthread *ut);
void sched_ready_new(struct uthread *ut);
void sched_park_unlock(spinlock_t *lock);
void sched_exit_switch(struct uthread *me) __attribute__((noreturn));
void sched_yield_cur(void);
void sched_boost(struct uthread *ut);
void sched_set_prio(struct uthread *ut, int prio);
void sched_finish_switch(void);
void sched_idle_loop(struct vp *vp);
void sched_wake_all_idle(void);
struct vp *sched_vp_awake(struct vp *vp);
void sched_vp_dormant(struct vp *vp, uint32_t how);
void sched_vp_awoken(struct vp *vp);
bool sched_kick_parked(bool ring_only);
void sched_vp_init(struct vp *vp, unsigned index);

/* Sanitizer fiber annotations: stubs unless built with sanitizers. */
#ifdef SA_SANITIZE
/*
 * The sanitizer runtimes are not libsa's text, and they take locks of
 * their own: libsa's calls into them are bracketed like libc calls, so
 * that neither a tick nor the blocked upcall's watchdog acts there.
 */
void __san_fiber_create(struct uthread *ut);
void __san_fiber_destroy(struct uthread *ut);
void __san_switch_begin(struct uthread *prev, struct uthread *next, bool prev_dies);
void __san_switch_end(struct uthread *cur);
void __san_thread_adopt(struct uthread *ut);
void __san_stack_reuse(void *lo, void *hi);

/* Not np_enter(): its vp_self() could deliver the unblocked upcall in the
 * middle of a switch (act_unblocked() itself calls these). */
#define SAN_NP(call)                                                          \
	do {                                                                  \
		struct vp *np__ = vp_self_nodivert();                         \
		if (np__)                                                     \
			__atomic_store_n(&np__->np, np__->np + 1, __ATOMIC_RELAXED); \
		call;                                                         \
		np_exit(np__);                                                \
	} while (0)

static inline void san_fiber_create(struct uthread *ut)
{
	SAN_NP(__san_fiber_create(ut));
}

static inline void san_fiber_destroy(struct uthread *ut)
{
	SAN_NP(__san_fiber_destroy(ut));
}

static inline void san_switch_begin(struct uthread *prev, struct uthread *next,
				    bool prev_dies)
{
	SAN_NP(__san_switch_begin(prev, next, prev_dies));
}

static inline void san_switch_end(struct uthread *cur)
{
	SAN_NP(__san_switch_end(cur));
}

static inline void san_thread_adopt(struct uthread *ut)
{
	SAN_NP(__san_thread_adopt(ut));
}

static inline void san_stack_reuse(void *lo, void *hi)
{
	SAN_NP(__san_stack_reuse(lo, hi));
}
#else
static inline void san_fiber_create(struct uthread *ut) { (void)ut; }
static inline void san_fiber_destroy(struct uthread *ut) { (void)ut; }
static inline void san_switch_begin(struct uthread *prev, struct uthread *next,
				    bool prev_dies)
{
	(void)prev; (void)next; (void)prev_dies;
}
static inline void san_switch_end(struct uthread *cur) { (void)cur; }
static inline void san_thread_adopt(struct uthread *ut) { (void)ut; }
static inline void san_stack_reuse(void *lo, void *hi) { (void)lo; (void)hi; }
#endif

/* ========================================================================
 * Sync-object helpers
 */

/* check_magic - @word must hold @magic in its upper 24 bits. */
static __always_inline bool check_magic(uint32_t word, uint32_t magic)
{
	return (word & 0xffffff00u) == magic;
}

/* mutex.c: what condition variables need of a mutex */
uint32_t mutex_unlock_full(sa_mutex_t *pm);
int mutex_relock_count(sa_mutex_t *pm, uint32_t count);
/* mutex.c: the end of an owner of robust mutexes */
void mutex_robust_owner_exit(struct uthread *ut);
bool mutex_owned_by_self(sa_mutex_t *pm);
bool mutex_valid_obj(sa_mutex_t *pm);

#endif /* SA_DEFS_H */
