/* barrier.c - barriers: the last arrival releases the round */

/*
 * A waiter that ut_interrupt() takes out of its wait (barrier_wait_intr(),
 * for the shim) leaves the round: it counts itself out again and comes
 * back later, as if it had not arrived yet.  Unless the round was released
 * between the interruption and its count-out: ->round, which the last
 * arrival advances, tells it so, and it has passed the barrier.
 */

#include "defs.h"

struct barrier {
	_Atomic uint32_t magic;
	spinlock_t lock;
	uint32_t count;
	uint32_t arrived;
	uint32_t round;     /* rounds released */
	uint32_t pad;
	struct waitq q;
};

_Static_assert(sizeof(struct barrier) == sizeof(sa_barrier_t), "barrier layout");

static __always_inline struct barrier *to_barrier(sa_barrier_t *p)
{
	return (struct barrier *)p;
}

static __always_inline bool barrier_valid(struct barrier *b)
{
	return b && atomic_load_explicit(&b->magic, memory_order_relaxed) == SA__MAGIC_BARRIER;
}

SA_EXPORT int sa_barrier_init(sa_barrier_t *p, unsigned count)
{
	struct barrier *b = to_barrier(p);

	if (!p || count == 0)
		return -EINVAL;
	atomic_store(&b->lock, 0);
	b->count = count;
	b->arrived = 0;
	b->round = 0;
	b->pad = 0;
	b->q.head = b->q.tail = NULL;
	atomic_store_explicit(&b->magic, SA__MAGIC_BARRIER, memory_order_release);
	return 0;
}

/* barrier_retire - under the lock: -EBUSY if @b is in use, else invalidate it. */
static SA_CRITSEC int barrier_retire(struct barrier *b)
{
	int ret = 0;

	spin_lock(&b->lock);
	if (b->arrived || b->q.head)
		ret = -EBUSY;
	else
		atomic_store(&b->magic, 0);
	spin_unlock(&b->lock);
	return ret;
}

SA_EXPORT int sa_barrier_destroy(sa_barrier_t *p)
{
	struct barrier *b = to_barrier(p);

	if (!barrier_valid(b))
		return -EINVAL;
	return barrier_retire(b);
}

/*
 * barrier_arrive - count the caller in.  Not the last: false with the lock
 * held and the round in *@round, for the caller to queue.  The last: start
 * the next round, drop the lock and return true with the claimed waiters
 * in *@chain.
 */
static SA_CRITSEC bool barrier_arrive(struct barrier *b, struct sa_waiter **chain,
				      uint32_t *round)
{
	spin_lock(&b->lock);
	*round = b->round;
	if (++b->arrived < b->count)
		return false;
	b->arrived = 0;
	b->round++;
	*chain = waitq_claim_all(&b->q);
	spin_unlock(&b->lock);
	return true;
}

/*
 * barrier_leave - an interruption ended the wait of the waiter that
 * arrived in @round: count it out, unless the round was released
 * meanwhile.  Returns -EINTR (counted out) or 0 (it passed).
 */
static SA_CRITSEC int barrier_leave(struct barrier *b, uint32_t round)
{
	int ret = 0;

	spin_lock(&b->lock);
	if (b->round == round) {
		b->arrived--;
		ret = -EINTR;
	}
	spin_unlock(&b->lock);
	return ret;
}

static int barrier_wait(struct barrier *b, bool intr)
{
	struct sa_waiter w, *chain;
	uint32_t round;

	if (!barrier_valid(b))
		return -EINVAL;
	if (!ut_self())
		return -ENOMEM;
	if (!barrier_arrive(b, &chain, &round)) {
		if (!intr)
			return wait_park_unlock(&b->lock, &b->q, &w, DEADLINE_NONE);
		if (wait_park_unlock_intr(&b->lock, &b->q, &w, DEADLINE_NONE) == 0)
			return 0;
		return barrier_leave(b, round);
	}
	waitq_ready_chain(chain);
	return SA_BARRIER_SERIAL;
}

SA_EXPORT int sa_barrier_wait(sa_barrier_t *p)
{
	return barrier_wait(to_barrier(p), false);
}

/**
 * barrier_wait_intr - the shim's interruptible barrier wait (defs.h):
 * returns as sa_barrier_wait(), or -EINTR when ut_interrupt() ended the
 * wait before the round was released; the caller has then not arrived
 * (it waits again with another call).
 */
int barrier_wait_intr(sa_barrier_t *p)
{
	return barrier_wait(to_barrier(p), true);
}
