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
 * Why not RELEASE.  SA_CTL_RELEASE would turn a parked activation into a
 * spare and leave its registers in its slot, from which the uthread could
 * be rebuilt in user space - but not its vector registers, its flags
 * after a fault, or its red zone.  Switching to the activation keeps all
 * of them.
 */

#include <sys/mman.h>
#include <sys/utsname.h>

#include "upcall/upcall.h"
#include "upcall/sa_abi.h"

#define KRING_POLL_NS (1000 * 1000ull)
#define KDECLINE_POLL_NS (10 * 1000 * 1000ull)
#define KSTART_WAIT_MS 2000

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
	const char *want = getenv("SA_BACKEND");
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
	/*
	 * Asked for by name, wait a while for a grant that is short: the
	 * allocator shares the CPUs among groups, and another process's
	 * group may be on its way out (a test that just ended, say).
	 */
	for (int i = 0; want && strcmp(want, "kernel") == 0 && i < KSTART_WAIT_MS &&
	     __atomic_load_n(&h->granted, __ATOMIC_ACQUIRE) < upcall_nvps; i++) {
		struct timespec ms = { 0, 1000 * 1000 };

		nanosleep(&ms, NULL);
	}
	if (h->granted < upcall_nvps) {
		/* Every VP needs a processor of its own from the start. */
		if (want && strcmp(want, "kernel") == 0)
			fprintf(stderr, "libsa: the kernel grants %u processors and %u VPs "
				"were asked for\n", h->granted, upcall_nvps);
		munmap(h, 4096);
		close((int)fd);
		return -EBUSY;
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

static int kernel_enter(struct act *a)
{
	if (a->kid < 0) {
		long r = k_register(a, SA_REG_RUNNING);

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
			if (c && (ev.arg & SA_EVF_RESUMED))
				atomic_store(&c->klost, 0); /* it took a processor */
			else if (c)
				k_claim(c);
			break;
		case SA_EV_BLOCKED:
		case SA_EV_EXITED:
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
	long r;

	if (t != __atomic_load_n(&khdr->ring_head, __ATOMIC_RELAXED))
		return true;
	r = k_ctl(SA_CTL_IDLE, t, deadline == DEADLINE_NONE ? 0 : deadline);
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

	if (!atomic_load_explicit(&kblocked, memory_order_relaxed))
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

	(void)s;
	if (st == SA_STATE_PARKED) {
		atomic_store(&c->kbusy, 0);
		return kernel_switch(c);
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
		if (a->kid < 0)
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
		/* Nothing for this processor: give it up (and wait as a
		 * spare: the top of the loop sees the state). */
		k_ctl(SA_CTL_WAIT, 0, 0);
	}
}

/* The spare maker: keeps one spare per VP ready, so that a block finds
 * one; spares end only with the process. */
static void *kspare_main(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "sa-spares");
	while (!atomic_load(&rt.stopping)) {
		uint32_t w = atomic_load_explicit(&kspare_word, memory_order_acquire);
		struct sa_info in;
		struct timespec ts = { 0, 100 * 1000 * 1000 };

		if (k_ctl(SA_CTL_INFO, (unsigned long)&in, sizeof(in)) == 0 &&
		    in.spare < rt.nvps && in.nr_acts < in.max_acts) {
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
