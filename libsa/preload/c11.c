/* c11.c - libsa-preload.so: C11 <threads.h> on uthreads */

/*
 * glibc implements thrd_create, mtx_lock, cnd_wait, tss_set, call_once,
 * ... on its own pthread functions, called inside the C library where the
 * shim cannot see them: a thrd_create() would make a kernel thread and an
 * mtx_lock() would wait in the kernel.  Each is therefore defined here on
 * the shim's pthread functions, with glibc's mapping of error numbers to
 * thrd_* results.  The types are glibc's pthread types under other names
 * (checked at compile time).  thrd_current and thrd_equal stay glibc's.
 */

#define SA_PRELOAD_NO_REDIRECT
#include "preload/shim.h"

#include <threads.h>

_Static_assert(sizeof(thrd_t) == sizeof(pthread_t), "thrd_t is a pthread_t");
_Static_assert(sizeof(mtx_t) == sizeof(pthread_mutex_t), "mtx_t is a mutex");
_Static_assert(sizeof(cnd_t) == sizeof(pthread_cond_t), "cnd_t is a condvar");
_Static_assert(sizeof(tss_t) == sizeof(pthread_key_t), "tss_t is a key");
_Static_assert(sizeof(once_flag) == sizeof(pthread_once_t), "once_flag is a once");

/* c11_ret - a pthread error number as a thrd_* result, as glibc maps it. */
static int c11_ret(int e)
{
	switch (e) {
	case 0: return thrd_success;
	case ENOMEM: return thrd_nomem;
	case EBUSY: return thrd_busy;
	case ETIMEDOUT: return thrd_timedout;
	default: return thrd_error;
	}
}

struct c11_start {
	thrd_start_t fn;
	void *arg;
};

static void *c11_entry(void *p)
{
	struct c11_start s = *(struct c11_start *)p;

	free(p);
	return (void *)(intptr_t)s.fn(s.arg);
}

SA_EXPORT int thrd_create(thrd_t *t, thrd_start_t fn, void *arg)
{
	struct c11_start *s = malloc(sizeof(*s));
	int r;

	if (!s)
		return thrd_nomem;
	s->fn = fn;
	s->arg = arg;
	r = pthread_create((pthread_t *)t, NULL, c11_entry, s);
	if (r)
		free(s);
	return c11_ret(r);
}

SA_EXPORT int thrd_join(thrd_t t, int *res)
{
	void *v;
	int r = pthread_join((pthread_t)t, &v);

	if (!r && res)
		*res = (int)(intptr_t)v;
	return c11_ret(r);
}

SA_EXPORT int thrd_detach(thrd_t t)
{
	return c11_ret(pthread_detach((pthread_t)t));
}

SA_EXPORT void thrd_exit(int res)
{
	pthread_exit((void *)(intptr_t)res);
}

/* 0, -1 when a signal interrupted it, another negative value on error. */
SA_EXPORT int thrd_sleep(const struct timespec *ts, struct timespec *rem)
{
	if (nanosleep(ts, rem) == 0)
		return 0;
	return errno == EINTR ? -1 : -2;
}

SA_EXPORT int mtx_init(mtx_t *m, int type)
{
	pthread_mutexattr_t a;
	int r;

	if (type != mtx_plain && type != mtx_timed && type != (mtx_plain | mtx_recursive) &&
	    type != (mtx_timed | mtx_recursive))
		return thrd_error;
	pthread_mutexattr_init(&a);
	if (type & mtx_recursive)
		pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
	r = pthread_mutex_init((pthread_mutex_t *)m, &a);
	pthread_mutexattr_destroy(&a);
	return c11_ret(r);
}

SA_EXPORT int mtx_lock(mtx_t *m)
{
	return c11_ret(pthread_mutex_lock((pthread_mutex_t *)m));
}

SA_EXPORT int mtx_timedlock(mtx_t *restrict m, const struct timespec *restrict ts)
{
	return c11_ret(pthread_mutex_timedlock((pthread_mutex_t *)m, ts));
}

SA_EXPORT int mtx_trylock(mtx_t *m)
{
	return c11_ret(pthread_mutex_trylock((pthread_mutex_t *)m));
}

SA_EXPORT int mtx_unlock(mtx_t *m)
{
	return c11_ret(pthread_mutex_unlock((pthread_mutex_t *)m));
}

SA_EXPORT void mtx_destroy(mtx_t *m)
{
	pthread_mutex_destroy((pthread_mutex_t *)m);
}

SA_EXPORT void call_once(once_flag *flag, void (*fn)(void))
{
	pthread_once((pthread_once_t *)flag, fn);
}

SA_EXPORT int cnd_init(cnd_t *c)
{
	return c11_ret(pthread_cond_init((pthread_cond_t *)c, NULL));
}

SA_EXPORT int cnd_signal(cnd_t *c)
{
	return c11_ret(pthread_cond_signal((pthread_cond_t *)c));
}

SA_EXPORT int cnd_broadcast(cnd_t *c)
{
	return c11_ret(pthread_cond_broadcast((pthread_cond_t *)c));
}

SA_EXPORT int cnd_wait(cnd_t *c, mtx_t *m)
{
	return c11_ret(pthread_cond_wait((pthread_cond_t *)c, (pthread_mutex_t *)m));
}

SA_EXPORT int cnd_timedwait(cnd_t *restrict c, mtx_t *restrict m,
			    const struct timespec *restrict ts)
{
	return c11_ret(pthread_cond_timedwait((pthread_cond_t *)c, (pthread_mutex_t *)m, ts));
}

SA_EXPORT void cnd_destroy(cnd_t *c)
{
	pthread_cond_destroy((pthread_cond_t *)c);
}

SA_EXPORT int tss_create(tss_t *k, tss_dtor_t dtor)
{
	return c11_ret(pthread_key_create((pthread_key_t *)k, dtor));
}

SA_EXPORT void *tss_get(tss_t k)
{
	return pthread_getspecific((pthread_key_t)k);
}

SA_EXPORT int tss_set(tss_t k, void *v)
{
	return c11_ret(pthread_setspecific((pthread_key_t)k, v));
}

SA_EXPORT void tss_delete(tss_t k)
{
	pthread_key_delete((pthread_key_t)k);
}
