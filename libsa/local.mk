# libsa/local.mk - the library
lib_LTLIBRARIES = libsa.la
include_HEADERS =
sainclude_HEADERS = include/sa/sa.h include/sa/io.h
saincludedir = $(includedir)/sa

libsa_la_SOURCES = \
	libsa/defs.h \
	libsa/switch.S \
	libsa/runtime.c \
	libsa/uthread.c \
	libsa/keys.c \
	libsa/stack.c \
	libsa/timer.c \
	libsa/wait.c \
	libsa/mutex.c \
	libsa/cond.c \
	libsa/rwlock.c \
	libsa/sem.c \
	libsa/barrier.c \
	libsa/once.c \
	libsa/tls.c \
	libsa/sanitize.c \
	libsa/sched/sched.c \
	libsa/critsec/critsec.h \
	libsa/critsec/critsec.c \
	libsa/critsec/exit.S \
	libsa/upcall/upcall.h \
	libsa/upcall/sa_abi.h \
	libsa/upcall/upcall.c \
	libsa/upcall/emulated.c \
	libsa/upcall/act.c \
	libsa/upcall/kernel.c \
	libsa/io/io.h \
	libsa/io/io.c
libsa_la_CFLAGS = $(AM_CFLAGS) $(LIBURING_CFLAGS) -fvisibility=hidden $(CS_CFLAGS)
libsa_la_LDFLAGS = $(AM_LDFLAGS) -version-info $(SA_LT_VERSION) \
	-Wl,--version-script=$(top_srcdir)/libsa/libsa.map -Wl,-z,now
libsa_la_LIBADD = $(LIBURING_LIBS) -lpthread -ldl
EXTRA_libsa_la_DEPENDENCIES = $(top_srcdir)/libsa/libsa.map
