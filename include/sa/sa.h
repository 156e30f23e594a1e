/* sa.h - libsa public API: uthreads on virtual processors and their sync objects */
#ifndef SA_SA_H
#define SA_SA_H

/*
 * libsa runs many user-level threads ("uthreads") on a few virtual
 * processors ("VPs"), one kernel thread per VP.  Everything here returns 0
 * on success or a negative errno value (-EINVAL, -ENOMEM, ...), unless the
 * comment says otherwise; nothing sets errno.
 *
 * Every blocking call parks the calling uthread, never its VP.  The calls
 * also work from threads that are not uthreads (for example the threads a
 * program made with pthread_create before it used libsa): there a blocking
 * call blocks that kernel thread.
 *
 * Timed calls take an absolute deadline on a named clock: CLOCK_MONOTONIC or
 * CLOCK_REALTIME.  A deadline already in the past is legal and times out at
 * once (after a try).  A REALTIME deadline is converted to the monotonic
 * clock when the wait starts, so a later jump of the wall clock does not
 * move it.
 */

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SA_VERSION_MAJOR 0
#define SA_VERSION_MINOR 1

/* ------------------------------------------------------------------------
 * Runtime
 */

/**
 * sa_init - start the runtime explicitly
 * @nvps: number of virtual processors; 0 means the default: $SA_VPS if set,
 *        else the number of CPUs in the process's affinity mask.
 *
 * The runtime also starts by itself on the first call that needs it.  If
 * the thread that starts it is the process's main thread, that thread
 * becomes a uthread (the "main uthread") running on VP 0; any other thread
 * stays an ordinary thread (its blocking calls block it) and every VP gets
 * a kernel thread of its own.
 *
 * Returns 0 on success (also when the runtime already runs with @nvps VPs,
 * or @nvps is 0), -EBUSY if it already runs with a different number of VPs,
 * -EINVAL if @nvps (or $SA_VPS) is above SA_VPS_MAX, -EAGAIN or -ENOMEM if
 * the VP threads cannot be made.
 */
int sa_init(unsigned nvps);

/** The largest number of VPs the runtime accepts. */
#define SA_VPS_MAX 256

/**
 * sa_nvps - number of virtual processors
 *
 * Returns the number of VPs of the running runtime, starting it if needed
 * (0 if it cannot start).
 */
unsigned sa_nvps(void);

/**
 * sa_vp_self - index of the VP the caller runs on
 *
 * Returns 0 .. sa_nvps() - 1, or -EPERM when the caller is not a uthread.
 * The answer can be stale as soon as it is returned: uthreads migrate.
 */
int sa_vp_self(void);

/* ------------------------------------------------------------------------
 * uthreads
 */

/**
 * sa_uthread_t - handle of a uthread.  0 is never a valid handle; a handle
 * is never reused for another uthread until 2^32 uthreads have used its slot,
 * so a stale handle is answered with -ESRCH, not with another uthread.
 */
typedef uint64_t sa_uthread_t;

/**
 * enum sa_prio - priority classes, highest first.  On a VP a runnable
 * uthread of a higher class always runs before one of a lower class, and
 * stealing takes the highest class first.
 * @SA_PRIO_DEREF:  uthreads inside a far-memory dereference scope
 * @SA_PRIO_SYSTEM: runtime service uthreads (evacuator, prefetcher, pollers)
 * @SA_PRIO_NORMAL: everything else (the default)
 */
enum sa_prio {
	SA_PRIO_DEREF = 0,
	SA_PRIO_SYSTEM = 1,
	SA_PRIO_NORMAL = 2,
};
#define SA_NR_PRIO 3

/** sa_attr_t - spawn attributes; initialise with sa_attr_init(). */
typedef struct sa_attr {
	uint32_t __magic;
	uint32_t __flags;
	size_t __stack_size;
	size_t __guard_size;
	int __prio;
	char __name[16];
} sa_attr_t;

/** Smallest stack a uthread may ask for (bytes). */
#define SA_STACK_MIN 4096
/** Default stack size: 256 KiB of address space, committed on first touch. */
#define SA_STACK_DEFAULT (256 * 1024)
/** Largest stack a uthread may ask for: 1 GiB. */
#define SA_STACK_MAX (1UL << 30)

/**
 * sa_attr_init - fill @attr with the defaults: SA_STACK_DEFAULT stack, the
 * default guard, SA_PRIO_NORMAL, joinable, no name.
 * Returns 0, or -EINVAL if @attr is NULL.
 */
int sa_attr_init(sa_attr_t *attr);

/**
 * sa_attr_setstacksize - ask for a stack of at least @size bytes.
 * Returns 0, or -EINVAL if @size is below SA_STACK_MIN or above
 * SA_STACK_MAX, or @attr is not initialised.
 */
int sa_attr_setstacksize(sa_attr_t *attr, size_t size);

/**
 * sa_attr_setguardsize - ask for an inaccessible guard region of at least
 * @size bytes below the stack (rounded up to pages; 0 means the default,
 * 16 KiB).  A uthread that runs into it ends the process with a
 * "stack overflow" message naming it.
 * Returns 0, or -EINVAL if @size is above 64 MiB or @attr is not initialised.
 */
int sa_attr_setguardsize(sa_attr_t *attr, size_t size);

/**
 * sa_attr_setprio - priority class of the new uthread (enum sa_prio).
 * Returns 0, or -EINVAL for an unknown class or an uninitialised @attr.
 */
int sa_attr_setprio(sa_attr_t *attr, int prio);

/**
 * sa_attr_setdetached - create the uthread detached (@detached != 0): its
 * resources go back as soon as it ends and it cannot be joined.
 * Returns 0, or -EINVAL for an uninitialised @attr.
 */
int sa_attr_setdetached(sa_attr_t *attr, int detached);

/**
 * sa_attr_setname - name of the new uthread (at most 15 bytes are kept).
 * Returns 0, or -EINVAL for a NULL @name or an uninitialised @attr.
 */
int sa_attr_setname(sa_attr_t *attr, const char *name);

/**
 * sa_spawn - create a uthread running @fn(@arg)
 * @out:  where to store the handle (may be NULL for a detached uthread)
 * @attr: attributes, or NULL for the defaults
 * @fn:   start routine; its return value is what sa_join() reports
 * @arg:  argument for @fn
 *
 * The new uthread is runnable at once, on the caller's VP or, if the
 * caller is not a uthread, on a VP chosen round-robin.
 *
 * Returns 0, -EINVAL (NULL @fn, bad @attr, joinable uthread with NULL @out),
 * -EAGAIN (out of address space or memory mappings for the stack),
 * -ENOMEM, or the error of sa_init().
 */
int sa_spawn(sa_uthread_t *out, const sa_attr_t *attr,
	     void *(*fn)(void *), void *arg);

/**
 * sa_join - wait for uthread @t to end and release it
 * @retval: where to store its return value (or sa_exit() argument); may be
 *          NULL
 *
 * Returns 0, -ESRCH if @t is not a live or unjoined uthread (never existed,
 * already joined), -EINVAL if @t is detached or another caller is already
 * joining it, -EDEADLK if @t is the caller.
 */
int sa_join(sa_uthread_t t, void **retval);

/**
 * sa_detach - release @t's resources as soon as it ends, without a join;
 * a uthread that has already ended is released at once.
 * Returns 0, -ESRCH for a handle that names no uthread (never existed, or
 * already joined or released), -EINVAL if it is already detached or being
 * joined.
 */
int sa_detach(sa_uthread_t t);

/**
 * sa_self - handle of the calling uthread.
 * Returns the handle, or 0 when the caller is not a uthread.
 */
sa_uthread_t sa_self(void);

/**
 * sa_yield - let the other runnable uthreads of this VP run first.
 * The caller goes to the back of its priority class's run queue.  From a
 * thread that is not a uthread it calls sched_yield().
 * Returns 0.
 */
int sa_yield(void);

/**
 * sa_exit - end the calling uthread with @retval, running key destructors.
 * WARNING: from the uthread that started the runtime (the program's main
 * thread), the process goes on until the last uthread ends and then exits
 * with status 0, as with pthread_exit() in main.  From a thread that is not
 * a uthread, this calls pthread_exit(@retval).
 */
__attribute__((noreturn)) void sa_exit(void *retval);

/**
 * sa_sleep_ns - park the caller for at least @ns nanoseconds (monotonic).
 * Returns 0.
 */
int sa_sleep_ns(uint64_t ns);

/**
 * sa_sleep_until - park the caller until @abs on clock @clk.
 * Returns 0, or -EINVAL for a NULL @abs, a tv_nsec outside 0..999999999, or
 * a clock other than CLOCK_MONOTONIC and CLOCK_REALTIME.
 */
int sa_sleep_until(clockid_t clk, const struct timespec *abs);

/**
 * sa_setname - set @t's name (at most 15 bytes kept; @t may be sa_self()).
 * Returns 0, -ESRCH for a stale handle, -EINVAL for a NULL @name.
 */
int sa_setname(sa_uthread_t t, const char *name);

/**
 * sa_getname - copy @t's name into @buf (NUL-terminated).
 * Returns 0, -ESRCH for a stale handle, -ERANGE if @len is below 16,
 * -EINVAL for a NULL @buf.
 */
int sa_getname(sa_uthread_t t, char *buf, size_t len);

/**
 * sa_setprio - move @t to priority class @prio (enum sa_prio).  Takes
 * effect the next time @t is queued.
 * Returns 0, -ESRCH for a stale handle, -EINVAL for an unknown class.
 */
int sa_setprio(sa_uthread_t t, int prio);

/**
 * sa_getprio - store @t's priority class in @prio.
 * Returns 0, -ESRCH for a stale handle, -EINVAL for a NULL @prio.
 */
int sa_getprio(sa_uthread_t t, int *prio);

/* ------------------------------------------------------------------------
 * Per-uthread keys
 */

typedef uint32_t sa_key_t;
/** How many keys can exist at once. */
#define SA_KEYS_MAX 1024
/** How many rounds of destructors run at uthread exit (as POSIX). */
#define SA_DESTRUCTOR_ITERATIONS 4

/**
 * sa_key_create - make a key whose value is NULL in every uthread
 * @dtor: called with the value at uthread exit if it is not NULL (may be
 *        NULL); repeated up to SA_DESTRUCTOR_ITERATIONS rounds while
 *        destructors set values again.
 * Returns 0, -EAGAIN when SA_KEYS_MAX keys exist, -EINVAL for a NULL @key.
 */
int sa_key_create(sa_key_t *key, void (*dtor)(void *));

/**
 * sa_key_delete - delete @key; no destructor runs.  Values stored under it
 * are forgotten; a new key never sees them.
 * Returns 0, or -EINVAL for a key that does not exist.
 */
int sa_key_delete(sa_key_t key);

/**
 * sa_setspecific - store @value under @key for the calling uthread.
 * Returns 0, -EINVAL for a key that does not exist, -ENOMEM.
 */
int sa_setspecific(sa_key_t key, const void *value);

/**
 * sa_getspecific - the calling uthread's value under @key, or NULL (also
 * for a key that does not exist).
 */
void *sa_getspecific(sa_key_t key);

/* ------------------------------------------------------------------------
 * Synchronisation objects.  Their layout is private; use the initialisers
 * or the _init functions.  Using an object that was never initialised, or
 * was destroyed, returns -EINVAL.
 */

#define SA__MAGIC_MUTEX 0x5a4d7500u
#define SA__MAGIC_COND 0x5a436400u
#define SA__MAGIC_RWLOCK 0x5a527700u
#define SA__MAGIC_SEM 0x5a536d00u
#define SA__MAGIC_BARRIER 0x5a426100u

/* --- mutex --- */

enum sa_mutex_type {
	SA_MUTEX_NORMAL = 0,     /* relock by the owner deadlocks; no checks */
	SA_MUTEX_RECURSIVE = 1,  /* the owner may lock again; counted */
	SA_MUTEX_ERRORCHECK = 2, /* relock: -EDEADLK; foreign unlock: -EPERM */
	SA_MUTEX_ROBUST = 0x10,  /* or'ed with a type: an owner's end is
				    reported to the next owner (-EOWNERDEAD) */
};

typedef struct sa_mutex {
	uint32_t __magic; /* SA__MAGIC_MUTEX | type */
	uint32_t __state;
	uint32_t __lock;
	uint32_t __count;
	void *__head;
	void *__tail;
} sa_mutex_t;

#define SA__MUTEX_INIT(type) { SA__MAGIC_MUTEX | (type), 0, 0, 0, 0, 0 }
#define SA_MUTEX_INITIALIZER SA__MUTEX_INIT(SA_MUTEX_NORMAL)
#define SA_MUTEX_RECURSIVE_INITIALIZER SA__MUTEX_INIT(SA_MUTEX_RECURSIVE)
#define SA_MUTEX_ERRORCHECK_INITIALIZER SA__MUTEX_INIT(SA_MUTEX_ERRORCHECK)

/**
 * sa_mutex_init - initialise @m as a mutex of @type (enum sa_mutex_type),
 * robust if @type has SA_MUTEX_ROBUST.
 * Returns 0, or -EINVAL for a NULL @m or an unknown type.
 */
int sa_mutex_init(sa_mutex_t *m, int type);

/**
 * sa_mutex_destroy - make @m unusable until it is initialised again.
 * Returns 0, -EBUSY if it is locked or has waiters, -EINVAL if it is not an
 * initialised mutex.
 */
int sa_mutex_destroy(sa_mutex_t *m);

/**
 * sa_mutex_lock - lock @m, parking the caller while another owner holds it.
 * Ownership is handed to waiters in arrival order.
 * Returns 0, -EDEADLK (error-checking mutex already owned by the caller),
 * -EAGAIN (recursive count would overflow), -EINVAL (not a mutex).
 * A robust mutex also returns -EOWNERDEAD (the caller owns it, but its
 * previous owner ended holding it: see sa_mutex_consistent()),
 * -ENOTRECOVERABLE (not locked: an owner unlocked it without making it
 * consistent) or -ENOMEM (no memory to record the caller's ownership).
 * WARNING: relocking a normal mutex the caller owns never returns.
 */
int sa_mutex_lock(sa_mutex_t *m);

/**
 * sa_mutex_trylock - lock @m if that needs no wait.
 * Returns 0, -EBUSY if another owner holds it (or, for a non-recursive
 * mutex, the caller does), -EAGAIN, -EINVAL.
 */
int sa_mutex_trylock(sa_mutex_t *m);

/**
 * sa_mutex_timedlock - sa_mutex_lock() that gives up at @abs on @clk.
 * Returns as sa_mutex_lock(), or -ETIMEDOUT, or -EINVAL for a bad clock or
 * timespec.
 */
int sa_mutex_timedlock(sa_mutex_t *m, clockid_t clk,
		       const struct timespec *abs);

/**
 * sa_mutex_unlock - unlock @m (one level, for a recursive mutex).
 * Returns 0, -EPERM if the caller does not own a recursive, error-checking
 * or robust mutex, or any mutex that is not locked at all, -EINVAL (not a
 * mutex).
 */
int sa_mutex_unlock(sa_mutex_t *m);

/**
 * sa_mutex_consistent - mark robust mutex @m, which the caller locked with
 * -EOWNERDEAD, consistent again: its later owners get 0 from their locks.
 * Returns 0, or -EINVAL if @m is not a robust mutex, is consistent, or is
 * not owned by the caller.
 * WARNING: unlocking without it makes @m unusable (-ENOTRECOVERABLE).
 */
int sa_mutex_consistent(sa_mutex_t *m);

/* --- condition variable --- */

typedef struct sa_cond {
	uint32_t __magic;
	int32_t __clock;
	uint32_t __lock;
	uint32_t __pad;
	void *__head;
	void *__tail;
} sa_cond_t;

/** A condition variable whose timed waits use CLOCK_REALTIME. */
#define SA_COND_INITIALIZER { SA__MAGIC_COND, CLOCK_REALTIME, 0, 0, 0, 0 }

/**
 * sa_cond_init - initialise @c; sa_cond_timedwait() will use clock @clk
 * (CLOCK_REALTIME or CLOCK_MONOTONIC).
 * Returns 0, or -EINVAL for a NULL @c or another clock.
 */
int sa_cond_init(sa_cond_t *c, clockid_t clk);

/**
 * sa_cond_destroy - make @c unusable.  Returns 0, -EBUSY while uthreads
 * wait on it, -EINVAL if it is not a condition variable.
 */
int sa_cond_destroy(sa_cond_t *c);

/**
 * sa_cond_wait - unlock @m, park until signalled, lock @m again.
 * Returns 0, -EPERM if the caller does not own @m (checked for
 * error-checking and recursive mutexes, and for any unlocked mutex),
 * -EINVAL.  Spurious wakeups are possible, as with pthreads.
 */
int sa_cond_wait(sa_cond_t *c, sa_mutex_t *m);

/**
 * sa_cond_timedwait - sa_cond_wait() with a deadline on @c's clock.
 * Returns as sa_cond_wait(), or -ETIMEDOUT (with @m locked again).
 */
int sa_cond_timedwait(sa_cond_t *c, sa_mutex_t *m,
		      const struct timespec *abs);

/**
 * sa_cond_clockwait - sa_cond_wait() with a deadline on clock @clk.
 * Returns as sa_cond_timedwait(), or -EINVAL for a bad clock.
 */
int sa_cond_clockwait(sa_cond_t *c, sa_mutex_t *m, clockid_t clk,
		      const struct timespec *abs);

/** sa_cond_signal - wake one waiter of @c, if any.  Returns 0 or -EINVAL. */
int sa_cond_signal(sa_cond_t *c);

/** sa_cond_broadcast - wake every waiter of @c.  Returns 0 or -EINVAL. */
int sa_cond_broadcast(sa_cond_t *c);

/* --- reader-writer lock --- */

typedef struct sa_rwlock {
	uint32_t __magic;
	uint32_t __lock;
	int32_t __readers;   /* active readers, -1 when write-locked */
	uint32_t __writer;   /* owner id of the writer */
	uint32_t __wwait;    /* writers waiting */
	uint32_t __pad;
	void *__head;
	void *__tail;
} sa_rwlock_t;

#define SA_RWLOCK_INITIALIZER { SA__MAGIC_RWLOCK, 0, 0, 0, 0, 0, 0, 0 }

/**
 * sa_rwlock_init - initialise @rw.  Waiting writers are preferred: once a
 * writer waits, new readers wait behind it.
 * Returns 0 or -EINVAL.
 */
int sa_rwlock_init(sa_rwlock_t *rw);

/** sa_rwlock_destroy - Returns 0, -EBUSY while held or waited on, -EINVAL. */
int sa_rwlock_destroy(sa_rwlock_t *rw);

/**
 * sa_rwlock_rdlock - take @rw shared.
 * Returns 0, -EDEADLK if the caller holds it for writing, -EAGAIN if the
 * reader count would overflow, -EINVAL.
 */
int sa_rwlock_rdlock(sa_rwlock_t *rw);

/** sa_rwlock_tryrdlock - Returns 0, -EBUSY, -EAGAIN, -EINVAL. */
int sa_rwlock_tryrdlock(sa_rwlock_t *rw);

/** sa_rwlock_timedrdlock - as rdlock, or -ETIMEDOUT at @abs on @clk. */
int sa_rwlock_timedrdlock(sa_rwlock_t *rw, clockid_t clk,
			  const struct timespec *abs);

/**
 * sa_rwlock_wrlock - take @rw exclusive.
 * Returns 0, -EDEADLK if the caller already holds it for writing, -EINVAL.
 */
int sa_rwlock_wrlock(sa_rwlock_t *rw);

/** sa_rwlock_trywrlock - Returns 0, -EBUSY, -EINVAL. */
int sa_rwlock_trywrlock(sa_rwlock_t *rw);

/** sa_rwlock_timedwrlock - as wrlock, or -ETIMEDOUT at @abs on @clk. */
int sa_rwlock_timedwrlock(sa_rwlock_t *rw, clockid_t clk,
			  const struct timespec *abs);

/**
 * sa_rwlock_unlock - release a read or write hold of @rw.
 * Returns 0, -EPERM if it is not held (or write-held by another uthread),
 * -EINVAL.
 */
int sa_rwlock_unlock(sa_rwlock_t *rw);

/* --- counting semaphore --- */

typedef struct sa_sem {
	uint32_t __magic;
	uint32_t __lock;
	uint32_t __value;
	uint32_t __nwait;
	void *__head;
	void *__tail;
} sa_sem_t;

/** Largest value a semaphore can hold. */
#define SA_SEM_VALUE_MAX 0x7fffffffu

/**
 * sa_sem_init - initialise @s with @value.
 * Returns 0, or -EINVAL for a NULL @s or @value above SA_SEM_VALUE_MAX.
 */
int sa_sem_init(sa_sem_t *s, unsigned value);

/** sa_sem_destroy - Returns 0, -EBUSY while waited on, -EINVAL. */
int sa_sem_destroy(sa_sem_t *s);

/**
 * sa_sem_wait - take one unit, parking while the value is 0.
 * Returns 0, or -EINVAL for an uninitialised semaphore.
 */
int sa_sem_wait(sa_sem_t *s);

/** sa_sem_trywait - take one unit if there is one; else -EAGAIN. */
int sa_sem_trywait(sa_sem_t *s);

/** sa_sem_timedwait - sa_sem_wait(), or -ETIMEDOUT at @abs on @clk. */
int sa_sem_timedwait(sa_sem_t *s, clockid_t clk, const struct timespec *abs);

/**
 * sa_sem_post - add one unit, waking one waiter.
 * Returns 0, -EOVERFLOW at SA_SEM_VALUE_MAX, -EINVAL.
 */
int sa_sem_post(sa_sem_t *s);

/** sa_sem_getvalue - store the current value in @value.  0 or -EINVAL. */
int sa_sem_getvalue(sa_sem_t *s, unsigned *value);

/* --- barrier --- */

typedef struct sa_barrier {
	uint32_t __magic;
	uint32_t __lock;
	uint32_t __count;
	uint32_t __arrived;
	uint32_t __gen;
	uint32_t __pad;
	void *__head;
	void *__tail;
} sa_barrier_t;

/** What sa_barrier_wait() returns to exactly one caller of each round. */
#define SA_BARRIER_SERIAL 1

/**
 * sa_barrier_init - a barrier for @count uthreads.
 * Returns 0, or -EINVAL for a NULL @b or a @count of 0.
 */
int sa_barrier_init(sa_barrier_t *b, unsigned count);

/**
 * sa_barrier_destroy - Returns 0, -EBUSY while a round is in progress,
 * -EINVAL for an uninitialised barrier.
 */
int sa_barrier_destroy(sa_barrier_t *b);

/**
 * sa_barrier_wait - park until @count uthreads have called this.
 * Returns SA_BARRIER_SERIAL to one caller of each round, 0 to the others,
 * -EINVAL for an uninitialised barrier.
 */
int sa_barrier_wait(sa_barrier_t *b);

/* --- once --- */

typedef struct sa_once {
	uint32_t __state;
	uint32_t __lock;
	void *__head;
	void *__tail;
} sa_once_t;

#define SA_ONCE_INIT { 0, 0, 0, 0 }

/**
 * sa_once - call @fn exactly once per @once; later and concurrent callers
 * park until that call has returned.
 * Returns 0, or -EINVAL for a NULL argument.
 * WARNING: @fn must not call sa_once() on the same @once (it would wait for
 * itself forever).
 */
int sa_once(sa_once_t *once, void (*fn)(void));

/* ------------------------------------------------------------------------
 * Statistics
 */

/** struct sa_stats - runtime counters, summed over all VPs. */
struct sa_stats {
	uint64_t nvps;          /* virtual processors */
	uint64_t spawned;       /* uthreads created */
	uint64_t exited;        /* uthreads that ended */
	uint64_t live;          /* uthreads not yet ended */
	uint64_t switches;      /* context switches between uthreads */
	uint64_t next_handoffs; /* switches taken through the LIFO next slot */
	uint64_t steals;        /* successful steal operations */
	uint64_t stolen;        /* uthreads moved by stealing */
	uint64_t parks;         /* VPs parked on their futex */
	uint64_t wakes;         /* futex wakes issued to parked VPs */
	uint64_t timers_fired;  /* timer expiries (sleeps, timed waits) */
	uint64_t stacks_mapped; /* stacks ever mapped */
	uint64_t stacks_cached; /* stacks held in caches now */
	uint64_t stacks_released; /* stacks whose memory went back to the kernel */
	uint64_t guard_regions; /* 1: stack guards are madvise guard regions (no
				 * memory mapping per stack, so a million stacks
				 * fit in vm.max_map_count); 0: mprotect'ed pages */
	/* activations (fields added in 0.1; check @size) */
	uint64_t backend;       /* SA_BACKEND_EMULATED or SA_BACKEND_KERNEL */
	uint64_t quantum_ns;    /* preemption quantum; 0: preemption is off */
	uint64_t ticks;         /* preemption ticks received by VPs */
	uint64_t preemptions;   /* uthreads preempted (the "preempted" upcall) */
	uint64_t preempt_skipped; /* ticks that found libsa itself running and
				   * left it alone until the next tick */
	uint64_t cs_recoveries; /* preemptions inside a critical section, which
				 * its copy then finished */
	uint64_t activations;   /* kernel threads made to carry VPs, spares
				 * included */
	uint64_t blocked_handoffs; /* VPs handed to a spare activation because
				    * theirs was stuck in the kernel */
	uint64_t unblocks;      /* stuck activations that came back and gave
				 * their uthread back */
	uint64_t unblock_max_ns; /* longest time from such an activation's
				  * return to its giving the uthread back */
	uint64_t io_backend;    /* SA_IO_BACKEND_URING or SA_IO_BACKEND_THREADS */
	uint64_t io_ops;        /* operations issued on the VPs' io_urings */
	uint64_t io_completions; /* their completions harvested */
	uint64_t io_submits;    /* io_uring_enter calls that submitted a batch */
	uint64_t io_fallback_ops; /* operations run by the thread-pool fallback */
	/* processor changes, kernel backend (fields added in 0.2; check @size) */
	uint64_t procs_taken;   /* processors the kernel took back from the
				 * process (another process wanted them) */
	uint64_t procs_added;   /* processors the kernel added after the start */
	uint64_t vps_dormant;   /* VPs without a processor now */
};

/* Upcall backends (sa_stats.backend, sa_backend()). */
enum {
	SA_BACKEND_EMULATED = 1, /* stock Linux: timer signals and a watchdog */
	SA_BACKEND_KERNEL = 2,   /* the kernel-patches/ upcalls */
};

/**
 * sa_backend - the name of the upcall backend in use: "emulated" or
 * "kernel".  Returns NULL if the runtime has not started.
 */
const char *sa_backend(void);

/* Values of sa_stats.io_backend: how the I/O calls of <sa/io.h> wait. */
#define SA_IO_BACKEND_URING 1   /* one io_uring per VP */
#define SA_IO_BACKEND_THREADS 2 /* a pool of kernel threads (no io_uring) */

/**
 * sa_stats_get - copy the counters into @st.
 * @size: sizeof(*st) as the caller knows it (fields past it are not written)
 * Returns 0, -EINVAL for a NULL @st, -ENOSYS if the runtime never started.
 */
int sa_stats_get(struct sa_stats *st, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* SA_SA_H */
