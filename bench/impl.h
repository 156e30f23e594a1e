/* impl.h - the portability layer the benchmarks are written against */
#ifndef BENCH_IMPL_H
#define BENCH_IMPL_H

/*
 * The benchmark programs (micro.c, activations.c) are written once against
 * the bt_* names below and compiled twice: with -DBENCH_IMPL_SA against
 * libsa (impl_sa.h) and with -DBENCH_IMPL_NPTL against glibc's NPTL
 * (impl_nptl.h).  Each implementation provides:
 *
 *   BT_IMPL_NAME            "libsa" or "nptl", used in the output
 *   BT_KERNEL_THREADS       1 if every thread is a kernel thread
 *   bt_thread_t, bt_mutex_t, bt_cond_t, bt_sem_t
 *
 *   int  bt_setup(unsigned procs)  run on @procs processors: libsa starts
 *                                  @procs VPs, NPTL pins the process to
 *                                  @procs CPUs (0: the implementation's
 *                                  default, no pinning)
 *   int  bt_spawn(bt_thread_t *t, void *(*fn)(void *), void *arg)
 *   int  bt_join(bt_thread_t t, void **ret)
 *   int  bt_yield(void)
 *   int  bt_mutex_init/destroy/lock/unlock(bt_mutex_t *)
 *   int  bt_cond_init/destroy/signal(bt_cond_t *)
 *   int  bt_cond_wait(bt_cond_t *, bt_mutex_t *)
 *   int  bt_sem_init(bt_sem_t *, unsigned value)
 *   int  bt_sem_destroy/wait/post(bt_sem_t *)
 *   ssize_t bt_read(int fd, void *buf, size_t n)
 *   ssize_t bt_write(int fd, const void *buf, size_t n)
 *                                  blocking I/O that the runtime sees:
 *                                  sa_read/sa_write on libsa (the calling
 *                                  uthread parks, its VP runs others),
 *                                  read(2)/write(2) on NPTL (the thread
 *                                  blocks in the kernel)
 *
 * Every function returns 0 or a negative errno value, as libsa does (the
 * I/O calls: a byte count or a negative errno value); the NPTL mapping
 * translates.  Threads are created with default attributes
 * on both sides: the benchmarks measure what a program gets without tuning.
 */

#if defined(BENCH_IMPL_SA)
#include "impl_sa.h"
#elif defined(BENCH_IMPL_NPTL)
#include "impl_nptl.h"
#else
#error "define BENCH_IMPL_SA or BENCH_IMPL_NPTL"
#endif

#endif /* BENCH_IMPL_H */
