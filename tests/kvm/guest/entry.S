/* Conformance guest entry points. The boot protocol puts the 32-bit entry
 * at the load address and the 64-bit one at +0x200; we only implement the
 * 64-bit one, so a loader that jumps to the 32-bit one just halts here. */
	.section .head.text, "ax"
	.code32
startup_32:
	cli
1:	hlt
	jmp 1b

	.org 0x200
	.code64
	.globl startup_64
startup_64:
	/* Interrupts stay off: this host's PVM cannot deliver any. */
	cli
	cld
	lea stack_top(%rip), %rsp
	mov %rsi, %r12            /* boot_params survives the bss clear */
	lea __bss_start(%rip), %rdi
	lea _end(%rip), %rcx
	sub %rdi, %rcx
	xor %eax, %eax
	rep stosb
	mov %r12, %rdi
	call guest_main
2:	hlt
	jmp 2b

	.section .bss
	.balign 16
stack:
	.skip 8192
stack_top:
	.section .note.GNU-stack, "", @progbits
