/* exit.S - sa_cs_exit: where every critical-section copy ends */

/*
 * Each copy has "jmp sa_cs_exit" where its original has "ret", so on entry
 * the stack is exactly as that ret would see it: the return address on
 * top, nothing of the section below it still live.  The code it returns to
 * may keep values in any register across the call (GCC's -fipa-ra does so
 * for callers of static functions), so this preserves every register and
 * the flags.  By the return address (critsec.c has the reasoning):
 *
 *   inside an original  a critical section called this one and still holds
 *                       its lock: return to the same offset of the caller's
 *                       copy, so that the caller ends here too;
 *   inside a copy       the caller is already on its way here: return;
 *   anywhere else       the outermost section is over: ask for the VP back
 *                       (vp->resched = vp->cur; the next tick outside libsa
 *                       preempts) and return.
 *
 * Runs only after a recovery, so a linear scan of the table is fine.
 */

#include "critsec/critsec.h"

	.text
	.globl	sa_cs_exit
	.hidden	sa_cs_exit
	.type	sa_cs_exit, @function
	.p2align 4
sa_cs_exit:
	.cfi_startproc
	pushfq
	.cfi_adjust_cfa_offset 8
	pushq	%rax
	.cfi_adjust_cfa_offset 8
	pushq	%rcx
	.cfi_adjust_cfa_offset 8
	pushq	%rdx
	.cfi_adjust_cfa_offset 8
	movq	32(%rsp), %rax			/* the return address */
	leaq	__start_sa_cs_table(%rip), %rcx
1:	leaq	__stop_sa_cs_table(%rip), %rdx
	cmpq	%rdx, %rcx
	jae	4f				/* in no section: outermost */
	movq	CS_ENTRY_START(%rcx), %rdx
	cmpq	%rdx, %rax
	jb	3f
	cmpq	CS_ENTRY_END(%rcx), %rax
	jae	3f
	subq	%rdx, %rax			/* inside an original: same */
	addq	CS_ENTRY_COPY(%rcx), %rax	/* offset in its copy */
	movq	%rax, 32(%rsp)
	jmp	6f
3:	movq	CS_ENTRY_COPY(%rcx), %rdx	/* inside this entry's copy? */
	cmpq	%rdx, %rax
	jb	5f
	addq	CS_ENTRY_END(%rcx), %rdx
	subq	CS_ENTRY_START(%rcx), %rdx
	cmpq	%rdx, %rax
	jb	6f				/* yes: just return */
5:	addq	$CS_ENTRY_SIZE, %rcx
	jmp	1b
4:	/* Outermost: vp->resched = vp->cur (see vp_self() in defs.h). */
	movq	sa_tls_vp@gottpoff(%rip), %rax
	movq	%fs:(%rax), %rax
	cmpq	$1, %rax			/* VP_VIA_GS */
	jne	7f
	movq	%gs:sa_gs_slots(%rip), %rax
7:	cmpq	$2, %rax			/* NULL, or VP_DISPLACED: no VP */
	jbe	6f
	movq	VP_CUR_OFF(%rax), %rcx
	movq	%rcx, VP_RESCHED_OFF(%rax)
6:	popq	%rdx
	.cfi_adjust_cfa_offset -8
	popq	%rcx
	.cfi_adjust_cfa_offset -8
	popq	%rax
	.cfi_adjust_cfa_offset -8
	popfq
	.cfi_adjust_cfa_offset -8
	ret
	.cfi_endproc
	.size	sa_cs_exit, .-sa_cs_exit

	.section .note.GNU-stack,"",@progbits
