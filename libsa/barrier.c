/* barrier.c - barriers: the last arrival releases the round */

#include "defs.h"

struct barrier {
	_Atomic uint32_t magic;
	spinlock_t lock;
	uint32_t count;
	uint32_t arrived;
	uint32_t unused;
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
	b->unused = 0;
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
 * held, for the caller to queue.  The last: start the next round, drop the
 * lock and return true with the claimed waiters in *@chain.
 */
static SA_CRITSEC bool barrier_arrive(struct barrier *b, struct sa_waiter **chain)
{
	spin_lock(&b->lock);
	if (++b->arrived < b->count)
		return false;
	b->arrived = 0;
	*chain = waitq_claim_all(&b->q);
	spin_unlock(&b->lock);
	return true;
}

SA_EXPORT int sa_barrier_wait(sa_barrier_t *p)
{
	struct barrier *b = to_barrier(p);
	struct sa_waiter w, *chain;

	if (!barrier_valid(b))
		return -EINVAL;
	if (!ut_self())
		return -ENOMEM;
	if (!barrier_arrive(b, &chain)) {
		wait_park_unlock(&b->lock, &b->q, &w, DEADLINE_NONE);
		return 0;
	}
	waitq_ready_chain(chain);
	return SA_BARRIER_SERIAL;
}
