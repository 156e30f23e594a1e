/* mutex.c - mutexes: normal, recursive, error-checking; FIFO handoff to waiters */

/*
 * state is 0 when free, else the owner's uthread id, with MUTEX_WAITERS set
 * while the waiter queue may be non-empty.
 *
 * Fast path: one CAS 0 -> id to lock, one CAS id -> 0 to unlock.  Slow
 * path, under the mutex's spinlock: a locker sets MUTEX_WAITERS and queues;
 * an unlocker that finds MUTEX_WAITERS hands the mutex straight to the
 * first waiter (state = its id) and makes it runnable in its own next slot.
 * Direct handoff keeps the mutex fair (FIFO) and means a woken waiter never
 * has to race for the lock again.
 */

#include "defs.h"

#define MUTEX_WAITERS 0x80000000u

struct mutex {
	_Atomic uint32_t magic;
	_Atomic uint32_t state;
	spinlock_t lock;
	uint32_t count;
	struct waitq q;
};

_Static_assert(sizeof(struct mutex) == sizeof(sa_mutex_t), "mutex layout");
_Static_assert(_Alignof(struct mutex) <= _Alignof(sa_mutex_t), "mutex align");

static __always_inline struct mutex *to_mutex(sa_mutex_t *m)
{
	return (struct mutex *)m;
}

static __always_inline int mutex_type(uint32_t magic)
{
	return magic & 0xff;
}

static __always_inline bool mutex_valid(uint32_t magic)
{
	return check_magic(magic, SA__MAGIC_MUTEX) && mutex_type(magic) <= SA_MUTEX_ERRORCHECK;
}

SA_EXPORT int sa_mutex_init(sa_mutex_t *pm, int type)
{
	struct mutex *m = to_mutex(pm);

	if (!pm || type < SA_MUTEX_NORMAL || type > SA_MUTEX_ERRORCHECK)
		return -EINVAL;
	atomic_store(&m->state, 0);
	atomic_store(&m->lock, 0);
	m->count = 0;
	m->q.head = m->q.tail = NULL;
	atomic_store_explicit(&m->magic, SA__MAGIC_MUTEX | (uint32_t)type, memory_order_release);
	return 0;
}

/* mutex_retire - under the lock: -EBUSY if @m is in use, else invalidate it. */
static SA_CRITSEC int mutex_retire(struct mutex *m)
{
	int ret = 0;

	spin_lock(&m->lock);
	if (atomic_load(&m->state) != 0 || m->q.head)
		ret = -EBUSY;
	else
		atomic_store(&m->magic, 0);
	spin_unlock(&m->lock);
	return ret;
}

SA_EXPORT int sa_mutex_destroy(sa_mutex_t *pm)
{
	struct mutex *m = to_mutex(pm);

	if (!pm || !mutex_valid(atomic_load(&m->magic)))
		return -EINVAL;
	return mutex_retire(m);
}

/* Relock by the owner: what the type says. */
static int mutex_relock(struct mutex *m, int type, bool try)
{
	if (type == SA_MUTEX_RECURSIVE) {
		if (m->count == UINT32_MAX)
			return -EAGAIN;
		m->count++;
		return 0;
	}
	if (type == SA_MUTEX_ERRORCHECK)
		return try ? -EBUSY : -EDEADLK;
	return try ? -EBUSY : 1; /* normal: wait (for ever) as POSIX says */
}

/*
 * mutex_take_or_flag - under the lock: take @m if it is free (true, lock
 * dropped), else set MUTEX_WAITERS and return false with the lock held,
 * for the caller to queue.
 */
static SA_CRITSEC bool mutex_take_or_flag(struct mutex *m, struct uthread *me)
{
	uint32_t s;

	spin_lock(&m->lock);
	for (;;) {
		s = atomic_load_explicit(&m->state, memory_order_relaxed);
		if (s == 0) {
			if (atomic_compare_exchange_weak_explicit(&m->state, &s, me->id,
								  memory_order_acquire,
								  memory_order_relaxed)) {
				m->count = 1;
				spin_unlock(&m->lock);
				return true;
			}
			continue;
		}
		if (s & MUTEX_WAITERS)
			return false;
		if (atomic_compare_exchange_weak_explicit(&m->state, &s, s | MUTEX_WAITERS,
							  memory_order_relaxed,
							  memory_order_relaxed))
			return false;
	}
}

/* __mutex_lock - slow path: queue and wait for a handoff. */
static __noinline int __mutex_lock(struct mutex *m, struct uthread *me,
				   uint64_t deadline)
{
	uint32_t magic = atomic_load_explicit(&m->magic, memory_order_relaxed);
	uint32_t s;
	struct sa_waiter w;
	int ret;

	if (!mutex_valid(magic))
		return -EINVAL;
	s = atomic_load_explicit(&m->state, memory_order_relaxed);
	if ((s & ~MUTEX_WAITERS) == me->id) {
		ret = mutex_relock(m, mutex_type(magic), false);
		if (ret <= 0)
			return ret;
	}

	if (mutex_take_or_flag(m, me))
		return 0;
	ret = wait_park_unlock(&m->lock, &m->q, &w, deadline);
	/* On 0 the unlocker made us the owner and set count. */
	return ret;
}

/* mutex_lock_common - fast path, then the slow path. */
static __always_inline int mutex_lock_common(sa_mutex_t *pm, uint64_t deadline)
{
	struct mutex *m = to_mutex(pm);
	struct uthread *me;
	uint32_t zero = 0;

	if (unlikely(!pm))
		return -EINVAL;
	me = ut_self();
	if (unlikely(!me))
		return -ENOMEM;
	if (likely(mutex_valid(atomic_load_explicit(&m->magic, memory_order_relaxed))) &&
	    likely(atomic_compare_exchange_strong_explicit(&m->state, &zero, me->id,
							   memory_order_acquire,
							   memory_order_relaxed))) {
		m->count = 1;
		return 0;
	}
	return __mutex_lock(m, me, deadline);
}

SA_EXPORT int sa_mutex_lock(sa_mutex_t *pm)
{
	return mutex_lock_common(pm, DEADLINE_NONE);
}

SA_EXPORT int sa_mutex_timedlock(sa_mutex_t *pm, clockid_t clk,
				 const struct timespec *abs)
{
	uint64_t d;
	int r = deadline_from_abs(clk, abs, &d);

	if (r)
		return r;
	return mutex_lock_common(pm, d);
}

SA_EXPORT int sa_mutex_trylock(sa_mutex_t *pm)
{
	struct mutex *m = to_mutex(pm);
	struct uthread *me;
	uint32_t magic, zero = 0, s;

	if (!pm)
		return -EINVAL;
	magic = atomic_load_explicit(&m->magic, memory_order_relaxed);
	if (!mutex_valid(magic))
		return -EINVAL;
	me = ut_self();
	if (unlikely(!me))
		return -ENOMEM;
	if (atomic_compare_exchange_strong_explicit(&m->state, &zero, me->id,
						    memory_order_acquire,
						    memory_order_relaxed)) {
		m->count = 1;
		return 0;
	}
	s = atomic_load_explicit(&m->state, memory_order_relaxed);
	if ((s & ~MUTEX_WAITERS) == me->id)
		return mutex_relock(m, mutex_type(magic), true);
	return -EBUSY;
}

/*
 * mutex_handoff - under the lock: give @m to its first live waiter and
 * return that uthread, for sched_ready() once the lock is dropped (its
 * claimed waiter keeps it parked until then), or free @m and return NULL.
 */
static SA_CRITSEC struct uthread *mutex_handoff(struct mutex *m)
{
	struct sa_waiter *w;
	struct uthread *ut = NULL;

	spin_lock(&m->lock);
	while ((w = waitq_pop(&m->q)) != NULL) {
		if (!waiter_claim(w))
			continue; /* timed out: it leaves by itself */
		ut = w->ut;
		atomic_store_explicit(&m->state, ut->id | (m->q.head ? MUTEX_WAITERS : 0),
				      memory_order_release);
		m->count = 1;
		break;
	}
	if (!ut)
		atomic_store_explicit(&m->state, 0, memory_order_release);
	spin_unlock(&m->lock);
	return ut;
}

/* __mutex_unlock - slow path: hand the mutex to the first live waiter. */
static __noinline void __mutex_unlock(struct mutex *m)
{
	struct uthread *ut;

	sa_enter();
	ut = mutex_handoff(m);
	if (ut)
		sched_ready(ut);
}

/**
 * mutex_unlock_full - release @pm completely (all recursion levels) on
 * behalf of sa_cond_wait().  Returns the count it held.
 */
uint32_t mutex_unlock_full(sa_mutex_t *pm)
{
	struct mutex *m = to_mutex(pm);
	uint32_t count = m->count, s = atomic_load_explicit(&m->state, memory_order_relaxed);

	m->count = 0;
	if (!(s & MUTEX_WAITERS) &&
	    atomic_compare_exchange_strong_explicit(&m->state, &s, 0, memory_order_release,
						    memory_order_relaxed))
		return count;
	__mutex_unlock(m);
	return count;
}

/** mutex_relock_count - sa_cond_wait()'s relock, restoring the count. */
void mutex_relock_count(sa_mutex_t *pm, uint32_t count)
{
	mutex_lock_common(pm, DEADLINE_NONE);
	to_mutex(pm)->count = count;
}

/** mutex_owned_by_self - does the caller own @pm? (@pm must be valid) */
bool mutex_owned_by_self(sa_mutex_t *pm)
{
	struct uthread *me = ut_self();
	uint32_t s = atomic_load_explicit(&to_mutex(pm)->state, memory_order_relaxed);

	return me && (s & ~MUTEX_WAITERS) == me->id;
}

/** mutex_valid_obj - is @pm an initialised mutex? */
bool mutex_valid_obj(sa_mutex_t *pm)
{
	return pm && mutex_valid(atomic_load_explicit(&to_mutex(pm)->magic, memory_order_relaxed));
}

SA_EXPORT int sa_mutex_unlock(sa_mutex_t *pm)
{
	struct mutex *m = to_mutex(pm);
	struct uthread *me;
	uint32_t magic, s, owner;

	if (unlikely(!pm))
		return -EINVAL;
	magic = atomic_load_explicit(&m->magic, memory_order_relaxed);
	if (unlikely(!mutex_valid(magic)))
		return -EINVAL;
	me = ut_self();
	if (unlikely(!me))
		return -EPERM;
	s = atomic_load_explicit(&m->state, memory_order_relaxed);
	owner = s & ~MUTEX_WAITERS;
	if (unlikely(owner != me->id)) {
		/* A normal mutex may be unlocked by another uthread (POSIX
		 * leaves it undefined; we allow it); never an unlocked one. */
		if (owner == 0 || mutex_type(magic) != SA_MUTEX_NORMAL)
			return -EPERM;
	}
	if (mutex_type(magic) == SA_MUTEX_RECURSIVE && m->count > 1) {
		m->count--;
		return 0;
	}
	m->count = 0;
	if (likely(!(s & MUTEX_WAITERS)) &&
	    likely(atomic_compare_exchange_strong_explicit(&m->state, &s, 0,
							   memory_order_release,
							   memory_order_relaxed)))
		return 0;
	__mutex_unlock(m);
	return 0;
}
