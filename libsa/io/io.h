/* io.h - what the scheduler and the runtime call of the I/O layer (io.c) */
#ifndef SA_IO_IO_H
#define SA_IO_IO_H

#include "defs.h"

/* io_init - choose the backend ($SA_IO, probe).  Returns 0 or -errno. */
int io_init(void);

/* io_stats_add - add the I/O counters to @st. */
void io_stats_add(struct sa_stats *st);

void __io_pass(struct vp *vp, bool idle);

/*
 * io_pass - one scheduler pass of the I/O layer on the caller's own @vp:
 * submit what the batching rule says to, harvest completions.
 * Fast path: a load and a branch when @vp has nothing in flight.
 */
static __always_inline void io_pass(struct vp *vp)
{
	if (unlikely(vp->io_inflight))
		__io_pass(vp, false);
}

/* io_pass_idle - the same from the idle context: always submit. */
static __always_inline void io_pass_idle(struct vp *vp)
{
	if (unlikely(vp->io_inflight))
		__io_pass(vp, true);
}

/* io_park_in_ring - true if idle @vp must wait in its ring, not the futex. */
static __always_inline bool io_park_in_ring(struct vp *vp)
{
	return vp->io_inflight != 0;
}

/*
 * io_idle_wait - wait in @vp's ring for a completion, a kick or @deadline
 * (monotonic ns, DEADLINE_NONE for none).  Returns true if the caller
 * should stop parking (completions readied uthreads, or the deadline
 * passed), false to look at park_word and wait again.
 */
bool io_idle_wait(struct vp *vp, uint64_t deadline);

bool __io_pass_wanted(struct vp *vp);

/* io_pass_wanted - @vp's ring has completions to harvest or entries to
 * submit.  Reads the ring's indices only: safe in a signal handler. */
static __always_inline bool io_pass_wanted(struct vp *vp)
{
	return unlikely(vp->io_inflight) && __io_pass_wanted(vp);
}

/* io_kick - wake @vp, which parks in its ring: one write(2). */
void io_kick(struct vp *vp);

int io_futex_wait(_Atomic uint32_t *w, uint32_t val, bool private, uint64_t deadline);
int io_fdatasync(int fd);
bool io_open_may_wait(int dirfd, const char *path, int flags);
int io_openat(int dirfd, const char *path, int flags, mode_t mode, bool waits);
void io_set_intr_hook(bool (*hook)(void));
void io_sock_timeo_lazy(void);
void io_sock_timeo_note(void);
void io_fork_child(void);
void io_interrupt(void);

#endif /* SA_IO_IO_H */
