/* critsec.h - critical-section copies: the table and what the runtime needs of it */
#ifndef SA_CRITSEC_H
#define SA_CRITSEC_H

/* Offsets shared with exit.S (checked in critsec.c). */
#define CS_ENTRY_SIZE 40        /* struct cs_entry */
#define CS_ENTRY_START 0
#define CS_ENTRY_END 8
#define CS_ENTRY_COPY 16
#define VP_CUR_OFF 0            /* struct vp, ->cur */
#define VP_RESCHED_OFF 5352     /* struct vp, ->resched */

#ifndef __ASSEMBLER__
#include <stdint.h>

/*
 * struct cs_entry - one critical section, as gen-copies emits it into the
 * sa_cs_table section: the original's [start, end), its copy (same size),
 * its name, and how often a preemption was recovered there.
 */
struct cs_entry {
	uintptr_t start, end, copy;
	const char *name;
	_Atomic uint64_t count;
};

/* The linker brackets the section (weak: a build without critical
 * sections has none). */
extern struct cs_entry __start_sa_cs_table[] __attribute__((weak, visibility("hidden")));
extern struct cs_entry __stop_sa_cs_table[] __attribute__((weak, visibility("hidden")));

struct cs_entry *critsec_find(uintptr_t pc);
uintptr_t critsec_recover(struct vp *vp, uintptr_t pc);

/* The copies' common end (exit.S); never called from C. */
void sa_cs_exit(void);
#endif

#endif /* SA_CRITSEC_H */
