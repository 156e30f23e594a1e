/* cond.c - condition variables with timed waits on a chosen clock */

#include "defs.h"

struct cond {
	_Atomic uint32_t magic;
	int32_t clock;
	spinlock_t lock;
	uint32_t pad;
	struct waitq q;
};

_Static_assert(sizeof(struct cond) == sizeof(sa_cond_t), "cond layout");

static __always_inline struct cond *to_cond(sa_cond_t *c)
{
	return (struct cond *)c;
}

static __always_inline bool cond_valid(struct cond *c)
{
	return c && atomic_load_explicit(&c->magic, memory_order_relaxed) == SA__MAGIC_COND;
}

SA_EXPORT int sa_cond_init(sa_cond_t *pc, clockid_t clk)
{
	struct cond *c = to_cond(pc);

	if (!pc || (clk != CLOCK_REALTIME && clk != CLOCK_MONOTONIC))
		return -EINVAL;
	c->clock = clk;
	atomic_store(&c->lock, 0);
	c->pad = 0;
	c->q.head = c->q.tail = NULL;
	atomic_store_explicit(&c->magic, SA__MAGIC_COND, memory_order_release);
	return 0;
}

/* cond_retire - under the lock: -EBUSY if @c has waiters, else invalidate it. */
static SA_CRITSEC int cond_retire(struct cond *c)
{
	int ret = 0;

	spin_lock(&c->lock);
	if (c->q.head)
		ret = -EBUSY;
	else
		atomic_store(&c->magic, 0);
	spin_unlock(&c->lock);
	return ret;
}

SA_EXPORT int sa_cond_destroy(sa_cond_t *pc)
{
	struct cond *c = to_cond(pc);

	if (!cond_valid(c))
		return -EINVAL;
	return cond_retire(c);
}

/*
 * cond_wait - queue on @c, release @m, park, relock @m.  The waiter is
 * queued before @m is released, under @c's lock, so a signal sent by
 * whoever takes @m next cannot be missed.
 */
static int cond_wait(struct cond *c, sa_mutex_t *m, uint64_t deadline, bool intr)
{
	struct sa_waiter w;
	uint32_t count;
	int ret, relock;

	sa_enter();
	if (!cond_valid(c) || !mutex_valid_obj(m))
		return -EINVAL;
	if (!mutex_owned_by_self(m))
		return -EPERM;
	spin_lock(&c->lock);
	count = mutex_unlock_full(m);
	if (intr)
		ret = wait_park_unlock_intr(&c->lock, &c->q, &w, deadline);
	else
		ret = wait_park_unlock(&c->lock, &c->q, &w, deadline);
	relock = mutex_relock_count(m, count);
	return relock ? relock : ret;
}

SA_EXPORT int sa_cond_wait(sa_cond_t *pc, sa_mutex_t *m)
{
	return cond_wait(to_cond(pc), m, DEADLINE_NONE, false);
}

SA_EXPORT int sa_cond_timedwait(sa_cond_t *pc, sa_mutex_t *m,
				const struct timespec *abs)
{
	struct cond *c = to_cond(pc);
	uint64_t d;
	int r;

	if (!cond_valid(c))
		return -EINVAL;
	r = deadline_from_abs(c->clock, abs, &d);
	return r ? r : cond_wait(c, m, d, false);
}

SA_EXPORT int sa_cond_clockwait(sa_cond_t *pc, sa_mutex_t *m, clockid_t clk,
				const struct timespec *abs)
{
	uint64_t d;
	int r = deadline_from_abs(clk, abs, &d);

	return r ? r : cond_wait(to_cond(pc), m, d, false);
}

/**
 * cond_wait_intr - the shim's interruptible cond wait (defs.h): on @clk,
 * or @pc's own clock for COND_CLOCK_OWN, until @abs (NULL: no limit).
 * Returns as sa_cond_timedwait(), or -EINTR, always with @m held again.
 */
int cond_wait_intr(sa_cond_t *pc, sa_mutex_t *m, clockid_t clk, const struct timespec *abs)
{
	struct cond *c = to_cond(pc);
	uint64_t d = DEADLINE_NONE;
	int r;

	if (!cond_valid(c))
		return -EINVAL;
	if (abs) {
		r = deadline_from_abs(clk == COND_CLOCK_OWN ? c->clock : clk, abs, &d);
		if (r)
			return r;
	}
	return cond_wait(c, m, d, true);
}

SA_EXPORT int sa_cond_signal(sa_cond_t *pc)
{
	struct cond *c = to_cond(pc);
	struct uthread *ut;

	sa_enter();
	if (!cond_valid(c))
		return -EINVAL;
	ut = waitq_take_one(&c->lock, &c->q);
	if (ut)
		sched_ready(ut);
	return 0;
}

SA_EXPORT int sa_cond_broadcast(sa_cond_t *pc)
{
	struct cond *c = to_cond(pc);
	struct sa_waiter *chain;

	sa_enter();
	if (!cond_valid(c))
		return -EINVAL;
	chain = waitq_take_all(&c->lock, &c->q);
	waitq_ready_chain(chain);
	return 0;
}
