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
#include <fcntl.h>
#include <signal.h>

#include <sys/prctl.h>

#include "upcall/upcall.h"
#include "io/io.h"

#define SIG_TICK SIGURG

static struct sigaction old_tick;
static int tick_cookie, unblock_cookie, io_cookie;
#define BLOCKED_US_DEFAULT 1000

static uint64_t blocked_ns;

static void act_unblock_redirect(struct act *a, ucontext_t *uc);

static void tick_handler(int sig, siginfo_t *si, void *ucv)
{
	int saved_errno = errno;
	struct act *a;
	struct vp *vp;

	if (!((si->si_code == SI_TIMER && si->si_value.sival_ptr == &tick_cookie) ||
	      (si->si_code == SI_QUEUE && (si->si_value.sival_ptr == &unblock_cookie ||
					   si->si_value.sival_ptr == &io_cookie)))) {
		/* Not ours: whoever handled SIGURG before us. */
		if (old_tick.sa_flags & SA_SIGINFO) {
			if (old_tick.sa_sigaction)
				old_tick.sa_sigaction(sig, si, ucv);
		} else if (old_tick.sa_handler != SIG_DFL && old_tick.sa_handler != SIG_IGN) {
			old_tick.sa_handler(sig);
		}
		return;
	}
	/* Ours, so this thread is an activation (the timer and the watchdog
	 * aim at activations only); not vp_self(), which would deliver the
	 * unblocked upcall right here on the signal stack. */
	a = act_self();
	if (atomic_load(&a->state) == ACT_BLOCKED)
		act_unblock_redirect(a, ucv);
	else if ((vp = atomic_load_explicit(&a->vp, memory_order_relaxed)) != NULL &&
		 !atomic_load(&a->handshake))
		sched_upcall_preempted(vp, ucv, si->si_value.sival_ptr == &io_cookie);
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

/**
 * upcall_tick_start - install the tick handler (once per process) for the
 * quantum ticks and the activation signals of both backends.  @always:
 * even when neither ticks nor the watchdog are on (the kernel backend
 * signals its spares with it).
 */
int upcall_tick_start(bool always)
{
	static bool installed;
	struct sigaction sa;

	if (installed || (!always && !upcall_quantum_ns && !blocked_ns))
		return 0;
	sa_xsave_size = xsave_size_cpuid();
	if (!sa_xsave_size) {
		/* No XSAVE: the stub could not save the vector state. */
		upcall_quantum_ns = 0;
		blocked_ns = 0;
		if (!always)
			return 0;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = tick_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIG_TICK, &sa, &old_tick))
		return -errno;
	installed = true;
	return 0;
}

static int emulated_start(void)
{
	int r = env_us("SA_BLOCKED_US", BLOCKED_US_DEFAULT, &blocked_ns);

	if (r)
		return r;
	return upcall_tick_start(false);
}

/* The tick timer is made once per activation and armed while it carries
 * a VP. */
int upcall_tick_enter(struct act *a)
{
	struct sigevent sev;
	struct itimerspec its;

	if (!sa_xsave_size || (!upcall_quantum_ns && !blocked_ns) ||
	    __atomic_load_n(&a->tick_armed, __ATOMIC_RELAXED))
		return 0;
	if (!a->tick_made) {
		memset(&sev, 0, sizeof(sev));
		sev.sigev_notify = SIGEV_THREAD_ID;
		sev.sigev_signo = SIG_TICK;
		sev.sigev_value.sival_ptr = &tick_cookie;
		sev._sigev_un._tid = a->tid;
		/* Testing only: a wall-clock tick, finer than the kernel's
		 * CPU-time accounting allows (upcall_tick_force). */
		if (timer_create(upcall_tick_force ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID,
				 &sev, &a->tick_timer))
			return -errno;
		a->tick_made = true;
	}
	if (!upcall_quantum_ns)
		return 0;
	ns_to_timespec(upcall_quantum_ns, &its.it_value);
	its.it_interval = its.it_value;
	if (timer_settime(a->tick_timer, 0, &its, NULL))
		return -errno;
	__atomic_store_n(&a->tick_armed, true, __ATOMIC_RELAXED);
	return 0;
}

void upcall_tick_leave(struct act *a)
{
	struct itimerspec off = { { 0, 0 }, { 0, 0 } };

	if (a->tick_made) {
		timer_settime(a->tick_timer, 0, &off, NULL);
		__atomic_store_n(&a->tick_armed, false, __ATOMIC_RELAXED);
	}
}

/*
 * emulated_displaced - @a was taken over (from the watchdog).  Its own
 * CPU-time timer now ticks every UNBLOCK_TICK_NS of CPU it uses: once it
 * is back from the kernel and runs its uthread, it stops itself within a
 * scheduler tick even when the watchdog cannot get a CPU.
 */
#define UNBLOCK_TICK_NS 100000

static void emulated_displaced(struct act *a)
{
	struct itimerspec its;

	if (!a->tick_made)
		return;
	ns_to_timespec(UNBLOCK_TICK_NS, &its.it_value);
	its.it_interval = its.it_value;
	timer_settime(a->tick_timer, 0, &its, NULL);
	__atomic_store_n(&a->tick_armed, true, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------------
 * blocked and unblocked: the watchdog
 */

/*
 * A libsa thread (not a VP) looks at every VP each half bound.  A VP that
 * runs a uthread and has made no switch for a whole bound (SA_BLOCKED_US,
 * default 1 ms) may be stuck: its activation's /proc/self/task/TID/syscall
 * says whether the thread is in the kernel and at which user PC.  Stuck in
 * the kernel, with the PC outside libsa and no bracketed libc call in
 * progress, it is taken over (act.c: the handshake; its context-switch
 * count, from .../schedstat, must not move while the handshake is on).
 * An activation that was taken over and shows up running again gets a
 * SIGURG (rt_tgsigqueueinfo, with its own cookie) every round until it has
 * given its uthread back: the handler sends the uthread through the
 * preemption stub, whose vp_self() delivers the unblocked upcall.  The
 * signal is sent only when /proc says the thread is running, so it does
 * not cut a system call short (SA_RESTART covers the rest; a few calls,
 * such as nanosleep and poll, return EINTR when any handler runs: if the
 * thread went back into one of those in the microseconds between the look
 * and the signal, it sees EINTR).
 *
 * When every VP is parked the watchdog backs off to IDLE_BACKOFF_NS per
 * round: an idle process wakes a few times a second, not thousands.
 */

#define IDLE_BACKOFF_NS (100 * 1000 * 1000ull)

/*
 * While it backs off, the watchdog sleeps on wd_word, and a VP that leaves
 * its park (it has work again) wakes it: a uthread that blocks hidden right
 * after an idle spell is then found within a bound, not a backed-off round
 * later.  The VP pays a load and a branch per unpark, a futex wake only
 * after an idle spell.
 */
_Atomic uint32_t upcall_wd_backoff;
static _Atomic uint32_t wd_word;

void upcall_wd_kick(void)
{
	if (atomic_exchange_explicit(&upcall_wd_backoff, 0, memory_order_relaxed)) {
		atomic_fetch_add_explicit(&wd_word, 1, memory_order_release);
		futex_wake(&wd_word, 1);
	}
}

/* proc_read - the text of a /proc file through its open descriptor. */
static ssize_t proc_read(int fd, char *buf, size_t n)
{
	ssize_t r = pread(fd, buf, n - 1, 0);

	if (r < 0)
		return r;
	buf[r] = '\0';
	return r;
}

/*
 * act_proc_open - @a's /proc files, opened the first time the watchdog
 * needs them (only activations that look stuck ever do), so that libsa
 * does not open descriptors behind a program that never blocks hidden.
 */
static void act_proc_open(struct act *a)
{
	char path[64];

	if (a->fd_syscall >= 0)
		return;
	snprintf(path, sizeof(path), "/proc/self/task/%d/schedstat", (int)a->tid);
	a->fd_schedstat = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)a->tid);
	a->fd_syscall = open(path, O_RDONLY | O_CLOEXEC);
}

/*
 * act_kstate - is @a's thread blocked in the kernel?  Returns 0 and its
 * user PC if it is, 1 if it is running (or runnable), -1 if /proc cannot
 * say.
 */
static int act_kstate(struct act *a, uintptr_t *pc)
{
	char buf[256], *last;

	act_proc_open(a);
	if (a->fd_syscall < 0 || proc_read(a->fd_syscall, buf, sizeof(buf)) <= 0)
		return -1;
	if (strncmp(buf, "running", 7) == 0)
		return 1;
	/* "nr args... sp pc" in a system call, "-1 sp pc" otherwise */
	last = strrchr(buf, ' ');
	if (!last)
		return -1;
	*pc = (uintptr_t)strtoull(last + 1, NULL, 16);
	return 0;
}

/* act_timeslices - how many times @a's thread has been on a CPU. */
static uint64_t act_timeslices(struct act *a)
{
	char buf[128];
	unsigned long long cpu, wait, slices;

	if (a->fd_schedstat < 0 || proc_read(a->fd_schedstat, buf, sizeof(buf)) <= 0 ||
	    sscanf(buf, "%llu %llu %llu", &cpu, &wait, &slices) != 3)
		return UINT64_MAX;
	return slices;
}

static uint64_t wd_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

/*
 * wd_spare - a spare to hand a VP to, or NULL: then one is being made for
 * the next round (half a bound later).  Spares are made on first need, not
 * at start-up, so a program that never blocks hidden never has one; after
 * a hand-off, one more is made ahead, so the next does not wait.
 */
static struct act *wd_spare(void)
{
	struct act *s = act_spare_get();

	if (!s || !READ_ONCE(rt.spares)) {
		struct act *n = act_new();

		if (n && act_start_thread(n, NULL))
			fprintf(stderr, "libsa: cannot start a spare activation\n");
	}
	return s;
}

static void wd_io(struct vp *vp, struct act *a);

/* false: the kernel delivers blocked and unblocked (kernel.c); the
 * watchdog only nudges VPs whose completions wait (wd_io). */
static bool wd_takeover = true;

/* wd_vp - look at @vp; take it from its activation if that is stuck.
 * Returns true if the VP is busy (not parked). */
static bool wd_vp(struct vp *vp, uint64_t now)
{
	struct act *a = atomic_load_explicit(&vp->act, memory_order_acquire), *s;
	struct uthread *cur = READ_ONCE(vp->cur);
	uint64_t sw = atomic_load_explicit(&vp->stats.switches, memory_order_relaxed), slices;
	uintptr_t pc, pc2;
	bool ok;

	if (atomic_load(&vp->parked))
		return false;
	if (atomic_load(&a->state) != ACT_CARRYING || !cur || cur == READ_ONCE(vp->idle)) {
		a->seen_since = 0;
		return true;
	}
	if (sw != a->seen_switches || cur != a->seen_cur || !a->seen_since) {
		a->seen_switches = sw;
		a->seen_cur = cur;
		a->seen_since = now;
		return true;
	}
	if (upcall_quantum_ns && !upcall_tick_force)
		wd_io(vp, a);
	if (!wd_takeover || now - a->seen_since < blocked_ns)
		return true;
	a->seen_since = now; /* look again a bound from now at the earliest */
	if (READ_ONCE(vp->np) || act_kstate(a, &pc) != 0 || text_in_libsa(pc) ||
	    text_in_sanitizer(pc))
		return true;
	slices = act_timeslices(a);
	s = wd_spare();
	if (!s)
		return true;
	if (!act_takeover_begin(a)) {
		act_spare_give(s, NULL);
		return true;
	}
	ok = act_kstate(a, &pc2) == 0 && pc2 == pc && act_timeslices(a) == slices &&
	     slices != UINT64_MAX && READ_ONCE(vp->cur) == cur && !READ_ONCE(vp->np);
	act_takeover_end(a, s, ok);
	return true;
}

/* act_signal - send @a's thread our SIGURG with @cookie. */
static void act_signal(struct act *a, int *cookie)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	si.si_signo = SIG_TICK;
	si.si_code = SI_QUEUE;
	si.si_pid = getpid();
	si.si_uid = getuid();
	si.si_value.sival_ptr = cookie;
	sa_syscall6(SYS_rt_tgsigqueueinfo, getpid(), a->tid, SIG_TICK, (long)&si, 0, 0);
}

/* wd_blocked - @a was taken over; once it is back in user space, tell it. */
static void wd_blocked(struct act *a, uint64_t now)
{
	uintptr_t pc;

	if (act_kstate(a, &pc) != 1)
		return;
	if (!__atomic_load_n(&a->unblock_seen, __ATOMIC_RELAXED))
		__atomic_store_n(&a->unblock_seen, now, __ATOMIC_RELAXED);
	act_signal(a, &unblock_cookie);
}

/*
 * wd_io - @vp runs a uthread and has made no switch since the last round
 * while I/O completions wait in its ring: nobody harvests them before the
 * next scheduler pass, which a compute-bound uthread reaches only at its
 * quantum's end (and the CPU-time tick has the kernel tick's resolution,
 * 4 ms at HZ=250).  A SIGURG, sent only while the thread is on a CPU,
 * makes the preemption path yield it (sched_upcall_preempted with @io):
 * completions wait at most about half a bound, not a quantum.
 */
static void wd_io(struct vp *vp, struct act *a)
{
	uintptr_t pc;

	if (!__atomic_load_n(&vp->io_inflight, __ATOMIC_RELAXED) || !io_pass_wanted(vp) ||
	    READ_ONCE(vp->np) || act_kstate(a, &pc) != 1)
		return;
	act_signal(a, &io_cookie);
}

static void *watchdog_main(void *arg)
{
	uint64_t idle_rounds = 0;

	(void)arg;
	sa_tls_internal = true;
	pthread_setname_np(pthread_self(), "sa-watchdog");
	/* Its rounds are the bound's resolution: no timer slack (the
	 * default lets a 500 us sleep run 50 us long). */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	act_takeover_prepare();
	while (!atomic_load(&rt.stopping)) {
		uint64_t wait = blocked_ns / 2, now;
		struct timespec ts;
		bool busy = false;

		if (idle_rounds > 8) {
			wait <<= (idle_rounds - 8 < 10 ? idle_rounds - 8 : 10);
			if (wait > IDLE_BACKOFF_NS)
				wait = IDLE_BACKOFF_NS;
		}
		ns_to_timespec(wait, &ts);
		if (idle_rounds > 8) {
			uint32_t w = atomic_load_explicit(&wd_word, memory_order_acquire);

			atomic_store_explicit(&upcall_wd_backoff, 1, memory_order_relaxed);
			smp_mb(); /* the flag before the last look at the VPs */
			/* Every VP still parked (the idle count, sched.c)? */
			if (atomic_load(&rt.nr_idle) >= rt.nvps)
				futex_wait(&wd_word, w, &ts);
			atomic_store_explicit(&upcall_wd_backoff, 0, memory_order_relaxed);
		} else {
			nanosleep(&ts, NULL);
		}
		now = wd_now();
		for (uint32_t i = 0; i < rt.nvps; i++)
			busy |= wd_vp(&rt.vps[i], now);
		spin_lock(&rt.act_lock);
		for (uint32_t i = 0; i < rt.nacts && wd_takeover; i++) {
			struct act *a = rt.acts[i];

			if (atomic_load(&a->state) == ACT_BLOCKED)
				wd_blocked(a, now);
		}
		spin_unlock(&rt.act_lock);
		idle_rounds = busy ? 0 : idle_rounds + 1;
	}
	return NULL;
}

/**
 * upcall_watchdog_start - start the watchdog thread; @takeover: it also
 * delivers blocked and unblocked (the emulated backend), else it only
 * nudges VPs whose I/O completions wait (the kernel backend, which
 * reuses SA_BLOCKED_US as its round).
 */
int upcall_watchdog_start(bool takeover)
{
	pthread_t t;
	pthread_attr_t at;
	sigset_t old;
	int r;

	if (!takeover && !blocked_ns) {
		r = env_us("SA_BLOCKED_US", BLOCKED_US_DEFAULT, &blocked_ns);
		if (r)
			return r;
	}
	wd_takeover = takeover;
	if (!blocked_ns || (!takeover && !upcall_quantum_ns))
		return 0;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	act_sigmask_internal(&old);
	r = pthread_create(&t, &at, watchdog_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&at);
	return r ? -EAGAIN : 0;
}

static int emulated_run(void)
{
	return upcall_watchdog_start(true);
}

static void emulated_fork_child(void)
{
}

/*
 * act_unblock_redirect - in the signal handler of an activation that was
 * taken over and is running its uthread again: send the uthread through
 * the preemption stub, whose vp_self() gives it back.  Not while it is in
 * libsa: there it reaches vp_self() by itself, or leaves; the next signal
 * looks again.
 */
static void act_unblock_redirect(struct act *a, ucontext_t *uc)
{
	uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];

	/* Not in the C runtime natively either (see upcall.c), and not once
	 * the process is exiting: the VPs stop, and the uthread running
	 * exit() must finish it where it is. */
	if (a->blocked && !text_in_libsa(pc) && !(!rt.tls_mode && text_in_runtime(pc)) &&
	    !atomic_load(&rt.stopping))
		sched_redirect_to_stub(a->blocked, uc);
}

const struct upcall_backend upcall_emulated = {
	.name = "emulated",
	.id = SA_BACKEND_EMULATED,
	.probe = emulated_probe,
	.start = emulated_start,
	.run = emulated_run,
	.enter = upcall_tick_enter,
	.leave = upcall_tick_leave,
	.displaced = emulated_displaced,
	.fork_child = emulated_fork_child,
};
