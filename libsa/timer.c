/* timer.c - per-VP deadline heaps: sleeps and timed waits without kernel threads */

/*
 * Each VP keeps a binary min-heap of struct sa_timer under vp->timer_lock,
 * and publishes its earliest deadline in vp->timer_next so that the
 * scheduler can test "anything due?" with one load.  A VP runs its due
 * timers after each switch; an idle VP runs every VP's due timers and parks
 * no longer than the earliest deadline of all.
 *
 * A timer is usually on the stack of the uthread that waits for it.  Its
 * callback runs with the heap lock dropped (it takes sync-object locks,
 * which rank above the heap lock), so timer_cancel_sync() waits for a
 * callback in flight to finish before the frame may go away, as
 * del_timer_sync() does.
 */

#include "defs.h"

#define HEAP_MIN_CAP 16

static SA_CRITSEC void heap_set(struct vp *vp, uint32_t i, struct sa_timer *t)
{
	vp->timer_heap[i] = t;
	t->idx = i;
}

static SA_CRITSEC void heap_up(struct vp *vp, uint32_t i)
{
	struct sa_timer *t = vp->timer_heap[i];

	while (i > 0) {
		uint32_t parent = (i - 1) / 2;

		if (vp->timer_heap[parent]->deadline <= t->deadline)
			break;
		heap_set(vp, i, vp->timer_heap[parent]);
		i = parent;
	}
	heap_set(vp, i, t);
}

static SA_CRITSEC void heap_down(struct vp *vp, uint32_t i)
{
	struct sa_timer *t = vp->timer_heap[i];
	uint32_t n = vp->timer_n;

	for (;;) {
		uint32_t c = 2 * i + 1;

		if (c >= n)
			break;
		if (c + 1 < n && vp->timer_heap[c + 1]->deadline < vp->timer_heap[c]->deadline)
			c++;
		if (t->deadline <= vp->timer_heap[c]->deadline)
			break;
		heap_set(vp, i, vp->timer_heap[c]);
		i = c;
	}
	heap_set(vp, i, t);
}

static SA_CRITSEC void heap_publish_locked(struct vp *vp)
{
	atomic_store_explicit(&vp->timer_next,
			      vp->timer_n ? vp->timer_heap[0]->deadline : DEADLINE_NONE,
			      memory_order_relaxed);
}

static SA_CRITSEC void heap_remove_locked(struct vp *vp, struct sa_timer *t)
{
	uint32_t i = t->idx, last = --vp->timer_n;

	if (i != last) {
		heap_set(vp, i, vp->timer_heap[last]);
		heap_down(vp, i);
		heap_up(vp, vp->timer_heap[i]->idx);
	}
	heap_publish_locked(vp);
}

/*
 * timer_heap_grow_np - double @vp's heap; the caller holds the heap lock.
 * Not a critical section (it maps memory, inline: sa_mem_grow()), but a
 * critical section may call it (critsec/leaf.list).  On failure the
 * process cannot keep its promise to wake the sleeper, so it is an
 * invariant violation.
 */
__noinline void timer_heap_grow_np(struct vp *vp)
{
	uint32_t cap = vp->timer_cap ? 2 * vp->timer_cap : HEAP_MIN_CAP;
	struct sa_timer **h = sa_mem_grow(vp->timer_heap, vp->timer_cap * sizeof(*h),
					  cap * sizeof(*h));

	if (!h)
		sa_panic("out of memory growing the timer heap");
	vp->timer_heap = h;
	vp->timer_cap = cap;
}

/* timer_arm_locked - insert @t in @vp's heap; the caller holds the heap lock. */
static SA_CRITSEC void timer_arm_locked(struct vp *vp, struct sa_timer *t)
{
	if (vp->timer_n == vp->timer_cap)
		timer_heap_grow_np(vp);
	t->vp = vp;
	atomic_store_explicit(&t->state, TIMER_PENDING, memory_order_relaxed);
	heap_set(vp, vp->timer_n++, t);
	heap_up(vp, t->idx);
	heap_publish_locked(vp);
}

/**
 * timer_arm - call @fn(@t) at or after @deadline (monotonic ns), on some VP.
 * The caller must be a uthread.
 */
SA_CRITSEC void timer_arm(struct sa_timer *t, uint64_t deadline,
			  void (*fn)(struct sa_timer *))
{
	struct vp *vp = vp_self();

	t->deadline = deadline;
	t->fn = fn;
	spin_lock(&vp->timer_lock);
	timer_arm_locked(vp, t);
	spin_unlock(&vp->timer_lock);
}

/* timer_dequeue - take @t out of its heap if it is still pending there. */
static SA_CRITSEC void timer_dequeue(struct sa_timer *t)
{
	struct vp *vp = t->vp;

	spin_lock(&vp->timer_lock);
	if (atomic_load_explicit(&t->state, memory_order_relaxed) == TIMER_PENDING) {
		heap_remove_locked(vp, t);
		atomic_store_explicit(&t->state, TIMER_DONE, memory_order_relaxed);
	}
	spin_unlock(&vp->timer_lock);
}

/**
 * timer_cancel_sync - make sure @t's callback is not pending and not
 * running.  After it returns, @t may be freed.
 */
void timer_cancel_sync(struct sa_timer *t)
{
	timer_dequeue(t);
	while (atomic_load_explicit(&t->state, memory_order_acquire) == TIMER_RUNNING)
		cpu_relax();
}

/*
 * timer_pop_due - take @vp's earliest timer out of the heap if it is due
 * at @now, marked running; NULL if none is.  Its callback runs with the
 * heap lock dropped (it takes sync-object locks, which rank above).
 */
static SA_CRITSEC struct sa_timer *timer_pop_due(struct vp *vp, uint64_t now)
{
	struct sa_timer *t = NULL;

	spin_lock(&vp->timer_lock);
	if (vp->timer_n && vp->timer_heap[0]->deadline <= now) {
		t = vp->timer_heap[0];
		heap_remove_locked(vp, t);
		atomic_store_explicit(&t->state, TIMER_RUNNING, memory_order_relaxed);
	}
	spin_unlock(&vp->timer_lock);
	return t;
}

/** timers_run - run @vp's timers that are due at @now. */
void timers_run(struct vp *vp, uint64_t now)
{
	struct vp *self = vp_self();
	struct sa_timer *t;

	if (atomic_load_explicit(&vp->timer_next, memory_order_relaxed) > now)
		return;
	while ((t = timer_pop_due(vp, now)) != NULL) {
		t->fn(t);
		if (self)
			stat_inc(&self->stats.timers_fired);
		/* Last touch: after this the owner's frame may go away. */
		atomic_store_explicit(&t->state, TIMER_DONE, memory_order_release);
	}
}

/** timers_run_all - run every VP's due timers. */
void timers_run_all(uint64_t now)
{
	for (uint32_t i = 0; i < rt.nvps; i++)
		timers_run(&rt.vps[i], now);
}

/** timers_next_deadline - earliest deadline over all VPs. */
uint64_t timers_next_deadline(void)
{
	uint64_t d = DEADLINE_NONE;

	for (uint32_t i = 0; i < rt.nvps; i++) {
		uint64_t x = atomic_load_explicit(&rt.vps[i].timer_next, memory_order_relaxed);

		if (x < d)
			d = x;
	}
	return d;
}

int deadline_from_abs(clockid_t clk, const struct timespec *abs, uint64_t *out)
{
	uint64_t a;

	if (!abs || abs->tv_nsec < 0 || abs->tv_nsec >= (long)NSEC_PER_SEC || abs->tv_sec < 0)
		return -EINVAL;
	if (clk != CLOCK_MONOTONIC && clk != CLOCK_REALTIME)
		return -EINVAL;
	if ((uint64_t)abs->tv_sec > (DEADLINE_NONE - NSEC_PER_SEC) / NSEC_PER_SEC)
		a = DEADLINE_NONE - 1;
	else
		a = (uint64_t)abs->tv_sec * NSEC_PER_SEC + (uint64_t)abs->tv_nsec;
	if (clk == CLOCK_REALTIME) {
		struct timespec rnow;
		uint64_t r, m = now_ns();

		clock_gettime(CLOCK_REALTIME, &rnow);
		r = (uint64_t)rnow.tv_sec * NSEC_PER_SEC + (uint64_t)rnow.tv_nsec;
		if (a <= r)
			a = m;
		else if (a - r > DEADLINE_NONE - 1 - m)
			a = DEADLINE_NONE - 1;
		else
			a = m + (a - r);
	}
	*out = a;
	return 0;
}

/* ------------------------------------------------------------------------
 * Sleeping
 */

struct sleeper {
	struct sa_timer timer;
	struct uthread *ut;
	_Atomic uint32_t state;     /* enum wait_state: the timer or
				     * ut_interrupt() wakes it (wait.c) */
};

static void sleeper_fire(struct sa_timer *t)
{
	struct sleeper *s = container_of(t, struct sleeper, timer);
	uint32_t expect = W_WAITING;

	if (atomic_compare_exchange_strong(&s->state, &expect, W_TIMEDOUT))
		sched_ready(s->ut);
}

/* sleep_until_ns - sleep until @deadline; with @intr, -EINTR if
 * ut_interrupt() ends the sleep first, else 0. */
static int sleep_until_ns(uint64_t deadline, bool intr)
{
	struct vp *vp = vp_self();
	struct sleeper s;

	if (!vp) {
		struct timespec ts;

		ns_to_timespec(deadline, &ts);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
		return 0;
	}
	if (deadline <= now_ns()) {
		sched_yield_cur();
		return 0;
	}
	s.ut = vp->cur;
	s.timer.deadline = deadline;
	s.timer.fn = sleeper_fire;
	atomic_store_explicit(&s.state, W_WAITING, memory_order_relaxed);
	if (intr && !wait_intr_arm(s.ut, &s.state)) {
		wait_intr_disarm(s.ut, &s.state);
		return -EINTR;
	}
	/* The arm above may call nothing that switches: @vp is still ours. */
	spin_lock(&vp->timer_lock);
	timer_arm_locked(vp, &s.timer);
	/* The heap lock is released only once our context is saved. */
	sched_park_unlock(&vp->timer_lock);
	timer_cancel_sync(&s.timer);
	if (!intr)
		return 0;
	wait_intr_disarm(s.ut, &s.state);
	return atomic_load_explicit(&s.state, memory_order_relaxed) == W_INTERRUPTED ? -EINTR : 0;
}

/**
 * sleep_until_intr - sleep until @deadline (monotonic ns), interruptibly:
 * 0 when it passed, -EINTR when ut_interrupt() ended the sleep first.
 */
int sleep_until_intr(uint64_t deadline)
{
	return sleep_until_ns(deadline, true);
}

SA_EXPORT int sa_sleep_ns(uint64_t ns)
{
	uint64_t now = now_ns();

	if (ns > DEADLINE_NONE - 1 - now)
		ns = DEADLINE_NONE - 1 - now;
	return sleep_until_ns(now + ns, false);
}

SA_EXPORT int sa_sleep_until(clockid_t clk, const struct timespec *abs)
{
	uint64_t d;
	int r = deadline_from_abs(clk, abs, &d);

	if (r)
		return r;
	return sleep_until_ns(d, false);
}
