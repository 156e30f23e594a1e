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
 *   - in the C or C++ runtime (libc, the loader, libstdc++, libgcc, libm)
 *     in the native mode: nothing now either.  There uthreads share their
 *     carrier's thread-local state - malloc's per-thread cache, the owner
 *     identity of stdio's locks, the C++ exception globals - and two
 *     uthreads of one carrier must never be inside it at once.  In the
 *     per-uthread TLS mode (libsa-preload.so) each uthread has its own,
 *     and it is preempted there like anywhere else;
 *   - elsewhere (the program, or libc called by the program in the TLS
 *     mode): the uthread is preempted.  The handler makes it "call" sa_preempt_stub on its own
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
#define US_MAX 10000000ul

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

/* The C and C++ runtimes' code: per-thread state that natively belongs to
 * the carrier (malloc's cache, stdio's lock owner, the C++ exception
 * globals), so in the native mode a tick never preempts a uthread there. */
#define RUNTIME_TEXT_MAX 24
static struct text_range runtime_text[RUNTIME_TEXT_MAX];
static unsigned runtime_text_n;
static const char *const runtime_objects[] = {
	"/libc.so", "/ld-linux", "/libstdc++.so", "/libgcc_s.so", "/libm.so",
	/* sanitizer runtimes keep allocator caches per thread too */
	"/libasan.so", "/libubsan.so", "/libtsan.so", "/liblsan.so",
};

/* add_text - append @info's executable segments to @r (at most @max). */
static void add_text(struct dl_phdr_info *info, struct text_range *r, unsigned *n,
		     unsigned max)
{
	for (int i = 0; i < info->dlpi_phnum && *n < max; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
			r[*n].lo = info->dlpi_addr + ph->p_vaddr;
			r[*n].hi = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
			(*n)++;
		}
	}
}

/* in_text - @pc lies in one of @n ranges @r.  Async-signal-safe. */
static bool in_text(uintptr_t pc, const struct text_range *r, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (pc >= r[i].lo && pc < r[i].hi)
			return true;
	return false;
}

/* The sanitizer runtimes alone: they take locks of their own, so the
 * watchdog never takes a VP from a thread blocked in them. */
static struct text_range sanitizer_text[RUNTIME_TEXT_MAX];
static unsigned sanitizer_text_n;

static int find_runtimes(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	(void)arg;
	for (size_t k = 0; k < ARRAY_SIZE(runtime_objects); k++)
		if (info->dlpi_name && strstr(info->dlpi_name, runtime_objects[k]))
			add_text(info, runtime_text, &runtime_text_n, RUNTIME_TEXT_MAX);
	if (info->dlpi_name && strstr(info->dlpi_name, "san.so"))
		add_text(info, sanitizer_text, &sanitizer_text_n, RUNTIME_TEXT_MAX);
	return 0;
}

/** text_in_sanitizer - @pc is in a sanitizer runtime (libasan, libtsan,
 * libubsan, liblsan). */
bool text_in_sanitizer(uintptr_t pc)
{
	return in_text(pc, sanitizer_text, sanitizer_text_n);
}

/** text_in_runtime - @pc is in libc, the loader, libstdc++, libgcc, libm
 * or a sanitizer runtime.  Async-signal-safe. */
bool text_in_runtime(uintptr_t pc)
{
	return in_text(pc, runtime_text, runtime_text_n);
}

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
	add_text(info, libsa_text, &libsa_text_n, TEXT_RANGES);
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
	dl_iterate_phdr(find_runtimes, NULL);
	return libsa_text_n ? 0 : -ENOENT;
}

/** text_in_libsa - @pc is in libsa's code.  Async-signal-safe. */
bool text_in_libsa(uintptr_t pc)
{
	return in_text(pc, libsa_text, libsa_text_n);
}


/* ------------------------------------------------------------------------
 * Choosing the backend
 */

/**
 * env_us - environment variable @name, in microseconds up to 10 s, as ns
 * in *@out (@def_us when unset).  Returns -EINVAL, with a line on stderr
 * naming it, for anything else.
 */
int env_us(const char *name, unsigned long def_us, uint64_t *out)
{
	const char *s = getenv(name);
	unsigned long v;
	char *end;

	if (!s || !*s) {
		*out = def_us * 1000ull;
		return 0;
	}
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || s[0] == '-' || v > US_MAX) {
		fprintf(stderr, "libsa: %s=%s: expected microseconds, 0 to %lu\n", name, s,
			US_MAX);
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
unsigned upcall_nvps;
static bool upcall_restart;

int upcall_init(unsigned nvps)
{
	const char *want = getenv("SA_BACKEND");
	int r;

	upcall_nvps = nvps;
	if (upcall_backend && !upcall_restart)
		return 0;
	if (upcall_restart) {
		/* A child of fork(): the kernel backend needs a group of its
		 * own; choose again. */
		upcall_restart = false;
		upcall_backend = NULL;
	}
	r = env_us("SA_QUANTUM_US", QUANTUM_US_DEFAULT, &upcall_quantum_ns);
	/* Testing only: a forced wall-clock tick (upcall.h). */
	if (!r && getenv("SA_DEBUG_TICK_US") && *getenv("SA_DEBUG_TICK_US")) {
		r = env_us("SA_DEBUG_TICK_US", 0, &upcall_quantum_ns);
		upcall_tick_force = true;
	}
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

/** upcall_fork_child - in a child of fork(): the backend's kernel state
 * is the parent's; the next start sets it up again. */
void upcall_fork_child(void)
{
	if (!upcall_backend)
		return;
	upcall_backend->fork_child();
	upcall_restart = upcall_backend == &upcall_kernel;
}

/** upcall_run - the VPs run: start what the backend runs beside them. */
int upcall_run(void)
{
	return upcall_backend->run();
}

/** upcall_enter - activation @a (the caller) starts carrying a VP. */
int upcall_enter(struct act *a)
{
	return upcall_backend->enter(a);
}

/** upcall_leave - activation @a (the caller) stops carrying a VP. */
void upcall_leave(struct act *a)
{
	upcall_backend->leave(a);
}

/** upcall_stats - add the backend's counters to @st. */
void upcall_stats(struct sa_stats *st)
{
	st->backend = upcall_backend ? (uint64_t)upcall_backend->id : 0;
	st->activations = atomic_load(&rt.acts_made);
	st->blocked_handoffs = atomic_load(&rt.blocked_handoffs);
	st->unblocks = atomic_load(&rt.unblocks);
	st->unblock_max_ns = atomic_load(&rt.unblock_max_ns);
	st->procs_taken = atomic_load(&rt.procs_taken);
	st->procs_added = atomic_load(&rt.procs_added);
	st->vps_dormant = 0;
	for (uint32_t i = 0; i < rt.nvps; i++)
		st->vps_dormant += atomic_load(&rt.vps[i].dormant) != VPD_ACTIVE;
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
