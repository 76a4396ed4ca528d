/* The one file built against the libfuse 3.12 API: with FUSE_USE_VERSION
 * 35, fuse_session_loop_mt takes the old config, which cannot raise the
 * worker cap above libfuse's default of 10. Requests that hold a worker
 * (stdin writes waiting for the command, root/ transfers, mkdir that boots
 * a machine) could use those up and starve the notify thread's
 * self-operations, so the cap is ours to set. Nothing else here touches
 * FUSE structures. */
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>

#include "loop.h"
#include "lib/vlog.h"

/* Each machine costs the daemon a few fds (its channel, its log pipe:
 * docs/pool.md): the soft limit's usual 1024 would cap a pool at a few
 * hundred machines, so it goes up to the hard limit, said on stderr. */
static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rlim_t was = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
		vlog_info(NULL, "RLIMIT_NOFILE soft limit raised from %llu to the hard limit %llu",
			  (unsigned long long)was, (unsigned long long)rl.rlim_max);
}

/* Once the loop has ended, the daemon releases every machine: a second
 * SIGTERM or SIGINT (libfuse's handlers only end the loop, and are
 * removed later, leaving the default action: death) must not abandon that
 * half-done, leaving cgroups, mounts and processes behind. SIG_IGN stays:
 * libfuse only resets a handler that is still its own. */
static void ignore_stop_signals(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa = { .sa_handler = SIG_IGN };
	sigemptyset(&sa.sa_mask);
	for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaction(sigs[i], &sa, NULL);
}

int vpfs_loop(struct fuse_session *se, unsigned max_threads)
{
	raise_nofile();
	if (max_threads <= 1) {
		int r = fuse_session_loop(se);
		ignore_stop_signals();
		return r;
	}
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	if (!cfg)
		return -1;
	fuse_loop_cfg_set_clone_fd(cfg, 0);
	fuse_loop_cfg_set_max_threads(cfg, max_threads);
	/* Keep a few idle workers: creating threads costs on bursts. */
	fuse_loop_cfg_set_idle_threads(cfg, max_threads < 16 ? max_threads : 16);
	int r = fuse_session_loop_mt(se, cfg);
	ignore_stop_signals();
	fuse_loop_cfg_destroy(cfg);
	return r;
}
