/* pt_early.c - a library whose constructor uses pthread objects before
 * libsa-preload.so's own constructor has run
 *
 * Preloaded after the shim (LD_PRELOAD="libsa-preload.so pt_early.so"),
 * its constructor runs first, as the constructors of a program's own
 * libraries do (sysbench's libgnutls takes a static rwlock there).  It
 * uses statically initialised objects only, which is what such code does,
 * and records the outcome for pt_ctor to check.
 */
#include "pt.h"

static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t rm = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static pthread_cond_t c = PTHREAD_COND_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int once_ran, early_ok;

static void once_fn(void)
{
	once_ran++;
}

__attribute__((constructor)) static void early_init(void)
{
	int ok = 1;

	ok &= pthread_rwlock_rdlock(&rw) == 0 && pthread_rwlock_unlock(&rw) == 0;
	ok &= pthread_rwlock_wrlock(&rw) == 0 && pthread_rwlock_unlock(&rw) == 0;
	ok &= pthread_mutex_lock(&m) == 0 && pthread_mutex_unlock(&m) == 0;
	ok &= pthread_mutex_lock(&rm) == 0 && pthread_mutex_lock(&rm) == 0 &&
	      pthread_mutex_unlock(&rm) == 0 && pthread_mutex_unlock(&rm) == 0;
	ok &= pthread_cond_signal(&c) == 0 && pthread_cond_broadcast(&c) == 0;
	ok &= pthread_once(&once, once_fn) == 0 && once_ran == 1;
	early_ok = ok;
}

int pt_early_ok(void);
int pt_early_ok(void)
{
	return early_ok;
}
