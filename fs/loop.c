/* The one file built against the libfuse 3.12 API: with FUSE_USE_VERSION
 * 35, fuse_session_loop_mt takes the old config, which cannot raise the
 * worker cap above libfuse's default of 10. Requests that hold a worker
 * (stdin writes waiting for the command, root/ transfers, mkdir that boots
 * a machine) could use those up and starve the notify thread's
 * self-operations, so the cap is ours to set. Nothing else here touches
 * FUSE structures. */
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include "loop.h"

int vpfs_loop(struct fuse_session *se, unsigned max_threads)
{
	if (max_threads <= 1)
		return fuse_session_loop(se);
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	if (!cfg)
		return -1;
	fuse_loop_cfg_set_clone_fd(cfg, 0);
	fuse_loop_cfg_set_max_threads(cfg, max_threads);
	/* Keep a few idle workers: creating threads costs on bursts. */
	fuse_loop_cfg_set_idle_threads(cfg, max_threads < 16 ? max_threads : 16);
	int r = fuse_session_loop_mt(se, cfg);
	fuse_loop_cfg_destroy(cfg);
	return r;
}
