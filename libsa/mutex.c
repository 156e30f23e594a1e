/* mutex.c - mutexes: normal, recursive, error-checking, robust; FIFO handoff to waiters */

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
 *
 * Robust mutexes (SA_MUTEX_ROBUST in the magic's low byte) never take the
 * fast paths: those test that the low byte is a plain type, which a robust
 * mutex fails, so the other mutexes pay nothing for them.  Every step of a
 * robust mutex runs under its spinlock, and its robust state lives in the
 * magic's low byte, written under that lock:
 *
 *   consistent   --its owner ends------------>  inconsistent
 *   inconsistent --next owner: -EOWNERDEAD,
 *                  sa_mutex_consistent()------>  consistent
 *   inconsistent --unlocked-------------------->  unrecoverable: every lock
 *                                                 and every waiter gets
 *                                                 -ENOTRECOVERABLE
 *
 * An owner learns of its own end through the list of the robust mutexes
 * it holds: an array in its struct uthread, written by itself only (no
 * lock), which ut_exit_current() and an external thread's end hand to
 * mutex_robust_owner_exit().  Rejected: glibc's robust list, a link inside
 * each mutex: sa_mutex_t has no room for one without growing its public
 * size, and the kernel's robust-list walk is for futex words, which libsa's
 * mutex state is not.
 */

#include "defs.h"

#define MUTEX_WAITERS 0x80000000u

#define MUTEX_TYPE_MASK 0x0fu
#define MUTEX_INCONSISTENT 0x20u   /* robust: an owner ended holding it */
#define MUTEX_UNRECOVERABLE 0x40u  /* robust: unlocked while inconsistent */
#define MUTEX_W_UNRECOVERABLE 1u   /* sa_waiter.kind: woken without the mutex */

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
	return magic & MUTEX_TYPE_MASK;
}

/* mutex_valid - a mutex that is not robust: the fast paths' test. */
static __always_inline bool mutex_valid(uint32_t magic)
{
	return check_magic(magic, SA__MAGIC_MUTEX) && (magic & 0xff) <= SA_MUTEX_ERRORCHECK;
}

static __always_inline bool mutex_valid_robust(uint32_t magic)
{
	return check_magic(magic, SA__MAGIC_MUTEX) && (magic & SA_MUTEX_ROBUST) &&
	       (magic & (0x80u | MUTEX_TYPE_MASK)) <= SA_MUTEX_ERRORCHECK;
}

static __always_inline bool mutex_valid_any(uint32_t magic)
{
	return mutex_valid(magic) || mutex_valid_robust(magic);
}

SA_EXPORT int sa_mutex_init(sa_mutex_t *pm, int type)
{
	struct mutex *m = to_mutex(pm);
	int base = type & ~SA_MUTEX_ROBUST;

	if (!pm || base < SA_MUTEX_NORMAL || base > SA_MUTEX_ERRORCHECK)
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

	if (!pm || !mutex_valid_any(atomic_load(&m->magic)))
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

/* ------------------------------------------------------------------------
 * Robust mutexes: the owner's list, lock, release
 */

/* robust_reserve - room in @me's list for one more robust mutex. */
static int robust_reserve(struct uthread *me)
{
	uint32_t cap;
	void *p;

	if (likely(me->nrobust < me->robust_cap))
		return 0;
	cap = me->robust_cap ? me->robust_cap * 2 : (uint32_t)(SA_PAGE / sizeof(*me->robust));
	p = sa_mem_grow(me->robust, me->robust_cap * sizeof(*me->robust),
			cap * sizeof(*me->robust));
	if (!p)
		return -ENOMEM;
	me->robust = p;
	me->robust_cap = cap;
	return 0;
}

/* robust_forget - take @pm off @me's list (the latest locked is last). */
static void robust_forget(struct uthread *me, sa_mutex_t *pm)
{
	for (uint32_t i = me->nrobust; i-- > 0;) {
		if (me->robust[i] != pm)
			continue;
		memmove(&me->robust[i], &me->robust[i + 1],
			(me->nrobust - i - 1) * sizeof(*me->robust));
		me->nrobust--;
		return;
	}
}

/*
 * robust_take_or_flag - under the lock: take robust @m if it is free
 * (0, or -EOWNERDEAD when it is inconsistent), or fail (-ENOTRECOVERABLE;
 * -EBUSY when @try), with the lock dropped; else set MUTEX_WAITERS and
 * return 1 with the lock held, for the caller to queue.
 */
static SA_CRITSEC int robust_take_or_flag(struct mutex *m, struct uthread *me, bool try)
{
	uint32_t magic, s;

	spin_lock(&m->lock);
	magic = atomic_load_explicit(&m->magic, memory_order_relaxed);
	if (magic & MUTEX_UNRECOVERABLE) {
		spin_unlock(&m->lock);
		return -ENOTRECOVERABLE;
	}
	s = atomic_load_explicit(&m->state, memory_order_relaxed);
	if (s == 0) {
		atomic_store_explicit(&m->state, me->id, memory_order_relaxed);
		m->count = 1;
		spin_unlock(&m->lock);
		return (magic & MUTEX_INCONSISTENT) ? -EOWNERDEAD : 0;
	}
	if (try) {
		spin_unlock(&m->lock);
		return -EBUSY;
	}
	atomic_store_explicit(&m->state, s | MUTEX_WAITERS, memory_order_relaxed);
	return 1;
}

/* robust_lock - lock, trylock or timed lock of robust @m by @me; with
 * @intr, ut_interrupt() ends the wait with -EINTR. */
static __noinline int robust_lock(struct mutex *m, struct uthread *me,
				  uint64_t deadline, bool try, bool intr)
{
	uint32_t magic = atomic_load_explicit(&m->magic, memory_order_relaxed);
	uint32_t s;
	struct sa_waiter w;
	int ret;

	if (!mutex_valid_robust(magic))
		return -EINVAL;
	s = atomic_load_explicit(&m->state, memory_order_relaxed);
	if ((s & ~MUTEX_WAITERS) == me->id) {
		ret = mutex_relock(m, mutex_type(magic), try);
		if (ret <= 0)
			return ret;
	}
	ret = robust_reserve(me);
	if (ret)
		return ret;
	ret = robust_take_or_flag(m, me, try);
	if (ret == 1) {
		w.kind = 0;
		ret = intr ? wait_park_unlock_intr(&m->lock, &m->q, &w, deadline) :
			     wait_park_unlock(&m->lock, &m->q, &w, deadline);
		if (ret)
			return ret;
		if (w.kind == MUTEX_W_UNRECOVERABLE)
			return -ENOTRECOVERABLE;
		/* Handed over: the releaser made us the owner under the lock,
		 * after it set the magic's robust state. */
		magic = atomic_load_explicit(&m->magic, memory_order_acquire);
		ret = (magic & MUTEX_INCONSISTENT) ? -EOWNERDEAD : 0;
	}
	if (ret == 0 || ret == -EOWNERDEAD)
		me->robust[me->nrobust++] = (sa_mutex_t *)m;
	return ret;
}

/*
 * robust_release - under the lock: release robust @m for its owner, which
 * unlocks it or, if @dead, has ended.  Returns what to hand to
 * waitq_ready_chain() once the lock is dropped: the waiter that now owns
 * @m, or, when the unlock of an inconsistent mutex made it unrecoverable,
 * every waiter, each marked MUTEX_W_UNRECOVERABLE.
 */
static SA_CRITSEC struct sa_waiter *robust_release(struct mutex *m, bool dead)
{
	struct sa_waiter *w, *chain;
	uint32_t magic;

	spin_lock(&m->lock);
	magic = atomic_load_explicit(&m->magic, memory_order_relaxed);
	if (dead)
		magic |= MUTEX_INCONSISTENT;
	else if (magic & MUTEX_INCONSISTENT)
		magic = (magic & ~MUTEX_INCONSISTENT) | MUTEX_UNRECOVERABLE;
	atomic_store_explicit(&m->magic, magic, memory_order_release);
	m->count = 0;
	if (magic & MUTEX_UNRECOVERABLE) {
		chain = waitq_claim_all(&m->q);
		for (w = chain; w; w = w->next)
			w->kind = MUTEX_W_UNRECOVERABLE;
		atomic_store_explicit(&m->state, 0, memory_order_release);
		spin_unlock(&m->lock);
		return chain;
	}
	while ((w = waitq_pop(&m->q)) != NULL) {
		if (!waiter_claim(w))
			continue; /* timed out: it leaves by itself */
		atomic_store_explicit(&m->state, w->ut->id | (m->q.head ? MUTEX_WAITERS : 0),
				      memory_order_release);
		m->count = 1;
		break;
	}
	if (!w)
		atomic_store_explicit(&m->state, 0, memory_order_release);
	spin_unlock(&m->lock);
	return w;
}

/* robust_unlock - sa_mutex_unlock() of a mutex that failed mutex_valid(). */
static __noinline int robust_unlock(struct mutex *m, uint32_t magic)
{
	struct uthread *me;
	uint32_t s;

	if (!mutex_valid_robust(magic))
		return -EINVAL;
	me = ut_self();
	if (unlikely(!me))
		return -EPERM;
	s = atomic_load_explicit(&m->state, memory_order_relaxed);
	if ((s & ~MUTEX_WAITERS) != me->id)
		return -EPERM;
	if (mutex_type(magic) == SA_MUTEX_RECURSIVE && m->count > 1) {
		m->count--;
		return 0;
	}
	robust_forget(me, (sa_mutex_t *)m);
	waitq_ready_chain(robust_release(m, false));
	return 0;
}

/**
 * mutex_robust_owner_exit - @ut ends: each robust mutex it still holds
 * becomes inconsistent and goes to its next waiter, who gets -EOWNERDEAD.
 * Called by @ut itself, after its key destructors ran.
 */
void mutex_robust_owner_exit(struct uthread *ut)
{
	sa_enter();
	while (ut->nrobust) {
		struct mutex *m = to_mutex(ut->robust[--ut->nrobust]);

		if (mutex_valid_robust(atomic_load_explicit(&m->magic, memory_order_relaxed)))
			waitq_ready_chain(robust_release(m, true));
	}
	sa_mem_free(ut->robust, ut->robust_cap * sizeof(*ut->robust));
	ut->robust = NULL;
	ut->robust_cap = 0;
}

SA_EXPORT int sa_mutex_consistent(sa_mutex_t *pm)
{
	struct mutex *m = to_mutex(pm);
	struct uthread *me;
	uint32_t magic, s;

	if (!pm)
		return -EINVAL;
	magic = atomic_load_explicit(&m->magic, memory_order_relaxed);
	if (!mutex_valid_robust(magic) || !(magic & MUTEX_INCONSISTENT))
		return -EINVAL;
	me = ut_self();
	s = atomic_load_explicit(&m->state, memory_order_relaxed);
	if (!me || (s & ~MUTEX_WAITERS) != me->id)
		return -EINVAL;
	/* No lock: while we own @m nobody else writes its magic (a release
	 * is the owner's, and destroy leaves a locked mutex alone). */
	atomic_fetch_and_explicit(&m->magic, ~MUTEX_INCONSISTENT, memory_order_relaxed);
	return 0;
}

/* ------------------------------------------------------------------------
 * Lock and unlock
 */

/*
 * __mutex_lock - slow path: queue and wait for a handoff.  With @intr,
 * ut_interrupt() ends the wait with -EINTR, the mutex not taken: a waiter
 * that an unlock skipped over for it leaves MUTEX_WAITERS behind, which
 * costs the next unlock one pass of the slow path and nothing else.
 */
static __noinline int __mutex_lock(struct mutex *m, struct uthread *me,
				   uint64_t deadline, bool intr)
{
	uint32_t magic = atomic_load_explicit(&m->magic, memory_order_relaxed);
	uint32_t s;
	struct sa_waiter w;
	int ret;

	if (!mutex_valid(magic))
		return robust_lock(m, me, deadline, false, intr);
	s = atomic_load_explicit(&m->state, memory_order_relaxed);
	if ((s & ~MUTEX_WAITERS) == me->id) {
		ret = mutex_relock(m, mutex_type(magic), false);
		if (ret <= 0)
			return ret;
	}

	if (mutex_take_or_flag(m, me))
		return 0;
	ret = intr ? wait_park_unlock_intr(&m->lock, &m->q, &w, deadline) :
		     wait_park_unlock(&m->lock, &m->q, &w, deadline);
	/* On 0 the unlocker made us the owner and set count. */
	return ret;
}

/* mutex_lock_common - fast path, then the slow path (@intr: see there). */
static __always_inline int mutex_lock_common(sa_mutex_t *pm, uint64_t deadline, bool intr)
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
	return __mutex_lock(m, me, deadline, intr);
}

SA_EXPORT int sa_mutex_lock(sa_mutex_t *pm)
{
	return mutex_lock_common(pm, DEADLINE_NONE, false);
}

SA_EXPORT int sa_mutex_timedlock(sa_mutex_t *pm, clockid_t clk,
				 const struct timespec *abs)
{
	uint64_t d;
	int r = deadline_from_abs(clk, abs, &d);

	if (r)
		return r;
	return mutex_lock_common(pm, d, false);
}

/**
 * mutex_lock_intr - the shim's interruptible lock (defs.h): until @abs on
 * @clk (NULL: no limit).  Returns as sa_mutex_timedlock(), or -EINTR,
 * the mutex not taken, when ut_interrupt() ended the wait.  The fast path
 * is sa_mutex_lock()'s.
 */
int mutex_lock_intr(sa_mutex_t *pm, clockid_t clk, const struct timespec *abs)
{
	uint64_t d = DEADLINE_NONE;

	if (abs) {
		int r = deadline_from_abs(clk, abs, &d);

		if (r)
			return r;
	}
	return mutex_lock_common(pm, d, true);
}

SA_EXPORT int sa_mutex_trylock(sa_mutex_t *pm)
{
	struct mutex *m = to_mutex(pm);
	struct uthread *me;
	uint32_t magic, zero = 0, s;

	if (!pm)
		return -EINVAL;
	magic = atomic_load_explicit(&m->magic, memory_order_relaxed);
	me = ut_self();
	if (unlikely(!me))
		return -ENOMEM;
	if (!mutex_valid(magic))
		return robust_lock(m, me, DEADLINE_NONE, true, false);
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

	if (unlikely(!mutex_valid(atomic_load_explicit(&m->magic, memory_order_relaxed)))) {
		/* robust: an inconsistent one becomes unrecoverable */
		robust_forget(ut_self(), pm);
		waitq_ready_chain(robust_release(m, false));
		return count;
	}
	m->count = 0;
	if (!(s & MUTEX_WAITERS) &&
	    atomic_compare_exchange_strong_explicit(&m->state, &s, 0, memory_order_release,
						    memory_order_relaxed))
		return count;
	__mutex_unlock(m);
	return count;
}

/**
 * mutex_relock_count - sa_cond_wait()'s relock, restoring the count.
 * Returns 0, or for a robust mutex -EOWNERDEAD (locked) or an error of
 * sa_mutex_lock() (not locked).
 */
int mutex_relock_count(sa_mutex_t *pm, uint32_t count)
{
	int r = mutex_lock_common(pm, DEADLINE_NONE, false);

	if (r == 0 || r == -EOWNERDEAD)
		to_mutex(pm)->count = count;
	return r;
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
	return pm && mutex_valid_any(atomic_load_explicit(&to_mutex(pm)->magic,
							   memory_order_relaxed));
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
		return robust_unlock(m, magic);
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
