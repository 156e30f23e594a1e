/* impl_nptl.h - the benchmark portability layer mapped onto glibc NPTL */
#ifndef BENCH_IMPL_NPTL_H
#define BENCH_IMPL_NPTL_H

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <unistd.h>

#define BT_IMPL_NAME "nptl"
#define BT_KERNEL_THREADS 1

typedef pthread_t bt_thread_t;
typedef pthread_mutex_t bt_mutex_t;
typedef pthread_cond_t bt_cond_t;
typedef sem_t bt_sem_t;

/*
 * Pin the whole process to the first @procs CPUs of its affinity mask
 * before any other thread exists (new threads inherit the mask); 0 leaves
 * the mask alone.  Returns -EINVAL when fewer CPUs are available.
 */
static inline int bt_setup(unsigned procs)
{
	cpu_set_t have, want;
	unsigned got = 0;

	if (procs == 0)
		return 0;
	if (sched_getaffinity(0, sizeof(have), &have) != 0)
		return -errno;
	CPU_ZERO(&want);
	for (int cpu = 0; cpu < CPU_SETSIZE && got < procs; cpu++) {
		if (CPU_ISSET(cpu, &have)) {
			CPU_SET(cpu, &want);
			got++;
		}
	}
	if (got < procs)
		return -EINVAL;
	return sched_setaffinity(0, sizeof(want), &want) ? -errno : 0;
}

static inline int bt_spawn(bt_thread_t *t, void *(*fn)(void *), void *arg)
{
	return -pthread_create(t, NULL, fn, arg);
}

static inline int bt_join(bt_thread_t t, void **ret)
{
	return -pthread_join(t, ret);
}

static inline int bt_yield(void)
{
	return sched_yield() ? -errno : 0;
}

static inline int bt_mutex_init(bt_mutex_t *m)
{
	return -pthread_mutex_init(m, NULL);
}

static inline int bt_mutex_destroy(bt_mutex_t *m)
{
	return -pthread_mutex_destroy(m);
}

static inline int bt_mutex_lock(bt_mutex_t *m)
{
	return -pthread_mutex_lock(m);
}

static inline int bt_mutex_unlock(bt_mutex_t *m)
{
	return -pthread_mutex_unlock(m);
}

static inline int bt_cond_init(bt_cond_t *c)
{
	pthread_condattr_t a;
	int rc;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	rc = pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
	return -rc;
}

static inline int bt_cond_destroy(bt_cond_t *c)
{
	return -pthread_cond_destroy(c);
}

static inline int bt_cond_wait(bt_cond_t *c, bt_mutex_t *m)
{
	return -pthread_cond_wait(c, m);
}

static inline int bt_cond_signal(bt_cond_t *c)
{
	return -pthread_cond_signal(c);
}

static inline int bt_sem_init(bt_sem_t *s, unsigned value)
{
	return sem_init(s, 0, value) ? -errno : 0;
}

static inline int bt_sem_destroy(bt_sem_t *s)
{
	return sem_destroy(s) ? -errno : 0;
}

/* sem_wait can return EINTR; a benchmark has no signals, so it is an error. */
static inline int bt_sem_wait(bt_sem_t *s)
{
	return sem_wait(s) ? -errno : 0;
}

static inline int bt_sem_post(bt_sem_t *s)
{
	return sem_post(s) ? -errno : 0;
}

/* A benchmark has no signal handlers: EINTR is restarted, not returned. */
static inline ssize_t bt_read(int fd, void *buf, size_t n)
{
	ssize_t r;

	do
		r = read(fd, buf, n);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

static inline ssize_t bt_write(int fd, const void *buf, size_t n)
{
	ssize_t r;

	do
		r = write(fd, buf, n);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

#endif /* BENCH_IMPL_NPTL_H */
