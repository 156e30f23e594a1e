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
	memset(&si, 0, sizeof(si));
	si.si_signo = sig;
	si.si_code = SI_TKILL;
	si.si_pid = getpid();
	si.si_uid = getuid();
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
