/* test_preload.c - unmodified pthreads programs under libsa-preload.so, and sa-run */

/*
 * Each test runs one program of tests/preload/ through sa-run with the
 * library of this build (SA_PRELOAD) and --stats, and checks that it
 * exited 0 (the programs check their own results) and that its threads
 * really were uthreads: the runtime's counters at exit report them.
 */

#include <criterion/criterion.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <liburing.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef TOP_BUILDDIR
#error "TOP_BUILDDIR must name the build directory"
#endif

#define SA_RUN TOP_BUILDDIR "/sa-run"
#define PRELOAD_LIB TOP_BUILDDIR "/.libs/libsa-preload.so"
#define PROG(name) TOP_BUILDDIR "/tests/preload/" name
#define MODULE TOP_BUILDDIR "/tests/preload/.libs/pt_module.so"
#define EARLY_LIB TOP_BUILDDIR "/tests/preload/.libs/pt_early.so"

struct run {
	int status;        /* exit status, or 128 + signal */
	char out[8192];    /* stdout and stderr, truncated */
};

/* A system call that fails with ENOSYS in the programs run_cmd() runs
 * (a seccomp filter, as a sandbox or a kernel built without it would),
 * or -1. */
static int deny_nr = -1;

#define DENY_UNAVAILABLE 125 /* the child could not install the filter */

static bool deny_syscall(int nr)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
	       prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

/* run_cmd - run @argv with $SA_PRELOAD set, its output captured. */
static void run_cmd(struct run *r, char *const argv[])
{
	char path[] = "/tmp/sa-test-preload-XXXXXX";
	int fd = mkstemp(path), st;
	pid_t pid;
	ssize_t n;

	cr_assert(fd >= 0, "mkstemp: %s", strerror(errno));
	unlink(path);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		setenv("SA_PRELOAD", PRELOAD_LIB, 1);
		if (deny_nr >= 0 && !deny_syscall(deny_nr))
			_exit(DENY_UNAVAILABLE);
		execv(argv[0], argv);
		_exit(126);
	}
	cr_assert(waitpid(pid, &st, 0) == pid);
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	if (deny_nr >= 0 && r->status == DENY_UNAVAILABLE)
		cr_skip_test("cannot install a seccomp filter here");
	n = pread(fd, r->out, sizeof(r->out) - 1, 0);
	r->out[n > 0 ? n : 0] = '\0';
	close(fd);
}

/* spawned - the "spawned=" counter sa-run --stats printed, or -1. */
static long spawned(const struct run *r)
{
	const char *s = strstr(r->out, "libsa: stats:");

	if (!s || !(s = strstr(s, " spawned=")))
		return -1;
	return strtol(s + 9, NULL, 10);
}

static void expect_program(const char *vps, const char *prog, const char *arg,
			   long min_threads)
{
	char *argv[] = { SA_RUN, "-n", (char *)vps, "--stats", "--", (char *)prog,
			 (char *)arg, NULL };
	struct run r;

	run_cmd(&r, argv);
	cr_assert_eq(r.status, 0, "%s on %s VPs exited %d:\n%s", prog, vps, r.status, r.out);
	cr_assert_geq(spawned(&r), min_threads,
		      "%s made fewer uthreads than threads:\n%s", prog, r.out);
}

TestSuite(preload, .timeout = 120);

Test(preload, sync_objects_1vp) { expect_program("1", PROG("pt_sync"), NULL, 130); }
Test(preload, sync_objects_2vps) { expect_program("2", PROG("pt_sync"), NULL, 130); }
Test(preload, errno_tls_self_10k_threads_1vp) { expect_program("1", PROG("pt_tls"), NULL, 10000); }
Test(preload, errno_tls_self_10k_threads_2vps) { expect_program("2", PROG("pt_tls"), NULL, 10000); }
Test(preload, stdio_lines_whole_1vp) { expect_program("1", PROG("pt_stdio"), NULL, 32); }
Test(preload, stdio_lines_whole_2vps) { expect_program("2", PROG("pt_stdio"), NULL, 32); }
/* A thread yields while it holds a stream that 2,000 others wait for:
 * they must not block their VP in glibc's futex (the holder could never
 * come back to release it without the blocked hand-off). */
/* Seconds on a host; under the QEMU guest's emulated CPU (kernel backend,
 * one VP) the 4 million switches took more than two minutes. */
Test(preload, flockfile_holder_yields_1vp_no_handoff, .timeout = 400)
{
	char *argv[] = { "/usr/bin/env", "SA_STATS=1", "SA_VPS=1", "SA_BLOCKED_US=0",
			 "LD_PRELOAD=" PRELOAD_LIB, PROG("pt_flockfile"), NULL };
	struct run r;

	run_cmd(&r, argv);
	cr_assert_eq(r.status, 0, "pt_flockfile exited %d:\n%s", r.status, r.out);
	cr_assert_geq(spawned(&r), 2000, "%s", r.out);
}
Test(preload, flockfile_holder_yields_2vps, .timeout = 400)
{
	expect_program("2", PROG("pt_flockfile"), NULL, 2000);
}
Test(preload, cxx_thread_mutex_exceptions_1vp) { expect_program("1", PROG("pt_cxx"), NULL, 33); }
Test(preload, cxx_thread_mutex_exceptions_2vps) { expect_program("2", PROG("pt_cxx"), NULL, 33); }
Test(preload, dlopen_module_threads_1vp) { expect_program("1", PROG("pt_dlopen"), MODULE, 101); }
Test(preload, dlopen_module_threads_2vps) { expect_program("2", PROG("pt_dlopen"), MODULE, 101); }
Test(preload, foreign_threads_share_objects_1vp) { expect_program("1", PROG("pt_foreign"), NULL, 4); }
Test(preload, foreign_threads_share_objects_2vps) { expect_program("2", PROG("pt_foreign"), NULL, 4); }

/*
 * A library's constructor runs before the shim's and takes statically
 * initialised locks (sysbench's libgnutls does): the shim must start
 * there, not crash on C library functions it has not looked up yet.
 */
static void expect_early_library(const char *vps)
{
	char *argv[] = { "/usr/bin/env", "SA_STATS=1", (char *)vps,
			 "LD_PRELOAD=" PRELOAD_LIB " " EARLY_LIB, PROG("pt_ctor"), NULL };
	struct run r;

	run_cmd(&r, argv);
	cr_assert_eq(r.status, 0, "pt_ctor exited %d:\n%s", r.status, r.out);
	cr_assert_geq(spawned(&r), 8, "%s", r.out);
}

Test(preload, library_constructor_before_the_shims_1vp) { expect_early_library("SA_VPS=1"); }
Test(preload, library_constructor_before_the_shims_2vps) { expect_early_library("SA_VPS=2"); }

/*
 * Blocking I/O calls park the uthread: on one VP with the hand-off of
 * blocked kernel threads off, a thread waiting in read(), accept(),
 * poll(), select(), epoll_wait(), ... would otherwise stop the thread
 * that is to wake it.  The same program must pass under NPTL.
 */
/* expect_1vp_no_handoff - @prog passes on one VP with the hand-off off. */
static void expect_1vp_no_handoff(const char *prog, long min_threads)
{
	char *argv[] = { "/usr/bin/env", "SA_STATS=1", "SA_VPS=1", "SA_BLOCKED_US=0",
			 "LD_PRELOAD=" PRELOAD_LIB, (char *)prog, NULL };
	struct run r;

	run_cmd(&r, argv);
	cr_assert_eq(r.status, 0, "%s exited %d:\n%s", prog, r.status, r.out);
	cr_assert_geq(spawned(&r), min_threads, "%s", r.out);
}

/* expect_nptl_arg - @prog @arg passes without the shim, too. */
static void expect_nptl_arg(const char *prog, const char *arg)
{
	char *argv[] = { (char *)prog, (char *)arg, NULL };
	struct run r;

	run_cmd(&r, argv);
	cr_assert_eq(r.status, 0, "%s under NPTL exited %d:\n%s", prog, r.status, r.out);
}

/* expect_nptl - @prog passes without the shim, too. */
static void expect_nptl(const char *prog)
{
	expect_nptl_arg(prog, NULL);
}

Test(preload, blocking_io_parks_the_uthread_1vp_no_handoff)
{
	expect_1vp_no_handoff(PROG("pt_io"), 10);
}

Test(preload, blocking_io_parks_the_uthread_2vps)
{
	expect_program("2", PROG("pt_io"), NULL, 10);
}

Test(preload, blocking_io_same_under_nptl) { expect_nptl(PROG("pt_io")); }

/*
 * pthread_exit() and pthread_cancel() run cleanup handlers: plain C
 * (__pthread_register_cancel), C with -fexceptions (unwinding), the old
 * _pthread_cleanup_push, and C++ destructors; a thread waiting in read()
 * is cancelled at once.
 */
Test(preload, cancel_c_1vp_no_handoff) { expect_1vp_no_handoff(PROG("pt_cancel"), 70); }
Test(preload, cancel_c_2vps) { expect_program("2", PROG("pt_cancel"), NULL, 70); }
Test(preload, cancel_c_same_under_nptl) { expect_nptl(PROG("pt_cancel")); }
Test(preload, cancel_c_fexceptions_1vp_no_handoff)
{
	expect_1vp_no_handoff(PROG("pt_cancel_exc"), 70);
}
Test(preload, cancel_c_fexceptions_2vps) { expect_program("2", PROG("pt_cancel_exc"), NULL, 70); }
Test(preload, cancel_c_fexceptions_same_under_nptl) { expect_nptl(PROG("pt_cancel_exc")); }
Test(preload, cancel_cxx_unwinds_1vp_no_handoff)
{
	expect_1vp_no_handoff(PROG("pt_cancel_cxx"), 2);
}
Test(preload, cancel_cxx_unwinds_2vps) { expect_program("2", PROG("pt_cancel_cxx"), NULL, 2); }
Test(preload, cancel_cxx_unwinds_same_under_nptl) { expect_nptl(PROG("pt_cancel_cxx")); }

/* pthread_exit() from main unwinds main (cleanup handlers of plain C and
 * of -fexceptions, then its key destructor); the process lives on until
 * its other thread returns, then exits 0.  "solo": main made no thread. */
Test(preload, main_pthread_exit_unwinds_1vp_no_handoff)
{
	expect_1vp_no_handoff(PROG("pt_mainexit"), 1);
}
Test(preload, main_pthread_exit_unwinds_2vps) { expect_program("2", PROG("pt_mainexit"), NULL, 1); }
Test(preload, main_pthread_exit_unwinds_same_under_nptl) { expect_nptl(PROG("pt_mainexit")); }
Test(preload, main_pthread_exit_fexceptions_2vps)
{
	expect_program("2", PROG("pt_mainexit_exc"), NULL, 1);
}
Test(preload, main_pthread_exit_fexceptions_same_under_nptl)
{
	expect_nptl(PROG("pt_mainexit_exc"));
}
Test(preload, main_pthread_exit_no_thread_2vps)
{
	/* No thread, so the runtime never starts and prints no counters. */
	expect_program("2", PROG("pt_mainexit"), "solo", -1);
}
Test(preload, main_pthread_exit_no_thread_same_under_nptl)
{
	expect_nptl_arg(PROG("pt_mainexit"), "solo");
}

/* An ended thread's malloc cache is given back: 20,000 threads that
 * malloc and free grow the resident set by less than 4 MiB. */
Test(preload, ended_threads_free_malloc_caches_1vp) { expect_program("1", PROG("pt_mcache"), NULL, 21000); }
Test(preload, ended_threads_free_malloc_caches_2vps) { expect_program("2", PROG("pt_mcache"), NULL, 21000); }
Test(preload, ended_threads_free_malloc_caches_same_under_nptl) { expect_nptl(PROG("pt_mcache")); }
/* The cache is found by reading memory that may be unmapped, which
 * process_vm_readv() does; a kernel without it (the guest of
 * tests/kernel has none) takes another way. */
Test(preload, ended_threads_free_malloc_caches_without_process_vm_readv)
{
	deny_nr = __NR_process_vm_readv;
	expect_program("1", PROG("pt_mcache"), NULL, 21000);
}

/* Joins with and without waiting, scheduling parameters and affinity,
 * with their errors; the same under NPTL. */
Test(preload, joins_sched_affinity_1vp_no_handoff)
{
	expect_1vp_no_handoff(PROG("pt_threadctl"), 5);
}
Test(preload, joins_sched_affinity_2vps) { expect_program("2", PROG("pt_threadctl"), NULL, 5); }
Test(preload, joins_sched_affinity_same_under_nptl) { expect_nptl(PROG("pt_threadctl")); }

/* fork() from a thread while others run: atfork order, a child that
 * makes threads again, exec; the same under NPTL. */
Test(preload, fork_from_uthread_1vp_no_handoff) { expect_1vp_no_handoff(PROG("pt_fork"), 5); }
Test(preload, fork_from_uthread_2vps) { expect_program("2", PROG("pt_fork"), NULL, 5); }
Test(preload, fork_from_uthread_same_under_nptl) { expect_nptl(PROG("pt_fork")); }

/* pthread_kill() runs the handler on the target thread, interrupting or
 * restarting its wait; a per-thread mask holds the signal back. */
Test(preload, pthread_kill_and_masks_1vp_no_handoff) { expect_1vp_no_handoff(PROG("pt_kill"), 4); }
Test(preload, pthread_kill_and_masks_2vps) { expect_program("2", PROG("pt_kill"), NULL, 4); }
Test(preload, pthread_kill_and_masks_same_under_nptl) { expect_nptl(PROG("pt_kill")); }

/* expect_case - case @c of the one-case-per-run program @prog passes
 * under the shim with $SA_VPS set as @vps, without hand-off. */
static void expect_case(const char *prog, const char *vps, const char *c)
{
	char *argv[] = { "/usr/bin/env", "SA_STATS=1", (char *)vps, "SA_BLOCKED_US=0",
			 "LD_PRELOAD=" PRELOAD_LIB, (char *)prog, (char *)c, NULL };
	struct run r;

	run_cmd(&r, argv);
	cr_assert_eq(r.status, 0, "%s %s (%s) exited %d:\n%s", prog, c, vps, r.status, r.out);
	cr_assert_geq(spawned(&r), 1, "%s", r.out);
}

static void expect_case_nptl(const char *prog, const char *c)
{
	char *argv[] = { (char *)prog, (char *)c, NULL };
	struct run r;

	run_cmd(&r, argv);
	cr_assert_eq(r.status, 0, "%s %s under NPTL exited %d:\n%s", prog, c, r.status, r.out);
}

/* CASE - one case of @prog on one VP, on two, and under NPTL. */
#define CASE(prog, name)                                                              \
	Test(preload, prog##_##name##_1vp) { expect_case(PROG(#prog), "SA_VPS=1", #name); }  \
	Test(preload, prog##_##name##_2vps) { expect_case(PROG(#prog), "SA_VPS=2", #name); } \
	Test(preload, prog##_##name##_same_under_nptl) { expect_case_nptl(PROG(#prog), #name); }

/*
 * pthread_kill() and pthread_cancel() cut a sleep, a condition, semaphore
 * or join wait short at once (pt_intr.c has one case per run): on one VP
 * without hand-off, so that the wait surely parks the uthread; on two; and
 * the same case under NPTL.
 */
#define INTR_CASE(name) CASE(pt_intr, name)

INTR_CASE(kill_nanosleep)
INTR_CASE(kill_nanosleep_sa_restart)
INTR_CASE(kill_clock_nanosleep_abs)
INTR_CASE(kill_usleep)
INTR_CASE(kill_sleep)
INTR_CASE(kill_blocked_signal_waits_on)
INTR_CASE(kill_cond_wait)
INTR_CASE(kill_cond_timedwait)
INTR_CASE(kill_sem_wait)
INTR_CASE(kill_sem_timedwait)
INTR_CASE(kill_sem_wait_sa_restart)
INTR_CASE(kill_join)
INTR_CASE(cancel_nanosleep)
INTR_CASE(cancel_disabled_sleep_runs_its_course)
INTR_CASE(cancel_cond_wait)
INTR_CASE(cancel_sem_wait)
INTR_CASE(cancel_join_leaves_target_joinable)

/* A signal runs its handler while the thread waits for a mutex, rwlock or
 * barrier, and the wait goes on: these never fail with EINTR. */
INTR_CASE(kill_mutex_lock)
INTR_CASE(kill_mutex_lock_recursive)
INTR_CASE(kill_mutex_lock_errorcheck)
INTR_CASE(kill_mutex_timedlock)
INTR_CASE(kill_rwlock_rdlock)
INTR_CASE(kill_rwlock_wrlock)
INTR_CASE(kill_rwlock_timedrdlock)
INTR_CASE(kill_rwlock_timedwrlock)
INTR_CASE(kill_barrier_wait)
INTR_CASE(cancel_mutex_lock_waits_for_a_cancellation_point)

/* A signal sent to the process reaches the one thread that does not block
 * it, though every thread waits: its wait ends with EINTR. */
INTR_CASE(proc_kill_nanosleep)
INTR_CASE(proc_kill_from_thread_nanosleep)
INTR_CASE(proc_kill_from_thread_sem_timedwait)
INTR_CASE(proc_alarm_nanosleep)
INTR_CASE(proc_setitimer_sem_timedwait)
INTR_CASE(proc_kill_all_block_pending_until_unblocked)

/* Many threads share few kernel threads: a process signal reaches the one
 * thread that does not block it though the others keep blocking it; a
 * signal every thread blocks stays pending for the process (sigpending(),
 * sigwait(), sigwaitinfo(), sigsuspend(), signalfd); real-time signals
 * queue with their values. */
INTR_CASE(proc_one_taker_among_maskers)
INTR_CASE(proc_sigwait_thread)
INTR_CASE(proc_sigwaitinfo_value)
INTR_CASE(proc_sigtimedwait_times_out)
INTR_CASE(proc_sigsuspend_thread)
INTR_CASE(proc_signalfd_thread)
INTR_CASE(proc_sigpending_blocked_by_all)
INTR_CASE(proc_sigqueue_rt_in_order)
INTR_CASE(proc_pselect_mask)
INTR_CASE(proc_ppoll_mask)

/*
 * A blocking write, writev, send or sendmsg to a stream socket or a pipe
 * returns once all of it went, as the kernel's does, though the reader
 * is slow; SO_RCVTIMEO and SO_SNDTIMEO end waits with EAGAIN (pt_sock.c).
 */
#define SOCK_CASE(name) CASE(pt_sock, name)

SOCK_CASE(pipe_write_all)
SOCK_CASE(pipe_writev_all)
SOCK_CASE(stream_write_all)
SOCK_CASE(stream_writev_all)
SOCK_CASE(stream_send_all)
SOCK_CASE(stream_sendmsg_all)
SOCK_CASE(recv_rcvtimeo)
SOCK_CASE(read_rcvtimeo)
SOCK_CASE(accept_rcvtimeo)
SOCK_CASE(send_sndtimeo_returns_the_part_sent)

/* Every yield call reaches the scheduler: on one VP without ticks or
 * hand-off, a yield that went to the kernel would never let the other
 * thread run (sysbench calls the old pthread_yield). */
Test(preload, every_yield_call_switches_1vp_no_ticks)
{
	char *argv[] = { "/usr/bin/env", "SA_STATS=1", "SA_VPS=1", "SA_BLOCKED_US=0",
			 "SA_QUANTUM_US=0", "LD_PRELOAD=" PRELOAD_LIB, PROG("pt_yield"), NULL };
	struct run r;

	run_cmd(&r, argv);
	cr_assert_eq(r.status, 0, "pt_yield exited %d:\n%s", r.status, r.out);
}
Test(preload, every_yield_call_same_under_nptl) { expect_nptl(PROG("pt_yield")); }

/* C11 <threads.h> makes uthreads and parks them in its waits. */
Test(preload, c11_threads_1vp_no_handoff) { expect_1vp_no_handoff(PROG("pt_c11"), 67); }
Test(preload, c11_threads_2vps) { expect_program("2", PROG("pt_c11"), NULL, 67); }
Test(preload, c11_threads_same_under_nptl) { expect_nptl(PROG("pt_c11")); }

/*
 * Robust mutexes: one behaviour of pt_robust per test, on one VP with the
 * hand-off off (a thread blocked in the kernel would stop the others), on
 * two VPs, and under NPTL, whose results they must equal.
 */
static void expect_case_io(const char *vps, const char *io, const char *prog,
			   const char *name)
{
	char env_vps[16];
	char *argv[] = { "/usr/bin/env", "SA_STATS=1", env_vps, "SA_BLOCKED_US=0",
			 (char *)io, "LD_PRELOAD=" PRELOAD_LIB, (char *)prog, (char *)name,
			 NULL };
	struct run r;

	snprintf(env_vps, sizeof(env_vps), "SA_VPS=%s", vps);
	if (strcmp(vps, "2") == 0)
		argv[3] = "SA_BLOCKED_US=1000";
	run_cmd(&r, argv);
	cr_assert_eq(r.status, 0, "%s %s on %s VPs (%s) exited %d:\n%s", prog, name, vps,
		     io, r.status, r.out);
}

/* expect_case_on - as expect_case(), on @vps VPs with the I/O backend
 * the probe picks, and the hand-off on with two. */
static void expect_case_on(const char *vps, const char *prog, const char *name)
{
	expect_case_io(vps, "SA_IO=", prog, name);
}

/*
 * open, creat, close, fsync and fdatasync give the C library's results and
 * errors; an open of a FIFO that waits for its writer parks only its
 * uthread (one VP, no hand-off), and a thread waiting in one is
 * cancelled at once (pt_fileio.c).
 */
CASE(pt_fileio, opens)
CASE(pt_fileio, closes)
CASE(pt_fileio, syncs)
CASE(pt_fileio, fifo_open_waits)
CASE(pt_fileio, cancel_in_open)

/*
 * pthread_kill(), pthread_cancel() and a signal sent to the process cut an
 * I/O wait short on the ring, on the thread-pool fallback, and under NPTL
 * alike (pt_intr.c).
 */
#define IO_INTR_CASE(name)                                                       \
	Test(preload, pt_intr_##name##_1vp_no_handoff) { expect_case_on("1", PROG("pt_intr"), #name); } \
	Test(preload, pt_intr_##name##_2vps) { expect_case_on("2", PROG("pt_intr"), #name); } \
	Test(preload, pt_intr_##name##_pool_1vp)                               \
	{                                                                      \
		expect_case_io("1", "SA_IO=threads", PROG("pt_intr"), #name);  \
	}                                                                      \
	Test(preload, pt_intr_##name##_pool_2vps)                              \
	{                                                                      \
		expect_case_io("2", "SA_IO=threads", PROG("pt_intr"), #name);  \
	}                                                                      \
	Test(preload, pt_intr_##name##_same_under_nptl) { expect_case_nptl(PROG("pt_intr"), #name); }

IO_INTR_CASE(kill_read_pipe)
IO_INTR_CASE(kill_read_pipe_sa_restart)
IO_INTR_CASE(kill_poll)
IO_INTR_CASE(kill_poll_sa_restart)
IO_INTR_CASE(kill_select_sa_restart)
IO_INTR_CASE(kill_epoll_wait_sa_restart)
IO_INTR_CASE(kill_recv_socket)
IO_INTR_CASE(cancel_read_pipe)
IO_INTR_CASE(proc_kill_read_pipe)
/* With the hand-off on (two VPs), libsa's watchdog thread exists: made
 * before the program blocked the signal, it must not take it. */
IO_INTR_CASE(proc_sigwait_blocked_late_no_handler)

#define ROBUST_CASE(name)                                                       \
	Test(preload, robust_##name##_1vp_no_handoff)                           \
	{                                                                       \
		expect_case_on("1", PROG("pt_robust"), #name);                     \
	}                                                                       \
	Test(preload, robust_##name##_2vps)                                     \
	{                                                                       \
		expect_case_on("2", PROG("pt_robust"), #name);                     \
	}                                                                       \
	Test(preload, robust_##name##_same_under_nptl)                          \
	{                                                                       \
		expect_case_nptl(PROG("pt_robust"), #name);                     \
	}

ROBUST_CASE(attr)
ROBUST_CASE(owner_return)
ROBUST_CASE(owner_pthread_exit)
ROBUST_CASE(owner_cancelled)
ROBUST_CASE(trylock_eownerdead)
ROBUST_CASE(timedlock_eownerdead)
ROBUST_CASE(waiter_eownerdead)
ROBUST_CASE(notrecoverable_lock)
ROBUST_CASE(notrecoverable_trylock)
ROBUST_CASE(notrecoverable_timedlock)
ROBUST_CASE(notrecoverable_other_thread)
ROBUST_CASE(consistent_einval)
ROBUST_CASE(unlock_by_other_eperm)
ROBUST_CASE(cond_wait_eownerdead)

/* The shim's documented limit: a process-shared robust mutex, like any
 * process-shared mutex, fails at init. */
Test(preload, robust_pshared_enotsup_1vp)
{
	expect_case_on("1", PROG("pt_robust"), "pshared_enotsup");
}

/*
 * The C library's semaphores (named, process-shared): a thread waiting on
 * one parks, and on one VP with the hand-off off a ticker thread runs
 * meanwhile.  Each behaviour on one VP waiting in the ring (the kernel's
 * IORING_OP_FUTEX_WAIT; skipped where the kernel lacks it), on one VP
 * with the ring's fallback (SA_IO=threads: uthread sleeps between looks),
 * on two VPs, and under NPTL.
 */
static bool ring_futex_wait_supported(void)
{
	struct io_uring ring;
	struct io_uring_probe *p;
	bool ok;

	if (io_uring_queue_init(2, &ring, 0) < 0)
		return false;
	p = io_uring_get_probe_ring(&ring);
	ok = p && io_uring_opcode_supported(p, 51 /* IORING_OP_FUTEX_WAIT */);
	if (p)
		io_uring_free_probe(p);
	io_uring_queue_exit(&ring);
	return ok;
}

#define SEM_CASE(name)                                                          \
	Test(preload, sem_##name##_1vp_ring)                                    \
	{                                                                       \
		if (!ring_futex_wait_supported())                               \
			cr_skip_test("no IORING_OP_FUTEX_WAIT (Linux 6.7)");    \
		expect_case_io("1", "SA_IO=uring", PROG("pt_namedsem"), #name); \
	}                                                                       \
	Test(preload, sem_##name##_1vp_no_ring)                                 \
	{                                                                       \
		expect_case_io("1", "SA_IO=threads", PROG("pt_namedsem"), #name); \
	}                                                                       \
	Test(preload, sem_##name##_2vps)                                        \
	{                                                                       \
		expect_case_on("2", PROG("pt_namedsem"), #name);                   \
	}                                                                       \
	Test(preload, sem_##name##_same_under_nptl)                             \
	{                                                                       \
		expect_case_nptl(PROG("pt_namedsem"), #name);                   \
	}

SEM_CASE(named_cross_process)
SEM_CASE(pshared_cross_process)
SEM_CASE(named_many_waiters)
SEM_CASE(named_timedwait_timeout)
SEM_CASE(named_clockwait_timeout)
SEM_CASE(named_timedwait_posted)
SEM_CASE(named_einval)
SEM_CASE(named_eintr)
SEM_CASE(named_cancel)

/* ---- sa-run's command line ---- */

static void expect_run_error(char *const argv[], int status, const char *msg)
{
	struct run r;

	run_cmd(&r, argv);
	cr_assert_eq(r.status, status, "exit %d, want %d:\n%s", r.status, status, r.out);
	cr_assert(strstr(r.out, msg), "no \"%s\" in:\n%s", msg, r.out);
}

Test(sa_run, rejects_vps_out_of_range)
{
	char *argv[] = { SA_RUN, "-n", "0", "--", "/bin/true", NULL };

	expect_run_error(argv, 2, "must be 1 to 256");
}

Test(sa_run, rejects_vps_not_a_number)
{
	char *argv[] = { SA_RUN, "-n", "two", "--", "/bin/true", NULL };

	expect_run_error(argv, 2, "must be 1 to 256");
}

Test(sa_run, rejects_unknown_option)
{
	char *argv[] = { SA_RUN, "--fast", "--", "/bin/true", NULL };

	expect_run_error(argv, 2, "unknown option --fast");
}

Test(sa_run, needs_a_program)
{
	char *argv[] = { SA_RUN, "-n", "1", NULL };

	expect_run_error(argv, 2, "no program to run");
}

Test(sa_run, missing_program_is_127)
{
	char *argv[] = { SA_RUN, "--", "/nonexistent/program", NULL };

	expect_run_error(argv, 127, "/nonexistent/program");
}

Test(sa_run, sets_the_environment)
{
	char *argv[] = { SA_RUN, "-n", "3", "--stats", "--", "/bin/sh", "-c",
			 "echo \"vps=$SA_VPS stats=$SA_STATS pre=$LD_PRELOAD\"", NULL };
	struct run r;

	run_cmd(&r, argv);
	cr_assert_eq(r.status, 0, "%s", r.out);
	cr_assert(strstr(r.out, "vps=3 stats=1 pre=" PRELOAD_LIB), "%s", r.out);
}

/* The library itself refuses a bad $SA_VPS with a message, not a crash. */
Test(sa_run, library_rejects_bad_sa_vps)
{
	char *argv[] = { "/usr/bin/env", "SA_VPS=lots", "LD_PRELOAD=" PRELOAD_LIB,
			 PROG("pt_sync"), NULL };

	expect_run_error(argv, 127, "SA_VPS must be a number from 1 to 256");
}
