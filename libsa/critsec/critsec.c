/* critsec.c - critical sections and their generated copies: finding and recovering */

/*
 * Design
 * ======
 *
 * The problem.  A uthread that holds one of libsa's spinlocks (a run
 * queue, a timer heap, a sync object) must not lose its VP while it holds
 * it: every other uthread that wants the lock would spin until the holder
 * runs again, which on a VP of its own may be a whole quantum away, or
 * never (the spinner holds the VP the holder is queued on).
 *
 * The mechanism (Anderson et al., "recovering a preempted critical
 * section").  Every critical section exists twice in the binary: the
 * original, which the program runs, and a copy, the same instructions at
 * the same offsets, except that where the original returns, the copy
 * jumps to sa_cs_exit (exit.S).  When a preemption lands on a PC inside an
 * original, the scheduler (sched_upcall_preempted -> critsec_recover)
 * moves the PC to the same offset in the copy and lets the uthread run on:
 * it finishes its section with every register as it was, and the copy's
 * end asks for the VP back.  The common path pays nothing: no flag is set
 * on entry, no counter is touched; only the preemption path looks the PC
 * up in the table.
 *
 * Vocabulary.
 *   critical section  a function marked SA_CRITSEC (defs.h), compiled into
 *                     section .text.sa_cs;
 *   original, copy    F and F__cs_copy; the copy is in .text.sa_cs_copy;
 *   the table         section sa_cs_table, one struct cs_entry per section:
 *                     original start and end, copy start, name, counter.
 *
 * How the copies are made, and why they are exact.  Never by hand: libsa's
 * C files are compiled with gcc -wrapper cs-as, which passes the
 * compiler's assembly through gen-copies before the assembler runs
 * (cs-as has the reasons for a -wrapper).  gen-copies duplicates each
 * .text.sa_cs function's body, renaming only its local labels, pads every
 * `ret' of the original with a 4-byte nop so that it is as long as the
 * copy's 5-byte `jmp sa_cs_exit', and writes the table entry.  Because the
 * copy is the compiler's own output, the compiler's CFI comes along with
 * it (an unwinder walks out of a copy as out of the original).  After the
 * link, check-copies disassembles every original and copy of libsa.so (and
 * of libsa-preload.so and of the tests' lock-checking build) and fails the
 * build unless they decode to the same instructions at the same offsets,
 * ret sites aside: the assembler's relaxation or the linker's could
 * otherwise make offsets drift.  Files with sections are compiled with
 * -fno-optimize-sibling-calls and -fno-jump-tables: a tail jump or a jump
 * through a table would leave the section without passing a ret site, so
 * gen-copies rejects both.
 *
 * Invariants.
 *   1. A critical section calls only critical sections (its own file's,
 *      or another file's listed in calls.list, which the build checks
 *      against the linked table), and the ordinary functions in
 *      leaf.list: sa_panic (never returns), __spin_lock_slow (spins until
 *      the lock is free, then returns into the section) and the few
 *      helpers that call libc under np_enter() (timer_heap_grow_np).  No
 *      indirect call: now_ns() reads the clock through a vDSO pointer, so
 *      times are read before a section and passed in.  gen-copies enforces
 *      all of it.  A tick in a leaf lands in libsa's ordinary text and is
 *      skipped, so the holder keeps its VP and returns into its section,
 *      where the next tick recovers it.
 *   2. Nesting.  When sa_cs_exit returns into an original, a critical
 *      section called the one that ended and still holds its lock: the
 *      return goes to the same offset of the caller's copy, which in turn
 *      ends in sa_cs_exit.  Into a copy: just return.  Only a return to
 *      any other code ends the outermost section.
 *   3. sa_cs_exit preserves every register and the flags (GCC's -fipa-ra
 *      lets the caller of a static function keep values in call-clobbered
 *      registers across the call), and the PC of a copy is never
 *      redirected (it is already on its way out).
 *
 * What the end of a recovered section does (the yield rule).  Every
 * critical section is called by libsa's ordinary code, and that code may
 * still hold a lock that is not a critical section (a sync object's lock
 * kept across a context switch, the run-queue lock that the next context
 * releases), or keep a struct vp * that would be wrong on another VP.
 * sa_cs_exit therefore never switches.  At the end of the outermost copy
 * it records vp->resched = vp->cur and returns; the next tick that lands
 * outside libsa's text and outside np_enter() regions preempts that
 * uthread through sa_preempt_stub at once, without waiting for another
 * quantum (sched_upcall_preempted).  Rejected: yielding in sa_cs_exit
 * when it returns into the program (never happens: no section is called
 * from outside libsa), and re-queueing pinned to the same VP (the caller
 * may still hold a lock across the switch, which is the very thing this
 * exists to avoid).  Ticks in libsa's ordinary text are still skipped, as
 * before; with every lock-holding leaf routine a critical section, the
 * holder is recovered rather than skipped.
 *
 * What is a section.  Every region that holds one of the run-queue, timer
 * or sync-object spinlocks and does not switch: the run-queue and timer
 * heap operations, the waiter queues, and each sync object's locked step
 * (mutex take-or-flag and handoff, semaphore give and take, rwlock
 * acquire/release/give-up, barrier arrival, once begin/end, the destroy
 * checks).  Those steps claim the waiters they wake under the lock and
 * make them runnable after dropping it: a claimed waiter stays parked
 * until then (wait.c), so no wake-up, with its futex call and its run-queue
 * lock, runs inside a sync object's lock.  Not sections: the tail of a
 * wait, from the section that returns with the object's lock held to the
 * switch that drops it (the lock goes across the switch; a tick there is
 * skipped, which costs the waiter no more than a few instructions), the
 * idle loop's own locks (only an idle VP takes them), and the runtime's
 * rarely taken locks (keys, stack pools, activations, join and exit).
 *
 * Sanitizer builds.  AddressSanitizer and UBSan insert calls to their
 * runtimes, which a copy may not make.  SA_CRITSEC turns instrumentation
 * off for the sections themselves (no_sanitize, no_stack_protector); the
 * rest of libsa stays instrumented, and the copies are generated and
 * checked exactly as in a plain build.  UBSan's checks still come along
 * with always-inline helpers inlined into a section; their report
 * handlers are allowed (leaf.list), being called only once a check has
 * failed.
 *
 * Testing.  tests/test_critsec.c runs workloads that live in each section
 * against a lock-checking build of libsa (SA_DEBUG_LOCKS: each VP counts
 * the spinlocks taken and not yet released on it - a lock handed across a
 * switch is released on the same VP - and a preemption that finds the
 * count non-zero is an error), with a wall-clock tick of a few microseconds that
 * treats every tick as the end of a quantum (SA_DEBUG_TICK_US, read by
 * upcall.c; private).  It asserts that every table entry's counter rose
 * and that no preemption ever found its uthread holding a spinlock.  In
 * sanitizer builds the copies are checked as always but the forced tick
 * is skipped: the sanitizer runtimes keep per-kernel-thread state that a
 * uthread preempted inside them corrupts when it resumes on another VP.
 */

#include "defs.h"
#include "critsec/critsec.h"

_Static_assert(sizeof(struct cs_entry) == CS_ENTRY_SIZE, "critsec.h: entry size");
_Static_assert(offsetof(struct cs_entry, start) == CS_ENTRY_START, "critsec.h: start");
_Static_assert(offsetof(struct cs_entry, end) == CS_ENTRY_END, "critsec.h: end");
_Static_assert(offsetof(struct cs_entry, copy) == CS_ENTRY_COPY, "critsec.h: copy");
_Static_assert(offsetof(struct vp, cur) == VP_CUR_OFF, "critsec.h: vp->cur");
_Static_assert(offsetof(struct vp, resched) == VP_RESCHED_OFF, "critsec.h: vp->resched");

/**
 * critsec_find - the critical section whose original contains @pc, or
 * NULL.  Async-signal-safe.
 */
struct cs_entry *critsec_find(uintptr_t pc)
{
	for (struct cs_entry *e = __start_sa_cs_table; e < __stop_sa_cs_table; e++)
		if (pc >= e->start && pc < e->end)
			return e;
	return NULL;
}

/**
 * critsec_recover - if @pc lies in the original of a critical section,
 * count a recovery on @vp and return the same offset in its copy, where
 * the uthread goes on.  Returns 0 if @pc is in no original.  Called from
 * the tick handler.
 */
uintptr_t critsec_recover(struct vp *vp, uintptr_t pc)
{
	struct cs_entry *e = critsec_find(pc);

	if (!e)
		return 0;
	atomic_fetch_add_explicit(&e->count, 1, memory_order_relaxed);
	stat_inc(&vp->stats.cs_recoveries);
	return e->copy + (pc - e->start);
}

#ifdef SA_DEBUG_LOCKS
/*
 * The tests' lock checking (defs.h).  A lock is released on the VP that
 * took it, by the holder or by the context that runs after it there
 * (sched_finish_switch), so a per-VP count is exact; external threads,
 * which no tick preempts, are not counted.
 */

/* Preemptions of a uthread that held a spinlock; must stay 0. */
_Atomic uint64_t sa_debug_lock_violations;

void spin_debug_acquired(void)
{
	struct vp *vp = vp_self();

	if (vp)
		vp->dbg_locks++;
}

void spin_debug_released(void)
{
	struct vp *vp = vp_self();

	if (vp)
		vp->dbg_locks--;
}

/* spin_debug_preempting - @vp's uthread is about to be preempted. */
void spin_debug_preempting(struct vp *vp)
{
	if (vp->dbg_locks)
		atomic_fetch_add(&sa_debug_lock_violations, 1);
}
#endif
