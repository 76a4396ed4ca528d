/* libFuzzer target for the bzImage loader (boot.h): the kernel image comes
 * from the user's configuration and is read without trusting a byte, so
 * kvm_bzimage_parse and the placement in kvm_boot_linux must end in 0 or a
 * clean -errno for any file, and never write outside guest RAM.
 *
 * There is no /dev/kvm where the fuzzer runs, so kvm_boot_linux gets a
 * kvm_vm that is only guest RAM (a malloc'd block, so ASan sees overruns)
 * and vcpu_fd -1: everything up to the first vCPU ioctl (zero page,
 * command line, kernel, initrd, page tables, GDT) runs for real and that
 * ioctl fails with -EBADF. Reaching it means the loader accepted the image,
 * and the target then checks what it wrote against the image and RAM.
 * Input: 1 byte RAM size, 2 bytes initrd size, 1 byte command-line length,
 * then the image. Seeds: tests/fuzz/corpus/bzimage (tests/fuzz/mkcorpus.py). */
#include "vmm/kvm/monitor/boot.h"
#include "vmm/kvm/monitor/bootparam.h"
#include "vmm/kvm/monitor/vm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz_util.h"

static uint64_t le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* What a successful parse promises about the image. */
static void check_parsed(const uint8_t *img, size_t len, const struct kvm_bzimage *bz)
{
	FUZZ_CHECK(bz->version >= BP_MIN_VERSION && (bz->xloadflags & BP_XLF_KERNEL_64));
	FUZZ_CHECK(bz->hdr_end >= BP_CMDLINE_SIZE + 4 && bz->hdr_end <= BP_HEADER_MAX_END);
	FUZZ_CHECK(bz->hdr_end <= bz->setup_len && bz->setup_len < len);
	FUZZ_CHECK(bz->kernel == img + bz->setup_len && bz->kernel_len == len - bz->setup_len);
	FUZZ_CHECK(bz->kernel_len > BP_ENTRY64_OFFSET);
	FUZZ_CHECK(le(img + BP_BOOT_FLAG, 2) == BP_BOOT_FLAG_MAGIC && le(img + BP_HEADER, 4) == BP_HDRS_MAGIC);
	FUZZ_CHECK(bz->cmdline_size == le(img + BP_CMDLINE_SIZE, 4));
}

/* kvm_boot_linux reached the vCPU: the zero page, command line, kernel and
 * initrd it wrote must be where it says and inside RAM. */
static void check_loaded(const struct kvm_vm *vm, const struct kvm_bzimage *bz, const uint8_t *img,
			 const char *cmdline, size_t initrd_len, const uint8_t *initrd)
{
	const uint8_t *zp = vm->mem + KVM_BOOT_ZERO_PAGE;
	/* The header copy stops at the header's end: no image bytes past it. */
	FUZZ_CHECK(memcmp(zp + BP_VERSION, img + BP_VERSION, 2) == 0);
	for (size_t i = bz->hdr_end; i < BP_E820_TABLE; i++)
		FUZZ_CHECK(zp[i] == 0);
	FUZZ_CHECK(le(zp + BP_CODE32_START, 4) == KVM_BOOT_KERNEL);
	FUZZ_CHECK(le(zp + BP_CMD_LINE_PTR, 4) == KVM_BOOT_CMDLINE);
	FUZZ_CHECK(strcmp((const char *)vm->mem + KVM_BOOT_CMDLINE, cmdline) == 0);
	FUZZ_CHECK(strlen(cmdline) <= bz->cmdline_size);
	FUZZ_CHECK(memcmp(vm->mem + KVM_BOOT_KERNEL, bz->kernel, bz->kernel_len) == 0);

	uint64_t rd = le(zp + BP_RAMDISK_IMAGE, 4) | le(zp + BP_EXT_RAMDISK_IMAGE, 4) << 32;
	uint64_t rl = le(zp + BP_RAMDISK_SIZE, 4) | le(zp + BP_EXT_RAMDISK_SIZE, 4) << 32;
	FUZZ_CHECK(rl == initrd_len);
	if (initrd_len) {
		uint64_t need = bz->init_size > bz->kernel_len ? bz->init_size : bz->kernel_len;
		FUZZ_CHECK(rd % 4096 == 0 && rd >= KVM_BOOT_KERNEL + need);
		FUZZ_CHECK(rd + rl <= vm->mem_size);
		if (bz->initrd_addr_max)
			FUZZ_CHECK(rd + rl - 1 <= bz->initrd_addr_max);
		FUZZ_CHECK(memcmp(vm->mem + rd, initrd, initrd_len) == 0);
	}
	FUZZ_CHECK(zp[BP_E820_ENTRIES] == 3);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t initrd[1 << 16];
	static char cmdline[256];
	if (size < 4)
		return 0;
	/* 2..16 MiB: small enough that init_size and the initrd often do not
	 * fit, which is the path worth testing; and 512 KiB, less than the
	 * kernel's load address, where `mem_size - KVM_BOOT_KERNEL` wraps. */
	unsigned ri = data[0] % 5;
	uint64_t mem_size = ri == 4 ? 512ull << 10 : (2ull << 20) << ri;
	size_t initrd_len = le(data + 1, 2);
	size_t cmdlen = data[3] % sizeof(cmdline);
	const uint8_t *img = data + 4;
	size_t len = size - 4;
	memset(cmdline, 'c', cmdlen);
	cmdline[cmdlen] = 0;
	for (size_t i = 0; i < initrd_len; i++)
		initrd[i] = (uint8_t)i;

	/* An exact-size copy, so reading past the image's end is an ASan
	 * report instead of a read of libFuzzer's spare bytes. */
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy)
		return 0;
	memcpy(copy, img, len);

	struct kvm_bzimage bz;
	int prc = kvm_bzimage_parse(copy, len, &bz);
	FUZZ_CHECK(prc == 0 || prc == -ENOEXEC);
	if (prc == 0)
		check_parsed(copy, len, &bz);

	/* One RAM block per size, kept across runs: a fresh 16 MiB malloc per
	 * input would mostly measure ASan's quarantine. */
	static uint8_t *ram[5];
	if (!ram[ri])
		ram[ri] = malloc(mem_size);
	struct kvm_vm vm;
	memset(&vm, 0, sizeof(vm));
	vm.kvm_fd = vm.vm_fd = vm.vcpu_fd = vm.mem_fd = -1;
	vm.mem_size = mem_size;
	vm.mem = ram[ri];
	if (vm.mem) {
		struct kvm_boot_cfg cfg = {
			.kernel = copy,
			.kernel_len = len,
			.initrd = initrd_len ? initrd : NULL,
			.initrd_len = initrd_len,
			.cmdline = cmdline,
		};
		int rc = kvm_boot_linux(&vm, &cfg, NULL);
		FUZZ_CHECK(rc == -EBADF || rc == -ENOEXEC || rc == -E2BIG || rc == -ENOMEM);
		FUZZ_CHECK((rc == -ENOEXEC) == (prc != 0));
		if (rc == -EBADF)
			check_loaded(&vm, &bz, copy, cmdline, initrd_len, initrd);
	}
	free(copy);
	return 0;
}
