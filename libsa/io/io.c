/* io.c - I/O calls that park the calling uthread: one io_uring per VP, or a thread pool */

/*
 * Design
 * ======
 *
 * Vocabulary.  An "op" is one I/O call of <sa/io.h> made by a uthread.  Its
 * request (struct io_req) lives on the uthread's stack while the uthread is
 * parked, and the ring's user_data points at it.  A VP's "ring" is an
 * io_uring owned by that VP (struct io_vp): only code running on the VP -
 * its uthreads and its idle context - touches its submission and
 * completion queues, so neither has a lock.  "In flight" (vp->io_inflight)
 * counts the VP's ops whose completion has not been harvested yet.
 *
 * One ring per VP, made lazily.  The first op on a VP sets up its ring (256
 * submission entries, 4096 completion entries; the kernel keeps completions
 * that do not fit, IORING_FEAT_NODROP).  A program that never does I/O
 * through libsa pays nothing, not even the file descriptors.  The rings are
 * set up without IORING_SETUP_SINGLE_ISSUER and DEFER_TASKRUN: the kernel
 * thread that carries a VP may change (activations), and those flags tie a
 * ring to one task.  Only Linux 6.1 features are used; start-up probes the
 * opcodes and falls back to the thread pool if one is missing.
 *
 * An op.  The uthread fills a submission entry (plus a linked timeout when
 * it has a deadline), counts it in flight and parks with
 * sched_park_unlock(NULL).  It does not enter the kernel: submission is
 * left to the next scheduler pass, so that the ops of several uthreads go
 * in one io_uring_enter().  Between filling the entry and parking the
 * uthread cannot leave the VP (nothing switches there), so the entry is on
 * the ring of the VP whose pass will see its completion.
 *
 * Batching.  A pass submits what is queued when the VP has nothing else
 * runnable (the uthread now running may compute for long), when it goes
 * idle, or when IO_BATCH entries wait.  While other uthreads are runnable
 * on the VP, their ops join the batch.  Deferring costs an op at most one
 * turn of the run queue, which is what its harvest would wait for anyway:
 * completions, too, are seen only at this VP's passes.
 *
 * Harvesting.  Every scheduler pass (sched.c: after each switch, at a
 * yield that switches nowhere, at each look for work of an idle VP) tests
 * vp->io_inflight, a load on the cache line of vp->timer_next that it
 * reads anyway, and a branch.  Only with ops in flight does it come here:
 * read the completion queue's tail (no system call), store each result in
 * its request and sched_ready() its uthread - into this VP's next slot,
 * where it runs next, as after any handoff.  A pass is always made with the switched-away
 * context saved (sched_finish_switch() publishes it first), so a harvested
 * uthread is never still on its way off the VP.
 *
 * Idle VPs.  A VP that has nothing to run and ops in flight parks in its
 * ring, in io_uring_submit_and_wait_timeout() for one completion with the
 * earliest timer deadline, instead of on its futex: a completion then ends
 * the park.  A waker that must kick it (sched.c: vp_kick) writes the VP's
 * eventfd, of which the ring has a read pending whenever the VP parks
 * there: one system call, as the futex wake.  The VP tells wakers how it
 * parks (vp->park_ring) before it goes on the idle list, whose lock orders
 * that store before the waker's read, and the eventfd counter closes the
 * race the futex word closes: a write that lands before the VP enters the
 * kernel completes the pending read at once.  The Dekker protocol of
 * sched.c is unchanged.
 *
 * Deadlines.  sa_io_set_deadline() stores an absolute monotonic deadline in
 * the uthread.  An op with one is linked to an IORING_OP_LINK_TIMEOUT with
 * that absolute time: the kernel cancels the op when it fires and the call
 * returns -ETIMEDOUT.  An op that completed returns its result even if the
 * timeout fired too, so no transferred byte is lost.  The timeout's own
 * completion is ignored (user_data IO_UD_IGNORE); it needs no memory of
 * ours once submitted.  A deadline already past ends a call at once if
 * its descriptor has nothing ready (one poll); else the op gets a grace
 * of IO_PAST_GRACE_NS, so that it still takes what is ready where the
 * kernel hands it to a worker instead of trying it at once (a pipe on
 * Linux 6.1: the worker may have to be started first), which a timeout
 * firing at once would race.
 *
 * Socket timeouts.  A ring waits on a socket without regard to its
 * SO_RCVTIMEO or SO_SNDTIMEO, so a call that may wait reads the one that
 * applies (one getsockopt, which fails with ENOTSOCK on anything else) and
 * makes it a deadline of the op's own; when that deadline, not the
 * uthread's, ends the call, it fails with -EAGAIN (-EINPROGRESS for
 * connect), as the kernel's, or returns the part of a write that went.
 * The getsockopt costs a fifth of a one-byte ping-pong between two
 * uthreads (0.37 us of 1.9 us per call), so the LD_PRELOAD shim, which
 * sees every setsockopt() the program makes, has the layer look only once
 * the process has set a timeout (io_sock_timeo_lazy()); the native API
 * looks on every call.
 *
 * sa_poll.  One IORING_OP_POLL_ADD per descriptor and an IORING_OP_TIMEOUT
 * for the time limit form a group.  The harvest that sees the first member
 * complete queues cancellations for the others - on the right ring, since
 * harvests run on the ring's own VP - and the uthread is readied when the
 * last member is done, so it parks once and its requests never outlive
 * the call.  A first poll(2) with no wait answers at once when something
 * is ready, with exactly the kernel's revents.
 *
 * Where a ring differs from the system call.  A ring waits on a pipe or
 * socket even when its descriptor is O_NONBLOCK (it arms a poll and
 * retries), so the calls that may wait read the descriptor's flags first
 * (one fcntl) and, when it is non-blocking or MSG_DONTWAIT is passed, make
 * the plain system call, which cannot block, on the VP.  A ring also reads
 * a pipe at an "offset" where pread(2) fails with ESPIPE, so sa_pread and
 * sa_pwrite check that the descriptor can seek (one lseek).  Either costs
 * one cheap system call next to a ring round trip and a switch.  And a
 * ring completes a write to a pipe or stream socket with the part that
 * fitted in the buffer, where the blocking system call waits for room for
 * the rest: io_write_full() writes the rest, as the kernel would, and
 * ends with the count so far when an error, an interruption or a timeout
 * comes after part went.  Only a short write pays for the fstat that
 * tells a pipe or stream socket from a file.
 *
 * Futex waits.  io_futex_wait() parks a uthread on a 32-bit futex word
 * with IORING_OP_FUTEX_WAIT (Linux 6.7), which a FUTEX_WAKE from any
 * thread or process completes; the LD_PRELOAD shim waits so on the C
 * library's semaphores.  liburing 2.3 knows neither the opcode nor a
 * helper, so the entry is filled by hand: the word's address, the
 * expected value and the bitset (all bits), the futex2 flags in the fd
 * field.  The opcode is probed apart from the others: a kernel without it
 * keeps the ring, and io_futex_wait() says -EOPNOTSUPP, for the caller to
 * wait another way.  A deadline is a linked timeout, as for any op.
 *
 * Signals.  Ring ops are not interrupted by signals.  A plain system call
 * (plain threads, the pool) that fails with EINTR is restarted, so -EINTR
 * is never returned: see <sa/io.h>.  Only io_interrupt() ends waits
 * early, for the LD_PRELOAD shim: ring ops by cancellation, and a pool
 * worker's wait for a pipe, socket or terminal through its eventfd.  A
 * worker does not block in such a call: it waits in ppoll() for the
 * descriptor and its eventfd together, then makes the call without
 * waiting (MSG_DONTWAIT, RWF_NOWAIT) and polls again if it would have
 * waited.  io_interrupt() bumps the epoch and then writes the eventfd of
 * each worker that is armed; a worker arms, then reads the epoch, so one
 * of the two sees the other (Dekker), and no interruption falls between
 * its last look and its entry into ppoll().  Rejected: a signal aimed at
 * the worker (it may land between the worker's last look at a flag and
 * its entry into the kernel, and be lost), and readying the uthread
 * without the worker (the call would go on into a buffer on a stack that
 * has moved on).  Where RWF_NOWAIT is not supported (pipes before Linux
 * 6.x), and for accept, the call after ppoll() may still wait if another
 * thread took what ppoll() saw.
 *
 * Fallback: a thread pool.  Without io_uring (kernel too old, disabled by
 * sysctl kernel.io_uring_disabled, filtered by seccomp), detected once at
 * start-up or forced with SA_IO=threads, an op is handed to a worker
 * thread that makes the blocking system call and sched_ready()s the
 * uthread, which a uthread on another kernel thread may do at any time
 * (sched_ready() waits for the context to be saved).  A job goes straight
 * to an idle worker; with none idle a new one starts, up to IO_POOL_MAX,
 * after which jobs queue.  Workers stay for the life of the process.  A
 * ring that cannot be set up on one VP (out of descriptors) sends that
 * VP's ops to the pool as well.
 *
 * Rejected.
 *   - Submitting at each op: one system call per op, no batching.
 *   - Submitting only when the VP goes idle: a computing uthread that
 *     yields would hold every op of its VP back.
 *   - IORING_SETUP_SQPOLL: a kernel thread spinning per ring, a CPU per VP
 *     on a machine whose CPUs are the VPs'.
 *   - One ring for all VPs: a lock on every submission and harvest, and a
 *     VP would harvest completions for uthreads of other VPs.
 *   - Waking a ring-parked VP with IORING_OP_MSG_RING: threads that are
 *     not VPs have no ring to send from; with IORING_OP_FUTEX_WAIT: Linux
 *     6.7, not 6.1 (only io_futex_wait() uses it, where the kernel has
 *     it); with a signal: one more handler on the preemption signal's
 *     path and EINTR to handle everywhere.
 *   - A thread per blocked op without a pool: thread creation on every
 *     op; a fixed pool without growth: N readers of N pipes with fewer
 *     workers deadlock when the writer feeds them in another order.
 */

#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "defs.h"
#include "io/io.h"
#include "sa/io.h"

#define IO_SQ_ENTRIES 256
#define IO_CQ_ENTRIES 4096
#define IO_BATCH 32              /* submit once this many entries wait */
#define IO_REAP_BATCH 64         /* completions read per peek */
#define IO_MAX_RW 0x7ffff000u    /* most bytes one read or write moves */
#define IO_POLL_STACK 8          /* sa_poll members on the stack */
#define IO_PAST_GRACE_NS (20 * 1000 * 1000ull) /* a past deadline's op: io_ring_park() */
#define IO_POOL_MAX 1024         /* most pool workers */
#define IO_WORKER_STACK (256 * 1024)
#define IO_SQE_TRIES 1000        /* submissions refused before we give up */

#define IO_OP_FUTEX_WAIT 51      /* IORING_OP_FUTEX_WAIT, Linux 6.7 */
#define IO_FUTEX2_SIZE_U32 0x02  /* futex2 flags: a 32-bit word, */
#define IO_FUTEX2_PRIVATE 0x80   /* process-private */

#define IO_UD_IGNORE 0ull        /* linked timeouts, cancellations */
#define IO_UD_KICK 1ull          /* the eventfd read of a parked VP */
#define IO_RES_PENDING INT32_MIN /* no completion yet */

enum io_opcode {
	IOP_READ,     /* also pread: off >= 0 */
	IOP_WRITE,    /* also pwrite */
	IOP_READV,
	IOP_WRITEV,
	IOP_ACCEPT,
	IOP_CONNECT,
	IOP_RECV,
	IOP_SEND,
	IOP_RECVMSG,
	IOP_SENDMSG,
	IOP_POLL,
	IOP_OPENAT,
	IOP_CLOSE,
	IOP_FSYNC,
	IOP_TIMEOUT,  /* sa_poll's time limit */
	IOP_NR,
	IOP_FUTEX_WAIT = IOP_NR, /* probed apart: io.futex_ok */
};

struct io_group;

/* struct io_req - one op, on the stack of the uthread that waits for it. */
struct io_req {
	uint8_t op;                  /* enum io_opcode */
	int fd;
	int flags;                   /* recv/send/accept/openat flags; fsync: 1 = data only */
	void *buf;                   /* buffer, iovec, msghdr, sockaddr, path,
				      * pollfd array */
	size_t len;                  /* bytes, iovcnt, addrlen, nfds, events */
	off_t off;                   /* -1: the file position */
	socklen_t *addrlen;          /* accept */
	mode_t mode;                 /* openat */
	uint64_t deadline;           /* monotonic ns; 0: none */
	uint64_t timeo;              /* SO_RCVTIMEO/SO_SNDTIMEO's end; 0: none */
	bool waits;                  /* io_fd_call() let it wait */
	bool async;                  /* openat: in the kernel's worker, blocking */
	uint64_t poll_end;           /* sa_poll's own limit; DEADLINE_NONE */
	int64_t res;                 /* the result, IO_RES_PENDING until then */
	struct uthread *ut;          /* who waits */
	struct io_group *grp;        /* sa_poll member: its group */
	struct io_req *next;         /* pool backlog link */
	uint64_t intr_epoch;         /* pool: io.intr_epoch when submitted */
	struct __kernel_timespec ts; /* timeout, read by the kernel at submit */
};

/* struct io_group - sa_poll's members on a ring; readied when all are done. */
struct io_group {
	struct uthread *ut;
	struct io_req *reqs;
	uint32_t n, done;
	bool cancelling;
};

/* struct io_vp - a VP's ring; owner-only but for ->efd and the counters. */
struct io_vp {
	struct io_uring ring;
	int efd;                     /* kicks a VP parked in the ring */
	bool kick_armed;             /* its read is in the ring */
	bool ok;                     /* false: no ring on this VP, use the pool */
	uint64_t kick_buf;
	uint64_t intr_seen;          /* io.intr_epoch this ring acted on */
	_Atomic uint64_t ops, completions, submits;
};

/* struct io_worker - a pool thread; parks on ->word until handed a job. */
struct io_worker {
	struct io_worker *next;      /* idle list, under io.lock */
	struct io_req *job;
	_Atomic uint32_t word;       /* 1: ->job is set */
	_Atomic uint32_t armed;      /* in an interruptible wait */
	int efd;                     /* io_interrupt() writes it then */
};

static struct {
	int backend;                 /* SA_IO_BACKEND_* */
	_Atomic uint64_t fallback_ops;
	spinlock_t lock;             /* the pool: */
	struct io_worker *idle;
	struct io_req *head, *tail;  /* jobs no worker took yet */
	uint32_t nworkers;
	struct io_worker *all[IO_POOL_MAX]; /* every worker, for io_interrupt() */
	_Atomic uint32_t nall;
	bool timeo_lazy;             /* io_sock_timeo_lazy(): look only once */
	_Atomic bool timeo_seen;     /* io_sock_timeo_note() was called */
	_Atomic uint64_t intr_epoch; /* io_interrupt() calls */
	bool futex_ok;               /* rings have IORING_OP_FUTEX_WAIT */
	bool (*intr_hook)(void);     /* io_set_intr_hook(): end with -EINTR? */
} io;

static struct io_vp io_vp_none = { .ok = false };

/* io_fork_child - in a child of fork(): no pool worker exists there, and
 * the rings belong to VPs that do not; io_init() starts afresh. */
void io_fork_child(void)
{
	memset(&io, 0, sizeof(io));
}
static ssize_t io_call(struct io_req *r);
static __thread uint64_t io_thread_deadline; /* threads that are not VPs */

static const uint8_t io_uring_opcode[IOP_NR] = {
	[IOP_READ] = IORING_OP_READ,         [IOP_WRITE] = IORING_OP_WRITE,
	[IOP_READV] = IORING_OP_READV,       [IOP_WRITEV] = IORING_OP_WRITEV,
	[IOP_ACCEPT] = IORING_OP_ACCEPT,     [IOP_CONNECT] = IORING_OP_CONNECT,
	[IOP_RECV] = IORING_OP_RECV,         [IOP_SEND] = IORING_OP_SEND,
	[IOP_RECVMSG] = IORING_OP_RECVMSG,   [IOP_SENDMSG] = IORING_OP_SENDMSG,
	[IOP_POLL] = IORING_OP_POLL_ADD,     [IOP_OPENAT] = IORING_OP_OPENAT,
	[IOP_CLOSE] = IORING_OP_CLOSE,       [IOP_FSYNC] = IORING_OP_FSYNC,
	[IOP_TIMEOUT] = IORING_OP_TIMEOUT,
};

/* ------------------------------------------------------------------------
 * Start-up: choosing the backend
 */

/* io_probe - 0 if io_uring works here with every opcode we use, else -errno. */
static int io_probe(void)
{
	static const uint8_t extra[] = { IORING_OP_LINK_TIMEOUT, IORING_OP_ASYNC_CANCEL,
					 IORING_OP_TIMEOUT_REMOVE };
	struct io_uring ring;
	struct io_uring_probe *p;
	int r = io_uring_queue_init(2, &ring, 0);

	if (r < 0)
		return r;
	r = 0;
	if (!(ring.features & IORING_FEAT_NODROP) || !(ring.features & IORING_FEAT_RW_CUR_POS))
		r = -EOPNOTSUPP;
	p = io_uring_get_probe_ring(&ring);
	if (!p)
		r = -EOPNOTSUPP;
	for (unsigned i = 0; p && !r && i < IOP_NR; i++)
		if (!io_uring_opcode_supported(p, io_uring_opcode[i]))
			r = -EOPNOTSUPP;
	for (unsigned i = 0; p && !r && i < ARRAY_SIZE(extra); i++)
		if (!io_uring_opcode_supported(p, extra[i]))
			r = -EOPNOTSUPP;
	io.futex_ok = p && !r && io_uring_opcode_supported(p, IO_OP_FUTEX_WAIT);
	if (p)
		io_uring_free_probe(p);
	io_uring_queue_exit(&ring);
	return r;
}

/**
 * io_init - choose the I/O backend from $SA_IO ("uring", "threads", unset:
 * io_uring if it works).  Returns 0, or -EINVAL for another value, or the
 * probe's error when io_uring is forced but does not work (with a message
 * on stderr, since nothing else would say why start-up failed).
 */
int io_init(void)
{
	const char *s = getenv("SA_IO");
	int r;

	if (s && !strcmp(s, "threads")) {
		io.backend = SA_IO_BACKEND_THREADS;
		return 0;
	}
	if (s && *s && strcmp(s, "uring")) {
		fprintf(stderr, "libsa: SA_IO=%s: expected \"uring\" or \"threads\"\n", s);
		return -EINVAL;
	}
	r = io_probe();
	if (r < 0 && s && *s) {
		fprintf(stderr, "libsa: SA_IO=uring, but io_uring is unavailable: %s\n",
			strerror(-r));
		return r;
	}
	io.backend = r < 0 ? SA_IO_BACKEND_THREADS : SA_IO_BACKEND_URING;
	return 0;
}

void io_stats_add(struct sa_stats *st)
{
	st->io_backend = (uint64_t)io.backend;
	for (uint32_t i = 0; i < rt.nvps; i++) {
		struct io_vp *iv = rt.vps[i].io;

		if (!iv || !iv->ok)
			continue;
		st->io_ops += atomic_load_explicit(&iv->ops, memory_order_relaxed);
		st->io_completions += atomic_load_explicit(&iv->completions, memory_order_relaxed);
		st->io_submits += atomic_load_explicit(&iv->submits, memory_order_relaxed);
	}
	st->io_fallback_ops = atomic_load(&io.fallback_ops);
}

/* ------------------------------------------------------------------------
 * Rings
 */

static __noinline struct io_vp *io_vp_setup(struct vp *vp)
{
	struct io_uring_params p = { .flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL,
				     .cq_entries = IO_CQ_ENTRIES };
	struct io_vp *iv = sa_mem_zalloc(sizeof(*iv)); /* see sa_mem_zalloc() */
	int r;

	if (!iv)
		goto fail;
	r = io_uring_queue_init_params(IO_SQ_ENTRIES, &iv->ring, &p);
	if (r == -EINVAL) { /* no SUBMIT_ALL before 5.18 */
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = IO_CQ_ENTRIES;
		r = io_uring_queue_init_params(IO_SQ_ENTRIES, &iv->ring, &p);
	}
	if (r < 0)
		goto fail;
	/* Blocking: the ring's read of it must wait, not fail with EAGAIN. */
	iv->efd = eventfd(0, EFD_CLOEXEC);
	if (iv->efd < 0) {
		io_uring_queue_exit(&iv->ring);
		goto fail;
	}
	iv->ok = true;
	vp->io = iv;
	return iv;
fail:
	sa_mem_free(iv, sizeof(*iv));
	vp->io = &io_vp_none;
	return NULL;
}

/* io_vp_get - @vp's ring, set up on first use; NULL: use the pool. */
static __always_inline struct io_vp *io_vp_get(struct vp *vp)
{
	struct io_vp *iv = vp->io;

	if (unlikely(!iv)) {
		/* Set-up calls libc and liburing with @vp in hand. */
		struct vp *np = np_enter();

		iv = io_vp_setup(vp);
		np_exit(np);
		return iv;
	}
	return iv->ok ? iv : NULL;
}

static int io_flush(struct io_vp *iv)
{
	struct vp *np;
	int r;

	if (!io_uring_sq_ready(&iv->ring))
		return 0;
	np = np_enter(); /* liburing's code is not libsa's: no preemption */
	do
		r = io_uring_submit(&iv->ring);
	while (r == -EINTR);
	np_exit(np);
	if (r > 0)
		stat_inc(&iv->submits);
	return r;
}

/*
 * io_sqe - a free submission entry of @iv, submitting what is queued to
 * make room.  The kernel refusing submissions for good is not a state the
 * runtime can wait out (parked uthreads would never wake): it aborts.
 */
static struct io_uring_sqe *io_sqe(struct io_vp *iv)
{
	for (int i = 0; i < IO_SQE_TRIES; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&iv->ring);

		if (likely(sqe))
			return sqe;
		io_flush(iv);
	}
	sa_panic("io_uring: the kernel accepts no submissions; parked I/O would never finish");
}

static void io_timespec(uint64_t ns, struct __kernel_timespec *ts)
{
	ts->tv_sec = (long long)(ns / NSEC_PER_SEC);
	ts->tv_nsec = (long long)(ns % NSEC_PER_SEC);
}

static void io_prep(struct io_uring_sqe *sqe, struct io_req *r)
{
	switch (r->op) {
	case IOP_READ:
		io_uring_prep_read(sqe, r->fd, r->buf, (unsigned)r->len, (uint64_t)r->off);
		break;
	case IOP_WRITE:
		io_uring_prep_write(sqe, r->fd, r->buf, (unsigned)r->len, (uint64_t)r->off);
		break;
	case IOP_READV:
		io_uring_prep_readv(sqe, r->fd, r->buf, (unsigned)r->len, (uint64_t)-1);
		break;
	case IOP_WRITEV:
		io_uring_prep_writev(sqe, r->fd, r->buf, (unsigned)r->len, (uint64_t)-1);
		break;
	case IOP_ACCEPT:
		io_uring_prep_accept(sqe, r->fd, r->buf, r->addrlen, r->flags);
		break;
	case IOP_CONNECT:
		io_uring_prep_connect(sqe, r->fd, r->buf, (socklen_t)r->len);
		break;
	case IOP_RECV:
		io_uring_prep_recv(sqe, r->fd, r->buf, r->len, r->flags);
		break;
	case IOP_SEND:
		io_uring_prep_send(sqe, r->fd, r->buf, r->len, r->flags);
		break;
	case IOP_RECVMSG:
		io_uring_prep_recvmsg(sqe, r->fd, r->buf, (unsigned)r->flags);
		break;
	case IOP_SENDMSG:
		io_uring_prep_sendmsg(sqe, r->fd, r->buf, (unsigned)r->flags);
		break;
	case IOP_POLL:
		io_uring_prep_poll_add(sqe, r->fd, (unsigned)r->len);
		break;
	case IOP_OPENAT:
		io_uring_prep_openat(sqe, r->fd, r->buf, r->flags, r->mode);
		/* The ring's first try adds O_NONBLOCK, with which a FIFO
		 * opens at once instead of waiting for its other end: such
		 * an open goes straight to the worker, which blocks. */
		if (r->async)
			sqe->flags |= IOSQE_ASYNC;
		break;
	case IOP_CLOSE:
		io_uring_prep_close(sqe, r->fd);
		break;
	case IOP_FSYNC:
		io_uring_prep_fsync(sqe, r->fd, r->flags ? IORING_FSYNC_DATASYNC : 0);
		break;
	case IOP_TIMEOUT:
		io_timespec(r->poll_end, &r->ts);
		io_uring_prep_timeout(sqe, &r->ts, 0, IORING_TIMEOUT_ABS);
		break;
	case IOP_FUTEX_WAIT: /* no liburing helper: see the design notes */
		memset(sqe, 0, sizeof(*sqe));
		sqe->opcode = IO_OP_FUTEX_WAIT;
		sqe->fd = r->flags;
		sqe->addr = (uint64_t)(uintptr_t)r->buf;
		sqe->addr2 = r->len;
		sqe->addr3 = 0xffffffffu; /* FUTEX_BITSET_MATCH_ANY */
		break;
	default:
		sa_panic("io: unknown opcode %u", r->op);
	}
	io_uring_sqe_set_data(sqe, r);
}

/*
 * io_group_done - a member of @g completed: cancel the others.  When all
 * are done, ready the uthread and return true; @g may be gone after that.
 */
static bool io_group_done(struct io_vp *iv, struct io_group *g, struct io_req *r)
{
	if (!g->cancelling) {
		g->cancelling = true;
		for (uint32_t i = 0; i < g->n; i++) {
			struct io_req *m = &g->reqs[i];
			struct io_uring_sqe *sqe;

			if (m == r || m->res != IO_RES_PENDING)
				continue;
			sqe = io_sqe(iv);
			if (m->op == IOP_TIMEOUT)
				io_uring_prep_timeout_remove(sqe, (uint64_t)(uintptr_t)m, 0);
			else
				io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)m, 0);
			io_uring_sqe_set_data64(sqe, IO_UD_IGNORE);
		}
	}
	if (++g->done < g->n)
		return false;
	sched_ready(g->ut);
	return true;
}

/*
 * io_cancel_all - an interruption (io_interrupt()): cancel every op on
 * @iv's ring.  Each comes back with -ECANCELED, and its caller returns
 * -EINTR or goes again (io_ring_call()).
 */
static void io_cancel_all(struct io_vp *iv)
{
	struct io_uring_sqe *sqe;

	iv->intr_seen = atomic_load_explicit(&io.intr_epoch, memory_order_acquire);
	sqe = io_sqe(iv);
	io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
	io_uring_sqe_set_data64(sqe, IO_UD_IGNORE);
	io_flush(iv);
}

/* io_reap - harvest @vp's completions.  Returns how many uthreads it readied. */
static unsigned io_reap(struct vp *vp, struct io_vp *iv)
{
	struct io_uring_cqe *cqes[IO_REAP_BATCH];
	struct { uint64_t ud; int32_t res; } got[IO_REAP_BATCH];
	unsigned n, readied = 0;

	do {
		struct vp *np = np_enter();

		n = io_uring_peek_batch_cqe(&iv->ring, cqes, IO_REAP_BATCH);
		np_exit(np);
		for (unsigned i = 0; i < n; i++) {
			got[i].ud = cqes[i]->user_data;
			got[i].res = cqes[i]->res;
		}
		/* Free the slots first: what follows may submit. */
		io_uring_cq_advance(&iv->ring, n);
		for (unsigned i = 0; i < n; i++) {
			struct io_req *r = (struct io_req *)(uintptr_t)got[i].ud;

			if (got[i].ud == IO_UD_IGNORE)
				continue;
			if (got[i].ud == IO_UD_KICK) {
				iv->kick_armed = false;
				continue;
			}
			SA_BUG_ON(vp->io_inflight == 0);
			vp->io_inflight--;
			stat_inc(&iv->completions);
			r->res = got[i].res;
			if (r->grp) {
				readied += io_group_done(iv, r->grp, r);
			} else {
				/* @r may be gone as soon as its uthread runs. */
				sched_ready(r->ut);
				readied++;
			}
		}
	} while (n == IO_REAP_BATCH);
	return readied;
}

/**
 * __io_pass - slow path of io_pass(): submit by the batching rule (always
 * when @idle), then harvest.  Called on @vp's own kernel thread only.
 */
void __io_pass(struct vp *vp, bool idle)
{
	struct io_vp *iv = vp->io;
	unsigned queued;

	if (unlikely(atomic_load_explicit(&io.intr_epoch, memory_order_acquire) != iv->intr_seen))
		io_cancel_all(iv);
	queued = io_uring_sq_ready(&iv->ring);

	if (queued && (idle || queued >= IO_BATCH ||
		       (!atomic_load_explicit(&vp->nr_queued, memory_order_relaxed) &&
			!atomic_load_explicit(&vp->next, memory_order_relaxed))))
		io_flush(iv);
	io_reap(vp, iv);
}

bool __io_pass_wanted(struct vp *vp)
{
	struct io_vp *iv = vp->io;

	return iv && iv->ok && (io_uring_cq_ready(&iv->ring) || io_uring_sq_ready(&iv->ring) ||
				atomic_load_explicit(&io.intr_epoch, memory_order_relaxed) !=
				iv->intr_seen);
}

/**
 * io_set_intr_hook - let io_interrupt() end waits with -EINTR: an op that
 * an interruption cancelled asks @hook, on its own uthread, whether to
 * return -EINTR (true) or to be made again (false).  The LD_PRELOAD shim
 * answers true after a signal handler without SA_RESTART ran, or when the
 * uthread is to act on a cancellation.  Without a hook no call returns
 * -EINTR.
 */
void io_set_intr_hook(bool (*hook)(void))
{
	io.intr_hook = hook;
}

/* io_intr_return - an interruption ended the caller's op: -EINTR or again? */
static bool io_intr_return(void)
{
	return io.intr_hook && io.intr_hook();
}

/**
 * io_interrupt - a signal handler without SA_RESTART ran: end every ring
 * op waiting now, on every VP.  Async-signal-safe: an atomic add and one
 * write(2) per VP with a ring, which wakes a VP parked in it.
 */
void io_interrupt(void)
{
	atomic_fetch_add_explicit(&io.intr_epoch, 1, memory_order_release);
	for (uint32_t i = 0; i < rt.nvps; i++) {
		struct io_vp *iv = rt.vps[i].io;

		if (iv && iv->ok)
			io_kick(&rt.vps[i]);
	}
	for (uint32_t i = 0, n = atomic_load(&io.nall); i < n; i++) {
		struct io_worker *w = io.all[i];

		if (atomic_load(&w->armed)) {
			uint64_t one = 1;

			while (write(w->efd, &one, sizeof(one)) < 0 && errno == EINTR)
				;
		}
	}
}

bool io_idle_wait(struct vp *vp, uint64_t deadline)
{
	struct io_vp *iv = vp->io;
	struct __kernel_timespec ts, *tsp = NULL;
	struct io_uring_cqe *cqe;
	unsigned queued;
	int r;

	if (!iv->kick_armed) {
		struct io_uring_sqe *sqe = io_sqe(iv);

		io_uring_prep_read(sqe, iv->efd, &iv->kick_buf, sizeof(iv->kick_buf), (uint64_t)-1);
		io_uring_sqe_set_data64(sqe, IO_UD_KICK);
		iv->kick_armed = true;
	}
	if (deadline != DEADLINE_NONE) {
		uint64_t now = now_ns();

		if (deadline <= now)
			return true;
		io_timespec(deadline - now, &ts);
		tsp = &ts;
	}
	queued = io_uring_sq_ready(&iv->ring);
	r = io_uring_submit_and_wait_timeout(&iv->ring, &cqe, 1, tsp, NULL);
	if (queued && r >= 0)
		stat_inc(&iv->submits);
	if (io_reap(vp, iv))
		return true;
	/* io_interrupt() from another thread kicked us: the pass that
	 * cancels this ring's ops is the idle loop's. */
	if (atomic_load_explicit(&io.intr_epoch, memory_order_acquire) != iv->intr_seen)
		return true;
	return r == -ETIME;
}

void io_kick(struct vp *vp)
{
	uint64_t one = 1;

	while (write(vp->io->efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

/*
 * io_ring_park - queue @r (and its deadline's linked timeout) on @vp's
 * ring and park until it completes.  Returns with @r->res set; the
 * caller may run on another VP by then.
 */
static void io_ring_park(struct vp *vp, struct io_vp *iv, struct io_req *r)
{
	struct io_uring_sqe *sqe;

	/* An interruption that came before this op began is not for it. */
	if (!vp->io_inflight)
		iv->intr_seen = atomic_load_explicit(&io.intr_epoch, memory_order_acquire);
	if (r->deadline && io_uring_sq_space_left(&iv->ring) < 2)
		io_flush(iv); /* the op and its timeout go in together */
	sqe = io_sqe(iv);
	io_prep(sqe, r);
	if (r->deadline) {
		struct io_uring_sqe *t;
		uint64_t dl = r->deadline, now = now_ns();

		/*
		 * A deadline already past still takes what is ready, as the
		 * system call would.  Where the kernel cannot try the op
		 * without waiting (pipes before Linux 6.2) it goes to a
		 * kernel worker, which a timeout that fires at once races: a
		 * short grace lets it finish.
		 */
		if (dl <= now)
			dl = now + IO_PAST_GRACE_NS;
		sqe->flags |= IOSQE_IO_LINK;
		t = io_sqe(iv);
		io_timespec(dl, &r->ts);
		io_uring_prep_link_timeout(t, &r->ts, IORING_TIMEOUT_ABS);
		io_uring_sqe_set_data64(t, IO_UD_IGNORE);
	}
	r->res = IO_RES_PENDING;
	r->ut = vp->cur;
	vp->io_inflight++;
	stat_inc(&iv->ops);
	sched_park_unlock(NULL);
}

/*
 * io_ring_call - run @r on @vp's ring and park until it completes.
 * Returns the op's result, -ETIMEDOUT if its deadline cancelled it.
 */
static ssize_t io_ring_call(struct vp *vp, struct io_vp *iv, struct io_req *r)
{
	io_ring_park(vp, iv, r);
	/* Maybe on another VP now; @r is ours again.  An op the kernel's
	 * worker was running when the cancellation reached it may end with
	 * the kernel's own restart code (ERESTARTSYS, 512, and its kin up to
	 * 516), never meant for user space, or (Linux 6.1) with -EINTR: it
	 * was cancelled too.  -EINTR is never returned for its own sake. */
	if ((r->res <= -512 && r->res >= -516 && r->res != -515) || r->res == -EINTR)
		r->res = -ECANCELED;
	if (r->res == -ECANCELED) {
		/* Its deadline's timeout, or an interruption. */
		if (r->deadline && now_ns() >= r->deadline)
			return -ETIMEDOUT;
		if (io_intr_return())
			return -EINTR;
		return io_call(r);
	}
	return (ssize_t)r->res;
}

/* ------------------------------------------------------------------------
 * Plain system calls: threads that are not VPs, and the pool's workers
 */

/* io_wait_ready - poll @fd for @events until @deadline.  0 when ready. */
static int io_wait_ready(int fd, short events, uint64_t deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		uint64_t now = now_ns();
		struct timespec ts;
		int n;

		ns_to_timespec(deadline > now ? deadline - now : 0, &ts);
		n = ppoll(&p, 1, &ts, NULL);
		if (n > 0)
			return 0; /* ready, or an error the call will report */
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n == 0 && now_ns() >= deadline)
			return -ETIMEDOUT;
	}
}

/* io_connect_finish - connect(2) was interrupted: the kernel goes on
 * connecting; wait for it and fetch the outcome. */
static int io_connect_finish(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	socklen_t len = sizeof(int);
	int err = 0;

	while (poll(&p, 1, -1) < 0)
		if (errno != EINTR)
			return -errno;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	return -err;
}

static int io_sync_poll(struct io_req *r)
{
	uint64_t end = r->poll_end;

	if (r->deadline && r->deadline < end)
		end = r->deadline;
	for (;;) {
		struct timespec ts, *tsp = NULL;
		uint64_t now = 0;
		int n;

		if (end != DEADLINE_NONE) {
			now = now_ns();
			ns_to_timespec(end > now ? end - now : 0, &ts);
			tsp = &ts;
		}
		n = ppoll(r->buf, (nfds_t)r->len, tsp, NULL);
		if (n > 0)
			return n;
		if (n < 0 && errno != EINTR)
			return -errno;
		if (end != DEADLINE_NONE && now_ns() >= end)
			return end == r->poll_end ? 0 : -ETIMEDOUT;
	}
}

static short io_ready_events(uint8_t op)
{
	switch (op) {
	case IOP_READ: case IOP_READV: case IOP_RECV: case IOP_RECVMSG: case IOP_ACCEPT:
		return POLLIN;
	case IOP_WRITE: case IOP_WRITEV: case IOP_SEND: case IOP_SENDMSG:
		return POLLOUT;
	default:
		return 0;
	}
}

/* io_sync - @r as a blocking system call; EINTR restarts it. */
static ssize_t io_sync(struct io_req *r)
{
	short ev = io_ready_events(r->op);

	if (r->op == IOP_POLL)
		return io_sync_poll(r);
	if (r->deadline && ev && r->off < 0) {
		int w = io_wait_ready(r->fd, ev, r->deadline);

		if (w)
			return w;
	}
	for (;;) {
		ssize_t n;

		switch (r->op) {
		case IOP_READ:
			n = r->off < 0 ? read(r->fd, r->buf, r->len) : pread(r->fd, r->buf, r->len, r->off);
			break;
		case IOP_WRITE:
			n = r->off < 0 ? write(r->fd, r->buf, r->len) : pwrite(r->fd, r->buf, r->len, r->off);
			break;
		case IOP_READV:
			n = readv(r->fd, r->buf, (int)r->len);
			break;
		case IOP_WRITEV:
			n = writev(r->fd, r->buf, (int)r->len);
			break;
		case IOP_ACCEPT:
			n = accept4(r->fd, r->buf, r->addrlen, r->flags);
			break;
		case IOP_CONNECT:
			n = connect(r->fd, r->buf, (socklen_t)r->len);
			if (n < 0 && errno == EINTR)
				return io_connect_finish(r->fd);
			break;
		case IOP_RECV:
			n = recv(r->fd, r->buf, r->len, r->flags);
			break;
		case IOP_SEND:
			n = send(r->fd, r->buf, r->len, r->flags);
			break;
		case IOP_RECVMSG:
			n = recvmsg(r->fd, r->buf, r->flags);
			break;
		case IOP_SENDMSG:
			n = sendmsg(r->fd, r->buf, r->flags);
			break;
		case IOP_OPENAT:
			n = openat(r->fd, r->buf, r->flags, r->mode);
			break;
		case IOP_CLOSE:
			n = close(r->fd);
			if (n < 0 && errno == EINTR)
				return 0; /* Linux has released the descriptor */
			break;
		case IOP_FSYNC:
			n = r->flags ? fdatasync(r->fd) : fsync(r->fd);
			break;
		default:
			sa_panic("io: unknown opcode %u", r->op);
		}
		if (n >= 0)
			return n;
		if (errno != EINTR)
			return -errno;
	}
}

/* ------------------------------------------------------------------------
 * The thread pool
 */

/* io_try_nowait - @r's call made so that it cannot wait: -EAGAIN if it
 * would have.  -EOPNOTSUPP where the kernel has no such form for it. */
static ssize_t io_try_nowait(struct io_req *r)
{
	struct iovec one = { .iov_base = r->buf, .iov_len = r->len };
	ssize_t n;

	switch (r->op) {
	case IOP_READ:
		n = preadv2(r->fd, &one, 1, -1, RWF_NOWAIT);
		break;
	case IOP_WRITE:
		n = pwritev2(r->fd, &one, 1, -1, RWF_NOWAIT);
		break;
	case IOP_READV:
		n = preadv2(r->fd, r->buf, (int)r->len, -1, RWF_NOWAIT);
		break;
	case IOP_WRITEV:
		n = pwritev2(r->fd, r->buf, (int)r->len, -1, RWF_NOWAIT);
		break;
	case IOP_RECV:
		n = recv(r->fd, r->buf, r->len, r->flags | MSG_DONTWAIT);
		break;
	case IOP_SEND:
		n = send(r->fd, r->buf, r->len, r->flags | MSG_DONTWAIT);
		break;
	case IOP_RECVMSG:
		n = recvmsg(r->fd, r->buf, r->flags | MSG_DONTWAIT);
		break;
	case IOP_SENDMSG:
		n = sendmsg(r->fd, r->buf, r->flags | MSG_DONTWAIT);
		break;
	default:
		return -EOPNOTSUPP;
	}
	if (n >= 0)
		return n;
	return errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

/*
 * io_pool_ppoll - wait until @fds (the caller's @n, and the worker's
 * eventfd in the slot after them) or @end.  Returns the count of the
 * caller's ready, 0 at @end, -ECANCELED when an interruption came.
 */
static int io_pool_ppoll(struct io_worker *w, struct io_req *r, struct pollfd *fds, nfds_t n,
			 uint64_t end)
{
	for (;;) {
		struct timespec ts, *tsp = NULL;
		uint64_t drain;
		int k;

		if (atomic_load(&io.intr_epoch) != r->intr_epoch)
			return -ECANCELED;
		if (end != DEADLINE_NONE) {
			uint64_t now = now_ns();

			ns_to_timespec(end > now ? end - now : 0, &ts);
			tsp = &ts;
		}
		fds[n] = (struct pollfd){ .fd = w->efd, .events = POLLIN };
		k = ppoll(fds, n + 1, tsp, NULL);
		if (k < 0 && errno != EINTR)
			return -errno;
		if (k > 0 && fds[n].revents) {
			while (read(w->efd, &drain, sizeof(drain)) < 0 && errno == EINTR)
				;
			k--; /* the epoch says whether it was for us */
		}
		if (k > 0)
			return k;
		if (k == 0 && end != DEADLINE_NONE && now_ns() >= end)
			return 0;
	}
}

/* io_pool_waits - @r waits for a pipe, socket or terminal (not a file). */
static bool io_pool_waits(struct io_req *r)
{
	struct stat st;

	if (r->op == IOP_POLL)
		return true;
	if (!r->waits || r->off >= 0 || !io_ready_events(r->op) || fstat(r->fd, &st) < 0)
		return false;
	if (r->op == IOP_ACCEPT) /* no form that cannot wait: sockets only */
		return S_ISSOCK(st.st_mode);
	return S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || S_ISCHR(st.st_mode);
}

/*
 * io_pool_sync - @r on pool worker @w: io_sync(), but a wait for a pipe,
 * socket or terminal, or a poll, is one that io_interrupt() ends with
 * -ECANCELED (see Signals in the design notes).
 */
static ssize_t io_pool_sync(struct io_worker *w, struct io_req *r)
{
	struct pollfd stack[IO_POLL_STACK + 1], *fds = stack;
	uint64_t end = DEADLINE_NONE, drain;
	bool nowait = true;
	ssize_t n;

	if (!io_pool_waits(r))
		return io_sync(r);
	if (r->op == IOP_POLL && r->len + 1 > IO_POLL_STACK + 1) {
		fds = malloc((r->len + 1) * sizeof(*fds));
		if (!fds)
			return io_sync(r);
	}
	if (r->deadline)
		end = r->deadline;
	if (r->op == IOP_POLL && r->poll_end < end)
		end = r->poll_end;
	atomic_store(&w->armed, 1);
	while (read(w->efd, &drain, sizeof(drain)) < 0 && errno == EINTR)
		;
	for (;;) {
		if (r->op == IOP_POLL) {
			memcpy(fds, r->buf, r->len * sizeof(*fds));
			n = io_pool_ppoll(w, r, fds, (nfds_t)r->len, end);
			if (n > 0)
				memcpy(r->buf, fds, r->len * sizeof(*fds));
			else if (n == 0 && end != r->poll_end)
				n = -ETIMEDOUT;
			break;
		}
		/* First without waiting: what is there, or the call's error
		 * (a bad descriptor, the wrong direction), comes at once. */
		if (nowait) {
			n = io_try_nowait(r);
			if (n != -EAGAIN && n != -EOPNOTSUPP)
				break;
			nowait = n == -EAGAIN;
		}
		fds[0] = (struct pollfd){ .fd = r->fd, .events = io_ready_events(r->op) };
		n = io_pool_ppoll(w, r, fds, 1, end);
		if (n == 0)
			n = -ETIMEDOUT;
		if (n < 0)
			break;
		if (!nowait) {
			r->deadline = 0; /* ready: the call should not wait long */
			n = io_sync(r);
			break;
		}
	}
	atomic_store(&w->armed, 0);
	if (fds != stack)
		free(fds);
	return n;
}

static void *io_worker_main(void *arg)
{
	struct io_worker *w = arg;
	struct io_req *r = w->job;

	for (;;) {
		struct uthread *ut = r->ut;

		r->res = io_pool_sync(w, r);
		sched_ready(ut); /* @r may be gone from here on */

		spin_lock(&io.lock);
		r = io.head;
		if (r) {
			io.head = r->next;
			if (!io.head)
				io.tail = NULL;
			spin_unlock(&io.lock);
			continue;
		}
		atomic_store_explicit(&w->word, 0, memory_order_relaxed);
		w->next = io.idle;
		io.idle = w;
		spin_unlock(&io.lock);
		while (!atomic_load_explicit(&w->word, memory_order_acquire))
			futex_wait(&w->word, 0, NULL);
		r = w->job;
	}
	return NULL;
}

/*
 * io_fd_high - @fd moved to a number at or above IO_FD_HIGH if there is
 * one, the number to use.  A worker starts in the middle of the program's
 * calls: with the lowest free number its eventfd would take the number of
 * a descriptor the program just closed, and the program's second close of
 * it (which must fail with EBADF) would close the worker's.
 */
#define IO_FD_HIGH 512

static int io_fd_high(int fd)
{
	int hi = fcntl(fd, F_DUPFD_CLOEXEC, IO_FD_HIGH);

	if (hi < 0)
		return fd;
	close(fd);
	return hi;
}

/* io_worker_start - a new worker whose first job is @r.  0 or -errno. */
static int io_worker_start(struct io_req *r)
{
	struct io_worker *w = calloc(1, sizeof(*w));
	sigset_t all, old;
	pthread_attr_t a;
	pthread_t th;
	int e;

	if (!w)
		return -ENOMEM;
	w->job = r;
	w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->efd < 0) {
		free(w);
		return -EMFILE;
	}
	w->efd = io_fd_high(w->efd);
	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, IO_WORKER_STACK);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	/* Workers take no signals: the program's handlers run on its threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	e = pthread_create(&th, &a, io_worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&a);
	if (e) {
		close(w->efd);
		free(w);
		return -e;
	}
	spin_lock(&io.lock);
	io.all[atomic_load_explicit(&io.nall, memory_order_relaxed)] = w;
	atomic_fetch_add(&io.nall, 1); /* publishes the slot */
	spin_unlock(&io.lock);
	return 0;
}

/*
 * io_pool_submit - hand @r to a worker.  False if no worker can ever run it.
 *
 * A new worker may finish @r and wake the caller before it parks (the
 * wake waits for its switch: sched_ready() spins on ->on_cpu).  Until
 * then the caller must not be parted from its VP: were its carrier
 * handed on while it blocks in thread creation (mmap(), a page fault),
 * the blocked and unblocked upcalls would queue it as runnable, and the
 * worker's wake, seeing it off its carrier, would queue it again.  So
 * the creation is bracketed like any libc call libsa makes with a wake
 * pending.
 */
static bool io_pool_submit(struct io_req *r)
{
	struct io_worker *w;
	struct vp *np;
	int e;

	spin_lock(&io.lock);
	w = io.idle;
	if (w) {
		io.idle = w->next;
		w->job = r;
		spin_unlock(&io.lock);
		atomic_store_explicit(&w->word, 1, memory_order_release);
		futex_wake(&w->word, 1);
		return true;
	}
	if (io.nworkers < IO_POOL_MAX) {
		io.nworkers++;
		spin_unlock(&io.lock);
		np = np_enter();
		e = io_worker_start(r);
		np_exit(np);
		if (e == 0)
			return true;
		spin_lock(&io.lock);
		io.nworkers--;
		if (!io.nworkers) {
			spin_unlock(&io.lock);
			return false;
		}
	}
	r->next = NULL;
	if (io.tail)
		io.tail->next = r;
	else
		io.head = r;
	io.tail = r;
	spin_unlock(&io.lock);
	return true;
}

static ssize_t io_pool_call(struct vp *vp, struct io_req *r)
{
	atomic_fetch_add_explicit(&io.fallback_ops, 1, memory_order_relaxed);
	r->ut = vp->cur;
	r->intr_epoch = atomic_load(&io.intr_epoch);
	if (!io_pool_submit(r))
		return io_sync(r); /* no thread to be had: block this VP */
	/* A worker may finish first: sched_ready() waits for our switch. */
	sched_park_unlock(NULL);
	if (r->res == -ECANCELED) { /* an interruption (io_pool_sync()) */
		if (r->deadline && now_ns() >= r->deadline)
			return -ETIMEDOUT;
		if (io_intr_return())
			return -EINTR;
		return io_call(r);
	}
	return (ssize_t)r->res;
}

/* ------------------------------------------------------------------------
 * Dispatch
 */

static __always_inline uint64_t io_deadline_self(struct vp *vp)
{
	return vp ? vp->cur->io_deadline : io_thread_deadline;
}

/*
 * io_past_deadline_idle - @r's deadline passed already and its descriptor
 * has nothing for it: the call ends at once, as the system call with a
 * timeout would, rather than after the ring's grace (io_ring_park()).
 */
static bool io_past_deadline_idle(const struct io_req *r)
{
	struct pollfd p = { .fd = r->fd, .events = r->waits ? io_ready_events(r->op) : 0 };

	return p.events && r->deadline && r->deadline <= now_ns() && poll(&p, 1, 0) == 0;
}

/* io_call - run @r the way the caller's kind of thread and the backend say. */
static ssize_t io_call(struct io_req *r)
{
	struct vp *vp = vp_self();
	struct io_vp *iv;
	bool by_timeo = false;
	ssize_t n;

	r->deadline = r->op == IOP_CLOSE ? 0 : io_deadline_self(vp);
	if (r->timeo && (!r->deadline || r->timeo < r->deadline)) {
		r->deadline = r->timeo;
		by_timeo = true;
	}
	if (!vp)
		n = io_sync(r);
	else if (io.backend == SA_IO_BACKEND_URING && (iv = io_vp_get(vp)) != NULL)
		n = io_past_deadline_idle(r) ? -ETIMEDOUT : io_ring_call(vp, iv, r);
	else
		n = io_pool_call(vp, r);
	/* A socket's own timeout ends the call as the kernel ends it. */
	if (n == -ETIMEDOUT && by_timeo)
		n = r->op == IOP_CONNECT ? -EINPROGRESS : -EAGAIN;
	return n;
}

/*
 * io_sock_timeo - the end of the SO_RCVTIMEO or SO_SNDTIMEO timeout that
 * the kernel would apply to @r, monotonic ns from now; 0 when none does
 * (none set, not a socket: ENOTSOCK).  One getsockopt(2).
 */
static uint64_t io_sock_timeo(const struct io_req *r)
{
	struct timeval tv;
	socklen_t len = sizeof(tv);
	int opt;

	switch (r->op) {
	case IOP_READ: case IOP_READV: case IOP_RECV: case IOP_RECVMSG: case IOP_ACCEPT:
		opt = SO_RCVTIMEO;
		break;
	case IOP_WRITE: case IOP_WRITEV: case IOP_SEND: case IOP_SENDMSG: case IOP_CONNECT:
		opt = SO_SNDTIMEO;
		break;
	default:
		return 0;
	}
	if (getsockopt(r->fd, SOL_SOCKET, opt, &tv, &len) < 0 || (!tv.tv_sec && !tv.tv_usec))
		return 0;
	return now_ns() + (uint64_t)tv.tv_sec * NSEC_PER_SEC + (uint64_t)tv.tv_usec * 1000;
}

/**
 * io_sock_timeo_lazy - from now on, look for SO_RCVTIMEO and SO_SNDTIMEO
 * only once io_sock_timeo_note() says a timeout was set in the process.
 * For the LD_PRELOAD shim, which sees every setsockopt() the program
 * makes; at start-up.
 */
void io_sock_timeo_lazy(void)
{
	io.timeo_lazy = true;
}

/** io_sock_timeo_note - a socket timeout was set: look for them on every call. */
void io_sock_timeo_note(void)
{
	atomic_store_explicit(&io.timeo_seen, true, memory_order_relaxed);
}

/*
 * io_fd_call - run @r, an op that may wait for its descriptor.  If the
 * descriptor is O_NONBLOCK, or @dontwait, the op must not wait, which a
 * ring would do (see the design notes): then the plain system call, which
 * cannot block, runs right here.  An fcntl error (a bad descriptor) goes
 * that way too, and the call itself reports it.
 */
static ssize_t io_fd_call(struct io_req *r, bool dontwait)
{
	if (vp_self()) {
		int fl = dontwait ? 0 : fcntl(r->fd, F_GETFL);

		if (dontwait || fl < 0 || (fl & O_NONBLOCK)) {
			r->deadline = 0;
			return io_sync(r);
		}
		/* A plain thread's blocking call applies them itself. */
		if (!io.timeo_lazy || atomic_load_explicit(&io.timeo_seen, memory_order_relaxed))
			r->timeo = io_sock_timeo(r);
		r->waits = true;
	}
	return io_call(r);
}

/* io_fd_streams - @fd is a pipe or a stream socket, where a blocking
 * write(2) waits until all of it is written. */
static bool io_fd_streams(int fd)
{
	struct stat st;
	socklen_t len = sizeof(int);
	int type;

	if (fstat(fd, &st) < 0)
		return false;
	if (S_ISFIFO(st.st_mode))
		return true;
	return S_ISSOCK(st.st_mode) &&
	       getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

/* iov_total - the bytes @n buffers of @iov hold, saturated. */
static size_t iov_total(const struct iovec *iov, size_t n)
{
	size_t t = 0;

	for (size_t i = 0; i < n; i++)
		t = iov[i].iov_len > SIZE_MAX - t ? SIZE_MAX : t + iov[i].iov_len;
	return t;
}

/* iov_skip - drop the first @done bytes of the @*n buffers of @iov. */
static struct iovec *iov_skip(struct iovec *iov, size_t *n, size_t done)
{
	while (*n && done >= iov->iov_len) {
		done -= iov->iov_len;
		iov++;
		(*n)--;
	}
	if (*n) {
		iov->iov_base = (char *)iov->iov_base + done;
		iov->iov_len -= done;
	}
	return iov;
}

#define IO_IOV_STACK 16 /* io_write_full: iovecs copied on the stack */

/*
 * io_write_full - run @r, a write, send, writev or sendmsg, and if a
 * uthread's blocking call on a pipe or stream socket wrote only part, go
 * on writing the rest, as the blocking system call does: a ring (or a
 * poll-and-write) completes with what fitted in the buffer.  An error,
 * an interruption or a timeout after some bytes went ends the call with
 * their count, as in the kernel.  Only a short write pays the fstat.
 */
static ssize_t io_write_full(struct io_req *r, bool dontwait)
{
	struct iovec stack_iov[IO_IOV_STACK], *iov = NULL;
	struct msghdr msg;
	size_t total, done, n = 0, iov_size = 0;
	ssize_t m = io_fd_call(r, dontwait);

	if (m <= 0 || !r->waits)
		return m;
	done = (size_t)m;
	if (r->op == IOP_WRITE || r->op == IOP_SEND) {
		total = r->len;
	} else {
		const struct iovec *src = r->op == IOP_WRITEV ? r->buf :
					  ((const struct msghdr *)r->buf)->msg_iov;

		n = r->op == IOP_WRITEV ? r->len : ((const struct msghdr *)r->buf)->msg_iovlen;
		total = iov_total(src, n);
		if (done >= total || !io_fd_streams(r->fd))
			return m;
		iov = stack_iov;
		if (n > IO_IOV_STACK) {
			iov_size = n * sizeof(*iov);
			iov = sa_mem_zalloc(iov_size);
			if (!iov)
				return m;
		}
		memcpy(iov, src, n * sizeof(*iov));
		if (r->op == IOP_SENDMSG) {
			/* Ancillary data went with the first part. */
			msg = *(const struct msghdr *)r->buf;
			msg.msg_control = NULL;
			msg.msg_controllen = 0;
		}
	}
	if (done >= total || (!iov && !io_fd_streams(r->fd)))
		return m;
	while (done < total && done <= (size_t)SSIZE_MAX) {
		if (iov) {
			size_t left = n;
			struct iovec *at = iov_skip(iov, &left, (size_t)m);

			memmove(iov, at, left * sizeof(*iov));
			n = left;
			if (r->op == IOP_WRITEV) {
				r->buf = iov;
				r->len = n;
			} else {
				msg.msg_iov = iov;
				msg.msg_iovlen = n;
				r->buf = &msg;
			}
		} else {
			r->buf = (char *)r->buf + m;
			r->len -= (size_t)m;
		}
		m = io_call(r);
		if (m <= 0)
			break;
		done += (size_t)m;
	}
	if (iov_size)
		sa_mem_free(iov, iov_size);
	return (ssize_t)done;
}

/*
 * io_at_call - run @r, a pread or pwrite.  A ring would read a pipe or
 * socket at the "offset" where pread(2) fails with ESPIPE, so a descriptor
 * that cannot seek gets the plain call, which fails at once.
 */
static ssize_t io_at_call(struct io_req *r)
{
	if (r->off < 0)
		return -EINVAL;
	if (vp_self() && lseek(r->fd, 0, SEEK_CUR) < 0)
		return io_sync(r);
	return io_call(r);
}

SA_EXPORT ssize_t sa_read(int fd, void *buf, size_t count)
{
	struct io_req r = { .op = IOP_READ, .fd = fd, .buf = buf,
			    .len = count > IO_MAX_RW ? IO_MAX_RW : count, .off = -1 };

	return io_fd_call(&r, false);
}

SA_EXPORT ssize_t sa_write(int fd, const void *buf, size_t count)
{
	struct io_req r = { .op = IOP_WRITE, .fd = fd, .buf = (void *)buf,
			    .len = count > IO_MAX_RW ? IO_MAX_RW : count, .off = -1 };

	return io_write_full(&r, false);
}

SA_EXPORT ssize_t sa_pread(int fd, void *buf, size_t count, off_t offset)
{
	struct io_req r = { .op = IOP_READ, .fd = fd, .buf = buf,
			    .len = count > IO_MAX_RW ? IO_MAX_RW : count, .off = offset };

	return io_at_call(&r);
}

SA_EXPORT ssize_t sa_pwrite(int fd, const void *buf, size_t count, off_t offset)
{
	struct io_req r = { .op = IOP_WRITE, .fd = fd, .buf = (void *)buf,
			    .len = count > IO_MAX_RW ? IO_MAX_RW : count, .off = offset };

	return io_at_call(&r);
}

SA_EXPORT ssize_t sa_readv(int fd, const struct iovec *iov, int iovcnt)
{
	struct io_req r = { .op = IOP_READV, .fd = fd, .buf = (void *)iov,
			    .len = (size_t)iovcnt, .off = -1 };

	if (iovcnt < 0 || iovcnt > IOV_MAX)
		return -EINVAL;
	return io_fd_call(&r, false);
}

SA_EXPORT ssize_t sa_writev(int fd, const struct iovec *iov, int iovcnt)
{
	struct io_req r = { .op = IOP_WRITEV, .fd = fd, .buf = (void *)iov,
			    .len = (size_t)iovcnt, .off = -1 };

	if (iovcnt < 0 || iovcnt > IOV_MAX)
		return -EINVAL;
	return io_write_full(&r, false);
}

SA_EXPORT int sa_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
	struct io_req r = { .op = IOP_ACCEPT, .fd = fd, .buf = addr, .addrlen = addrlen,
			    .flags = flags, .off = -1 };

	return (int)io_fd_call(&r, false);
}

SA_EXPORT int sa_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
	struct io_req r = { .op = IOP_CONNECT, .fd = fd, .buf = (void *)addr,
			    .len = addrlen, .off = -1 };

	return (int)io_fd_call(&r, false);
}

SA_EXPORT ssize_t sa_recv(int fd, void *buf, size_t len, int flags)
{
	struct io_req r = { .op = IOP_RECV, .fd = fd, .buf = buf, .flags = flags,
			    .len = len > IO_MAX_RW ? IO_MAX_RW : len, .off = -1 };

	return io_fd_call(&r, flags & MSG_DONTWAIT);
}

SA_EXPORT ssize_t sa_send(int fd, const void *buf, size_t len, int flags)
{
	struct io_req r = { .op = IOP_SEND, .fd = fd, .buf = (void *)buf, .flags = flags,
			    .len = len > IO_MAX_RW ? IO_MAX_RW : len, .off = -1 };

	return io_write_full(&r, flags & MSG_DONTWAIT);
}

SA_EXPORT ssize_t sa_recvmsg(int fd, struct msghdr *msg, int flags)
{
	struct io_req r = { .op = IOP_RECVMSG, .fd = fd, .buf = msg, .flags = flags,
			    .off = -1 };

	return io_fd_call(&r, flags & MSG_DONTWAIT);
}

SA_EXPORT ssize_t sa_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	struct io_req r = { .op = IOP_SENDMSG, .fd = fd, .buf = (void *)msg,
			    .flags = flags, .off = -1 };

	return io_write_full(&r, flags & MSG_DONTWAIT);
}

/**
 * io_open_may_wait - an open of @path with @flags may wait for something
 * else (a FIFO's other end, a device's line), as it must unless
 * O_NONBLOCK.  One stat of the path.
 */
bool io_open_may_wait(int dirfd, const char *path, int flags)
{
	struct stat st;

	return !(flags & O_NONBLOCK) &&
	       fstatat(dirfd, path, &st, (flags & O_NOFOLLOW) ? AT_SYMLINK_NOFOLLOW : 0) == 0 &&
	       (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode));
}

/**
 * io_openat - sa_openat() once the caller knows whether the open may
 * wait (@waits: in the kernel's worker, see io_prep()).
 */
int io_openat(int dirfd, const char *path, int flags, mode_t mode, bool waits)
{
	struct io_req r = { .op = IOP_OPENAT, .fd = dirfd, .buf = (void *)path,
			    .flags = flags, .mode = mode, .off = -1, .async = waits };

	return (int)io_call(&r);
}

SA_EXPORT int sa_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	return io_openat(dirfd, path, flags, mode, io_open_may_wait(dirfd, path, flags));
}

SA_EXPORT int sa_close(int fd)
{
	struct io_req r = { .op = IOP_CLOSE, .fd = fd, .off = -1 };

	return (int)io_call(&r);
}

SA_EXPORT int sa_fsync(int fd)
{
	struct io_req r = { .op = IOP_FSYNC, .fd = fd, .off = -1 };

	return (int)io_call(&r);
}

/**
 * io_fdatasync - fdatasync(2), parking the calling uthread: sa_fsync()
 * without the metadata a later read does not need.  For the shim.
 */
int io_fdatasync(int fd)
{
	struct io_req r = { .op = IOP_FSYNC, .fd = fd, .flags = 1, .off = -1 };

	return (int)io_call(&r);
}

/* ------------------------------------------------------------------------
 * sa_poll
 */

/* io_ring_poll - sa_poll on @vp's ring: a group of POLL_ADDs and a timeout. */
static int io_ring_poll(struct vp *vp, struct io_vp *iv, struct io_req *pr)
{
	struct pollfd *fds = pr->buf;
	nfds_t nfds = (nfds_t)pr->len;
	struct io_req stack_reqs[IO_POLL_STACK + 1], *reqs = stack_reqs;
	size_t reqs_size = 0;
	uint64_t end = pr->poll_end;
	struct io_group g = { .ut = vp->cur };
	int count = 0, err = 0;
	bool interrupted;
	uint32_t n = 0;

	if (pr->deadline && pr->deadline < end)
		end = pr->deadline;
	for (nfds_t i = 0; i < nfds; i++)
		n += fds[i].fd >= 0;
	if (n + 1 > ARRAY_SIZE(stack_reqs)) {
		reqs_size = (n + 1) * sizeof(*reqs);
		reqs = sa_mem_zalloc(reqs_size);
		if (!reqs)
			return -ENOMEM;
	}
	n = 0;
	for (nfds_t i = 0; i < nfds; i++) {
		if (fds[i].fd < 0)
			continue;
		reqs[n] = (struct io_req){ .op = IOP_POLL, .fd = fds[i].fd, .off = (off_t)i,
					   .len = (uint16_t)fds[i].events, .grp = &g,
					   .res = IO_RES_PENDING };
		n++;
	}
	if (end != DEADLINE_NONE)
		reqs[n++] = (struct io_req){ .op = IOP_TIMEOUT, .poll_end = end, .grp = &g,
					     .res = IO_RES_PENDING };
	g.reqs = reqs;
	g.n = n;
	if (n == 0) {
		/* No descriptor and no limit: poll(2) would sleep for good. */
		for (;;)
			sa_sleep_ns(UINT64_MAX);
	}
again:
	if (!vp->io_inflight)
		iv->intr_seen = atomic_load_explicit(&io.intr_epoch, memory_order_acquire);
	for (uint32_t i = 0; i < n; i++) {
		reqs[i].res = IO_RES_PENDING;
		io_prep(io_sqe(iv), &reqs[i]);
	}
	g.done = 0;
	g.cancelling = false;
	vp->io_inflight += n;
	atomic_store_explicit(&iv->ops, atomic_load_explicit(&iv->ops, memory_order_relaxed) + n,
			      memory_order_relaxed);
	sched_park_unlock(NULL);

	for (nfds_t i = 0; i < nfds; i++)
		fds[i].revents = 0;
	interrupted = true; /* unless a member ended the group */
	for (uint32_t i = 0; i < n; i++)
		if (reqs[i].res != -ECANCELED)
			interrupted = false;
	if (interrupted) {
		if (io_intr_return()) {
			if (reqs != stack_reqs)
				sa_mem_free(reqs, reqs_size);
			return -EINTR;
		}
		goto again;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct io_req *m = &reqs[i];
		short revents = 0;

		if (m->op == IOP_TIMEOUT)
			continue;
		if (m->res > 0)
			revents = (short)m->res;
		else if (m->res == -EBADF)
			revents = POLLNVAL;
		else if (m->res < 0 && m->res != -ECANCELED && !err)
			err = (int)m->res;
		fds[m->off].revents = revents;
		count += revents != 0;
	}
	if (reqs != stack_reqs)
		sa_mem_free(reqs, reqs_size);
	if (count)
		return count;
	if (err)
		return err;
	return end == pr->poll_end ? 0 : -ETIMEDOUT;
}

SA_EXPORT int sa_poll(struct pollfd *fds, nfds_t nfds, int timeout_ms)
{
	struct vp *vp = vp_self();
	struct io_req r = { .op = IOP_POLL, .buf = fds, .len = nfds, .off = -1,
			    .poll_end = DEADLINE_NONE };
	struct io_vp *iv;
	int n;

	r.deadline = io_deadline_self(vp);
	if (timeout_ms >= 0)
		r.poll_end = now_ns() + (uint64_t)timeout_ms * 1000000ull;
	if (!vp)
		return io_sync_poll(&r);
	/* One look without waiting answers most calls, with poll(2)'s revents. */
	do
		n = poll(fds, nfds, 0);
	while (n < 0 && errno == EINTR);
	if (n != 0)
		return n < 0 ? -errno : n;
	if (timeout_ms == 0)
		return 0;
	if (r.deadline && r.deadline <= now_ns())
		return -ETIMEDOUT;
	if (io.backend == SA_IO_BACKEND_URING && (iv = io_vp_get(vp)) != NULL)
		return io_ring_poll(vp, iv, &r);
	return (int)io_pool_call(vp, &r);
}

/* ------------------------------------------------------------------------
 * Futex waits
 */

/**
 * io_futex_wait - park the calling uthread until a FUTEX_WAKE on the
 * 32-bit word @w (a process-private futex if @private), if @w holds @val,
 * or until @deadline (monotonic ns; DEADLINE_NONE for none).
 * Returns 0 when woken or when @w did not hold @val (either way the caller
 * looks at its word again), -ETIMEDOUT, -EINTR when an interruption ended
 * the wait and io_set_intr_hook()'s hook said so, -EOPNOTSUPP when the
 * caller is not a uthread or its VP has no ring that can wait on a futex
 * (Linux before 6.7, SA_IO=threads): the caller must wait another way.
 * Other errors are the kernel's (-EFAULT, -EINVAL).
 */
int io_futex_wait(_Atomic uint32_t *w, uint32_t val, bool private, uint64_t deadline)
{
	struct io_req r = { .op = IOP_FUTEX_WAIT, .buf = (void *)w, .len = val, .off = -1,
			    .flags = IO_FUTEX2_SIZE_U32 | (private ? IO_FUTEX2_PRIVATE : 0) };

	for (;;) {
		struct vp *vp = vp_self();
		struct io_vp *iv;

		if (!vp || !io.futex_ok || io.backend != SA_IO_BACKEND_URING ||
		    !(iv = io_vp_get(vp)))
			return -EOPNOTSUPP;
		if (deadline != DEADLINE_NONE && now_ns() >= deadline)
			return -ETIMEDOUT;
		r.deadline = deadline == DEADLINE_NONE ? 0 : deadline;
		io_ring_park(vp, iv, &r);
		switch (r.res) {
		case 0:
		case -EAGAIN: /* the word changed before the wait began */
			return 0;
		case -ECANCELED: /* the deadline's timeout, or an interruption */
			if (deadline != DEADLINE_NONE && now_ns() >= deadline)
				return -ETIMEDOUT;
			if (io_intr_return())
				return -EINTR;
			break; /* wait again */
		case -EINTR:
			break;
		default:
			return (int)r.res;
		}
	}
}

/* ------------------------------------------------------------------------
 * Deadlines
 */

SA_EXPORT int sa_io_set_deadline(clockid_t clk, const struct timespec *abs)
{
	struct vp *vp = vp_self();
	uint64_t d = 0;

	if (abs) {
		int r = deadline_from_abs(clk, abs, &d);

		if (r)
			return r;
		if (!d)
			d = 1; /* 0 means none */
	} else if (clk != CLOCK_MONOTONIC && clk != CLOCK_REALTIME) {
		return -EINVAL;
	}
	if (vp)
		vp->cur->io_deadline = d;
	else
		io_thread_deadline = d;
	return 0;
}
