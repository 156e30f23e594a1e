/* shim.h - what the files of libsa-preload.so share */
#ifndef SA_PRELOAD_SHIM_H
#define SA_PRELOAD_SHIM_H

#include <semaphore.h>

#include "defs.h"
#include "preload/real.h"

enum { PRELOAD_OFF = 0, PRELOAD_STARTING, PRELOAD_ON };

extern _Atomic uint32_t preload_state;
void __preload_start(void);

/*
 * preload_start - make sure the shim runs: fast path one load and a branch;
 * slow path (the first call in the process) starts the runtime.
 */
static __always_inline void preload_start(void)
{
	if (unlikely(atomic_load_explicit(&preload_state, memory_order_acquire) != PRELOAD_ON))
		__preload_start();
}

/* sync.c */
void preload_sync_init_real(void);
/* preload.c */
void *preload_real_sym(const char *name);
int preload_real_sem_init(sem_t *s, int pshared, unsigned value);

#endif /* SA_PRELOAD_SHIM_H */
