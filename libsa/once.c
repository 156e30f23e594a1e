/* once.c - one-time initialisation; late callers park until it is done */

#include "defs.h"

enum { ONCE_INIT = 0, ONCE_RUNNING = 1, ONCE_DONE = 2 };

struct once {
	_Atomic uint32_t state;
	spinlock_t lock;
	struct waitq q;
};

_Static_assert(sizeof(struct once) == sizeof(sa_once_t), "once layout");

SA_EXPORT int sa_once(sa_once_t *p, void (*fn)(void))
{
	struct once *o = (struct once *)p;
	struct sa_waiter w, *chain;

	if (!p || !fn)
		return -EINVAL;
	/* Fast path: done, with everything fn() wrote visible. */
	if (likely(atomic_load_explicit(&o->state, memory_order_acquire) == ONCE_DONE))
		return 0;
	if (!ut_self())
		return -ENOMEM;
	spin_lock(&o->lock);
	while (atomic_load_explicit(&o->state, memory_order_relaxed) == ONCE_RUNNING) {
		wait_park_unlock(&o->lock, &o->q, &w, DEADLINE_NONE);
		spin_lock(&o->lock);
	}
	if (atomic_load_explicit(&o->state, memory_order_relaxed) == ONCE_DONE) {
		spin_unlock(&o->lock);
		return 0;
	}
	atomic_store_explicit(&o->state, ONCE_RUNNING, memory_order_relaxed);
	spin_unlock(&o->lock);

	fn();

	spin_lock(&o->lock);
	atomic_store_explicit(&o->state, ONCE_DONE, memory_order_release);
	chain = waitq_claim_all(&o->q);
	spin_unlock(&o->lock);
	waitq_ready_chain(chain);
	return 0;
}
