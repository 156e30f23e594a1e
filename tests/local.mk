# tests/local.mk - the Criterion test suite: one program per area (make check)
if HAVE_CRITERION

TESTS_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
TESTS_LDADD = libsa.la $(CRITERION_LIBS)

sa_test_progs = \
	tests/test_runtime \
	tests/test_uthread \
	tests/test_keys \
	tests/test_sched \
	tests/test_mutex \
	tests/test_cond \
	tests/test_rwlock \
	tests/test_sem \
	tests/test_barrier_once \
	tests/test_stack \
	tests/test_stress \
	tests/test_preempt \
	tests/test_blocked \
	tests/test_io \
	tests/test_io_threads \
	tests/test_critsec \
	tests/test_intr
check_PROGRAMS += $(sa_test_progs)
TESTS += $(sa_test_progs)

tests_test_runtime_SOURCES = tests/test_runtime.c tests/helpers.h
tests_test_runtime_CFLAGS = $(TESTS_CFLAGS)
tests_test_runtime_LDADD = $(TESTS_LDADD)

tests_test_uthread_SOURCES = tests/test_uthread.c tests/helpers.h
tests_test_uthread_CFLAGS = $(TESTS_CFLAGS)
tests_test_uthread_LDADD = $(TESTS_LDADD)

tests_test_keys_SOURCES = tests/test_keys.c tests/helpers.h
tests_test_keys_CFLAGS = $(TESTS_CFLAGS)
tests_test_keys_LDADD = $(TESTS_LDADD)

tests_test_sched_SOURCES = tests/test_sched.c tests/helpers.h
tests_test_sched_CFLAGS = $(TESTS_CFLAGS)
tests_test_sched_LDADD = $(TESTS_LDADD)

tests_test_mutex_SOURCES = tests/test_mutex.c tests/helpers.h
tests_test_mutex_CFLAGS = $(TESTS_CFLAGS)
tests_test_mutex_LDADD = $(TESTS_LDADD)

tests_test_cond_SOURCES = tests/test_cond.c tests/helpers.h
tests_test_cond_CFLAGS = $(TESTS_CFLAGS)
tests_test_cond_LDADD = $(TESTS_LDADD)

tests_test_rwlock_SOURCES = tests/test_rwlock.c tests/helpers.h
tests_test_rwlock_CFLAGS = $(TESTS_CFLAGS)
tests_test_rwlock_LDADD = $(TESTS_LDADD)

tests_test_sem_SOURCES = tests/test_sem.c tests/helpers.h
tests_test_sem_CFLAGS = $(TESTS_CFLAGS)
tests_test_sem_LDADD = $(TESTS_LDADD)

tests_test_barrier_once_SOURCES = tests/test_barrier_once.c tests/helpers.h
tests_test_barrier_once_CFLAGS = $(TESTS_CFLAGS)
tests_test_barrier_once_LDADD = $(TESTS_LDADD)

tests_test_stack_SOURCES = tests/test_stack.c tests/helpers.h
tests_test_stack_CFLAGS = $(TESTS_CFLAGS)
tests_test_stack_LDADD = $(TESTS_LDADD)

# The I/O tests twice: on the default backend, and forced onto the
# thread-pool fallback (SA_IO=threads).
tests_test_io_SOURCES = tests/test_io.c tests/helpers.h
tests_test_io_CFLAGS = $(TESTS_CFLAGS)
tests_test_io_LDADD = $(TESTS_LDADD)

tests_test_io_threads_SOURCES = tests/test_io.c tests/helpers.h
tests_test_io_threads_CFLAGS = $(TESTS_CFLAGS) -DTEST_IO_BACKEND='"threads"'
tests_test_io_threads_LDADD = $(TESTS_LDADD)

tests_test_stress_SOURCES = tests/test_stress.c tests/helpers.h
tests_test_stress_CFLAGS = $(TESTS_CFLAGS)
tests_test_stress_LDADD = $(TESTS_LDADD)

tests_test_blocked_SOURCES = tests/test_blocked.c tests/helpers.h
tests_test_blocked_CFLAGS = $(TESTS_CFLAGS)
tests_test_blocked_LDADD = $(TESTS_LDADD)

# The critical-section tests link the tests' own build of the library:
# the same sources through the same copies and checks, with the lock
# checker (SA_DEBUG_LOCKS) on, statically, so that they can read the table
# and the checker's counter that libsa.so keeps hidden.
check_LTLIBRARIES += tests/libsa-lockcheck.la
tests_libsa_lockcheck_la_SOURCES = $(libsa_la_SOURCES)
tests_libsa_lockcheck_la_CFLAGS = $(libsa_la_CFLAGS) -DSA_DEBUG_LOCKS
tests_libsa_lockcheck_la_CCASFLAGS = $(AM_CCASFLAGS)
tests_libsa_lockcheck_la_LIBADD = $(LIBURING_LIBS) -lpthread -ldl

# io_futex_wait() is internal too: its test links the same build.
check_PROGRAMS += tests/test_futex
TESTS += tests/test_futex
tests_test_futex_SOURCES = tests/test_futex.c tests/helpers.h
tests_test_futex_CFLAGS = $(TESTS_CFLAGS) $(LIBURING_CFLAGS)
tests_test_futex_LDADD = tests/libsa-lockcheck.la $(CRITERION_LIBS)

tests_test_critsec_SOURCES = tests/test_critsec.c tests/helpers.h
tests_test_critsec_CFLAGS = $(TESTS_CFLAGS) $(LIBURING_CFLAGS)
tests_test_critsec_LDADD = tests/libsa-lockcheck.la $(CRITERION_LIBS)
check_DATA = tests/critsec.checked
CLEANFILES += tests/critsec.checked
tests/critsec.checked: tests/test_critsec$(EXEEXT) $(CS_TOOLS)
	$(AM_V_GEN)$(CS_CHECK) tests/test_critsec$(EXEEXT) \
		$(tests_libsa_lockcheck_la_OBJECTS) && touch $@

# ut_interrupt() and the interruptible waits are the shim's, hidden in
# libsa.so: linked statically, as test_critsec is.
tests_test_intr_SOURCES = tests/test_intr.c tests/helpers.h
tests_test_intr_CFLAGS = $(TESTS_CFLAGS) $(LIBURING_CFLAGS)
tests_test_intr_LDADD = tests/libsa-lockcheck.la $(CRITERION_LIBS)

tests_test_preempt_SOURCES = tests/test_preempt.c tests/helpers.h
tests_test_preempt_CFLAGS = $(TESTS_CFLAGS)
tests_test_preempt_LDADD = $(TESTS_LDADD) -lm

# The LD_PRELOAD shim: plain pthreads programs (they know nothing of libsa)
# run under sa-run by test_preload.  Not in sanitizer builds, which do not
# build the shim.
if !SANITIZE
pt_progs = \
	tests/preload/pt_sync \
	tests/preload/pt_tls \
	tests/preload/pt_stdio \
	tests/preload/pt_cxx \
	tests/preload/pt_dlopen \
	tests/preload/pt_foreign \
	tests/preload/pt_ctor \
	tests/preload/pt_io \
	tests/preload/pt_cancel \
	tests/preload/pt_cancel_exc \
	tests/preload/pt_cancel_cxx \
	tests/preload/pt_mainexit \
	tests/preload/pt_mainexit_exc \
	tests/preload/pt_mcache \
	tests/preload/pt_fileio \
	tests/preload/pt_flockfile \
	tests/preload/pt_threadctl \
	tests/preload/pt_fork \
	tests/preload/pt_kill \
	tests/preload/pt_intr \
	tests/preload/pt_sock \
	tests/preload/pt_yield \
	tests/preload/pt_c11 \
	tests/preload/pt_robust \
	tests/preload/pt_namedsem
check_PROGRAMS += $(pt_progs) tests/test_preload
TESTS += tests/test_preload
check_LTLIBRARIES += tests/preload/pt_module.la tests/preload/pt_early.la

PT_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/tests/preload
tests_preload_pt_sync_SOURCES = tests/preload/pt_sync.c tests/preload/pt.h
tests_preload_pt_sync_CFLAGS = $(PT_CFLAGS)
tests_preload_pt_tls_SOURCES = tests/preload/pt_tls.c tests/preload/pt.h
tests_preload_pt_tls_CFLAGS = $(PT_CFLAGS)
tests_preload_pt_stdio_SOURCES = tests/preload/pt_stdio.c tests/preload/pt.h
tests_preload_pt_stdio_CFLAGS = $(PT_CFLAGS)
tests_preload_pt_dlopen_SOURCES = tests/preload/pt_dlopen.c tests/preload/pt.h
tests_preload_pt_dlopen_CFLAGS = $(PT_CFLAGS)
tests_preload_pt_dlopen_LDADD = -ldl
tests_preload_pt_foreign_SOURCES = tests/preload/pt_foreign.c tests/preload/pt.h
tests_preload_pt_foreign_CFLAGS = $(PT_CFLAGS)
tests_preload_pt_cxx_SOURCES = tests/preload/pt_cxx.cc
tests_preload_pt_cxx_CXXFLAGS = -std=c++17 -pthread -Wall -Wextra
tests_preload_pt_module_la_SOURCES = tests/preload/pt_module.c tests/preload/pt.h
tests_preload_pt_module_la_CFLAGS = $(PT_CFLAGS)
tests_preload_pt_module_la_LDFLAGS = -module -avoid-version -shared -rpath /nowhere
tests_preload_pt_early_la_SOURCES = tests/preload/pt_early.c tests/preload/pt.h
tests_preload_pt_early_la_CFLAGS = $(PT_CFLAGS)
tests_preload_pt_early_la_LDFLAGS = -module -avoid-version -shared -rpath /nowhere
tests_preload_pt_ctor_SOURCES = tests/preload/pt_ctor.c tests/preload/pt.h
tests_preload_pt_ctor_CFLAGS = $(PT_CFLAGS)
tests_preload_pt_ctor_LDADD = -ldl
tests_preload_pt_io_SOURCES = tests/preload/pt_io.c tests/preload/pt.h
tests_preload_pt_io_CFLAGS = $(PT_CFLAGS)
# Plain C registers cleanup buffers with __pthread_register_cancel; with
# -fexceptions the handlers are cleanup attributes run by unwinding.
tests_preload_pt_cancel_SOURCES = tests/preload/pt_cancel.c tests/preload/pt.h
tests_preload_pt_cancel_CFLAGS = $(PT_CFLAGS) -fno-exceptions
tests_preload_pt_cancel_exc_SOURCES = tests/preload/pt_cancel.c tests/preload/pt.h
tests_preload_pt_cancel_exc_CFLAGS = $(PT_CFLAGS) -fexceptions
tests_preload_pt_mainexit_SOURCES = tests/preload/pt_mainexit.c tests/preload/pt.h
tests_preload_pt_mainexit_CFLAGS = $(PT_CFLAGS) -fno-exceptions
tests_preload_pt_mainexit_exc_SOURCES = tests/preload/pt_mainexit.c tests/preload/pt.h
tests_preload_pt_mainexit_exc_CFLAGS = $(PT_CFLAGS) -fexceptions
tests_preload_pt_cancel_cxx_SOURCES = tests/preload/pt_cancel_cxx.cc
tests_preload_pt_cancel_cxx_CXXFLAGS = -std=c++17 -pthread -Wall -Wextra
tests_preload_pt_flockfile_SOURCES = tests/preload/pt_flockfile.c tests/preload/pt.h
tests_preload_pt_flockfile_CFLAGS = $(PT_CFLAGS)
tests_preload_pt_threadctl_SOURCES = tests/preload/pt_threadctl.c tests/preload/pt.h
tests_preload_pt_threadctl_CFLAGS = $(PT_CFLAGS)
tests_preload_pt_fork_SOURCES = tests/preload/pt_fork.c tests/preload/pt.h
tests_preload_pt_fork_CFLAGS = $(PT_CFLAGS)
tests_preload_pt_kill_SOURCES = tests/preload/pt_kill.c tests/preload/pt.h
tests_preload_pt_kill_CFLAGS = $(PT_CFLAGS)
tests_preload_pt_intr_SOURCES = tests/preload/pt_intr.c tests/preload/pt.h
tests_preload_pt_intr_CFLAGS = $(PT_CFLAGS)
tests_preload_pt_sock_SOURCES = tests/preload/pt_sock.c tests/preload/pt.h
tests_preload_pt_sock_CFLAGS = $(PT_CFLAGS)
tests_preload_pt_yield_SOURCES = tests/preload/pt_yield.c tests/preload/pt.h
tests_preload_pt_yield_CFLAGS = $(PT_CFLAGS)
tests_preload_pt_c11_SOURCES = tests/preload/pt_c11.c tests/preload/pt.h
tests_preload_pt_c11_CFLAGS = $(PT_CFLAGS)
tests_preload_pt_robust_SOURCES = tests/preload/pt_robust.c tests/preload/pt.h
tests_preload_pt_robust_CFLAGS = $(PT_CFLAGS)
tests_preload_pt_namedsem_SOURCES = tests/preload/pt_namedsem.c tests/preload/pt.h
tests_preload_pt_namedsem_CFLAGS = $(PT_CFLAGS)
tests_preload_pt_mcache_SOURCES = tests/preload/pt_mcache.c tests/preload/pt.h
tests_preload_pt_mcache_CFLAGS = $(PT_CFLAGS)
tests_preload_pt_fileio_SOURCES = tests/preload/pt_fileio.c tests/preload/pt.h
tests_preload_pt_fileio_CFLAGS = $(PT_CFLAGS)

tests_test_preload_SOURCES = tests/test_preload.c
tests_test_preload_CPPFLAGS = $(AM_CPPFLAGS) -DTOP_BUILDDIR='"$(abs_top_builddir)"'
tests_test_preload_CFLAGS = $(TESTS_CFLAGS) $(LIBURING_CFLAGS)
tests_test_preload_LDADD = $(CRITERION_LIBS) $(LIBURING_LIBS)

# The real-program corpus: each program runs under NPTL and under the
# shim, and test_corpus compares the two.  The two built here link
# against glibc (and libstdc++) only; sysbench, python3 and memcached come
# from Debian (tools/install-deps); a missing one makes its tests skip.
corpus_progs = \
	tests/corpus/c_threads10k \
	tests/corpus/cxx_workload
check_PROGRAMS += $(corpus_progs) tests/test_corpus
TESTS += tests/test_corpus
tests_corpus_c_threads10k_SOURCES = tests/corpus/c_threads10k.c
tests_corpus_c_threads10k_CFLAGS = $(AM_CFLAGS) -pthread
tests_corpus_cxx_workload_SOURCES = tests/corpus/cxx_workload.cc
tests_corpus_cxx_workload_CXXFLAGS = -std=c++17 -O2 -pthread -Wall -Wextra
EXTRA_DIST += tests/corpus/py_threading.py

tests_test_corpus_SOURCES = tests/test_corpus.c
tests_test_corpus_CPPFLAGS = $(AM_CPPFLAGS) -DTOP_BUILDDIR='"$(abs_top_builddir)"' \
	-DTOP_SRCDIR='"$(abs_top_srcdir)"'
tests_test_corpus_CFLAGS = $(TESTS_CFLAGS) -pthread
tests_test_corpus_LDADD = $(CRITERION_LIBS) -lpthread
endif

endif

# A plain (non-Criterion) program: the one that runs under ThreadSanitizer,
# where Criterion's runner cannot start.  Runs in every build.
check_PROGRAMS += tests/tsan_sync
TESTS += tests/tsan_sync
tests_tsan_sync_SOURCES = tests/tsan_sync.c
tests_tsan_sync_LDADD = libsa.la
