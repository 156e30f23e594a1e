/* wait.c - waiter queues and parking with a deadline, shared by every sync object */

/*
 * A sync object is a spinlock, some state, and a FIFO of struct sa_waiter.
 * A waiter lives on its uthread's stack.  Who may wake it is decided by one
 * CAS on waiter->state from W_WAITING: a waker that pops it (W_WOKEN) or
 * its timer (W_TIMEDOUT).  The loser does nothing, so a uthread is made
 * runnable exactly once per wait, and a waker that loses to a timer simply
 * moves on to the next waiter, so no signal, post or unlock is lost to a
 * waiter that timed out.
 *
 * Interruptions.  The LD_PRELOAD shim must cut a wait short when
 * pthread_kill() or pthread_cancel() aims at the waiter, as a signal ends
 * a futex wait under NPTL.  ut_interrupt() is a third party to the CAS:
 * W_WAITING -> W_INTERRUPTED.  It finds the state word through the
 * target's uthread, where an interruptible wait (sleeps, cond and sem
 * waits, joins: only the shim asks for one) publishes it for as long as
 * it lasts (->intr_wait).  Two races, two rules:
 *
 *   1. A request that comes before the wait has published its word is not
 *      lost.  ut_interrupt() stores ->intr_req before it reads
 *      ->intr_wait, the waiter stores ->intr_wait before it reads
 *      ->intr_req, all four sequentially consistent: one of them sees the
 *      other (Dekker).  A waiter that sees a request claims its own word
 *      and does not park.
 *
 *        ut_interrupt()                     waiter (wait_intr_arm)
 *        intr_req = 1                       intr_wait = &state
 *        intr_busy++                        if (intr_req)
 *        s = intr_wait                          CAS(state, WAITING,
 *        if (s && CAS(s, WAITING,                   INTERRUPTED): no park
 *                     INTERRUPTED))
 *            ready it (after busy--)
 *        intr_busy--
 *
 *   2. The word lives on the waiter's stack: ut_interrupt() must not CAS
 *      it once the wait is over.  It counts itself in ->intr_busy around
 *      its read and CAS; the waiter clears ->intr_wait and then waits for
 *      ->intr_busy to drop to 0 (wait_intr_disarm), as timer_cancel_sync()
 *      waits for a callback.  An interrupter counted after that sees NULL
 *      (or the word of a later wait, which is live).
 *
 * A request outlives a wait that ended otherwise (woken, timed out): the
 * next interruptible wait of that uthread then ends at once with -EINTR.
 * The shim answers such a stale interruption by waiting again, so it is
 * never seen; a wait that does end with -EINTR consumes the request.
 */

#include "defs.h"

/* The queue operations run under the object's lock: critical sections. */

SA_CRITSEC void waitq_push(struct waitq *q, struct sa_waiter *w)
{
	w->epoch = sa_fork_epoch;
	w->next = NULL;
	w->prev = q->tail;
	if (q->tail)
		q->tail->next = w;
	else
		q->head = w;
	q->tail = w;
	w->queued = 1;
}

SA_CRITSEC void waitq_remove(struct waitq *q, struct sa_waiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		q->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		q->tail = w->prev;
	w->next = w->prev = NULL;
	w->queued = 0;
}

SA_CRITSEC struct sa_waiter *waitq_pop(struct waitq *q)
{
	struct sa_waiter *w = q->head;

	if (w)
		waitq_remove(q, w);
	return w;
}

/**
 * waiter_claim - win the right to wake popped waiter @w.  Returns false if
 * its timer won (it wakes itself; pick another waiter), or if @w waited in
 * the parent of this forked process (its uthread does not exist here; see
 * sa_fork_epoch).  After a true return @w stays valid until its uthread is
 * made runnable.
 */
SA_CRITSEC bool waiter_claim(struct sa_waiter *w)
{
	uint32_t expect = W_WAITING;

	if (unlikely(w->epoch != sa_fork_epoch))
		return false;
	return atomic_compare_exchange_strong(&w->state, &expect, W_WOKEN);
}

static void waiter_timeout(struct sa_timer *t)
{
	struct sa_waiter *w = container_of(t, struct sa_waiter, timer);
	struct uthread *ut = w->ut;
	uint32_t expect = W_WAITING;

	if (atomic_compare_exchange_strong(&w->state, &expect, W_TIMEDOUT))
		sched_ready(ut);
}

static void ext_wait(struct uthread *me, struct sa_waiter *w, uint64_t deadline)
{
	struct timespec ts;

	if (deadline != DEADLINE_NONE)
		ns_to_timespec(deadline, &ts);
	while (!atomic_load_explicit(&me->park_word, memory_order_acquire)) {
		long r = futex_wait(&me->park_word, 0,
				    deadline == DEADLINE_NONE ? NULL : &ts);

		if (r == -ETIMEDOUT) {
			uint32_t expect = W_WAITING;

			if (atomic_compare_exchange_strong(&w->state, &expect, W_TIMEDOUT))
				return;
			deadline = DEADLINE_NONE; /* a waker won: it will wake us */
		}
	}
}

/* waitq_unqueue - take timed-out @w off @q under @lock if a waker has not. */
static SA_CRITSEC void waitq_unqueue(spinlock_t *lock, struct waitq *q, struct sa_waiter *w)
{
	spin_lock(lock);
	if (w->queued)
		waitq_remove(q, w);
	spin_unlock(lock);
}

/**
 * wait_intr_arm - make the calling uthread's wait, decided by the CAS on
 * @state (W_WAITING now), interruptible by ut_interrupt().  Returns false
 * when a request was already made: the caller claimed @state itself
 * (W_INTERRUPTED) and must not park.  Either way the caller ends the
 * wait with wait_intr_disarm(), before @state goes away.
 */
bool wait_intr_arm(struct uthread *me, _Atomic uint32_t *state)
{
	uint32_t expect = W_WAITING;

	atomic_store(&me->intr_wait, state);
	if (!atomic_load(&me->intr_req))
		return true;
	return !atomic_compare_exchange_strong(state, &expect, W_INTERRUPTED);
}

/**
 * wait_intr_disarm - the wait that wait_intr_arm(@me, @state) armed is
 * over: no ut_interrupt() touches @state after this returns.  A wait that
 * was interrupted consumes the request.
 */
void wait_intr_disarm(struct uthread *me, _Atomic uint32_t *state)
{
	atomic_store(&me->intr_wait, NULL);
	while (atomic_load(&me->intr_busy))
		cpu_relax();
	/* An exchange, not a store: it reads the last request made, so what
	 * that requester published before it (a signal to run, a cancel) is
	 * seen by the caller, which looks for it next. */
	if (atomic_load_explicit(state, memory_order_acquire) == W_INTERRUPTED)
		atomic_exchange(&me->intr_req, 0);
}

static int park_unlock(spinlock_t *lock, struct waitq *q, struct sa_waiter *w,
		       uint64_t deadline, bool intr)
{
	struct vp *vp = vp_self();
	struct uthread *me = ut_self();
	uint32_t state;

	if (deadline != DEADLINE_NONE && deadline <= now_ns()) {
		spin_unlock(lock);
		return -ETIMEDOUT;
	}
	w->ut = me;
	atomic_store_explicit(&w->state, W_WAITING, memory_order_relaxed);
	intr = intr && vp;
	if (intr && !wait_intr_arm(me, &w->state)) {
		spin_unlock(lock);
		wait_intr_disarm(me, &w->state);
		return -EINTR;
	}
	waitq_push(q, w);

	if (likely(vp)) {
		if (deadline != DEADLINE_NONE)
			timer_arm(&w->timer, deadline, waiter_timeout);
		sched_park_unlock(lock);
		if (deadline != DEADLINE_NONE)
			timer_cancel_sync(&w->timer);
	} else {
		atomic_store_explicit(&me->park_word, 0, memory_order_relaxed);
		spin_unlock(lock);
		ext_wait(me, w, deadline);
	}
	if (intr)
		wait_intr_disarm(me, &w->state);

	state = atomic_load_explicit(&w->state, memory_order_acquire);
	if (state == W_WOKEN)
		return 0;
	waitq_unqueue(lock, q, w);
	return state == W_INTERRUPTED ? -EINTR : -ETIMEDOUT;
}

/**
 * wait_park_unlock - queue @w (for the calling uthread) on @q, drop @lock
 * and park until woken or @deadline (monotonic ns, DEADLINE_NONE for none).
 * The caller holds @lock.  Returns 0 when woken (the waker has done the
 * object-specific handoff), -ETIMEDOUT when the deadline passed (@w is
 * off @q again).  Returns with @lock not held.
 */
int wait_park_unlock(spinlock_t *lock, struct waitq *q, struct sa_waiter *w,
		     uint64_t deadline)
{
	return park_unlock(lock, q, w, deadline, false);
}

/**
 * wait_park_unlock_intr - wait_park_unlock(), interruptible: also returns
 * -EINTR when ut_interrupt() ended the wait (@w is off @q again, and no
 * waker handed it anything).  Only a uthread's wait is interruptible.
 */
int wait_park_unlock_intr(spinlock_t *lock, struct waitq *q, struct sa_waiter *w,
			  uint64_t deadline)
{
	return park_unlock(lock, q, w, deadline, true);
}

/**
 * waitq_claim_all - claim every waiter of @q and chain them through
 * ->next for waitq_ready_chain() after the lock is dropped.
 */
SA_CRITSEC struct sa_waiter *waitq_claim_all(struct waitq *q)
{
	struct sa_waiter *w, *first = NULL, *last = NULL;

	while ((w = waitq_pop(q)) != NULL) {
		if (!waiter_claim(w))
			continue;
		if (last)
			last->next = w;
		else
			first = w;
		last = w;
	}
	return first;
}

/**
 * waitq_take_one - under @lock, pop and claim the first waiter of @q that
 * has not timed out.  Returns its uthread, for sched_ready() once the lock
 * is dropped (the claim keeps it parked until then), or NULL.
 */
SA_CRITSEC struct uthread *waitq_take_one(spinlock_t *lock, struct waitq *q)
{
	struct sa_waiter *w;
	struct uthread *ut = NULL;

	spin_lock(lock);
	while ((w = waitq_pop(q)) != NULL) {
		if (waiter_claim(w)) {
			ut = w->ut;
			break;
		}
	}
	spin_unlock(lock);
	return ut;
}

/** waitq_take_all - under @lock, waitq_claim_all() of @q. */
SA_CRITSEC struct sa_waiter *waitq_take_all(spinlock_t *lock, struct waitq *q)
{
	struct sa_waiter *chain;

	spin_lock(lock);
	chain = waitq_claim_all(q);
	spin_unlock(lock);
	return chain;
}

/** waitq_ready_chain - make runnable a chain from waitq_claim_all(). */
void waitq_ready_chain(struct sa_waiter *w)
{
	while (w) {
		struct sa_waiter *next = w->next;

		/* @w may be gone as soon as its uthread runs. */
		sched_ready(w->ut);
		w = next;
	}
}
