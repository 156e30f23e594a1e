/* upcall.c - the upcall interface: choosing a backend, the text map, stats */

/*
 * Design
 * ======
 *
 * Scheduler activations need four events from the kernel (upcall.h).  How
 * they are detected depends on the kernel, so a backend detects them and
 * the scheduler handles them, each in one function of sched/sched.c:
 *
 *   kernel    the patch series in kernel-patches/ delivers the events.
 *   emulated  stock Linux: the events are inferred in user space
 *             (emulated.c): a CPU-time timer signal per activation is the
 *             "preempted" upcall, and a watchdog over the activations'
 *             kernel states gives "blocked" and "unblocked".
 *
 * At start-up the kernel backend is probed and used if present, else the
 * emulated one.  SA_BACKEND=kernel|emulated forces one: if it cannot run
 * here the runtime does not start (sa_init() and the first sa_spawn()
 * fail) and a line on stderr says why, rather than running on something
 * the user did not ask for.
 *
 * Preemption and libsa's own code.  A tick may interrupt a uthread
 * anywhere.  Where it lands decides what happens (sched_upcall_preempted):
 *   - in the original of a critical section (critsec/): the PC moves to
 *     the same offset in its copy, which runs to the end of the section
 *     and then gives the VP back;
 *   - anywhere else in libsa's text, or in a libc call or clock read
 *     that libsa brackets with np_enter()/np_exit(): nothing now - libsa
 *     may hold VP state there; the next tick tries again;
 *   - elsewhere (the program, or libc called by the program): the uthread
 *     is preempted.  The handler makes it "call" sa_preempt_stub on its own
 *     stack below the red zone; the stub saves every register and the
 *     extended FP state (XSAVE), yields, and on resumption restores all of
 *     it and returns to the interrupted instruction.  Nothing of the
 *     uthread is copied out of the signal frame, and the signal handler
 *     itself returns at once.
 * libsa calls libc very little while it holds VP state: system calls are
 * inline (defs.h), so the PC says where the uthread is, and the rest
 * (clock reads in the vDSO, allocations that grow a heap under a lock) is
 * bracketed.  Deciding from the PC needs the address ranges of libsa's
 * executable segments, read once here.
 */

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <sys/auxv.h>

#include "upcall/upcall.h"

#define QUANTUM_US_DEFAULT 4000
#define QUANTUM_US_MAX 10000000ul

const struct upcall_backend *upcall_backend;
uint64_t upcall_quantum_ns;
bool upcall_tick_force;
size_t sa_xsave_size;

/* ------------------------------------------------------------------------
 * Text ranges
 */

#define TEXT_RANGES 4

struct text_range {
	uintptr_t lo, hi;
};

static struct text_range libsa_text[TEXT_RANGES];
static unsigned libsa_text_n;

int (*sa_vdso_clock_gettime)(clockid_t, struct timespec *);

static int find_libsa(struct dl_phdr_info *info, size_t size, void *arg)
{
	uintptr_t me = (uintptr_t)arg;
	bool mine = false;

	(void)size;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type == PT_LOAD && me >= lo && me < lo + ph->p_memsz)
			mine = true;
	}
	if (!mine)
		return 0;
	for (int i = 0; i < info->dlpi_phnum && libsa_text_n < TEXT_RANGES; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
			libsa_text[libsa_text_n].lo = info->dlpi_addr + ph->p_vaddr;
			libsa_text[libsa_text_n].hi = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
			libsa_text_n++;
		}
	}
	return 1;
}

/* vdso_init - the vDSO's clock_gettime, from its ELF dynamic symbol
 * table. */
static void vdso_init(void)
{
	uintptr_t base = (uintptr_t)getauxval(AT_SYSINFO_EHDR);
	const ElfW(Ehdr) *eh = (const void *)base;
	const ElfW(Phdr) *ph;
	const ElfW(Dyn) *dyn = NULL;
	const ElfW(Sym) *sym = NULL;
	const char *str = NULL;
	const uint32_t *hash = NULL;
	intptr_t bias = 0;
	bool have_load = false;

	if (!base || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0)
		return;
	ph = (const void *)(base + eh->e_phoff);
	for (int i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type == PT_LOAD && !have_load) {
			bias = (intptr_t)base + (intptr_t)ph[i].p_offset - (intptr_t)ph[i].p_vaddr;
			have_load = true;
		} else if (ph[i].p_type == PT_DYNAMIC) {
			dyn = (const void *)(base + ph[i].p_offset);
		}
	}
	if (!have_load || !dyn)
		return;
	for (; dyn->d_tag != DT_NULL; dyn++) {
		if (dyn->d_tag == DT_SYMTAB)
			sym = (const void *)(dyn->d_un.d_ptr + bias);
		else if (dyn->d_tag == DT_STRTAB)
			str = (const void *)(dyn->d_un.d_ptr + bias);
		else if (dyn->d_tag == DT_HASH)
			hash = (const void *)(dyn->d_un.d_ptr + bias);
	}
	if (!sym || !str || !hash)
		return;
	for (uint32_t i = 0; i < hash[1]; i++) { /* hash[1]: number of symbols */
		if (ELF64_ST_TYPE(sym[i].st_info) == STT_FUNC && sym[i].st_shndx != SHN_UNDEF &&
		    strcmp(str + sym[i].st_name, "__vdso_clock_gettime") == 0) {
			sa_vdso_clock_gettime = (void *)(sym[i].st_value + bias);
			return;
		}
	}
}

/** text_ranges_init - find libsa's executable segments and the vDSO clock. */
int text_ranges_init(void)
{
	if (libsa_text_n)
		return 0;
	vdso_init();
	dl_iterate_phdr(find_libsa, (void *)(uintptr_t)text_ranges_init);
	return libsa_text_n ? 0 : -ENOENT;
}

/** text_in_libsa - @pc is in libsa's code.  Async-signal-safe. */
bool text_in_libsa(uintptr_t pc)
{
	for (unsigned i = 0; i < libsa_text_n; i++)
		if (pc >= libsa_text[i].lo && pc < libsa_text[i].hi)
			return true;
	return false;
}


/* ------------------------------------------------------------------------
 * Choosing the backend
 */

/*
 * env_quantum - $SA_QUANTUM_US in ns: 0 turns preemption off.  Returns
 * -EINVAL (and says so) for anything but a number up to 10 s.
 */
static int env_quantum(uint64_t *out)
{
	const char *s = getenv("SA_QUANTUM_US");
	const char *dbg = getenv("SA_DEBUG_TICK_US");
	unsigned long v;
	char *end;

	/* Testing only: a forced wall-clock tick (upcall.h). */
	if (dbg && *dbg) {
		s = dbg;
		upcall_tick_force = true;
	}
	if (!s || !*s) {
		*out = QUANTUM_US_DEFAULT * 1000ull;
		return 0;
	}
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || s[0] == '-' || v > QUANTUM_US_MAX) {
		fprintf(stderr, "libsa: SA_QUANTUM_US=%s: expected microseconds, 0 to %lu\n",
			s, QUANTUM_US_MAX);
		return -EINVAL;
	}
	*out = v * 1000ull;
	return 0;
}

static int try_backend(const struct upcall_backend *b, bool forced)
{
	int r = b->probe();

	if (r == 0)
		r = b->start();
	if (r && forced)
		fprintf(stderr, "libsa: SA_BACKEND=%s: not available on this system: %s\n",
			b->name, strerror(-r));
	if (r == 0)
		upcall_backend = b;
	return r;
}

/**
 * upcall_init - choose and start the backend (SA_BACKEND, SA_QUANTUM_US).
 * Returns 0, or -errno when the forced backend cannot run or a variable
 * is malformed (a line on stderr says which).
 */
int upcall_init(void)
{
	const char *want = getenv("SA_BACKEND");
	int r;

	if (upcall_backend)
		return 0;
	r = env_quantum(&upcall_quantum_ns);
	if (r)
		return r;
	r = text_ranges_init();
	if (r)
		return r;
	if (want && *want) {
		if (strcmp(want, upcall_kernel.name) == 0)
			return try_backend(&upcall_kernel, true);
		if (strcmp(want, upcall_emulated.name) == 0)
			return try_backend(&upcall_emulated, true);
		fprintf(stderr, "libsa: SA_BACKEND=%s: expected \"kernel\" or \"emulated\"\n", want);
		return -EINVAL;
	}
	if (try_backend(&upcall_kernel, false) == 0)
		return 0;
	return try_backend(&upcall_emulated, false);
}

/** upcall_enter - the calling kernel thread starts carrying @vp. */
int upcall_enter(struct vp *vp)
{
	return upcall_backend->enter(vp);
}

/** upcall_leave - the calling kernel thread stops carrying @vp. */
void upcall_leave(struct vp *vp)
{
	upcall_backend->leave(vp);
}

/** upcall_stats - add the backend's counters to @st. */
void upcall_stats(struct sa_stats *st)
{
	st->backend = upcall_backend ? (uint64_t)upcall_backend->id : 0;
	st->quantum_ns = upcall_quantum_ns;
	for (uint32_t i = 0; i < rt.nvps; i++) {
		struct vp_stats *s = &rt.vps[i].stats;

		st->ticks += atomic_load_explicit(&s->ticks, memory_order_relaxed);
		st->preemptions += atomic_load_explicit(&s->preemptions, memory_order_relaxed);
		st->preempt_skipped += atomic_load_explicit(&s->preempt_skipped, memory_order_relaxed);
		st->cs_recoveries += atomic_load_explicit(&s->cs_recoveries, memory_order_relaxed);
	}
}

SA_EXPORT const char *sa_backend(void)
{
	if (atomic_load_explicit(&rt.state, memory_order_acquire) != RT_RUNNING)
		return NULL;
	return upcall_backend->name;
}
