/* vmpoolfs: startup and shutdown. Options are in opts.c, the tree in
 * tree.c. Order matters on the way down: the loop ends, every machine is
 * released and every parked request answered while the device is still
 * open, the mount goes (which also fails any self-operation of the notify
 * thread that nobody serves any more), then the notify thread, the pools
 * (which destroy the machines) and the backends (images.h). */
#include <errno.h>
#include <fuse_log.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "defimage.h"
#include "handles.h"
#include "images.h"
#include "lib/vlog.h"
#include "loop.h"
#include "mountcheck.h"
#include "notify.h"
#include "opts.h"
#include "sdnotify.h"
#include "vmm/machine_pool.h"
#include "session.h"
#include "tree.h"

/* Without -f: fork before any thread exists, and let the parent exit with
 * the child's verdict once it is mounted (or has failed), so that a caller
 * sees startup errors in the exit status. Returns the fd to report on. */
static int daemon_start(void)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(p[1]);
		unsigned char st = 1;
		ssize_t n;
		do
			n = read(p[0], &st, 1);
		while (n < 0 && errno == EINTR);
		_exit(n == 1 ? st : 1);
	}
	close(p[0]);
	setsid();
	return p[1];
}

static void daemon_ready(int fd, unsigned char status)
{
	if (fd < 0)
		return;
	if (status == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
			close(null);
		}
		if (chdir("/") != 0) {
			/* nothing relies on the cwd */
		}
	}
	ssize_t n;
	do
		n = write(fd, &status, 1);
	while (n < 0 && errno == EINTR);
	close(fd);
}

/* libfuse's own messages (fuse_log), with its levels, which are syslog's.
 * Its request trace (-d, which implies -f) stays as FUSE users know it:
 * raw on stderr, as libfuse prints it. */
__attribute__((format(printf, 2, 0))) static void fuse_log_to_vlog(enum fuse_log_level level, const char *fmt,
								   va_list ap)
{
	if (level == FUSE_LOG_DEBUG) {
		vfprintf(stderr, fmt, ap);
		return;
	}
	vlog_vmsg(NULL, (int)level, fmt, ap);
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct vpfs fs;
	memset(&fs, 0, sizeof(fs));
	vp_mutex_init(&fs.lock);
	list_init(&fs.live);
	list_init(&fs.misc_fhs);
	fs.next_serial = 1;
	clock_gettime(CLOCK_REALTIME, &fs.start_time);
	char *mp = NULL;
	int status = 1, dfd = -1;

	int r = opts_parse(&args, &fs.opts, &mp);
	if (r != 0) {
		fuse_opt_free_args(&args);
		return r == 1 ? 0 : 2;
	}
	/* The log target: stderr (or the journal), and syslog once detached
	 * (lib/vlog.h). Set here, before any thread. */
	vlog_init(&fs.log, "vmpoolfs", fs.opts.debug);
	vlog_set_process(&fs.log);
	fuse_set_log_func(fuse_log_to_vlog);
	fs.mnt = realpath(mp, NULL);
	if (!fs.mnt) {
		vlog_err(&fs.log, "mountpoint %s: %s", mp, strerror(errno));
		free(mp);
		opts_free(&fs.opts);
		fuse_opt_free_args(&args);
		vlog_close(&fs.log);
		return 2;
	}
	free(mp);
	/* After a crash the mountpoint may still hold our dead mount: detach
	 * it, so that starting again is all a restart takes. */
	if (mountcheck_prepare(fs.mnt) < 0)
		goto out_args;
	const char *tmp = getenv("TMPDIR");
	fs.spill_dir = tmp && *tmp ? tmp : "/tmp";
	if (u64map_init(&fs.sessions, 64) < 0) {
		vlog_err(&fs.log, "%s", strerror(ENOMEM));
		goto out_args;
	}

	/* Named in the mount table (before the user's options, which may
	 * rename it): how a later start tells a dead mount of ours from
	 * anything else. */
	if (fuse_opt_insert_arg(&args, 1, "-osubtype=" VPFS_FSNAME ",fsname=" VPFS_FSNAME) != 0) {
		vlog_err(&fs.log, "%s", strerror(ENOMEM));
		goto out_args;
	}
	fs.se = fuse_session_new(&args, &vpfs_ops, sizeof(vpfs_ops), &fs);
	if (!fs.se) { /* libfuse said which option it did not know */
		status = 2;
		goto out_args;
	}
	if (!fs.opts.foreground) {
		dfd = daemon_start();
		if (dfd < 0) {
			vlog_err(&fs.log, "cannot daemonize: %s", strerror(-dfd));
			goto out_session;
		}
		/* Until mounted, also on the terminal that started us. */
		vlog_use_syslog(&fs.log, true);
	}
	if (fs.opts.image_is_default) {
		sd_notify_send("STATUS=checking the default image");
		if (defimage_ensure(&fs.log, fs.opts.image) < 0)
			goto out_session;
	}
	char why[512];
	const struct images_cfg icfg = {
		.dir = fs.opts.images_dir,
		.default_image = fs.opts.image,
		.mc = &fs.opts.mc,
		.pool = &fs.opts.pool,
	};
	r = images_open(&icfg, &fs.images, why, sizeof why);
	if (r < 0) {
		vlog_err(&fs.log, "cannot open the default image %s: %s%s%s", fs.opts.image, strerror(-r),
			 why[0] ? ": " : "", why);
		goto out_session;
	}
	fs.backend = image_backend(images_default(fs.images));
	fs.pool = image_pool(images_default(fs.images));
	vlog_info(&fs.log, "backend %s: %s", machine_backend_name(fs.backend),
		  machine_backend_reason(fs.backend));
	r = notifier_start(&fs, &fs.notify);
	if (r < 0) {
		vlog_err(&fs.log, "cannot start the notify thread: %s", strerror(-r));
		goto out_images;
	}
	r = session_watch_start(&fs);
	if (r < 0) {
		vlog_err(&fs.log, "cannot start the watch thread: %s", strerror(-r));
		goto out_notify;
	}
	if (fuse_set_signal_handlers(fs.se) != 0)
		goto out_notify;
	if (fuse_session_mount(fs.se, fs.mnt) != 0)
		goto out_signals;
	vlog_info(&fs.log, "mounted on %s (image %s, min=%u max=%u max_machines=%u)", fs.mnt, fs.opts.image,
		  fs.opts.pool.min_size, fs.opts.pool.max_size, fs.opts.pool.max_machines);
	sd_notify_send("READY=1\nSTATUS=mounted");
	daemon_ready(dfd, 0);
	dfd = -1;

	r = vpfs_loop(fs.se, fs.opts.max_threads);
	status = r < 0 ? 1 : 0; /* > 0: ended by a signal, a clean stop */
	sd_notify_send("STOPPING=1");

	session_watch_stop(&fs);
	session_release_all(&fs);
	vfh_drop_all(&fs);
	fuse_session_unmount(fs.se);
out_signals:
	fuse_remove_signal_handlers(fs.se);
out_notify:
	session_watch_stop(&fs);
	notifier_stop(fs.notify);
	session_release_all(&fs); /* nothing left after a normal run */
	vfh_drop_all(&fs);
out_images:
	images_close(fs.images); /* every pool, then every backend */
	notifier_free(fs.notify);
	vp_mutex_lock(&fs.lock);
	if (fs.sessions.count)
		vlog_err(&fs.log, "sessions still referenced at exit");
	vp_mutex_unlock(&fs.lock);
out_session:
	fuse_session_destroy(fs.se);
out_args:
	daemon_ready(dfd, (unsigned char)(status ? status : 1));
	fuse_opt_free_args(&args);
	opts_free(&fs.opts);
	free(fs.mnt);
	u64map_destroy(&fs.sessions);
	vp_mutex_destroy(&fs.lock);
	if (status == 0)
		vlog_info(&fs.log, "unmounted, all machines released");
	fuse_set_log_func(NULL);
	vlog_close(&fs.log);
	return status;
}
