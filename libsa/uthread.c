/* uthread.c - the uthread table, spawn, join, detach, exit, names and priorities */

/*
 * Uthread structs live in a table of 4096-entry chunks that are mapped on
 * demand and never unmapped.  A handle is (generation << 32 | index + 1):
 * the generation is bumped under the struct's lock when the struct is freed,
 * so a stale handle finds a struct it can still lock safely and answers
 * -ESRCH instead of naming a stranger.  Free structs are cached per VP
 * (no lock) in front of one global pool.
 *
 * Lifetime, all under ut->lock:
 *   RUNNABLE/RUNNING/PARKED --exit--> DONE --join or detach--> FREE
 * A detached uthread goes from DONE to FREE at once, by the context that
 * runs after it (sched_finish_switch -> ut_release_dead), since a uthread
 * cannot free the stack it is running on.
 */

#include <sys/mman.h>

#include "defs.h"

#define UT_CHUNK_SHIFT 12
#define UT_CHUNK (1u << UT_CHUNK_SHIFT)
#define UT_NCHUNKS ((UT_ID_MAX >> UT_CHUNK_SHIFT) + 1)
#define UT_REFILL 64

_Static_assert(sizeof(struct uthread) % CACHE_LINE == 0, "uthread: whole lines");

static struct uthread *_Atomic ut_chunks[UT_NCHUNKS];
static uint32_t ut_nslots; /* slots handed out, under rt.ut_pool_lock */
static _Atomic uint32_t ut_nslots_pub;

static struct uthread *ut_slot(uint32_t index)
{
	struct uthread *chunk = atomic_load_explicit(&ut_chunks[index >> UT_CHUNK_SHIFT],
						     memory_order_acquire);

	return chunk ? &chunk[index & (UT_CHUNK - 1)] : NULL;
}

/* ut_pool_take_locked - one struct from the pool, or a new slot. */
static struct uthread *ut_pool_take_locked(void)
{
	struct uthread *ut = rt.ut_pool;

	if (ut) {
		rt.ut_pool = ut->free_next;
		rt.ut_pool_n--;
		return ut;
	}
	if (ut_nslots >= UT_ID_MAX)
		return NULL;
	if (!ut_slot(ut_nslots)) {
		size_t sz = UT_CHUNK * sizeof(struct uthread);
		struct vp *np = np_enter(); /* under rt.ut_pool_lock */
		void *p = mmap(NULL, sz, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		np_exit(np);

		if (p == MAP_FAILED)
			return NULL;
		atomic_store_explicit(&ut_chunks[ut_nslots >> UT_CHUNK_SHIFT], p,
				      memory_order_release);
	}
	ut = ut_slot(ut_nslots);
	ut->id = ut_nslots + 1;
	atomic_store_explicit(&ut->gen, 1, memory_order_relaxed);
	ut_nslots++;
	atomic_store_explicit(&ut_nslots_pub, ut_nslots, memory_order_release);
	return ut;
}

/**
 * ut_alloc - a free uthread struct with a fresh generation, or NULL.
 * Everything but id, gen and lock is zero.
 */
struct uthread *ut_alloc(void)
{
	struct vp *vp = vp_self();
	struct uthread *ut = NULL;
	uint32_t id;

	if (vp && vp->ut_cache) {
		ut = vp->ut_cache;
		vp->ut_cache = ut->free_next;
		vp->ut_cache_n--;
	} else {
		spin_lock(&rt.ut_pool_lock);
		ut = ut_pool_take_locked();
		/* Refill the VP cache while we hold the lock. */
		for (int i = 0; vp && ut && i < UT_REFILL - 1; i++) {
			struct uthread *x = ut_pool_take_locked();

			if (!x)
				break;
			x->free_next = vp->ut_cache;
			vp->ut_cache = x;
			vp->ut_cache_n++;
		}
		spin_unlock(&rt.ut_pool_lock);
		if (!ut)
			return NULL;
	}
	id = ut->id;
	/* The lock word stays: a stale handle may be spinning on it. */
	memset(&ut->ctx, 0, offsetof(struct uthread, lock) - offsetof(struct uthread, ctx));
	memset(&ut->joiner, 0, sizeof(*ut) - offsetof(struct uthread, joiner));
	ut->id = id;
	return ut;
}

/**
 * ut_free - return @ut to the caches.  The caller holds @ut->lock, which
 * this releases after retiring the generation.
 */
void ut_free(struct uthread *ut)
{
	struct vp *vp = vp_self();

	tls_free(ut);
	WRITE_ONCE(ut->state, UT_FREE);
	/* Under ut->lock, so a plain increment is enough. */
	atomic_store_explicit(&ut->gen, atomic_load_explicit(&ut->gen, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	spin_unlock(&ut->lock);

	if (vp && vp->ut_cache_n < UT_CACHE_MAX) {
		ut->free_next = vp->ut_cache;
		vp->ut_cache = ut;
		vp->ut_cache_n++;
		return;
	}
	spin_lock(&rt.ut_pool_lock);
	ut->free_next = rt.ut_pool;
	rt.ut_pool = ut;
	rt.ut_pool_n++;
	spin_unlock(&rt.ut_pool_lock);
}

/**
 * ut_lookup_lock - the live or unjoined uthread named by @h, locked, or
 * NULL if @h names none.
 */
struct uthread *ut_lookup_lock(sa_uthread_t h)
{
	uint32_t id = (uint32_t)h, gen = (uint32_t)(h >> 32);
	struct uthread *ut;

	if (id == 0 || id > atomic_load_explicit(&ut_nslots_pub, memory_order_acquire))
		return NULL;
	ut = ut_slot(id - 1);
	if (!ut)
		return NULL;
	spin_lock(&ut->lock);
	if (atomic_load_explicit(&ut->gen, memory_order_relaxed) != gen ||
	    READ_ONCE(ut->state) == UT_FREE || (ut->flags & (UTF_IDLE | UTF_EXTERNAL))) {
		spin_unlock(&ut->lock);
		return NULL;
	}
	return ut;
}

/**
 * ut_find - a live uthread for which @want(@ut, @arg) holds (asked with
 * @ut->lock held): the main uthread if it is one, else the first one in an
 * interruptible wait, else the first one.  For the LD_PRELOAD shim, which
 * picks the uthread that takes a signal sent to the process, as the
 * kernel picks a thread.  Returns its handle, or 0 if none.
 */
sa_uthread_t ut_find(bool (*want)(struct uthread *ut, void *arg), void *arg)
{
	uint32_t n = atomic_load_explicit(&ut_nslots_pub, memory_order_acquire);
	sa_uthread_t any = 0, waiting = 0;

	for (uint32_t i = 0; i < n; i++) {
		struct uthread *ut = ut_slot(i);
		uint8_t st;

		if (!ut)
			continue;
		spin_lock(&ut->lock);
		st = READ_ONCE(ut->state);
		if (st != UT_FREE && st != UT_DONE && !(ut->flags & (UTF_IDLE | UTF_EXTERNAL)) &&
		    want(ut, arg)) {
			sa_uthread_t h = ut_handle(ut);
			bool main = ut->flags & UTF_MAIN;

			if (!waiting && atomic_load(&ut->intr_wait))
				waiting = h;
			if (!any)
				any = h;
			spin_unlock(&ut->lock);
			if (main)
				return h;
			continue;
		}
		spin_unlock(&ut->lock);
	}
	return waiting ? waiting : any;
}

/* ------------------------------------------------------------------------
 * External threads: kernel threads that call libsa without being uthreads
 * get a record so that they can own mutexes and wait in queues.
 */

static __thread struct uthread *tls_ext;
static pthread_key_t ext_key;
static pthread_once_t ext_once = PTHREAD_ONCE_INIT;

static void ext_release(void *p)
{
	struct uthread *ut = p;

	keys_run_destructors(ut);
	keys_release(ut);
	if (unlikely(ut->robust))
		mutex_robust_owner_exit(ut);
	tls_ext = NULL;
	spin_lock(&ut->lock);
	ut_free(ut);
}

static void ext_key_init(void)
{
	pthread_key_create(&ext_key, ext_release);
}

/**
 * ut_ext_self - the calling kernel thread's external record, made on first
 * use; NULL if there is no memory for one.
 */
struct uthread *ut_ext_self(void)
{
	struct uthread *ut = tls_ext;

	if (likely(ut))
		return ut;
	ut = ut_alloc();
	if (!ut)
		return NULL;
	ut->flags = UTF_EXTERNAL;
	WRITE_ONCE(ut->state, UT_RUNNING);
	ut->prio = SA_PRIO_NORMAL;
	pthread_once(&ext_once, ext_key_init);
	pthread_setspecific(ext_key, ut);
	tls_ext = ut;
	return ut;
}

/**
 * ut_fork_child - in a child of fork() made by uthread @ut: @ut goes on
 * as the record of the child's only kernel thread, an external thread
 * until the runtime starts again and adopts it (its keys stay).
 */
void ut_fork_child(struct uthread *ut)
{
	atomic_store(&ut->lock, 0);
	ut->flags = (ut->flags & UTF_TLS) | UTF_EXTERNAL;
	WRITE_ONCE(ut->state, UT_RUNNING);
	atomic_store(&ut->vp, NULL);
	ut->joiner = NULL;
	pthread_once(&ext_once, ext_key_init);
	pthread_setspecific(ext_key, ut);
	tls_ext = ut;
}

/** ut_ext_adopt - the caller becomes a uthread: hand over its record. */
struct uthread *ut_ext_adopt(void)
{
	struct uthread *ut = tls_ext;

	if (!ut)
		return NULL;
	tls_ext = NULL;
	pthread_setspecific(ext_key, NULL);
	ut->flags &= ~UTF_EXTERNAL;
	return ut;
}

/* ------------------------------------------------------------------------
 * Attributes
 */

#define ATTR_MAGIC 0x5a417400u
#define GUARD_DEFAULT (16 * 1024)
#define GUARD_MAX (64ul << 20)

SA_EXPORT int sa_attr_init(sa_attr_t *a)
{
	if (!a)
		return -EINVAL;
	memset(a, 0, sizeof(*a));
	a->__magic = ATTR_MAGIC;
	a->__stack_size = SA_STACK_DEFAULT;
	a->__guard_size = 0;
	a->__prio = SA_PRIO_NORMAL;
	return 0;
}

static __always_inline bool attr_ok(const sa_attr_t *a)
{
	return a && a->__magic == ATTR_MAGIC;
}

SA_EXPORT int sa_attr_setstacksize(sa_attr_t *a, size_t size)
{
	if (!attr_ok(a) || size < SA_STACK_MIN || size > SA_STACK_MAX)
		return -EINVAL;
	a->__stack_size = size;
	return 0;
}

SA_EXPORT int sa_attr_setguardsize(sa_attr_t *a, size_t size)
{
	if (!attr_ok(a) || size > GUARD_MAX)
		return -EINVAL;
	a->__guard_size = size;
	return 0;
}

SA_EXPORT int sa_attr_setprio(sa_attr_t *a, int prio)
{
	if (!attr_ok(a) || prio < 0 || prio >= SA_NR_PRIO)
		return -EINVAL;
	a->__prio = prio;
	return 0;
}

SA_EXPORT int sa_attr_setdetached(sa_attr_t *a, int detached)
{
	if (!attr_ok(a))
		return -EINVAL;
	if (detached)
		a->__flags |= UTF_DETACHED;
	else
		a->__flags &= ~(uint32_t)UTF_DETACHED;
	return 0;
}

SA_EXPORT int sa_attr_setname(sa_attr_t *a, const char *name)
{
	if (!attr_ok(a) || !name)
		return -EINVAL;
	strncpy(a->__name, name, sizeof(a->__name) - 1);
	a->__name[sizeof(a->__name) - 1] = '\0';
	return 0;
}

/* ------------------------------------------------------------------------
 * Spawn, exit, join, detach
 */

static void ut_entry(void)
{
	struct uthread *me;

	san_switch_end(vp_self()->cur);
	sched_finish_switch();
	me = vp_self()->cur;
	if (me->flags & UTF_TLS)
		tls_thread_start();
	ut_exit_current(me->fn(me->arg));
}

/**
 * ut_spawn - sa_spawn() that also stores the new uthread's thread pointer
 * in *@tp (NULL unless the runtime is in the TLS mode), before it can run.
 */
int ut_spawn(sa_uthread_t *out, const sa_attr_t *attr, void *(*fn)(void *),
	     void *arg, void **tp)
{
	size_t stack = SA_STACK_DEFAULT, guard = GUARD_DEFAULT;
	uint32_t flags = 0;
	int prio = SA_PRIO_NORMAL, ret;
	struct uthread *ut;
	struct vp *vp;

	if (!fn || (attr && !attr_ok(attr)))
		return -EINVAL;
	if (attr) {
		stack = attr->__stack_size;
		if (attr->__guard_size)
			guard = attr->__guard_size;
		flags = attr->__flags & UTF_DETACHED;
		prio = attr->__prio;
	}
	if (!(flags & UTF_DETACHED) && !out)
		return -EINVAL;
	ret = rt_start();
	if (ret)
		return ret;

	ut = ut_alloc();
	if (!ut)
		return -ENOMEM;
	ret = stack_alloc(ut, stack, guard);
	if (ret) {
		spin_lock(&ut->lock);
		ut_free(ut);
		return ret;
	}
	ut->fn = fn;
	ut->arg = arg;
	ut->flags = flags;
	ut->prio = (uint8_t)prio;
	if (rt.tls_mode) {
		ret = tls_alloc(ut);
		if (ret) {
			stack_free(ut);
			spin_lock(&ut->lock);
			ut_free(ut);
			return ret;
		}
	}
	if (attr)
		memcpy(ut->name, attr->__name, sizeof(ut->name));
	sa_ctx_init(&ut->ctx, ut->stack_hi, ut_entry);
	san_fiber_create(ut);
	if (out)
		*out = ut_handle(ut);
	if (tp)
		*tp = ut->tp;

	vp = vp_self();
	if (vp)
		stat_inc(&vp->stats.spawned);
	else
		atomic_fetch_add(&rt.ext_spawned, 1);
	sched_ready_new(ut);
	return 0;
}

SA_EXPORT int sa_spawn(sa_uthread_t *out, const sa_attr_t *attr,
		       void *(*fn)(void *), void *arg)
{
	return ut_spawn(out, attr, fn, arg, NULL);
}

/**
 * ut_stack_of - the usable stack of @h: [*lo, *lo + *size) and the guard
 * below it.  Returns 0 or -ESRCH.
 */
int ut_stack_of(sa_uthread_t h, void **lo, size_t *size, size_t *guard)
{
	struct uthread *ut = ut_lookup_lock(h);

	if (!ut)
		return -ESRCH;
	*lo = ut->stack_lo;
	*size = (size_t)((char *)ut->stack_hi - (char *)ut->stack_lo);
	*guard = ut->guard;
	spin_unlock(&ut->lock);
	return 0;
}

static uint64_t live_count(void)
{
	uint64_t spawned = atomic_load(&rt.ext_spawned), exited = atomic_load(&rt.ext_exited);

	for (uint32_t i = 0; i < rt.nvps; i++) {
		spawned += atomic_load_explicit(&rt.vps[i].stats.spawned, memory_order_relaxed);
		exited += atomic_load_explicit(&rt.vps[i].stats.exited, memory_order_relaxed);
	}
	return spawned - exited;
}

/* The main uthread ended with sa_exit(): the process lives on until the
 * last uthread has ended, then exits with status 0. */
static void main_exit(struct uthread *me) __attribute__((noreturn));
static void main_exit(struct uthread *me)
{
	spin_lock(&me->lock);
	WRITE_ONCE(me->state, UT_DONE);
	atomic_store(&rt.main_exited, 1);
	smp_mb();
	if (live_count() == 0) {
		spin_unlock(&me->lock);
		exit(0);
	}
	sched_park_unlock(&me->lock);
	sa_panic("the main uthread ran after sa_exit()");
}

/**
 * ut_exit_current - end the calling uthread with @retval.
 */
void ut_exit_current(void *retval)
{
	struct vp *vp = vp_self();
	struct uthread *me = vp->cur, *joiner;

	if (me->flags & UTF_TLS)
		tls_thread_exit();
	keys_run_destructors(me);
	keys_release(me);
	if (unlikely(me->robust))
		mutex_robust_owner_exit(me);
	if (me->flags & UTF_MAIN)
		main_exit(me);

	spin_lock(&me->lock);
	me->retval = retval;
	WRITE_ONCE(me->state, UT_DONE);
	joiner = me->joiner;
	if (joiner) {
		uint32_t expect = W_WAITING;

		/* Unless ut_interrupt() ended its wait first. */
		if (atomic_compare_exchange_strong(&joiner->join_state, &expect, W_WOKEN))
			sched_ready(joiner);
	}
	vp = vp_self();
	stat_inc(&vp->stats.exited);
	if (unlikely(atomic_load(&rt.main_exited))) {
		smp_mb();
		if (live_count() == 0) {
			spin_unlock(&me->lock);
			exit(0);
		}
	}
	sched_exit_switch(me);
}

/**
 * ut_release_dead - called by the context that runs after @ut ended, with
 * @ut->lock held: give the stack back; free a detached uthread.
 */
void ut_release_dead(struct uthread *ut)
{
	stack_free(ut);
	san_fiber_destroy(ut);
	atomic_store_explicit(&ut->on_cpu, 0, memory_order_release);
	if (ut->flags & UTF_DETACHED)
		ut_free(ut);
	else
		spin_unlock(&ut->lock);
}

SA_EXPORT void sa_exit(void *retval)
{
	if (!vp_self())
		pthread_exit(retval);
	ut_exit_current(retval);
}

/**
 * ut_join - sa_join(), and with @intr interruptible: returns -EINTR when
 * ut_interrupt() ended the wait before @h ended; @h is then as it was,
 * joinable by a later call.
 */
int ut_join(sa_uthread_t h, void **retval, bool intr)
{
	struct uthread *me = ut_self(), *ut;

	ut = ut_lookup_lock(h);
	if (!ut)
		return -ESRCH;
	if (ut == me) {
		spin_unlock(&ut->lock);
		return -EDEADLK;
	}
	if ((ut->flags & UTF_DETACHED) || ut->joiner) {
		spin_unlock(&ut->lock);
		return -EINVAL;
	}
	if (!me) {
		spin_unlock(&ut->lock);
		return -ENOMEM;
	}
	intr = intr && !(me->flags & UTF_EXTERNAL);
	while (READ_ONCE(ut->state) != UT_DONE) {
		atomic_store_explicit(&me->join_state, W_WAITING, memory_order_relaxed);
		if (intr && !wait_intr_arm(me, &me->join_state)) {
			spin_unlock(&ut->lock);
			wait_intr_disarm(me, &me->join_state);
			return -EINTR;
		}
		ut->joiner = me;
		if (me->flags & UTF_EXTERNAL)
			atomic_store_explicit(&me->park_word, 0, memory_order_relaxed);
		else
			sched_boost(ut);
		sched_park_unlock(&ut->lock);
		if (intr)
			wait_intr_disarm(me, &me->join_state);
		spin_lock(&ut->lock);
		if (READ_ONCE(ut->state) != UT_DONE &&
		    atomic_load(&me->join_state) == W_INTERRUPTED) {
			ut->joiner = NULL;
			spin_unlock(&ut->lock);
			return -EINTR;
		}
	}
	ut->joiner = NULL;
	if (retval)
		*retval = ut->retval;
	if (ut->flags & UTF_MAIN) {
		/* The main uthread's record stays; it cannot be joined twice. */
		ut->flags |= UTF_DETACHED;
		spin_unlock(&ut->lock);
		return 0;
	}
	ut_free(ut);
	return 0;
}

SA_EXPORT int sa_join(sa_uthread_t h, void **retval)
{
	return ut_join(h, retval, false);
}

/**
 * ut_interrupt - end the interruptible wait that uthread @h is in, or its
 * next one, with -EINTR (wait.c has the protocol).  For the LD_PRELOAD
 * shim's pthread_kill() and pthread_cancel(); not async-signal-safe.
 * Returns 0, or -ESRCH if @h names no uthread.
 */
int ut_interrupt(sa_uthread_t h)
{
	struct uthread *ut;
	_Atomic uint32_t *state;
	uint32_t expect = W_WAITING;
	bool wake = false;

	sa_enter();
	ut = ut_lookup_lock(h); /* the record cannot be reused meanwhile */
	if (!ut)
		return -ESRCH;
	atomic_store(&ut->intr_req, 1);
	atomic_fetch_add(&ut->intr_busy, 1);
	state = atomic_load(&ut->intr_wait);
	if (state && atomic_compare_exchange_strong(state, &expect, W_INTERRUPTED))
		wake = true;
	atomic_fetch_sub_explicit(&ut->intr_busy, 1, memory_order_release);
	spin_unlock(&ut->lock);
	/* We won the CAS: @ut stays parked, and in the table, until this. */
	if (wake)
		sched_ready(ut);
	return 0;
}

/**
 * ut_join_ready - may the caller join @h without waiting?
 * Returns 1 (it ended), 0 (it still runs), -ESRCH (no such uthread),
 * -EDEADLK (the caller itself), -EINVAL (detached, or another joins it).
 */
int ut_join_ready(sa_uthread_t h)
{
	struct uthread *me, *ut;
	int r;

	sa_enter();
	me = ut_self();
	ut = ut_lookup_lock(h);
	if (!ut)
		return -ESRCH;
	if (ut == me)
		r = -EDEADLK;
	else if ((ut->flags & UTF_DETACHED) || ut->joiner)
		r = -EINVAL;
	else
		r = READ_ONCE(ut->state) == UT_DONE;
	spin_unlock(&ut->lock);
	return r;
}

SA_EXPORT int sa_detach(sa_uthread_t h)
{
	struct uthread *ut;

	sa_enter(); /* ut_free() asks vp_self() under ut->lock */
	ut = ut_lookup_lock(h);

	if (!ut)
		return -ESRCH;
	if ((ut->flags & UTF_DETACHED) || ut->joiner) {
		spin_unlock(&ut->lock);
		return -EINVAL;
	}
	if (READ_ONCE(ut->state) == UT_DONE && !(ut->flags & UTF_MAIN)) {
		ut_free(ut);
		return 0;
	}
	ut->flags |= UTF_DETACHED;
	spin_unlock(&ut->lock);
	return 0;
}

SA_EXPORT sa_uthread_t sa_self(void)
{
	struct vp *vp = vp_self();

	return vp ? ut_handle(vp->cur) : 0;
}

SA_EXPORT int sa_yield(void)
{
	if (!vp_self())
		sched_yield();
	else
		sched_yield_cur();
	return 0;
}

/* ------------------------------------------------------------------------
 * Names and priority classes
 */

SA_EXPORT int sa_setname(sa_uthread_t h, const char *name)
{
	struct uthread *ut;

	if (!name)
		return -EINVAL;
	ut = ut_lookup_lock(h);
	if (!ut)
		return -ESRCH;
	strncpy(ut->name, name, sizeof(ut->name) - 1);
	ut->name[sizeof(ut->name) - 1] = '\0';
	spin_unlock(&ut->lock);
	return 0;
}

SA_EXPORT int sa_getname(sa_uthread_t h, char *buf, size_t len)
{
	struct uthread *ut;

	if (!buf)
		return -EINVAL;
	if (len < sizeof(ut->name))
		return -ERANGE;
	ut = ut_lookup_lock(h);
	if (!ut)
		return -ESRCH;
	memcpy(buf, ut->name, sizeof(ut->name));
	buf[sizeof(ut->name) - 1] = '\0';
	spin_unlock(&ut->lock);
	return 0;
}

SA_EXPORT int sa_setprio(sa_uthread_t h, int prio)
{
	struct uthread *ut;

	if (prio < 0 || prio >= SA_NR_PRIO)
		return -EINVAL;
	ut = ut_lookup_lock(h);
	if (!ut)
		return -ESRCH;
	sched_set_prio(ut, prio);
	spin_unlock(&ut->lock);
	return 0;
}

SA_EXPORT int sa_getprio(sa_uthread_t h, int *prio)
{
	struct uthread *ut;

	if (!prio)
		return -EINVAL;
	ut = ut_lookup_lock(h);
	if (!ut)
		return -ESRCH;
	*prio = ut->prio;
	spin_unlock(&ut->lock);
	return 0;
}
