/* shim.h - what the files of libsa-preload.so share */
#ifndef SA_PRELOAD_SHIM_H
#define SA_PRELOAD_SHIM_H

#include <semaphore.h>
#include <signal.h>

#include "defs.h"
#include "preload/real.h"

enum { PRELOAD_OFF = 0, PRELOAD_STARTING, PRELOAD_ON };

extern _Atomic uint32_t preload_state;
void __preload_start(void);

/*
 * preload_start - make sure the shim runs: fast path one load and a branch;
 * slow path (the first call in the process) starts the runtime.
 */
static __always_inline void preload_start(void)
{
	if (unlikely(atomic_load_explicit(&preload_state, memory_order_acquire) != PRELOAD_ON))
		__preload_start();
}

/* cancel.c: per-uthread cancellation state, in the shim's static TLS */
struct preload_cancel {
	_Atomic uint32_t pending;   /* pthread_cancel() asked */
	uint32_t disabled;          /* PTHREAD_CANCEL_DISABLE */
	uint32_t async;             /* PTHREAD_CANCEL_ASYNCHRONOUS */
};
extern __thread struct preload_cancel preload_cancel_tls __attribute__((tls_model("initial-exec")));

/* signal.c: pthread_kill's pending signals and the mask, per uthread */
struct preload_sig {
	_Atomic uint64_t pending;   /* signal n is bit n - 1 */
	_Atomic uint64_t fwd;       /* of which it may have held ones given to it */
	uint64_t mask;              /* valid once mask_valid */
	bool mask_valid;
	bool counted;               /* counted in the carriers' mask, as: */
	uint64_t counted_mask;
	uint32_t handled;           /* handlers run on this uthread */
	uint32_t handled_intr;      /* of which without SA_RESTART */
	bool eintr_any;             /* in a wait with a mask: any handler ends it */
	/* while it waits in sigwait() and its kin (under signal.c's lock) */
	bool sw_on;
	uint64_t sw_want;
	void *sw_tp;
	struct preload_sig *sw_next;
};
extern __thread struct preload_sig preload_sig_tls __attribute__((tls_model("initial-exec")));
void preload_signal_init(void);
bool preload_sig_deliver(void);
void preload_sig_inherit(struct preload_sig *child);
void preload_sig_uninherit(struct preload_sig *child);
bool preload_sig_mask_swap(const sigset_t *set, uint64_t *old);
void preload_sig_mask_restore(uint64_t old);
bool preload_user_handler(int sig, uintptr_t *fn, int *flags);
bool preload_sig_here(int sig, const siginfo_t *si);
void preload_sig_forward(int sig, const siginfo_t *si);
void preload_sig_forwarder_start(void);
void __preload_testcancel(void);
bool preload_cancel_wanted(void);
/* What preload_wait_intr() ran: the call ends, or waits again. */
enum preload_intr {
	PRELOAD_INTR_NONE = 0,     /* nothing: wait again */
	PRELOAD_INTR_RESTART,      /* handlers, all with SA_RESTART */
	PRELOAD_INTR_EINTR,        /* a handler without SA_RESTART */
};
enum preload_intr preload_wait_intr(void);
void preload_interrupt(pthread_t t);
void preload_cancel_init(void);

/* thread.c: per-uthread scheduling parameters and CPU set, as reported */
struct preload_sched {
	int policy;                 /* SCHED_OTHER (0) until set */
	int prio;
	bool has_cpus;              /* else: the process's CPU set */
	cpu_set_t cpus;
};
extern __thread struct preload_sched preload_sched_tls __attribute__((tls_model("initial-exec")));
void preload_thread_init(void);
struct preload_sched *preload_sched_of(pthread_t t);
int preload_sched_check(int policy, int prio);
int preload_cpus_check(size_t size, const cpu_set_t *set);
int preload_cpus_of(pthread_t t, size_t size, cpu_set_t *set);

int preload_spawn(sa_uthread_t *h, sa_attr_t *a, void *(*fn)(void *), void *arg,
		  const struct preload_sched *sched, void **tp);

/*
 * preload_testcancel - at a cancellation point: act on a pending request.
 * Fast path: one TLS load and a branch.
 */
static __always_inline void preload_testcancel(void)
{
	if (unlikely(atomic_load_explicit(&preload_cancel_tls.pending, memory_order_relaxed) |
		     atomic_load_explicit(&preload_sig_tls.pending, memory_order_relaxed)))
		__preload_testcancel();
}

/*
 * preload_sig_poll - run the calling uthread's pending signals that its
 * mask lets through (pthread_kill()'s).  Fast path: one TLS load and a
 * branch.
 */
static __always_inline void preload_sig_poll(void)
{
	if (unlikely(atomic_load_explicit(&preload_sig_tls.pending, memory_order_relaxed)))
		preload_sig_deliver();
}

/*
 * preload_errno_ret - a libsa result (>= 0, or -errno) as the C library
 * returns it: the value, or -1 with errno set.
 */
static __always_inline long preload_errno_ret(long r)
{
	if (likely(r >= 0))
		return r;
	errno = (int)-r;
	return -1;
}

/* sync.c */
void preload_sync_init_real(void);
/* io.c */
void preload_io_init(void);
void preload_wait_begin(void);
/* preload.c */
void *preload_real_sym(const char *name);
int preload_real_sem_init(sem_t *s, int pshared, unsigned value);

#endif /* SA_PRELOAD_SHIM_H */
