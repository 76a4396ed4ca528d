/* Guest agent internals (vmpool-agent, PID 1 in a guest; see proto.h).
 *
 * Threads: the main thread reads frames from the channel and decodes them
 * (agent_main.c); EXEC/STDIN/SIGNAL/OUTPUT_ACK go to one exec event loop
 * (agent_exec.c), which is also the only caller of wait*() so it never
 * loses a command's status to the zombie reaper; file requests go to a
 * growing worker pool (agent_pool.c) that runs them on node/handle tables
 * (agent_fs.c, agent_fs_table.c). Every thread replies through the channel
 * (agent_chan.c), whose writes are serialised by a mutex. PID 1 duties
 * (mounts, modules, console) are in agent_init.c.
 *
 * Functions return 0 or a negative errno. */
#ifndef VMPOOL_AGENT_H
#define VMPOOL_AGENT_H

#include <dirent.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/list.h"
#include "lib/u64map.h"
#include "proto/proto.h"

#define AGENT_LOG(...) agent_log(__VA_ARGS__)
void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- channel (agent_chan.c) ------------------------------------------ */

struct agent_chan {
	int fd;
	pthread_mutex_t lock; /* one frame at a time on the wire */
};
void agent_chan_init(struct agent_chan *c, int fd);
void agent_chan_destroy(struct agent_chan *c); /* closes fd */
/* payload may be NULL (empty). A payload over VP_MAX_PAYLOAD is never
 * written: the request gets ERROR(EOVERFLOW) instead. */
int agent_send(struct agent_chan *c, uint16_t type, uint32_t id, const struct vp_buf *payload);
int agent_send_error(struct agent_chan *c, uint32_t id, int err, const char *msg); /* err: ±errno */
int agent_send_ok(struct agent_chan *c, uint32_t id);
/* One frame. 0; -EPIPE at EOF; -ENOSYS for a well-framed unknown type (its
 * payload was skipped, *h is filled); -EPROTO/-EMSGSIZE for a bad header
 * (the stream cannot be resynchronised); other -errno on read errors. */
int agent_read_frame(int fd, struct vp_hdr *h, uint8_t **payload);

/* ---- requests ---------------------------------------------------------- */

/* A decoded request; its byte fields point into `payload`, which it owns.
 * err != 0: the request is answered with ERROR(err) and nothing else. */
struct agent_msg {
	struct list_node link; /* in the queue of whoever holds it (exec, pool) */
	struct vp_hdr h;
	uint8_t *payload;
	int err;
	union vp_msg u; /* vp_decode by h.type */
};
void agent_msg_free(struct agent_msg *m);

/* ---- PID 1 duties (agent_init.c) --------------------------------------- */

/* Make sure fds 0-2 are open (on /dev/console if `console`, else or failing
 * that /dev/null) so no channel or pipe fd ever lands there. */
void agent_std_fds(bool console);
/* Mount proc, sys, dev (devtmpfs: VM only), dev/pts, dev/shm, tmp, run;
 * lo up; hostname. Failures are logged and tolerated. */
void agent_pid1_setup(bool vm);
/* VM mode: load the virtio modules and open the console port. */
int agent_vm_load_modules(void);
int agent_vm_open_channel(int *fd);

/* The commands' namespaces (ns guest): a pid namespace of their own under
 * the agent, whose init is a child of the agent holding nothing, and a
 * mount namespace whose /proc is that pid namespace's, so no command can
 * name the agent (no pid, no /proc entry) to ptrace, signal or open it. */
struct agent_cmdns;
/* Main thread, before any other thread starts, after agent_pid1_setup. */
int agent_cmdns_new(struct agent_cmdns **out);
void agent_cmdns_free(struct agent_cmdns *ns);
/* "/proc/PID/root": the commands' / (their mounts included), for root/. */
const char *agent_cmdns_root(const struct agent_cmdns *ns);
/* Exec loop, before each fork of a command: its children go to the
 * commands' pid namespace (a new one if the last init ended). */
int agent_cmdns_prepare(struct agent_cmdns *ns);
/* Between fork and execve (async-signal-safe): join the mount namespace
 * and take the commands' RLIMIT_NOFILE. */
int agent_cmdns_join(const struct agent_cmdns *ns);
/* Exec loop: true when pid was the commands' init (it is then forgotten). */
bool agent_cmdns_reaped(struct agent_cmdns *ns, pid_t pid, int status);

/* ---- starting a command (agent_spawn.c) -------------------------------- */

struct agent_child {
	pid_t pid;	   /* also its process group and session */
	pid_t ns_pid;	   /* the same process in the commands' pid namespace */
	int in, out, err;  /* our ends, O_NONBLOCK; in = -1 without VP_EXEC_STDIN */
	uint64_t start_ns; /* CLOCK_MONOTONIC at the fork */
};
/* Returns once the command runs (0) or could not be started: -errno of
 * the failed pipe/fork/chdir/execve (the failed child is reaped here), or
 * -EINVAL for an env entry that is not K=V. Exec loop only (it alone may
 * reap). */
int agent_spawn(const struct vp_exec *q, struct agent_cmdns *ns, struct agent_child *c); /* ns may be NULL */

/* ---- commands (agent_exec.c) ------------------------------------------- */

struct agent_exec;
int agent_exec_new(struct agent_chan *c, struct agent_cmdns *ns, struct agent_exec **out); /* ns may be NULL */
/* Takes ownership of m (EXEC, STDIN, SIGNAL or OUTPUT_ACK). */
void agent_exec_submit(struct agent_exec *x, struct agent_msg *m);
/* Kills every command's process group, reaps, joins the thread, frees. */
void agent_exec_free(struct agent_exec *x);

/* ---- file nodes and handles (agent_fs_table.c) ------------------------- */

/* How many O_PATH fds nodes may hold at once, and how many handles may be
 * open: at most these, and at most a quarter (nodes) and half (handles) of
 * the agent's RLIMIT_NOFILE, so pipes, the channel and commands' spawns
 * always find fds. `find /sys` in a guest looked up 19 998 inodes and made
 * the agent hit its 8192 fds; a node now closes its fd when it is the
 * least recently used and reopens it on demand. VMPOOL_AGENT_NODE_FDS and
 * VMPOOL_AGENT_HANDLES (read at start) lower them for tests. */
#define AGENT_NODE_FDS 2048u
#define AGENT_HANDLES 4096u

struct agent_node {
	struct u64map_link by_id, by_ino; /* in nodes (id), inos (ino_key) */
	struct list_node lru;		  /* in fs->lru while fd >= 0 (never the root) */
	uint64_t id;
	int fd; /* O_PATH | O_NOFOLLOW, or -1: closed to stay under the bound */
	dev_t dev;
	ino_t ino;
	mode_t type; /* S_IFMT bits */
	/* Where it was last found, to reopen it: parent/name is opened again
	 * and must give the same dev/ino (else ESTALE). NULL for the root. */
	struct agent_node *parent;
	char *name;
	uint64_t nlookup;
	unsigned refs;	/* requests using it right now: its fd stays open */
	unsigned kids;	/* nodes whose parent it is: it stays while they do */
	bool permanent; /* the root: FORGET never frees it */
	bool hashed;
};

struct agent_handle {
	struct u64map_link link; /* in handles, by id */
	uint64_t id;
	int fd;
	DIR *dp;      /* directories; fd == dirfd(dp) */
	bool regular; /* pread may be looped to a full buffer */
	unsigned refs;
	bool hashed;
	pthread_mutex_t lock; /* DIR streams are not thread-safe */
	uint64_t dir_off;     /* where the DIR stream stands */
};

#define AGENT_MAX_OWN_GROUPS 64u

struct agent_fs {
	pthread_mutex_t lock; /* the tables, the LRU and every node's and handle's counts and links */
	struct u64map nodes, inos, handles;
	uint64_t next_node, next_fh;
	struct list_node lru;		 /* nodes holding an fd, most recently used first */
	unsigned node_fds, max_node_fds; /* nodes holding an fd (the root aside) */
	unsigned nhandles, max_handles;
	/* The agent's own ids, which each thread returns to after a request
	 * served as its caller (agent_fs_cred.c). */
	uint32_t own_uid, own_gid;
	unsigned own_ngroups;
	gid_t own_groups[AGENT_MAX_OWN_GROUPS];
};

int agent_fs_new(const char *root, struct agent_fs **out);
void agent_fs_free(struct agent_fs *fs);
/* The node with its fd open (reopened if it had been closed), held until
 * agent_node_put. NULL: stale (unknown id, or it cannot be found again). */
struct agent_node *agent_node_get(struct agent_fs *fs, uint64_t id);
void agent_node_put(struct agent_fs *fs, struct agent_node *n);
/* Registers one lookup of the object found as parent/name: an existing
 * node for the same dev/ino gains a lookup (and is now known by that
 * name), else a new node. fd: its O_PATH fd, consumed, or -1 to open it
 * only when used (readdirplus: a listing need not cost an fd per entry). */
int agent_node_add(struct agent_fs *fs, struct agent_node *parent, const char *name, int fd, dev_t dev,
		   ino_t ino, mode_t type, uint64_t *id);
/* The object dev/ino (if a node) is now parent/name: a rename through us. */
void agent_node_moved(struct agent_fs *fs, dev_t dev, ino_t ino, struct agent_node *parent, const char *name);
void agent_node_forget(struct agent_fs *fs, uint64_t id, uint64_t nlookup);
/* fd and dp (may be NULL) are consumed, also on failure; -EMFILE when
 * max_handles are open. */
int agent_handle_add(struct agent_fs *fs, int fd, DIR *dp, bool regular, uint64_t *fh);
struct agent_handle *agent_handle_get(struct agent_fs *fs, uint64_t fh); /* NULL: EBADF */
void agent_handle_put(struct agent_fs *fs, struct agent_handle *h);
int agent_handle_close(struct agent_fs *fs, uint64_t fh);

/* ---- file requests (agent_fs.c) ---------------------------------------- */

/* Runs one VP_FS_* request (not FORGET) and sends its reply. May block
 * (a FIFO open/read) for as long as the file does. */
void agent_fs_serve(struct agent_fs *fs, struct agent_chan *c, const struct agent_msg *m);

/* ---- requests as their caller (agent_fs_cred.c) ------------------------ */

/* Records the agent's own ids (agent_fs_new). */
void agent_cred_init(struct agent_fs *fs);
/* Makes the calling thread act as c for one request: 0 for guest root
 * (nothing changed), 1 when switched (then agent_cred_leave after the
 * request), or -EPERM when the guest cannot act as c (nothing changed). */
int agent_cred_enter(const struct agent_fs *fs, const struct vp_cred *c);
void agent_cred_leave(const struct agent_fs *fs);

/* ---- big reads without copies (agent_fs_splice.c) --------------------- */

/* Below this a READ goes through pread: a pipe costs more than it saves. */
#define AGENT_SPLICE_MIN (64u * 1024u)
/* Answers READ `id` of h by splicing file → pipe → channel socket. 1 when
 * this path does not apply (nothing was sent: use pread), else 0 (answered,
 * or the channel broke). */
int agent_read_spliced(struct agent_chan *c, struct agent_handle *h, uint32_t id, uint64_t off, uint32_t size);

/* ---- worker pool (agent_pool.c) ---------------------------------------- */

/* Runs one request and sends its reply; the pool frees m afterwards. */
typedef void agent_pool_fn(void *ctx, struct agent_msg *m);
struct agent_pool;
int agent_pool_new(agent_pool_fn *fn, void *ctx, struct agent_pool **out);
/* Takes ownership of m. A thread is added whenever none is idle (up to a
 * cap), so a request blocked on a FIFO does not hold up the others, and the
 * frame reader never waits for a reply to be written. */
void agent_pool_submit(struct agent_pool *p, struct agent_msg *m);
/* Drops queued requests, interrupts blocked ones (SIGUSR1), joins, frees.
 * -EBUSY: a worker would not come back within ~2 s; then nothing it may
 * still touch (pool, fs tables, channel) may be freed. */
int agent_pool_free(struct agent_pool *p);
/* The no-op handler that lets agent_pool_free interrupt blocked syscalls. */
int agent_pool_install_signal(void);

#endif
