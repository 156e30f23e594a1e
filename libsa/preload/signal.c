/* signal.c - libsa-preload.so: pthread_kill to a uthread, per-uthread signal masks */

/*
 * A uthread has no kernel thread of its own for the kernel to deliver a
 * signal to, so the shim delivers the signals pthread_kill() aims at a
 * uthread itself.  The request is a bit in the target's pending set
 * (struct preload_sig, in the shim's static TLS, reached through the
 * descriptor); the target runs the handler on its own stack and TLS at the
 * next point where it enters the shim's blocking or cancellation calls
 * (preload_testcancel() checks both words), when it unblocks the signal,
 * and at once if it waits (preload_interrupt(), cancel.c).  What the wait
 * does after the handler is what it does under NPTL: a routed I/O call
 * and sem_wait fail with EINTR unless the handler has SA_RESTART, in
 * which case the call goes on; the sleeps and sem_timedwait fail with
 * EINTR either way (the kernel never restarts a wait with a timeout),
 * nanosleep with the time left; a condition
 * wait returns 0 (a spurious wakeup, which POSIX permits); a join goes on
 * waiting.  A blocked signal wakes nobody: the wait goes on.  A uthread
 * that computes without such calls sees it at its next one.
 *
 * What a signal does is what its disposition says at delivery: a handler
 * runs (with the signal itself blocked in the uthread's mask meanwhile,
 * unless SA_NODEFER); SIG_IGN, or a default action of ignoring, drops it;
 * a default action that ends or stops the process is taken at once by
 * sending the signal to the process, which is what it would do to it.
 *
 * Signals sent to the process (kill(), alarm(), timers).  The kernel
 * hands one to a kernel thread of its choice that does not block it: under
 * the shim, an activation.  What it interrupts there may be a uthread that
 * does not block the signal, on its own TLS: the handler runs right there,
 * as on a thread the kernel chose.  Anything else - a VP's idle or
 * scheduler context, a spare activation, a uthread that blocks the signal
 * in its own mask - is no thread of the program, or the wrong one: the
 * shim's wrapper (preload/io.c) forwards the signal instead
 * (preload_sig_forward(), async-signal-safe: a bit, the siginfo and a
 * futex wake) to the forwarder, a kernel thread of the shim's that blocks
 * every signal.  It picks a uthread that does not block the signal as the
 * kernel picks a thread - the main one if it can, else one that waits,
 * else any (ut_find()) - and sends it the signal as pthread_kill() does,
 * with the original siginfo: a sleep or a wait of that uthread ends as a
 * signal ends it under NPTL.  A signal that every uthread blocks stays
 * pending for the process until one unblocks it.
 *
 * Masks.  pthread_sigmask() and sigprocmask() on a uthread keep the
 * uthread's own mask, which governs pthread_kill()'s signals and is what
 * they report, and also set the mask of the kernel thread carrying it, so
 * that signals sent to the process keep being held back by a
 * program that blocks them before it starts threads (the sigwait() thread
 * pattern).  A new thread starts with its creator's mask.
 */

#define SA_PRELOAD_NO_REDIRECT
#include "preload/shim.h"

#include <signal.h>

#include "io/io.h"

__thread struct preload_sig preload_sig_tls __attribute__((tls_model("initial-exec")));

static long sig_off; /* of preload_sig_tls from the descriptor */

/* Signals sent to the process, forwarded and not yet taken by a uthread. */
static _Atomic uint64_t proc_pending;
static siginfo_t proc_info[65];     /* the last siginfo of each */
static _Atomic uint32_t fwd_word;   /* the forwarder's futex: work to do */
static _Atomic uint32_t fwd_on;     /* the forwarder runs */
static void fwd_fork_child(void);

static struct {
	int (*pthread_kill)(pthread_t, int);
	int (*pthread_sigmask)(int, const sigset_t *, sigset_t *);
	int (*sigprocmask)(int, const sigset_t *, sigset_t *);
} real_s;

void preload_signal_init(void)
{
	real_s.pthread_kill = preload_real_sym("pthread_kill");
	real_s.pthread_sigmask = preload_real_sym("pthread_sigmask");
	real_s.sigprocmask = preload_real_sym("sigprocmask");
	sig_off = (char *)&preload_sig_tls - (char *)pthread_self();
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

/* my_mask - the calling uthread's mask, read from its carrier the first
 * time (the main thread's, set before the runtime started). */
static uint64_t *my_mask(void)
{
	struct preload_sig *s = &preload_sig_tls;

	if (!s->mask_valid) {
		sigset_t cur;

		s->mask = 0;
		if (real_s.pthread_sigmask(SIG_BLOCK, NULL, &cur) == 0)
			for (int sig = 1; sig <= 64 && sig < _NSIG; sig++)
				if (sigismember(&cur, sig) == 1)
					s->mask |= bit(sig);
		s->mask_valid = true;
	}
	return &s->mask;
}

/** preload_sig_inherit - the mask a thread created now starts with. */
void preload_sig_inherit(struct preload_sig *child)
{
	memset(child, 0, sizeof(*child));
	child->mask = vp_self() ? *my_mask() : 0;
	child->mask_valid = vp_self() != NULL;
}

/* default_ignored - the default action of @sig is to do nothing. */
static bool default_ignored(int sig)
{
	return sig == SIGCHLD || sig == SIGURG || sig == SIGWINCH || sig == SIGCONT;
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
	if (atomic_fetch_and(&preload_sig_tls.fwd, ~bit(sig)) & bit(sig)) {
		si = proc_info[sig]; /* sent to the process */
	} else {
		memset(&si, 0, sizeof(si));
		si.si_signo = sig;
		si.si_code = SI_TKILL;
		si.si_pid = getpid();
		si.si_uid = getuid();
	}
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

static int set_mask(int how, const sigset_t *set, sigset_t *old,
		    int (*real)(int, const sigset_t *, sigset_t *))
{
	uint64_t *mask, want = 0;
	int r;

	if (!vp_self() || !tls_handle_of((const void *)pthread_self()))
		return real(how, set, old);
	mask = my_mask();
	if (set && how != SIG_BLOCK && how != SIG_UNBLOCK && how != SIG_SETMASK)
		return EINVAL;
	r = real(how, set, NULL); /* the carrier's too (see above) */
	if (r)
		return r;
	if (old) {
		sigemptyset(old);
		for (int sig = 1; sig <= 64 && sig < _NSIG; sig++)
			if (*mask & bit(sig))
				sigaddset(old, sig);
	}
	if (!set)
		return 0;
	for (int sig = 1; sig <= 64 && sig < _NSIG; sig++)
		if (sigismember(set, sig) == 1 && sig != SIGKILL && sig != SIGSTOP)
			want |= bit(sig);
	if (how == SIG_BLOCK)
		*mask |= want;
	else if (how == SIG_UNBLOCK)
		*mask &= ~want;
	else
		*mask = want;
	want = atomic_load(&proc_pending) & ~*mask;
	if (unlikely(want)) { /* sent to the process while all blocked them */
		want &= atomic_fetch_and(&proc_pending, ~want);
		atomic_fetch_or(&preload_sig_tls.fwd, want);
		atomic_fetch_or(&preload_sig_tls.pending, want);
	}
	preload_sig_deliver(); /* what it unblocked and is pending */
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
 * on what the kernel interrupted?  Yes for a signal aimed at this thread,
 * on a uthread that does not block @sig, and on a thread of the program's
 * own; no (forward it) on libsa's contexts and on a uthread that blocks
 * it.  Async-signal-safe.
 */
bool preload_sig_here(int sig, const siginfo_t *si)
{
	struct preload_sig *s = &preload_sig_tls;

	if (si->si_code == SI_TKILL || sync_fault(sig, si) ||
	    !atomic_load_explicit(&fwd_on, memory_order_acquire))
		return true;
	if (!tls_handle_of((const void *)pthread_self())) /* no uthread's TLS */
		return !sa_tls_internal && !vp_tls_word();
	return !s->mask_valid || !(s->mask & bit(sig));
}

/**
 * preload_sig_forward - have the forwarder give @sig, sent to the
 * process, to a uthread that does not block it.  Async-signal-safe.
 */
void preload_sig_forward(int sig, const siginfo_t *si)
{
	proc_info[sig] = *si;
	atomic_fetch_or(&proc_pending, bit(sig));
	atomic_store(&fwd_word, 1);
	futex_wake(&fwd_word, 1);
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

/* route - give each forwarded signal to a uthread that takes it. */
static void route(void)
{
	uint64_t todo = atomic_load(&proc_pending);

	while (todo) {
		int sig = __builtin_ctzll(todo) + 1;
		uint64_t b = bit(sig);
		sa_uthread_t h = ut_find(takes, &b);
		struct uthread *ut;

		if (!h || !(ut = ut_lookup_lock(h))) {
			todo &= ~b; /* none takes it now: pending for the process */
			continue;
		}
		if (atomic_fetch_and(&proc_pending, ~b) & b) {
			struct preload_sig *s = sig_of((pthread_t)ut->tp);

			atomic_fetch_or(&s->fwd, b);
			atomic_fetch_or(&s->pending, b);
		}
		spin_unlock(&ut->lock);
		ut_interrupt(h); /* as pthread_kill() does */
		io_interrupt();
		todo &= ~b;
	}
}

static void *forwarder_main(void *arg)
{
	(void)arg;
	for (;;) {
		while (!atomic_exchange(&fwd_word, 0))
			futex_wait(&fwd_word, 0, NULL);
		route();
	}
	return NULL;
}

/**
 * preload_sig_forwarder_start - start the forwarder, once: when the
 * program installs a handler that the wrapper stands in for.
 */
void preload_sig_forwarder_start(void)
{
	uint32_t off = 0;
	sigset_t all, old;
	pthread_attr_t a;
	pthread_t t;

	if (atomic_load_explicit(&fwd_on, memory_order_relaxed) ||
	    !atomic_compare_exchange_strong(&fwd_on, &off, 2))
		return;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&a, 64 * 1024);
	sigfillset(&all);
	real_s.pthread_sigmask(SIG_SETMASK, &all, &old);
	if (preload_real.pthread_create(&t, &a, forwarder_main, NULL))
		atomic_store(&fwd_on, 0); /* every handler runs where it lands */
	else
		atomic_store_explicit(&fwd_on, 1, memory_order_release);
	real_s.pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&a);
}

/* fwd_fork_child - the child of fork() has no forwarder: start one. */
static void fwd_fork_child(void)
{
	if (!atomic_load(&fwd_on))
		return;
	atomic_store(&fwd_on, 0);
	atomic_store(&fwd_word, 0);
	atomic_store(&proc_pending, 0);
	preload_sig_forwarder_start();
}
