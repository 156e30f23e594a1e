/* cancel.c - libsa-preload.so: pthread_exit with unwinding, deferred cancellation */

/*
 * Unwinding.  glibc ends a thread by forced unwinding: pthread_exit() sets
 * the EXITING bit, then __pthread_unwind() runs _Unwind_ForcedUnwind() with
 * a stop function that, frame by frame, runs the cleanup handlers of
 * plain C code (the buffers __pthread_register_cancel() chains from the
 * descriptor's cleanup_jmp_buf, and the old _pthread_cleanup_push ones),
 * lets the personality routines run C++ destructors and the cleanup
 * attributes of C compiled with -fexceptions, and finally longjmps to the
 * buffer at the bottom of the chain, which start_thread() set up before it
 * called the thread's function.  All of that state is in the thread
 * descriptor, and a uthread has a descriptor of its own (libsa/tls.c).  So
 * the shim does what start_thread() does: every uthread starts in
 * start_trampoline(), which sets the bottom buffer and stores it in its
 * own descriptor's cleanup_jmp_buf, and pthread_exit() on a uthread is
 * glibc's own.  The longjmp lands in the trampoline, which returns the exit
 * value to libsa as if the function had returned it; libsa then runs the
 * thread_local and key destructors as for any ending uthread.
 *
 * main is no thread the shim started, so the shim starts it too: it
 * interposes __libc_start_main(), which every dynamically linked program's
 * _start calls, and hands the C library main_trampoline() as the program's
 * main.  The trampoline sets a bottom buffer below main's frames as
 * start_trampoline() does, so pthread_exit() from main unwinds main's
 * stack (cleanup handlers, destructors) and lands there; the main uthread
 * then ends as any uthread does, and the process lives on until its last
 * uthread ends, with status 0, as POSIX says.  When main returns, the
 * trampoline puts the C library's own buffer back before exit() runs.
 *
 * The descriptor's cleanup_jmp_buf has no published offset.  At start-up
 * the shim has glibc store a buffer it knows there
 * (__pthread_register_cancel on the main thread), finds the word that holds
 * it (tls_tcb_find()), and unregisters it.  If none is found, pthread_exit()
 * ends the uthread without running cleanup handlers or destructors.
 *
 * Cancellation.  Deferred, as POSIX asks by default.  The state is per
 * uthread, in the shim's static TLS (struct preload_cancel), which another
 * thread reaches through the target's descriptor, as tls_handle_of() does.
 * pthread_cancel() sets ->pending and interrupts the target's wait
 * (preload_interrupt(): its routed I/O through io_interrupt(), its sleep,
 * condition, semaphore or join wait through ut_interrupt()); the target
 * acts at the next cancellation point it enters or leaves
 * (preload_testcancel()), or at once if it waits in one, which then never
 * returns: a condition wait takes its mutex again first, and a join
 * leaves its target joinable.  Acting is pthread_exit() with
 * PTHREAD_CANCELED and cancellation disabled, as in glibc.  The other
 * waits that an interruption cancels on the way are made again.
 * Asynchronous cancellation is accepted and acted on like deferred (POSIX
 * lets it act at any time, and the cancellation points are such times),
 * and also when it is enabled with a request pending.
 */

#define SA_PRELOAD_NO_REDIRECT
#include "preload/shim.h"

#include <setjmp.h>

#include "io/io.h"

__thread struct preload_cancel preload_cancel_tls __attribute__((tls_model("initial-exec")));

/* Where pthread_exit() leaves the value for the trampoline. */
static __thread void *exit_value __attribute__((tls_model("initial-exec")));
/* This uthread started in the trampoline: pthread_exit() may unwind. */
static __thread bool unwindable __attribute__((tls_model("initial-exec")));

static long cleanup_off = -1; /* of cleanup_jmp_buf in glibc's descriptor */
static long cancel_off;       /* of preload_cancel_tls from the descriptor */

static struct {
	int (*cancel)(pthread_t);
	int (*setcancelstate)(int, int *);
	int (*setcanceltype)(int, int *);
	void (*testcancel)(void);
	void (*register_cancel)(__pthread_unwind_buf_t *);
	void (*unregister_cancel)(__pthread_unwind_buf_t *);
} real_c;

/**
 * preload_cancel_init - look up the C library's functions and the offsets
 * this file needs.  Runs on the main thread at start-up, after tls_enable().
 */
void preload_cancel_init(void)
{
	__pthread_unwind_buf_t probe;
	void *tp = (void *)pthread_self();

	real_c.cancel = preload_real_sym("pthread_cancel");
	real_c.setcancelstate = preload_real_sym("pthread_setcancelstate");
	real_c.setcanceltype = preload_real_sym("pthread_setcanceltype");
	real_c.testcancel = preload_real_sym("pthread_testcancel");
	real_c.register_cancel = preload_real_sym("__pthread_register_cancel");
	real_c.unregister_cancel = preload_real_sym("__pthread_unregister_cancel");
	cancel_off = (char *)&preload_cancel_tls - (char *)tp;
	memset(&probe, 0, sizeof(probe));
	real_c.register_cancel(&probe);
	cleanup_off = tls_tcb_find(tp, &probe);
	real_c.unregister_cancel(&probe);
}

/* cancel_of - the cancellation state of the uthread whose descriptor is @t. */
static struct preload_cancel *cancel_of(pthread_t t)
{
	return (struct preload_cancel *)((char *)t + cancel_off);
}

/*
 * start_trampoline - where every uthread the shim makes starts: the bottom
 * of its cleanup chain, as glibc's start_thread() is for a thread.
 */
struct start {
	void *(*fn)(void *);
	void *arg;
	struct preload_sched sched; /* what pthread_create() gave it (thread.c) */
	struct preload_sig sig;     /* its creator's mask (signal.c) */
};

static void *start_trampoline(void *p)
{
	struct start s = *(struct start *)p;
	__pthread_unwind_buf_t ub;

	preload_sched_tls = ((struct start *)p)->sched;
	preload_sig_tls = ((struct start *)p)->sig;
	free(p);
	if (cleanup_off < 0)
		return s.fn(s.arg);
	/* As glibc's start_thread(): without the signal mask, setjmp writes
	 * only the registers and __mask_was_saved, which the buffer has. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
	if (__sigsetjmp((struct __jmp_buf_tag *)(void *)ub.__cancel_jmp_buf, 0) == 0) {
#pragma GCC diagnostic pop
		ub.__pad[0] = NULL; /* prev */
		ub.__pad[1] = NULL; /* cleanup */
		*(void **)((char *)pthread_self() + cleanup_off) = &ub;
		unwindable = true;
		return s.fn(s.arg);
	}
	/* pthread_exit() unwound to here. */
	return exit_value;
}

/**
 * preload_spawn - ut_spawn() @fn(@arg) through the trampoline.
 * Returns 0 or a negative errno.
 */
int preload_spawn(sa_uthread_t *h, sa_attr_t *a, void *(*fn)(void *), void *arg,
		  const struct preload_sched *sched, void **tp)
{
	struct start *s = malloc(sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	s->fn = fn;
	s->arg = arg;
	s->sched = *sched;
	preload_sig_inherit(&s->sig);
	r = ut_spawn(h, a, start_trampoline, s, tp);
	if (r) {
		preload_sig_uninherit(&s->sig);
		free(s);
	}
	return r;
}

/*
 * The program's main and the C library's start: main_trampoline() runs in
 * place of main (see the design comment above).
 */
typedef int (*main_fn)(int, char **, char **);
typedef int (*start_main_fn)(main_fn, int, char **, void (*)(void), void (*)(void),
			     void (*)(void), void *);

static main_fn program_main;

static int main_trampoline(int argc, char **argv, char **envp)
{
	__pthread_unwind_buf_t ub;
	void **bottom;
	void *libc_buf;
	int r;

	preload_start();
	if (cleanup_off < 0)
		return program_main(argc, argv, envp);
	bottom = (void **)((char *)pthread_self() + cleanup_off);
	libc_buf = *bottom;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
	if (__sigsetjmp((struct __jmp_buf_tag *)(void *)ub.__cancel_jmp_buf, 0) == 0) {
#pragma GCC diagnostic pop
		ub.__pad[0] = libc_buf; /* prev */
		ub.__pad[1] = NULL;     /* cleanup */
		*bottom = &ub;
		unwindable = true;
		r = program_main(argc, argv, envp);
		unwindable = false;
		*(void **)((char *)pthread_self() + cleanup_off) = libc_buf;
		return r;
	}
	/* pthread_exit() unwound main to here.  The main uthread ends as any
	 * uthread; a main thread that never started the VPs is the C
	 * library's to end, in its own buffer, as without the shim. */
	if (vp_self())
		sa_exit(exit_value);
	*(void **)((char *)pthread_self() + cleanup_off) = libc_buf;
	/* The buffer has no signal mask (__mask_was_saved is 0), so nothing
	 * past its 72 bytes is read. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
	siglongjmp((struct __jmp_buf_tag *)((__pthread_unwind_buf_t *)libc_buf)->__cancel_jmp_buf, 1);
#pragma GCC diagnostic pop
}

int __libc_start_main(main_fn main, int argc, char **argv, void (*init)(void),
		      void (*fini)(void), void (*rtld_fini)(void), void *stack_end);
SA_EXPORT int __libc_start_main(main_fn main, int argc, char **argv, void (*init)(void),
				void (*fini)(void), void (*rtld_fini)(void), void *stack_end)
{
	start_main_fn real = (start_main_fn)preload_real_sym("__libc_start_main");

	program_main = main;
	return real(main_trampoline, argc, argv, init, fini, rtld_fini, stack_end);
}

SA_EXPORT void pthread_exit(void *retval)
{
	preload_start();
	if (vp_self()) {
		if (unwindable) {
			exit_value = retval;
			/* glibc's own: forced unwinding down to the trampoline. */
			preload_real.pthread_exit(retval);
		}
		sa_exit(retval);
	}
	preload_real.pthread_exit(retval);
}

/* ------------------------------------------------------------------------
 * Cancellation
 */

/* on_uthread_self - the caller is a uthread the shim made or adopted. */
static bool on_uthread_self(void)
{
	preload_start();
	return vp_self() && tls_handle_of((const void *)pthread_self());
}

/* act - the calling uthread acts on its pending cancellation. */
static __attribute__((noreturn)) void act(void)
{
	preload_cancel_tls.disabled = 1; /* no second cancellation in cleanup */
	atomic_store(&preload_cancel_tls.pending, 0);
	pthread_exit(PTHREAD_CANCELED);
}

/**
 * __preload_testcancel - slow path of preload_testcancel(): a request is
 * pending; act on it unless cancellation is disabled or the caller is not
 * a uthread.
 */
void __preload_testcancel(void)
{
	if (atomic_load_explicit(&preload_sig_tls.pending, memory_order_relaxed))
		preload_sig_deliver();
	if (atomic_load_explicit(&preload_cancel_tls.pending, memory_order_relaxed) &&
	    !preload_cancel_tls.disabled && vp_self())
		act();
}

/** preload_cancel_wanted - the caller has a request it would act on now. */
bool preload_cancel_wanted(void)
{
	return atomic_load_explicit(&preload_cancel_tls.pending, memory_order_relaxed) &&
	       !preload_cancel_tls.disabled;
}

/**
 * preload_interrupt - uthread @t has a signal or a cancellation to take:
 * end the wait it is in now.  Its routed I/O wait (io_interrupt()), or
 * its sleep, condition, semaphore or join wait (ut_interrupt(): the libsa
 * call returns -EINTR and the shim asks preload_wait_intr()).
 */
void preload_interrupt(pthread_t t)
{
	sa_uthread_t h = tls_handle_of((const void *)t);

	if (h)
		ut_interrupt(h);
	io_interrupt();
}

/**
 * preload_wait_intr - a libsa wait of the calling uthread ended with
 * -EINTR (ut_interrupt()): run the handlers of its pending signals that
 * its mask lets through, and act on a pending cancellation (never
 * returns then; a cond wait has its mutex again, as POSIX wants for the
 * cleanup handlers).  Returns what ran, for the call to end as it does
 * under NPTL.  PRELOAD_INTR_NONE: the interruption was not for this wait
 * (the signal is blocked, cancellation is disabled, the request was
 * stale): wait again.
 */
enum preload_intr preload_wait_intr(void)
{
	uint32_t before = preload_sig_tls.handled, before_intr = preload_sig_tls.handled_intr;

	preload_testcancel();
	if (preload_sig_tls.handled_intr != before_intr)
		return PRELOAD_INTR_EINTR;
	return preload_sig_tls.handled != before ? PRELOAD_INTR_RESTART : PRELOAD_INTR_NONE;
}

SA_EXPORT int pthread_cancel(pthread_t t)
{
	sa_uthread_t h;
	char name[16];

	preload_start();
	h = t ? tls_handle_of((const void *)t) : 0;
	if (!h)
		return t ? real_c.cancel(t) : ESRCH;
	if (sa_getname(h, name, sizeof(name)) == -ESRCH)
		return ESRCH;
	atomic_store_explicit(&cancel_of(t)->pending, 1, memory_order_release);
	if (t == pthread_self()) {
		if (preload_cancel_tls.async)
			preload_testcancel();
		return 0;
	}
	/* A target that waits learns it now. */
	preload_interrupt(t);
	return 0;
}

SA_EXPORT int pthread_setcancelstate(int state, int *old)
{
	if (!on_uthread_self())
		return real_c.setcancelstate(state, old);
	if (state != PTHREAD_CANCEL_ENABLE && state != PTHREAD_CANCEL_DISABLE)
		return EINVAL;
	if (old)
		*old = preload_cancel_tls.disabled ? PTHREAD_CANCEL_DISABLE : PTHREAD_CANCEL_ENABLE;
	preload_cancel_tls.disabled = state == PTHREAD_CANCEL_DISABLE;
	if (preload_cancel_tls.async)
		preload_testcancel();
	return 0;
}

SA_EXPORT int pthread_setcanceltype(int type, int *old)
{
	if (!on_uthread_self())
		return real_c.setcanceltype(type, old);
	if (type != PTHREAD_CANCEL_DEFERRED && type != PTHREAD_CANCEL_ASYNCHRONOUS)
		return EINVAL;
	if (old)
		*old = preload_cancel_tls.async ? PTHREAD_CANCEL_ASYNCHRONOUS :
						  PTHREAD_CANCEL_DEFERRED;
	preload_cancel_tls.async = type == PTHREAD_CANCEL_ASYNCHRONOUS;
	if (preload_cancel_tls.async)
		preload_testcancel();
	return 0;
}

SA_EXPORT void pthread_testcancel(void)
{
	if (!on_uthread_self()) {
		real_c.testcancel();
		return;
	}
	preload_testcancel();
}
