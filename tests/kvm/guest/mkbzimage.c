/* Host build tool: wraps the conformance guest's raw binary in a minimal
 * bzImage (boot sector + one setup sector holding a 2.15 setup header), so
 * the guest goes through the same loader path as a Linux kernel.
 * Usage: mkbzimage IN.bin OUT.bzImage INIT_SIZE */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/kvm/monitor/bootparam.h"

#define SETUP_SECTS 1
#define SETUP_LEN ((SETUP_SECTS + 1) * 512)

static void put(uint8_t *p, size_t off, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[off + i] = (uint8_t)(v >> (8 * i));
}

static void build_header(uint8_t *h, size_t payload_len, uint32_t init_size)
{
	memset(h, 0, SETUP_LEN);
	put(h, BP_SETUP_SECTS, SETUP_SECTS, 1);
	put(h, BP_SYSSIZE, (payload_len + 15) / 16, 4);
	put(h, BP_BOOT_FLAG, BP_BOOT_FLAG_MAGIC, 2);
	/* A short jump over the header: its displacement is how loaders learn
	 * where the header ends. */
	put(h, BP_JUMP, 0xeb, 1);
	put(h, BP_JUMP + 1, BP_HEADER_MAX_END - BP_HEADER, 1);
	put(h, BP_HEADER, BP_HDRS_MAGIC, 4);
	put(h, BP_VERSION, 0x020f, 2);
	put(h, BP_LOADFLAGS, BP_LOADED_HIGH, 1);
	put(h, BP_CODE32_START, 0x100000, 4);
	put(h, BP_INITRD_ADDR_MAX, 0x7fffffff, 4);
	put(h, BP_KERNEL_ALIGN, 0x200000, 4);
	put(h, BP_RELOCATABLE, 0, 1); /* linked at 1 MiB, runs only there */
	put(h, BP_XLOADFLAGS, BP_XLF_KERNEL_64, 2);
	put(h, BP_CMDLINE_SIZE, 2047, 4); /* Linux's COMMAND_LINE_SIZE - 1 */
	put(h, BP_PREF_ADDRESS, 0x100000, 8);
	put(h, BP_INIT_SIZE, init_size, 4);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s IN.bin OUT.bzImage INIT_SIZE\n", argv[0]);
		return 2;
	}
	uint32_t init_size = (uint32_t)strtoul(argv[3], NULL, 0);
	FILE *in = fopen(argv[1], "rbe");
	if (!in) {
		perror(argv[1]);
		return 1;
	}
	size_t cap = (size_t)init_size + 1; /* one more byte to see "too big" */
	uint8_t *payload = malloc(cap);
	if (!payload) {
		fclose(in);
		return 1;
	}
	size_t n = fread(payload, 1, cap, in);
	fclose(in);
	if (n == 0 || n > init_size) {
		free(payload);
		fprintf(stderr, "%s: empty or larger than init_size\n", argv[1]);
		return 1;
	}
	uint8_t hdr[SETUP_LEN];
	build_header(hdr, n, init_size);
	FILE *out = fopen(argv[2], "wbe");
	if (!out) {
		perror(argv[2]);
		free(payload);
		return 1;
	}
	int bad = fwrite(hdr, 1, sizeof(hdr), out) != sizeof(hdr) || fwrite(payload, 1, n, out) != n;
	free(payload);
	if (fclose(out) != 0 || bad) {
		perror(argv[2]);
		return 1;
	}
	return 0;
}
