/* sched.c - per-VP run queues, priority classes, the next slot, stealing, idle VPs */

/*
 * Design
 * ======
 *
 * Vocabulary.  A VP (struct vp) is carried by one kernel thread.  The VP's
 * "current" context is either a uthread or the VP's idle context, a context
 * of its own (on VPs 1..N-1 it is the kernel thread's original stack; on
 * VP 0, whose kernel stack belongs to the program's main uthread, it is a
 * small mmap'd stack).  Uthreads switch straight to each other: the idle
 * context runs only when a VP has nothing to do, so a handoff between two
 * uthreads is one sa_ctx_switch(), never two.
 *
 * Run queues.  Each VP has one intrusive doubly-linked FIFO per priority
 * class (SA_PRIO_DEREF, SA_PRIO_SYSTEM, SA_PRIO_NORMAL) under one spinlock,
 * and a bitmask of the non-empty classes that is read without the lock.
 * Doubly linked, because a joiner pulls the child it waits for out of the
 * middle of the queue (sched_boost) and runs it next: that keeps recursive
 * fork-join programs depth-first, so a million-uthread skynet needs only a
 * few hundred stacks at a time instead of one per level-5 node.
 * Rejected: a bounded ring (Go's runq) with a global overflow queue - O(1)
 * steal-half, but no removal from the middle and a second lock to reason
 * about; a Chase-Lev deque - the owner pays a fence on every pop and the
 * classes would need three of them.
 *
 * The next slot.  vp->next holds one runnable uthread that runs before the
 * queue (LIFO).  A uthread woken by a uthread of this VP (mutex handoff,
 * condvar signal, semaphore post, join) and a newly spawned uthread go
 * there: the waker or creator usually blocks soon and its partner then runs
 * at once on the same core, with its data still in cache - a create+join
 * or a condvar ping-pong never leaves the VP.  What the slot held before
 * goes to the back of the queue, where thieves can see it.  The slot never
 * lets a lower class overtake a higher one: pick_next() demotes it to its
 * queue when a higher class is queued.
 *   An idle VP may take a uthread that has sat in another VP's slot while
 * that VP made no switch for NEXT_GRACE_NS (its owner keeps computing), as
 * Go's stealers take runnext only after a grace period.  So the owner puts
 * and takes with an atomic exchange, and the thief with a CAS; without the
 * grace a spinning VP would steal every fresh child before its parent
 * could join it, and create+join would cross cores every time.
 *
 * Switching protocol.  A context that stops running may not become visible
 * to another VP (in a queue, or as a waiter that a waker can find) until
 * its registers are saved.  So everything that publishes the old context is
 * done by the new one, right after the switch, in sched_finish_switch():
 *
 *   1. prev context (on its own stack)        2. next context (after switch)
 *      vp->post = {prev, unlock, requeue}        requeue prev on this VP
 *      vp->cur = next                            prev->on_cpu = 0 (release)
 *      sa_ctx_switch(prev, next) ------------>   unlock the lock prev held
 *                                                release prev's stack if dead
 *
 * A uthread parking on a sync object holds the object's spinlock from
 * queueing itself until step 2, so a waker that finds it under that lock
 * always finds a saved context.  Timers are the one waker that does not
 * take the object's lock; they wait for ->on_cpu to drop instead (as
 * try_to_wake_up() waits for p->on_cpu in Linux), which costs a store per
 * switch and nothing on any path that has the lock.
 *
 * Idle VPs and wakeups.  An idle VP spins for a while looking for work
 * (its queues, expired timers, stealing half of the highest non-empty class
 * of a randomly chosen victim), then parks on its own futex word.  Go's
 * protocol keeps wakeups cheap and never lost:
 *   - rt.nr_spinning counts VPs that are looking for work.  Whoever queues
 *     work wakes a parked VP only if nobody is spinning, and the woken VP
 *     counts as spinning from the moment it is chosen, so one burst of work
 *     costs at most one futex wake.
 *   - The race between "I queue work" and "I go to sleep" is a Dekker
 *     pattern, closed by a full fence on each side:
 *
 *       waker                                parking VP
 *       store: work in a queue (qmask)       nr_idle++ (RMW, full fence)
 *       fence (seq_cst)                      load: every VP's qmask
 *       load: nr_spinning, nr_idle           futex_wait(park_word, 0)
 *
 *     At least one side sees the other's store: either the waker sees the
 *     VP on the idle list and wakes it, or the VP sees the work and does
 *     not sleep.  A spinning VP that stops spinning does the same dance
 *     with nr_spinning-- before its last look.  The futex word itself
 *     closes the last gap (a wake between the check and futex_wait()).
 *   - The last spinner that finds work wakes another VP to spin, so
 *     parallelism ramps up as Go's resetspinning()/wakep() do.
 *   - I/O (io/io.c).  A VP whose io_uring has operations in flight parks
 *     in the ring instead of on the futex (io_uring_enter waiting for one
 *     completion, with the same deadline), so that a completion ends the
 *     park.  It says so in vp->park_ring before it goes on the idle list;
 *     a waker, having taken it off the list under the same lock, then
 *     writes the VP's eventfd instead of calling futex_wake(): still one
 *     system call.  The ring has a read of that eventfd pending whenever
 *     the VP parks there, and the eventfd counter closes the last gap as
 *     the futex word does: a write that lands before the VP enters the
 *     kernel completes the read at once.  park_word, the fences and the
 *     idle list work as above.
 *
 * I/O passes.  Every scheduler pass - after each switch, at a yield that
 * finds nobody to switch to (yield_poll), at each look for work of an
 * idle VP - tests vp->io_inflight, on the cache line of vp->timer_next
 * that it reads anyway, and only when it is non-zero lets the I/O layer
 * submit and harvest (io_pass()).  A yield that switches pays nothing
 * more than the test in sched_finish_switch().
 *
 * Preemption.  The upcall layer (upcall/) calls sched_upcall_preempted()
 * from a tick on the VP's own activation.  A time slice starts when a
 * uthread gets the VP from a run queue or from the idle context; a
 * handoff through the next slot passes the slice on (as Go's runnext
 * does), so two uthreads that ping-pong through it share one slice and
 * cannot keep a queued uthread off the VP for longer than a quantum.  The
 * uthread running when a slice has lasted a whole quantum while something
 * of its class or higher is runnable there (or at once when a timer is
 * due) is made to yield on its own stack, through sa_preempt_stub, which
 * saves and restores its full register state; it goes to the back of its
 * class's queue, where an idle VP can steal it.
 * Ticks that land in libsa's own code never preempt it there (see
 * upcall.c): VP state in the middle of an update is never seen by another
 * uthread of the same VP.  A tick inside a critical section (the run-queue
 * functions marked SA_CRITSEC below) moves the uthread into the section's
 * copy instead, which finishes it and asks for the VP back
 * (critsec/critsec.c).
 */

#include "defs.h"
#include "critsec/critsec.h"
#include "upcall/upcall.h"
#include "io/io.h"

#define IDLE_SPIN_ITERS 2000     /* ~50-100 us of looking before parking */
#define STEAL_MAX 256            /* steal half, at most this many */
#define NEXT_GRACE_NS 20000      /* a next slot this stale may be stolen */
#define PARK_NEXT_NS 1000000     /* re-check others' next slots this often */

static __always_inline uint32_t class_bit(unsigned prio)
{
	return 1u << prio;
}

/* Bits of the classes strictly higher than @prio. */
static __always_inline uint32_t higher_classes(unsigned prio)
{
	return class_bit(prio) - 1;
}

/* ------------------------------------------------------------------------
 * Run queues (caller holds vp->rq_lock, unless a name says otherwise).
 * Every function that touches a queue in uthread context is a critical
 * section (SA_CRITSEC, critsec/critsec.c).
 */

static SA_CRITSEC void rq_update_mask_locked(struct vp *vp, unsigned prio)
{
	uint32_t m = atomic_load_explicit(&vp->nr_queued, memory_order_relaxed);

	if (vp->q[prio].head)
		m |= class_bit(prio);
	else
		m &= ~class_bit(prio);
	atomic_store_explicit(&vp->nr_queued, m, memory_order_relaxed);
}

static SA_CRITSEC void rq_push_tail_locked(struct vp *vp, struct uthread *ut)
{
	struct rq_list *q = &vp->q[ut->prio];

	assert_spin_lock_held(&vp->rq_lock);
	ut->rq_next = NULL;
	ut->rq_prev = q->tail;
	if (q->tail)
		q->tail->rq_next = ut;
	else
		q->head = ut;
	q->tail = ut;
	WRITE_ONCE(ut->on_rq, 1);
	WRITE_ONCE(ut->vp, vp);
	WRITE_ONCE(ut->state, UT_RUNNABLE);
	rq_update_mask_locked(vp, ut->prio);
}

static SA_CRITSEC void rq_push_head_locked(struct vp *vp, struct uthread *ut)
{
	struct rq_list *q = &vp->q[ut->prio];

	ut->rq_prev = NULL;
	ut->rq_next = q->head;
	if (q->head)
		q->head->rq_prev = ut;
	else
		q->tail = ut;
	q->head = ut;
	WRITE_ONCE(ut->on_rq, 1);
	WRITE_ONCE(ut->vp, vp);
	WRITE_ONCE(ut->state, UT_RUNNABLE);
	rq_update_mask_locked(vp, ut->prio);
}

static SA_CRITSEC void rq_remove_locked(struct vp *vp, struct uthread *ut)
{
	struct rq_list *q = &vp->q[ut->prio];

	if (ut->rq_prev)
		ut->rq_prev->rq_next = ut->rq_next;
	else
		q->head = ut->rq_next;
	if (ut->rq_next)
		ut->rq_next->rq_prev = ut->rq_prev;
	else
		q->tail = ut->rq_prev;
	ut->rq_next = ut->rq_prev = NULL;
	WRITE_ONCE(ut->on_rq, 0);
	rq_update_mask_locked(vp, ut->prio);
}

static SA_CRITSEC struct uthread *rq_pop_highest_locked(struct vp *vp)
{
	for (unsigned p = 0; p < SA_NR_PRIO; p++) {
		struct uthread *ut = vp->q[p].head;

		if (ut) {
			rq_remove_locked(vp, ut);
			return ut;
		}
	}
	return NULL;
}

/* rq_push_tail - queue @ut at the back of its class on @vp. */
static SA_CRITSEC void rq_push_tail(struct vp *vp, struct uthread *ut)
{
	spin_lock(&vp->rq_lock);
	rq_push_tail_locked(vp, ut);
	spin_unlock(&vp->rq_lock);
}

static __always_inline uint32_t rq_mask(struct vp *vp)
{
	return atomic_load_explicit(&vp->nr_queued, memory_order_relaxed);
}

/* ------------------------------------------------------------------------
 * Waking idle VPs
 */

/*
 * Not a critical section, though a uthread reaches it through wake_idle():
 * it holds rt.idle_lock for a handful of instructions, a tick there is
 * skipped as in any ordinary libsa text, and no test can make a tick land
 * in it reliably (it runs only while another VP is parked and none spins).
 */
static struct vp *idle_pop(void)
{
	struct vp *v;

	spin_lock(&rt.idle_lock);
	v = rt.idle_list;
	if (v) {
		rt.idle_list = v->idle_next;
		v->idle_next = NULL;
		atomic_store_explicit(&v->parked, 0, memory_order_relaxed);
		atomic_fetch_sub(&rt.nr_idle, 1);
	}
	spin_unlock(&rt.idle_lock);
	return v;
}

/* Remove @v from the idle list if it is still there; true if it was. */
static bool idle_remove(struct vp *v)
{
	bool was = false;

	spin_lock(&rt.idle_lock);
	if (atomic_load_explicit(&v->parked, memory_order_relaxed)) {
		struct vp **pp = &rt.idle_list;

		while (*pp != v)
			pp = &(*pp)->idle_next;
		*pp = v->idle_next;
		v->idle_next = NULL;
		atomic_store_explicit(&v->parked, 0, memory_order_relaxed);
		atomic_fetch_sub(&rt.nr_idle, 1);
		was = true;
	}
	spin_unlock(&rt.idle_lock);
	return was;
}

static void vp_kick(struct vp *v)
{
	struct vp *me = vp_self_nodivert(); /* for the statistics only */

	atomic_store_explicit(&v->park_word, 1, memory_order_release);
	/* I/O: a VP with I/O in flight parks in its ring (io/io.c). */
	if (atomic_load_explicit(&v->park_ring, memory_order_relaxed))
		io_kick(v);
	else if (unlikely(upcall_kernel_on))
		kernel_kick(v);
	else
		futex_wake(&v->park_word, 1);
	if (me)
		stat_inc(&me->stats.wakes);
	else
		atomic_fetch_add(&rt.ext_wakes, 1);
}

/*
 * wake_idle - after queueing work: if nobody is looking for work, wake one
 * parked VP, which counts as spinning from now on.
 */
static void wake_idle(void)
{
	uint32_t zero = 0;
	struct vp *v;

	if (rt.nvps == 1)
		return;
	smp_mb();
	if (atomic_load_explicit(&rt.nr_spinning, memory_order_relaxed) != 0)
		return;
	if (atomic_load_explicit(&rt.nr_idle, memory_order_relaxed) == 0) {
		/* Nobody to take it: the kernel backend may have asked for
		 * fewer processors than VPs while there was less to do. */
		if (unlikely(upcall_kernel_on))
			kernel_want_more();
		return;
	}
	/* Elect one waker, so a burst of work wakes one VP, not many. */
	if (!atomic_compare_exchange_strong(&rt.nr_spinning, &zero, 1))
		return;
	v = idle_pop();
	if (!v) {
		atomic_fetch_sub(&rt.nr_spinning, 1);
		return;
	}
	vp_kick(v);
}

/* wake_queued - work was queued on @target from outside it: wake @target
 * if it is parked, else whoever can look. */
static void wake_queued(struct vp *target)
{
	smp_mb();
	if (idle_remove(target)) {
		atomic_fetch_add(&rt.nr_spinning, 1);
		vp_kick(target);
	} else {
		wake_idle();
	}
}

/* ------------------------------------------------------------------------
 * The next slot
 */

static __always_inline struct uthread *next_peek(struct vp *vp)
{
	return atomic_load_explicit(&vp->next, memory_order_relaxed);
}

/* next_take - empty the slot; NULL if it was empty or a thief was faster. */
static __always_inline struct uthread *next_take(struct vp *vp)
{
	if (!next_peek(vp))
		return NULL;
	return atomic_exchange_explicit(&vp->next, NULL, memory_order_acquire);
}

/* next_put - @ut runs next on @vp; the slot's old occupant is queued. */
static __always_inline void next_put(struct vp *vp, struct uthread *ut)
{
	struct uthread *old = atomic_exchange_explicit(&vp->next, ut, memory_order_acq_rel);

	if (old) {
		rq_push_tail(vp, old);
		wake_idle();
	}
}

/* ------------------------------------------------------------------------
 * Switching
 */

/*
 * sa_ctx_init - lay out a frame that sa_ctx_switch() "returns" from into
 * sa_ctx_trampoline, which calls @entry.  The new context inherits the
 * creator's MXCSR and x87 control word, as a new kernel thread would.
 */
void sa_ctx_init(struct sa_ctx *ctx, void *stack_top, void (*entry)(void))
{
	uint64_t *sp = (uint64_t *)((uintptr_t)stack_top & ~(uintptr_t)15);
	uint32_t mxcsr;
	uint16_t fpucw;

	asm volatile("stmxcsr %0" : "=m"(mxcsr));
	asm volatile("fnstcw %0" : "=m"(fpucw));
	*--sp = 0;                              /* end of the call chain */
	*--sp = (uint64_t)(uintptr_t)sa_ctx_trampoline;
	*--sp = 0;                              /* rbp */
	*--sp = (uint64_t)(uintptr_t)entry;     /* rbx */
	*--sp = 0;                              /* r12 */
	*--sp = 0;                              /* r13 */
	*--sp = 0;                              /* r14 */
	*--sp = 0;                              /* r15 */
	*--sp = (uint64_t)mxcsr | ((uint64_t)fpucw << 32);
	ctx->rsp = sp;
}

static __always_inline void switch_to(struct vp *vp, struct uthread *prev,
				      struct uthread *next, bool prev_dies)
{
	vp->post.prev = prev;
	atomic_store_explicit(&next->on_cpu, 1, memory_order_relaxed);
	WRITE_ONCE(next->state, UT_RUNNING);
	WRITE_ONCE(next->vp, vp);
	WRITE_ONCE(vp->cur, next); /* the watchdog samples it */
	if (!(prev->flags & UTF_IDLE) && !(next->flags & UTF_IDLE))
		stat_inc(&vp->stats.switches);
	if (unlikely(next->flags & UTF_KPARKED)) {
		/* Its activation is parked in the kernel (act.c). */
		act_resume_parked(vp, prev, next, prev_dies);
	} else {
		san_switch_begin(prev, next, prev_dies);
		tls_switch(vp, prev, next);
		sa_ctx_switch(&prev->ctx, &next->ctx);
	}
	/* Running as prev again, maybe on another VP. */
	san_switch_end(prev);
	sched_finish_switch();
}

/**
 * sched_finish_switch - step 2 of the switching protocol: publish the
 * context we switched away from.  Called first thing by every context that
 * gains a VP.
 */
void sched_finish_switch(void)
{
	struct vp *vp = vp_self();
	struct uthread *prev = vp->post.prev;
	spinlock_t *unlock = vp->post.unlock;
	uint64_t next_timer;

	if (vp->post.requeue)
		rq_push_tail_locked(vp, prev); /* rq_lock is ->unlock */
	if (vp->post.dead) {
		vp->post = (struct post_switch){ 0 };
		ut_release_dead(prev); /* releases prev->lock too */
	} else {
		vp->post = (struct post_switch){ 0 };
		atomic_store_explicit(&prev->on_cpu, 0, memory_order_release);
		if (unlock)
			spin_unlock(unlock);
	}

	next_timer = atomic_load_explicit(&vp->timer_next, memory_order_relaxed);
	if (unlikely(next_timer != DEADLINE_NONE))
		timers_run(vp, now_ns());
	io_pass(vp); /* I/O: submit and harvest when ops are in flight */
	if (unlikely(upcall_kernel_on))
		kernel_poll(); /* unblocked uthreads to run */
	act_sigmask_sync(); /* the carriers' signal mask changed (act.c) */
}

/* slice_start - a uthread gets @vp from a queue or the idle context. */
static __always_inline void slice_start(struct vp *vp)
{
	vp->slices++;
	vp->need_resched = 0;
}

/*
 * next_to_queue_locked - the next slot's uthread @n goes back to its queue:
 * at the head (it was to run next), or at the tail when the slice it
 * would have inherited has run out (need_resched).
 */
static __always_inline void next_to_queue_locked(struct vp *vp, struct uthread *n)
{
	if (unlikely(vp->need_resched))
		rq_push_tail_locked(vp, n);
	else
		rq_push_head_locked(vp, n);
}

/*
 * rq_take_highest - the head of @vp's highest non-empty class, the next
 * slot's occupant going back to the head of its queue first; NULL if the
 * queues are empty.
 */
static SA_CRITSEC struct uthread *rq_take_highest(struct vp *vp)
{
	struct uthread *n, *ut;

	spin_lock(&vp->rq_lock);
	n = next_take(vp);
	if (n)
		next_to_queue_locked(vp, n);
	ut = rq_pop_highest_locked(vp);
	spin_unlock(&vp->rq_lock);
	return ut;
}

/*
 * pick_next - the next context to run on @vp: the next slot unless a higher
 * class is queued, else the head of the highest non-empty queue.
 * Returns NULL if there is nothing.
 */
static struct uthread *pick_next(struct vp *vp)
{
	struct uthread *n = next_peek(vp);
	uint32_t mask = rq_mask(vp);

	if (n && !(mask & higher_classes(n->prio)) && likely(!vp->need_resched)) {
		n = next_take(vp);
		if (likely(n)) {
			stat_inc(&vp->stats.next_handoffs);
			return n;
		}
	}
	if (!mask && !next_peek(vp))
		return NULL;
	n = rq_take_highest(vp);
	if (n)
		slice_start(vp); /* from the queue: a time slice of its own */
	return n;
}

/**
 * sched_ready - make a parked @ut runnable.
 *
 * From a VP, @ut goes into the VP's next slot (its old occupant to the
 * queue).  From a thread that is not a VP, it goes to the queue of the VP
 * it last ran on, and a parked VP is woken.  An external waiter is woken
 * on its futex.
 * WARNING: only the one party that won the right to wake @ut (waiter CAS,
 * join, timer) may call this, once.
 */
void sched_ready(struct uthread *ut)
{
	struct vp *vp;

	if (unlikely(ut->flags & UTF_EXTERNAL)) {
		atomic_store_explicit(&ut->park_word, 1, memory_order_release);
		futex_wake(&ut->park_word, 1);
		return;
	}
	/* A timer can fire while @ut is still on its way off a VP. */
	while (atomic_load_explicit(&ut->on_cpu, memory_order_acquire))
		cpu_relax();

	vp = vp_self();
	if (unlikely(!vp)) {
		struct vp *target = READ_ONCE(ut->vp) ? READ_ONCE(ut->vp) : &rt.vps[0];

		if (unlikely(atomic_load_explicit(&target->dormant, memory_order_relaxed)))
			target = sched_vp_awake(target);
		spin_lock(&target->rq_lock);
		rq_push_tail_locked(target, ut);
		spin_unlock(&target->rq_lock);
		wake_queued(target);
		return;
	}

	WRITE_ONCE(ut->state, UT_RUNNABLE);
	WRITE_ONCE(ut->vp, vp);
	next_put(vp, ut);
}

/**
 * sched_ready_new - make a new uthread runnable: in the caller's VP's next
 * slot, or queued on a VP chosen round-robin when the caller is not a VP.
 */
void sched_ready_new(struct uthread *ut)
{
	struct vp *vp = vp_self();

	if (unlikely(!vp)) {
		uint32_t i = atomic_fetch_add(&rt.spawn_rr, 1) % rt.nvps;

		WRITE_ONCE(ut->vp, sched_vp_awake(&rt.vps[i]));
		sched_ready(ut);
		return;
	}
	WRITE_ONCE(ut->state, UT_RUNNABLE);
	WRITE_ONCE(ut->vp, vp);
	next_put(vp, ut);
}

/**
 * sched_boost - run @ut next if it sits in the caller's VP's run queue.
 * Used by a joiner about to wait for @ut.  The caller holds @ut->lock.
 */
SA_CRITSEC void sched_boost(struct uthread *ut)
{
	struct vp *vp = vp_self();
	struct uthread *old;

	if (!vp || READ_ONCE(ut->on_cpu) || READ_ONCE(ut->vp) != vp || !READ_ONCE(ut->on_rq))
		return;
	spin_lock(&vp->rq_lock);
	if (READ_ONCE(ut->on_rq) && READ_ONCE(ut->vp) == vp) {
		rq_remove_locked(vp, ut);
		old = atomic_exchange_explicit(&vp->next, ut, memory_order_acq_rel);
		if (old)
			rq_push_head_locked(vp, old);
	}
	spin_unlock(&vp->rq_lock);
}

static void ext_park_unlock(struct uthread *me, spinlock_t *lock)
{
	/* The waker sets park_word; the caller zeroed it before queueing. */
	spin_unlock(lock);
	while (!atomic_load_explicit(&me->park_word, memory_order_acquire))
		futex_wait(&me->park_word, 0, NULL);
}

/**
 * sched_park_unlock - park the caller until sched_ready(), releasing @lock
 * once the caller's context is saved.  The caller must have made itself
 * findable (waiter queue, joiner field, timer) under @lock and, if it is
 * not a uthread, zeroed its park_word before that.
 */
void sched_park_unlock(spinlock_t *lock)
{
	struct vp *vp = vp_self();
	struct uthread *me, *next;

	if (unlikely(!vp)) {
		ext_park_unlock(ut_ext_self(), lock);
		return;
	}
	me = vp->cur;
	WRITE_ONCE(me->state, UT_PARKED);
	next = pick_next(vp);
	if (!next)
		next = vp->idle;
	vp->post.unlock = lock;
	switch_to(vp, me, next, false);
}

/**
 * sched_exit_switch - leave the VP for good.  The caller holds @me->lock,
 * which sched_finish_switch() releases after releasing the stack.
 */
void sched_exit_switch(struct uthread *me)
{
	struct vp *vp = vp_self();
	struct uthread *next = pick_next(vp);

	if (!next)
		next = vp->idle;
	vp->post.unlock = &me->lock;
	vp->post.dead = 1;
	switch_to(vp, me, next, true);
	sa_panic("a dead uthread ran again");
}

/*
 * yield_poll - a yield that finds nothing to switch to makes no pass of
 * sched_finish_switch(), so it runs the due timers and the I/O pass
 * itself, lest a uthread that computes and yields on a VP of its own keep
 * sleepers and I/O waiters off it.  Returns true if that readied anyone.
 */
static bool yield_poll(struct vp *vp)
{
	uint64_t next_timer = atomic_load_explicit(&vp->timer_next, memory_order_relaxed);

	if (likely(next_timer == DEADLINE_NONE && !vp->io_inflight))
		return false;
	if (next_timer != DEADLINE_NONE)
		timers_run(vp, now_ns());
	io_pass(vp);
	return next_peek(vp) || rq_mask(vp);
}

/*
 * rq_take_for_yield - the head of @vp's highest class if it ranks no lower
 * than @prio, returned with rq_lock held (the switch hands the lock to the
 * next context, which queues the yielder and unlocks); else NULL, unlocked.
 */
static SA_CRITSEC struct uthread *rq_take_for_yield(struct vp *vp, unsigned prio)
{
	struct uthread *n, *next;

	spin_lock(&vp->rq_lock);
	n = next_take(vp);
	if (n)
		next_to_queue_locked(vp, n);
	next = rq_pop_highest_locked(vp);
	if (!next || next->prio > prio) {
		if (next)
			rq_push_head_locked(vp, next);
		spin_unlock(&vp->rq_lock);
		return NULL;
	}
	return next;
}

/**
 * sched_yield_cur - let queued uthreads of the caller's class or higher
 * run; the caller goes to the back of its class.
 */
void sched_yield_cur(void)
{
	struct vp *vp = vp_self();
	struct uthread *me = vp->cur, *n, *next;
	uint32_t allowed = higher_classes(me->prio) | class_bit(me->prio);
	bool polled = false;

again:
	n = next_peek(vp);
	/* The next slot first, if nothing outranks it and it does not rank
	 * below us. */
	if (n && n->prio <= me->prio && !(rq_mask(vp) & higher_classes(n->prio)) &&
	    likely(!vp->need_resched) && (n = next_take(vp)) != NULL) {
		stat_inc(&vp->stats.next_handoffs);
		spin_lock(&vp->rq_lock);
		vp->post.requeue = 1;
		vp->post.unlock = &vp->rq_lock;
		switch_to(vp, me, n, false);
		return;
	}
	if (!(rq_mask(vp) & allowed) && !(vp->need_resched && next_peek(vp))) {
		if (!polled && yield_poll(vp)) {
			polled = true;
			goto again;
		}
		return;
	}
	next = rq_take_for_yield(vp, me->prio);
	if (!next)
		return;
	/* Keep rq_lock across the switch: step 2 queues us and unlocks. */
	slice_start(vp);
	WRITE_ONCE(me->state, UT_RUNNABLE);
	vp->post.requeue = 1;
	vp->post.unlock = &vp->rq_lock;
	switch_to(vp, me, next, false);
}

/**
 * sched_set_prio - move @ut to class @prio, re-queueing it if it is queued.
 * The caller holds @ut->lock (so @ut cannot end meanwhile).
 */
SA_CRITSEC void sched_set_prio(struct uthread *ut, int prio)
{
	for (;;) {
		struct vp *v = READ_ONCE(ut->vp);

		if (!v) {
			ut->prio = (uint8_t)prio;
			return;
		}
		spin_lock(&v->rq_lock);
		if (READ_ONCE(ut->vp) == v) {
			if (READ_ONCE(ut->on_rq)) {
				rq_remove_locked(v, ut);
				ut->prio = (uint8_t)prio;
				rq_push_tail_locked(v, ut);
			} else {
				ut->prio = (uint8_t)prio;
			}
			spin_unlock(&v->rq_lock);
			return;
		}
		spin_unlock(&v->rq_lock);
	}
}

/* ------------------------------------------------------------------------
 * Stealing
 */

static uint32_t vp_rand(struct vp *vp)
{
	/* xorshift64 */
	uint64_t x = vp->rand;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	vp->rand = x;
	return (uint32_t)(x >> 32);
}

/*
 * steal_from - move half (at most STEAL_MAX) of @victim's highest non-empty
 * class to @vp.  Returns one of them to run, or NULL.
 */
static struct uthread *steal_from(struct vp *vp, struct vp *victim)
{
	struct uthread *first = NULL, *last = NULL, *ut;
	unsigned n = 0, want, total = 0, p;

	if (!rq_mask(victim) || !spin_trylock(&victim->rq_lock))
		return NULL;
	for (p = 0; p < SA_NR_PRIO; p++)
		if (victim->q[p].head)
			break;
	if (p == SA_NR_PRIO) {
		spin_unlock(&victim->rq_lock);
		return NULL;
	}
	for (ut = victim->q[p].head; ut && total < 2 * STEAL_MAX; ut = ut->rq_next)
		total++;
	want = (total + 1) / 2;
	while (n < want && (ut = victim->q[p].head)) {
		rq_remove_locked(victim, ut);
		ut->rq_next = NULL;
		if (last)
			last->rq_next = ut;
		else
			first = ut;
		last = ut;
		n++;
	}
	spin_unlock(&victim->rq_lock);
	if (!first)
		return NULL;

	stat_inc(&vp->stats.steals);
	atomic_store_explicit(&vp->stats.stolen,
			      atomic_load_explicit(&vp->stats.stolen, memory_order_relaxed) + n,
			      memory_order_relaxed);
	ut = first->rq_next;
	if (ut) {
		spin_lock(&vp->rq_lock);
		while (ut) {
			struct uthread *nx = ut->rq_next;

			rq_push_tail_locked(vp, ut);
			ut = nx;
		}
		spin_unlock(&vp->rq_lock);
	}
	first->rq_next = NULL;
	WRITE_ONCE(first->vp, vp);
	return first;
}

static struct uthread *steal(struct vp *vp)
{
	uint32_t n = rt.nvps, start;

	if (n < 2)
		return NULL;
	start = vp_rand(vp) % n;
	for (uint32_t i = 0; i < n; i++) {
		struct vp *victim = &rt.vps[(start + i) % n];
		struct uthread *ut;

		if (victim == vp)
			continue;
		ut = steal_from(vp, victim);
		if (ut)
			return ut;
	}
	return NULL;
}

/*
 * steal_next - take a uthread from another VP's next slot if that VP has
 * made no switch for NEXT_GRACE_NS while it sat there.
 */
static struct uthread *steal_next(struct vp *vp)
{
	uint64_t now = 0;

	for (uint32_t i = 0; i < rt.nvps; i++) {
		struct vp *victim = &rt.vps[i];
		struct next_watch *w = &vp->watch[i];
		struct uthread *n = next_peek(victim);
		uint64_t sw;

		if (victim == vp || !n) {
			w->seen = NULL;
			continue;
		}
		sw = atomic_load_explicit(&victim->stats.switches, memory_order_relaxed);
		if (!now)
			now = now_ns();
		if (w->seen != n || w->switches != sw) {
			w->seen = n;
			w->switches = sw;
			w->since = now;
			continue;
		}
		if (now - w->since < NEXT_GRACE_NS)
			continue;
		if (atomic_compare_exchange_strong_explicit(&victim->next, &n, NULL,
							    memory_order_acquire,
							    memory_order_relaxed)) {
			w->seen = NULL;
			stat_inc(&vp->stats.steals);
			stat_inc(&vp->stats.stolen);
			WRITE_ONCE(n->vp, vp);
			return n;
		}
	}
	return NULL;
}

static bool any_next(void)
{
	for (uint32_t i = 0; i < rt.nvps; i++)
		if (next_peek(&rt.vps[i]))
			return true;
	return false;
}

static bool any_work(void)
{
	for (uint32_t i = 0; i < rt.nvps; i++)
		if (rq_mask(&rt.vps[i]))
			return true;
	return false;
}

/* ------------------------------------------------------------------------
 * The idle context
 */

static struct uthread *find_work(struct vp *vp)
{
	uint64_t next_timer;
	struct uthread *ut;

	if (unlikely(upcall_kernel_on))
		kernel_poll(); /* events: a parked activation's uthread to run */
	next_timer = timers_next_deadline();

	io_pass_idle(vp); /* I/O: submit everything, harvest */
	if (next_timer != DEADLINE_NONE) {
		uint64_t now = now_ns();

		if (next_timer <= now)
			timers_run_all(now);
	}
	ut = pick_next(vp);
	if (!ut)
		ut = steal(vp);
	if (!ut && rt.nvps > 1)
		ut = steal_next(vp);
	return ut;
}

static void spinning_start(struct vp *vp)
{
	if (!vp->spinning) {
		vp->spinning = 1;
		atomic_fetch_add(&rt.nr_spinning, 1);
	}
}

/* Stop counting as spinning; if we were the last spinner, wake another so
 * that work queued from now on still finds a VP looking for it. */
static void spinning_stop(struct vp *vp, bool found_work)
{
	if (!vp->spinning)
		return;
	vp->spinning = 0;
	if (atomic_fetch_sub(&rt.nr_spinning, 1) == 1 && found_work)
		wake_idle();
}

static void vp_park(struct vp *vp)
{
	bool ring = io_park_in_ring(vp);
	uint64_t deadline;
	struct timespec ts;

	/* I/O: how to kick us; the idle list's lock publishes it to wakers. */
	atomic_store_explicit(&vp->park_ring, ring, memory_order_relaxed);
	atomic_store_explicit(&vp->park_word, 0, memory_order_relaxed);
	spin_lock(&rt.idle_lock);
	vp->idle_next = rt.idle_list;
	rt.idle_list = vp;
	atomic_store_explicit(&vp->parked, 1, memory_order_relaxed);
	spin_unlock(&rt.idle_lock);
	atomic_fetch_add(&rt.nr_idle, 1); /* full fence before the last look */

	deadline = timers_next_deadline();
	if (any_work() || atomic_load(&rt.stopping) ||
	    (deadline != DEADLINE_NONE && deadline <= now_ns())) {
		if (!idle_remove(vp)) {
			/* A waker chose us already and counted us spinning. */
			vp->spinning = 1;
		}
		return;
	}

	stat_inc(&vp->stats.parks);
	/* A uthread in a busy VP's next slot is ours to take after a grace
	 * period; come back to look for it. */
	if (any_next()) {
		uint64_t soon = now_ns() + PARK_NEXT_NS;

		if (soon < deadline)
			deadline = soon;
	}
	if (deadline != DEADLINE_NONE)
		ns_to_timespec(deadline, &ts);
	while (!atomic_load_explicit(&vp->park_word, memory_order_acquire)) {
		long r;

		if (ring) { /* I/O: completions end the park too */
			bool done;

			if (unlikely(upcall_kernel_on)) {
				/* A quiet wait: the kernel backend's events do
				 * not end it, so it is bounded (kernel.c). */
				kernel_quiet(vp, true);
				done = io_idle_wait(vp, kernel_ring_deadline(deadline));
				kernel_quiet(vp, false);
			} else {
				done = io_idle_wait(vp, deadline);
			}
			if (done)
				break;
			continue;
		}
		if (unlikely(upcall_kernel_on)) {
			if (kernel_park(deadline))
				break;
			continue;
		}
		r = futex_wait(&vp->park_word, 0, deadline == DEADLINE_NONE ? NULL : &ts);
		if (r == -ETIMEDOUT)
			break;
	}
	if (!idle_remove(vp))
		vp->spinning = 1; /* woken: the waker counted us spinning */
	if (unlikely(atomic_load_explicit(&upcall_wd_backoff, memory_order_relaxed)))
		upcall_wd_kick();
}

/**
 * sched_idle_loop - what a VP runs when no uthread wants it.  Returns when
 * the runtime stops, on a VP that libsa's own thread carries, or, with the
 * kernel backend, when the carrier should give the VP up for another
 * (kernel_give_up()).
 */
void sched_idle_loop(struct vp *vp)
{
	unsigned spins = 0;

	spinning_start(vp);
	for (;;) {
		struct uthread *ut = find_work(vp);

		if (ut) {
			spinning_stop(vp, true);
			spins = 0;
			slice_start(vp);
			switch_to(vp, vp->idle, ut, false);
			spinning_start(vp);
			continue;
		}
		if (atomic_load_explicit(&rt.stopping, memory_order_relaxed) &&
		    atomic_load_explicit(&vp->act, memory_order_relaxed)->own_thread) {
			spinning_stop(vp, false);
			return;
		}
		/* Fewer processors than VPs: ours may be wanted elsewhere. */
		if (unlikely(upcall_kernel_on) && kernel_give_up(vp)) {
			spinning_stop(vp, false);
			return;
		}
		if (++spins < IDLE_SPIN_ITERS) {
			cpu_relax();
			continue;
		}
		spins = 0;
		spinning_stop(vp, false);
		/* Last look after we stopped counting as spinning. */
		ut = find_work(vp);
		if (ut) {
			slice_start(vp);
			switch_to(vp, vp->idle, ut, false);
			spinning_start(vp);
			continue;
		}
		act_sigmask_sync();
		vp_park(vp);
		if (!vp->spinning)
			spinning_start(vp);
	}
}

/* ------------------------------------------------------------------------
 * Upcalls
 */

/**
 * sched_upcall_add_processor - the calling activation now carries @vp:
 * run its uthreads.  Returns when the runtime stops (libsa's own threads)
 * or when the activation gives the VP up (kernel backend).
 */
void sched_upcall_add_processor(struct vp *vp)
{
	sched_idle_loop(vp);
}

/* Stack a preempted uthread needs below its red zone: the stub's frame,
 * the XSAVE area, and the yield's call chain. */
#define PREEMPT_ROOM(xsave) (128 + 8 + 88 + 64 + (xsave) + 1024)

/* timer_due - a timer of @vp's has expired; it runs at the next switch. */
static bool timer_due(struct vp *vp)
{
	uint64_t t = atomic_load_explicit(&vp->timer_next, memory_order_relaxed);

	return t != DEADLINE_NONE && t <= now_ns();
}

/* work_waiting - something of @cur's class or higher is runnable on @vp,
 * or I/O completions wait to be harvested (they may be). */
static bool work_waiting(struct vp *vp, struct uthread *cur)
{
	struct uthread *n = next_peek(vp);

	if (n && n->prio <= cur->prio)
		return true;
	if (rq_mask(vp) & (higher_classes(cur->prio) | class_bit(cur->prio)))
		return true;
	if (unlikely(upcall_kernel_on) && kernel_pending())
		return true; /* an unblocked uthread may be among them */
	return io_pass_wanted(vp);
}

/**
 * sched_upcall_preempted - a tick on @vp's activation, in its signal
 * handler; @uc is the interrupted context.  If the current uthread has run
 * for a whole quantum and something should run instead, make it yield:
 * through its critical-section copy if it is inside one, else through
 * sa_preempt_stub when the handler returns.
 */
void sched_upcall_preempted(struct vp *vp, ucontext_t *uc, bool io)
{
	struct uthread *cur = vp->cur;
	greg_t *g = uc->uc_mcontext.gregs;
	uintptr_t pc = (uintptr_t)g[REG_RIP];
	uintptr_t copy;

	stat_inc(&vp->stats.ticks);
	if (cur->flags & UTF_IDLE)
		return;
	/* Expired timers are run at once: a sleeper's lateness stays within
	 * one quantum.  Otherwise a slice that started since the last tick
	 * has not lasted a whole quantum yet - unless @cur has just ended a
	 * recovered critical section (vp->resched, critsec/exit.S), or a
	 * test asked for every tick to count (upcall_tick_force). */
	if (io) {
		/* From the watchdog: completions wait and no pass came. */
		if (!io_pass_wanted(vp))
			return;
	} else if (!timer_due(vp) && !upcall_tick_force) {
		if (vp->resched != cur && vp->slices != vp->tick_slices) {
			vp->tick_slices = vp->slices;
			return;
		}
		if (!work_waiting(vp, cur))
			return;
	}
	if (vp->np) {
		stat_inc(&vp->stats.preempt_skipped);
		return;
	}
	/* Inside the original of a critical section: go on in its copy,
	 * which gives the VP back at its end (critsec/critsec.c). */
	copy = critsec_recover(vp, pc);
	if (copy) {
		g[REG_RIP] = (greg_t)copy;
		vp->need_resched = 1; /* and the slice ends at the next switch */
		return;
	}
	/* Nor in the C runtime.  Natively its per-thread state belongs to
	 * the carrier (upcall.c).  In the TLS mode that state is the
	 * uthread's, but the runtime's internal locks (a stdio stream's, a
	 * malloc arena's, the loader's) are not libsa's: a uthread preempted
	 * while it holds one stays off its VP while every other uthread
	 * that wants the lock blocks its carrier in a futex, one blocked
	 * hand-off after another, until the holder comes round again. */
	if (text_in_libsa(pc) || text_in_runtime(pc)) {
		/* Not here: end the slice at the next switch instead, which
		 * a uthread that lives in libsa (a ping-pong) reaches soon. */
		vp->need_resched = 1;
		stat_inc(&vp->stats.preempt_skipped);
		return;
	}
	spin_debug_preempting(vp);
	if (!sched_redirect_to_stub(cur, uc)) {
		stat_inc(&vp->stats.preempt_skipped);
		return;
	}
	vp->resched = NULL;
	stat_inc(&vp->stats.preemptions);
}

/**
 * sched_redirect_to_stub - make @ut, interrupted with context @uc, "call"
 * sa_preempt_stub when the signal handler returns, leaving its red zone
 * alone: the stub's `ret $128` resumes at the interrupted PC with the
 * original stack pointer.  False if @ut's stack has no room for it.
 */
bool sched_redirect_to_stub(struct uthread *ut, ucontext_t *uc)
{
	greg_t *g = uc->uc_mcontext.gregs;
	uintptr_t pc = (uintptr_t)g[REG_RIP], sp = (uintptr_t)g[REG_RSP];

	if (sp - (uintptr_t)ut->stack_lo < PREEMPT_ROOM(sa_xsave_size))
		return false;
	sp -= 128 + 8;
	*(uint64_t *)sp = pc;
	g[REG_RSP] = (greg_t)sp;
	g[REG_RIP] = (greg_t)(uintptr_t)sa_preempt_stub;
	return true;
}

/**
 * sched_preempt_yield - called by sa_preempt_stub on the preempted
 * uthread's stack: run due timers, let an idle VP know that work is
 * queued, and yield to the class's queue.
 */
/*
 * errno_slot - the calling kernel thread's errno.  errno is
 * *__errno_location(), a const function, so within one function the
 * compiler computes its address once; across a switch that may have moved
 * the uthread to another VP's kernel thread that address is the old one's.
 * Out of line and out of IPA's sight, each call asks afresh.
 */
static __attribute__((noipa)) int *errno_slot(void)
{
	return &errno;
}

void sched_preempt_yield(void)
{
	int saved_errno = *errno_slot(); /* libc's errno is the activation's */
	struct vp *vp = vp_self();
	uint64_t t = atomic_load_explicit(&vp->timer_next, memory_order_relaxed);

	if (t != DEADLINE_NONE)
		timers_run(vp, now_ns());
	if (rq_mask(vp) && rt.nvps > 1)
		wake_idle();
	sched_yield_cur();
	*errno_slot() = saved_errno; /* on the VP it runs on now */
}

/** sched_wake_all_idle - wake every parked VP (runtime shutdown). */
void sched_wake_all_idle(void)
{
	struct vp *v;

	while ((v = idle_pop()) != NULL) {
		atomic_fetch_add(&rt.nr_spinning, 1);
		vp_kick(v);
	}
}

/**
 * sched_vp_awake - @vp, or the first VP after it that has a processor;
 * where to queue a uthread from outside.  @vp itself if none has one.
 */
struct vp *sched_vp_awake(struct vp *vp)
{
	for (uint32_t i = 0; i < rt.nvps; i++) {
		struct vp *v = &rt.vps[(vp->index + i) % rt.nvps];

		if (!atomic_load_explicit(&v->dormant, memory_order_relaxed))
			return v;
	}
	return vp;
}

/**
 * sched_vp_dormant - @vp has no processor from now on (@how: VPD_FREE or
 * VPD_TAKEN; upcall/kernel.c).  Its queued uthreads move to a VP that has
 * one, and it leaves the idle list, so that no waker counts on it.  Its
 * queue is left alone if its lock is held: by its own carrier, stopped
 * where it stood, which gets a processor back before long.
 */
void sched_vp_dormant(struct vp *vp, uint32_t how)
{
	struct uthread *first = NULL, *last = NULL, *ut;
	struct vp *to;

	atomic_store(&vp->dormant, how);
	/*
	 * A VP stopped while it counted as looking for work (spinning in
	 * its idle loop, or taken off the idle list by a waker that counted
	 * it so) would keep every waker from waking another: it stops
	 * counting until it runs again (sched_vp_awoken()).
	 */
	if ((!idle_remove(vp) && how == VPD_TAKEN &&
	     atomic_load_explicit(&vp->park_word, memory_order_relaxed)) ||
	    (how == VPD_TAKEN && vp->spinning)) {
		atomic_store(&vp->spin_uncounted, 1);
		atomic_fetch_sub(&rt.nr_spinning, 1);
	}
	to = sched_vp_awake(vp);
	if (to == vp)
		return;
	if (spin_trylock(&vp->rq_lock)) {
		while ((ut = rq_pop_highest_locked(vp)) != NULL) {
			ut->rq_next = NULL;
			if (last)
				last->rq_next = ut;
			else
				first = ut;
			last = ut;
		}
		spin_unlock(&vp->rq_lock);
	}
	if (!first)
		return;
	spin_lock(&to->rq_lock);
	while (first) {
		ut = first->rq_next;
		WRITE_ONCE(first->vp, to);
		rq_push_tail_locked(to, first);
		first = ut;
	}
	spin_unlock(&to->rq_lock);
	wake_queued(to);
}

/**
 * sched_kick_parked - wake a VP parked on the idle list, however it waits
 * (in its ring too, where the kernel backend's events do not reach it),
 * to look at the state of things; it stays on the list and parks again if
 * there is nothing to do.  @ring_only: only one that waits in its ring.
 * False if none was parked.
 */
bool sched_kick_parked(bool ring_only)
{
	for (uint32_t i = 0; i < rt.nvps; i++) {
		struct vp *v = &rt.vps[i];

		if (!atomic_load_explicit(&v->parked, memory_order_relaxed) ||
		    (ring_only && !atomic_load_explicit(&v->park_ring, memory_order_relaxed)))
			continue;
		vp_kick(v);
		return true;
	}
	return false;
}

/** sched_vp_awoken - @vp, dormant, runs again where it stopped. */
void sched_vp_awoken(struct vp *vp)
{
	if (atomic_exchange(&vp->spin_uncounted, 0))
		atomic_fetch_add(&rt.nr_spinning, 1);
	atomic_store(&vp->dormant, VPD_ACTIVE);
}

/** sched_vp_init - zero the scheduling state of @vp. */
void sched_vp_init(struct vp *vp, unsigned index)
{
	vp->index = index;
	vp->rand = 0x9e3779b97f4a7c15ull * (index + 1);
	atomic_store(&vp->timer_next, DEADLINE_NONE);
}
