/* sem.c - counting semaphores: lock-free take, post hands a unit to a waiter */

#include "defs.h"

struct sem {
	_Atomic uint32_t magic;
	spinlock_t lock;
	_Atomic uint32_t value;
	uint32_t nwait;
	struct waitq q;
};

_Static_assert(sizeof(struct sem) == sizeof(sa_sem_t), "sem layout");

static __always_inline struct sem *to_sem(sa_sem_t *p)
{
	return (struct sem *)p;
}

static __always_inline bool sem_valid(struct sem *s)
{
	return s && atomic_load_explicit(&s->magic, memory_order_relaxed) == SA__MAGIC_SEM;
}

SA_EXPORT int sa_sem_init(sa_sem_t *p, unsigned value)
{
	struct sem *s = to_sem(p);

	if (!p || value > SA_SEM_VALUE_MAX)
		return -EINVAL;
	atomic_store(&s->lock, 0);
	atomic_store(&s->value, value);
	s->nwait = 0;
	s->q.head = s->q.tail = NULL;
	atomic_store_explicit(&s->magic, SA__MAGIC_SEM, memory_order_release);
	return 0;
}

/* sem_retire - under the lock: -EBUSY if @s has waiters, else invalidate it. */
static SA_CRITSEC int sem_retire(struct sem *s)
{
	int ret = 0;

	spin_lock(&s->lock);
	if (s->q.head)
		ret = -EBUSY;
	else
		atomic_store(&s->magic, 0);
	spin_unlock(&s->lock);
	return ret;
}

SA_EXPORT int sa_sem_destroy(sa_sem_t *p)
{
	struct sem *s = to_sem(p);

	if (!sem_valid(s))
		return -EINVAL;
	return sem_retire(s);
}

/* sem_take - fast path: take a unit without the lock if there is one. */
static __always_inline bool sem_take(struct sem *s)
{
	uint32_t v = atomic_load_explicit(&s->value, memory_order_relaxed);

	while (v > 0)
		if (atomic_compare_exchange_weak_explicit(&s->value, &v, v - 1,
							  memory_order_acquire,
							  memory_order_relaxed))
			return true;
	return false;
}

/*
 * sem_take_locking - take the lock and a unit if there is one (true, lock
 * dropped); false with the lock held, for the caller to queue.
 */
static SA_CRITSEC bool sem_take_locking(struct sem *s)
{
	spin_lock(&s->lock);
	if (sem_take(s)) {
		spin_unlock(&s->lock);
		return true;
	}
	return false;
}

static int sem_wait_common(struct sem *s, uint64_t deadline, bool intr)
{
	struct sa_waiter w;

	if (!sem_valid(s))
		return -EINVAL;
	if (sem_take(s))
		return 0;
	if (!ut_self())
		return -ENOMEM;
	if (sem_take_locking(s))
		return 0;
	/* On 0 the poster handed its unit to us directly. */
	if (intr)
		return wait_park_unlock_intr(&s->lock, &s->q, &w, deadline);
	return wait_park_unlock(&s->lock, &s->q, &w, deadline);
}

SA_EXPORT int sa_sem_wait(sa_sem_t *p)
{
	return sem_wait_common(to_sem(p), DEADLINE_NONE, false);
}

SA_EXPORT int sa_sem_timedwait(sa_sem_t *p, clockid_t clk, const struct timespec *abs)
{
	uint64_t d;
	int r = deadline_from_abs(clk, abs, &d);

	return r ? r : sem_wait_common(to_sem(p), d, false);
}

/**
 * sem_wait_intr - the shim's interruptible semaphore wait (defs.h): until
 * @abs on @clk (NULL: no limit).  Returns as sa_sem_timedwait(), or -EINTR
 * (no unit taken).
 */
int sem_wait_intr(sa_sem_t *p, clockid_t clk, const struct timespec *abs)
{
	uint64_t d = DEADLINE_NONE;

	if (abs) {
		int r = deadline_from_abs(clk, abs, &d);

		if (r)
			return r;
	}
	return sem_wait_common(to_sem(p), d, true);
}

SA_EXPORT int sa_sem_trywait(sa_sem_t *p)
{
	struct sem *s = to_sem(p);

	if (!sem_valid(s))
		return -EINVAL;
	return sem_take(s) ? 0 : -EAGAIN;
}

/*
 * sem_give - under the lock: hand a unit to the first live waiter and
 * return its uthread in *@wake, for sched_ready() once the lock is dropped,
 * or add it to the value.  Always under the lock: a waiter decides to queue
 * under it, after a last sem_take(), so a post cannot slip between the two
 * unseen.
 */
static SA_CRITSEC int sem_give(struct sem *s, struct uthread **wake)
{
	struct sa_waiter *w;
	uint32_t v;
	int ret = 0;

	spin_lock(&s->lock);
	while ((w = waitq_pop(&s->q)) != NULL) {
		if (waiter_claim(w)) {
			*wake = w->ut;
			goto out;
		}
	}
	v = atomic_load_explicit(&s->value, memory_order_relaxed);
	do {
		if (v >= SA_SEM_VALUE_MAX) {
			ret = -EOVERFLOW;
			goto out;
		}
	} while (!atomic_compare_exchange_weak_explicit(&s->value, &v, v + 1,
							memory_order_release,
							memory_order_relaxed));
out:
	spin_unlock(&s->lock);
	return ret;
}

SA_EXPORT int sa_sem_post(sa_sem_t *p)
{
	struct sem *s = to_sem(p);
	struct uthread *wake = NULL;
	int ret;

	sa_enter();
	if (!sem_valid(s))
		return -EINVAL;
	ret = sem_give(s, &wake);
	if (wake)
		sched_ready(wake);
	return ret;
}

SA_EXPORT int sa_sem_getvalue(sa_sem_t *p, unsigned *value)
{
	struct sem *s = to_sem(p);

	if (!sem_valid(s) || !value)
		return -EINVAL;
	*value = atomic_load_explicit(&s->value, memory_order_relaxed);
	return 0;
}
