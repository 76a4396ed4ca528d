/* Loading a kernel per the Linux x86 64-bit boot protocol
 * (Documentation/arch/x86/boot.rst) into a kvm_vm (docs/design.md §3, kvm).
 *
 * kvm_bzimage_parse checks an image's setup header without trusting any of
 * it (-ENOEXEC for anything truncated, foreign, too old or without a 64-bit
 * entry). kvm_boot_linux places the protected-mode part at 1 MiB, the
 * command line, the initrd (as high as initrd_addr_max and RAM allow) and
 * the boot_params zero page (setup header copy, e820 map) in guest RAM, then
 * puts the vCPU in 64-bit mode at code32_start + 0x200 with RSI = zero page:
 * a GDT with flat __BOOT_CS (0x10) / __BOOT_DS (0x18), identity-mapped page
 * tables over the first 4 GiB made of 2 MiB pages (PVM shuts a guest down on
 * 1 GiB pages), interrupts off. All functions return 0 or -errno. */
#ifndef VMPOOL_KVM_BOOT_H
#define VMPOOL_KVM_BOOT_H

#include <stddef.h>
#include <stdint.h>

struct kvm_vm;

/* Guest-physical layout of what the loader writes (all below 1 MiB except
 * the kernel and the initrd). */
#define KVM_BOOT_GDT 0x1000ull
#define KVM_BOOT_ZERO_PAGE 0x7000ull
#define KVM_BOOT_STACK_TOP 0x8ff0ull /* Linux sets its own; a sane value for others */
#define KVM_BOOT_PML4 0x9000ull
#define KVM_BOOT_PDPT 0xa000ull
#define KVM_BOOT_PD 0xb000ull /* 4 pages: 4 GiB of 2 MiB pages */
#define KVM_BOOT_CMDLINE 0x20000ull
#define KVM_BOOT_CMDLINE_MAX 0x10000u /* our buffer, NUL included */
#define KVM_BOOT_KERNEL 0x100000ull
#define KVM_BOOT_EBDA 0x9fc00ull /* low RAM ends here, as on a PC */

struct kvm_bzimage {
	uint16_t version;
	uint16_t xloadflags;
	uint32_t setup_len;    /* boot sector + setup sectors, in bytes */
	uint32_t hdr_end;      /* image offset where the setup header ends */
	const uint8_t *kernel; /* protected-mode part, inside the image */
	size_t kernel_len;
	uint32_t initrd_addr_max;
	uint32_t cmdline_size; /* longest command line, without the NUL */
	uint32_t init_size;    /* memory the kernel needs from its load address */
};

int kvm_bzimage_parse(const void *img, size_t len, struct kvm_bzimage *out);

struct kvm_boot_cfg {
	const void *kernel; /* bzImage bytes */
	size_t kernel_len;
	const void *initrd; /* may be NULL with initrd_len 0 */
	size_t initrd_len;
	const char *cmdline; /* NULL: empty */
};

/* Where things went, for logs and tests. */
struct kvm_boot_layout {
	uint64_t entry; /* 64-bit entry point */
	uint64_t zero_page, cmdline;
	uint64_t kernel, kernel_end; /* kernel_end covers init_size */
	uint64_t initrd, initrd_len;
	uint32_t e820_entries;
};

/* -ENOEXEC: bad image; -E2BIG: command line longer than the kernel or our
 * buffer takes; -ENOMEM: kernel plus initrd do not fit in guest RAM. */
int kvm_boot_linux(struct kvm_vm *vm, const struct kvm_boot_cfg *cfg, struct kvm_boot_layout *out);

/* Reads a whole regular file (at most `max` bytes, else -EFBIG) into a
 * malloc'd buffer the caller frees. */
int kvm_boot_read_file(const char *path, size_t max, void **buf, size_t *len);

#endif
