/* upcall.h - the upcall interface: four events from a backend to the scheduler */
#ifndef SA_UPCALL_H
#define SA_UPCALL_H

#include <signal.h>
#include <ucontext.h>

#include "defs.h"

/*
 * The events (DESIGN.md, "The four upcalls").  A backend detects them and
 * calls the scheduler's handler, which is the one place each is handled:
 *
 *   add-processor  sched_upcall_add_processor()  an activation starts
 *                  carrying a VP: it runs the VP's idle loop, which runs
 *                  uthreads.
 *   blocked        sched_upcall_blocked()        the activation carrying a
 *                  VP is stuck in the kernel; the caller, a fresh
 *                  activation, carries the VP from now on.
 *   unblocked      sched_upcall_unblocked()      the stuck activation's
 *                  kernel work finished; its uthread goes back to a run
 *                  queue and the activation becomes a spare.
 *   preempted      sched_upcall_preempted()      the uthread running on a
 *                  VP has had its quantum (emulated: a CPU-time timer
 *                  signal; kernel: the activation lost its processor), or
 *                  (io) I/O completions wait for a scheduler pass.
 */

/* A backend: how one kind of kernel support delivers the events. */
struct upcall_backend {
	const char *name;
	int id;                          /* SA_BACKEND_* of sa.h */
	/* 0 if it can run on this kernel, else -errno saying why not. */
	int (*probe)(void);
	/* Process-wide set-up, once, before any VP runs. */
	int (*start)(void);
	/* Once the VPs run (the emulated backend's watchdog starts here). */
	int (*run)(void);
	/* On activation @a's kernel thread when it starts carrying a VP
	 * (@a->vp); undone by leave when it stops. */
	int (*enter)(struct act *a);
	void (*leave)(struct act *a);
	/* @a's VP went to a spare while @a is in the kernel. */
	void (*displaced)(struct act *a);
	/* In a child of fork(): forget the parent's kernel state. */
	void (*fork_child)(void);
	/* Optional (NULL: the futex pool of act.c).  Wait as a spare until
	 * given a VP (returned) or the runtime stops (NULL). */
	struct vp *(*spare_wait)(struct act *a);
	/* Optional: let every spare end (the runtime stops). */
	void (*wake_spares)(void);
	/* Optional: the process exits from the calling thread. */
	void (*exiting)(void);
};

extern const struct upcall_backend upcall_emulated;
extern const struct upcall_backend upcall_kernel;

/* The backend in use, chosen by upcall_init(). */
extern const struct upcall_backend *upcall_backend;

/* Preemption quantum in ns (0: off), from SA_QUANTUM_US. */
extern uint64_t upcall_quantum_ns;

/*
 * Testing only (SA_DEBUG_TICK_US, private): the emulated backend ticks on
 * the wall clock every upcall_quantum_ns, and every tick counts as the end
 * of a quantum with work waiting, so that ticks land everywhere, critical
 * sections included (tests/test_critsec.c).
 */
extern bool upcall_tick_force;

/*
 * The emulated backend's watchdog backs off while every VP is parked; a
 * VP that leaves its park calls upcall_wd_kick() when the flag is set.
 */
extern _Atomic uint32_t upcall_wd_backoff;
void upcall_wd_kick(void);

extern unsigned upcall_nvps;     /* VPs the runtime starts with */
int upcall_init(unsigned nvps);
void upcall_fork_child(void);

/* Shared by both backends (emulated.c): the tick handler and timers, and
 * the watchdog (with @takeover it delivers blocked and unblocked). */
int upcall_tick_start(bool always);
int upcall_tick_enter(struct act *a);
void upcall_tick_leave(struct act *a);
int upcall_watchdog_start(bool takeover);

/*
 * The kernel backend's hooks into the scheduler (kernel.c), called only
 * while upcall_kernel_on: the idle loop looks at the event ring, a VP with
 * nothing to run waits in the kernel (SA_CTL_IDLE) and is woken there, and
 * a uthread whose activation is parked in the kernel is resumed by
 * switching to that activation (act_resume_parked()).
 */
extern bool upcall_kernel_on;
void kernel_poll(void);
bool kernel_pending(void);
bool kernel_park(uint64_t deadline);
void kernel_kick(struct vp *vp);
void kernel_quiet(struct vp *vp, bool on);
uint64_t kernel_ring_deadline(uint64_t deadline);
long kernel_switch(struct act *to);
bool kernel_self_claim(struct act *a);
bool kernel_give_up(struct vp *vp);
void kernel_want_more(void);
void kernel_spin_help(void);
void act_resume_parked(struct vp *vp, struct uthread *prev, struct uthread *next,
		       bool prev_dies);
void act_carry_parked(struct act *c, struct vp *vp);
void act_takeover_commit(struct act *a);
void act_run_spare(struct act *a) __attribute__((noreturn));
int env_us(const char *name, unsigned long def_us, uint64_t *out);
int upcall_enter(struct act *a);
void upcall_leave(struct act *a);

/* Activations (act.c). */
struct act *act_self(void);
struct act *act_new(void);
void act_thread_setup(struct act *a);
void act_carry(struct act *a, struct vp *vp);
int act_carry_try(struct act *a, struct vp *vp);
void act_give_up(struct act *a, struct vp *vp) __attribute__((noreturn));
int act_start_thread(struct act *a, struct vp *vp);
void act_sigmask_internal(sigset_t *old);
struct act *act_spare_get(void);
void act_spare_give(struct act *s, struct vp *vp);
void act_wake_spares(void);
void act_takeover_prepare(void);
bool act_takeover_begin(struct act *a);
void act_takeover_end(struct act *a, struct act *s, bool commit);
void upcall_stats(struct sa_stats *st);

/* Scheduler side (sched/sched.c and critsec/critsec.c). */
void sched_upcall_add_processor(struct vp *vp);
void sched_upcall_preempted(struct vp *vp, ucontext_t *uc, bool io);
bool sched_redirect_to_stub(struct uthread *ut, ucontext_t *uc);
int upcall_run(void);

/* Where code is, for deciding whether a tick may preempt (upcall.c). */
bool text_in_libsa(uintptr_t pc);
bool text_in_runtime(uintptr_t pc);
bool text_in_sanitizer(uintptr_t pc);
int text_ranges_init(void);

/* The preemption stub (switch.S) and what it calls (sched.c). */
void sa_preempt_stub(void);
void sched_preempt_yield(void);
extern size_t sa_xsave_size;

#endif /* SA_UPCALL_H */
