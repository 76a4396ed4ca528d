/* Namespace machine backend ("ns"): internal interface.
 *
 * ns.c          backend open/close and machine lifecycle (create, reset,
 *               destroy): ns_machine_ops
 * ns_spawn.c    clone of the sandboxed agent: parent side and child setup
 *               (proc, sysfs, /dev, loopback are set up there, before the
 *               agent runs: see child_kernfs for why proc and sysfs must be)
 * ns_cgroup.c   per-machine cgroups (v1 or pure v2, detected at open)
 * ns_seccomp.c  the seccomp filter (hand-written BPF, one table of refusals)
 * ns_log.c      the agents' stderr, copied (capped) into per-machine log files
 * ns_host.c     what the backend needs from the host, checked at open
 * ns_layers.c   an image's layers (snapshot chains) and the hand-over of a
 *               machine's writable layer to the daemon
 * ns_snapshot.c a machine's writable layer copied, frozen, into an image
 *
 * All functions return 0 or -errno. */
#ifndef VMPOOL_NS_H
#define VMPOOL_NS_H

#include <stdbool.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include <linux/filter.h>

#include "vmm/machine.h"

/* ---- backend / machines (ns.c) --------------------------------------- */

/* machine.h's calls for ns (vmm/machine_ops.h). open needs root, user
 * namespaces, overlayfs, memory+pids cgroups and an image rootfs/ owned by
 * a mapped id range, and says on stderr which one is missing. */
struct machine_ops;
extern const struct machine_ops ns_machine_ops;

/* ---- agent logs (ns_log.c) ------------------------------------------- */

#define NS_LOG_LIMIT (1u << 20) /* bytes kept per life of a machine */
struct ns_logs;			/* a runtime dir $TMPDIR/vmpool-ns-XXXXXX and a copying thread */
int ns_logs_open(struct ns_logs **out);
/* After every machine is gone: stops the thread, removes the directory. */
void ns_logs_close(struct ns_logs *l);
/* A new, empty log for machine `id`; *wr (O_NONBLOCK, close-on-exec) is
 * the agent's stderr, the caller closes it once the agent has it. */
int ns_log_attach(struct ns_logs *l, uint32_t id, int *wr);
int ns_log_path(const struct ns_logs *l, uint32_t id, char *buf, size_t cap);
void ns_log_remove(struct ns_logs *l, uint32_t id);

/* ---- seccomp (ns_seccomp.c) ------------------------------------------ */

#define NS_SECCOMP_MAX 128
struct ns_seccomp {
	struct sock_filter insns[NS_SECCOMP_MAX];
	struct sock_fprog prog; /* points into insns */
};
/* Builds the filter into sc (no allocation; sc must not move afterwards). */
int ns_seccomp_build(struct ns_seccomp *sc);
/* Name of a refused syscall number, or NULL when it is allowed (for tests). */
const char *ns_seccomp_refused_name(int nr);

/* ---- cgroups (ns_cgroup.c) ------------------------------------------- */

#define NS_CG_MAX_DIRS 3 /* v1: memory, pids and cpu hierarchies; v2: one */

struct ns_cgroups; /* detected layout and the backend's own parent dirs */

/* Detects v1 (memory and pids hierarchies) or pure v2 (memory and pids
 * controllers available) and creates this backend's parent cgroup(s). The
 * cpu controller is used where there is one (ns_cgroups_has_cpu).
 * -EOPNOTSUPP when neither layout is usable. */
int ns_cgroups_open(struct ns_cgroups **out);
/* ns_cgroups_open with other files standing for /proc/self/mountinfo,
 * /proc/self/cgroup and /proc/thread-self/cgroup (tests with a fake
 * cgroupfs). The paths are copied. */
struct ns_cgroup_sources {
	const char *mountinfo, *self_cgroup, *thread_cgroup;
};
int ns_cgroups_open_at(const struct ns_cgroup_sources *src, struct ns_cgroups **out);
void ns_cgroups_close(struct ns_cgroups *cg);	     /* removes the parent cgroups */
int ns_cgroups_version(const struct ns_cgroups *cg); /* 1 or 2 */
bool ns_cgroups_has_cpu(const struct ns_cgroups *cg);
/* The parent directory in each hierarchy (for tests counting leftovers). */
int ns_cgroups_dirs(const struct ns_cgroups *cg, const char **dirs, int max);

struct ns_cg {
	int ndirs;
	char *dirs[NS_CG_MAX_DIRS]; /* malloc'ed */
	int version;
};
struct ns_cg_limits {
	uint64_t mem_bytes;
	uint32_t pids_max;
	uint32_t cpu_milli; /* CPU time in thousandths of a CPU; 0: no limit */
};
/* A machine's leaf cgroup `name` with its limits set (v1: memory.limit_in_bytes,
 * pids.max, cpu.cfs_quota_us/cfs_period_us; v2: memory.max, pids.max,
 * cpu.max). -EOPNOTSUPP for a CPU limit without a cpu controller. */
int ns_cg_create(struct ns_cgroups *cg, const char *name, const struct ns_cg_limits *lim, struct ns_cg *out);
/* Around clone: the child is born in c's cgroups (see ns_cgroup.c). With
 * cgroup_fd >= 0 (v2) clone with CLONE_INTO_CGROUP; v1 moves the calling
 * thread in and ns_cg_clone_end moves it back. */
struct ns_cg_clone {
	int cgroup_fd;
	int nhome;
	char *home[NS_CG_MAX_DIRS];
};
int ns_cg_clone_begin(const struct ns_cgroups *cg, const struct ns_cg *c, struct ns_cg_clone *st);
int ns_cg_clone_end(struct ns_cg_clone *st);
int ns_cg_oom_kills(const struct ns_cg *c, uint64_t *out);
/* rmdir every dir, retrying briefly while the kernel empties it; frees. */
int ns_cg_remove(struct ns_cg *c);

/* ---- spawn (ns_spawn.c) ---------------------------------------------- */

/* Everything the child needs, prepared before clone: the child runs between
 * clone and execve in a copy of a multithreaded process, so it may only make
 * async-signal-safe calls on memory that is already there. Built once per
 * backend: every machine uses the same paths, each in its own mount ns. */
struct ns_plan;

/* cmd_nofile: the commands' RLIMIT_NOFILE (0: the agent's); the agent
 * itself gets MACHINE_AGENT_NOFILE. */
/* lowers: the overlay's lower layers, topmost first (ns_layers_resolve). */
int ns_plan_new(const char (*lowers)[PATH_MAX], int nlowers, const char *scratch, uint64_t disk_bytes,
		uint32_t cmd_nofile, const struct ns_seccomp *sc, struct ns_plan **out);
void ns_plan_free(struct ns_plan *p);

struct ns_spawned {
	pid_t pid;   /* the agent on the host */
	int pidfd;   /* CLOEXEC */
	int chan_fd; /* host end of the channel, CLOEXEC */
	/* The machine's overlay upper dir (O_PATH, CLOEXEC): its tmpfs lives
	 * only in the machine's mount namespace, detached from every tree, so
	 * this is the daemon's one way to it (snapshots). */
	int upper_fd;
};
struct ns_spawn_opts {
	uint32_t uid_base, gid_base; /* host ids guest root maps to: "0 base 65536" */
	bool oom_protect;	     /* set the agent's oom_score_adj to -1000 (needs CAP_SYS_RESOURCE) */
};
/* stderr_fd (-1: /dev/null) becomes the agent's fd 2.
 * Clones the sandbox into cg, maps ids, protects it from the OOM
 * killer, releases it and waits (at most timeout_ms) until it has exec'ed
 * /init or failed. On failure nothing is left behind. */
int ns_spawn(const struct ns_plan *p, const struct ns_spawn_opts *o, const struct ns_cgroups *cgs,
	     const struct ns_cg *cg, int stderr_fd, int timeout_ms, struct ns_spawned *out);
/* SIGKILL and reap (the pid namespace dies with its PID 1); closes pidfd
 * and upper_fd. */
void ns_spawn_kill(struct ns_spawned *s);
bool ns_spawn_exited(const struct ns_spawned *s);

/* ---- layers (ns_layers.c) -------------------------------------------- */

#define NS_MAX_LAYERS 16 /* an image and its snapshot ancestors */
/* The lower layers of the image in image_dir, topmost first: a snapshot
 * image's layer/, then its parent's (the `parent` file: a NAME beside it
 * or a path), down to a base image's rootfs/, which is last. -ENOENT when
 * a link is missing, -ELOOP past max. */
int ns_layers_resolve(const char *image_dir, char (*out)[PATH_MAX], int max, int *n);
/* One byte with fd attached (SCM_RIGHTS); the sender is the child between
 * clone and execve (async-signal-safe). -1 with errno on failure. */
int ns_layers_send_fd(int sock, int fd);
/* Its counterpart, not waiting (the byte was sent before execve); the fd
 * is close-on-exec. */
int ns_layers_recv_fd(int sock, int *fd);

/* ---- snapshots (ns_snapshot.c) --------------------------------------- */

/* Copies the upper dir (xattrs, whiteouts, owners, hard links kept) to
 * dest (which must not exist) while c's processes are frozen (v2
 * cgroup.freeze; v1: moved into a freezer cgroup of their own for the
 * copy). -EBUSY when they do not freeze in time, -EOPNOTSUPP without a
 * freezer. */
int ns_snapshot_take(const struct ns_cg *c, int upper_fd, const char *dest);

/* ---- host checks (ns_host.c) ----------------------------------------- */

/* Each says on stderr what is missing ("vmpoolfs: ns backend unavailable:
 * what (errno)"): machine.h's callers get only the errno. */
void ns_host_complain(const char *what, int err);
/* Root, user namespaces (one is tried), overlayfs. */
int ns_host_check(void);
/* The ids guest root maps to (the owner of rootfs, >= 65536; rootfs must
 * hold an executable /init) and whether agents can be OOM-protected. */
int ns_host_ids(const char *rootfs, struct ns_spawn_opts *ids);
/* An empty 0700 directory under /run or /tmp (malloc'ed path), after
 * removing those of daemons that died. */
int ns_host_make_scratch(char **out);

#endif
