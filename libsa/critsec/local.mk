# libsa/critsec/local.mk - critical-section copies: how libsa's objects get
# them (cs-as runs gen-copies between compiler and assembler) and how the
# build proves them (cs-check runs check-copies on the linked result).
#
# CS_CFLAGS goes on every libsa object (libsa.la, the preload core, the
# tests' lock-checking build): no tail calls, no jump tables - shapes that
# a copy could not follow and gen-copies rejects.

CS_DIR = $(top_srcdir)/libsa/critsec
CS_CFLAGS = -wrapper $(SHELL),$(CS_DIR)/cs-as \
	-fno-optimize-sibling-calls -fno-jump-tables
CS_TOOLS = $(CS_DIR)/cs-as $(CS_DIR)/cs-check $(CS_DIR)/gen-copies \
	$(CS_DIR)/check-copies $(CS_DIR)/calls.list $(CS_DIR)/leaf.list
EXTRA_DIST += $(CS_TOOLS)
CS_CHECK = $(SHELL) $(CS_DIR)/cs-check

# A library whose copies diverge fails the build.
libsa/critsec/libsa.checked: libsa.la $(CS_TOOLS)
	$(AM_V_GEN)$(CS_CHECK) .libs/libsa.so $(libsa_la_OBJECTS) && touch $@
CS_CHECKED = libsa/critsec/libsa.checked
all-local: $(CS_CHECKED)
CLEANFILES += $(CS_CHECKED)
