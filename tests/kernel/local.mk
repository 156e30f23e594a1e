# tests/kernel/local.mk - the QEMU kernel harness: make check-kernel, make bench-kernel (not part of make check)
#
# Both boot a kernel built from Debian's linux-source-6.1 plus
# kernel-patches/ under qemu-system-x86_64 (TCG) and need the packages of
# tools/install-deps; the kernel is cached in $KERNEL_CACHE.  Extra options
# for tests/kernel/check-kernel go in CHECK_KERNEL_FLAGS (e.g. --debug).
EXTRA_DIST += \
	kernel-patches \
	tests/kernel/check-kernel \
	tests/kernel/mkinitramfs \
	tests/kernel/check-console \
	tests/kernel/bench-kernel \
	tests/kernel/init \
	tests/kernel/run-one \
	tests/kernel/smoke \
	tests/kernel/sa.fragment \
	tests/kernel/sa-debug.fragment \
	tests/kernel/bench/pingpong.c

# The guest benchmark of libsa itself (check-kernel --only bench runs it):
# built with the tests so that it keeps compiling, never run by make check.
check_PROGRAMS += tests/kernel/bench-blocking
tests_kernel_bench_blocking_SOURCES = tests/kernel/bench-blocking.c
tests_kernel_bench_blocking_CFLAGS = $(AM_CFLAGS) -O2
tests_kernel_bench_blocking_LDADD = libsa.la

CHECK_KERNEL_FLAGS =
KERNEL_LOGS = $(abs_top_builddir)/tests/kernel/logs
# What the guest runs: the series' selftests.  CHECK_KERNEL_ONLY=all adds
# libsa's whole suite with SA_BACKEND=kernel (about 10 minutes under TCG).
# check-kernel-backend runs the suites that use the kernel backend (not
# test_critsec, which forces the emulated one) with SA_BACKEND=kernel,
# about 12 minutes, with the timeouts doubled; each full run still fails
# a test or two (the README says which), so CI does not run it yet.  Tests that measure time or CPU shares skip themselves
# in the guest (h_skip_in_qemu_guest()): under software emulation they
# would measure the emulator.
CHECK_KERNEL_ONLY = selftests
# Then the selftests' stress tests alone for CHECK_KERNEL_STRESS seconds
# each, a step of its own: many activations blocking and unblocking at
# random with the processor invariant checked throughout (0: none).
CHECK_KERNEL_STRESS = 60
KERNEL_BACKEND_TESTS = tests/test_runtime tests/test_uthread tests/test_keys \
	tests/test_sched tests/test_mutex tests/test_cond tests/test_rwlock \
	tests/test_sem tests/test_barrier_once tests/test_stack tests/test_stress \
	tests/test_preempt tests/test_blocked tests/test_io tests/test_io_threads \
	tests/test_intr tests/test_futex tests/test_corpus tests/test_preload

check-kernel: all
	$(top_srcdir)/tests/kernel/check-kernel --only $(CHECK_KERNEL_ONLY) \
		--stress $(CHECK_KERNEL_STRESS) \
		--libsa-build $(abs_top_builddir) --log-dir $(KERNEL_LOGS) \
		$(CHECK_KERNEL_FLAGS)

check-kernel-backend: all
	LIBSA_TESTS="$(KERNEL_BACKEND_TESTS)" $(top_srcdir)/tests/kernel/check-kernel \
		--only libsa --libsa-build $(abs_top_builddir) \
		--log-dir $(abs_top_builddir)/tests/kernel/logs-backend $(CHECK_KERNEL_FLAGS)

bench-kernel: all
	$(top_srcdir)/tests/kernel/bench-kernel \
		--log-dir $(abs_top_builddir)/tests/kernel/bench-logs \
		$(CHECK_KERNEL_FLAGS)

# The programs make check runs, for the harness to copy into its guest.
list-tests:
	@echo $(TESTS)

clean-local: clean-kernel-logs
clean-kernel-logs:
	-rm -rf tests/kernel/logs tests/kernel/logs-debug tests/kernel/logs-backend \
		tests/kernel/bench-logs

.PHONY: check-kernel check-kernel-backend bench-kernel list-tests clean-kernel-logs
