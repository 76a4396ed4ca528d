/* Placing kernel, command line, initrd and zero page in guest RAM (boot.h). */
#include "vmm/kvm/monitor/boot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/kvm/monitor/bootparam.h"
#include "vmm/kvm/monitor/longmode.h"
#include "vmm/kvm/monitor/vm.h"

#define PAGE_MASK 0xfffull

static void put(uint8_t *zp, size_t off, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		zp[off + i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get(const uint8_t *zp, size_t off, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)zp[off + i] << (8 * i);
	return v;
}

static void add_e820(uint8_t *zp, uint32_t *n, uint64_t addr, uint64_t size, uint32_t type)
{
	size_t off = BP_E820_TABLE + (size_t)*n * BP_E820_ENTRY_SIZE;
	put(zp, off, addr, 8);
	put(zp, off + 8, size, 8);
	put(zp, off + 16, type, 4);
	(*n)++;
}

/* A PC-like map: low RAM up to the EBDA, the legacy hole (EBDA, VGA, BIOS)
 * reserved, RAM from 1 MiB to the end. Loader data in low RAM (GDT, page
 * tables, zero page, command line) is not reserved: Linux copies what it
 * keeps before reusing low memory, as on real firmware. */
static uint32_t fill_e820(uint8_t *zp, uint64_t mem_size)
{
	uint32_t n = 0;
	add_e820(zp, &n, 0, KVM_BOOT_EBDA, E820_RAM);
	add_e820(zp, &n, KVM_BOOT_EBDA, KVM_BOOT_KERNEL - KVM_BOOT_EBDA, E820_RESERVED);
	add_e820(zp, &n, KVM_BOOT_KERNEL, mem_size - KVM_BOOT_KERNEL, E820_RAM);
	zp[BP_E820_ENTRIES] = (uint8_t)n;
	return n;
}

/* As high as both RAM and the kernel's initrd_addr_max allow (boot.rst:
 * initrd_addr_max is the highest address the initrd's last byte may have),
 * page aligned, and above everything the kernel will use. */
static int place_initrd(const struct kvm_bzimage *bz, uint64_t mem_size, uint64_t kernel_end, size_t len,
			uint64_t *addr)
{
	uint64_t top = mem_size;
	if (bz->initrd_addr_max && (uint64_t)bz->initrd_addr_max + 1 < top)
		top = (uint64_t)bz->initrd_addr_max + 1;
	if (len > top)
		return -ENOMEM;
	uint64_t a = (top - len) & ~PAGE_MASK;
	if (a < kernel_end)
		return -ENOMEM;
	*addr = a;
	return 0;
}

int kvm_boot_linux(struct kvm_vm *vm, const struct kvm_boot_cfg *cfg, struct kvm_boot_layout *out)
{
	struct kvm_bzimage bz;
	int rc = kvm_bzimage_parse(cfg->kernel, cfg->kernel_len, &bz);
	if (rc)
		return rc;
	const char *cmdline = cfg->cmdline ? cfg->cmdline : "";
	size_t cmdlen = strlen(cmdline);
	if (cmdlen > bz.cmdline_size || cmdlen >= KVM_BOOT_CMDLINE_MAX)
		return -E2BIG;
	if (cfg->initrd_len && !cfg->initrd)
		return -EINVAL;

	/* The kernel needs init_size bytes from its load address (to
	 * decompress in place), or at least its own length. */
	uint64_t need = bz.init_size > bz.kernel_len ? bz.init_size : bz.kernel_len;
	if (need > vm->mem_size - KVM_BOOT_KERNEL)
		return -ENOMEM;
	uint64_t kernel_end = (KVM_BOOT_KERNEL + need + PAGE_MASK) & ~PAGE_MASK;
	uint64_t initrd = 0;
	if (cfg->initrd_len) {
		rc = place_initrd(&bz, vm->mem_size, kernel_end, cfg->initrd_len, &initrd);
		if (rc)
			return rc;
	}

	uint8_t *zp = kvm_vm_gpa(vm, KVM_BOOT_ZERO_PAGE, BP_SIZE);
	uint8_t *cl = kvm_vm_gpa(vm, KVM_BOOT_CMDLINE, cmdlen + 1);
	uint8_t *kern = kvm_vm_gpa(vm, KVM_BOOT_KERNEL, bz.kernel_len);
	uint8_t *rd = kvm_vm_gpa(vm, initrd, cfg->initrd_len);
	if (!zp || !cl || !kern || !rd)
		return -ENOMEM;
	memcpy(kern, bz.kernel, bz.kernel_len);
	memcpy(cl, cmdline, cmdlen + 1);
	if (cfg->initrd_len)
		memcpy(rd, cfg->initrd, cfg->initrd_len);

	/* boot.rst: the zero page starts zeroed, with the image's setup
	 * header copied in at the same offsets, then the loader's fields. */
	memset(zp, 0, BP_SIZE);
	memcpy(zp + BP_SETUP_SECTS, (const uint8_t *)cfg->kernel + BP_SETUP_SECTS,
	       bz.hdr_end - BP_SETUP_SECTS);
	put(zp, BP_TYPE_OF_LOADER, 0xff, 1); /* "undefined" loader id */
	put(zp, BP_LOADFLAGS, get(zp, BP_LOADFLAGS, 1) | BP_LOADED_HIGH | BP_CAN_USE_HEAP, 1);
	put(zp, BP_HEAP_END_PTR, 0xfe00, 2);
	put(zp, BP_CODE32_START, KVM_BOOT_KERNEL, 4);
	put(zp, BP_CMD_LINE_PTR, KVM_BOOT_CMDLINE, 4);
	put(zp, BP_EXT_CMD_LINE_PTR, KVM_BOOT_CMDLINE >> 32, 4);
	put(zp, BP_RAMDISK_IMAGE, initrd, 4);
	put(zp, BP_EXT_RAMDISK_IMAGE, initrd >> 32, 4);
	put(zp, BP_RAMDISK_SIZE, cfg->initrd_len, 4);
	put(zp, BP_EXT_RAMDISK_SIZE, (uint64_t)cfg->initrd_len >> 32, 4);
	uint32_t n = fill_e820(zp, vm->mem_size);

	uint64_t entry = KVM_BOOT_KERNEL + BP_ENTRY64_OFFSET;
	rc = kvm_longmode_enter(vm, entry, KVM_BOOT_ZERO_PAGE);
	if (rc)
		return rc;
	if (out)
		*out = (struct kvm_boot_layout){
			.entry = entry,
			.zero_page = KVM_BOOT_ZERO_PAGE,
			.cmdline = KVM_BOOT_CMDLINE,
			.kernel = KVM_BOOT_KERNEL,
			.kernel_end = kernel_end,
			.initrd = initrd,
			.initrd_len = cfg->initrd_len,
			.e820_entries = n,
		};
	return 0;
}

int kvm_boot_read_file(const char *path, size_t max, void **buf, size_t *len)
{
	*buf = NULL;
	*len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int rc = 0;
	uint8_t *b = NULL;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
	} else if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
	} else if ((uint64_t)st.st_size > max) {
		rc = -EFBIG;
	} else if (!(b = malloc(st.st_size ? (size_t)st.st_size : 1))) {
		rc = -ENOMEM;
	}
	size_t got = 0;
	while (!rc && got < (size_t)st.st_size) {
		ssize_t n = read(fd, b + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			rc = n < 0 ? -errno : -EIO; /* shrank under us */
		else
			got += (size_t)n;
	}
	close(fd);
	if (rc) {
		free(b);
		return rc;
	}
	*buf = b;
	*len = got;
	return 0;
}
