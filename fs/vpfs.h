/* The daemon context shared by the fs/ modules (inode numbers: ino.h). */
#ifndef VPFS_H
#define VPFS_H

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "lib/list.h"
#include "lib/vlog.h"
#include "lib/u64map.h"
#include "pool/pool.h"
#include "vmm/machine.h"
#include "lib/thread_safety.h"

struct vpfs_opts {
	struct pool_config pool;
	struct machine_config mc; /* mc.image_dir points at image */
	uint32_t timeout_ms;	  /* default command timeout, 0 = none */
	char *image;		  /* owned: the default image, a NAME in images_dir or a path */
	char *images_dir;	  /* owned: IMAGES (-o images=) */
	size_t spill_threshold;	  /* output bytes kept in memory per stream */
	uint64_t output_max;	  /* output kept per machine and command, both streams (memory + disk) */
	unsigned max_threads;	  /* FUSE worker threads */
	uint32_t ping_ms;	  /* health bound: an agent silent this long is dead; 0 = off */
	unsigned machine_calls;	  /* FUSE workers one machine's guest calls may hold at once */
	bool foreground, debug;
	/* No -o image and no $VMPOOL_IMAGE: image is the compiled-in default
	 * (defimage.h), which the daemon may build on its first start. */
	bool image_is_default;
	char *source; /* mount.fuse3's source argument ("vmpoolfs"), or NULL; owned */
	/* -o allow_other (passed on to the mount): other host users reach the
	 * tree, so each machine belongs to the user who made it (ctltree.h). */
	bool allow_other;
};

struct notifier;
struct session_watch;

struct vpfs {
	/* Set before the loop starts, constant while it runs. */
	struct vpfs_opts opts;
	char *mnt;			 /* absolute mount path, for self-operations */
	struct images *images;		 /* every image, each with its backend and pool (images.h) */
	struct machine_backend *backend; /* the default image's */
	struct pool *pool;		 /* the default image's */
	struct fuse_session *se;
	struct notifier *notify;
	struct session_watch *watch; /* health pings, host-side timeouts (session.h) */
	const char *spill_dir;
	struct timespec start_time; /* times of the fixed files */
	struct vlog log;	    /* where messages go (lib/vlog.h), set in main */

	/* Guards the fields below, and in every session the links to them and
	 * `ready` (session.h). Taken before a session's lock, never after. */
	struct vp_mutex lock;
	struct list_node live GUARDED_BY(lock);	    /* named sessions (pool/NAME), newest first */
	struct u64map sessions GUARDED_BY(lock);    /* every session not yet freed, by serial */
	struct list_node misc_fhs GUARDED_BY(lock); /* open handles not tied to a session (handles.h) */
	uint64_t next_serial GUARDED_BY(lock);
	uint32_t nlive GUARDED_BY(lock);
	uint64_t commands_run GUARDED_BY(lock);
	bool shutting_down GUARDED_BY(lock);
};

#endif
