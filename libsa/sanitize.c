/* sanitize.c - fiber annotations that let ASan and TSan follow uthread switches */

#include "defs.h"

#ifdef SA_SANITIZE

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#endif

void san_fiber_create(struct uthread *ut)
{
#if defined(__SANITIZE_THREAD__)
	ut->tsan_fiber = __tsan_create_fiber(0);
#else
	(void)ut;
#endif
}

void san_fiber_destroy(struct uthread *ut)
{
#if defined(__SANITIZE_THREAD__)
	if (ut->tsan_fiber)
		__tsan_destroy_fiber(ut->tsan_fiber);
	ut->tsan_fiber = NULL;
#else
	(void)ut;
#endif
}

void san_thread_adopt(struct uthread *ut)
{
#if defined(__SANITIZE_THREAD__)
	ut->tsan_fiber = __tsan_get_current_fiber();
#else
	(void)ut;
#endif
}

/*
 * The sanitizer runtimes are not libsa's text: a tick inside them must not
 * preempt, or a second switch would start inside this one (np_enter()).
 */
void san_switch_begin(struct uthread *prev, struct uthread *next, bool prev_dies)
{
#if defined(__SANITIZE_ADDRESS__)
	struct vp *np = np_enter();

	__sanitizer_start_switch_fiber(prev_dies ? NULL : &prev->asan_fake, next->stack_lo,
				       (size_t)((char *)next->stack_hi - (char *)next->stack_lo));
	np_exit(np);
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

void san_switch_end(struct uthread *cur)
{
#if defined(__SANITIZE_ADDRESS__)
	struct vp *np = np_enter();

	__sanitizer_finish_switch_fiber(cur->asan_fake, NULL, NULL);
	np_exit(np);
#else
	(void)cur;
#endif
}

#else
typedef int sa_sanitize_unused;
#endif
