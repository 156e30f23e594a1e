/* emulated.c - the upcalls on stock Linux: a CPU-time tick per activation */

/*
 * preempted: every kernel thread that carries a VP (an activation) has a
 * POSIX timer on its own CPU-time clock (CLOCK_THREAD_CPUTIME_ID) that
 * sends it SIGURG every quantum of CPU it uses.  A CPU-time clock rather
 * than a wall clock, because a parked VP uses no CPU and so gets no ticks:
 * idle processes are not woken, and parking needs no timer_settime() on
 * the way in and out.  The tick's resolution is the kernel's (CONFIG_HZ),
 * which is fine for a quantum of milliseconds.
 *
 * SIGURG, because its default action is to do nothing, so a stray one is
 * harmless, and few programs use it (urgent TCP data).  The handler knows
 * its own ticks by si_code == SI_TIMER and the cookie in si_value; any
 * other SIGURG goes to the handler that was installed before.  It runs on
 * the activation's alternate signal stack (stack.c) with SA_RESTART, so
 * the program's system calls are never cut short by a tick.
 *
 * The handler only decides (sched_upcall_preempted()); the preempted
 * uthread yields on its own stack after the handler has returned.
 */

#include <cpuid.h>
#include <signal.h>

#include "upcall/upcall.h"

#define SIG_TICK SIGURG

static struct sigaction old_tick;
static int tick_cookie;

static void tick_handler(int sig, siginfo_t *si, void *ucv)
{
	int saved_errno = errno;
	struct vp *vp = vp_self();

	if (si->si_code != SI_TIMER || si->si_value.sival_ptr != &tick_cookie || !vp) {
		/* Not ours: whoever handled SIGURG before us. */
		if (old_tick.sa_flags & SA_SIGINFO) {
			if (old_tick.sa_sigaction)
				old_tick.sa_sigaction(sig, si, ucv);
		} else if (old_tick.sa_handler != SIG_DFL && old_tick.sa_handler != SIG_IGN) {
			old_tick.sa_handler(sig);
		}
		return;
	}
	sched_upcall_preempted(vp, ucv);
	errno = saved_errno;
}

static int emulated_probe(void)
{
	return 0; /* POSIX CPU-time timers and signals: every Linux has them */
}

static unsigned xsave_size_cpuid(void)
{
	unsigned a, b, c, d;

	__cpuid(1, a, b, c, d);
	if (!(c & (1u << 27))) /* OSXSAVE: the kernel enabled XSAVE */
		return 0;
	__cpuid_count(0xd, 0, a, b, c, d);
	return b; /* bytes for the features enabled in XCR0 */
}

static int emulated_start(void)
{
	struct sigaction sa;

	if (!upcall_quantum_ns)
		return 0;
	sa_xsave_size = xsave_size_cpuid();
	if (!sa_xsave_size) {
		/* No XSAVE: the stub could not save the vector state. */
		upcall_quantum_ns = 0;
		return 0;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = tick_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIG_TICK, &sa, &old_tick))
		return -errno;
	return 0;
}

static int emulated_enter(struct vp *vp)
{
	struct sigevent sev;
	struct itimerspec its;

	if (!upcall_quantum_ns || vp->tick_armed)
		return 0;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = SIG_TICK;
	sev.sigev_value.sival_ptr = &tick_cookie;
	sev._sigev_un._tid = (pid_t)sa_syscall6(SYS_gettid, 0, 0, 0, 0, 0, 0);
	/* Testing only: a wall-clock tick, finer than the kernel's CPU-time
	 * accounting allows (upcall_tick_force). */
	if (timer_create(upcall_tick_force ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &sev,
			 &vp->tick_timer))
		return -errno;
	ns_to_timespec(upcall_quantum_ns, &its.it_value);
	its.it_interval = its.it_value;
	if (timer_settime(vp->tick_timer, 0, &its, NULL)) {
		int r = -errno;

		timer_delete(vp->tick_timer);
		return r;
	}
	vp->tick_armed = true;
	return 0;
}

static void emulated_leave(struct vp *vp)
{
	if (vp->tick_armed) {
		timer_delete(vp->tick_timer);
		vp->tick_armed = false;
	}
}

const struct upcall_backend upcall_emulated = {
	.name = "emulated",
	.id = SA_BACKEND_EMULATED,
	.probe = emulated_probe,
	.start = emulated_start,
	.enter = emulated_enter,
	.leave = emulated_leave,
};
