/* thread.c - libsa-preload.so: non-blocking and timed joins, scheduling parameters, affinity */

/*
 * Joins.  pthread_tryjoin_np() asks libsa whether the uthread has ended
 * (ut_join_ready()) and joins it if so.  pthread_timedjoin_np() and
 * pthread_clockjoin_np() look again after sleeps that grow from 20 us to
 * 1 ms, never past the deadline: joining with a time limit is rare and
 * never on a hot path, and a sleeping uthread costs nothing.  They are
 * cancellation points, and pthread_kill() and pthread_cancel() cut their
 * sleeps short.  Errors as glibc's: tryjoin says EBUSY for any
 * thread that still runs; the timed joins say EDEADLK for the caller
 * itself, EINVAL for a detached thread or one another thread joins, for
 * a clock other than CLOCK_MONOTONIC and CLOCK_REALTIME, or for an
 * invalid deadline, and ETIMEDOUT.
 *
 * Scheduling parameters and affinity.  A uthread runs on whichever VP its
 * scheduler picks, so neither a kernel policy nor a CPU set can apply to
 * it.  They are accepted when the kernel would accept them, kept per
 * uthread (struct preload_sched, in the shim's static TLS, reached through
 * the descriptor as the cancellation state is), and reported back by the
 * getters and by pthread_getattr_np(); a thread created with
 * PTHREAD_EXPLICIT_SCHED or pthread_attr_setaffinity_np() starts with
 * them.  Until set, a uthread reports SCHED_OTHER, priority 0, and the
 * process's CPU set.
 */

#define SA_PRELOAD_NO_REDIRECT
#include "preload/shim.h"

#include <sys/resource.h>

__thread struct preload_sched preload_sched_tls __attribute__((tls_model("initial-exec")));

static long sched_off; /* of preload_sched_tls from the descriptor */

static struct {
	int (*tryjoin)(pthread_t, void **);
	int (*timedjoin)(pthread_t, void **, const struct timespec *);
	int (*clockjoin)(pthread_t, void **, clockid_t, const struct timespec *);
	int (*setschedparam)(pthread_t, int, const struct sched_param *);
	int (*getschedparam)(pthread_t, int *, struct sched_param *);
	int (*setschedprio)(pthread_t, int);
	int (*setaffinity)(pthread_t, size_t, const cpu_set_t *);
	int (*getaffinity)(pthread_t, size_t, cpu_set_t *);
} real_t;

void preload_thread_init(void)
{
	real_t.tryjoin = preload_real_sym("pthread_tryjoin_np");
	real_t.timedjoin = preload_real_sym("pthread_timedjoin_np");
	real_t.clockjoin = preload_real_sym("pthread_clockjoin_np");
	real_t.setschedparam = preload_real_sym("pthread_setschedparam");
	real_t.getschedparam = preload_real_sym("pthread_getschedparam");
	real_t.setschedprio = preload_real_sym("pthread_setschedprio");
	real_t.setaffinity = preload_real_sym("pthread_setaffinity_np");
	real_t.getaffinity = preload_real_sym("pthread_getaffinity_np");
	sched_off = (char *)&preload_sched_tls - (char *)pthread_self();
}

static sa_uthread_t uthread_of(pthread_t t)
{
	return t ? tls_handle_of((const void *)t) : 0;
}

/* sched_of - the scheduling state of the uthread whose descriptor is @t. */
struct preload_sched *preload_sched_of(pthread_t t)
{
	return (struct preload_sched *)((char *)t + sched_off);
}

/* alive - @h names a uthread that exists (running, or ended and unjoined). */
static bool alive(sa_uthread_t h)
{
	char name[16];

	return sa_getname(h, name, sizeof(name)) != -ESRCH;
}

/* ------------------------------------------------------------------------
 * Joins
 */

SA_EXPORT int pthread_tryjoin_np(pthread_t t, void **ret)
{
	sa_uthread_t h;
	int r;

	preload_start();
	h = uthread_of(t);
	if (!h)
		return t ? real_t.tryjoin(t, ret) : ESRCH;
	/* glibc answers EBUSY for any thread that runs, before it looks
	 * for the caller itself or a detached thread. */
	r = ut_join_ready(h);
	if (r == -ESRCH)
		return ESRCH;
	if (r != 1)
		return EBUSY;
	return -sa_join(h, ret);
}

static int timed_join(pthread_t t, void **ret, clockid_t clk, const struct timespec *abs)
{
	sa_uthread_t h = uthread_of(t);
	uint64_t nap = 20000;

	if (clk != CLOCK_MONOTONIC && clk != CLOCK_REALTIME)
		return EINVAL;
	for (;;) {
		struct timespec now;
		uint64_t left;
		int r;

		preload_testcancel();
		r = ut_join_ready(h);
		if (r < 0)
			return -r;
		if (r == 1)
			return -sa_join(h, ret);
		if (!abs || abs->tv_nsec < 0 || abs->tv_nsec >= (long)NSEC_PER_SEC)
			return EINVAL;
		clock_gettime(clk, &now);
		if (now.tv_sec > abs->tv_sec ||
		    (now.tv_sec == abs->tv_sec && now.tv_nsec >= abs->tv_nsec))
			return ETIMEDOUT;
		left = (uint64_t)(abs->tv_sec - now.tv_sec) * NSEC_PER_SEC +
		       (uint64_t)(abs->tv_nsec - now.tv_nsec);
		/* Cut short by pthread_kill() or pthread_cancel(): the
		 * next look runs the handler or acts. */
		sleep_until_intr(now_ns() + (left < nap ? left : nap));
		if (nap < 1000000)
			nap *= 2;
	}
}

SA_EXPORT int pthread_timedjoin_np(pthread_t t, void **ret, const struct timespec *abs)
{
	preload_start();
	if (!uthread_of(t))
		return t ? real_t.timedjoin(t, ret, abs) : ESRCH;
	return timed_join(t, ret, CLOCK_REALTIME, abs);
}

SA_EXPORT int pthread_clockjoin_np(pthread_t t, void **ret, clockid_t clk,
				   const struct timespec *abs)
{
	preload_start();
	if (!uthread_of(t))
		return t ? real_t.clockjoin(t, ret, clk, abs) : ESRCH;
	return timed_join(t, ret, clk, abs);
}

/* ------------------------------------------------------------------------
 * Scheduling parameters
 */

/**
 * preload_sched_check - 0 if the kernel would take @policy with @prio
 * from this process, else EINVAL or EPERM (as sched_setscheduler(2)).
 */
int preload_sched_check(int policy, int prio)
{
	int lo, hi;

	if (policy != SCHED_OTHER && policy != SCHED_BATCH && policy != SCHED_IDLE &&
	    policy != SCHED_FIFO && policy != SCHED_RR)
		return EINVAL;
	lo = sched_get_priority_min(policy);
	hi = sched_get_priority_max(policy);
	if (prio < lo || prio > hi)
		return EINVAL;
	if ((policy == SCHED_FIFO || policy == SCHED_RR) && geteuid() != 0) {
		struct rlimit rl;

		if (getrlimit(RLIMIT_RTPRIO, &rl) || rl.rlim_cur < (rlim_t)prio)
			return EPERM;
	}
	return 0;
}

SA_EXPORT int pthread_setschedparam(pthread_t t, int policy, const struct sched_param *p)
{
	sa_uthread_t h;
	struct preload_sched *s;
	int r;

	preload_start();
	h = uthread_of(t);
	if (!h)
		return t ? real_t.setschedparam(t, policy, p) : ESRCH;
	if (!p)
		return EINVAL;
	if (!alive(h))
		return ESRCH;
	r = preload_sched_check(policy, p->sched_priority);
	if (r)
		return r;
	s = preload_sched_of(t);
	s->policy = policy;
	s->prio = p->sched_priority;
	return 0;
}

SA_EXPORT int pthread_getschedparam(pthread_t t, int *policy, struct sched_param *p)
{
	sa_uthread_t h;

	preload_start();
	h = uthread_of(t);
	if (!h)
		return t ? real_t.getschedparam(t, policy, p) : ESRCH;
	if (!alive(h))
		return ESRCH;
	*policy = preload_sched_of(t)->policy;
	memset(p, 0, sizeof(*p));
	p->sched_priority = preload_sched_of(t)->prio;
	return 0;
}

SA_EXPORT int pthread_setschedprio(pthread_t t, int prio)
{
	sa_uthread_t h;
	int r;

	preload_start();
	h = uthread_of(t);
	if (!h)
		return t ? real_t.setschedprio(t, prio) : ESRCH;
	if (!alive(h))
		return ESRCH;
	r = preload_sched_check(preload_sched_of(t)->policy, prio);
	if (r)
		return r;
	preload_sched_of(t)->prio = prio;
	return 0;
}

/* ------------------------------------------------------------------------
 * Affinity
 */

/**
 * preload_cpus_check - 0 if @set (@size bytes) names a CPU this process
 * may use, else EINVAL (as sched_setaffinity(2)).
 */
int preload_cpus_check(size_t size, const cpu_set_t *set)
{
	cpu_set_t mine, both;

	if (!set || sched_getaffinity(0, sizeof(mine), &mine))
		return EINVAL;
	CPU_ZERO(&both);
	memcpy(&both, set, size < sizeof(both) ? size : sizeof(both));
	CPU_AND(&both, &both, &mine);
	return CPU_COUNT(&both) ? 0 : EINVAL;
}

SA_EXPORT int pthread_setaffinity_np(pthread_t t, size_t size, const cpu_set_t *set)
{
	sa_uthread_t h;
	struct preload_sched *s;
	int r;

	preload_start();
	h = uthread_of(t);
	if (!h)
		return t ? real_t.setaffinity(t, size, set) : ESRCH;
	if (!alive(h))
		return ESRCH;
	r = preload_cpus_check(size, set);
	if (r)
		return r;
	s = preload_sched_of(t);
	CPU_ZERO(&s->cpus);
	memcpy(&s->cpus, set, size < sizeof(s->cpus) ? size : sizeof(s->cpus));
	s->has_cpus = true;
	return 0;
}

/** preload_cpus_of - @t's CPU set into @set (@size bytes).  0 or EINVAL. */
int preload_cpus_of(pthread_t t, size_t size, cpu_set_t *set)
{
	struct preload_sched *s = preload_sched_of(t);
	cpu_set_t mine;

	if (!s->has_cpus && sched_getaffinity(0, sizeof(mine), &mine))
		return EINVAL;
	/* The kernel's rule: the buffer must hold every CPU it knows. */
	if (size < sizeof(long) || !set)
		return EINVAL;
	memset(set, 0, size);
	memcpy(set, s->has_cpus ? &s->cpus : &mine, size < sizeof(mine) ? size : sizeof(mine));
	return 0;
}

SA_EXPORT int pthread_getaffinity_np(pthread_t t, size_t size, cpu_set_t *set)
{
	sa_uthread_t h;

	preload_start();
	h = uthread_of(t);
	if (!h)
		return t ? real_t.getaffinity(t, size, set) : ESRCH;
	if (!alive(h))
		return ESRCH;
	return preload_cpus_of(t, size, set);
}
