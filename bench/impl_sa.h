/* impl_sa.h - the benchmark portability layer mapped onto libsa */
#ifndef BENCH_IMPL_SA_H
#define BENCH_IMPL_SA_H

#include <time.h>
#include <sa/io.h>

#define BT_IMPL_NAME "libsa"
#define BT_KERNEL_THREADS 0

typedef sa_uthread_t bt_thread_t;
typedef sa_mutex_t bt_mutex_t;
typedef sa_cond_t bt_cond_t;
typedef sa_sem_t bt_sem_t;

/* @procs VPs; 0 means libsa's default ($SA_VPS, else the CPU count). */
static inline int bt_setup(unsigned procs)
{
	return sa_init(procs);
}

static inline int bt_spawn(bt_thread_t *t, void *(*fn)(void *), void *arg)
{
	return sa_spawn(t, NULL, fn, arg);
}

static inline int bt_join(bt_thread_t t, void **ret)
{
	return sa_join(t, ret);
}

static inline int bt_yield(void)
{
	return sa_yield();
}

static inline int bt_mutex_init(bt_mutex_t *m)
{
	return sa_mutex_init(m, SA_MUTEX_NORMAL);
}

static inline int bt_mutex_destroy(bt_mutex_t *m)
{
	return sa_mutex_destroy(m);
}

static inline int bt_mutex_lock(bt_mutex_t *m)
{
	return sa_mutex_lock(m);
}

static inline int bt_mutex_unlock(bt_mutex_t *m)
{
	return sa_mutex_unlock(m);
}

static inline int bt_cond_init(bt_cond_t *c)
{
	return sa_cond_init(c, CLOCK_MONOTONIC);
}

static inline int bt_cond_destroy(bt_cond_t *c)
{
	return sa_cond_destroy(c);
}

static inline int bt_cond_wait(bt_cond_t *c, bt_mutex_t *m)
{
	return sa_cond_wait(c, m);
}

static inline int bt_cond_signal(bt_cond_t *c)
{
	return sa_cond_signal(c);
}

static inline int bt_sem_init(bt_sem_t *s, unsigned value)
{
	return sa_sem_init(s, value);
}

static inline int bt_sem_destroy(bt_sem_t *s)
{
	return sa_sem_destroy(s);
}

static inline int bt_sem_wait(bt_sem_t *s)
{
	return sa_sem_wait(s);
}

static inline int bt_sem_post(bt_sem_t *s)
{
	return sa_sem_post(s);
}

static inline ssize_t bt_read(int fd, void *buf, size_t n)
{
	return sa_read(fd, buf, n);
}

static inline ssize_t bt_write(int fd, const void *buf, size_t n)
{
	return sa_write(fd, buf, n);
}

#endif /* BENCH_IMPL_SA_H */
