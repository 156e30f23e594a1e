/* pt_intr.c - pthread_kill() and pthread_cancel() cut a sleep, a condition,
 * semaphore or join wait short at once, and run a handler in a lock or
 * barrier wait, which goes on, as under NPTL; one case per run */

/*
 * Usage: pt_intr CASE.  Each case starts a thread that waits far longer
 * than the test may take (WAIT_S), lets it block, then signals or cancels
 * it and checks that the wait ended within a generous bound (BOUND_S), so
 * a loaded machine does not fail it while a wait that runs its course
 * always does.  The handler has no SA_RESTART unless the case says so.
 */

#include <errno.h>
#include <semaphore.h>
#include <signal.h>
#include <string.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "pt.h"

#define WAIT_S 30   /* what each wait asks for */
#define BOUND_S 10  /* how long an interrupted one may take, at most */

static atomic_int handled;
static _Atomic(pthread_t) handled_on;
static atomic_int ready;     /* the thread is about to wait */
static atomic_int cleaned;   /* its cleanup handler ran */
static atomic_int release;   /* let a waiting thread go */

static pthread_mutex_t mtx;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static sem_t sem;

static void on_sig(int sig)
{
	(void)sig;
	atomic_store(&handled_on, pthread_self());
	atomic_fetch_add(&handled, 1);
}

static void set_handler_of(int sig, int flags)
{
	struct sigaction sa = { .sa_handler = on_sig, .sa_flags = flags };

	sigemptyset(&sa.sa_mask);
	PT_OK(sigaction(sig, &sa, NULL));
}

static void set_handler(int flags)
{
	set_handler_of(SIGUSR1, flags);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct timespec abs_in(clockid_t clk, int s)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	ts.tv_sec += s;
	return ts;
}

/* The result a waiting thread leaves for main. */
static struct {
	int ret, err;
	double took;
	struct timespec rem;
	unsigned left;
} res;

/* start - run @fn on a new thread and let it block in its wait. */
static pthread_t start(void *(*fn)(void *))
{
	pthread_t t;

	atomic_store(&ready, 0);
	PT_OK(pthread_create(&t, NULL, fn, NULL));
	while (!atomic_load(&ready))
		usleep(1000);
	usleep(50000); /* from "about to" to blocked */
	return t;
}

/*
 * kill_until - signal @t until *@flag is set.  A signal that lands just
 * before the thread enters its wait runs the handler there and leaves the
 * wait to run on (under NPTL as here): the next one, a little later, is
 * the one the test is about.  On an idle machine the first one is.
 */
static void kill_until(pthread_t t, atomic_int *flag)
{
	double t0 = now_s();

	while (!atomic_load(flag) && now_s() - t0 < BOUND_S) {
		PT_OK(pthread_kill(t, SIGUSR1));
		for (int i = 0; i < 50 && !atomic_load(flag); i++)
			usleep(1000);
	}
	PT_CHECK(atomic_load(flag));
}

static atomic_int done; /* the waiting thread's call returned */

/* kill_and_join - signal @t until its wait ends, join it; the handler
 * ran on @t, and the wait ended early. */
static void kill_and_join(pthread_t t)
{
	kill_until(t, &done);
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(atomic_load(&handled) >= 1);
	PT_CHECK(pthread_equal(atomic_load(&handled_on), t));
	PT_CHECK(res.took < BOUND_S);
}

/* cancel_and_join - cancel @t, join it: cancelled, cleanup ran, at once. */
static void cancel_and_join(pthread_t t)
{
	double t0 = now_s();
	void *v = NULL;

	PT_OK(pthread_cancel(t));
	PT_OK(pthread_join(t, &v));
	PT_CHECK(v == PTHREAD_CANCELED);
	PT_CHECK(atomic_load(&cleaned) == 1);
	PT_CHECK(now_s() - t0 < BOUND_S);
}

static void cleanup(void *arg)
{
	(void)arg;
	atomic_fetch_add(&cleaned, 1);
}

/* ------------------------------------------------------------------------
 * Sleeps: EINTR after any handler, nanosleep with the time left
 */

static void *nanosleeper(void *arg)
{
	struct timespec req = { .tv_sec = WAIT_S };
	double t0;

	(void)arg;
	atomic_store(&ready, 1);
	t0 = now_s();
	res.ret = nanosleep(&req, &res.rem);
	res.err = errno;
	res.took = now_s() - t0;
	atomic_store(&done, 1);
	return NULL;
}

static void kill_nanosleep(int flags)
{
	set_handler(flags);
	kill_and_join(start(nanosleeper));
	PT_CHECK(res.ret == -1 && res.err == EINTR);
	/* The time left: what was asked less what was slept. */
	PT_CHECK(res.rem.tv_sec >= WAIT_S - BOUND_S && res.rem.tv_sec < WAIT_S);
}

static void *clock_nanosleeper(void *arg)
{
	struct timespec req = abs_in(CLOCK_MONOTONIC, WAIT_S);
	double t0;

	(void)arg;
	atomic_store(&ready, 1);
	t0 = now_s();
	res.ret = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &req, NULL);
	res.took = now_s() - t0;
	atomic_store(&done, 1);
	return NULL;
}

static void *usleeper(void *arg)
{
	double t0;

	(void)arg;
	atomic_store(&ready, 1);
	t0 = now_s();
	res.ret = usleep(WAIT_S * 1000000u - 1);
	res.err = errno;
	res.took = now_s() - t0;
	atomic_store(&done, 1);
	return NULL;
}

static void *sleeper(void *arg)
{
	double t0;

	(void)arg;
	atomic_store(&ready, 1);
	t0 = now_s();
	res.left = sleep(WAIT_S);
	res.took = now_s() - t0;
	atomic_store(&done, 1);
	return NULL;
}

static void *cancel_sleeper(void *arg)
{
	struct timespec req = { .tv_sec = WAIT_S };

	(void)arg;
	pthread_cleanup_push(cleanup, NULL);
	atomic_store(&ready, 1);
	nanosleep(&req, NULL);
	pthread_cleanup_pop(0);
	return NULL;
}

/* Cancellation disabled: a cancel does not cut the sleep short, and it is
 * acted on when enabled again. */
static void *disabled_sleeper(void *arg)
{
	struct timespec req = { .tv_nsec = 300000000 };
	double t0;

	(void)arg;
	pthread_cleanup_push(cleanup, NULL);
	PT_OK(pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL));
	atomic_store(&ready, 1);
	t0 = now_s();
	res.ret = nanosleep(&req, NULL);
	res.took = now_s() - t0;
	PT_OK(pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL));
	pthread_testcancel();
	pthread_cleanup_pop(0);
	return NULL;
}

/* A blocked signal does not cut the sleep short; it runs when unblocked. */
static void *masked_sleeper(void *arg)
{
	struct timespec req = { .tv_nsec = 300000000 };
	sigset_t s;
	double t0;

	(void)arg;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	PT_OK(pthread_sigmask(SIG_BLOCK, &s, NULL));
	atomic_store(&ready, 1);
	t0 = now_s();
	res.ret = nanosleep(&req, NULL);
	res.took = now_s() - t0;
	while (!atomic_load(&release)) /* main has sent it */
		usleep(1000);
	res.err = atomic_load(&handled); /* before unblocking */
	PT_OK(pthread_sigmask(SIG_UNBLOCK, &s, NULL));
	return NULL;
}

/* ------------------------------------------------------------------------
 * Condition waits: the handler runs at once, the wait returns 0 (a
 * spurious wakeup) or goes on; a cancel acts with the mutex held.
 */

static void *cond_waiter(void *arg)
{
	int timed = arg != NULL;

	PT_OK(pthread_mutex_lock(&mtx));
	atomic_store(&ready, 1);
	while (!atomic_load(&release)) {
		if (timed) {
			struct timespec abs = abs_in(CLOCK_REALTIME, WAIT_S);

			res.ret = pthread_cond_timedwait(&cond, &mtx, &abs);
		} else {
			res.ret = pthread_cond_wait(&cond, &mtx);
		}
		if (res.ret)
			break;
	}
	/* The mutex is ours again (error-checking: EPERM otherwise). */
	res.err = pthread_mutex_unlock(&mtx);
	return NULL;
}

static void *cond_timed_waiter(void *arg)
{
	(void)arg;
	return cond_waiter((void *)1);
}

static void kill_cond(void *(*fn)(void *))
{
	pthread_t t;

	set_handler(0);
	t = start(fn);
	kill_until(t, &handled); /* while the thread waits */
	PT_CHECK(pthread_equal(atomic_load(&handled_on), t));
	PT_OK(pthread_mutex_lock(&mtx));
	atomic_store(&release, 1);
	PT_OK(pthread_cond_signal(&cond));
	PT_OK(pthread_mutex_unlock(&mtx));
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(res.ret == 0 && res.err == 0);
}

static void cancel_cond_cleanup(void *arg)
{
	(void)arg;
	/* Run with the mutex held again: unlocking it succeeds. */
	res.err = pthread_mutex_unlock(&mtx);
	atomic_fetch_add(&cleaned, 1);
}

static void *cancel_cond_waiter(void *arg)
{
	(void)arg;
	PT_OK(pthread_mutex_lock(&mtx));
	pthread_cleanup_push(cancel_cond_cleanup, NULL);
	atomic_store(&ready, 1);
	while (!atomic_load(&release))
		pthread_cond_wait(&cond, &mtx);
	pthread_cleanup_pop(1);
	return NULL;
}

/* ------------------------------------------------------------------------
 * Semaphores
 */

static void *sem_waiter(void *arg)
{
	double t0;

	atomic_store(&ready, 1);
	t0 = now_s();
	if (arg) {
		struct timespec abs = abs_in(CLOCK_REALTIME, WAIT_S);

		res.ret = sem_timedwait(&sem, &abs);
	} else {
		res.ret = sem_wait(&sem);
	}
	res.err = errno;
	res.took = now_s() - t0;
	atomic_store(&done, 1);
	return NULL;
}

static void *sem_timed_waiter(void *arg)
{
	(void)arg;
	return sem_waiter((void *)1);
}

static void *cancel_sem_waiter(void *arg)
{
	(void)arg;
	pthread_cleanup_push(cleanup, NULL);
	atomic_store(&ready, 1);
	sem_wait(&sem);
	pthread_cleanup_pop(0);
	return NULL;
}

/* ------------------------------------------------------------------------
 * Joins: the handler runs while the join waits, which then goes on; a
 * cancelled joiner leaves its target joinable.
 */

static void *held(void *arg)
{
	(void)arg;
	while (!atomic_load(&release))
		usleep(1000);
	return (void *)42;
}

static pthread_t target;

static void *joiner(void *arg)
{
	void *v = NULL;

	(void)arg;
	atomic_store(&ready, 1);
	res.ret = pthread_join(target, &v);
	res.err = v == (void *)42;
	return NULL;
}

static void *cancel_joiner(void *arg)
{
	(void)arg;
	pthread_cleanup_push(cleanup, NULL);
	atomic_store(&ready, 1);
	pthread_join(target, NULL);
	pthread_cleanup_pop(0);
	return NULL;
}

/* ------------------------------------------------------------------------
 * I/O waits (also on the thread-pool fallback, SA_IO=threads): EINTR
 * after a handler without SA_RESTART, poll after any; a cancel acts.
 */

static int pfd[2] = { -1, -1 };
enum io_kind { IO_READ, IO_POLL, IO_RECV, IO_SELECT, IO_EPOLL };

static void *io_waiter(void *arg)
{
	enum io_kind k = (enum io_kind)(long)arg;
	struct pollfd p = { .fd = pfd[0], .events = POLLIN };
	char buf[8];
	double t0;

	atomic_store(&ready, 1);
	t0 = now_s();
	switch (k) {
	case IO_READ: res.ret = (int)read(pfd[0], buf, sizeof(buf)); break;
	case IO_POLL: res.ret = poll(&p, 1, WAIT_S * 1000); break;
	case IO_RECV: res.ret = (int)recv(pfd[0], buf, sizeof(buf), 0); break;
	case IO_SELECT: {
		fd_set rd;
		struct timeval tv = { WAIT_S, 0 };

		FD_ZERO(&rd);
		FD_SET(pfd[0], &rd);
		res.ret = select(pfd[0] + 1, &rd, NULL, NULL, &tv);
		break;
	}
	case IO_EPOLL: {
		struct epoll_event e = { .events = EPOLLIN }, got;
		int ep = epoll_create1(EPOLL_CLOEXEC);

		PT_CHECK(ep >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, pfd[0], &e) == 0);
		res.ret = epoll_wait(ep, &got, 1, WAIT_S * 1000);
		res.err = errno;
		close(ep);
		errno = res.err;
		break;
	}
	}
	res.err = errno;
	res.took = now_s() - t0;
	atomic_store(&done, 1);
	return NULL;
}

static void *cancel_io_waiter(void *arg)
{
	char buf[8];

	(void)arg;
	pthread_cleanup_push(cleanup, NULL);
	atomic_store(&ready, 1);
	res.ret = (int)read(pfd[0], buf, sizeof(buf));
	pthread_cleanup_pop(0);
	return NULL;
}

static void kill_io(enum io_kind k, int flags)
{
	pthread_t t;

	if (k == IO_RECV)
		PT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, pfd));
	else
		PT_OK(pipe(pfd));
	set_handler(flags);
	atomic_store(&ready, 0);
	PT_OK(pthread_create(&t, NULL, io_waiter, (void *)(long)k));
	while (!atomic_load(&ready))
		usleep(1000);
	usleep(50000); /* from "about to" to blocked */
	/* poll, select and epoll_wait are never restarted (signal(7)). */
	if (!(flags & SA_RESTART) || k == IO_POLL || k == IO_SELECT || k == IO_EPOLL) {
		kill_and_join(t);
		PT_CHECK(res.ret == -1 && res.err == EINTR);
		return;
	}
	/* SA_RESTART: the handler runs, the call goes on and reads what comes. */
	kill_until(t, &handled);
	PT_CHECK(pthread_equal(atomic_load(&handled_on), t));
	usleep(20000);
	PT_CHECK(!atomic_load(&done));
	PT_CHECK(write(pfd[1], "late", 4) == 4);
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(res.ret == 4);
}

static bool io_cases(const char *c)
{
	if (!strcmp(c, "kill_read_pipe")) {
		kill_io(IO_READ, 0);
	} else if (!strcmp(c, "kill_read_pipe_sa_restart")) {
		kill_io(IO_READ, SA_RESTART);
	} else if (!strcmp(c, "kill_poll")) {
		kill_io(IO_POLL, 0);
	} else if (!strcmp(c, "kill_poll_sa_restart")) {
		kill_io(IO_POLL, SA_RESTART);
	} else if (!strcmp(c, "kill_select_sa_restart")) {
		kill_io(IO_SELECT, SA_RESTART);
	} else if (!strcmp(c, "kill_epoll_wait_sa_restart")) {
		kill_io(IO_EPOLL, SA_RESTART);
	} else if (!strcmp(c, "kill_recv_socket")) {
		kill_io(IO_RECV, 0);
	} else if (!strcmp(c, "cancel_read_pipe")) {
		PT_OK(pipe(pfd));
		cancel_and_join(start(cancel_io_waiter));
	} else {
		return false;
	}
	return true;
}

/* ------------------------------------------------------------------------
 * Mutex, rwlock and barrier waits: the handler runs while the thread
 * waits (main, which holds the object, waits for it before it lets go),
 * then the wait goes on and takes the object (POSIX: never EINTR).
 */

enum lock_kind { L_MUTEX, L_MUTEX_TIMED, L_RDLOCK, L_WRLOCK, L_TIMEDRDLOCK, L_TIMEDWRLOCK };

static pthread_mutex_t lmtx;
static pthread_rwlock_t rwl = PTHREAD_RWLOCK_INITIALIZER;
static pthread_barrier_t bar;

static void *locker(void *arg)
{
	enum lock_kind k = (enum lock_kind)(long)arg;
	struct timespec abs = abs_in(CLOCK_REALTIME, WAIT_S);
	double t0;

	atomic_store(&ready, 1);
	t0 = now_s();
	switch (k) {
	case L_MUTEX: res.ret = pthread_mutex_lock(&lmtx); break;
	case L_MUTEX_TIMED: res.ret = pthread_mutex_timedlock(&lmtx, &abs); break;
	case L_RDLOCK: res.ret = pthread_rwlock_rdlock(&rwl); break;
	case L_WRLOCK: res.ret = pthread_rwlock_wrlock(&rwl); break;
	case L_TIMEDRDLOCK: res.ret = pthread_rwlock_timedrdlock(&rwl, &abs); break;
	case L_TIMEDWRLOCK: res.ret = pthread_rwlock_timedwrlock(&rwl, &abs); break;
	}
	res.took = now_s() - t0;
	atomic_store(&done, 1);
	if (res.ret == 0) /* it is ours: letting go succeeds */
		res.err = k <= L_MUTEX_TIMED ? pthread_mutex_unlock(&lmtx) : pthread_rwlock_unlock(&rwl);
	return NULL;
}

static void mutex_of_type(int type)
{
	pthread_mutexattr_t a;

	PT_OK(pthread_mutexattr_init(&a));
	PT_OK(pthread_mutexattr_settype(&a, type));
	PT_OK(pthread_mutex_init(&lmtx, &a));
	PT_OK(pthread_mutexattr_destroy(&a));
}

/* kill_lock_wait - main holds the object, a thread waits for it (@k);
 * signal it until its handler ran, then let go: the wait took it. */
static void kill_lock_wait(enum lock_kind k)
{
	pthread_t t;

	set_handler(0);
	if (k <= L_MUTEX_TIMED)
		PT_OK(pthread_mutex_lock(&lmtx));
	else if (k == L_RDLOCK || k == L_TIMEDRDLOCK)
		PT_OK(pthread_rwlock_wrlock(&rwl));
	else
		PT_OK(pthread_rwlock_rdlock(&rwl));
	PT_OK(pthread_create(&t, NULL, locker, (void *)(long)k));
	while (!atomic_load(&ready))
		usleep(1000);
	usleep(50000); /* from "about to" to blocked */
	kill_until(t, &handled); /* while it waits */
	PT_CHECK(pthread_equal(atomic_load(&handled_on), t));
	usleep(20000);
	PT_CHECK(!atomic_load(&done)); /* the handler did not end the wait */
	if (k <= L_MUTEX_TIMED)
		PT_OK(pthread_mutex_unlock(&lmtx));
	else
		PT_OK(pthread_rwlock_unlock(&rwl));
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(res.ret == 0 && res.err == 0);
	PT_CHECK(res.took < WAIT_S);
}

static void *bar_waiter(void *arg)
{
	(void)arg;
	atomic_store(&ready, 1);
	res.ret = pthread_barrier_wait(&bar);
	atomic_store(&done, 1);
	return NULL;
}

/* A lock wait is no cancellation point: a cancel waits for the next one. */
static void *cancel_locker(void *arg)
{
	(void)arg;
	pthread_cleanup_push(cleanup, NULL);
	atomic_store(&ready, 1);
	res.ret = pthread_mutex_lock(&lmtx);
	atomic_store(&done, 1);
	res.err = pthread_mutex_unlock(&lmtx);
	pthread_testcancel();
	pthread_cleanup_pop(0);
	return NULL;
}

static void mutex_cases(const char *c)
{
	if (!strcmp(c, "kill_mutex_lock")) {
		mutex_of_type(PTHREAD_MUTEX_NORMAL);
		kill_lock_wait(L_MUTEX);
	} else if (!strcmp(c, "kill_mutex_lock_recursive")) {
		mutex_of_type(PTHREAD_MUTEX_RECURSIVE);
		kill_lock_wait(L_MUTEX);
	} else if (!strcmp(c, "kill_mutex_lock_errorcheck")) {
		mutex_of_type(PTHREAD_MUTEX_ERRORCHECK);
		kill_lock_wait(L_MUTEX);
	} else if (!strcmp(c, "kill_mutex_timedlock")) {
		mutex_of_type(PTHREAD_MUTEX_NORMAL);
		kill_lock_wait(L_MUTEX_TIMED);
	} else if (!strcmp(c, "kill_rwlock_rdlock")) {
		kill_lock_wait(L_RDLOCK);
	} else if (!strcmp(c, "kill_rwlock_wrlock")) {
		kill_lock_wait(L_WRLOCK);
	} else if (!strcmp(c, "kill_rwlock_timedrdlock")) {
		kill_lock_wait(L_TIMEDRDLOCK);
	} else if (!strcmp(c, "kill_rwlock_timedwrlock")) {
		kill_lock_wait(L_TIMEDWRLOCK);
	} else if (!strcmp(c, "kill_barrier_wait")) {
		pthread_t t;
		int mine;

		set_handler(0);
		PT_OK(pthread_barrier_init(&bar, NULL, 2));
		t = start(bar_waiter);
		kill_until(t, &handled); /* while it waits */
		PT_CHECK(pthread_equal(atomic_load(&handled_on), t));
		usleep(20000);
		PT_CHECK(!atomic_load(&done)); /* it waits on */
		mine = pthread_barrier_wait(&bar);
		PT_OK(pthread_join(t, NULL));
		/* Both passed, one of them the serial thread. */
		PT_CHECK((mine == PTHREAD_BARRIER_SERIAL_THREAD && res.ret == 0) ||
			 (mine == 0 && res.ret == PTHREAD_BARRIER_SERIAL_THREAD));
		PT_OK(pthread_barrier_destroy(&bar));
	} else if (!strcmp(c, "cancel_mutex_lock_waits_for_a_cancellation_point")) {
		pthread_t t;
		void *v = NULL;

		mutex_of_type(PTHREAD_MUTEX_ERRORCHECK);
		PT_OK(pthread_mutex_lock(&lmtx));
		t = start(cancel_locker);
		PT_OK(pthread_cancel(t));
		usleep(100000);
		PT_CHECK(!atomic_load(&done) && atomic_load(&cleaned) == 0);
		PT_OK(pthread_mutex_unlock(&lmtx));
		PT_OK(pthread_join(t, &v));
		PT_CHECK(v == PTHREAD_CANCELED);
		PT_CHECK(atomic_load(&done) && res.ret == 0 && res.err == 0);
		PT_CHECK(atomic_load(&cleaned) == 1);
	} else {
		fprintf(stderr, "pt_intr: no case %s\n", c);
		exit(2);
	}
}

/* ------------------------------------------------------------------------
 * Signals sent to the process: the kernel gives one to a thread that does
 * not block it, even when every thread sleeps or waits; that thread's
 * wait ends as a signal ends it.  Main blocks the signal, and so do the
 * threads it makes, but for the one that unblocks it.
 */

static int proc_sig = SIGUSR1;
static atomic_int proc_mode; /* 0: nanosleep, 1: sem_timedwait, 2: read */

static void block_proc_sig(int how)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, proc_sig);
	PT_OK(pthread_sigmask(how, &s, NULL));
}

/* The thread that takes the signal: it unblocks it and waits. */
static void *proc_taker(void *arg)
{
	struct timespec req = { .tv_sec = WAIT_S };
	struct timespec abs = abs_in(CLOCK_REALTIME, WAIT_S);
	double t0;

	(void)arg;
	block_proc_sig(SIG_UNBLOCK);
	atomic_store(&ready, 1);
	t0 = now_s();
	if (atomic_load(&proc_mode) == 0) {
		res.ret = nanosleep(&req, NULL);
	} else if (atomic_load(&proc_mode) == 1) {
		res.ret = sem_timedwait(&sem, &abs);
	} else {
		char buf[8];

		res.ret = (int)read(pfd[0], buf, sizeof(buf));
	}
	res.err = errno;
	res.took = now_s() - t0;
	atomic_store(&done, 1);
	return NULL;
}

static void *proc_sender(void *arg)
{
	(void)arg;
	usleep(100000); /* main is in its join by then */
	PT_OK(kill(getpid(), proc_sig));
	return NULL;
}

/*
 * proc_case - the taker waits, a blocker sleeps; @send sends the signal
 * to the process while main waits (in a join).  The handler ran once, on
 * the taker, whose wait ended with EINTR; the blocker slept on.
 */
static void proc_case(int sig, int mode, void (*send)(void))
{
	pthread_t taker, blocker, sender;
	void *v = NULL;

	proc_sig = sig;
	atomic_store(&proc_mode, mode);
	set_handler_of(sig, 0);
	block_proc_sig(SIG_BLOCK);
	/* It inherits the mask that blocks the signal, and sleeps until
	 * cancelled. */
	blocker = start(cancel_sleeper);
	taker = start(proc_taker);
	send();
	PT_OK(pthread_join(taker, NULL));
	PT_CHECK(atomic_load(&handled) == 1);
	PT_CHECK(pthread_equal(atomic_load(&handled_on), taker));
	PT_CHECK(res.ret == -1 && res.err == EINTR);
	PT_CHECK(res.took < BOUND_S);
	PT_CHECK(atomic_load(&cleaned) == 0); /* the blocker sleeps on */
	PT_OK(pthread_cancel(blocker));
	PT_OK(pthread_join(blocker, &v));
	PT_CHECK(v == PTHREAD_CANCELED);
	(void)sender;
}

static void send_from_main(void)
{
	PT_OK(kill(getpid(), proc_sig));
}

static void send_from_thread(void)
{
	pthread_t t;

	PT_OK(pthread_create(&t, NULL, proc_sender, NULL));
	PT_OK(pthread_detach(t));
}

static void send_alarm(void)
{
	alarm(1);
}

static void send_itimer(void)
{
	struct itimerval it = { .it_value = { .tv_usec = 200000 } };

	PT_OK(setitimer(ITIMER_REAL, &it, NULL));
}

/* The unblocker: waits until main has sent the signal, then unblocks it. */
static void *late_unblocker(void *arg)
{
	(void)arg;
	atomic_store(&ready, 1);
	while (!atomic_load(&release))
		usleep(1000);
	res.err = atomic_load(&handled); /* none ran while all blocked it */
	block_proc_sig(SIG_UNBLOCK);
	res.ret = atomic_load(&handled); /* it ran on unblocking */
	return NULL;
}

static bool proc_cases(const char *c)
{
	if (!strcmp(c, "proc_kill_nanosleep")) {
		proc_case(SIGUSR1, 0, send_from_main);
	} else if (!strcmp(c, "proc_kill_from_thread_sem_timedwait")) {
		proc_case(SIGUSR1, 1, send_from_thread);
	} else if (!strcmp(c, "proc_kill_from_thread_nanosleep")) {
		proc_case(SIGUSR1, 0, send_from_thread);
	} else if (!strcmp(c, "proc_kill_read_pipe")) {
		PT_OK(pipe(pfd));
		proc_case(SIGUSR1, 2, send_from_main);
	} else if (!strcmp(c, "proc_alarm_nanosleep")) {
		proc_case(SIGALRM, 0, send_alarm);
	} else if (!strcmp(c, "proc_setitimer_sem_timedwait")) {
		proc_case(SIGALRM, 1, send_itimer);
	} else if (!strcmp(c, "proc_kill_all_block_pending_until_unblocked")) {
		pthread_t t;

		set_handler(0);
		block_proc_sig(SIG_BLOCK);
		t = start(late_unblocker);
		PT_OK(kill(getpid(), SIGUSR1));
		usleep(100000);
		atomic_store(&release, 1);
		PT_OK(pthread_join(t, NULL));
		PT_CHECK(res.err == 0 && res.ret == 1);
		PT_CHECK(pthread_equal(atomic_load(&handled_on), t));
	} else {
		return false;
	}
	return true;
}

/* ------------------------------------------------------------------------
 * Masks of many threads on few kernel threads: a signal sent to the
 * process goes to a thread that does not block it, or stays pending for
 * the process while every thread blocks it, whatever the other threads do
 * with their own masks meanwhile.
 */

#define MASKERS 8

static atomic_int got_n;        /* values the RT handler saw */
static int got_val[8];

/* A thread that keeps blocking SIGUSR1 and napping until released: its
 * mask calls must not hold the signal back from the thread that takes it. */
static void *masker(void *arg)
{
	sigset_t s;

	(void)arg;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	while (!atomic_load(&release)) {
		PT_OK(pthread_sigmask(SIG_BLOCK, &s, NULL));
		usleep(1000);
	}
	return NULL;
}

static void start_maskers(pthread_t *t)
{
	for (int i = 0; i < MASKERS; i++)
		PT_OK(pthread_create(&t[i], NULL, masker, NULL));
}

static void join_maskers(pthread_t *t)
{
	atomic_store(&release, 1);
	for (int i = 0; i < MASKERS; i++)
		PT_OK(pthread_join(t[i], NULL));
}

static void one_taker_among_maskers(void)
{
	pthread_t m[MASKERS], taker;

	set_handler(0);
	block_proc_sig(SIG_BLOCK);
	start_maskers(m);
	taker = start(proc_taker); /* unblocks it, sleeps */
	usleep(50000);             /* the maskers block it again meanwhile */
	PT_OK(kill(getpid(), SIGUSR1));
	PT_OK(pthread_join(taker, NULL));
	PT_CHECK(atomic_load(&handled) == 1);
	PT_CHECK(pthread_equal(atomic_load(&handled_on), taker));
	PT_CHECK(res.ret == -1 && res.err == EINTR);
	PT_CHECK(res.took < BOUND_S);
	join_maskers(m);
}

/* The sigwait() thread: main blocks the signal before it makes threads,
 * one thread takes it with sigwait(), no handler runs anywhere. */
static void *sigwaiter(void *arg)
{
	sigset_t s;
	int sig = 0;

	(void)arg;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	atomic_store(&ready, 1);
	res.ret = sigwait(&s, &sig);
	res.err = sig;
	atomic_store(&done, 1);
	return NULL;
}

static void *sigwaitinfo_waiter(void *arg)
{
	sigset_t s;
	siginfo_t si;

	(void)arg;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	atomic_store(&ready, 1);
	res.ret = sigwaitinfo(&s, &si);
	res.err = res.ret < 0 ? errno : 0;
	res.left = res.ret > 0 ? (unsigned)si.si_value.sival_int : 0;
	atomic_store(&done, 1);
	return NULL;
}

/* wait_done - main waits for the thread's call to return, at most BOUND_S. */
static void wait_done(void)
{
	double t0 = now_s();

	while (!atomic_load(&done) && now_s() - t0 < BOUND_S)
		usleep(1000);
	PT_CHECK(atomic_load(&done));
}

static void sigwait_thread(void)
{
	pthread_t m[MASKERS], t;

	set_handler(0); /* it must not run: every thread blocks the signal */
	block_proc_sig(SIG_BLOCK);
	start_maskers(m);
	t = start(sigwaiter);
	PT_OK(kill(getpid(), SIGUSR1));
	wait_done();
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(res.ret == 0 && res.err == SIGUSR1);
	PT_CHECK(atomic_load(&handled) == 0);
	join_maskers(m);
}

static void sigwaitinfo_value(void)
{
	pthread_t t;

	set_handler(0);
	block_proc_sig(SIG_BLOCK);
	t = start(sigwaitinfo_waiter);
	PT_OK(sigqueue(getpid(), SIGUSR1, (union sigval){ .sival_int = 42 }));
	wait_done();
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(res.ret == SIGUSR1 && res.left == 42);
	PT_CHECK(atomic_load(&handled) == 0);
}

static void *sigtimedwaiter(void *arg)
{
	struct timespec ts = { .tv_nsec = 200000000 };
	sigset_t s;
	double t0;

	(void)arg;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR2);
	atomic_store(&ready, 1);
	t0 = now_s();
	res.ret = sigtimedwait(&s, NULL, &ts);
	res.err = errno;
	res.took = now_s() - t0;
	atomic_store(&done, 1);
	return NULL;
}

/* Nothing comes: EAGAIN after the time asked, and the other threads ran. */
static void sigtimedwait_times_out(void)
{
	pthread_t t;
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGUSR2);
	PT_OK(pthread_sigmask(SIG_BLOCK, &s, NULL));
	t = start(sigtimedwaiter);
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(res.ret == -1 && res.err == EAGAIN);
	PT_CHECK(res.took >= 0.15 && res.took < BOUND_S);
}

/* sigsuspend(): the thread waits with the signal unblocked, the handler
 * runs on it, the call fails with EINTR and the mask is back. */
static void *suspender(void *arg)
{
	sigset_t none, cur;

	(void)arg;
	sigemptyset(&none);
	atomic_store(&ready, 1);
	res.ret = sigsuspend(&none);
	res.err = errno;
	PT_OK(pthread_sigmask(SIG_BLOCK, NULL, &cur));
	res.left = (unsigned)sigismember(&cur, SIGUSR1);
	atomic_store(&done, 1);
	return NULL;
}

static void sigsuspend_thread(void)
{
	pthread_t m[MASKERS], t;

	set_handler(0);
	block_proc_sig(SIG_BLOCK);
	start_maskers(m);
	t = start(suspender);
	PT_OK(kill(getpid(), SIGUSR1));
	wait_done();
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(res.ret == -1 && res.err == EINTR);
	PT_CHECK(res.left == 1); /* blocked again */
	PT_CHECK(atomic_load(&handled) == 1);
	PT_CHECK(pthread_equal(atomic_load(&handled_on), t));
	join_maskers(m);
}

/* The signalfd thread: main blocks the signal before it makes threads,
 * one thread reads it from a signalfd. */
static void *sfd_reader(void *arg)
{
	struct signalfd_siginfo ssi;
	sigset_t s;
	int fd;

	(void)arg;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	fd = signalfd(-1, &s, SFD_CLOEXEC);
	PT_CHECK(fd >= 0);
	atomic_store(&ready, 1);
	res.ret = (int)read(fd, &ssi, sizeof(ssi));
	res.err = (int)ssi.ssi_signo;
	close(fd);
	atomic_store(&done, 1);
	return NULL;
}

static void signalfd_thread(void)
{
	pthread_t m[MASKERS], t;

	set_handler(0);
	block_proc_sig(SIG_BLOCK);
	start_maskers(m);
	t = start(sfd_reader);
	PT_OK(kill(getpid(), SIGUSR1));
	wait_done();
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(res.ret == (int)sizeof(struct signalfd_siginfo) && res.err == SIGUSR1);
	PT_CHECK(atomic_load(&handled) == 0);
	join_maskers(m);
}

/* A thread unblocks the signal and ends; every thread left blocks it: a
 * signal sent now is pending for the process, sigpending() says so in
 * every thread, and it runs where it is unblocked. */
static void *unblock_and_end(void *arg)
{
	(void)arg;
	block_proc_sig(SIG_UNBLOCK);
	return NULL;
}

static void *pending_looker(void *arg)
{
	sigset_t p;

	(void)arg;
	PT_OK(sigpending(&p));
	res.left = (unsigned)sigismember(&p, SIGUSR1);
	return NULL;
}

static void sigpending_blocked_by_all(void)
{
	pthread_t t;
	sigset_t p;

	set_handler(0);
	block_proc_sig(SIG_BLOCK);
	PT_OK(pthread_create(&t, NULL, unblock_and_end, NULL));
	PT_OK(pthread_join(t, NULL));
	usleep(20000);
	PT_OK(kill(getpid(), SIGUSR1));
	usleep(50000);
	PT_CHECK(atomic_load(&handled) == 0);
	PT_OK(sigpending(&p));
	PT_CHECK(sigismember(&p, SIGUSR1) == 1);
	PT_OK(pthread_create(&t, NULL, pending_looker, NULL));
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(res.left == 1);
	block_proc_sig(SIG_UNBLOCK);
	PT_CHECK(atomic_load(&handled) == 1);
	PT_CHECK(pthread_equal(atomic_load(&handled_on), pthread_self()));
	PT_OK(sigpending(&p));
	PT_CHECK(sigismember(&p, SIGUSR1) == 0);
}

/* Real-time signals queue: three sigqueue() of SIGRTMIN with their own
 * values reach the one thread that takes it, all three, in order. */
static void on_rt(int sig, siginfo_t *si, void *uc)
{
	int n = atomic_load(&got_n);

	(void)sig;
	(void)uc;
	if (n < 8)
		got_val[n] = si->si_value.sival_int;
	atomic_store(&got_n, n + 1);
}

static void *rt_taker(void *arg)
{
	sigset_t s;
	double t0 = now_s();

	(void)arg;
	sigemptyset(&s);
	sigaddset(&s, SIGRTMIN);
	PT_OK(pthread_sigmask(SIG_UNBLOCK, &s, NULL));
	atomic_store(&ready, 1);
	while (atomic_load(&got_n) < 3 && now_s() - t0 < BOUND_S) {
		struct timespec req = { .tv_nsec = 5000000 };

		nanosleep(&req, NULL);
	}
	atomic_store(&done, 1);
	return NULL;
}

static void sigqueue_rt_in_order(void)
{
	struct sigaction sa = { .sa_sigaction = on_rt, .sa_flags = SA_SIGINFO };
	pthread_t t;
	sigset_t s;

	sigemptyset(&sa.sa_mask);
	PT_OK(sigaction(SIGRTMIN, &sa, NULL));
	sigemptyset(&s);
	sigaddset(&s, SIGRTMIN);
	PT_OK(pthread_sigmask(SIG_BLOCK, &s, NULL));
	t = start(rt_taker);
	for (int i = 1; i <= 3; i++)
		PT_OK(sigqueue(getpid(), SIGRTMIN, (union sigval){ .sival_int = i }));
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(atomic_load(&got_n) == 3);
	PT_CHECK(got_val[0] == 1 && got_val[1] == 2 && got_val[2] == 3);
}

/* pselect() and ppoll() with a mask that lets the signal through: the
 * handler runs on the waiting thread, the call fails with EINTR, and the
 * mask is back. */
static atomic_int masked_kind; /* 0: pselect, 1: ppoll */

static void *masked_waiter(void *arg)
{
	struct timespec ts = { .tv_sec = WAIT_S };
	sigset_t none, cur;
	double t0;
	int p[2];

	(void)arg;
	PT_OK(pipe(p));
	sigemptyset(&none);
	atomic_store(&ready, 1);
	t0 = now_s();
	if (atomic_load(&masked_kind) == 0) {
		fd_set rd;

		FD_ZERO(&rd);
		FD_SET(p[0], &rd);
		res.ret = pselect(p[0] + 1, &rd, NULL, NULL, &ts, &none);
	} else {
		struct pollfd pf = { .fd = p[0], .events = POLLIN };

		res.ret = ppoll(&pf, 1, &ts, &none);
	}
	res.err = errno;
	res.took = now_s() - t0;
	PT_OK(pthread_sigmask(SIG_BLOCK, NULL, &cur));
	res.left = (unsigned)sigismember(&cur, SIGUSR1);
	close(p[0]);
	close(p[1]);
	atomic_store(&done, 1);
	return NULL;
}

static void masked_wait(int kind)
{
	pthread_t m[MASKERS], t;

	atomic_store(&masked_kind, kind);
	set_handler(SA_RESTART); /* these are never restarted */
	block_proc_sig(SIG_BLOCK);
	start_maskers(m);
	t = start(masked_waiter);
	PT_OK(kill(getpid(), SIGUSR1));
	wait_done();
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(res.ret == -1 && res.err == EINTR);
	PT_CHECK(res.took < BOUND_S);
	PT_CHECK(res.left == 1);
	PT_CHECK(atomic_load(&handled) == 1);
	PT_CHECK(pthread_equal(atomic_load(&handled_on), t));
	join_maskers(m);
}

static void pselect_mask(void)
{
	masked_wait(0);
}

static void ppoll_mask(void)
{
	masked_wait(1);
}

/* Threads run before the signal is blocked, and it has no handler: a
 * kernel thread that the threads' library made before the block must not
 * take it (its default action would end the process). */
static void *nothing(void *arg)
{
	return arg;
}

static void sigwait_blocked_late(void)
{
	pthread_t t;

	PT_OK(pthread_create(&t, NULL, nothing, NULL));
	PT_OK(pthread_join(t, NULL));
	usleep(20000);
	block_proc_sig(SIG_BLOCK);
	t = start(sigwaiter);
	PT_OK(kill(getpid(), SIGUSR1));
	wait_done();
	PT_OK(pthread_join(t, NULL));
	PT_CHECK(res.ret == 0 && res.err == SIGUSR1);
}

static bool mask_cases(const char *c)
{
	static const struct {
		const char *name;
		void (*fn)(void);
	} cases[] = {
		{ "proc_one_taker_among_maskers", one_taker_among_maskers },
		{ "proc_sigwait_thread", sigwait_thread },
		{ "proc_sigwaitinfo_value", sigwaitinfo_value },
		{ "proc_sigtimedwait_times_out", sigtimedwait_times_out },
		{ "proc_sigsuspend_thread", sigsuspend_thread },
		{ "proc_signalfd_thread", signalfd_thread },
		{ "proc_sigpending_blocked_by_all", sigpending_blocked_by_all },
		{ "proc_sigqueue_rt_in_order", sigqueue_rt_in_order },
		{ "proc_pselect_mask", pselect_mask },
		{ "proc_sigwait_blocked_late_no_handler", sigwait_blocked_late },
		{ "proc_ppoll_mask", ppoll_mask },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (!strcmp(c, cases[i].name)) {
			cases[i].fn();
			return true;
		}
	}
	return false;
}

/* ------------------------------------------------------------------------
 */

static void run(const char *c)
{
	if (!strcmp(c, "kill_nanosleep")) {
		kill_nanosleep(0);
	} else if (!strcmp(c, "kill_nanosleep_sa_restart")) {
		kill_nanosleep(SA_RESTART); /* sleeps are never restarted */
	} else if (!strcmp(c, "kill_clock_nanosleep_abs")) {
		set_handler(0);
		kill_and_join(start(clock_nanosleeper));
		PT_CHECK(res.ret == EINTR);
	} else if (!strcmp(c, "kill_usleep")) {
		set_handler(0);
		kill_and_join(start(usleeper));
		PT_CHECK(res.ret == -1 && res.err == EINTR);
	} else if (!strcmp(c, "kill_sleep")) {
		set_handler(0);
		kill_and_join(start(sleeper));
		PT_CHECK(res.left > WAIT_S - BOUND_S && res.left <= WAIT_S);
	} else if (!strcmp(c, "kill_blocked_signal_waits_on")) {
		set_handler(0);
		{
			pthread_t t = start(masked_sleeper);

			PT_OK(pthread_kill(t, SIGUSR1));
			atomic_store(&release, 1);
			PT_OK(pthread_join(t, NULL));
		}
		PT_CHECK(res.ret == 0 && res.err == 0 && res.took >= 0.2);
		PT_CHECK(atomic_load(&handled) == 1);
	} else if (!strcmp(c, "kill_cond_wait")) {
		kill_cond(cond_waiter);
	} else if (!strcmp(c, "kill_cond_timedwait")) {
		kill_cond(cond_timed_waiter);
	} else if (!strcmp(c, "kill_sem_wait")) {
		set_handler(0);
		kill_and_join(start(sem_waiter));
		PT_CHECK(res.ret == -1 && res.err == EINTR);
	} else if (!strcmp(c, "kill_sem_timedwait")) {
		set_handler(0);
		kill_and_join(start(sem_timed_waiter));
		PT_CHECK(res.ret == -1 && res.err == EINTR);
	} else if (!strcmp(c, "kill_sem_wait_sa_restart")) {
		/* The handler runs at once; the wait goes on, and takes the
		 * unit posted afterwards. */
		pthread_t t;

		set_handler(SA_RESTART);
		t = start(sem_waiter);
		kill_until(t, &handled);
		PT_CHECK(!atomic_load(&done)); /* still waiting */
		PT_OK(sem_post(&sem));
		PT_OK(pthread_join(t, NULL));
		PT_CHECK(res.ret == 0);
	} else if (!strcmp(c, "kill_join")) {
		pthread_t t;

		set_handler(0);
		PT_OK(pthread_create(&target, NULL, held, NULL));
		t = start(joiner);
		kill_until(t, &handled); /* while it joins */
		PT_CHECK(pthread_equal(atomic_load(&handled_on), t));
		atomic_store(&release, 1);
		PT_OK(pthread_join(t, NULL));
		PT_CHECK(res.ret == 0 && res.err == 1); /* joined, after all */
	} else if (!strcmp(c, "cancel_nanosleep")) {
		cancel_and_join(start(cancel_sleeper));
	} else if (!strcmp(c, "cancel_disabled_sleep_runs_its_course")) {
		pthread_t t = start(disabled_sleeper);
		void *v = NULL;

		PT_OK(pthread_cancel(t));
		PT_OK(pthread_join(t, &v));
		PT_CHECK(v == PTHREAD_CANCELED);
		PT_CHECK(res.ret == 0 && res.took >= 0.2);
		PT_CHECK(atomic_load(&cleaned) == 1);
	} else if (!strcmp(c, "cancel_cond_wait")) {
		cancel_and_join(start(cancel_cond_waiter));
		PT_CHECK(res.err == 0); /* the cleanup found the mutex held */
	} else if (!strcmp(c, "cancel_sem_wait")) {
		cancel_and_join(start(cancel_sem_waiter));
		PT_OK(sem_post(&sem));
		PT_OK(sem_trywait(&sem)); /* the unit was left for others */
	} else if (!strcmp(c, "cancel_join_leaves_target_joinable")) {
		void *v = NULL;

		PT_OK(pthread_create(&target, NULL, held, NULL));
		cancel_and_join(start(cancel_joiner));
		atomic_store(&release, 1);
		PT_OK(pthread_join(target, &v));
		PT_CHECK(v == (void *)42);
	} else if (!proc_cases(c) && !mask_cases(c) && !io_cases(c)) {
		mutex_cases(c);
	}
}

int main(int argc, char **argv)
{
	pthread_mutexattr_t a;

	if (argc != 2) {
		fprintf(stderr, "usage: pt_intr CASE\n");
		return 2;
	}
	pt_alarm(60);
	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
	PT_OK(pthread_mutex_init(&mtx, &a));
	PT_OK(sem_init(&sem, 0, 0));
	run(argv[1]);
	printf("pt_intr %s: %s\n", argv[1], pt_exit_status() ? "FAILED" : "ok");
	return pt_exit_status();
}
