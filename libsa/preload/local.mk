# libsa/preload/local.mk - libsa-preload.so and the sa-run launcher
#
# The shim carries its own copy of the runtime: the libsa sources are
# compiled again with real.h forced in, so that libsa's own pthread calls
# reach the C library and not the shim (see real.h).  Nothing of libsa's
# internals is exported; preload.map lists what is.  The shim relies on
# glibc's layout of the thread pointer, so it is not built with sanitizers
# (their runtimes keep per-thread state in the TLS the shim switches).

if !SANITIZE
noinst_LTLIBRARIES = libsa/preload/libsa-core-preload.la
libsa_preload_libsa_core_preload_la_SOURCES = $(libsa_la_SOURCES)
libsa_preload_libsa_core_preload_la_CFLAGS = $(AM_CFLAGS) $(LIBURING_CFLAGS) -fvisibility=hidden \
	$(CS_CFLAGS) -include $(top_srcdir)/libsa/preload/real.h
libsa_preload_libsa_core_preload_la_CCASFLAGS = $(AM_CCASFLAGS)

lib_LTLIBRARIES += libsa-preload.la
libsa_preload_la_SOURCES = \
	libsa/preload/shim.h \
	libsa/preload/real.h \
	libsa/preload/preload.c \
	libsa/preload/sync.c \
	libsa/preload/io.c \
	libsa/preload/cancel.c \
	libsa/preload/thread.c \
	libsa/preload/signal.c \
	libsa/preload/c11.c
libsa_preload_la_CFLAGS = $(AM_CFLAGS) -fvisibility=hidden -fexceptions \
	-Wno-nonnull-compare
libsa_preload_la_LIBADD = libsa/preload/libsa-core-preload.la $(LIBURING_LIBS) -lpthread -ldl
libsa_preload_la_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version -shared \
	-Wl,--version-script=$(top_srcdir)/libsa/preload/preload.map -Wl,-z,now
EXTRA_libsa_preload_la_DEPENDENCIES = $(top_srcdir)/libsa/preload/preload.map

# The shim's copy of the runtime has copies of its own (critsec/local.mk).
libsa/critsec/preload.checked: libsa-preload.la $(CS_TOOLS)
	$(AM_V_GEN)$(CS_CHECK) .libs/libsa-preload.so \
		$(libsa_preload_libsa_core_preload_la_OBJECTS) && touch $@
CS_CHECKED += libsa/critsec/preload.checked

bin_PROGRAMS = sa-run
sa_run_SOURCES = libsa/preload/sa-run.c
sa_run_CPPFLAGS = $(AM_CPPFLAGS) -DSA_PRELOAD_LIB='"$(libdir)/libsa-preload.so"'
endif
EXTRA_DIST += libsa/preload/preload.map
