/* stack.c - uthread stacks: lazily committed, guarded, cached per VP */

/*
 * A stack is a slot [guard | usable] of a power-of-two size class.  Slots
 * are carved from 2 MiB chunks mapped with MAP_NORESERVE, so memory is
 * committed only when touched.  The guard is a madvise(MADV_GUARD_INSTALL)
 * guard region where the kernel has them (Linux 6.13+): it faults like a
 * PROT_NONE page but is not a separate memory mapping, so a million stacks
 * stay far inside vm.max_map_count.  On older kernels every stack is its
 * own mapping with an mprotect'ed guard (two mappings a stack); running out
 * of mappings is then an -EAGAIN from sa_spawn(), never a stack without a
 * guard.
 *
 * Freed stacks go to the VP's cache (no lock, still committed, so reuse
 * costs no page fault).  Past STACK_CACHE_PER_CLASS a freed stack's pages
 * go back to the kernel (MADV_DONTNEED) and the empty slot to a global pool
 * per class, which is where a VP looks when its cache is empty.
 *
 * The SIGSEGV handler, on a per-VP alternate stack, tells a fault in the
 * current uthread's guard from any other fault, names the uthread, and
 * lets the fault kill the process; other faults go to the handler that was
 * there before (the default one, or a sanitizer's).
 */

#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>

#include "defs.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define PAGE 4096ul
#define CHUNK (2ul << 20)
#define CLASS_SHIFT 12
#define CACHED_SLOT_MAX (1ul << (CLASS_SHIFT + STACK_CLASSES - 1))
#define GUARD_CACHED (16 * 1024)
#define ALTSTACK_SIZE (64 * 1024)

struct stack_pool {
	spinlock_t lock;
	uint32_t n, cap;
	void **v;
};

static struct stack_pool pools[STACK_CLASSES];
static bool guard_madvise;

/* stack_fork_child - in a child of fork(): the pools' holders are gone;
 * the cached stacks are the child's own copies and stay. */
void stack_fork_child(void)
{
	for (unsigned i = 0; i < STACK_CLASSES; i++)
		atomic_store(&pools[i].lock, 0);
}

static size_t round_up(size_t x, size_t a)
{
	return (x + a - 1) & ~(a - 1);
}

static unsigned slot_class(size_t slot)
{
	unsigned c = 0;

	while ((1ul << (c + CLASS_SHIFT)) < slot)
		c++;
	return c;
}

/** stack_init - find out how guards are made on this kernel. */
void stack_init(void)
{
	void *p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return;
	guard_madvise = madvise(p, PAGE, MADV_GUARD_INSTALL) == 0;
	munmap(p, 2 * PAGE);
}

bool stack_guard_supported(void)
{
	return guard_madvise;
}

static int guard_install(char *base, size_t guard)
{
	if (guard_madvise)
		return madvise(base, guard, MADV_GUARD_INSTALL) ? -EAGAIN : 0;
	return mprotect(base, guard, PROT_NONE) ? -EAGAIN : 0;
}

static void pool_push(unsigned c, void *slot)
{
	struct stack_pool *p = &pools[c];

	spin_lock(&p->lock);
	if (p->n == p->cap) {
		uint32_t cap = p->cap ? 2 * p->cap : 512;
		void **v = sa_mem_grow(p->v, p->cap * sizeof(*v), cap * sizeof(*v));
		struct vp *np;

		if (!v) {
			/* Cannot remember it: give the address space back. */
			spin_unlock(&p->lock);
			np = np_enter();
			munmap(slot, 1ul << (c + CLASS_SHIFT));
			np_exit(np);
			return;
		}
		p->v = v;
		p->cap = cap;
	}
	p->v[p->n++] = slot;
	spin_unlock(&p->lock);
}

static void *pool_pop(unsigned c)
{
	struct stack_pool *p = &pools[c];
	void *slot = NULL;

	if (!READ_ONCE(*(_Atomic uint32_t *)&p->n))
		return NULL;
	spin_lock(&p->lock);
	if (p->n)
		slot = p->v[--p->n];
	spin_unlock(&p->lock);
	return slot;
}

/*
 * stack_map - @len bytes for stacks.  Never backed by transparent huge
 * pages: where THP is "always" each stack's first touch would take a
 * whole 2 MiB page, and 2,000 threads ran a 1 GiB machine out of memory;
 * a stack uses a few of its pages.
 */
static void *stack_map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);

	if (p != MAP_FAILED)
		madvise(p, len, MADV_NOHUGEPAGE); /* EINVAL without THP: fine */
	return p;
}

/* map_chunk - map a chunk of class @c slots with guards; keep one. */
static void *map_chunk(struct vp *vp, unsigned c)
{
	size_t slot = 1ul << (c + CLASS_SHIFT);
	/* Without guard regions each slot is its own mapping anyway. */
	size_t n = (slot >= CHUNK || !guard_madvise) ? 1 : CHUNK / slot;
	char *base = stack_map(n * slot);

	if (base == MAP_FAILED)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (guard_install(base + i * slot, GUARD_CACHED)) {
			munmap(base + i * slot, (n - i) * slot);
			if (i == 0)
				return NULL;
			n = i;
			break;
		}
	}
	atomic_fetch_add(&rt.stacks_mapped, n);
	for (size_t i = 1; i < n; i++) {
		char *s = base + i * slot;

		if (vp && vp->stacks.n[c] < STACK_CACHE_PER_CLASS)
			vp->stacks.slot[c][vp->stacks.n[c]++] = s;
		else
			pool_push(c, s);
	}
	return base;
}

/* A stack of its own: non-default guard or too big for the classes. */
static int map_single(struct uthread *ut, size_t usable, size_t guard)
{
	char *base = stack_map(guard + usable);

	if (base == MAP_FAILED)
		return errno == ENOMEM ? -EAGAIN : -errno;
	if (guard_install(base, guard)) {
		munmap(base, guard + usable);
		return -EAGAIN;
	}
	atomic_fetch_add(&rt.stacks_mapped, 1);
	ut->map_base = base;
	ut->guard = guard;
	ut->stack_lo = base + guard;
	ut->stack_hi = base + guard + usable;
	ut->stack_class = 0;
	return 0;
}

/**
 * stack_alloc - give @ut a stack of at least @stack_size usable bytes with
 * at least @guard guard bytes below it.
 * Returns 0, or -EAGAIN when no mapping (or guard) can be made.
 */
int stack_alloc(struct uthread *ut, size_t stack_size, size_t guard)
{
	struct vp *vp = vp_self();
	size_t usable = round_up(stack_size, PAGE), slot;
	unsigned c;
	char *base = NULL;

	guard = round_up(guard, PAGE);
	if (guard != GUARD_CACHED || usable + guard > CACHED_SLOT_MAX)
		return map_single(ut, usable, guard);

	slot = round_up(usable + guard, PAGE);
	c = slot_class(slot);
	slot = 1ul << (c + CLASS_SHIFT);
	if (vp && vp->stacks.n[c])
		base = vp->stacks.slot[c][--vp->stacks.n[c]];
	if (!base)
		base = pool_pop(c);
	if (!base) {
		struct vp *np = np_enter(); /* map_chunk() fills vp's cache */

		base = map_chunk(vp, c);
		np_exit(np);
	}
	if (!base)
		return -EAGAIN;
	ut->map_base = base;
	ut->guard = guard;
	ut->stack_lo = base + guard;
	ut->stack_hi = base + slot;
	ut->stack_class = (uint8_t)(c + 1);
	return 0;
}

/** stack_free - give back @ut's stack (never the stack we are running on). */
void stack_free(struct uthread *ut)
{
	struct vp *vp = vp_self();
	unsigned c;

	if (!ut->map_base)
		return;
	if (!ut->stack_class) {
		/* Callers may hold ut->lock. */
		struct vp *np = np_enter();

		munmap(ut->map_base, ut->guard + (size_t)((char *)ut->stack_hi - (char *)ut->stack_lo));
		np_exit(np);
	} else {
		c = ut->stack_class - 1u;
		if (vp && vp->stacks.n[c] < STACK_CACHE_PER_CLASS) {
			vp->stacks.slot[c][vp->stacks.n[c]++] = ut->map_base;
		} else {
			struct vp *np = np_enter();

			madvise(ut->stack_lo, (size_t)((char *)ut->stack_hi - (char *)ut->stack_lo),
				MADV_DONTNEED);
			np_exit(np);
			atomic_fetch_add(&rt.stacks_released, 1);
			pool_push(c, ut->map_base);
		}
	}
	ut->map_base = NULL;
}

/** stack_cached_count - stacks held by caches and pools now (racy). */
size_t stack_cached_count(void)
{
	size_t n = 0;

	for (unsigned c = 0; c < STACK_CLASSES; c++) {
		n += READ_ONCE(*(_Atomic uint32_t *)&pools[c].n);
		for (uint32_t i = 0; i < rt.nvps; i++)
			n += READ_ONCE(*(_Atomic uint32_t *)&rt.vps[i].stacks.n[c]);
	}
	return n;
}

/* ------------------------------------------------------------------------
 * Stack overflow reports
 */

static struct sigaction old_segv;

static char *fmt_hex(char *p, uintptr_t v)
{
	char tmp[16];
	int n = 0;

	*p++ = '0';
	*p++ = 'x';
	do {
		tmp[n++] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static char *fmt_dec(char *p, uint64_t v)
{
	char tmp[20];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static char *fmt_str(char *p, const char *s, size_t max)
{
	for (size_t i = 0; i < max && s[i]; i++)
		*p++ = s[i];
	return p;
}

static void report_overflow(struct uthread *ut, void *addr)
{
	char buf[256], *p = buf;

	p = fmt_str(p, "libsa: stack overflow in uthread ", 64);
	p = fmt_dec(p, ut->id);
	p = fmt_str(p, " \"", 4);
	p = fmt_str(p, ut->name, sizeof(ut->name));
	p = fmt_str(p, "\" (stack ", 16);
	p = fmt_hex(p, (uintptr_t)ut->stack_lo);
	*p++ = '-';
	p = fmt_hex(p, (uintptr_t)ut->stack_hi);
	p = fmt_str(p, ", fault at ", 16);
	p = fmt_hex(p, (uintptr_t)addr);
	p = fmt_str(p, ")\n", 4);
	while (write(STDERR_FILENO, buf, (size_t)(p - buf)) < 0 && errno == EINTR)
		;
}

static void segv_handler(int sig, siginfo_t *si, void *uctx)
{
	struct vp *vp = vp_self();
	struct uthread *ut = vp ? vp->cur : NULL;

	if (ut && ut->map_base) {
		char *lo = ut->stack_lo, *addr = si->si_addr;
		char *sp = (char *)((ucontext_t *)uctx)->uc_mcontext.gregs[REG_RSP];
		char *guard_lo = lo - ut->guard;

		if ((addr >= guard_lo && addr < lo) || (sp < lo && sp >= guard_lo)) {
			report_overflow(ut, addr);
			signal(SIGSEGV, SIG_DFL);
			return; /* the fault repeats and kills the process */
		}
	}
	if (old_segv.sa_flags & SA_SIGINFO) {
		if (old_segv.sa_sigaction) {
			old_segv.sa_sigaction(sig, si, uctx);
			return;
		}
	} else if (old_segv.sa_handler != SIG_DFL && old_segv.sa_handler != SIG_IGN) {
		old_segv.sa_handler(sig);
		return;
	}
	signal(SIGSEGV, SIG_DFL);
}

/** stack_signal_init - install the overflow reporter (once). */
void stack_signal_init(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = segv_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old_segv);
}

/**
 * stack_altstack_setup - give the calling kernel thread an alternate signal
 * stack unless it has one.  Returns 0 and the mapping in *@mem (NULL if the
 * thread had its own), or -ENOMEM.
 */
int stack_altstack_setup(void **mem)
{
	stack_t ss, old;

	*mem = NULL;
	if (sigaltstack(NULL, &old) == 0 && !(old.ss_flags & SS_DISABLE))
		return 0;
	ss.ss_sp = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ss.ss_sp == MAP_FAILED)
		return -ENOMEM;
	ss.ss_size = ALTSTACK_SIZE;
	ss.ss_flags = 0;
	if (sigaltstack(&ss, NULL)) {
		munmap(ss.ss_sp, ALTSTACK_SIZE);
		return -ENOMEM;
	}
	*mem = ss.ss_sp;
	return 0;
}
