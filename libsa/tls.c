/* tls.c - per-uthread TLS mode: a glibc-compatible TCB and static TLS block per uthread */

/*
 * In the TLS mode (used by libsa-preload.so, see libsa/preload/preload.c)
 * every uthread owns a thread control block exactly like the ones glibc
 * gives its own threads, and the context switch points %fs at it.  errno,
 * __thread variables, pthread_self() and the owner identity of glibc's
 * internal locks then belong to the uthread, not to the kernel thread that
 * happens to carry it.
 *
 * What the block is.  On x86-64 glibc puts the TCB at the thread pointer
 * (the %fs base) and the static TLS blocks of the initially loaded modules
 * just below it.  The TCB starts with the tcbhead (tcb and self both point
 * at the TCB, dtv is the module table, the stack protector canary sits at
 * %fs:0x28 and the pointer-mangling guard at %fs:0x30) and goes on with the
 * rest of glibc's thread descriptor.  The dynamic loader exports, as
 * GLIBC_PRIVATE, the functions its own thread library uses to make and
 * free such a block: _dl_allocate_tls(NULL) allocates static TLS plus TCB,
 * zeroes the TCB, builds the dtv and copies every static module's TLS
 * initialisation image; _dl_deallocate_tls() frees the dtv, the blocks
 * __tls_get_addr() allocated later for dlopen'ed modules, and the storage.
 * libsa uses exactly those, found with dlvsym(), so the layout, the size
 * and the TLS generation logic stay glibc's.  Rejected: computing the layout
 * ourselves (it changes between glibc releases, and a module dlopen'ed later
 * must find a dtv it can extend) and cloning the creating thread's block
 * (it would copy its list links, robust list and dtv pointers).
 *
 * What libsa fills in.  The tcbhead words glibc's thread creation would:
 * tcb and self (the TCB), multiple_threads, and the process-wide values
 * sysinfo, stack_guard, pointer_guard and feature_1, copied from the
 * creating thread (they are the same in every thread; pointer_guard must
 * match or setjmp/longjmp and atexit handlers break).  Then two fields of
 * the descriptor, at offsets glibc publishes for its debugger library
 * (_thread_db_pthread_tid, _thread_db_sizeof_pthread):
 *   - tid: glibc's internal recursive locks (the loader's locks taken by
 *     dlopen, dl_iterate_phdr and C++ exception unwinding) compare it with
 *     the owner they stored.  A uthread has no kernel tid of its own, and
 *     two uthreads must never look alike, so it gets a unique value above
 *     any kernel tid: TLS_TID_BASE | uthread id.  Calls that hand the tid
 *     to the kernel (pthread_setaffinity_np(pthread_self()), ...) then fail
 *     with ESRCH rather than act on a stranger.
 *   - the rseq area (at __rseq_offset from the thread pointer): the kernel
 *     registered only the carrier's, so the uthread's cpu_id says
 *     "registration failed" (-2) and sched_getcpu() asks the kernel.
 *   - the list entry (_thread_db_pthread_list): glibc links its own
 *     threads there; a uthread's is an empty list, so that the child of a
 *     fork() made by a uthread can take it off "its" list.
 * stdio and the other _IO locks record THREAD_SELF (the TCB address) as
 * owner, which is per uthread with no further work.
 *
 * The switch.  switch_to() calls tls_switch() (defs.h), a flag test on the
 * line it already reads; only when either side is a TLS context it calls
 * __tls_switch(), which writes the %fs base: wrfsbase when the kernel
 * allows it (AT_HWCAP2 has HWCAP2_FSGSBASE), else arch_prctl(ARCH_SET_FS).
 * A context without the flag (a VP's idle context) runs on its kernel
 * thread's own block, vp->kfs (its carrier's, act->kfs).  Between the write and sa_ctx_switch() no
 * code touches %fs.  libsa's own per-kernel-thread state is found through
 * %gs (vp_self() in defs.h), which this never touches: every block made
 * here holds VP_VIA_GS in its sa_tls_vp, so vp_self() on a TLS uthread
 * asks the carrier's gs base.
 *
 * The main thread.  It keeps its own block (its uthread's tp is the
 * original thread pointer).  VP 0's idle context, which runs on the main
 * kernel thread while the main uthread may run elsewhere, gets a block of
 * its own, so the two never share errno.
 *
 * Lifetime.  tls_alloc() runs at spawn; the uthread's first act is
 * tls_thread_start(), which sets the <ctype.h> table pointers in its TLS as
 * glibc does for a new thread; the block is freed with the
 * uthread struct (join, or at once for a detached uthread), by another
 * context, because the dying uthread still runs on it.  tls_thread_exit()
 * runs the C++ thread_local destructors (__call_tls_dtors) on the uthread
 * before it ends, as glibc does at thread exit.
 *
 * glibc's per-thread malloc cache.  malloc keeps a cache of freed chunks
 * per thread (the tcache), reached from a pointer in libc's static TLS,
 * and frees it only on its own thread-exit path, which a uthread never
 * takes: every ended uthread would leak the cache and the chunks in it
 * (1.5 KiB a thread in a create/join loop).  The pointer has no symbol,
 * so tls_enable() finds it: it frees a chunk of each of the two smallest
 * sizes and looks in the calling thread's static TLS for the word that
 * points at a cache whose first two bins start with exactly those chunks.
 * tls_free() then does what glibc's exit path does with the ended
 * uthread's cache: frees every chunk in it (the bins' links are
 * pointer-protected, as in glibc since 2.32), then the cache.  Where the
 * word is not found (another malloc, the cache turned off, an older
 * glibc) nothing is done and the cache leaks as before.
 *
 * Known gaps (see libsa-preload(7)): a module dlopen'ed with initial-exec TLS is initialised only
 * in the threads glibc knows, so existing uthreads see its static block
 * zeroed; stackblock_size stays 0, so glibc's alloca cut-off is the main
 * thread's.
 */

#include <asm/prctl.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <gnu/libc-version.h>
#include <sys/auxv.h>
#include <sys/uio.h>

#include "defs.h"

#ifndef HWCAP2_FSGSBASE
#define HWCAP2_FSGSBASE (1 << 1)
#endif

#define TLS_TID_BASE 0x40000000
#define RSEQ_CPU_ID_REGISTRATION_FAILED (-2)

/* The tcbhead words libsa reads or writes (x86-64 glibc layout). */
struct tcbhead {
	void *tcb;
	void *dtv;
	void *self;
	int multiple_threads;
	int gscope_flag;
	uintptr_t sysinfo;
	uintptr_t stack_guard;
	uintptr_t pointer_guard;
	unsigned long unused_vgetcpu_cache[2];
	unsigned int feature_1;
};

_Static_assert(offsetof(struct tcbhead, stack_guard) == 0x28, "tcbhead: canary at %fs:0x28");
_Static_assert(offsetof(struct tcbhead, pointer_guard) == 0x30, "tcbhead: guard at %fs:0x30");
_Static_assert(offsetof(struct tcbhead, feature_1) == 0x48, "tcbhead: feature_1 at %fs:0x48");

static struct {
	void *(*allocate)(void *mem);
	void (*deallocate)(void *tcb, bool dealloc_tcb);
	void (*call_tls_dtors)(void);
	void (*ctype_init)(void);
	uint32_t tcb_size;
	uint32_t tid_off;
	uint32_t list_off;       /* the descriptor's list entry, or 0 */
	long rseq_off;
	bool rseq;
	bool wrfsbase;
} glibc;

/* Each uthread's own handle, in its own static TLS (tls_handle_of()). */
static __thread sa_uthread_t tls_self_handle __attribute__((tls_model("initial-exec")));
static long tls_handle_off;
static long tls_vp_off; /* of sa_tls_vp, which holds VP_VIA_GS in a block */

static __always_inline void *fs_base(void)
{
	void *tp;

	asm volatile("movq %%fs:0x10, %0" : "=r"(tp)); /* tcbhead.self */
	return tp;
}

static const uint32_t *td_symbol(const char *name)
{
	return dlvsym(RTLD_DEFAULT, name, "GLIBC_PRIVATE");
}

/* ------------------------------------------------------------------------
 * glibc's per-thread malloc cache (see the design comment)
 */

#define TCACHE_BINS 64

/* glibc's tcache_perthread_struct (2.30 on). */
struct tcache {
	uint16_t counts[TCACHE_BINS];
	void *entries[TCACHE_BINS];
};

static long tcache_off; /* of libc's tcache pointer from the thread pointer; 0: unknown */

static int peek_pipe[2] = { -1, -1 }; /* during tcache_find() only */

/*
 * peek - copy @n bytes at @addr, which may be unmapped; false if it is.
 * process_vm_readv() reads without faulting; a kernel built without it
 * (CONFIG_CROSS_MEMORY_ATTACH) still fails a write(2) from an unmapped
 * buffer with EFAULT, so the bytes go through a pipe instead.
 */
static bool peek(const void *addr, void *out, size_t n)
{
	struct iovec l = { out, n }, r = { (void *)addr, n };
	ssize_t got = process_vm_readv(getpid(), &l, 1, &r, 1, 0);

	if (got == (ssize_t)n)
		return true;
	if (got >= 0 || errno != ENOSYS)
		return false;
	/* Raw calls: the LD_PRELOAD shim's write() and read() are not for
	 * libsa itself. */
	if (peek_pipe[0] < 0 &&
	    sa_syscall6(SYS_pipe2, (long)peek_pipe, O_CLOEXEC | O_NONBLOCK, 0, 0, 0, 0))
		return false;
	return sa_syscall6(SYS_write, peek_pipe[1], (long)addr, (long)n, 0, 0, 0) == (long)n &&
	       sa_syscall6(SYS_read, peek_pipe[0], (long)out, (long)n, 0, 0, 0) == (long)n;
}

/*
 * tcache_probe - the word in the calling thread's static TLS that points
 * at a cache whose bins 0 and 1 start with @p and @q; its offset from the
 * thread pointer @tp, or 0.
 */
static long tcache_probe(char *tp, uintptr_t p, uintptr_t q)
{
	void (*static_info)(size_t *, size_t *) =
		(void (*)(size_t *, size_t *))dlvsym(RTLD_DEFAULT, "_dl_get_tls_static_info",
						     "GLIBC_PRIVATE");
	size_t size = 0, align = 0;
	uintptr_t words[32];

	if (!static_info)
		return 0;
	static_info(&size, &align);
	/* Downward from the thread pointer, 256 bytes at a time, until the
	 * static area ends or is not mapped (the main thread's block may
	 * start anywhere in its page). */
	for (size_t done = 0; done < size; done += sizeof(words)) {
		char *base = tp - done - sizeof(words);

		if (!peek(base, words, sizeof(words)))
			return 0;
		for (size_t i = 0; i < 32; i++) {
			struct tcache *tc = (struct tcache *)words[i];
			uintptr_t heads[2];
			uint16_t counts[2];

			if (!tc || ((uintptr_t)tc & 15) ||
			    !peek(&tc->entries[0], heads, sizeof(heads)) ||
			    heads[0] != p || heads[1] != q ||
			    !peek(&tc->counts[0], counts, sizeof(counts)) ||
			    !counts[0] || !counts[1])
				continue;
			return (long)(base + i * sizeof(uintptr_t) - tp);
		}
	}
	return 0;
}

/* tcache_find - set tcache_off from the calling thread's cache. */
static void tcache_find(void)
{
	enum { N = 8 }; /* more than a bin holds: its chunks are taken first */
	void *a[N] = { 0 }, *b[N] = { 0 };
	const char *v = gnu_get_libc_version();
	int major = 0, minor = 0;

	/* Protected bin links came with 2.32. */
	if (sscanf(v, "%d.%d", &major, &minor) != 2 || major != 2 || minor < 32)
		return;
	for (int i = 0; i < N; i++) {
		a[i] = malloc(24); /* a 32-byte chunk: bin 0 */
		b[i] = malloc(40); /* a 48-byte chunk: bin 1 */
	}
	if (a[N - 1] && b[N - 1]) {
		/* Only the addresses are compared once the chunks are free. */
		uintptr_t p = (uintptr_t)a[N - 1], q = (uintptr_t)b[N - 1];

		free(a[N - 1]);
		free(b[N - 1]);
		a[N - 1] = b[N - 1] = NULL;
		tcache_off = tcache_probe(fs_base(), p, q);
	}
	for (int i = 0; i < N; i++) {
		free(a[i]);
		free(b[i]);
	}
	if (peek_pipe[0] >= 0) {
		sa_syscall6(SYS_close, peek_pipe[0], 0, 0, 0, 0, 0);
		sa_syscall6(SYS_close, peek_pipe[1], 0, 0, 0, 0, 0);
		peek_pipe[0] = peek_pipe[1] = -1;
	}
}

/* tcache_release - free the malloc cache of the ended thread whose TCB is @tp. */
static void tcache_release(char *tp)
{
	struct tcache **slot = (struct tcache **)(tp + tcache_off);
	struct tcache *tc = *slot;

	if (!tcache_off || !tc)
		return;
	*slot = NULL;
	for (int i = 0; i < TCACHE_BINS; i++) {
		uintptr_t *e = tc->entries[i];

		for (unsigned n = tc->counts[i]; n && e; n--) {
			/* The link is stored as link ^ (its own address >> 12). */
			uintptr_t *next = (uintptr_t *)(((uintptr_t)e >> 12) ^ e[0]);

			e[1] = 0; /* the chunk's "in a cache" key */
			free(e);
			e = next;
		}
	}
	free(tc);
}

/**
 * tls_enable - switch the runtime to the per-uthread TLS mode.  Must be
 * called before the runtime starts.
 * Returns 0, -EBUSY if the runtime already runs, -ENOSYS if this glibc
 * does not offer what the mode needs (the message says what is missing).
 */
int tls_enable(void)
{
	const uint32_t *sz, *tid, *list;
	const long *rseq_off;
	const unsigned *rseq_size;

	if (atomic_load(&rt.state) != RT_OFF)
		return -EBUSY;
	glibc.allocate = (void *(*)(void *))dlvsym(RTLD_DEFAULT, "_dl_allocate_tls",
						     "GLIBC_PRIVATE");
	glibc.deallocate = (void (*)(void *, bool))dlvsym(RTLD_DEFAULT, "_dl_deallocate_tls",
							  "GLIBC_PRIVATE");
	glibc.call_tls_dtors = (void (*)(void))dlvsym(RTLD_DEFAULT, "__call_tls_dtors",
						      "GLIBC_PRIVATE");
	glibc.ctype_init = (void (*)(void))dlvsym(RTLD_DEFAULT, "__ctype_init",
						  "GLIBC_PRIVATE");
	sz = td_symbol("_thread_db_sizeof_pthread");
	tid = td_symbol("_thread_db_pthread_tid");
	if (!glibc.allocate || !glibc.deallocate || !glibc.ctype_init || !sz || !tid) {
		fprintf(stderr, "libsa: this C library lacks _dl_allocate_tls, "
			"_dl_deallocate_tls, __ctype_init or the thread_db descriptors; "
			"per-uthread TLS is unavailable\n");
		return -ENOSYS;
	}
	/* A thread_db field descriptor is { size in bits, count, offset }. */
	if (tid[0] != 32 || tid[2] + 4 > *sz || *sz < sizeof(struct tcbhead)) {
		fprintf(stderr, "libsa: unexpected thread descriptor layout "
			"(size %u, tid %u bits at %u)\n", *sz, tid[0], tid[2]);
		return -ENOSYS;
	}
	glibc.tcb_size = *sz;
	glibc.tid_off = tid[2];
	list = td_symbol("_thread_db_pthread_list");
	glibc.list_off = list && list[2] + 2 * sizeof(void *) <= *sz ? list[2] : 0;
	rseq_off = dlsym(RTLD_DEFAULT, "__rseq_offset");
	rseq_size = dlsym(RTLD_DEFAULT, "__rseq_size");
	glibc.rseq = rseq_off && rseq_size && *rseq_size >= 8;
	glibc.rseq_off = glibc.rseq ? *rseq_off : 0;
	glibc.wrfsbase = (getauxval(AT_HWCAP2) & HWCAP2_FSGSBASE) != 0;
	tls_handle_off = (char *)&tls_self_handle - (char *)fs_base();
	tls_vp_off = (char *)&sa_tls_vp - (char *)fs_base();
	tcache_find();
	rt.tls_mode = true;
	return 0;
}

static void tls_fill(void *tp, uint32_t tid)
{
	struct tcbhead *h = tp, *me = fs_base();

	h->tcb = tp;
	h->self = tp;
	h->multiple_threads = 1;
	h->sysinfo = me->sysinfo;
	h->stack_guard = me->stack_guard;
	h->pointer_guard = me->pointer_guard;
	h->feature_1 = me->feature_1;
	memcpy((char *)tp + glibc.tid_off, &tid, sizeof(tid));
	if (glibc.list_off) {
		/* An empty list entry: glibc's fork() takes the calling
		 * thread off its lists in the child, which must not fault. */
		void *self[2] = { (char *)tp + glibc.list_off, (char *)tp + glibc.list_off };

		memcpy((char *)tp + glibc.list_off, self, sizeof(self));
	}
	if (glibc.rseq) {
		int32_t failed = RSEQ_CPU_ID_REGISTRATION_FAILED;

		/* struct rseq: cpu_id_start, then cpu_id. */
		memcpy((char *)tp + glibc.rseq_off + 4, &failed, sizeof(failed));
	}
}

/**
 * tls_alloc - give @ut a TLS block and TCB of its own (ut->tp) and mark it
 * UTF_TLS.  Call before @ut can run.
 * Returns 0 or -ENOMEM.
 */
int tls_alloc(struct uthread *ut)
{
	void *tp = glibc.allocate(NULL);

	if (!tp)
		return -ENOMEM;
	tls_fill(tp, TLS_TID_BASE | (ut->id & (TLS_TID_BASE - 1)));
	*(sa_uthread_t *)((char *)tp + tls_handle_off) =
		(ut->flags & UTF_IDLE) ? 0 : ut_handle(ut);
	*(struct vp **)((char *)tp + tls_vp_off) = VP_VIA_GS;
	ut->tp = tp;
	ut->flags |= UTF_TLS;
	return 0;
}

/**
 * tls_adopt - the calling kernel thread becomes uthread @ut and keeps its
 * own block (the main thread).
 */
void tls_adopt(struct uthread *ut)
{
	ut->tp = fs_base();
	ut->flags |= UTF_TLS;
	tls_self_handle = ut_handle(ut);
	sa_tls_vp = VP_VIA_GS; /* the carrier's gs base already says VP 0 */
}

/** tls_free - release @ut's block; @ut no longer runs on it. */
void tls_free(struct uthread *ut)
{
	if (!(ut->flags & UTF_TLS))
		return;
	tcache_release(ut->tp);
	glibc.deallocate(ut->tp, true);
	ut->tp = NULL;
	ut->flags &= ~(uint32_t)UTF_TLS;
}

/**
 * tls_thread_start - first thing a TLS uthread runs: set up what glibc
 * sets up in a new thread's TLS (the <ctype.h> table pointers).
 */
void tls_thread_start(void)
{
	glibc.ctype_init();
}

void (*tls_exit_hook)(void);

/** tls_thread_exit - run the calling uthread's thread_local destructors,
 * then tls_exit_hook (the LD_PRELOAD shim's, if it set one). */
void tls_thread_exit(void)
{
	if (glibc.call_tls_dtors)
		glibc.call_tls_dtors();
	if (tls_exit_hook)
		tls_exit_hook();
}

/**
 * tls_handle_of - the uthread whose TCB is @tp (a pthread_t in the TLS
 * mode), or 0 if @tp is the TCB of a thread that is not a uthread.
 * WARNING: @tp must be a live TCB (a thread that exists or was not yet
 * joined), as for any pthread_t.
 */
sa_uthread_t tls_handle_of(const void *tp)
{
	return *(const sa_uthread_t *)((const char *)tp + tls_handle_off);
}

/**
 * tls_tcb_find - the offset in thread descriptor @tp of the first word
 * that holds @value, or -1.  For fields of glibc's descriptor that no
 * symbol describes: the caller makes glibc store a value it knows there.
 */
long tls_tcb_find(const void *tp, const void *value)
{
	for (uint32_t off = sizeof(struct tcbhead); off + sizeof(void *) <= glibc.tcb_size;
	     off += sizeof(void *)) {
		const void *w;

		memcpy(&w, (const char *)tp + off, sizeof(w));
		if (w == value)
			return (long)off;
	}
	return -1;
}

/** tls_record_act - remember the calling kernel thread's own block as
 * activation @a's (it becomes vp->kfs of each VP @a carries). */
void tls_record_act(struct act *a)
{
	a->kfs = fs_base();
}

/* __tls_switch - slow path of tls_switch(): point %fs at @next's block. */
void __tls_switch(struct vp *vp, struct uthread *next)
{
	tls_set_fs((next->flags & UTF_TLS) ? next->tp : vp->kfs);
}

/** tls_set_fs - point %fs at thread pointer @tp. */
void tls_set_fs(void *tp)
{
	if (likely(glibc.wrfsbase))
		asm volatile("wrfsbase %0" : : "r"(tp) : "memory");
	else if (sa_syscall6(SYS_arch_prctl, ARCH_SET_FS, (long)tp, 0, 0, 0, 0))
		sa_panic("arch_prctl(ARCH_SET_FS) failed");
}
