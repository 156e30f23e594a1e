/* switch.S - x86-64 context switch: callee-saved registers and FP control words */

/*
 * A saved context is the stack pointer of a frame holding, from the top:
 * the return address, rbp, rbx, r12-r15, then one 8-byte slot with MXCSR
 * (low 4 bytes) and the x87 control word.  Everything else is
 * caller-saved in the System V ABI, so the compiler has already spilled it
 * at the call to sa_ctx_switch().
 */

	.text

/* void sa_ctx_switch(struct sa_ctx *from, struct sa_ctx *to) */
	.globl	sa_ctx_switch
	.hidden	sa_ctx_switch
	.type	sa_ctx_switch, @function
	.p2align 4
sa_ctx_switch:
	.cfi_startproc
	pushq	%rbp
	.cfi_adjust_cfa_offset 8
	pushq	%rbx
	.cfi_adjust_cfa_offset 8
	pushq	%r12
	.cfi_adjust_cfa_offset 8
	pushq	%r13
	.cfi_adjust_cfa_offset 8
	pushq	%r14
	.cfi_adjust_cfa_offset 8
	pushq	%r15
	.cfi_adjust_cfa_offset 8
	subq	$8, %rsp
	.cfi_adjust_cfa_offset 8
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)
	movq	%rsp, (%rdi)
	movq	(%rsi), %rsp
	ldmxcsr	(%rsp)
	fldcw	4(%rsp)
	addq	$8, %rsp
	.cfi_adjust_cfa_offset -8
	popq	%r15
	.cfi_adjust_cfa_offset -8
	popq	%r14
	.cfi_adjust_cfa_offset -8
	popq	%r13
	.cfi_adjust_cfa_offset -8
	popq	%r12
	.cfi_adjust_cfa_offset -8
	popq	%rbx
	.cfi_adjust_cfa_offset -8
	popq	%rbp
	.cfi_adjust_cfa_offset -8
	ret
	.cfi_endproc
	.size	sa_ctx_switch, .-sa_ctx_switch

/*
 * First code a new context runs: sa_ctx_init() left the entry function in
 * rbx.  Align the stack as the ABI wants at a call and never return.
 */
	.globl	sa_ctx_trampoline
	.hidden	sa_ctx_trampoline
	.type	sa_ctx_trampoline, @function
	.p2align 4
sa_ctx_trampoline:
	.cfi_startproc
	.cfi_undefined rip
	xorl	%ebp, %ebp
	andq	$-16, %rsp
	callq	*%rbx
	ud2
	.cfi_endproc
	.size	sa_ctx_trampoline, .-sa_ctx_trampoline

	.section .note.GNU-stack,"",@progbits
