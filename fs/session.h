/* One acquired machine (pool/NAME) and the state of its current or last
 * command: output, exit status, settings, readers waiting for either.
 *
 * Lifetime: `refs` counts the name table, open handles, a running exec (its
 * callbacks), the notify queue and handlers in progress; the struct is freed
 * at zero. The machine itself is used under `musers`: rmdir marks the
 * session released and the machine goes back to the pool when the last user
 * is done, so nothing touches a client after pool_release. */
#ifndef VPFS_SESSION_H
#define VPFS_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "ctlparse.h"
#include "output.h"
#include "vpfs.h"

enum cmd_state { ST_IDLE = 0, ST_RUNNING, ST_EXITED, ST_SIGNALED, ST_TIMEOUT, ST_ERROR };
const char *cmd_state_name(enum cmd_state st);

struct waiter; /* waiters.h */

/* An open file of the tree (fi->fh). */
struct vfh {
	struct session *s;            /* NULL for stats/config/directories */
	int kind;                     /* enum sfile or FH_* */
	bool writer;
	bool self;                    /* stat opened for write by the notify thread */
	bool started;                 /* cmd: this handle's text was started */
	bool pending;                 /* cmd: holds text not started yet (counted in s->pending) */
	pid_t opener;                 /* thread that opened it: its close starts cmd */
	uint64_t gen;                 /* command generation at open (stdin) */
	uint64_t pos;                 /* end of the last read: poll readiness */
	struct fuse_pollhandle *ph;   /* under s->lock */
	pthread_mutex_t io;           /* buf, len, cap: one fd may be shared by processes */
	char *buf;                    /* snapshot to read, or text being written */
	size_t len, cap;
	struct vfh *next, *prev;      /* s->fhs or fs->misc_fhs */
};

struct session {
	struct vpfs *fs;
	struct session *next_live, *next_all, *prev_all; /* under fs->lock */
	char *name;
	uint64_t serial;
	int refs;                     /* atomic */

	pthread_mutex_t lock;         /* everything below */
	/* machine */
	struct machine *m;
	struct vp_client *client;
	struct root_proxy *rp;
	int32_t host_pid;
	uint32_t machine_id;
	int musers;
	bool ready;                   /* acquired; false while mkdir is still acquiring */
	bool released;                /* rmdir done: no new machine use */
	bool dead;                    /* the guest died: commands fail with EIO */
	/* command */
	enum cmd_state state;
	uint64_t gen;                 /* commands started */
	int pending;                  /* cmd handles holding text that is about to run */
	bool settling;                /* ended, root/ caches not dropped yet: still "running" */
	char *cmd;                    /* last command text (as written) */
	size_t cmd_len;
	uint32_t exec_id, pid;
	bool exec_id_valid;
	int exit_code, signo;
	uint64_t started_wall_ms, started_mono_ms, duration_ms;
	char error[200];
	uint64_t oom_base;            /* the machine's OOM-kill count when the command started */
	bool oom_base_known;
	uint64_t oom_kills;           /* kills by the memory limit since then, as last read */
	struct outbuf out[2];         /* stdout, stderr */
	int out_err[2];               /* per stream: a failed append; what came after is
	                               * dropped (no gap), readers get EIO at the end */
	struct timespec mtime[2];
	struct timespec ctime;
	struct exec_settings settings;
	struct waiter *waiters;       /* blocked reads (waiters.h) */
	struct vfh *fhs;              /* open handles on this session's files */
	/* notify queue; under the notifier's lock */
	unsigned nq_flags;
	bool nq_linked;
	struct session *nq_next;
	uint64_t touch_last_ms[2];
};

void session_ref(struct session *s);
void session_unref(struct session *s);

/* mkdir: reserve NAME (-EEXIST), acquire a machine, start its proxy. */
int session_create(struct vpfs *fs, const char *name, struct session **out);
/* rmdir: unname, kill the running command, give the machine back once no
 * operation uses it. -ENOENT for an unknown name. */
int session_remove(struct vpfs *fs, const char *name);
/* Lookups; the result carries a reference. */
struct session *session_by_name(struct vpfs *fs, const char *name);
struct session *session_by_serial(struct vpfs *fs, uint64_t serial);
/* Also a released session that open handles still keep (getattr of an
 * open file after rmdir, like an unlinked file). */
struct session *session_by_serial_any(struct vpfs *fs, uint64_t serial);

/* Machine use around a client/proxy call: -ESTALE once released. */
int session_machine_get(struct session *s);
void session_machine_put(struct session *s);

/* Start `text` (validated: no NUL, ≤ VP_MAX_CMD). -EBUSY while a command
 * runs, -EIO/-ENOTCONN for a dead guest, -ESTALE after rmdir. */
int session_start(struct session *s, const char *text, size_t len);
/* A cmd handle got its first text (+1) or started/dropped it (-1). While
 * any is pending, readers of stdout/stderr/exit wait: the command it holds
 * is about to replace what they would read. */
void session_pending(struct session *s, int delta);
/* -EBUSY when a command runs; -EIO when the guest is dead. */
int session_can_start(struct session *s);
/* ctl kill: -ESRCH when no command runs. */
int session_kill(struct session *s, int signo);
/* stdin data (eof closes the pipe after it); -EPIPE when `gen` is not the
 * running command. */
int session_stdin(struct session *s, uint64_t gen, const void *data, size_t len, bool eof);

/* The notify thread dropped root/ caches after the end: readers of exit
 * and stdout may now see it (so root/ is fresh for whoever reacts). */
void session_settled(struct session *s);
/* Text of the stat file; malloc'ed. */
int session_format_stat(struct session *s, char **out, size_t *len);
/* The machine's log (console or agent stderr; machine_log_path) as it is
 * now; -ESTALE after rmdir. */
int session_read_log(struct session *s, char **out, size_t *len);
/* Sizes for getattr: current length of a file's content. */
uint64_t session_file_size(struct session *s, int file);

/* Shutdown: release every named session, drop every open handle. */
void session_release_all(struct vpfs *fs);

/* Handles (fi->fh): linked to their session or to fs->misc_fhs. */
struct vfh *vfh_new(struct vpfs *fs, struct session *s, int kind);
void vfh_free(struct vpfs *fs, struct vfh *fh);

#endif
