/* test_futex.c - io_futex_wait(): a uthread parks on a futex word in its VP's ring */

/*
 * io_futex_wait() is internal (the LD_PRELOAD shim waits on the C
 * library's semaphores with it), so this program links the tests' static
 * build of the library, as test_critsec does.  Where the kernel's rings
 * cannot wait on a futex (IORING_OP_FUTEX_WAIT, Linux 6.7) the tests of
 * the ring path skip.
 */
#include <linux/futex.h>
#include <sys/syscall.h>

#include "helpers.h"

#include "defs.h"
#include "io/io.h"

static _Atomic uint32_t word;

static void wake_word(void)
{
	syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* start_ring - one VP, no hand-off of a blocked VP: a wait that blocked
 * the VP would stop every other uthread for good. */
static void start_ring(void)
{
	setenv("SA_BLOCKED_US", "0", 1);
	setenv("SA_IO", "uring", 1);
	h_start_env("1");
	atomic_store(&word, 0);
	/* A word that does not hold the value returns at once where the
	 * ring can wait on futexes. */
	if (io_futex_wait(&word, 1, true, DEADLINE_NONE) == -EOPNOTSUPP)
		cr_skip_test("the kernel's io_uring has no IORING_OP_FUTEX_WAIT");
}

static _Atomic int ticks, waiter_done, waiter_rc = 1;

static void *ticker(void *arg)
{
	(void)arg;
	while (!atomic_load(&waiter_done)) {
		atomic_fetch_add(&ticks, 1);
		sa_sleep_ns(100 * NSEC_PER_USEC);
	}
	return NULL;
}

static void *waiter(void *arg)
{
	(void)arg;
	while (atomic_load(&word) == 0) {
		int r = io_futex_wait(&word, 0, true, DEADLINE_NONE);

		if (r) {
			atomic_store(&waiter_rc, r);
			break;
		}
	}
	if (atomic_load(&word) != 0)
		atomic_store(&waiter_rc, 0);
	atomic_store(&waiter_done, 1);
	return NULL;
}

Test(futex, wait_parks_the_uthread_until_a_wake, .timeout = 20)
{
	sa_uthread_t w, t;

	start_ring();
	w = h_spawn(waiter, NULL);
	t = h_spawn(ticker, NULL);
	while (atomic_load(&ticks) < 50)
		SA_OK(sa_sleep_ns(NSEC_PER_MSEC));
	cr_assert_eq(atomic_load(&waiter_done), 0, "the waiter returned without a wake");
	atomic_store(&word, 1);
	wake_word();
	h_join(w);
	h_join(t);
	cr_assert_eq(atomic_load(&waiter_rc), 0);
}

static void *wake_from_pthread(void *arg)
{
	(void)arg;
	h_os_sleep_ns(20 * NSEC_PER_MSEC);
	atomic_store(&word, 1);
	wake_word();
	return NULL;
}

Test(futex, wait_woken_by_a_plain_thread, .timeout = 20)
{
	pthread_t p;
	sa_uthread_t w;

	start_ring();
	w = h_spawn(waiter, NULL);
	p = h_pthread(wake_from_pthread, NULL);
	h_join(w);
	h_pthread_join(p);
	cr_assert_eq(atomic_load(&waiter_rc), 0);
}

Test(futex, word_not_holding_the_value_returns_at_once, .timeout = 10)
{
	start_ring();
	atomic_store(&word, 7);
	SA_OK(io_futex_wait(&word, 0, true, DEADLINE_NONE));
}

Test(futex, deadline_times_out, .timeout = 10)
{
	uint64_t t0;

	start_ring();
	t0 = h_mono();
	SA_ERR(io_futex_wait(&word, 0, true, h_mono() + 20 * NSEC_PER_MSEC), -ETIMEDOUT);
	cr_assert_geq(h_mono() - t0, 20 * NSEC_PER_MSEC);
}

Test(futex, past_deadline_times_out_at_once, .timeout = 10)
{
	start_ring();
	SA_ERR(io_futex_wait(&word, 0, true, h_mono() - 1), -ETIMEDOUT);
}

Test(futex, shared_word_waits_too, .timeout = 10)
{
	start_ring();
	SA_ERR(io_futex_wait(&word, 0, false, h_mono() + 5 * NSEC_PER_MSEC), -ETIMEDOUT);
	atomic_store(&word, 3);
	SA_OK(io_futex_wait(&word, 0, false, DEADLINE_NONE));
}

static void *wait_unsupported(void *arg)
{
	(void)arg;
	UT_CHECK_EQ(io_futex_wait(&word, 0, true, DEADLINE_NONE), -EOPNOTSUPP);
	return NULL;
}

Test(futex, plain_thread_eopnotsupp, .timeout = 10)
{
	h_start(1);
	h_pthread_join(h_pthread(wait_unsupported, NULL));
	assert_no_ut_failures();
}

Test(futex, thread_pool_backend_eopnotsupp, .timeout = 10)
{
	setenv("SA_IO", "threads", 1);
	h_start_env("1");
	SA_ERR(io_futex_wait(&word, 0, true, DEADLINE_NONE), -EOPNOTSUPP);
}
