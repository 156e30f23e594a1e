/* real.h - inside libsa-preload.so, libsa's own pthread calls go to the C library */
#ifndef SA_PRELOAD_REAL_H
#define SA_PRELOAD_REAL_H

/*
 * libsa-preload.so defines pthread_create, sched_yield, ... for the whole
 * process, so a call from libsa's own code (a VP's kernel thread, the key
 * of external threads) would come back to the shim.  The libsa sources are
 * compiled a second time for the shim with this header forced in first
 * (-include), which sends those calls to the C library's functions,
 * resolved once by real_init() (preload.c).
 */

#include <pthread.h>
#include <sched.h>
#include <time.h>

struct preload_real {
	int (*pthread_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
	int (*pthread_join)(pthread_t, void **);
	int (*pthread_detach)(pthread_t);
	void (*pthread_exit)(void *) __attribute__((noreturn));
	int (*pthread_key_create)(pthread_key_t *, void (*)(void *));
	int (*pthread_setspecific)(pthread_key_t, const void *);
	int (*pthread_once)(pthread_once_t *, void (*)(void));
	int (*pthread_getattr_np)(pthread_t, pthread_attr_t *);
	int (*sched_yield)(void);
	int (*clock_nanosleep)(clockid_t, int, const struct timespec *, struct timespec *);
};

extern struct preload_real preload_real __attribute__((visibility("hidden")));

#ifndef SA_PRELOAD_NO_REDIRECT
#define pthread_create(...) preload_real.pthread_create(__VA_ARGS__)
#define pthread_join(...) preload_real.pthread_join(__VA_ARGS__)
#define pthread_detach(...) preload_real.pthread_detach(__VA_ARGS__)
#define pthread_exit(...) preload_real.pthread_exit(__VA_ARGS__)
#define pthread_key_create(...) preload_real.pthread_key_create(__VA_ARGS__)
#define pthread_setspecific(...) preload_real.pthread_setspecific(__VA_ARGS__)
#define pthread_once(...) preload_real.pthread_once(__VA_ARGS__)
#define pthread_getattr_np(...) preload_real.pthread_getattr_np(__VA_ARGS__)
#define sched_yield(...) preload_real.sched_yield(__VA_ARGS__)
#define clock_nanosleep(...) preload_real.clock_nanosleep(__VA_ARGS__)
#endif

#endif /* SA_PRELOAD_REAL_H */
