/* The inode numbers of the tree: the one place that splits the 64 bits of
 * a fuse_ino_t.
 *
 *   bit 63 clear: the control tree,
 *       (serial << INO_LOW_BITS) | (gen << INO_GEN_SHIFT) | file
 *     serial 0 is the mount's own nodes (file INO_ROOT..INO_IMAGES: MNT,
 *     pool/, stats, config, images/); serial N in 1..INO_SESSION_MAX is a
 *     machine's directory pool/NAME (file 0) and its files (enum sfile,
 *     ctlfiles.h), under MNT/pool/ or an images/IMG/pool/ alike;
 *     serial INO_IMG_BIT | id is the image `id`'s images/IMG/ (file 0)
 *     and its pool/, stats, config, manifest (enum ifile, ctlfiles.h).
 *     gen is 0 but for stdout and stderr,
 *     which are a new file (inode) per command: the low INO_GEN_BITS of
 *     the command's number (docs/usage.md, stdout).
 *   bit 63 set: root/ of session N, owned by its root proxy,
 *       INO_RP_BIT | (N << RP_NODE_BITS) | guest node
 *     (root_proxy.h fixes RP_NODE_BITS, the width of a guest node).
 *
 * Serials are capped so that both forms hold every one of them. A serial (an
 * image id) is never reused, so an inode of a released machine (a removed
 * image) can never name a later one: it answers ESTALE. */
#ifndef VPFS_INO_H
#define VPFS_INO_H

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stdint.h>

#include "fs/root_proxy.h"

#define INO_FILE_BITS 8
#define INO_GEN_SHIFT INO_FILE_BITS
#define INO_LOW_BITS 32 /* file and gen: the serial is above them */
#define INO_GEN_BITS (INO_LOW_BITS - INO_GEN_SHIFT)
#define INO_GEN_MASK ((UINT64_C(1) << INO_GEN_BITS) - 1)
#define INO_RP_BIT (UINT64_C(1) << 63)
/* The serial bits between a guest node and INO_RP_BIT. */
#define INO_SERIAL_BITS (63 - RP_NODE_BITS)
#define INO_SERIAL_MAX ((UINT64_C(1) << INO_SERIAL_BITS) - 1)

_Static_assert(INO_LOW_BITS + INO_SERIAL_BITS <= 63, "a control-tree inode must keep bit 63 clear");
_Static_assert(INO_SERIAL_BITS >= 16, "root_proxy.h's RP_NODE_BITS leaves too few serial bits");

/* The mount's own nodes: serial 0, so they are their file numbers. */
enum { INO_ROOT = 1, INO_POOL, INO_STATS, INO_CONFIG, INO_IMAGES };

/* images/IMG/'s serials: the top serial bit and the image id; machines'
 * serials stay below it. */
#define INO_IMG_BIT (UINT64_C(1) << (INO_SERIAL_BITS - 1))
#define INO_SESSION_MAX (INO_IMG_BIT - 1)
#define INO_IMG_ID_MAX (INO_IMG_BIT - 1)
_Static_assert(INO_ROOT == FUSE_ROOT_ID, "MNT is FUSE's root inode");

static inline fuse_ino_t ino_make(uint64_t serial, unsigned file)
{
	return (fuse_ino_t)((serial << INO_LOW_BITS) | file);
}

/* A per-command file (stdout, stderr) of command number gen. */
static inline fuse_ino_t ino_make_gen(uint64_t serial, unsigned file, uint64_t gen)
{
	return ino_make(serial, file) | (fuse_ino_t)((gen & INO_GEN_MASK) << INO_GEN_SHIFT);
}

static inline bool ino_is_rp(fuse_ino_t ino)
{
	return ((uint64_t)ino & INO_RP_BIT) != 0;
}

/* Control tree: the session serial (0: the mount's own) and the file. */
static inline uint64_t ino_serial(fuse_ino_t ino)
{
	return (uint64_t)ino >> INO_LOW_BITS;
}

static inline unsigned ino_file(fuse_ino_t ino)
{
	return (unsigned)(ino & ((1u << INO_FILE_BITS) - 1));
}

/* The command number's low bits in a per-command file's inode. */
static inline uint64_t ino_gen(fuse_ino_t ino)
{
	return ((uint64_t)ino >> INO_GEN_SHIFT) & INO_GEN_MASK;
}

/* images/IMG/ and its files: the image id, or 0 for anything else. */
static inline uint64_t ino_img_id(fuse_ino_t ino)
{
	uint64_t serial = ino_serial(ino);
	return !ino_is_rp(ino) && (serial & INO_IMG_BIT) ? serial & ~INO_IMG_BIT : 0;
}

static inline fuse_ino_t ino_img(uint64_t id, unsigned file)
{
	return ino_make(INO_IMG_BIT | id, file);
}

/* A machine's serial (pool/NAME and its files), or 0. */
static inline uint64_t ino_session(fuse_ino_t ino)
{
	uint64_t serial = ino_serial(ino);
	return !ino_is_rp(ino) && !(serial & INO_IMG_BIT) ? serial : 0;
}

/* root/: the base a session's proxy adds guest nodes to, and back. */
static inline uint64_t ino_rp_base(uint64_t serial)
{
	return INO_RP_BIT | (serial << RP_NODE_BITS);
}

static inline uint64_t ino_rp_serial(fuse_ino_t ino)
{
	return ((uint64_t)ino & ~INO_RP_BIT) >> RP_NODE_BITS;
}

#endif
