/* rwlock.c - reader-writer locks that prefer waiting writers */

/*
 * readers > 0: that many readers hold it; -1: a writer (id in writer) does.
 * wwait counts writers queued and not yet granted.  A reader may enter
 * only while no writer holds or waits; on release the queue is granted in
 * order: a writer at the head alone, else every reader up to the first
 * writer.
 */

#include "defs.h"

enum { RW_READ = 1, RW_WRITE = 2 };

struct rwlock {
	_Atomic uint32_t magic;
	spinlock_t lock;
	int32_t readers;
	uint32_t writer;
	uint32_t wwait;
	uint32_t pad;
	struct waitq q;
};

_Static_assert(sizeof(struct rwlock) == sizeof(sa_rwlock_t), "rwlock layout");

static __always_inline struct rwlock *to_rw(sa_rwlock_t *p)
{
	return (struct rwlock *)p;
}

static __always_inline bool rw_valid(struct rwlock *rw)
{
	return rw && atomic_load_explicit(&rw->magic, memory_order_relaxed) == SA__MAGIC_RWLOCK;
}

SA_EXPORT int sa_rwlock_init(sa_rwlock_t *p)
{
	struct rwlock *rw = to_rw(p);

	if (!p)
		return -EINVAL;
	atomic_store(&rw->lock, 0);
	rw->readers = 0;
	rw->writer = 0;
	rw->wwait = 0;
	rw->pad = 0;
	rw->q.head = rw->q.tail = NULL;
	atomic_store_explicit(&rw->magic, SA__MAGIC_RWLOCK, memory_order_release);
	return 0;
}

/* rw_retire - under the lock: -EBUSY if @rw is in use, else invalidate it. */
static SA_CRITSEC int rw_retire(struct rwlock *rw)
{
	int ret = 0;

	spin_lock(&rw->lock);
	if (rw->readers != 0 || rw->q.head)
		ret = -EBUSY;
	else
		atomic_store(&rw->magic, 0);
	spin_unlock(&rw->lock);
	return ret;
}

SA_EXPORT int sa_rwlock_destroy(sa_rwlock_t *p)
{
	struct rwlock *rw = to_rw(p);

	if (!rw_valid(rw))
		return -EINVAL;
	return rw_retire(rw);
}

/* rw_grant_locked - hand the lock to the waiters at the head of the queue;
 * returns the chain to make runnable after the lock is dropped. */
static SA_CRITSEC struct sa_waiter *rw_grant_locked(struct rwlock *rw)
{
	struct sa_waiter *w, *first = NULL, *last = NULL;

	while (rw->readers >= 0 && (w = rw->q.head) != NULL) {
		if (w->kind == RW_WRITE && rw->readers > 0)
			break;
		if (w->kind == RW_READ && rw->readers == INT32_MAX - 1)
			break;
		waitq_remove(&rw->q, w);
		if (!waiter_claim(w))
			continue; /* timed out; it fixes the counts itself */
		if (w->kind == RW_WRITE) {
			rw->readers = -1;
			rw->writer = w->ut->id;
			rw->wwait--;
		} else {
			rw->readers++;
		}
		w->next = NULL;
		if (last)
			last->next = w;
		else
			first = w;
		last = w;
		if (rw->readers < 0)
			break;
	}
	return first;
}

/*
 * rw_acquire - under the lock: take @rw for @kind if the rules allow (0,
 * lock dropped), fail (-errno, lock dropped), or return 1 with the lock
 * held and the caller counted as a waiting writer if it is one, for the
 * caller to queue.
 */
static SA_CRITSEC int rw_acquire(struct rwlock *rw, int kind, bool try, struct uthread *me)
{
	int ret = 1;

	spin_lock(&rw->lock);
	if (rw->readers == -1 && rw->writer == me->id) {
		ret = try ? -EBUSY : -EDEADLK;
	} else if (kind == RW_READ) {
		if (rw->readers >= 0 && rw->wwait == 0) {
			if (rw->readers == INT32_MAX - 1) {
				ret = -EAGAIN;
			} else {
				rw->readers++;
				ret = 0;
			}
		}
	} else if (rw->readers == 0) {
		rw->readers = -1;
		rw->writer = me->id;
		ret = 0;
	}
	if (ret == 1 && try)
		ret = -EBUSY;
	if (ret != 1) {
		spin_unlock(&rw->lock);
		return ret;
	}
	if (kind == RW_WRITE)
		rw->wwait++;
	return 1;
}

/* rw_give_up - a waiter timed out or was interrupted: uncount it, grant
 * whom it held back. */
static SA_CRITSEC struct sa_waiter *rw_give_up(struct rwlock *rw, int kind)
{
	struct sa_waiter *chain;

	spin_lock(&rw->lock);
	if (kind == RW_WRITE)
		rw->wwait--;
	chain = rw_grant_locked(rw);
	spin_unlock(&rw->lock);
	return chain;
}

/* rw_lock - take @rw for @kind; with @intr, ut_interrupt() ends the wait
 * with -EINTR, @rw not taken. */
static int rw_lock(struct rwlock *rw, int kind, bool try, uint64_t deadline, bool intr)
{
	struct uthread *me = ut_self();
	struct sa_waiter w;
	int ret;

	if (!rw_valid(rw))
		return -EINVAL;
	if (!me)
		return -ENOMEM;
	ret = rw_acquire(rw, kind, try, me);
	if (ret != 1)
		return ret;
	w.kind = (uint32_t)kind;
	ret = intr ? wait_park_unlock_intr(&rw->lock, &rw->q, &w, deadline) :
		     wait_park_unlock(&rw->lock, &rw->q, &w, deadline);
	if (ret == 0)
		return 0;
	/* Timed out or interrupted.  A writer that gave up may have held
	 * readers back. */
	waitq_ready_chain(rw_give_up(rw, kind));
	return ret;
}

SA_EXPORT int sa_rwlock_rdlock(sa_rwlock_t *p)
{
	return rw_lock(to_rw(p), RW_READ, false, DEADLINE_NONE, false);
}

SA_EXPORT int sa_rwlock_tryrdlock(sa_rwlock_t *p)
{
	return rw_lock(to_rw(p), RW_READ, true, DEADLINE_NONE, false);
}

SA_EXPORT int sa_rwlock_timedrdlock(sa_rwlock_t *p, clockid_t clk,
				    const struct timespec *abs)
{
	uint64_t d;
	int r = deadline_from_abs(clk, abs, &d);

	return r ? r : rw_lock(to_rw(p), RW_READ, false, d, false);
}

SA_EXPORT int sa_rwlock_wrlock(sa_rwlock_t *p)
{
	return rw_lock(to_rw(p), RW_WRITE, false, DEADLINE_NONE, false);
}

SA_EXPORT int sa_rwlock_trywrlock(sa_rwlock_t *p)
{
	return rw_lock(to_rw(p), RW_WRITE, true, DEADLINE_NONE, false);
}

SA_EXPORT int sa_rwlock_timedwrlock(sa_rwlock_t *p, clockid_t clk,
				    const struct timespec *abs)
{
	uint64_t d;
	int r = deadline_from_abs(clk, abs, &d);

	return r ? r : rw_lock(to_rw(p), RW_WRITE, false, d, false);
}

/**
 * rwlock_lock_intr - the shim's interruptible rdlock (@write false) or
 * wrlock (defs.h): until @abs on @clk (NULL: no limit).  Returns as
 * sa_rwlock_timedrdlock() or sa_rwlock_timedwrlock(), or -EINTR, the lock
 * not taken, when ut_interrupt() ended the wait.
 */
int rwlock_lock_intr(sa_rwlock_t *p, bool write, clockid_t clk, const struct timespec *abs)
{
	uint64_t d = DEADLINE_NONE;

	if (abs) {
		int r = deadline_from_abs(clk, abs, &d);

		if (r)
			return r;
	}
	return rw_lock(to_rw(p), write ? RW_WRITE : RW_READ, false, d, true);
}

/*
 * rw_release - under the lock: drop the caller's hold of @rw (-EPERM if it
 * has none that it may drop) and claim the waiters that may now run.
 */
static SA_CRITSEC int rw_release(struct rwlock *rw, struct uthread *me,
				 struct sa_waiter **chain)
{
	int ret = 0;

	spin_lock(&rw->lock);
	if (rw->readers == -1) {
		if (!me || rw->writer != me->id) {
			ret = -EPERM;
			goto out;
		}
		rw->readers = 0;
		rw->writer = 0;
	} else if (rw->readers > 0) {
		rw->readers--;
	} else {
		ret = -EPERM;
		goto out;
	}
	*chain = rw_grant_locked(rw);
out:
	spin_unlock(&rw->lock);
	return ret;
}

SA_EXPORT int sa_rwlock_unlock(sa_rwlock_t *p)
{
	struct rwlock *rw = to_rw(p);
	struct sa_waiter *chain = NULL;
	int ret;

	if (!rw_valid(rw))
		return -EINVAL;
	ret = rw_release(rw, ut_self(), &chain);
	waitq_ready_chain(chain);
	return ret;
}
