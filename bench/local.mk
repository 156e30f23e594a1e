# bench/local.mk - the benchmark suite: built and run by `make bench` only
#
# The benchmarks are written once (bench/micro.c and bench/activations.c
# against bench/impl.h) and each built twice: against libsa and against
# glibc NPTL.  The Go peers (bench/go/micro.go, bench/go/activations.go) and
# the Boost.Fiber one are built when configure found them (HAVE_GO,
# HAVE_BOOST_FIBER).  All programs are EXTRA_PROGRAMS, so `make`, `make
# check` and `make distcheck` do not build them; `make bench` builds them and
# runs bench/run-suite, which prints the table and writes
# results/bench.jsonl in the build directory.

EXTRA_PROGRAMS = \
	bench/bench-micro-sa \
	bench/bench-micro-nptl \
	bench/bench-activations-sa \
	bench/bench-activations-nptl \
	bench/bench-fiber

BENCH_OPTFLAGS = -O2

bench_bench_micro_sa_SOURCES = bench/micro.c bench/harness.h bench/impl.h bench/impl_sa.h
bench_bench_micro_sa_CPPFLAGS = $(AM_CPPFLAGS) -DBENCH_IMPL_SA
bench_bench_micro_sa_CFLAGS = $(AM_CFLAGS) $(BENCH_OPTFLAGS)
bench_bench_micro_sa_LDADD = libsa.la

bench_bench_micro_nptl_SOURCES = bench/micro.c bench/harness.h bench/impl.h bench/impl_nptl.h
bench_bench_micro_nptl_CPPFLAGS = $(AM_CPPFLAGS) -DBENCH_IMPL_NPTL
bench_bench_micro_nptl_CFLAGS = $(AM_CFLAGS) $(BENCH_OPTFLAGS)
bench_bench_micro_nptl_LDADD = $(AX_PTHREAD_LIBS)

bench_bench_activations_sa_SOURCES = bench/activations.c bench/harness.h bench/impl.h bench/impl_sa.h
bench_bench_activations_sa_CPPFLAGS = $(AM_CPPFLAGS) -DBENCH_IMPL_SA
bench_bench_activations_sa_CFLAGS = $(AM_CFLAGS) $(BENCH_OPTFLAGS)
bench_bench_activations_sa_LDADD = libsa.la

bench_bench_activations_nptl_SOURCES = bench/activations.c bench/harness.h bench/impl.h bench/impl_nptl.h
bench_bench_activations_nptl_CPPFLAGS = $(AM_CPPFLAGS) -DBENCH_IMPL_NPTL
bench_bench_activations_nptl_CFLAGS = $(AM_CFLAGS) $(BENCH_OPTFLAGS)
bench_bench_activations_nptl_LDADD = $(AX_PTHREAD_LIBS)

bench_bench_fiber_SOURCES = bench/fiber.cc
bench_bench_fiber_CXXFLAGS = -std=c++14 -pthread -Wall -Wextra -Wno-unused-parameter $(BENCH_OPTFLAGS)
bench_bench_fiber_LDADD = -lboost_fiber -lboost_context $(AX_PTHREAD_LIBS)

BENCH_PROGS = bench/bench-micro-sa$(EXEEXT) bench/bench-micro-nptl$(EXEEXT) \
	bench/bench-activations-sa$(EXEEXT) bench/bench-activations-nptl$(EXEEXT)
if HAVE_BOOST_FIBER
BENCH_PROGS += bench/bench-fiber$(EXEEXT)
endif

# The Go peer: one file, no module, no network; caches stay in the build dir.
BENCH_GO_ENV = GO111MODULE=off GOFLAGS= GOPROXY=off \
	GOCACHE="$(abs_builddir)/bench/.go-cache" \
	GOPATH="$(abs_builddir)/bench/.go-path"
if HAVE_GO
BENCH_PROGS += bench/bench-go-micro bench/bench-go-activations
endif
bench/bench-go-micro: $(srcdir)/bench/go/micro.go
	$(AM_V_GEN)$(MKDIR_P) bench && \
	$(BENCH_GO_ENV) $(GO) build -o $@ $(srcdir)/bench/go/micro.go
bench/bench-go-activations: $(srcdir)/bench/go/activations.go
	$(AM_V_GEN)$(MKDIR_P) bench && \
	$(BENCH_GO_ENV) $(GO) build -o $@ $(srcdir)/bench/go/activations.go

EXTRA_DIST += bench/go/micro.go bench/go/activations.go bench/run-suite bench/README.md \
	bench/run-corpus
CLEANFILES += $(EXTRA_PROGRAMS) bench/bench-go-micro bench/bench-go-activations

# BENCH_FLAGS: extra options for bench/run-suite, e.g.
#   make bench BENCH_FLAGS="--markdown results/bench.md"
bench-build: $(BENCH_PROGS)

bench: bench-build
	$(SHELL) $(srcdir)/bench/run-suite --builddir . $(BENCH_FLAGS)

# Programs under NPTL and under libsa-preload.so: the NPTL build of the
# micro suite, sysbench and memcached; BENCH_CORPUS_FLAGS: options for
# bench/run-corpus, e.g. "--threads 512" or "--only micro".
bench-corpus: all bench/bench-micro-nptl$(EXEEXT)
	$(SHELL) $(srcdir)/bench/run-corpus --builddir . $(BENCH_CORPUS_FLAGS)

clean-local: clean-local-bench
clean-local-bench:
	-rm -rf bench/.go-cache bench/.go-path

.PHONY: bench bench-build bench-corpus clean-local-bench
