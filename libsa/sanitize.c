/* sanitize.c - fiber annotations that let ASan and TSan follow uthread switches */

#include "defs.h"

#ifdef SA_SANITIZE

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#endif

/* __san_stack_reuse - frames in [@lo, @hi) were abandoned, never
 * returned from (a fresh context starts there): forget their redzones. */
void __san_stack_reuse(void *lo, void *hi)
{
#if defined(__SANITIZE_ADDRESS__)
	__asan_unpoison_memory_region(lo, (size_t)((char *)hi - (char *)lo));
#else
	(void)lo;
	(void)hi;
#endif
}

void __san_fiber_create(struct uthread *ut)
{
#if defined(__SANITIZE_THREAD__)
	ut->tsan_fiber = __tsan_create_fiber(0);
#else
	(void)ut;
#endif
}

void __san_fiber_destroy(struct uthread *ut)
{
#if defined(__SANITIZE_THREAD__)
	if (ut->tsan_fiber)
		__tsan_destroy_fiber(ut->tsan_fiber);
	ut->tsan_fiber = NULL;
#else
	(void)ut;
#endif
}

void __san_thread_adopt(struct uthread *ut)
{
#if defined(__SANITIZE_THREAD__)
	ut->tsan_fiber = __tsan_get_current_fiber();
#else
	(void)ut;
#endif
}

void __san_switch_begin(struct uthread *prev, struct uthread *next, bool prev_dies)
{
#if defined(__SANITIZE_ADDRESS__)
	__sanitizer_start_switch_fiber(prev_dies ? NULL : &prev->asan_fake, next->stack_lo,
				       (size_t)((char *)next->stack_hi - (char *)next->stack_lo));
#else
	(void)prev;
	(void)prev_dies;
#endif
#if defined(__SANITIZE_THREAD__)
	__tsan_switch_to_fiber(next->tsan_fiber, 0);
#else
	(void)next;
#endif
}

void __san_switch_end(struct uthread *cur)
{
#if defined(__SANITIZE_ADDRESS__)
	__sanitizer_finish_switch_fiber(cur->asan_fake, NULL, NULL);
#else
	(void)cur;
#endif
}

#else
typedef int sa_sanitize_unused;
#endif
