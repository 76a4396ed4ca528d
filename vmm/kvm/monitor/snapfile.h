/* The snapshot state file's container format (docs/design.md §3, kvm: snapshot
 * and restore): a header and tagged sections, versioned and checksummed,
 * read without trusting a byte of it (docs/design.md §6: a corrupt or truncated
 * file is a clean error, never a crash).
 *
 * Layout (host byte order: a snapshot is only ever restored on the host
 * kind that wrote it):
 *   header  { char magic[8] "VPKVMSNP"; u32 version; u32 nsections;
 *             u64 total_len; u64 checksum }                   32 bytes
 *   section { u32 tag; u32 len; u8 data[len]; zero pad to 8 }  × nsections
 * checksum is FNV-1a 64 over the whole file with the checksum field
 * zeroed. Readers check, in order: size ≥ header and ≤ SNAPFILE_MAX, magic
 * (-EBADMSG), version (-EPROTONOSUPPORT), total_len == file size and
 * checksum (-EBADMSG), then every section inside the file, no duplicate
 * tags (-EBADMSG). Unknown tags are skipped. Functions return 0 or -errno. */
#ifndef VMPOOL_KVM_SNAPFILE_H
#define VMPOOL_KVM_SNAPFILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SNAPFILE_MAGIC "VPKVMSNP"
#define SNAPFILE_VERSION 1u
#define SNAPFILE_HDR 32u
#define SNAPFILE_MAX (1u << 20) /* a state file is a few KiB */
#define SNAPFILE_MAX_SECTIONS 64u

struct snapfile_w {
	uint8_t *buf;
	size_t len, cap;
	uint32_t nsect;
	int err; /* first failure; later adds are no-ops */
};

void snapfile_w_init(struct snapfile_w *w);
void snapfile_w_add(struct snapfile_w *w, uint32_t tag, const void *data, uint32_t len);
/* Seals the buffer (header, checksum) and writes it to `path` through a
 * temporary name and rename, so the name never shows a half file. */
int snapfile_w_write(struct snapfile_w *w, const char *path);
/* Writes `path` whole or not at all: fill() writes into a temporary
 * file beside it, which is renamed over `path` only when fill and close
 * succeed (and removed otherwise). */
int snapfile_replace(const char *path, int (*fill)(int fd, void *arg), void *arg);
/* pwrite of all n bytes (retrying short writes and EINTR). */
int snapfile_pwrite_all(int fd, const void *buf, size_t n, off_t off);
/* The sealed bytes, for tests that write variants themselves. */
int snapfile_w_seal(struct snapfile_w *w, const uint8_t **buf, size_t *len);
void snapfile_w_free(struct snapfile_w *w);

struct snapfile_sect {
	uint32_t tag, len;
	const uint8_t *data;
};

struct snapfile_r {
	uint8_t *buf; /* owned when loaded from a file */
	size_t len;
	uint32_t nsect;
	struct snapfile_sect sect[SNAPFILE_MAX_SECTIONS];
};

/* Checks `buf` as described above; `r` points into it (not copied). */
int snapfile_parse(struct snapfile_r *r, const uint8_t *buf, size_t len);
/* Reads and parses a file (-EFBIG past SNAPFILE_MAX). */
int snapfile_load(struct snapfile_r *r, const char *path);
/* Section `tag`, which must be exactly `len` bytes long: -ENOENT when
 * absent, -EBADMSG when its length differs. */
int snapfile_get(const struct snapfile_r *r, uint32_t tag, void *out, uint32_t len);
/* Section `tag` of any length, or NULL. */
const struct snapfile_sect *snapfile_find(const struct snapfile_r *r, uint32_t tag);
void snapfile_free(struct snapfile_r *r);

#endif
