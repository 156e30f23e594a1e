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

/*
 * sa_preempt_stub - where a preempted uthread goes when the tick handler
 * returns (sched_upcall_preempted()).  The handler left the stack as
 *
 *	original rsp - 128	red zone, untouched
 *	original rsp - 136	the interrupted rip       <- rsp
 *
 * Save everything the interrupted code may have live: rflags, the
 * caller-saved general registers (the callee-saved ones survive the call
 * below and the context switch in it), and the whole extended state with
 * XSAVE (x87, SSE, AVX, AVX-512, ... as enabled in XCR0) into a 64-byte
 * aligned area below.  Then yield, restore, and `ret $128`: that pops the
 * rip and skips the red zone, so every register, the flags and the stack
 * pointer are exactly as they were.
 */
	.globl	sa_preempt_stub
	.hidden	sa_preempt_stub
	.type	sa_preempt_stub, @function
	.p2align 4
sa_preempt_stub:
	.cfi_startproc
	.cfi_signal_frame
	.cfi_def_cfa %rsp, 136
	.cfi_offset %rip, -136
	pushfq
	.cfi_adjust_cfa_offset 8
	pushq	%rax
	.cfi_adjust_cfa_offset 8
	pushq	%rcx
	.cfi_adjust_cfa_offset 8
	pushq	%rdx
	.cfi_adjust_cfa_offset 8
	pushq	%rsi
	.cfi_adjust_cfa_offset 8
	pushq	%rdi
	.cfi_adjust_cfa_offset 8
	pushq	%r8
	.cfi_adjust_cfa_offset 8
	pushq	%r9
	.cfi_adjust_cfa_offset 8
	pushq	%r10
	.cfi_adjust_cfa_offset 8
	pushq	%r11
	.cfi_adjust_cfa_offset 8
	pushq	%rbp
	.cfi_adjust_cfa_offset 8
	.cfi_offset %rbp, -224
	movq	%rsp, %rbp
	.cfi_def_cfa_register %rbp
	subq	sa_xsave_size(%rip), %rsp
	andq	$-64, %rsp
	/* XRSTOR wants the header's reserved bytes zero; XSAVE leaves them. */
	xorl	%eax, %eax
	movq	%rax, 512(%rsp)
	movq	%rax, 520(%rsp)
	movq	%rax, 528(%rsp)
	movq	%rax, 536(%rsp)
	movq	%rax, 544(%rsp)
	movq	%rax, 552(%rsp)
	movq	%rax, 560(%rsp)
	movq	%rax, 568(%rsp)
	movl	$-1, %eax
	movl	$-1, %edx
	xsave64	(%rsp)
	cld
	call	sched_preempt_yield
	movl	$-1, %eax
	movl	$-1, %edx
	xrstor64 (%rsp)
	movq	%rbp, %rsp
	.cfi_def_cfa_register %rsp
	popq	%rbp
	.cfi_adjust_cfa_offset -8
	.cfi_restore %rbp
	popq	%r11
	.cfi_adjust_cfa_offset -8
	popq	%r10
	.cfi_adjust_cfa_offset -8
	popq	%r9
	.cfi_adjust_cfa_offset -8
	popq	%r8
	.cfi_adjust_cfa_offset -8
	popq	%rdi
	.cfi_adjust_cfa_offset -8
	popq	%rsi
	.cfi_adjust_cfa_offset -8
	popq	%rdx
	.cfi_adjust_cfa_offset -8
	popq	%rcx
	.cfi_adjust_cfa_offset -8
	popq	%rax
	.cfi_adjust_cfa_offset -8
	popfq
	.cfi_adjust_cfa_offset -8
	ret	$128
	.cfi_endproc
	.size	sa_preempt_stub, .-sa_preempt_stub

	.section .note.GNU-stack,"",@progbits
