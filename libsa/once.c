/* once.c - one-time initialisation; late callers park until it is done */

#include "defs.h"

enum { ONCE_INIT = 0, ONCE_RUNNING = 1, ONCE_DONE = 2 };

struct once {
	_Atomic uint32_t state;
	spinlock_t lock;
	struct waitq q;
};

_Static_assert(sizeof(struct once) == sizeof(sa_once_t), "once layout");

/*
 * once_begin - under the lock: ONCE_DONE (lock dropped) if fn() has run;
 * ONCE_RUNNING with the lock held if another caller runs it (the caller
 * queues, then asks again); ONCE_INIT (lock dropped) if the caller is to
 * run it, the state now saying ONCE_RUNNING.
 */
static SA_CRITSEC uint32_t once_begin(struct once *o)
{
	uint32_t st;

	spin_lock(&o->lock);
	st = atomic_load_explicit(&o->state, memory_order_relaxed);
	if (st == ONCE_RUNNING)
		return st;
	if (st == ONCE_INIT)
		atomic_store_explicit(&o->state, ONCE_RUNNING, memory_order_relaxed);
	spin_unlock(&o->lock);
	return st;
}

/* once_end - under the lock: mark @o done and claim its waiters. */
static SA_CRITSEC struct sa_waiter *once_end(struct once *o)
{
	struct sa_waiter *chain;

	spin_lock(&o->lock);
	atomic_store_explicit(&o->state, ONCE_DONE, memory_order_release);
	chain = waitq_claim_all(&o->q);
	spin_unlock(&o->lock);
	return chain;
}

SA_EXPORT int sa_once(sa_once_t *p, void (*fn)(void))
{
	struct once *o = (struct once *)p;
	struct sa_waiter w;
	uint32_t st;

	if (!p || !fn)
		return -EINVAL;
	/* Fast path: done, with everything fn() wrote visible. */
	if (likely(atomic_load_explicit(&o->state, memory_order_acquire) == ONCE_DONE))
		return 0;
	if (!ut_self())
		return -ENOMEM;
	while ((st = once_begin(o)) == ONCE_RUNNING)
		wait_park_unlock(&o->lock, &o->q, &w, DEADLINE_NONE);
	if (st == ONCE_DONE)
		return 0;

	fn();

	waitq_ready_chain(once_end(o));
	return 0;
}
