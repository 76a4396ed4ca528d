/* Machines: an isolated guest with an agent channel (docs/design.md §3).
 *
 * A backend (ns or kvm) is opened once from a machine_config; it
 * creates machines that are ready (agent said READY, handshake done) when
 * machine_create returns. machine_reset brings a machine back to pristine
 * (no file, process or memory content of the previous user survives);
 * machine_destroy frees everything it holds (processes, mounts, cgroups,
 * fds). All functions return 0 or -errno; thread-safe across machines, and
 * one machine is used by one thread at a time for create/reset/destroy. */
#ifndef VMPOOL_MACHINE_H
#define VMPOOL_MACHINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vp_client;

enum machine_kind { MACHINE_AUTO = 0, MACHINE_NS, MACHINE_KVM };

struct machine_config {
	enum machine_kind kind;
	/* built image: rootfs/ (tree), vmlinuz, initramfs.cpio.gz; or a
	 * snapshot image: `parent` (a NAME beside it, or a path) and layer/ */
	const char *image_dir;
	uint64_t mem_bytes;	   /* memory limit per machine (cgroup / guest RAM) */
	uint64_t disk_bytes;	   /* size of the writable layer (tmpfs upper) */
	uint32_t pids_max;	   /* cgroup pids limit */
	uint32_t cpu_milli;	   /* CPU time in thousandths of a CPU (cgroup cpu quota); 0 = none */
	uint32_t nofile_max;	   /* RLIMIT_NOFILE (soft and hard) of every command's process */
	uint32_t ready_timeout_ms; /* create fails with -ETIMEDOUT past this */
};
/* The ns agent's own RLIMIT_NOFILE, beside its commands' nofile_max: each
 * root/ node a host tool has looked up is an open fd in the agent, and an
 * `ls -lR root/` of the busybox image alone needs ~400 (with the agent at
 * the commands' 256 it failed with EMFILE and the machine with it).
 * Counted once per machine in the host's file-max budget. */
#define MACHINE_AGENT_NOFILE 8192u

/* auto, 2 GiB mem, 1 GiB disk, 1024 pids, 1 CPU, 1024 files per process, 10 s */
void machine_config_defaults(struct machine_config *cfg);

struct machine_backend;
struct machine;

/* Resolves MACHINE_AUTO (kvm where this host's KVM runs the guest kernel
 * natively and the kvm template boots, else ns); the reason for the choice
 * is kept for MNT/config. A kvm backend boots a template machine to the
 * agent's READY and snapshots it before this returns (bounded by
 * ready_timeout_ms: -ETIMEDOUT). */
int machine_backend_open(const struct machine_config *cfg, struct machine_backend **out);
/* The same; on failure `why` (cap bytes) gets a line saying what went
 * wrong (e.g. "no READY from the guest agent within 10000 ms; serial: ..."). */
int machine_backend_open_why(const struct machine_config *cfg, struct machine_backend **out, char *why,
			     size_t cap);
void machine_backend_close(struct machine_backend *b);		     /* after every machine is destroyed */
const char *machine_backend_name(const struct machine_backend *b);   /* "ns" | "kvm" */
const char *machine_backend_reason(const struct machine_backend *b); /* why this backend */
/* kvm: the backend's private runtime directory (snapshot, serial logs),
 * removed at close; ns: NULL. */
const char *machine_backend_runtime_dir(const struct machine_backend *b);

int machine_create(struct machine_backend *b, struct machine **out);
int machine_reset(struct machine *m);
void machine_destroy(struct machine *m); /* safe on NULL */
/* ns: the first time it finds the agent gone, it also says how it ended
 * in the machine's log (machine_log_path). */
bool machine_is_alive(struct machine *m);
/* A hung guest: kills it host-side (ns: SIGKILL to the agent, PID 1 of the
 * machine, so the kernel ends every process of it; any backend: the
 * channel is shut down, failing every pending call). The machine is then
 * not alive, and its release destroys and replaces it. From any thread
 * holding the machine, as is_alive. */
void machine_kill(struct machine *m);
struct vp_client *machine_client(struct machine *m); /* valid until reset/destroy */
/* The machine's log file, emptied at reset, capped at 1 MiB per life:
 * kvm: the serial console (guest kernel log); ns: the agent's stderr.
 * Valid until destroy. */
const char *machine_log_path(struct machine *m);

/* The machine's state now, written as the own part of a new image into
 * `dir` (an empty directory that becomes IMAGES/NAME): ns: `layer/`, the
 * machine's writable layer, copied while its cgroup is frozen, which
 * machines of the new image stack over their parent's layers. From the
 * thread holding the machine, with no command running. -EOPNOTSUPP where
 * the backend has none (kvm). */
int machine_snapshot(struct machine *m, const char *dir);

struct machine_info {
	uint32_t id;	    /* unique per backend, for logs */
	int32_t host_pid;   /* agent's pid on the host (ns), VMM thread owner (kvm) */
	uint64_t oom_kills; /* processes killed by the memory limit since create/reset */
	uint64_t boot_us;   /* duration of the last create or reset */
};
void machine_get_info(struct machine *m, struct machine_info *out);

#endif
