/* The Linux x86 boot protocol's byte layout (Documentation/arch/x86/boot.rst),
 * as offsets rather than structs: the loader reads a possibly hostile image
 * and the conformance guest reads the zero page, and both go through
 * explicit offsets with bounds checks instead of trusting a packed struct.
 * Only #defines, so the freestanding guest and the host tool share it. */
#ifndef VMPOOL_KVM_BOOTPARAM_H
#define VMPOOL_KVM_BOOTPARAM_H

/* Setup header, at the same offsets in the image and in boot_params. */
#define BP_SETUP_SECTS 0x1f1	 /* u8; 0 means 4 */
#define BP_SYSSIZE 0x1f4	 /* u32, 16-byte units */
#define BP_BOOT_FLAG 0x1fe	 /* u16, 0xaa55 */
#define BP_JUMP 0x200		 /* u16; byte 0x201 + 0x202 = end of header */
#define BP_HEADER 0x202		 /* u32, "HdrS" */
#define BP_VERSION 0x206	 /* u16 */
#define BP_TYPE_OF_LOADER 0x210	 /* u8 */
#define BP_LOADFLAGS 0x211	 /* u8 */
#define BP_CODE32_START 0x214	 /* u32 */
#define BP_RAMDISK_IMAGE 0x218	 /* u32 */
#define BP_RAMDISK_SIZE 0x21c	 /* u32 */
#define BP_HEAP_END_PTR 0x224	 /* u16 */
#define BP_CMD_LINE_PTR 0x228	 /* u32 */
#define BP_INITRD_ADDR_MAX 0x22c /* u32 */
#define BP_KERNEL_ALIGN 0x230	 /* u32 */
#define BP_RELOCATABLE 0x234	 /* u8 */
#define BP_XLOADFLAGS 0x236	 /* u16 */
#define BP_CMDLINE_SIZE 0x238	 /* u32, without the NUL */
#define BP_PREF_ADDRESS 0x258	 /* u64 */
#define BP_INIT_SIZE 0x260	 /* u32 */
#define BP_HEADER_MAX_END 0x268	 /* end of the 2.15 header */

/* boot_params fields outside the setup header. */
#define BP_EXT_RAMDISK_IMAGE 0x0c0 /* u32, high half */
#define BP_EXT_RAMDISK_SIZE 0x0c4  /* u32, high half */
#define BP_EXT_CMD_LINE_PTR 0x0c8  /* u32, high half */
#define BP_E820_ENTRIES 0x1e8	   /* u8 */
#define BP_E820_TABLE 0x2d0	   /* 20-byte entries: u64 addr, u64 size, u32 type */
#define BP_E820_ENTRY_SIZE 20
#define BP_E820_MAX 128
#define BP_SIZE 0x1000

#define BP_HDRS_MAGIC 0x53726448u /* "HdrS" little-endian */
#define BP_BOOT_FLAG_MAGIC 0xaa55u
/* 2.06 brought cmdline_size, but the 64-bit entry is only announced by
 * xloadflags, which 2.12 brought: older kernels have no entry we can use. */
#define BP_MIN_VERSION 0x020c
#define BP_XLF_KERNEL_64 0x0001 /* xloadflags: has the 64-bit entry at +0x200 */
#define BP_LOADED_HIGH 0x01	/* loadflags: protected-mode code at 1 MiB */
#define BP_CAN_USE_HEAP 0x80	/* loadflags: heap_end_ptr is valid */
#define BP_ENTRY64_OFFSET 0x200 /* 64-bit entry = code32_start + 0x200 */

#define E820_RAM 1
#define E820_RESERVED 2

#endif
