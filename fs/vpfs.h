/* The daemon context and the inode numbering shared by the fs/ modules.
 *
 * Inodes (fuse_ino_t, 64 bits):
 *   1 MNT, 2 MNT/pool, 3 MNT/stats, 4 MNT/config;
 *   (serial << 8) | file   pool/NAME (file 0) and its control files;
 *   (1 << 63) | (serial << 40) | guest node   root/ of that session, owned
 *   by its root proxy (root_proxy.h).
 * A session serial is never reused, so an inode of a released machine can
 * never name a later one: it answers ESTALE. */
#ifndef VPFS_H
#define VPFS_H

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "pool/pool.h"
#include "vmm/machine.h"

#define INO_ROOT 1
#define INO_POOL 2
#define INO_STATS 3
#define INO_CONFIG 4
#define INO_RP_BIT (UINT64_C(1) << 63)
#define SES_SHIFT 8
#define SES_SERIAL_MAX ((UINT64_C(1) << 23) - 1) /* fits between bit 40 and bit 63 */

enum sfile { SF_DIR = 0, SF_CMD, SF_STDOUT, SF_STDERR, SF_STAT, SF_EXIT, SF_STDIN, SF_CTL, SF_LOG, SF_COUNT };
/* Not session files: handles on MNT/stats, MNT/config and directories. */
enum { FH_STATS = 100, FH_CONFIG, FH_DIR };

static inline fuse_ino_t ses_ino(uint64_t serial, int file)
{
	return (fuse_ino_t)((serial << SES_SHIFT) | (uint64_t)file);
}
static inline uint64_t ino_serial(fuse_ino_t ino) { return (uint64_t)ino >> SES_SHIFT; }
static inline int ino_file(fuse_ino_t ino) { return (int)(ino & ((1u << SES_SHIFT) - 1)); }
static inline bool ino_is_rp(fuse_ino_t ino) { return ((uint64_t)ino & INO_RP_BIT) != 0; }
static inline uint64_t rp_ino_serial(fuse_ino_t ino) { return ((uint64_t)ino & ~INO_RP_BIT) >> 40; }
static inline bool ino_is_session(fuse_ino_t ino)
{
	return !ino_is_rp(ino) && ino_serial(ino) >= 1 && ino_file(ino) < SF_COUNT;
}

struct vpfs_opts {
	struct pool_config pool;
	struct machine_config mc;  /* mc.image_dir points at image */
	uint32_t timeout_ms;       /* default command timeout, 0 = none */
	char *image;               /* owned */
	size_t spill_threshold;    /* output bytes kept in memory per stream */
	unsigned max_threads;      /* FUSE worker threads */
	bool foreground, debug;
};

struct session;
struct notifier;
struct vfh;

struct vpfs {
	struct vpfs_opts opts;
	char *mnt;                   /* absolute mount path, for self-operations */
	struct machine_backend *backend;
	struct pool *pool;
	struct fuse_session *se;
	struct notifier *notify;
	const char *spill_dir;
	struct timespec start_time;  /* times of the fixed files */

	pthread_mutex_t lock;        /* everything below */
	struct session *live;        /* named sessions (pool/NAME), newest first */
	struct session *all;         /* every session not yet freed (shutdown sweep) */
	struct vfh *misc_fhs;        /* open handles not tied to a session */
	uint64_t next_serial;
	uint32_t nlive;
	uint64_t commands_run;
	bool shutting_down;
};

uint64_t vpfs_now_ms(void);      /* CLOCK_MONOTONIC */
uint64_t vpfs_wall_ms(void);     /* CLOCK_REALTIME, for started_ms */

#endif
