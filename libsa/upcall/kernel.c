/* kernel.c - the upcalls from a kernel with the libsa patch series */

/*
 * Design
 * ======
 *
 * With the series in kernel-patches/ the kernel itself says when an
 * activation blocks and when it comes back, so nothing is inferred: no
 * watchdog rounds, no /proc, no signals to stop a thread that came back.
 * The group (sa_create(2)) has one activation per VP carrier, registered
 * RUNNING, and a pool of spares registered SPARE, which sleep in the
 * kernel (sa_ctl(2) SA_CTL_WAIT) until it hands them a processor.
 *
 * blocked.  A carrier C that sleeps in the kernel (a read the program
 * made, a page fault, a futex) becomes BLOCKED and its processor goes to
 * a spare S, whose mailbox names C; the kernel saved C's user registers.
 * S decides what the event means:
 *   - C's uthread stopped outside libsa, with no libc call that libsa
 *     brackets in progress (vp->np), as the emulated watchdog requires:
 *     S takes C's VP (the handshake of act.c, since C may come back at any
 *     moment if the group has a lost processor to give it), and runs the
 *     VP's other uthreads.  C's uthread stays with C.
 *   - otherwise C holds libsa state (its idle loop, a run-queue lock, a
 *     page fault in the scheduler): S declines.  It keeps the processor
 *     idle until C is parked and then gives it straight back
 *     (SA_CTL_SWITCH), so C goes on as if nothing happened.  Those sleeps
 *     are short; libsa's own long waits are IDLE or quiet (below), so
 *     they never block in this sense.
 * Spares are made ahead by a thread of the backend (one per VP), so a
 * block finds one; a block that finds none loses the group a processor
 * until a spare exists (the kernel gives it to the next one that
 * registers, or to C when it unblocks).
 *
 * One decision per block.  C may come back on a free processor (one the
 * group lost or gave up) before S has decided, and block again: then two
 * spares hold a block of C each.  And a spare that finds a lost
 * processor looks for the block that lost it (k_stranded()).  So a spare
 * decides about C only while it holds C's kbusy word, and a C whose VP
 * was taken already (ACT_BLOCKED) is left alone: its uthread is claimed
 * when it parks, or C ends the block itself (kernel_self_claim(), from
 * vp_self()) if it runs again first.  kclaim says which of the two won,
 * so that exactly one party resumes a parked C: the claim's VP, or, for
 * a C that ended its block itself and then blocked in libsa, the spare
 * that declines.
 *
 * unblocked.  A BLOCKED activation whose VP was taken comes back PARKED:
 * the kernel keeps it until the user level switches to it, and posts an
 * event to the ring.  Every VP's idle loop looks at the ring (two loads
 * when it is empty) and an IDLE VP is woken by the event; whoever
 * consumes the event marks the uthread UTF_KPARKED and makes it runnable.
 * A VP that picks it switches to the parked activation instead of to a
 * saved context (act_resume_parked() in act.c): the kernel moves the VP's
 * processor to C, which returns to user mode in the uthread, and the VP's
 * old carrier becomes a spare.  The uthread's registers never leave the
 * kernel, so a page fault or a system call in the middle of any code is
 * resumed exactly.  One hand-off each way, both with the processor count
 * unchanged: activations running user code = processors granted.
 *
 * The idle loop.  A VP with nothing to run waits in SA_CTL_IDLE (with its
 * next timer as the deadline), where events and SA_CTL_WAKE (vp_kick())
 * reach it.  A VP with I/O in flight waits in io_uring_enter() for
 * completions instead, with SA_SLOT_QUIET set so that the wait is not a
 * block; events do not end that wait, so while some activation is blocked
 * it lasts at most KRING_POLL_NS.  Spares are not VPs and never run the
 * idle loop.
 *
 * preempted.  Quantum ticks are the emulated backend's CPU-time timers
 * (emulated.c), which the kernel series does not replace; its watchdog
 * runs only to nudge VPs whose completions wait (wd_io).
 *
 * Fewer processors than VPs.  The kernel divides the CPUs among the
 * processes that use activations, so the group may hold fewer processors
 * than libsa has VPs: from the start (a VP whose carrier finds no free
 * processor to register with is VPD_FREE, its thread a spare), or when
 * the kernel takes one back (SA_EV_PREEMPTED with SA_EVF_TAKEN: the
 * activation parked where it stood, anywhere - in a uthread, in the idle
 * loop, holding a run-queue lock).  A VP without a processor is dormant
 * (vp->dormant): its queued uthreads move to a VP that has one, uthreads
 * readied from outside go elsewhere, and no waker counts on it.  A
 * dormant VP gets a processor back from the first activation that has
 * one to spare, in this order:
 *   - a parked one (k_taken(), act->ktaken) is resumed where it stood
 *     (SA_CTL_SWITCH), since it may hold a lock the others wait for;
 *   - a VP nobody carries (VPD_FREE) is carried from a fresh idle context,
 *     one with I/O in flight first: only a carrier harvests its ring.
 * Processors to spare are those the kernel adds (SA_EV_PROCESSOR in a
 * spare's mailbox: the add-processor upcall), a spare's that has nothing
 * else to do, and an idle VP's: while the group is short, an idle VP
 * whose processor is wanted as above leaves its VP (kernel_give_up()) and
 * acts as a spare.  A spin lock whose holder is parked would otherwise
 * wait for a VP to go idle: a waiter that spins long sleeps a little
 * (kernel_spin_help()), which is a block, and the spare given its
 * processor hands it to the parked holder instead of waiting for the
 * sleeper (k_decline_step()), which then waits its turn the same way.
 * Until a processor comes back, a VP's uthread that was stopped with it
 * waits; a VP busy with its own uthreads does not give its processor up
 * (the kernel time-shares the CPUs among processes, libsa the processors
 * it holds among VPs only at idle points).
 *
 * Why not RELEASE.  SA_CTL_RELEASE would turn a parked activation into a
 * spare and leave its registers in its slot, from which the uthread could
 * be rebuilt in user space - but not its vector registers, its flags
 * after a fault, or its red zone.  Switching to the activation keeps all
 * of them.
 */

#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/utsname.h>

#include "upcall/upcall.h"
#include "upcall/sa_abi.h"

#define KRING_POLL_NS (1000 * 1000ull)
#define KDECLINE_POLL_NS (10 * 1000 * 1000ull)
#define KSPIN_NAP_NS (20 * 1000)

static void k_demand_apply(void);

/* act->ktaken: it lost its processor where it stood (k_taken()). */
enum {
	KTAKEN_NO = 0,
	KTAKEN_BUSY, /* anywhere but its idle wait: resume it soon */
	KTAKEN_IDLE, /* in its idle wait: when a processor is added */
};

/* act->kclaim: who ends the current block of a VP's former carrier. */
enum {
	KCLAIM_NONE = 0,
	KCLAIM_RING,  /* a VP resumes it (its uthread is UTF_KPARKED) */
	KCLAIM_SELF,  /* it came back on a processor of its own */
};

bool upcall_kernel_on;

static int kfd = -1;
static struct sa_header *khdr;
static struct sa_slot *kslots;
static struct sa_event *kring;
static uint32_t kmask, kmax;
static struct act *_Atomic kacts[SA_ACTS_MAX];
static _Atomic uint32_t kblocked;  /* activations whose VP was taken */
static _Atomic uint32_t kspare_word; /* the spare maker's futex */
static _Atomic uint32_t kdropped;  /* ring drops seen */
static _Atomic uint32_t kmain_wait; /* the main thread has not registered yet */
static uint32_t kdemand_max;        /* the VPs, at most the online CPUs */
static _Atomic uint32_t kdemand;    /* what was asked for last */
static _Atomic uint32_t kdemand_want; /* what is to be asked for */
static _Atomic uint32_t kwant_more; /* a VP asks for the demand to rise */
static uint32_t kdemand_low;        /* samples in a row below kdemand */
static bool kdemand_adaptive;       /* $SA_DEMAND=adaptive */

static long k_ctl(unsigned op, unsigned long arg, unsigned long arg2)
{
	return sa_syscall6(SA_NR_CTL, kfd, op, (long)arg, (long)arg2, 0, 0);
}

static uint32_t kstate(const struct act *a)
{
	return __atomic_load_n(&kslots[a->kid].state, __ATOMIC_ACQUIRE);
}

/*
 * kernel_probe - the series numbers its calls 451 and 452 in 6.1, which
 * later kernels gave to cachestat() and fchmodat2(): ask only a 6.1
 * kernel, and believe the answer only if the file is a group.
 */
static int kernel_probe(void)
{
	struct sa_params p = { .max_acts = 1, .processors = 1 };
	struct utsname u;
	char path[64], link[64];
	ssize_t n;
	long fd;

	if (uname(&u) || strncmp(u.release, "6.1.", 4) != 0)
		return -ENOSYS;
	fd = sa_syscall6(SA_NR_CREATE, (long)&p, sizeof(p), 0, 0, 0, 0);
	if (fd < 0)
		return (int)fd;
	snprintf(path, sizeof(path), "/proc/self/fd/%ld", fd);
	n = readlink(path, link, sizeof(link) - 1);
	close((int)fd);
	if (n < 0)
		return -ENOSYS;
	link[n] = '\0';
	return strcmp(link, "anon_inode:[sa]") == 0 ? 0 : -ENOSYS;
}

static int kernel_start(void)
{
	struct sa_params p = { .max_acts = SA_ACTS_MAX, .processors = upcall_nvps };
	struct sa_header *h;
	uint64_t bound;
	size_t len;
	long fd;
	int r;

	/* The watchdog's round (kernel_run()): malformed is an error here. */
	r = env_us("SA_BLOCKED_US", 1000, &bound);
	if (r)
		return r;
	fd = sa_syscall6(SA_NR_CREATE, (long)&p, sizeof(p), 0, 0, 0, 0);
	if (fd < 0)
		return (int)fd;
	/* The header says how big the area is. */
	h = mmap(NULL, 4096, PROT_READ, MAP_SHARED, (int)fd, 0);
	if (h == MAP_FAILED)
		goto fail_errno;
	len = h->ring_off + (size_t)h->ring_entries * sizeof(struct sa_event);
	len = (len + 4095) & ~(size_t)4095;
	if (h->version != SA_SHARED_VERSION) {
		munmap(h, 4096);
		close((int)fd);
		return -EPROTO;
	}
	munmap(h, 4096);
	khdr = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, (int)fd, 0);
	if (khdr == MAP_FAILED)
		goto fail_errno;
	r = upcall_tick_start(true);
	if (r) {
		munmap(khdr, len);
		close((int)fd);
		return r;
	}
	kfd = (int)fd;
	kslots = (struct sa_slot *)((char *)khdr + khdr->slots_off);
	kring = (struct sa_event *)((char *)khdr + khdr->ring_off);
	kmask = khdr->ring_entries - 1;
	kmax = khdr->max_acts;
	kdemand_max = upcall_nvps;
	if (kdemand_max > (uint32_t)sysconf(_SC_NPROCESSORS_ONLN))
		kdemand_max = (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
	if (!kdemand_max)
		kdemand_max = 1;
	atomic_store(&kdemand, p.processors > kdemand_max ? kdemand_max : p.processors);
	atomic_store(&kdemand_want, atomic_load(&kdemand));
	kdemand_adaptive = getenv("SA_DEMAND") && strcmp(getenv("SA_DEMAND"), "adaptive") == 0;
	/* The main thread carries VP 0: it registers first (kernel_enter()). */
	atomic_store(&kmain_wait, getpid() == (pid_t)sa_syscall6(SYS_gettid, 0, 0, 0, 0, 0, 0));
	upcall_kernel_on = true;
	return 0;

fail_errno:
	r = -errno;
	close((int)fd);
	return r;
}

/* k_register - @a (the caller) joins the group; SA_REG_SPARE sleeps until
 * it is given a processor.  Returns 0 or -errno; -EINTR leaves a spare. */
static long k_register(struct act *a, uint32_t flags)
{
	struct sa_register reg = { .flags = flags, .cookie = a->slot };
	long r = k_ctl(SA_CTL_REGISTER, (unsigned long)&reg, sizeof(reg));

	if (r >= 0 || r == -EINTR) {
		a->kid = (int)reg.id;
		atomic_store_explicit(&kacts[reg.id], a, memory_order_release);
	}
	return r < 0 ? r : 0;
}

/*
 * kernel_enter - @a starts carrying a VP: registered RUNNING the first
 * time, which takes one of the granted processors; -EBUSY if the group
 * holds all it was granted (the VP waits for one: act_carry_try()).  The
 * main thread, VP 0's carrier, registers before the others, so that it
 * always finds one: every group is granted at least one.
 */
static int kernel_enter(struct act *a)
{
	if (a->kid < 0) {
		long r;

		if (a->own_thread)
			while (atomic_load(&kmain_wait))
				futex_wait(&kmain_wait, 1, NULL);
		r = k_register(a, SA_REG_RUNNING);
		if (!a->own_thread && atomic_exchange(&kmain_wait, 0))
			futex_wake(&kmain_wait, INT32_MAX);
		if (r)
			return (int)r;
	}
	return upcall_tick_enter(a);
}

static void kernel_leave(struct act *a)
{
	upcall_tick_leave(a);
}

static void kernel_displaced(struct act *a)
{
	(void)a;
}

/* ------------------------------------------------------------------------
 * Events: the ring
 */

/* k_claim - if @c's VP was taken and @c is parked now, its uthread goes
 * to a run queue, to be resumed through @c.  Exactly once per block. */
static void k_claim(struct act *c)
{
	struct uthread *u;
	uint32_t z = KCLAIM_NONE;

	if (atomic_load(&c->state) != ACT_BLOCKED || kstate(c) != SA_STATE_PARKED ||
	    !atomic_compare_exchange_strong(&c->kclaim, &z, KCLAIM_RING))
		return;
	u = c->blocked;
	u->kact = c;
	u->flags |= UTF_KPARKED;
	atomic_fetch_sub(&kblocked, 1);
	atomic_store_explicit(&u->on_cpu, 0, memory_order_release);
	sched_ready(u);
}

/**
 * kernel_self_claim - blocked activation @a (the caller) came back on a
 * processor of its own, not through a claim: its block is its own to end
 * (act_unblocked()).  False if a claim was faster, which means that the
 * claimer's VP resumed @a: its VP pointer says which.
 */
bool kernel_self_claim(struct act *a)
{
	uint32_t z = KCLAIM_NONE;

	if (!atomic_compare_exchange_strong(&a->kclaim, &z, KCLAIM_SELF))
		return false;
	atomic_fetch_sub(&kblocked, 1);
	return true;
}

/* k_claim_all - after dropped events: look at every activation. */
static void k_claim_all(void)
{
	for (uint32_t i = 0; i < kmax; i++) {
		struct act *c = atomic_load_explicit(&kacts[i], memory_order_acquire);

		if (c)
			k_claim(c);
	}
}

/* k_short - the group holds fewer processors than it has VPs, so some
 * VP may be dormant (vp->dormant).  One load. */
static bool k_short(void)
{
	return __atomic_load_n(&khdr->granted, __ATOMIC_RELAXED) < rt.nvps;
}

/* k_vp_of - the VP that @c carries, or NULL. */
static struct vp *k_vp_of(struct act *c)
{
	struct vp *vp = atomic_load_explicit(&c->vp, memory_order_relaxed);

	if (atomic_load(&c->state) != ACT_CARRYING || !vp ||
	    atomic_load_explicit(&vp->act, memory_order_relaxed) != c)
		return NULL;
	return vp;
}

/*
 * k_taken - @c lost its processor where it stood (its grant shrank), or
 * was left blocked inside libsa by a spare that had a better use for the
 * processor: it is parked, or will park, and needs one back.  Its VP, if
 * it carries one, is dormant until then.
 */
static void k_taken(struct act *c)
{
	struct vp *vp = k_vp_of(c);

	atomic_store(&c->ktaken, READ_ONCE(c->kidle) ? KTAKEN_IDLE : KTAKEN_BUSY);
	if (vp)
		sched_vp_dormant(vp, VPD_TAKEN);
}

/* k_awake - @c goes on with a processor: its VP is no longer dormant. */
static void k_awake(struct act *c)
{
	struct vp *vp = k_vp_of(c);

	atomic_store(&c->ktaken, 0);
	if (vp)
		sched_vp_awoken(vp);
}

/* k_resume - give the caller's processor to parked @c; the caller is a
 * spare until it is given one again. */
static long k_resume(struct act *c)
{
	k_awake(c);
	return k_ctl(SA_CTL_SWITCH, (unsigned long)c->kid, 0);
}

/*
 * k_find_taken - an activation parked by k_taken() (not @self), or NULL;
 * with @claim, the caller alone resumes it.  With @urgent, only one that
 * was not idle: one taken in its idle loop's SA_CTL_IDLE (KTAKEN_IDLE)
 * holds nothing and has nothing to run, and waits for a processor the
 * kernel adds rather than take another VP's (two idle VPs would hand
 * one processor back and forth).
 */
static struct act *k_find_taken(struct act *self, bool claim, bool urgent)
{
	struct act *idle = NULL;

	for (uint32_t i = 0; i < kmax; i++) {
		struct act *c = atomic_load_explicit(&kacts[i], memory_order_acquire);
		uint32_t t;

		if (!c || c == self)
			continue;
		t = atomic_load_explicit(&c->ktaken, memory_order_relaxed);
		if (!t || kstate(c) != SA_STATE_PARKED)
			continue;
		if (t == KTAKEN_IDLE) {
			if (!idle && !urgent)
				idle = c;
			continue;
		}
		if (!claim || atomic_compare_exchange_strong(&c->ktaken, &t, 0))
			return c;
	}
	if (idle && claim) {
		uint32_t t = KTAKEN_IDLE;

		if (!atomic_compare_exchange_strong(&idle->ktaken, &t, 0))
			return NULL;
	}
	return idle;
}

/* k_find_lost - an activation whose block gave no processor on and that
 * is still blocked or parked (k_stranded() deals with them). */
static bool k_find_lost(void)
{
	for (uint32_t i = 0; i < kmax; i++) {
		struct act *c = atomic_load_explicit(&kacts[i], memory_order_acquire);
		uint32_t st;

		if (!c || !atomic_load_explicit(&c->klost, memory_order_relaxed))
			continue;
		st = kstate(c);
		if (st == SA_STATE_BLOCKED || st == SA_STATE_PARKED)
			return true;
	}
	return false;
}

/* k_any_free_vp - a VP nobody carries exists. */
static bool k_any_free_vp(void)
{
	for (uint32_t i = 0; i < rt.nvps; i++)
		if (atomic_load(&rt.vps[i].dormant) == VPD_FREE)
			return true;
	return false;
}

/* k_free_vp - claim a dormant VP that nobody carries: one with I/O in
 * flight (only a carrier harvests its ring) or queued work first. */
static struct vp *k_free_vp(void)
{
	struct vp *best = NULL;

	for (uint32_t i = 0; i < rt.nvps; i++) {
		struct vp *v = &rt.vps[i];

		if (atomic_load(&v->dormant) != VPD_FREE)
			continue;
		if (!best || READ_ONCE(v->io_inflight) ||
		    atomic_load_explicit(&v->nr_queued, memory_order_relaxed))
			best = v;
	}
	if (best) {
		uint32_t f = VPD_FREE;

		if (!atomic_compare_exchange_strong(&best->dormant, &f, VPD_ACTIVE))
			return NULL; /* another spare was faster: look again */
	}
	return best;
}

/* k_free_io - a VP nobody carries has I/O in flight. */
static bool k_free_io(const struct vp *self)
{
	for (uint32_t i = 0; i < rt.nvps; i++) {
		struct vp *v = &rt.vps[i];

		if (v != self && atomic_load(&v->dormant) == VPD_FREE && READ_ONCE(v->io_inflight))
			return true;
	}
	return false;
}

/**
 * kernel_give_up - @vp's carrier, idle, should leave @vp and use its
 * processor elsewhere: an activation lost its processor inside libsa or
 * in a uthread (k_taken()), or blocked with none to hand on, or a VP
 * without a processor has I/O in flight that only a carrier harvests
 * (and @vp has none).  Only while the group is short of processors.
 */
bool kernel_give_up(struct vp *vp)
{
	if (likely(!k_short()))
		return false;
	if (k_find_taken(NULL, false, true) || k_find_lost())
		return true;
	return !READ_ONCE(vp->io_inflight) && k_free_io(vp);
}

/**
 * kernel_spin_help - a spin lock waits long: its holder may be an
 * activation that lost its processor where it stood.  Sleep a little: the
 * sleep is a block, and the spare given our processor passes it to the
 * parked activation (k_decline_step()).
 */
void kernel_spin_help(void)
{
	struct act *a = act_self();
	struct timespec ts = { 0, KSPIN_NAP_NS };

	if (!a || a->kid < 0 || kstate(a) != SA_STATE_RUNNING || !k_short() ||
	    !k_find_taken(a, false, true))
		return;
	sa_syscall6(SYS_nanosleep, (long)&ts, 0, 0, 0, 0, 0);
}

static void k_spare_request(void)
{
	atomic_fetch_add_explicit(&kspare_word, 1, memory_order_release);
	futex_wake(&kspare_word, 1);
}

/**
 * kernel_poll - consume the events in the ring (any thread may; each is
 * taken by one).  Unblocked activations whose VP was taken have their
 * uthread made runnable; a block that found no spare asks for spares.
 */
void kernel_poll(void)
{
	bool took = false;
	uint32_t h, t, d;

	if (unlikely(atomic_load_explicit(&kdemand_want, memory_order_relaxed) !=
		     atomic_load_explicit(&kdemand, memory_order_relaxed)))
		k_demand_apply();

	for (;;) {
		struct sa_event ev;
		struct act *c;

		h = __atomic_load_n(&khdr->ring_head, __ATOMIC_RELAXED);
		t = __atomic_load_n(&khdr->ring_tail, __ATOMIC_ACQUIRE);
		if (h == t)
			break;
		ev = kring[h & kmask];
		if (!__atomic_compare_exchange_n(&khdr->ring_head, &h, h + 1, false,
						 __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			continue;
		took = true;
		c = ev.act < kmax ? atomic_load_explicit(&kacts[ev.act], memory_order_acquire) : NULL;
		switch (ev.type) {
		case SA_EV_UNBLOCKED:
			if (c && (ev.arg & SA_EVF_RESUMED)) {
				atomic_store(&c->klost, 0); /* it took a processor */
				k_awake(c);
			} else if (c) {
				k_claim(c);
			}
			break;
		case SA_EV_PREEMPTED:
			/* Parked where it stood: the grant shrank. */
			if (c && (ev.arg & SA_EVF_TAKEN)) {
				atomic_fetch_add(&rt.procs_taken, 1);
				k_taken(c);
			}
			break;
		case SA_EV_BLOCKED:
		case SA_EV_EXITED:
			if (ev.arg & SA_EVF_TAKEN) {
				/* Its processor went back, not to a spare: a
				 * processor of ours deals with the block when
				 * there is one (k_stranded()). */
				struct vp *vp = c ? k_vp_of(c) : NULL;

				atomic_fetch_add(&rt.procs_taken, 1);
				if (c && ev.type == SA_EV_BLOCKED)
					atomic_store(&c->klost, 1);
				if (vp)
					sched_vp_dormant(vp, VPD_TAKEN);
				break;
			}
			if (!(ev.arg & SA_EVF_LOST))
				break;
			/* Nobody got its processor: k_stranded() deals with
			 * the block when a processor comes back. */
			if (c && ev.type == SA_EV_BLOCKED)
				atomic_store(&c->klost, 1);
			k_spare_request();
			break;
		default:
			break;
		}
	}
	/* The kernel drops an event only when the ring is full, so whoever
	 * drains it looks: an empty ring costs two loads. */
	if (!took)
		return;
	d = __atomic_load_n(&khdr->ring_dropped, __ATOMIC_RELAXED);
	if (unlikely(d != atomic_load_explicit(&kdropped, memory_order_relaxed))) {
		atomic_store_explicit(&kdropped, d, memory_order_relaxed);
		k_claim_all();
	}
}

/** kernel_pending - events wait in the ring.  Async-signal-safe. */
bool kernel_pending(void)
{
	return __atomic_load_n(&khdr->ring_tail, __ATOMIC_ACQUIRE) !=
	       __atomic_load_n(&khdr->ring_head, __ATOMIC_RELAXED);
}

/**
 * kernel_park - the calling VP has nothing to run: wait in the kernel,
 * keeping the processor, until kicked, an event, or @deadline.  True when
 * the park should end (a deadline or events to look at), false to look
 * at the park word again.
 */
bool kernel_park(uint64_t deadline)
{
	uint32_t t = __atomic_load_n(&khdr->ring_tail, __ATOMIC_ACQUIRE);
	struct act *a;
	long r;

	if (t != __atomic_load_n(&khdr->ring_head, __ATOMIC_RELAXED))
		return true;
	/* A VP nobody carries waits for its I/O: look again now and then
	 * (kernel_give_up()); the other reasons come with events. */
	if (k_short() && k_free_io(NULL))
		deadline = kernel_ring_deadline(deadline);
	a = act_self();
	WRITE_ONCE(a->kidle, true); /* taken here: nothing to resume it for */
	r = k_ctl(SA_CTL_IDLE, t, deadline == DEADLINE_NONE ? 0 : deadline);
	WRITE_ONCE(a->kidle, false);
	return r != 0 && r != -EINTR; /* a kick: the park word says */
}

/** kernel_kick - wake @vp, parked in kernel_park(). */
void kernel_kick(struct vp *vp)
{
	struct act *c = atomic_load_explicit(&vp->act, memory_order_acquire);

	if (c && c->kid >= 0)
		k_ctl(SA_CTL_WAKE, (unsigned long)c->kid, 0);
}

/** kernel_quiet - @vp's carrier's sleeps are (not) blocks from now on. */
void kernel_quiet(struct vp *vp, bool on)
{
	struct act *c = atomic_load_explicit(&vp->act, memory_order_relaxed);

	if (c->kid >= 0)
		__atomic_store_n(&kslots[c->kid].flags, on ? SA_SLOT_QUIET : 0, __ATOMIC_RELEASE);
}

/** kernel_ring_deadline - a quiet I/O wait's deadline: events cannot end
 * it, so while an activation is blocked it is bounded. */
uint64_t kernel_ring_deadline(uint64_t deadline)
{
	uint64_t soon;

	if (!atomic_load_explicit(&kblocked, memory_order_relaxed) &&
	    !(k_short() && (k_free_io(NULL) || k_find_taken(NULL, false, true) || k_find_lost())))
		return deadline;
	soon = now_ns() + KRING_POLL_NS;
	return soon < deadline ? soon : deadline;
}

/** kernel_switch - the caller gives its processor to parked @to and
 * sleeps as a spare.  0 once given a processor again, or -errno. */
long kernel_switch(struct act *to)
{
	return k_ctl(SA_CTL_SWITCH, (unsigned long)to->kid, 0);
}

/* ------------------------------------------------------------------------
 * Spares
 */

/*
 * k_decline_step - @s holds the processor of @c, which is blocked holding
 * libsa state: if @c is parked, give the processor back to it; if it
 * came back on a processor of its own, ours is surplus; else wait a
 * while.  Called with @c->kbusy held, which it releases unless it waited.
 * Returns the switch's result (0: @s has a processor again), 1 (surplus),
 * or -EAGAIN (it waited: look at @c again).
 */
static long k_decline_step(struct act *s, struct act *c)
{
	uint32_t st = kstate(c), t;
	struct act *p;

	/*
	 * An activation that lost its processor where it stood may hold what
	 * C waits for (a spin lock: kernel_spin_help()).  It gets ours, and C
	 * waits for a processor as it does.
	 */
	if (k_short() && (st == SA_STATE_BLOCKED || st == SA_STATE_PARKED) &&
	    (p = k_find_taken(s, true, true)) != NULL) {
		if (p != c)
			k_taken(c);
		atomic_store(&c->kbusy, 0);
		return k_resume(p);
	}
	if (st == SA_STATE_PARKED) {
		atomic_store(&c->kbusy, 0);
		return k_resume(c);
	}
	if (st != SA_STATE_BLOCKED) {
		atomic_store(&c->kbusy, 0);
		return 1;
	}
	/*
	 * No kernel_poll() here: a claim queues a uthread, under a run-queue
	 * lock that C may hold while it waits for our processor.  The VPs
	 * consume the events; an event only ends the wait.
	 */
	t = __atomic_load_n(&khdr->ring_tail, __ATOMIC_ACQUIRE);
	if (kstate(c) == SA_STATE_BLOCKED)
		k_ctl(SA_CTL_IDLE, t, now_ns() + KDECLINE_POLL_NS);
	return -EAGAIN;
}

/*
 * k_takeover - @s got the processor of blocked @c (whose block it alone
 * handles): take @c's VP if @c stopped where that is safe, else decline.
 * Returns the VP for @s to carry, or NULL (declined; @s is a spare again
 * or holds a processor with a new mailbox: look again).
 */
static struct vp *k_takeover_locked(struct act *s, struct act *c, long *res);

static struct vp *k_takeover(struct act *s, struct act *c, long *res)
{
	/*
	 * One spare at a time decides about C's block: two may hold a block
	 * of C each (C came back on a free processor and blocked again
	 * before the first had decided), or one a block and one a processor
	 * C lost.  Both taking the VP would give it two carriers; one
	 * switching back to C while the other's claim resumes it would
	 * resume it twice.  The second does not wait for the first, which
	 * may itself be blocked and need its processor (k_stranded()): it
	 * asks it to look at C again when done (kpending), and its own
	 * processor is surplus.
	 */
	atomic_store(&c->kpending, 1);
	for (;;) {
		uint32_t z = 0;
		struct vp *vp;

		if (!atomic_compare_exchange_strong(&c->kbusy, &z, 1)) {
			*res = 1;
			return NULL;
		}
		atomic_store(&c->kpending, 0);
		vp = k_takeover_locked(s, c, res);
		/* Taken, or our processor went back to C: nothing to look
		 * at any more.  Surplus: unless asked to look again. */
		if (vp || *res != 1 || !atomic_load(&c->kpending))
			return vp;
	}
}

/*
 * k_takeover_locked - k_takeover() with @c->kbusy held, which it
 * releases.  A block that cannot be taken over is declined, and looked
 * at again while the decline waits: C may have come back and blocked
 * anew, in the uthread's code, meanwhile (a wait for the park of that
 * block could last as long as the block, with the VP stalled).
 */
static struct vp *k_takeover_locked(struct act *s, struct act *c, long *res)
{
	struct vp *vp;
	struct uthread *cur;
	uintptr_t ip;
	bool ok;

	*res = 0;
	atomic_store(&c->klost, 0);
again:
	if (atomic_load(&c->state) == ACT_BLOCKED &&
	    atomic_load(&c->kclaim) != KCLAIM_SELF) {
		/*
		 * Its VP was taken at an earlier block, and C came back on
		 * a free processor and blocked again before it learnt so:
		 * its uthread is claimed when it parks (or C ends the block
		 * itself if it comes back on a free processor again).  Our
		 * processor is one more than the VPs need.
		 */
		atomic_store(&c->kbusy, 0);
		*res = 1;
		return NULL;
	}
	/* Not carrying, or in the middle of handing its VP to a parked
	 * activation (act_resume_parked()), or ending a block of its own
	 * (act_unblocked()): it is inside libsa. */
	vp = atomic_load_explicit(&c->vp, memory_order_relaxed);
	if (atomic_load(&c->state) != ACT_CARRYING || !vp || READ_ONCE(c->resume) ||
	    atomic_load_explicit(&vp->act, memory_order_relaxed) != c)
		goto decline;
	cur = READ_ONCE(vp->cur);
	ip = (uintptr_t)kslots[c->kid].regs.ip;
	if (!cur || (cur->flags & UTF_IDLE) || READ_ONCE(vp->np) || text_in_libsa(ip) ||
	    text_in_sanitizer(ip))
		goto decline;
	/*
	 * C cannot run user code while it is BLOCKED or PARKED, but it may
	 * come back on a lost processor of the group at any moment: the
	 * handshake of act.c, then the same look again.
	 */
	if (!act_takeover_begin(c))
		goto decline;
	ok = (kstate(c) == SA_STATE_BLOCKED || kstate(c) == SA_STATE_PARKED) &&
	     (uintptr_t)kslots[c->kid].regs.ip == ip && READ_ONCE(vp->cur) == cur &&
	     !READ_ONCE(vp->np);
	if (!ok) {
		act_takeover_end(c, NULL, false);
		goto decline;
	}
	/* A new block: its uthread may be claimed once (k_claim()); reset
	 * only here, so that no late claimer of the last block sees 0. */
	atomic_store(&c->kclaim, KCLAIM_NONE);
	act_takeover_commit(c);
	atomic_fetch_add(&kblocked, 1);
	smp_mb(); /* ACT_BLOCKED before the look at the kernel state */
	atomic_store(&c->kbusy, 0);
	k_claim(c); /* parked already: its unblocked event may be gone */
	k_spare_request(); /* one spare fewer */
	return vp;

decline:
	*res = k_decline_step(s, c);
	if (*res == -EAGAIN)
		goto again;
	return NULL;
}

/*
 * k_stranded - @s holds a processor no block gave it: one the group had
 * lost (given to a new spare), its own after an unblock that took a free
 * one, or one whose block it found taken care of.  An activation whose
 * block found no spare (SA_EVF_LOST in the ring) and that is still
 * blocked or parked - a VP's carrier, or a spare that blocked while it
 * dealt with a block - is dealt with as if its block had given us the
 * processor.  Returns the VP to carry, or NULL with *@res as
 * k_decline_step()'s, or 1 if there is none.
 */
static struct vp *k_stranded(struct act *s, long *res)
{
	*res = 1;
	kernel_poll(); /* the lost blocks are in the ring */
	for (uint32_t i = 0; i < kmax; i++) {
		struct act *c = atomic_load_explicit(&kacts[i], memory_order_acquire);
		uint32_t one = 1, st;

		if (!c || c == s || !atomic_load(&c->klost))
			continue;
		st = kstate(c);
		if ((st != SA_STATE_BLOCKED && st != SA_STATE_PARKED) ||
		    !atomic_compare_exchange_strong(&c->klost, &one, 0))
			continue;
		return k_takeover(s, c, res);
	}
	return NULL;
}

/* kernel_spare_wait - the spare loop: sleep in the kernel until given a
 * processor, then decide from the mailbox what to carry. */
static struct vp *kernel_spare_wait(struct act *a)
{
	for (;;) {
		struct sa_event mb;
		struct act *c;
		struct vp *vp;
		bool fresh;
		long r = 0;

		if (atomic_load(&rt.stopping))
			return NULL;
		if (a->kid < 0 && a->krescue) {
			/* Made to take a processor nobody holds (the maker). */
			r = k_register(a, SA_REG_RUNNING);
			if (r == -EBUSY)
				r = k_register(a, SA_REG_SPARE);
		} else if (a->kid < 0)
			r = k_register(a, SA_REG_SPARE);
		else if (kstate(a) != SA_STATE_RUNNING)
			r = k_ctl(SA_CTL_WAIT, SA_WAIT_SPARE, 0);
		if (r == -EINTR)
			continue;
		if (r == -ESHUTDOWN)
			return NULL; /* the group was dissolved: the process exits */
		if (r < 0)
			sa_panic("a spare activation cannot wait in the kernel: %s",
				 strerror((int)-r));
		if (atomic_load(&rt.stopping))
			return NULL;
		mb = kslots[a->kid].mailbox;
		fresh = mb.seq != a->kmb_seq; /* not one acted on already */
		a->kmb_seq = mb.seq;
		if (fresh && mb.type == SA_EV_PROCESSOR)
			atomic_fetch_add(&rt.procs_added, 1);
		if (fresh && mb.type == SA_EV_BLOCKED && mb.act < kmax) {
			/* Each block's mailbox goes to one spare: ours alone. */
			c = atomic_load_explicit(&kacts[mb.act], memory_order_acquire);
			if (c) {
				vp = k_takeover(a, c, &r);
				if (vp)
					return vp;
				if (r <= 0)
					continue; /* switched back: a spare (or given one) */
			}
		}
		vp = k_stranded(a, &r);
		if (vp)
			return vp;
		if (r <= 0)
			continue;
		/* The add-processor upcall, or a processor no longer needed
		 * where it was: an activation parked without one first (it
		 * may hold a lock), then a VP without a carrier. */
		c = k_find_taken(a, true, false);
		if (c) {
			k_resume(c);
			continue;
		}
		vp = k_free_vp();
		if (vp)
			return vp;
		/* Nothing for this processor: give it up (and wait as a
		 * spare: the top of the loop sees the state). */
		k_ctl(SA_CTL_WAIT, 0, 0);
	}
}

/*
 * The spare maker: keeps one spare per VP ready, so that a block finds
 * one; spares end only with the process.  Every activation that blocks
 * holds a kernel thread until it comes back, and a storm of blocks (the
 * first touches of many new stacks, contending for the memory map with
 * the very thread creation that makes spares) would make one for each:
 * thousands of threads, which ran a 1 GiB machine out of memory.  So
 * there are at most KACTS_SOFT_MAX; beyond, a block finds no spare and
 * its processor is lost until it or another comes back, which is the
 * emulated backend's stall, bounded by the blocks in progress.
 */
#define KACTS_SOFT_MAX(nvps) (64 + 4 * (nvps))

/*
 * The demand (SA_CTL_SET_PROCESSORS): how many processors the process can
 * use now, which the kernel weighs against other processes'.  By default
 * it is the VPs (at most the CPUs), for good: the adaptive demand below
 * ($SA_DEMAND=adaptive) passes its own test in the guest, but with it
 * the I/O suites there timed out (a VP waiting in its ring when the
 * processors shrink; not understood yet).  With it, the maker
 * samples it every KDEMAND_PERIOD_MS: the VPs that are not parked idle,
 * plus the uthreads queued, at most the VPs (and the online CPUs).  It
 * rises at once, when a sample says so or when work is queued with every
 * VP busy (kernel_want_more()), and falls only after KDEMAND_LOW_SAMPLES
 * samples in a row say less, so that a process that pauses now and then
 * keeps its processors.  A processor given back so is an idle VP's (the
 * kernel takes those first), which a spare resumes when one is added.
 */
#define KDEMAND_PERIOD_MS 100
#define KRESCUE_POLL_MS 10
#define KDEMAND_LOW_SAMPLES 5


/*
 * k_demand_set - ask for @n processors.  Only an activation may (the
 * maker is none): the wish is left in kdemand_want for the next one to
 * pass kernel_poll(), and an idle VP is woken to be that one.
 */
static void k_demand_set(uint32_t n)
{
	if (n == atomic_load(&kdemand_want))
		return;
	atomic_store(&kdemand_want, n);
	sched_kick_parked(false);
}

/* k_demand_apply - the calling activation makes kdemand_want the demand. */
static void k_demand_apply(void)
{
	struct act *a = act_self();
	uint32_t n = atomic_load(&kdemand_want);

	if (!a || a->kid < 0 || kstate(a) != SA_STATE_RUNNING)
		return;
	if (k_ctl(SA_CTL_SET_PROCESSORS, n, 0) == 0)
		atomic_store(&kdemand, n);
}

/* k_demand_sample - the maker's look at what the VPs could use now. */
static void k_demand_sample(void)
{
	uint32_t want = 0, queued = 0;

	if (atomic_exchange(&kwant_more, 0)) {
		kdemand_low = 0;
		return;
	}
	for (uint32_t i = 0; i < rt.nvps; i++) {
		struct vp *v = &rt.vps[i];

		queued += atomic_load_explicit(&v->nr_queued, memory_order_relaxed) +
			  (atomic_load_explicit(&v->next, memory_order_relaxed) != NULL);
		switch (atomic_load_explicit(&v->dormant, memory_order_relaxed)) {
		case VPD_ACTIVE:
			/* One parked in its ring harvests I/O there. */
			want += !atomic_load_explicit(&v->parked, memory_order_relaxed) ||
				READ_ONCE(v->io_inflight) != 0;
			break;
		case VPD_FREE:
			want += READ_ONCE(v->io_inflight) != 0;
			break;
		default: {
			/* Stopped in a uthread, not in its idle loop. */
			struct act *c = atomic_load_explicit(&v->act, memory_order_relaxed);

			want += c && c->kid >= 0 && !text_in_libsa((uintptr_t)kslots[c->kid].regs.ip);
			break;
		}
		}
	}
	want += queued;
	want = want < 1 ? 1 : want > kdemand_max ? kdemand_max : want;
	if (want >= atomic_load(&kdemand_want)) {
		kdemand_low = 0;
		k_demand_set(want);
	} else if (++kdemand_low >= KDEMAND_LOW_SAMPLES) {
		kdemand_low = 0;
		k_demand_set(want);
	}
}

/**
 * kernel_want_more - work was queued while every VP is busy: if the
 * demand is below the VPs, the maker raises it now.
 */
void kernel_want_more(void)
{
	if (atomic_load_explicit(&kdemand_want, memory_order_relaxed) >= kdemand_max)
		return;
	atomic_store(&kdemand_want, kdemand_max);
	atomic_store(&kwant_more, 1); /* the maker starts counting again */
	k_demand_apply(); /* from a VP: at once */
}

static void *kspare_main(void *arg)
{
	unsigned stranded = 0;

	(void)arg;
	pthread_setname_np(pthread_self(), "sa-spares");
	while (!atomic_load(&rt.stopping)) {
		uint32_t w = atomic_load_explicit(&kspare_word, memory_order_acquire);
		struct sa_info in;
		struct timespec ts = { 0, KDEMAND_PERIOD_MS * 1000 * 1000 };

		if (kdemand_adaptive)
			k_demand_sample();
		/*
		 * A processor nobody holds (one given up with SA_CTL_WAIT)
		 * goes only to an activation that unblocks or registers
		 * RUNNING.  One parked earlier that nobody resumes, or a VP
		 * nobody carries, would wait for it forever: if both are
		 * seen twice in a row, a new activation takes the processor
		 * and deals with them as a spare given one would.
		 */
		if (k_ctl(SA_CTL_INFO, (unsigned long)&in, sizeof(in)) == 0 &&
		    in.held + in.lost < in.granted && in.granted <= in.target &&
		    (k_find_lost() || k_find_taken(NULL, false, true) || k_any_free_vp())) {
			if (++stranded >= 2) {
				struct act *n = act_new();

				stranded = 0;
				if (n) {
					n->krescue = true;
					if (act_start_thread(n, NULL))
						fprintf(stderr, "libsa: cannot start an activation\n");
				}
			}
			ts.tv_nsec = KRESCUE_POLL_MS * 1000 * 1000;
		} else {
			stranded = 0;
		}
		/*
		 * A VP parked in its ring waits quietly: the events that ask
		 * for a processor (one taken, a block with no spare) do not
		 * end that wait, and the bound kernel_ring_deadline() puts on
		 * it was decided when it began.  While the group is short,
		 * one such VP is woken to look whenever events wait.
		 */
		if (k_short()) {
			if (kernel_pending())
				sched_kick_parked(true);
			if (ts.tv_nsec > KRESCUE_POLL_MS * 1000 * 1000)
				ts.tv_nsec = KRESCUE_POLL_MS * 1000 * 1000;
		}

		if (k_ctl(SA_CTL_INFO, (unsigned long)&in, sizeof(in)) == 0 &&
		    in.spare < rt.nvps && in.nr_acts < in.max_acts &&
		    in.nr_acts < KACTS_SOFT_MAX(rt.nvps)) {
			struct act *n = act_new();

			if (!n || act_start_thread(n, NULL)) {
				fprintf(stderr, "libsa: cannot start a spare activation\n");
				futex_wait(&kspare_word, w, &ts);
			}
			continue;
		}
		futex_wait(&kspare_word, w, &ts);
	}
	return NULL;
}

/*
 * With $SA_DEBUG_DUMP set, SIGQUIT prints what the backend knows to
 * standard error and the process goes on: the VPs, the activations in
 * libsa's view and the kernel's, the group's counters.  For finding a
 * stall; racy reads, never a lock.
 */
static void k_dump_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void k_dump_line(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		sa_syscall6(SYS_write, 2, (long)buf, n < (int)sizeof(buf) ? n : (int)sizeof(buf) - 1,
			    0, 0, 0);
}

static void k_dump(int sig)
{
	(void)sig;
	k_dump_line("libsa: dump: granted=%u held=%u lost=%u target=%u demand=%u ring=%u/%u "
		    "kblocked=%u kdemand=%u\n", khdr->granted, khdr->held, khdr->lost,
		    khdr->target, khdr->demand, khdr->ring_head, khdr->ring_tail,
		    atomic_load(&kblocked), atomic_load(&kdemand));
	for (uint32_t i = 0; i < rt.nvps; i++) {
		struct vp *v = &rt.vps[i];
		struct act *c = atomic_load(&v->act);

		k_dump_line("libsa: dump: vp%u dormant=%u parked=%u queued=%u next=%p cur=%p "
			    "act=%d io=%u\n", i, atomic_load(&v->dormant), atomic_load(&v->parked),
			    atomic_load(&v->nr_queued), (void *)atomic_load(&v->next),
			    (void *)READ_ONCE(v->cur), c ? c->kid : -2, v->io_inflight);
	}
	for (uint32_t i = 0; i < kmax; i++) {
		struct act *c = atomic_load(&kacts[i]);
		struct vp *v;

		if (!c)
			continue;
		v = atomic_load(&c->vp);
		k_dump_line("libsa: dump: act%u tid=%d state=%u kstate=%u vp=%d taken=%u lost=%u "
			    "claim=%u busy=%u blocked=%p resume=%p ip=%#llx mb=%u/%u\n", i, c->tid,
			    atomic_load(&c->state), kstate(c), v ? (int)v->index : -1,
			    atomic_load(&c->ktaken), atomic_load(&c->klost), atomic_load(&c->kclaim),
			    atomic_load(&c->kbusy), (void *)c->blocked, (void *)c->resume,
			    (unsigned long long)kslots[i].regs.ip, kslots[i].mailbox.type,
			    kslots[i].mailbox.act);
	}
}

static int kernel_run(void)
{
	pthread_attr_t at;
	sigset_t old;
	pthread_t t;
	int r;

	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	act_sigmask_internal(&old);
	r = pthread_create(&t, &at, kspare_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&at);
	if (r)
		return -EAGAIN;
	if (getenv("SA_DEBUG_DUMP")) {
		struct sigaction sa = { .sa_handler = k_dump, .sa_flags = SA_RESTART };

		sigemptyset(&sa.sa_mask);
		sigaction(SIGQUIT, &sa, NULL);
	}
	act_takeover_prepare();
	return upcall_watchdog_start(false);
}

/* The runtime stops: every spare leaves its wait (our SIGURG, a signal
 * its handler ignores) and ends. */
static void kernel_wake_spares(void)
{
	k_spare_request();
	spin_lock(&rt.act_lock);
	for (uint32_t i = 0; i < rt.nacts; i++) {
		struct act *a = rt.acts[i];

		if (a->kid >= 0 && atomic_load(&a->state) == ACT_SPARE)
			sa_syscall6(SYS_tgkill, getpid(), a->tid, SIGURG, 0, 0, 0);
	}
	spin_unlock(&rt.act_lock);
}

/*
 * The process exits (rt.stopping is set): the group is dissolved, so that
 * every thread goes on as a plain one - a parked one returns to its
 * uthread, whose vp_self() then says it carries no VP, and a blocked one
 * goes on when it wakes, as with the emulated backend.
 */
static void kernel_exiting(void)
{
	k_ctl(SA_CTL_DISSOLVE, 0, 0);
	/* Idle VPs park on their futex from now on. */
	upcall_kernel_on = false;
}

static void kernel_fork_child(void)
{
	if (kfd >= 0)
		close(kfd);
	kfd = -1;
	khdr = NULL; /* the mapping is not inherited */
	kslots = NULL;
	kring = NULL;
	upcall_kernel_on = false;
	memset(kacts, 0, sizeof(kacts));
	atomic_store(&kblocked, 0);
	atomic_store(&kdropped, 0);
	atomic_store(&kwant_more, 0);
	kdemand_low = 0;
}

const struct upcall_backend upcall_kernel = {
	.name = "kernel",
	.id = SA_BACKEND_KERNEL,
	.probe = kernel_probe,
	.start = kernel_start,
	.run = kernel_run,
	.enter = kernel_enter,
	.leave = kernel_leave,
	.displaced = kernel_displaced,
	.fork_child = kernel_fork_child,
	.spare_wait = kernel_spare_wait,
	.wake_spares = kernel_wake_spares,
	.exiting = kernel_exiting,
};
