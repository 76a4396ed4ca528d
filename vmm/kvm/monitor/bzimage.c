/* bzImage setup header parsing (boot.h): every field read from the image is
 * bounds-checked against the file and against the header's own end, since
 * the image may be truncated or hostile. */
#include "vmm/kvm/monitor/boot.h"

#include <errno.h>
#include <string.h>

#include "vmm/kvm/monitor/bootparam.h"

/* Little-endian reads of fields that must lie before `end`; a field the
 * header is too short to hold reads as 0 ("not provided"). */
static uint32_t rd(const uint8_t *p, size_t end, size_t off, size_t n)
{
	if (off > end || n > end - off)
		return 0;
	uint32_t v = 0;
	for (size_t i = 0; i < n; i++)
		v |= (uint32_t)p[off + i] << (8 * i);
	return v;
}

int kvm_bzimage_parse(const void *img, size_t len, struct kvm_bzimage *out)
{
	const uint8_t *p = img;
	memset(out, 0, sizeof(*out));
	if (!p || len < BP_HEADER + 4)
		return -ENOEXEC;
	if (rd(p, len, BP_BOOT_FLAG, 2) != BP_BOOT_FLAG_MAGIC || rd(p, len, BP_HEADER, 4) != BP_HDRS_MAGIC)
		return -ENOEXEC;

	uint32_t sects = rd(p, len, BP_SETUP_SECTS, 1);
	if (sects == 0)
		sects = 4; /* boot.rst: 0 means the historical 4 */
	uint32_t setup_len = (sects + 1) * 512;
	/* The jump at 0x200 skips exactly the header, so its displacement
	 * tells how long a header this kernel has; a newer, longer one is
	 * copied only as far as the fields we know, so the zero page beyond
	 * the header never gets image bytes. */
	uint32_t hdr_end = BP_HEADER + rd(p, len, BP_JUMP + 1, 1);
	if (hdr_end > BP_HEADER_MAX_END)
		hdr_end = BP_HEADER_MAX_END;
	if (hdr_end > len || hdr_end > setup_len || setup_len >= len)
		return -ENOEXEC;

	out->version = (uint16_t)rd(p, hdr_end, BP_VERSION, 2);
	if (out->version < BP_MIN_VERSION)
		return -ENOEXEC;
	out->xloadflags = (uint16_t)rd(p, hdr_end, BP_XLOADFLAGS, 2);
	out->cmdline_size = rd(p, hdr_end, BP_CMDLINE_SIZE, 4);
	/* A 2.12+ header shorter than cmdline_size is lying about its version. */
	if (hdr_end < BP_CMDLINE_SIZE + 4 || !(out->xloadflags & BP_XLF_KERNEL_64))
		return -ENOEXEC;

	out->setup_len = setup_len;
	out->hdr_end = hdr_end;
	out->kernel = p + setup_len;
	out->kernel_len = len - setup_len;
	/* syssize is rounded up to 16 bytes; more than that missing means the
	 * file was cut short. */
	uint64_t syssize = (uint64_t)rd(p, hdr_end, BP_SYSSIZE, 4) * 16;
	if (syssize > (uint64_t)out->kernel_len + 15)
		return -ENOEXEC;
	if (out->kernel_len <= BP_ENTRY64_OFFSET)
		return -ENOEXEC; /* no room for the 64-bit entry */
	out->initrd_addr_max = rd(p, hdr_end, BP_INITRD_ADDR_MAX, 4);
	out->init_size = rd(p, hdr_end, BP_INIT_SIZE, 4);
	return 0;
}
