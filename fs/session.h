/* One acquired machine (pool/NAME) and the state machine of its commands:
 * idle -> running -> exited/signaled/timeout/error -> running ...; output,
 * exit status, settings, and the readers waiting for them. What the files
 * show of it is ctlfiles.h's; open files are handles.h's.
 *
 * Lifetime: `refs` counts the name table, open handles, a running exec (its
 * callbacks), the notify queue and handlers in progress; the struct is freed
 * at zero. The machine itself is used under `musers`: rmdir marks the
 * session released and the machine goes back to the pool when the last user
 * is done, so nothing touches a client after pool_release.
 *
 * Locks: fs->lock (vpfs.h) before s->lock, never the other way. `calls`
 * (the machine's share of FUSE workers) and `run_timeout_ms` are under
 * s->lock; the watch thread's lock (session.c) is a leaf. */
#ifndef VPFS_SESSION_H
#define VPFS_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ctlparse.h"
#include "lib/list.h"
#include "lib/u64map.h"
#include "output.h"
#include "vpfs.h"

enum cmd_state { ST_IDLE = 0, ST_RUNNING, ST_EXITED, ST_SIGNALED, ST_TIMEOUT, ST_ERROR };
const char *cmd_state_name(enum cmd_state st);

struct session {
	/* Constant from session_create on. */
	struct vpfs *fs;
	char *name;
	uint64_t serial;
	struct image *img; /* the image it came from (a reference) */
	struct pool *pool; /* img's */
	fuse_ino_t dir;	   /* the pool/ directory it is named in: MNT/pool or images/IMG/pool */
	int refs;	   /* atomic */

	/* Under fs->lock. */
	struct list_node live_link;   /* in fs->live while named */
	struct u64map_link by_serial; /* in fs->sessions until freed */
	bool ready;		      /* acquired; false while mkdir is still acquiring */

	/* Under s->lock: the machine and the command. */
	struct vp_mutex lock;
	/* The host user who made it (mkdir's caller), set by ctltree.c just
	 * after session_create; root (0) until then, which fails closed. Used
	 * under -o allow_other only. */
	uid_t uid GUARDED_BY(lock);
	gid_t gid GUARDED_BY(lock);
	struct machine *m GUARDED_BY(lock);
	struct vp_client *client GUARDED_BY(lock);
	struct root_proxy *rp GUARDED_BY(lock);
	int32_t host_pid GUARDED_BY(lock);
	uint32_t machine_id GUARDED_BY(lock);
	int musers GUARDED_BY(lock);
	bool released GUARDED_BY(lock); /* rmdir done: no new machine use */
	bool dead GUARDED_BY(lock);	/* the guest died: commands fail with EIO */
	int calls GUARDED_BY(lock); /* FUSE workers in a guest call of this machine (session_call_enter) */
	uint32_t run_timeout_ms GUARDED_BY(lock); /* the running command's timeout, 0 = none */
	bool cut GUARDED_BY(lock);		  /* rmdir came while the command ran: its
	                            * output ends with EIO, not EOF (waiters.c) */
	enum cmd_state state GUARDED_BY(lock);
	uint64_t gen GUARDED_BY(lock);	    /* commands started */
	int pending GUARDED_BY(lock);	    /* cmd handles holding text that is about to run */
	bool settling GUARDED_BY(lock);	    /* ended, root/ caches not dropped yet: still "running" */
	bool snapshotting GUARDED_BY(lock); /* ctl snapshot copying: no command may start */
	char *cmd GUARDED_BY(lock);	    /* last command text (as written) */
	size_t cmd_len GUARDED_BY(lock);
	uint32_t exec_id GUARDED_BY(lock), pid GUARDED_BY(lock);
	bool exec_id_valid GUARDED_BY(lock);
	int exit_code GUARDED_BY(lock), signo GUARDED_BY(lock);
	uint64_t started_wall_ms GUARDED_BY(lock), started_mono_ms GUARDED_BY(lock),
		duration_ms GUARDED_BY(lock);
	char error[200] GUARDED_BY(lock);
	uint64_t oom_base GUARDED_BY(lock); /* the machine's OOM-kill count when the command started */
	bool oom_base_known GUARDED_BY(lock);
	uint64_t oom_kills GUARDED_BY(lock);	   /* kills by the memory limit since then, as last read */
	struct outbuf out[2] GUARDED_BY(lock);	   /* stdout, stderr */
	int out_err[2] GUARDED_BY(lock);	   /* per stream: a failed append; what came after is
	                               * dropped (no gap), readers get EIO at the end */
	struct outbudget obudget GUARDED_BY(lock); /* both streams' share of -o output_max */
	struct timespec mtime[2] GUARDED_BY(lock);
	struct timespec ctime GUARDED_BY(lock);
	struct exec_settings settings GUARDED_BY(lock);
	struct list_node waiters GUARDED_BY(lock); /* blocked reads (waiters.h) */
	struct list_node fhs GUARDED_BY(lock);	   /* open handles on this session's files (handles.h) */

	/* Under the notifier's lock (notify.c). */
	unsigned nq_flags;
	struct list_node nq_link; /* in its queue while linked */
	uint64_t touch_last_ms[2];
};

void session_ref(struct session *s);
void session_unref(struct session *s);

/* mkdir DIR/NAME (dir: the pool/ directory's inode, img its image):
 * reserve NAME in dir (-EEXIST), acquire a machine from img's pool
 * (opened on first use), start its proxy. */
int session_create(struct vpfs *fs, struct image *img, fuse_ino_t dir, const char *name, struct session **out);
/* rmdir: unname, kill the running command, give the machine back once no
 * operation uses it. -ENOENT for an unknown name. */
int session_remove(struct vpfs *fs, fuse_ino_t dir, const char *name);
/* Lookups; the result carries a reference. */
struct session *session_by_name(struct vpfs *fs, fuse_ino_t dir, const char *name);
struct session *session_by_serial(struct vpfs *fs, uint64_t serial);
/* Also a released session that open handles still keep (getattr of an
 * open file after rmdir, like an unlinked file). */
struct session *session_by_serial_any(struct vpfs *fs, uint64_t serial);
/* Calls fn on every named, acquired session of directory dir under
 * fs->lock (readdir of a pool/); stops at the first non-zero result and
 * returns it. */
int session_each_named(struct vpfs *fs, fuse_ino_t dir, int (*fn)(void *ctx, const struct session *s),
		       void *ctx);
/* ctl `snapshot NAME`: the machine's state as a new image (images.h).
 * -EBUSY while a command runs (or is about to); the reason also goes to
 * the machine's log. */
int session_snapshot(struct session *s, const char *name);

/* Machine use around a client/proxy call: -ESTALE once released. */
int session_machine_get(struct session *s);
void session_machine_put(struct session *s);
/* session_machine_get and the machine; NULL (nothing held) after rmdir. */
struct machine *session_machine_hold(struct session *s);

/* A FUSE worker about to wait on this machine's agent (root/ requests,
 * cmd/stdin/ctl calls): at most opts.machine_calls at once per machine,
 * so that a guest that does not answer holds only its own share of the
 * workers. -EAGAIN past it, unless `always` (requests that free what an
 * earlier one took: forget, release, flush). Pair with session_call_leave. */
int session_call_enter(struct session *s, bool always);
void session_call_leave(struct session *s);

/* Start `text` (validated: no NUL, ≤ VP_MAX_CMD). -EBUSY while a command
 * runs, -EIO/-ENOTCONN for a dead guest, -ESTALE after rmdir. */
int session_start(struct session *s, const char *text, size_t len);
/* A cmd handle got its first text (+1) or started/dropped it (-1). While
 * any is pending, readers of stdout/stderr/exit wait: the command it holds
 * is about to replace what they would read. */
void session_pending(struct session *s, int delta);
/* Whether the machine is still alive; a dead one found outside a command
 * (an idle agent killed from the host) turns the state to error with the
 * reason, logged once. True after rmdir. */
bool session_check_alive(struct session *s);
/* -EBUSY when a command runs; -EIO when the guest is dead. */
int session_can_start(struct session *s);
/* ctl kill: -ESRCH when no command runs. */
int session_kill(struct session *s, int signo);
/* stdin data (eof closes the pipe after it); -EPIPE when `gen` is not the
 * running command. */
int session_stdin(struct session *s, uint64_t gen, const void *data, size_t len, bool eof);
/* The machine's OOM-kill count since the command started, into
 * s->oom_kills (while the machine is ours; after rmdir the last value
 * stays). */
void session_refresh_oom_kills(struct session *s);

/* The notify thread dropped root/ caches after the end: readers of exit
 * and stdout may now see it (so root/ is fresh for whoever reacts). */
void session_settled(struct session *s);

/* The watch thread: every tick it probes each acquired machine's agent
 * (vp_client_probe, bound opts.ping_ms) and checks running commands
 * against their timeout. An agent that does not answer, or a command past
 * its timeout plus a grace the agent did not enforce, makes the session
 * dead (state=error, why in `error`, pending and blocked requests EIO) and
 * the machine is killed host-side (machine_kill). It takes fs->lock, then
 * (not nested) each session's lock; never waits on a guest. */
int session_watch_start(struct vpfs *fs);
void session_watch_stop(struct vpfs *fs); /* safe when not started */

/* Shutdown: unname and release every named session, as rmdir would
 * (open handles: vfh_drop_all, handles.h). */
void session_release_all(struct vpfs *fs);

#endif
