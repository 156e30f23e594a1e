/* wait.c - waiter queues and parking with a deadline, shared by every sync object */

/*
 * A sync object is a spinlock, some state, and a FIFO of struct sa_waiter.
 * A waiter lives on its uthread's stack.  Who may wake it is decided by one
 * CAS on waiter->state from W_WAITING: a waker that pops it (W_WOKEN) or
 * its timer (W_TIMEDOUT).  The loser does nothing, so a uthread is made
 * runnable exactly once per wait, and a waker that loses to a timer simply
 * moves on to the next waiter, so no signal, post or unlock is lost to a
 * waiter that timed out.
 */

#include "defs.h"

/* The queue operations run under the object's lock: critical sections. */

SA_CRITSEC void waitq_push(struct waitq *q, struct sa_waiter *w)
{
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
 * its timer won (it wakes itself; pick another waiter).  After a true
 * return @w stays valid until its uthread is made runnable.
 */
SA_CRITSEC bool waiter_claim(struct sa_waiter *w)
{
	uint32_t expect = W_WAITING;

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
 * wait_park_unlock - queue @w (for the calling uthread) on @q, drop @lock
 * and park until woken or @deadline (monotonic ns, DEADLINE_NONE for none).
 * The caller holds @lock.  Returns 0 when woken (the waker has done the
 * object-specific handoff), -ETIMEDOUT when the deadline passed (@w is
 * off @q again).  Returns with @lock not held.
 */
int wait_park_unlock(spinlock_t *lock, struct waitq *q, struct sa_waiter *w,
		     uint64_t deadline)
{
	struct vp *vp = vp_self();
	struct uthread *me = ut_self();

	if (deadline != DEADLINE_NONE && deadline <= now_ns()) {
		spin_unlock(lock);
		return -ETIMEDOUT;
	}
	w->ut = me;
	atomic_store_explicit(&w->state, W_WAITING, memory_order_relaxed);
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

	if (atomic_load_explicit(&w->state, memory_order_acquire) == W_WOKEN)
		return 0;
	waitq_unqueue(lock, q, w);
	return -ETIMEDOUT;
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
