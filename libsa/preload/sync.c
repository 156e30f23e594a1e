/* sync.c - libsa-preload.so: pthread and POSIX semaphore objects on libsa's sync objects */

/*
 * The objects live in the program's own storage (see the design essay in
 * preload.c): a libsa object at offset 0 of each pthread type, its magic
 * word where glibc's static initialisers put 0.  obj_lazy_init() turns a
 * statically initialised object into a libsa one on first use.
 */

#define SA_PRELOAD_NO_REDIRECT
#include "preload/shim.h"

#include "io/io.h"

_Static_assert(sizeof(sa_mutex_t) <= sizeof(pthread_mutex_t), "mutex fits");
_Static_assert(sizeof(sa_cond_t) <= sizeof(pthread_cond_t), "cond fits");
_Static_assert(sizeof(sa_rwlock_t) <= sizeof(pthread_rwlock_t), "rwlock fits");
_Static_assert(sizeof(sa_sem_t) <= sizeof(sem_t), "semaphore fits");
_Static_assert(sizeof(sa_key_t) == sizeof(pthread_key_t), "keys are the same");
_Static_assert(sizeof(pthread_once_t) == sizeof(uint32_t), "once is a word");
_Static_assert(sizeof(pthread_spinlock_t) == sizeof(uint32_t), "spinlock is a word");

/* Where glibc's static mutex initialisers keep the kind (an int). */
#define GLIBC_MUTEX_KIND_OFF 16
#define LAZY_BUSY 0xffffffffu

static struct {
	int (*sem_destroy)(sem_t *);
	int (*sem_wait)(sem_t *);
	int (*sem_trywait)(sem_t *);
	int (*sem_timedwait)(sem_t *, const struct timespec *);
	int (*sem_clockwait)(sem_t *, clockid_t, const struct timespec *);
	int (*sem_post)(sem_t *);
	int (*sem_getvalue)(sem_t *, int *);
} real_sem;

static int (*real_ftrylockfile)(FILE *);
static void (*real_flockfile)(FILE *);

void preload_sync_init_real(void)
{
	real_sem.sem_destroy = preload_real_sym("sem_destroy");
	real_sem.sem_wait = preload_real_sym("sem_wait");
	real_sem.sem_trywait = preload_real_sym("sem_trywait");
	real_sem.sem_timedwait = preload_real_sym("sem_timedwait");
	real_sem.sem_clockwait = preload_real_sym("sem_clockwait");
	real_sem.sem_post = preload_real_sym("sem_post");
	real_sem.sem_getvalue = preload_real_sym("sem_getvalue");
	real_flockfile = preload_real_sym("flockfile");
	real_ftrylockfile = preload_real_sym("ftrylockfile");
}

static void pause_briefly(unsigned *spins)
{
	if (++*spins < 64) {
		cpu_relax();
		return;
	}
	*spins = 0;
	if (vp_self())
		sa_yield();
	else
		syscall(SYS_sched_yield);
}

/*
 * obj_lazy_init - make the object whose magic word is @w a libsa object if
 * it is still statically initialised (word 0); @build fills it in from
 * @obj (the magic last).  Concurrent first users wait for the magic.
 * Returns 0 when the object carries @magic, else EINVAL.
 */
static int obj_lazy_init(void *obj, _Atomic uint32_t *w, uint32_t magic,
			 void (*build)(void *obj))
{
	unsigned spins = 0;

	preload_start(); /* a library's constructor may come first */
	for (;;) {
		uint32_t v = atomic_load_explicit(w, memory_order_acquire);

		if (check_magic(v, magic))
			return 0;
		if (v == 0) {
			if (atomic_compare_exchange_weak(w, &v, LAZY_BUSY))
				build(obj);
			continue;
		}
		if (v != LAZY_BUSY)
			return EINVAL;
		pause_briefly(&spins);
	}
}

/* publish - copy @src (of @size bytes) over @dst, its magic word last. */
static void publish(void *dst, const void *src, size_t size)
{
	uint32_t magic;

	memcpy((char *)dst + 4, (const char *)src + 4, size - 4);
	memcpy(&magic, src, 4);
	atomic_store_explicit((_Atomic uint32_t *)dst, magic, memory_order_release);
}

static __always_inline _Atomic uint32_t *magic_word(void *obj)
{
	return (_Atomic uint32_t *)obj;
}

/* ------------------------------------------------------------------------
 * Mutexes
 */

static void mutex_build(void *obj)
{
	int kind, type;
	sa_mutex_t m;

	memcpy(&kind, (char *)obj + GLIBC_MUTEX_KIND_OFF, sizeof(kind));
	switch (kind & 3) {
	case PTHREAD_MUTEX_RECURSIVE: type = SA_MUTEX_RECURSIVE; break;
	case PTHREAD_MUTEX_ERRORCHECK: type = SA_MUTEX_ERRORCHECK; break;
	default: type = SA_MUTEX_NORMAL; break;
	}
	sa_mutex_init(&m, type);
	memset((char *)obj + sizeof(m), 0, sizeof(pthread_mutex_t) - sizeof(m));
	publish(obj, &m, sizeof(m));
}

static __always_inline int mutex_get(pthread_mutex_t *pm, sa_mutex_t **out)
{
	*out = (sa_mutex_t *)pm;
	if (unlikely(!pm))
		return EINVAL;
	if (likely(check_magic(atomic_load_explicit(magic_word(pm), memory_order_acquire),
			       SA__MAGIC_MUTEX)))
		return 0;
	return obj_lazy_init(pm, magic_word(pm), SA__MAGIC_MUTEX, mutex_build);
}

SA_EXPORT int pthread_mutex_init(pthread_mutex_t *pm, const pthread_mutexattr_t *attr)
{
	int type = PTHREAD_MUTEX_DEFAULT, pshared = PTHREAD_PROCESS_PRIVATE;
	int robust = PTHREAD_MUTEX_STALLED;

	preload_start();
	if (!pm)
		return EINVAL;
	if (attr && (pthread_mutexattr_gettype(attr, &type) ||
		     pthread_mutexattr_getpshared(attr, &pshared) ||
		     pthread_mutexattr_getrobust(attr, &robust)))
		return EINVAL;
	if (pshared == PTHREAD_PROCESS_SHARED)
		return ENOTSUP;
	memset(pm, 0, sizeof(*pm));
	return -sa_mutex_init((sa_mutex_t *)pm,
			      (type == PTHREAD_MUTEX_RECURSIVE ? SA_MUTEX_RECURSIVE :
			       type == PTHREAD_MUTEX_ERRORCHECK ? SA_MUTEX_ERRORCHECK :
			       SA_MUTEX_NORMAL) |
			      (robust == PTHREAD_MUTEX_ROBUST ? SA_MUTEX_ROBUST : 0));
}

SA_EXPORT int pthread_mutex_destroy(pthread_mutex_t *pm)
{
	if (pm && atomic_load(magic_word(pm)) == 0)
		return 0; /* statically initialised, never used */
	return pm ? -sa_mutex_destroy((sa_mutex_t *)pm) : EINVAL;
}

/*
 * mutex_lock_sig - lock @m, until @abs on @clk (NULL: no limit).  A lock
 * is no cancellation point and never fails with EINTR, but a signal that
 * pthread_kill() sends the waiting uthread runs its handler there and
 * then, as under NPTL, the wait goes on (libsa takes the waiter off the
 * queue for the handler and queues it again after).  A positive errno, or 0.
 */
static int mutex_lock_sig(sa_mutex_t *m, clockid_t clk, const struct timespec *abs)
{
	int r;

	while ((r = mutex_lock_intr(m, clk, abs)) == -EINTR)
		preload_sig_poll();
	return -r;
}

SA_EXPORT int pthread_mutex_lock(pthread_mutex_t *pm)
{
	sa_mutex_t *m;
	int r = mutex_get(pm, &m);

	return r ? r : mutex_lock_sig(m, CLOCK_REALTIME, NULL);
}

SA_EXPORT int pthread_mutex_trylock(pthread_mutex_t *pm)
{
	sa_mutex_t *m;
	int r = mutex_get(pm, &m);

	return r ? r : -sa_mutex_trylock(m);
}

SA_EXPORT int pthread_mutex_timedlock(pthread_mutex_t *pm, const struct timespec *abs)
{
	sa_mutex_t *m;
	int r = mutex_get(pm, &m);

	if (r)
		return r;
	return abs ? mutex_lock_sig(m, CLOCK_REALTIME, abs) : EINVAL;
}

SA_EXPORT int pthread_mutex_clocklock(pthread_mutex_t *pm, clockid_t clk,
				      const struct timespec *abs)
{
	sa_mutex_t *m;
	int r = mutex_get(pm, &m);

	if (r)
		return r;
	return abs ? mutex_lock_sig(m, clk, abs) : EINVAL;
}

SA_EXPORT int pthread_mutex_unlock(pthread_mutex_t *pm)
{
	sa_mutex_t *m;
	int r = mutex_get(pm, &m);

	return r ? r : -sa_mutex_unlock(m);
}

/* Robust mutexes: libsa reports an owner's end (libsa/mutex.c). */
SA_EXPORT int pthread_mutex_consistent(pthread_mutex_t *pm)
{
	sa_mutex_t *m;
	int r = mutex_get(pm, &m);

	return r ? r : -sa_mutex_consistent(m);
}

/* The name from before POSIX had robust mutexes, which glibc keeps for
 * old programs (<pthread.h> renames it to the POSIX one). */
int preload_mutex_consistent_np(pthread_mutex_t *pm) __asm__("pthread_mutex_consistent_np");
SA_EXPORT int preload_mutex_consistent_np(pthread_mutex_t *pm)
{
	return pthread_mutex_consistent(pm);
}

/* ------------------------------------------------------------------------
 * Condition variables
 */

static void cond_build(void *obj)
{
	sa_cond_t c;

	sa_cond_init(&c, CLOCK_REALTIME);
	memset((char *)obj + sizeof(c), 0, sizeof(pthread_cond_t) - sizeof(c));
	publish(obj, &c, sizeof(c));
}

static __always_inline int cond_get(pthread_cond_t *pc, sa_cond_t **out)
{
	*out = (sa_cond_t *)pc;
	if (unlikely(!pc))
		return EINVAL;
	if (likely(check_magic(atomic_load_explicit(magic_word(pc), memory_order_acquire),
			       SA__MAGIC_COND)))
		return 0;
	return obj_lazy_init(pc, magic_word(pc), SA__MAGIC_COND, cond_build);
}

SA_EXPORT int pthread_cond_init(pthread_cond_t *pc, const pthread_condattr_t *attr)
{
	int pshared = PTHREAD_PROCESS_PRIVATE;
	clockid_t clk = CLOCK_REALTIME;

	preload_start();
	if (!pc)
		return EINVAL;
	if (attr && (pthread_condattr_getclock(attr, &clk) ||
		     pthread_condattr_getpshared(attr, &pshared)))
		return EINVAL;
	if (pshared == PTHREAD_PROCESS_SHARED)
		return ENOTSUP;
	memset(pc, 0, sizeof(*pc));
	return -sa_cond_init((sa_cond_t *)pc, clk);
}

SA_EXPORT int pthread_cond_destroy(pthread_cond_t *pc)
{
	if (pc && atomic_load(magic_word(pc)) == 0)
		return 0;
	return pc ? -sa_cond_destroy((sa_cond_t *)pc) : EINVAL;
}

/*
 * cond_wait_cp - a condition wait as a cancellation point, with the mutex
 * held at each end.  pthread_kill() and pthread_cancel() cut it short: a
 * cancellation acts with @m taken again, as POSIX wants for the cleanup
 * handlers; after a signal handler it returns 0, a spurious wakeup.
 * Returns a positive errno, or 0.
 */
static int cond_wait_cp(sa_cond_t *c, sa_mutex_t *m, clockid_t clk, const struct timespec *abs)
{
	int r;

	preload_testcancel();
	do
		r = cond_wait_intr(c, m, clk, abs);
	while (r == -EINTR && preload_wait_intr() == PRELOAD_INTR_NONE);
	if (r == -EINTR)
		return 0;
	preload_testcancel();
	return -r;
}

SA_EXPORT int pthread_cond_wait(pthread_cond_t *pc, pthread_mutex_t *pm)
{
	sa_cond_t *c;
	sa_mutex_t *m;
	int r = cond_get(pc, &c);

	if (!r)
		r = mutex_get(pm, &m);
	if (r)
		return r;
	return cond_wait_cp(c, m, COND_CLOCK_OWN, NULL);
}

SA_EXPORT int pthread_cond_timedwait(pthread_cond_t *pc, pthread_mutex_t *pm,
				     const struct timespec *abs)
{
	sa_cond_t *c;
	sa_mutex_t *m;
	int r = cond_get(pc, &c);

	if (!r)
		r = mutex_get(pm, &m);
	if (r)
		return r;
	if (!abs)
		return EINVAL;
	return cond_wait_cp(c, m, COND_CLOCK_OWN, abs);
}

SA_EXPORT int pthread_cond_clockwait(pthread_cond_t *pc, pthread_mutex_t *pm,
				     clockid_t clk, const struct timespec *abs)
{
	sa_cond_t *c;
	sa_mutex_t *m;
	int r = cond_get(pc, &c);

	if (!r)
		r = mutex_get(pm, &m);
	if (r)
		return r;
	if (!abs)
		return EINVAL;
	return cond_wait_cp(c, m, clk, abs);
}

SA_EXPORT int pthread_cond_signal(pthread_cond_t *pc)
{
	sa_cond_t *c;
	int r = cond_get(pc, &c);

	return r ? r : -sa_cond_signal(c);
}

SA_EXPORT int pthread_cond_broadcast(pthread_cond_t *pc)
{
	sa_cond_t *c;
	int r = cond_get(pc, &c);

	return r ? r : -sa_cond_broadcast(c);
}

/* ------------------------------------------------------------------------
 * Reader-writer locks
 */

static void rwlock_build(void *obj)
{
	sa_rwlock_t rw;

	sa_rwlock_init(&rw);
	memset((char *)obj + sizeof(rw), 0, sizeof(pthread_rwlock_t) - sizeof(rw));
	publish(obj, &rw, sizeof(rw));
}

static __always_inline int rwlock_get(pthread_rwlock_t *p, sa_rwlock_t **out)
{
	*out = (sa_rwlock_t *)p;
	if (unlikely(!p))
		return EINVAL;
	if (likely(check_magic(atomic_load_explicit(magic_word(p), memory_order_acquire),
			       SA__MAGIC_RWLOCK)))
		return 0;
	return obj_lazy_init(p, magic_word(p), SA__MAGIC_RWLOCK, rwlock_build);
}

SA_EXPORT int pthread_rwlock_init(pthread_rwlock_t *p, const pthread_rwlockattr_t *attr)
{
	int pshared = PTHREAD_PROCESS_PRIVATE;

	preload_start();
	if (!p)
		return EINVAL;
	if (attr && pthread_rwlockattr_getpshared(attr, &pshared))
		return EINVAL;
	if (pshared == PTHREAD_PROCESS_SHARED)
		return ENOTSUP;
	memset(p, 0, sizeof(*p));
	return -sa_rwlock_init((sa_rwlock_t *)p);
}

SA_EXPORT int pthread_rwlock_destroy(pthread_rwlock_t *p)
{
	if (p && atomic_load(magic_word(p)) == 0)
		return 0;
	return p ? -sa_rwlock_destroy((sa_rwlock_t *)p) : EINVAL;
}

/* rwlock_lock_sig - mutex_lock_sig() for a read (@write false) or write
 * lock of @rw. */
static int rwlock_lock_sig(sa_rwlock_t *rw, bool write, clockid_t clk,
			   const struct timespec *abs)
{
	int r;

	while ((r = rwlock_lock_intr(rw, write, clk, abs)) == -EINTR)
		preload_sig_poll();
	return -r;
}

#define RWLOCK_CALL(expr)                          \
	do {                                       \
		sa_rwlock_t *rw;                   \
		int r = rwlock_get(p, &rw);        \
		return r ? r : -(expr);            \
	} while (0)

SA_EXPORT int pthread_rwlock_rdlock(pthread_rwlock_t *p)
{
	RWLOCK_CALL(-rwlock_lock_sig(rw, false, CLOCK_REALTIME, NULL));
}

SA_EXPORT int pthread_rwlock_tryrdlock(pthread_rwlock_t *p)
{
	RWLOCK_CALL(sa_rwlock_tryrdlock(rw));
}

SA_EXPORT int pthread_rwlock_timedrdlock(pthread_rwlock_t *p, const struct timespec *abs)
{
	RWLOCK_CALL(abs ? -rwlock_lock_sig(rw, false, CLOCK_REALTIME, abs) : -EINVAL);
}

SA_EXPORT int pthread_rwlock_clockrdlock(pthread_rwlock_t *p, clockid_t clk,
					 const struct timespec *abs)
{
	RWLOCK_CALL(abs ? -rwlock_lock_sig(rw, false, clk, abs) : -EINVAL);
}

SA_EXPORT int pthread_rwlock_wrlock(pthread_rwlock_t *p)
{
	RWLOCK_CALL(-rwlock_lock_sig(rw, true, CLOCK_REALTIME, NULL));
}

SA_EXPORT int pthread_rwlock_trywrlock(pthread_rwlock_t *p)
{
	RWLOCK_CALL(sa_rwlock_trywrlock(rw));
}

SA_EXPORT int pthread_rwlock_timedwrlock(pthread_rwlock_t *p, const struct timespec *abs)
{
	RWLOCK_CALL(abs ? -rwlock_lock_sig(rw, true, CLOCK_REALTIME, abs) : -EINVAL);
}

SA_EXPORT int pthread_rwlock_clockwrlock(pthread_rwlock_t *p, clockid_t clk,
					 const struct timespec *abs)
{
	RWLOCK_CALL(abs ? -rwlock_lock_sig(rw, true, clk, abs) : -EINVAL);
}

SA_EXPORT int pthread_rwlock_unlock(pthread_rwlock_t *p)
{
	RWLOCK_CALL(sa_rwlock_unlock(rw));
}

/* ------------------------------------------------------------------------
 * Barriers: a pthread_barrier_t holds the magic and a pointer to a libsa
 * barrier, which is larger than glibc's type.
 */

#define BARRIER_MAGIC 0x5a504200u

struct pbarrier {
	uint32_t magic;
	uint32_t pad;
	sa_barrier_t *b;
};

_Static_assert(sizeof(struct pbarrier) <= sizeof(pthread_barrier_t), "barrier fits");

SA_EXPORT int pthread_barrier_init(pthread_barrier_t *pb, const pthread_barrierattr_t *attr,
				   unsigned count)
{
	struct pbarrier *p = (struct pbarrier *)pb;
	int pshared = PTHREAD_PROCESS_PRIVATE, r;

	preload_start();
	if (!pb || count == 0)
		return EINVAL;
	if (attr && pthread_barrierattr_getpshared(attr, &pshared))
		return EINVAL;
	if (pshared == PTHREAD_PROCESS_SHARED)
		return ENOTSUP;
	p->b = malloc(sizeof(*p->b));
	if (!p->b)
		return ENOMEM;
	r = sa_barrier_init(p->b, count);
	if (r) {
		free(p->b);
		return -r;
	}
	p->magic = BARRIER_MAGIC;
	return 0;
}

SA_EXPORT int pthread_barrier_destroy(pthread_barrier_t *pb)
{
	struct pbarrier *p = (struct pbarrier *)pb;
	int r;

	if (!p || p->magic != BARRIER_MAGIC)
		return EINVAL;
	r = sa_barrier_destroy(p->b);
	if (r)
		return -r;
	free(p->b);
	p->magic = 0;
	return 0;
}

SA_EXPORT int pthread_barrier_wait(pthread_barrier_t *pb)
{
	struct pbarrier *p = (struct pbarrier *)pb;
	int r;

	if (!p || p->magic != BARRIER_MAGIC)
		return EINVAL;
	/* As a mutex_lock_sig(): a handler runs, the wait goes on. */
	while ((r = barrier_wait_intr(p->b)) == -EINTR)
		preload_sig_poll();
	preload_sig_poll(); /* one that came as the round was released */
	if (r == SA_BARRIER_SERIAL)
		return PTHREAD_BARRIER_SERIAL_THREAD;
	return -r;
}

/* ------------------------------------------------------------------------
 * Spinlocks: a word.  A holder may be a uthread that waits in the run
 * queue of the very VP a waiter spins on, so a waiter yields now and then.
 */

SA_EXPORT int pthread_spin_init(pthread_spinlock_t *l, int pshared)
{
	(void)pshared; /* a plain word works across processes too */
	if (!l)
		return EINVAL;
	atomic_store((_Atomic int *)l, 0);
	return 0;
}

SA_EXPORT int pthread_spin_destroy(pthread_spinlock_t *l)
{
	return l ? 0 : EINVAL;
}

SA_EXPORT int pthread_spin_trylock(pthread_spinlock_t *l)
{
	return atomic_exchange_explicit((_Atomic int *)l, 1, memory_order_acquire) ? EBUSY : 0;
}

SA_EXPORT int pthread_spin_lock(pthread_spinlock_t *l)
{
	unsigned spins = 0;

	while (atomic_exchange_explicit((_Atomic int *)l, 1, memory_order_acquire)) {
		while (atomic_load_explicit((_Atomic int *)l, memory_order_relaxed))
			pause_briefly(&spins);
	}
	return 0;
}

SA_EXPORT int pthread_spin_unlock(pthread_spinlock_t *l)
{
	atomic_store_explicit((_Atomic int *)l, 0, memory_order_release);
	return 0;
}

/* ------------------------------------------------------------------------
 * Once: a word (0 not run, 1 running, 2 done).  Waiters park on one of a
 * few shared condition variables chosen by the word's address.  If the
 * init routine unwinds (a C++ exception), the word goes back to 0 and a
 * waiter takes over, as POSIX asks of cancellation.
 */

enum { ONCE_INIT = 0, ONCE_RUNNING = 1, ONCE_DONE = 2 };
#define ONCE_BUCKETS 16

static struct once_bucket {
	sa_mutex_t m;
	sa_cond_t c;
} once_buckets[ONCE_BUCKETS] = {
	[0 ... ONCE_BUCKETS - 1] = { SA_MUTEX_INITIALIZER, SA_COND_INITIALIZER },
};

static struct once_bucket *once_bucket(pthread_once_t *o)
{
	return &once_buckets[((uintptr_t)o >> 2) % ONCE_BUCKETS];
}

static void once_set(pthread_once_t *o, int state)
{
	struct once_bucket *b = once_bucket(o);

	sa_mutex_lock(&b->m);
	atomic_store_explicit((_Atomic int *)o, state, memory_order_release);
	sa_cond_broadcast(&b->c);
	sa_mutex_unlock(&b->m);
}

/* Runs when the init routine unwinds instead of returning. */
static void once_unwound(pthread_once_t **o)
{
	if (*o)
		once_set(*o, ONCE_INIT);
}

SA_EXPORT int pthread_once(pthread_once_t *o, void (*fn)(void))
{
	if (!o || !fn)
		return EINVAL;
	preload_start();
	for (;;) {
		int s = atomic_load_explicit((_Atomic int *)o, memory_order_acquire);
		struct once_bucket *b;

		if (likely(s == ONCE_DONE))
			return 0;
		if (s == ONCE_INIT &&
		    atomic_compare_exchange_strong((_Atomic int *)o, &s, ONCE_RUNNING)) {
			pthread_once_t *armed __attribute__((cleanup(once_unwound))) = o;

			fn();
			armed = NULL;
			once_set(o, ONCE_DONE);
			return 0;
		}
		b = once_bucket(o);
		sa_mutex_lock(&b->m);
		while (atomic_load_explicit((_Atomic int *)o, memory_order_acquire) == ONCE_RUNNING)
			sa_cond_wait(&b->c, &b->m);
		sa_mutex_unlock(&b->m);
	}
}

/* ------------------------------------------------------------------------
 * Keys
 */

SA_EXPORT int pthread_key_create(pthread_key_t *k, void (*dtor)(void *))
{
	preload_start();
	return -sa_key_create((sa_key_t *)k, dtor);
}

SA_EXPORT int pthread_key_delete(pthread_key_t k)
{
	return -sa_key_delete(k);
}

SA_EXPORT void *pthread_getspecific(pthread_key_t k)
{
	return sa_getspecific(k);
}

/* glibc declares @v access(none): GCC then fears sa_setspecific() reads
 * *v, which it never does (it stores the pointer). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
SA_EXPORT int pthread_setspecific(pthread_key_t k, const void *v)
{
	return -sa_setspecific(k, v);
}
#pragma GCC diagnostic pop

/* ------------------------------------------------------------------------
 * POSIX unnamed semaphores.  A process-shared one, and any named one
 * (sem_open), is the C library's: its first word is never libsa's magic.
 */

static __always_inline bool sem_ours(sem_t *s)
{
	preload_start();
	return s && check_magic(atomic_load_explicit(magic_word(s), memory_order_acquire),
				SA__MAGIC_SEM);
}

/*
 * The C library's semaphores.  Their post, trywait, getvalue, open, close
 * and unlink stay glibc's; a wait that must block would block the VP in
 * glibc's futex wait, so a uthread waits here instead, by glibc's own
 * protocol.  On x86-64 glibc's struct new_sem is a 64-bit word - the
 * value in its low 32 bits, the number of waiters in its high 32 - and
 * an int that glibc xors into FUTEX_PRIVATE_FLAG for its futex calls:
 * 0 for a process-private futex, FUTEX_PRIVATE_FLAG (128) for a shared
 * one (every named and process-shared semaphore, all that come here).
 * sem_post() adds one to the value and FUTEX_WAKEs one waiter on the
 * value word if the waiter count is not 0.  A waiter counts itself in,
 * takes a unit with a CAS that also counts itself out, and while the value
 * is 0 parks in io_futex_wait() on the value word, its VP free for other
 * uthreads.  Where the ring cannot wait on a futex (Linux before 6.7,
 * SA_IO=threads) it sleeps as a uthread between looks, from 1 us up to
 * 1 ms, which costs a post that much latency, never a VP.
 */
struct glibc_sem {
	_Atomic uint64_t data;
	int private;
	int pad;
};

_Static_assert(sizeof(struct glibc_sem) <= sizeof(sem_t), "glibc's semaphore fits");

#define GSEM_VALUE_MASK 0xffffffffull
#define GSEM_WAITER (1ull << 32)
#define GSEM_BACKOFF_MIN_NS 1000ull
#define GSEM_BACKOFF_MAX_NS 1000000ull

/* gsem_block - wait for @g's value to leave 0, or @deadline.  0 or -errno. */
static int gsem_block(struct glibc_sem *g, uint64_t deadline, uint64_t *backoff)
{
	int r = io_futex_wait((_Atomic uint32_t *)&g->data, 0, g->private == 0, deadline);
	uint64_t now, ns;

	if (r != -EOPNOTSUPP)
		return r;
	now = now_ns();
	if (deadline != DEADLINE_NONE && now >= deadline)
		return -ETIMEDOUT;
	ns = *backoff;
	if (deadline != DEADLINE_NONE && deadline - now < ns)
		ns = deadline - now;
	*backoff = *backoff * 2 > GSEM_BACKOFF_MAX_NS ? GSEM_BACKOFF_MAX_NS : *backoff * 2;
	sa_sleep_ns(ns);
	if (atomic_load_explicit(&preload_sig_tls.pending, memory_order_relaxed) &&
	    preload_sig_deliver())
		return -EINTR; /* pthread_kill()'s handler ran */
	return preload_cancel_wanted() ? -EINTR : 0;
}

/*
 * gsem_wait - sem_wait() and its timed forms on the C library's semaphore
 * @s (@abs NULL: no time limit), from a uthread.  Returns as sem_wait().
 */
static int gsem_wait(sem_t *s, clockid_t clk, const struct timespec *abs)
{
	struct glibc_sem *g = (struct glibc_sem *)s;
	uint64_t deadline = DEADLINE_NONE, backoff = GSEM_BACKOFF_MIN_NS, d;
	int r;

	preload_wait_begin(); /* a cancellation point */
	if (real_sem.sem_trywait(s) == 0)
		return 0;
	if (errno != EAGAIN)
		return -1;
	if (abs) {
		r = deadline_from_abs(clk, abs, &deadline);
		if (r)
			return preload_errno_ret(abs->tv_sec < 0 ? -ETIMEDOUT : r);
	}
	d = atomic_fetch_add_explicit(&g->data, GSEM_WAITER, memory_order_relaxed) + GSEM_WAITER;
	for (;;) {
		if ((d & GSEM_VALUE_MASK) != 0) {
			if (atomic_compare_exchange_weak_explicit(&g->data, &d,
								  d - 1 - GSEM_WAITER,
								  memory_order_acquire,
								  memory_order_relaxed))
				return 0;
			continue;
		}
		r = gsem_block(g, deadline, &backoff);
		if (r) {
			atomic_fetch_sub_explicit(&g->data, GSEM_WAITER, memory_order_relaxed);
			if (r == -EINTR)
				preload_testcancel(); /* a cancellation ends here */
			return preload_errno_ret(r);
		}
		d = atomic_load_explicit(&g->data, memory_order_relaxed);
	}
}

/*
 * gsem_timed - the C library's timed waits: check the arguments as glibc
 * does (before anything else), then wait as a uthread, or glibc's way
 * on a thread that is not one.
 */
static int gsem_timed(sem_t *s, clockid_t clk, const struct timespec *abs)
{
	if (clk != CLOCK_MONOTONIC && clk != CLOCK_REALTIME)
		return preload_errno_ret(-EINVAL);
	if (!abs || abs->tv_nsec < 0 || abs->tv_nsec >= (long)NSEC_PER_SEC)
		return preload_errno_ret(-EINVAL);
	if (!vp_self())
		return real_sem.sem_clockwait(s, clk, abs);
	return gsem_wait(s, clk, abs);
}

SA_EXPORT int sem_init(sem_t *s, int pshared, unsigned value)
{
	preload_start();
	if (pshared)
		return preload_real_sem_init(s, pshared, value);
	if (!s || value > SEM_VALUE_MAX)
		return preload_errno_ret(-EINVAL);
	memset(s, 0, sizeof(*s));
	return preload_errno_ret(sa_sem_init((sa_sem_t *)s, value));
}

SA_EXPORT int sem_destroy(sem_t *s)
{
	return sem_ours(s) ? preload_errno_ret(sa_sem_destroy((sa_sem_t *)s)) : real_sem.sem_destroy(s);
}

/*
 * sem_wait_cp - a semaphore wait as a cancellation point, until @abs on
 * @clk (NULL: no limit).  pthread_kill() and pthread_cancel() cut it
 * short.  After a handler it fails with EINTR as glibc's does: always
 * with a time limit (the kernel never restarts a futex wait that has
 * one), without one unless the handler has SA_RESTART.
 */
static int sem_wait_cp(sem_t *s, clockid_t clk, const struct timespec *abs)
{
	enum preload_intr how = abs ? PRELOAD_INTR_RESTART : PRELOAD_INTR_EINTR;
	int r;

	preload_testcancel();
	do
		r = sem_wait_intr((sa_sem_t *)s, clk, abs);
	while (r == -EINTR && preload_wait_intr() < how);
	return (int)preload_errno_ret(r);
}

SA_EXPORT int sem_wait(sem_t *s)
{
	if (sem_ours(s))
		return sem_wait_cp(s, CLOCK_REALTIME, NULL);
	preload_testcancel();
	return s && vp_self() ? gsem_wait(s, CLOCK_REALTIME, NULL) : real_sem.sem_wait(s);
}

SA_EXPORT int sem_trywait(sem_t *s)
{
	return sem_ours(s) ? preload_errno_ret(sa_sem_trywait((sa_sem_t *)s)) : real_sem.sem_trywait(s);
}

SA_EXPORT int sem_timedwait(sem_t *s, const struct timespec *abs)
{
	if (!sem_ours(s))
		return s ? gsem_timed(s, CLOCK_REALTIME, abs) : real_sem.sem_timedwait(s, abs);
	if (!abs)
		return preload_errno_ret(-EINVAL);
	return sem_wait_cp(s, CLOCK_REALTIME, abs);
}

SA_EXPORT int sem_clockwait(sem_t *s, clockid_t clk, const struct timespec *abs)
{
	if (!sem_ours(s))
		return s ? gsem_timed(s, clk, abs) : real_sem.sem_clockwait(s, clk, abs);
	if (!abs)
		return preload_errno_ret(-EINVAL);
	return sem_wait_cp(s, clk, abs);
}

SA_EXPORT int sem_post(sem_t *s)
{
	return sem_ours(s) ? preload_errno_ret(sa_sem_post((sa_sem_t *)s)) : real_sem.sem_post(s);
}

SA_EXPORT int sem_getvalue(sem_t *s, int *value)
{
	unsigned v = 0;
	int r;

	if (!sem_ours(s))
		return real_sem.sem_getvalue(s, value);
	r = sa_sem_getvalue((sa_sem_t *)s, &v);
	if (!r)
		*value = (int)v;
	return preload_errno_ret(r);
}

/* ------------------------------------------------------------------------
 * stdio stream locks.  flockfile() is glibc's recursive lock, whose waiter
 * blocks its kernel thread in a futex: a uthread that yields or parks
 * while it holds a stream would stop, on every VP, each uthread that then
 * wants the stream.  A uthread takes it with ftrylockfile() and yields
 * while it is held; glibc still records the owner, so funlockfile() and
 * the locking inside every stdio call stay glibc's.
 */

SA_EXPORT void flockfile(FILE *f)
{
	unsigned spins = 0;

	preload_start();
	if (!vp_self()) {
		real_flockfile(f);
		return;
	}
	while (real_ftrylockfile(f) != 0)
		pause_briefly(&spins);
}
