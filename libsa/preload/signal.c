/* signal.c - libsa-preload.so: signals to uthreads, per-uthread masks, signals sent to the process */

/*
 * Signals to a uthread.  A uthread has no kernel thread of its own for the
 * kernel to deliver a signal to, so the shim delivers the signals
 * pthread_kill() aims at a uthread itself.  The request is a bit in the
 * target's pending set (struct preload_sig, in the shim's static TLS,
 * reached through the descriptor); the target runs the handler on its own
 * stack and TLS at the next point where it enters the shim's blocking or
 * cancellation calls (preload_testcancel() checks both words), when it
 * unblocks the signal, and at once if it waits (preload_interrupt(),
 * cancel.c).  What the wait does after the handler is what it does under
 * NPTL: a routed I/O call and sem_wait fail with EINTR unless the handler
 * has SA_RESTART, in which case the call goes on; the sleeps and
 * sem_timedwait fail with EINTR either way (the kernel never restarts a
 * wait with a timeout), nanosleep with the time left; a condition wait
 * returns 0 (a spurious wakeup, which POSIX permits); a join goes on
 * waiting.  A blocked signal wakes nobody: the wait goes on.  A uthread
 * that computes without such calls sees it at its next one.
 *
 * What a signal does is what its disposition says at delivery: a handler
 * runs (with the signal itself blocked in the uthread's mask meanwhile,
 * unless SA_NODEFER); SIG_IGN, or a default action of ignoring, drops it;
 * a default action that ends or stops the process is taken at once by
 * sending the signal to the process, which is what it would do to it.
 *
 * Masks.  Each uthread has its own (preload_sig.mask): pthread_sigmask()
 * and sigprocmask() set and report it, a new thread starts with its
 * creator's.  The kernel knows only the masks of kernel threads, and many
 * uthreads share a few carriers, so a carrier's mask cannot be the mask of
 * the uthread it happens to run.  It is the set of signals that EVERY live
 * uthread blocks (the intersection), because that is exactly the set
 * POSIX says must stay pending for the process when sent to it:
 *
 *   - a signal some uthread does not block reaches a carrier (none blocks
 *     it), and the wrapper (below) runs it there or forwards it to that
 *     uthread;
 *   - a signal every uthread blocks stays pending in the kernel, for the
 *     process: sigpending() reports it, sigwait() and a signalfd take it,
 *     and it is delivered when a uthread unblocks it (that uthread's mask
 *     change shrinks the intersection, and its own carrier applies the new
 *     mask at once, inside the call, so the kernel delivers it there).
 *
 * The intersection is kept by counting (acct_move()): per signal, how many
 * counted uthreads block it, and how many are counted; a uthread counts
 * from its creation (its creator counts it, before it runs) to its end
 * (tls_exit_hook), and main from its first mask call or thread creation.
 * A change that alters the intersection publishes it with a generation
 * (act_sigmask_set(), upcall/act.c); each carrier applies it itself at its
 * next context switch (sched_finish_switch() compares one word) and before
 * its VP parks, never a system call per switch; the caller's carrier
 * applies it at once.  When the intersection grows, parked VPs are woken
 * to apply it, since a stale carrier would take a signal every uthread now
 * blocks.  Spares block every signal they may; libsa's own threads (the
 * watchdog, the forwarder, the I/O pool) block the program's signals.
 * Faults, SIGKILL, SIGSTOP, the C library's two internal signals and
 * libsa's SIGURG are never in a carrier's mask.  Rejected: one kernel
 * thread that alone leaves signals unblocked (a signal would never run on
 * the uthread it interrupts, so a uthread spinning on a flag that its
 * handler sets would spin forever); and setting the carrier's mask at each
 * switch (a system call per switch).
 *
 * The wrapper.  For a signal sent to the process (kill(), alarm(),
 * timers, sigqueue()), the kernel picks a carrier that does not block it.
 * What it interrupts there may be a uthread that does not block the
 * signal, on its own TLS: the handler runs right there, as on a thread
 * the kernel chose.  Anything else - a VP's idle or scheduler context, a
 * spare, a uthread that blocks the signal - is no thread of the program,
 * or the wrong one: the shim's wrapper (preload/io.c) forwards the signal
 * instead (preload_sig_here(), async-signal-safe): it queues the signal
 * with its siginfo in a slot (fwd_q) and wakes the forwarder, a kernel
 * thread of the shim's that blocks every signal.  It picks a uthread that
 * does not block the signal as the kernel picks a thread - the main one if
 * it can, else one that waits, else any (ut_find()) - gives it the slot,
 * and interrupts it as pthread_kill() does: a sleep or a wait of that
 * uthread ends as a signal ends it under NPTL, and the handler sees the
 * original siginfo.  A slot no uthread takes stays held for the process
 * (sigpending() reports it, sigwait() takes it, the first uthread that
 * unblocks it runs it); that happens only in the moment after the
 * intersection grew and before every carrier applied it.  A signal a
 * uthread sent itself with raise() (SI_TKILL, to its carrier) and blocks
 * waits in its own pending set.  A standard signal already held or given
 * and not yet run is not queued again, as in the kernel; each instance of
 * a real-time signal is queued with its own value, up to FWD_SLOTS.
 *
 * Waiting for signals.  sigwait(), sigwaitinfo() and sigtimedwait() park
 * the uthread (sig_wait()): it takes a signal of its set from its own
 * pending set, from the held slots, or from the kernel (a look that does
 * not wait, on its carrier); otherwise it registers its set and waits.
 * The forwarder waits in rt_sigtimedwait() for the union of the
 * registered sets - signals every carrier blocks, which the kernel thus
 * gives to it - holds what it takes in a slot and wakes the waiters; its
 * own wake-up is our SIGURG sent to it alone.  sigsuspend() and the waits
 * that take a mask (pselect, ppoll, epoll_pwait) set the uthread's mask
 * for the wait, which the intersection follows, and end with EINTR after
 * any handler, as the kernel never restarts them.
 */

#define SA_PRELOAD_NO_REDIRECT
#include "preload/shim.h"

#include <signal.h>
#include <sys/syscall.h>

#include "io/io.h"

__thread struct preload_sig preload_sig_tls __attribute__((tls_model("initial-exec")));

static long sig_off; /* of preload_sig_tls from the descriptor */

static _Atomic uint32_t fwd_word;   /* the forwarder has work to do */
static _Atomic uint32_t fwd_on;     /* the forwarder runs */
static _Atomic pid_t fwd_tid;       /* its kernel thread */
static void fwd_fork_child(void);
static void sig_exit(void);

static struct {
	int (*pthread_kill)(pthread_t, int);
	int (*pthread_sigmask)(int, const sigset_t *, sigset_t *);
	int (*sigprocmask)(int, const sigset_t *, sigset_t *);
	int (*sigpending)(sigset_t *);
	int (*sigsuspend)(const sigset_t *);
	int (*sigwait)(const sigset_t *, int *);
	int (*sigwaitinfo)(const sigset_t *, siginfo_t *);
	int (*sigtimedwait)(const sigset_t *, siginfo_t *, const struct timespec *);
} real_s;

void preload_signal_init(void)
{
	real_s.pthread_kill = preload_real_sym("pthread_kill");
	real_s.pthread_sigmask = preload_real_sym("pthread_sigmask");
	real_s.sigprocmask = preload_real_sym("sigprocmask");
	real_s.sigpending = preload_real_sym("sigpending");
	real_s.sigsuspend = preload_real_sym("sigsuspend");
	real_s.sigwait = preload_real_sym("sigwait");
	real_s.sigwaitinfo = preload_real_sym("sigwaitinfo");
	real_s.sigtimedwait = preload_real_sym("sigtimedwait");
	sig_off = (char *)&preload_sig_tls - (char *)pthread_self();
	tls_exit_hook = sig_exit;
	pthread_atfork(NULL, NULL, fwd_fork_child);
}

static struct preload_sig *sig_of(pthread_t t)
{
	return (struct preload_sig *)((char *)t + sig_off);
}

static uint64_t bit(int sig)
{
	return 1ull << (sig - 1);
}

/* What no mask holds back, and what sigwait() never takes: SIGKILL,
 * SIGSTOP, and the C library's own two (cancellation, setxid). */
#define SIG_UNMASKABLE (bit(SIGKILL) | bit(SIGSTOP) | bit(32) | bit(33))

static uint64_t set_bits(const sigset_t *set)
{
	uint64_t m = 0;

	for (int sig = 1; sig <= 64 && sig < _NSIG; sig++)
		if (sigismember(set, sig) == 1)
			m |= bit(sig);
	return m;
}

static void bits_set(uint64_t m, sigset_t *set)
{
	sigemptyset(set);
	for (int sig = 1; sig <= 64 && sig < _NSIG; sig++)
		if (m & bit(sig))
			sigaddset(set, sig);
}

/* ------------------------------------------------------------------------
 * The carriers' mask: the signals every live uthread blocks
 */

static spinlock_t acct_lock;
static uint32_t acct_live;     /* uthreads counted */
static uint32_t acct_blk[64];  /* of which block signal n + 1 */
static uint64_t acct_any;      /* signals one of them blocks */
static uint64_t acct_all;      /* signals all of them block: the carriers' mask */

/*
 * acct_move - a counted mask goes from @old to @new, and @dlive uthreads
 * join (1) or leave (-1) the count.  When the intersection changes, the
 * carriers get it (act_sigmask_set()): at once on the caller's, at their
 * next switch elsewhere, and parked VPs wake to apply it when it grew (a
 * stale carrier would take a signal every uthread now blocks).
 */
static void acct_move(uint64_t old, uint64_t new, int dlive)
{
	uint64_t all = 0;

	spin_lock(&acct_lock);
	for (uint64_t b = old & ~new; b; b &= b - 1) {
		int i = __builtin_ctzll(b);

		if (--acct_blk[i] == 0)
			acct_any &= ~(1ull << i);
	}
	for (uint64_t b = new & ~old; b; b &= b - 1) {
		int i = __builtin_ctzll(b);

		if (acct_blk[i]++ == 0)
			acct_any |= 1ull << i;
	}
	acct_live += (uint32_t)dlive;
	for (uint64_t b = acct_live ? acct_any : 0; b; b &= b - 1) {
		int i = __builtin_ctzll(b);

		if (acct_blk[i] == acct_live)
			all |= 1ull << i;
	}
	if (all != acct_all) {
		bool grew = all & ~acct_all;

		acct_all = all;
		act_sigmask_set(all, grew);
	}
	spin_unlock(&acct_lock);
}

/* my_mask - the calling uthread's mask, read from its carrier the first
 * time (the main thread's, set before the runtime started), and counted
 * in the carriers' mask from then on. */
static uint64_t *my_mask(void)
{
	struct preload_sig *s = &preload_sig_tls;

	if (unlikely(!s->mask_valid)) {
		sigset_t cur;

		s->mask = 0;
		if (real_s.pthread_sigmask(SIG_BLOCK, NULL, &cur) == 0)
			s->mask = set_bits(&cur) & ~SIG_UNMASKABLE;
		s->mask_valid = true;
	}
	if (unlikely(!s->counted) && vp_self()) {
		s->counted = true;
		s->counted_mask = s->mask;
		acct_move(0, s->mask, 1);
	}
	return &s->mask;
}

/* mask_store - the calling uthread's mask is @m from now on. */
static void mask_store(uint64_t m)
{
	struct preload_sig *s = &preload_sig_tls;

	s->mask = m;
	if (s->counted && m != s->counted_mask) {
		acct_move(s->counted_mask, m, 0);
		s->counted_mask = m;
	}
}

/** preload_sig_inherit - the mask a thread created now starts with; it
 * counts in the carriers' mask from now on. */
void preload_sig_inherit(struct preload_sig *child)
{
	memset(child, 0, sizeof(*child));
	if (!vp_self())
		return;
	child->mask = *my_mask();
	child->mask_valid = true;
	child->counted = true;
	child->counted_mask = child->mask;
	acct_move(0, child->mask, 1);
}

/** preload_sig_uninherit - the thread preload_sig_inherit() was for was
 * not made after all. */
void preload_sig_uninherit(struct preload_sig *child)
{
	if (child->counted)
		acct_move(child->counted_mask, 0, -1);
}

/* ------------------------------------------------------------------------
 * Signals sent to the process that the shim holds: each one with its
 * siginfo, held for the process (no uthread took it yet) or given to a
 * uthread (owned) until that uthread runs it.  A standard signal already
 * held or given and not yet run is not queued again, as the kernel does;
 * a real-time signal queues each instance, up to FWD_SLOTS in all.
 */

#define FWD_SLOTS 128
enum { SLOT_FREE = 0, SLOT_BUSY, SLOT_HELD, SLOT_OWNED };

struct fwd_slot {
	_Atomic uint32_t state;
	int sig;
	uint64_t seq;          /* arrival order */
	void *owner;           /* SLOT_OWNED: the descriptor of its uthread */
	siginfo_t si;
};

static struct fwd_slot fwd_q[FWD_SLOTS];
static _Atomic uint64_t fwd_seq;
static _Atomic uint32_t fwd_held; /* slots SLOT_HELD: the fast paths' hint */

static void slot_give(int i, void *tp);

/* slot_put - hold @sig, sent to the process, or with @tp give it to the
 * uthread of descriptor @tp.  Async-signal-safe. */
static bool slot_put(int sig, const siginfo_t *si, void *tp)
{
	if (sig < 32) {
		for (int i = 0; i < FWD_SLOTS; i++) {
			uint32_t st = atomic_load_explicit(&fwd_q[i].state, memory_order_acquire);

			if ((st == SLOT_HELD || st == SLOT_OWNED) && fwd_q[i].sig == sig)
				return true; /* pending already: one is all it keeps */
		}
	}
	for (int i = 0; i < FWD_SLOTS; i++) {
		uint32_t free = SLOT_FREE;

		if (!atomic_compare_exchange_strong(&fwd_q[i].state, &free, SLOT_BUSY))
			continue;
		fwd_q[i].sig = sig;
		fwd_q[i].si = *si;
		fwd_q[i].owner = NULL;
		fwd_q[i].seq = atomic_fetch_add(&fwd_seq, 1);
		if (tp) {
			slot_give(i, tp);
			return true;
		}
		atomic_fetch_add(&fwd_held, 1);
		atomic_store_explicit(&fwd_q[i].state, SLOT_HELD, memory_order_release);
		return true;
	}
	return false; /* full: lost, as the kernel refuses one over its limit */
}

/*
 * slot_claim - the oldest slot in @state whose signal is in @want (and
 * whose owner is @owner, for SLOT_OWNED), now SLOT_BUSY and the caller's;
 * -1 if none.
 */
static int slot_claim(uint32_t from, uint64_t want, const void *owner)
{
	for (;;) {
		uint32_t state = from;
		int best = -1;

		for (int i = 0; i < FWD_SLOTS; i++) {
			struct fwd_slot *q = &fwd_q[i];

			if (atomic_load_explicit(&q->state, memory_order_acquire) != from ||
			    !(want & bit(q->sig)) || (from == SLOT_OWNED && q->owner != owner))
				continue;
			if (best < 0 || q->seq < fwd_q[best].seq)
				best = i;
		}
		if (best < 0)
			return -1;
		if (atomic_compare_exchange_strong(&fwd_q[best].state, &state, SLOT_BUSY)) {
			if (from == SLOT_HELD)
				atomic_fetch_sub(&fwd_held, 1);
			return best;
		}
		/* Another took it first: look again. */
	}
}

/* slot_free - take slot @i's siginfo and free it. */
static void slot_free(int i, siginfo_t *si)
{
	if (si)
		*si = fwd_q[i].si;
	atomic_store_explicit(&fwd_q[i].state, SLOT_FREE, memory_order_release);
}

/* slot_give - slot @i (the caller's) goes to the uthread of descriptor @tp. */
static void slot_give(int i, void *tp)
{
	struct preload_sig *s = sig_of((pthread_t)tp);
	uint64_t b = bit(fwd_q[i].sig);

	fwd_q[i].owner = tp;
	atomic_store_explicit(&fwd_q[i].state, SLOT_OWNED, memory_order_release);
	atomic_fetch_or(&s->fwd, b);
	atomic_fetch_or(&s->pending, b);
}

/* slot_owned_any - the uthread of @tp has a slot of @sig to run. */
static bool slot_owned_any(const void *tp, int sig)
{
	for (int i = 0; i < FWD_SLOTS; i++)
		if (atomic_load_explicit(&fwd_q[i].state, memory_order_acquire) == SLOT_OWNED &&
		    fwd_q[i].owner == tp && fwd_q[i].sig == sig)
			return true;
	return false;
}

/*
 * take_fwd - the calling uthread runs or takes @sig: the siginfo of its
 * oldest slot of @sig in @si, if it has one (true); its pending bit stays
 * set while it has more.
 */
static bool take_fwd(int sig, siginfo_t *si)
{
	struct preload_sig *s = &preload_sig_tls;
	void *me = (void *)pthread_self();
	int i;

	if (!(atomic_load(&s->fwd) & bit(sig)))
		return false;
	i = slot_claim(SLOT_OWNED, bit(sig), me);
	if (i < 0) {
		atomic_fetch_and(&s->fwd, ~bit(sig));
		return false;
	}
	slot_free(i, si);
	if (slot_owned_any(me, sig))
		atomic_fetch_or(&s->pending, bit(sig));
	else
		atomic_fetch_and(&s->fwd, ~bit(sig));
	return true;
}

/* claim_held - the calling uthread takes the held signals its mask now
 * lets through, to run them. */
static void claim_held(void)
{
	int i;

	if (likely(!atomic_load_explicit(&fwd_held, memory_order_relaxed)))
		return;
	while ((i = slot_claim(SLOT_HELD, ~*my_mask(), NULL)) >= 0)
		slot_give(i, (void *)pthread_self());
}

/* fwd_wake - the forwarder has work.  Async-signal-safe. */
static void fwd_wake(void)
{
	pid_t tid = atomic_load_explicit(&fwd_tid, memory_order_acquire);

	if (atomic_exchange(&fwd_word, 1) || !tid)
		return;
	sa_syscall6(SYS_tgkill, getpid(), tid, SIGURG, 0, 0, 0);
}

/* ------------------------------------------------------------------------
 * Running a signal on a uthread
 */

/* default_ignored - the default action of @sig is to do nothing. */
static bool default_ignored(int sig)
{
	return sig == SIGCHLD || sig == SIGURG || sig == SIGWINCH || sig == SIGCONT;
}

/* tkill_info - the siginfo of pthread_kill(pthread_self(), @sig). */
static void tkill_info(int sig, siginfo_t *si)
{
	memset(si, 0, sizeof(*si));
	si->si_signo = sig;
	si->si_code = SI_TKILL;
	si->si_pid = getpid();
	si->si_uid = getuid();
}

/*
 * deliver - run @sig's disposition on the calling uthread.  Returns true
 * if a handler without SA_RESTART ran (a wait it interrupted fails with
 * EINTR).
 */
static bool deliver(int sig)
{
	struct sigaction a;
	uintptr_t fn;
	int flags;
	siginfo_t si;
	uint64_t *mask = my_mask(), saved = *mask;

	if (!take_fwd(sig, &si)) /* sent to the process, or else to this thread */
		tkill_info(sig, &si);
	if (!preload_user_handler(sig, &fn, &flags)) {
		if (preload_real.sigaction(sig, NULL, &a))
			return false;
		if (a.sa_handler == SIG_IGN || (a.sa_handler == SIG_DFL && default_ignored(sig)))
			return false;
		if (a.sa_handler == SIG_DFL) {
			kill(getpid(), sig); /* ends or stops the process */
			return false;
		}
		flags = a.sa_flags;
		fn = (flags & SA_SIGINFO) ? (uintptr_t)a.sa_sigaction : (uintptr_t)a.sa_handler;
	}
	/* Blocked while its handler runs, in this uthread's mask only: the
	 * carriers' mask does not follow handlers. */
	if (!(flags & SA_NODEFER))
		*mask |= bit(sig);
	preload_sig_tls.handled++;
	preload_sig_tls.handled_intr += !(flags & SA_RESTART);
	if (flags & SA_SIGINFO)
		((void (*)(int, siginfo_t *, void *))fn)(sig, &si, NULL);
	else
		((void (*)(int))fn)(sig);
	*my_mask() = saved;
	return !(flags & SA_RESTART);
}

/**
 * preload_sig_deliver - run the calling uthread's pending signals that
 * its mask lets through.  Returns true if one interrupts a wait (a
 * handler without SA_RESTART ran).
 */
bool preload_sig_deliver(void)
{
	struct preload_sig *s = &preload_sig_tls;
	bool intr = false;

	if (!vp_self())
		return false;
	for (;;) {
		uint64_t ready = atomic_load(&s->pending) & ~*my_mask();
		int sig;

		if (!ready)
			return intr;
		sig = __builtin_ctzll(ready) + 1;
		atomic_fetch_and(&s->pending, ~bit(sig));
		intr |= deliver(sig);
	}
}

SA_EXPORT int pthread_kill(pthread_t t, int sig)
{
	sa_uthread_t h;
	char name[16];

	preload_start();
	h = t ? tls_handle_of((const void *)t) : 0;
	if (!h)
		return t ? real_s.pthread_kill(t, sig) : ESRCH;
	if (sig < 0 || sig >= _NSIG || sig > 64)
		return EINVAL;
	if (sa_getname(h, name, sizeof(name)) == -ESRCH)
		return ESRCH;
	if (sig == 0)
		return 0;
	atomic_fetch_or(&sig_of(t)->pending, bit(sig));
	if (t == pthread_self()) {
		preload_sig_deliver();
		return 0;
	}
	preload_interrupt(t); /* a target that waits takes it now */
	return 0;
}

/* on_uthread - the caller is a uthread the shim made or adopted. */
static bool on_uthread(void)
{
	return vp_self() && tls_handle_of((const void *)pthread_self());
}

/* mask_set - sigprocmask() on the calling uthread, with @how checked. */
static void mask_set(int how, uint64_t want)
{
	uint64_t m = *my_mask();

	want &= ~SIG_UNMASKABLE;
	if (how == SIG_BLOCK)
		m |= want;
	else if (how == SIG_UNBLOCK)
		m &= ~want;
	else
		m = want;
	mask_store(m);
	claim_held();          /* sent to the process while all blocked them */
	preload_sig_deliver(); /* what it unblocked and is pending */
}

static int set_mask(int how, const sigset_t *set, sigset_t *old,
		    int (*real)(int, const sigset_t *, sigset_t *))
{
	if (!on_uthread())
		return real(how, set, old);
	if (set && how != SIG_BLOCK && how != SIG_UNBLOCK && how != SIG_SETMASK)
		return EINVAL;
	if (old)
		bits_set(*my_mask(), old);
	if (set)
		mask_set(how, set_bits(set));
	return 0;
}

SA_EXPORT int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
	preload_start();
	return set_mask(how, set, old, real_s.pthread_sigmask);
}

static int sigprocmask_ret(int how, const sigset_t *set, sigset_t *old)
{
	return real_s.sigprocmask(how, set, old) ? errno : 0;
}

SA_EXPORT int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	int r;

	preload_start();
	r = set_mask(how, set, old, sigprocmask_ret);
	if (r) {
		errno = r;
		return -1;
	}
	return 0;
}

/*
 * preload_sig_mask_swap - on a uthread: make @set its mask for a wait
 * (sigsuspend, pselect, ppoll, epoll_pwait), its old mask in @old.
 * Returns false on a thread that is not a uthread.
 */
bool preload_sig_mask_swap(const sigset_t *set, uint64_t *old)
{
	if (!on_uthread())
		return false;
	*old = *my_mask();
	mask_set(SIG_SETMASK, set_bits(set));
	return true;
}

/** preload_sig_mask_restore - the mask preload_sig_mask_swap() saved. */
void preload_sig_mask_restore(uint64_t old)
{
	mask_set(SIG_SETMASK, old);
}

SA_EXPORT int sigpending(sigset_t *set)
{
	struct preload_sig *s = &preload_sig_tls;
	uint64_t m = 0;

	preload_start();
	if (!on_uthread())
		return real_s.sigpending(set);
	if (real_s.sigpending(set))
		return -1;
	m = set_bits(set) | (atomic_load(&s->pending) & *my_mask());
	if (atomic_load(&fwd_held))
		for (int i = 0; i < FWD_SLOTS; i++)
			if (atomic_load_explicit(&fwd_q[i].state, memory_order_acquire) == SLOT_HELD)
				m |= bit(fwd_q[i].sig);
	bits_set(m, set);
	return 0;
}

/* ------------------------------------------------------------------------
 * Waiting for signals: sigsuspend, sigwait, sigwaitinfo, sigtimedwait
 */

SA_EXPORT int sigsuspend(const sigset_t *set)
{
	struct preload_sig *s = &preload_sig_tls;
	uint32_t before;
	uint64_t old;

	preload_start();
	if (!set || !on_uthread())
		return real_s.sigsuspend(set);
	preload_sig_forwarder_start();
	preload_testcancel();
	before = s->handled;
	preload_sig_mask_swap(set, &old); /* runs what it lets through */
	while (s->handled == before) {
		if (sleep_until_intr(DEADLINE_NONE - 1) != -EINTR)
			continue;
		if (preload_cancel_wanted()) {
			preload_sig_mask_restore(old);
			preload_testcancel();
		}
		preload_wait_intr();
	}
	preload_sig_mask_restore(old);
	errno = EINTR;
	return -1;
}

/* The uthreads waiting in sigwait() and its kin, for the forwarder. */
static spinlock_t sw_lock;
static struct preload_sig *sw_list;
static _Atomic uint64_t sw_want; /* what they wait for, together */

static void sw_add(uint64_t want)
{
	struct preload_sig *s = &preload_sig_tls;
	uint64_t before;

	spin_lock(&sw_lock);
	if (!s->sw_on) {
		s->sw_on = true;
		s->sw_tp = (void *)pthread_self();
		s->sw_next = sw_list;
		sw_list = s;
	}
	s->sw_want = want;
	before = atomic_fetch_or(&sw_want, want);
	spin_unlock(&sw_lock);
	if (want & ~before)
		fwd_wake(); /* it takes them from the kernel from now on */
}

static void sw_del(void)
{
	struct preload_sig *s = &preload_sig_tls, **pp;
	uint64_t all = 0;

	spin_lock(&sw_lock);
	if (s->sw_on) {
		for (pp = &sw_list; *pp != s; pp = &(*pp)->sw_next)
			;
		*pp = s->sw_next;
		s->sw_on = false;
	}
	for (struct preload_sig *w = sw_list; w; w = w->sw_next)
		all |= w->sw_want;
	atomic_store(&sw_want, all);
	spin_unlock(&sw_lock);
}

/* sw_interrupt - interrupt the waiters for a signal of @sigs. */
static void sw_interrupt(uint64_t sigs)
{
	spin_lock(&sw_lock);
	for (struct preload_sig *w = sw_list; w; w = w->sw_next) {
		if (w->sw_want & sigs) {
			sa_uthread_t h = tls_handle_of(w->sw_tp);

			if (h)
				ut_interrupt(h);
		}
	}
	spin_unlock(&sw_lock);
}

/*
 * take_one - the calling uthread takes a signal of @want without running
 * it: its own (pthread_kill()'s, or given to it), one the shim holds for
 * the process, or one pending in the kernel.  The signal, or 0.
 */
static int take_one(uint64_t want, siginfo_t *si)
{
	struct preload_sig *s = &preload_sig_tls;
	uint64_t own = atomic_load(&s->pending) & want;
	uint64_t kset = want;
	struct timespec zero = { 0 };
	int i, sig;

	if (own) {
		sig = __builtin_ctzll(own) + 1;
		if (atomic_fetch_and(&s->pending, ~bit(sig)) & bit(sig)) {
			if (!take_fwd(sig, si))
				tkill_info(sig, si);
			return sig;
		}
	}
	if (atomic_load(&fwd_held) && (i = slot_claim(SLOT_HELD, want, NULL)) >= 0) {
		sig = fwd_q[i].sig;
		slot_free(i, si);
		return sig;
	}
	sig = (int)sa_syscall6(SYS_rt_sigtimedwait, (long)&kset, (long)si, (long)&zero,
			       sizeof(kset), 0, 0);
	return sig > 0 ? sig : 0;
}

/*
 * sig_wait - sigtimedwait() on a uthread: wait parked until a signal of
 * @set comes for it or for the process, or until @rel (NULL: forever).
 * With @eintr, a handler that ran meanwhile ends the wait with -EINTR.
 * Returns the signal, -EAGAIN or -EINTR.
 */
static int sig_wait(const sigset_t *set, siginfo_t *si, const struct timespec *rel, bool eintr)
{
	uint64_t want = set_bits(set) & ~SIG_UNMASKABLE;
	uint64_t deadline = DEADLINE_NONE - 1;
	siginfo_t mine;
	int r;

	if (!si)
		si = &mine;
	if (rel) {
		if (rel->tv_sec < 0 || rel->tv_nsec < 0 || rel->tv_nsec >= 1000000000L)
			return -EINVAL;
		deadline = now_ns() + (uint64_t)rel->tv_sec * NSEC_PER_SEC + (uint64_t)rel->tv_nsec;
	}
	preload_sig_forwarder_start();
	preload_testcancel();
	sw_add(want);
	for (;;) {
		r = take_one(want, si);
		if (r > 0)
			break;
		if (now_ns() >= deadline) {
			r = -EAGAIN;
			break;
		}
		if (sleep_until_intr(deadline) != -EINTR)
			continue;
		r = take_one(want, si);
		if (r > 0)
			break;
		if (preload_cancel_wanted()) {
			sw_del();
			preload_testcancel();
		}
		if (preload_wait_intr() != PRELOAD_INTR_NONE && eintr) {
			r = -EINTR;
			break;
		}
	}
	sw_del();
	return r;
}

SA_EXPORT int sigwait(const sigset_t *set, int *sig)
{
	int r;

	preload_start();
	if (!on_uthread())
		return real_s.sigwait(set, sig);
	r = sig_wait(set, NULL, NULL, false);
	if (r < 0)
		return -r;
	*sig = r;
	return 0;
}

SA_EXPORT int sigwaitinfo(const sigset_t *set, siginfo_t *si)
{
	preload_start();
	if (!on_uthread())
		return real_s.sigwaitinfo(set, si);
	return (int)preload_errno_ret(sig_wait(set, si, NULL, true));
}

SA_EXPORT int sigtimedwait(const sigset_t *set, siginfo_t *si, const struct timespec *ts)
{
	preload_start();
	if (!on_uthread())
		return real_s.sigtimedwait(set, si, ts);
	return (int)preload_errno_ret(sig_wait(set, si, ts, true));
}

/* sig_exit - a uthread ends: it counts no more in the carriers' mask, it
 * waits for no signal, and the signals given to it and not run go back to
 * the process. */
static void sig_exit(void)
{
	struct preload_sig *s = &preload_sig_tls;
	void *me = (void *)pthread_self();
	bool back = false;
	int i;

	if (s->sw_on)
		sw_del();
	if (s->counted) {
		s->counted = false;
		acct_move(s->counted_mask, 0, -1);
	}
	while (atomic_load(&s->fwd) && (i = slot_claim(SLOT_OWNED, ~0ull, me)) >= 0) {
		atomic_fetch_add(&fwd_held, 1);
		atomic_store_explicit(&fwd_q[i].state, SLOT_HELD, memory_order_release);
		back = true;
	}
	if (back)
		fwd_wake();
}

/* ------------------------------------------------------------------------
 * Signals sent to the process: the wrapper's choice and the forwarder
 */

/* sync_fault - @si reports a fault of the thread that took it. */
static bool sync_fault(int sig, const siginfo_t *si)
{
	return (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE ||
		sig == SIGTRAP) && si->si_code > 0 && si->si_code != SI_KERNEL;
}

/**
 * preload_sig_here - in the shim's wrapper: may the handler of @sig run
 * on what the kernel interrupted?  Yes for a fault, on a uthread that does
 * not block @sig, and on a thread of the program's own.  A signal the
 * calling uthread sent itself (raise()) and blocks waits in its pending
 * set.  Anything else is forwarded.  False when the caller is done with
 * it.  Async-signal-safe.
 */
bool preload_sig_here(int sig, const siginfo_t *si)
{
	struct preload_sig *s = &preload_sig_tls;
	bool uthread;

	if (sync_fault(sig, si))
		return true;
	uthread = tls_handle_of((const void *)pthread_self()) != 0;
	if (si->si_code == SI_TKILL && si->si_pid == getpid()) {
		if (!uthread || !s->mask_valid || !(s->mask & bit(sig)))
			return true;
		atomic_fetch_or(&s->pending, bit(sig)); /* runs when unblocked */
		return false;
	}
	if (!atomic_load_explicit(&fwd_on, memory_order_acquire))
		return true;
	if (!uthread) { /* no uthread's TLS: the program's own thread, or libsa's */
		if (!sa_tls_internal && !vp_tls_word())
			return true;
	} else if (!s->mask_valid || !(s->mask & bit(sig))) {
		/* Earlier instances of a real-time signal given to it run
		 * first: this one queues behind them. */
		if (sig < 32 || !(atomic_load(&s->fwd) & bit(sig)) ||
		    !slot_put(sig, si, (void *)pthread_self()))
			return true;
		return false;
	}
	preload_sig_forward(sig, si);
	return false;
}

/**
 * preload_sig_forward - have the forwarder give @sig, sent to the
 * process, to a uthread that does not block it.  Async-signal-safe.
 */
void preload_sig_forward(int sig, const siginfo_t *si)
{
	slot_put(sig, si, NULL);
	fwd_wake();
}

/* takes - under @ut's lock: its mask lets signal bit *@arg through. */
static bool takes(struct uthread *ut, void *arg)
{
	struct preload_sig *s;

	if (!(ut->flags & UTF_TLS) || !tls_handle_of(ut->tp))
		return false;
	s = sig_of((pthread_t)ut->tp);
	return !__atomic_load_n(&s->mask_valid, __ATOMIC_RELAXED) ||
	       !(__atomic_load_n(&s->mask, __ATOMIC_RELAXED) & *(uint64_t *)arg);
}

/* route - give each held signal to a uthread that takes it; wake the
 * uthreads that wait in sigwait() for the others. */
static void route(void)
{
	uint64_t left = 0;

	if (!atomic_load(&fwd_held))
		return;
	for (int i = 0; i < FWD_SLOTS; i++) {
		struct fwd_slot *q = &fwd_q[i];
		uint32_t held = SLOT_HELD;
		uint64_t b;
		sa_uthread_t h;
		struct uthread *ut;

		if (atomic_load_explicit(&q->state, memory_order_acquire) != SLOT_HELD)
			continue;
		b = bit(q->sig);
		h = ut_find(takes, &b);
		if (!h || !(ut = ut_lookup_lock(h))) {
			left |= b; /* none takes it now: pending for the process */
			continue;
		}
		if (atomic_compare_exchange_strong(&q->state, &held, SLOT_BUSY)) {
			atomic_fetch_sub(&fwd_held, 1);
			slot_give(i, ut->tp);
		}
		spin_unlock(&ut->lock);
		ut_interrupt(h); /* as pthread_kill() does */
		io_interrupt();
	}
	if (left & atomic_load(&sw_want))
		sw_interrupt(left);
}

/*
 * forwarder_main - the forwarder blocks every signal and waits in
 * rt_sigtimedwait() for the signals the sigwait() callers wait for (the
 * kernel holds those for the process, every carrier blocking them) and
 * for its wake-up, our SIGURG sent to it alone.
 */
static void *forwarder_main(void *arg)
{
	(void)arg;
	atomic_store_explicit(&fwd_tid, (pid_t)sa_syscall6(SYS_gettid, 0, 0, 0, 0, 0, 0),
			      memory_order_release);
	for (;;) {
		uint64_t w = (atomic_load(&sw_want) & ~SIG_UNMASKABLE) | bit(SIGURG);
		siginfo_t si;
		long sig;

		atomic_store(&fwd_word, 0);
		route();
		sig = sa_syscall6(SYS_rt_sigtimedwait, (long)&w, (long)&si, 0, sizeof(w), 0, 0);
		if (sig <= 0)
			continue;
		if (sig == SIGURG && si.si_code == SI_TKILL && si.si_pid == getpid())
			continue; /* woken */
		slot_put((int)sig, &si, NULL); /* sent to the process: route() takes it */
	}
	return NULL;
}

/**
 * preload_sig_forwarder_start - start the forwarder, once: when the
 * program installs a handler that the wrapper stands in for, or first
 * waits for a signal.
 */
void preload_sig_forwarder_start(void)
{
	uint32_t off = 0;
	sigset_t all, old;
	pthread_attr_t a;
	pthread_t t;

	if (atomic_load_explicit(&fwd_on, memory_order_acquire) ||
	    !atomic_compare_exchange_strong(&fwd_on, &off, 2)) {
		while (atomic_load_explicit(&fwd_on, memory_order_acquire) == 2)
			sched_yield();
		return;
	}
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&a, 64 * 1024);
	sigfillset(&all);
	real_s.pthread_sigmask(SIG_SETMASK, &all, &old);
	if (preload_real.pthread_create(&t, &a, forwarder_main, NULL)) {
		atomic_store(&fwd_on, 0); /* every handler runs where it lands */
	} else {
		while (!atomic_load_explicit(&fwd_tid, memory_order_acquire))
			sched_yield();
		atomic_store_explicit(&fwd_on, 1, memory_order_release);
	}
	real_s.pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&a);
}

/*
 * fwd_fork_child - the child of fork() has one thread, the caller's: it
 * alone counts in the carriers' mask (again at its next mask call), its
 * kernel thread gets its mask, nothing is held or waited for, and it has
 * no forwarder: start one.
 */
static void fwd_fork_child(void)
{
	struct preload_sig *s = &preload_sig_tls;

	memset(acct_blk, 0, sizeof(acct_blk));
	acct_live = 0;
	acct_any = acct_all = 0;
	atomic_store(&acct_lock, 0);
	atomic_store(&act_sigmask_gen, 0);
	sw_list = NULL;
	atomic_store(&sw_want, 0);
	atomic_store(&sw_lock, 0);
	for (int i = 0; i < FWD_SLOTS; i++)
		atomic_store(&fwd_q[i].state, SLOT_FREE);
	atomic_store(&fwd_held, 0);
	s->sw_on = false;
	atomic_store(&s->fwd, 0);
	if (s->counted) {
		sigset_t m;

		s->counted = false;
		bits_set(s->mask, &m);
		real_s.pthread_sigmask(SIG_SETMASK, &m, NULL);
	}
	if (!atomic_load(&fwd_on))
		return;
	atomic_store(&fwd_on, 0);
	atomic_store(&fwd_word, 0);
	atomic_store(&fwd_tid, 0);
	preload_sig_forwarder_start();
}
