/* The ns backend: opens (after ns_host.c's checks) and closes it, creates,
 * resets and destroys sandboxed agents (ns_spawn.c) with their cgroups
 * (ns_cgroup.c) and a client on their channel. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/vlog.h"
#include "proto/client.h"
#include "vmm/machine_ops.h"
#include "vmm/ns/ns.h"

struct ns_backend {
	struct machine_config cfg;
	struct ns_spawn_opts ids;
	char *scratch; /* empty dir, mount point of each machine's tmpfs (in its own mount ns) */
	struct ns_cgroups *cg;
	struct ns_seccomp sc;
	struct ns_plan *plan;
	struct ns_logs *logs;
	atomic_uint next_id;
};

struct ns_machine {
	struct ns_backend *b;
	uint32_t id;
	uint32_t gen; /* bumped by reset: each life gets a fresh cgroup */
	struct ns_spawned sp;
	struct ns_cg cg;
	struct vp_client *client;
	uint64_t boot_us;
	char log_path[300];
	atomic_bool end_noted; /* this life's end is in the log (is_alive may run on two threads) */
};

static void backend_close(void *backend);

/* Says what is missing on stderr, not in why: machine.c's line (errno and
 * why ns was chosen) is the one a caller shows. */
static int backend_open(const struct machine_config *cfg, void **out, char *why, size_t cap)
{
	(void)why;
	(void)cap;
	if (!cfg->image_dir || !cfg->mem_bytes || !cfg->disk_bytes || !cfg->pids_max)
		return -EINVAL;
	int err = ns_host_check();
	if (err)
		return err;
	struct ns_backend *b = calloc(1, sizeof *b);
	if (!b)
		return -ENOMEM;
	b->cfg = *cfg;
	b->cfg.kind = MACHINE_NS;
	b->cfg.image_dir = NULL; /* not kept: the caller owns the string */
	if (!b->cfg.ready_timeout_ms)
		b->cfg.ready_timeout_ms = 10000;
	atomic_init(&b->next_id, 1);
	/* A snapshot image stacks its layers over its parents' (ns_layers.c);
	 * the ids are the base rootfs's, the last layer. */
	char(*lowers)[PATH_MAX] = calloc(NS_MAX_LAYERS, PATH_MAX);
	int nlowers = 0;
	if (!lowers) {
		free(b);
		return -ENOMEM;
	}
	if ((err = ns_layers_resolve(cfg->image_dir, lowers, NS_MAX_LAYERS, &nlowers))) {
		ns_host_complain("the image's layers (rootfs/, or layer/ and parent)", err);
		goto fail;
	}
	if ((err = ns_host_ids(lowers[nlowers - 1], &b->ids)))
		goto fail;
	if ((err = ns_seccomp_build(&b->sc)))
		goto fail;
	if ((err = ns_cgroups_open(&b->cg))) {
		ns_host_complain("no usable cgroup memory+pids controllers (v1 or v2)", err);
		goto fail;
	}
	if (cfg->cpu_milli && !ns_cgroups_has_cpu(b->cg)) {
		err = -EOPNOTSUPP;
		ns_host_complain("no cgroup cpu controller for the CPU limit (-o cpus=0 runs without one)",
				 err);
		goto fail;
	}
	if ((err = ns_host_make_scratch(&b->scratch)))
		goto fail;
	/* Logs are for diagnosis: without a writable $TMPDIR the machines
	 * still work, their agents' stderr goes nowhere and `log` is empty. */
	if ((err = ns_logs_open(&b->logs))) {
		vlog_warn(NULL, "ns: no agent logs (runtime directory in $TMPDIR: %s)", strerror(-err));
		b->logs = NULL;
	}
	if ((err = ns_plan_new((const char(*)[PATH_MAX])lowers, nlowers, b->scratch, cfg->disk_bytes,
			       cfg->nofile_max, &b->sc, &b->plan)))
		goto fail;
	free(lowers);
	*out = b;
	return 0;
fail:
	free(lowers);
	backend_close(b);
	return err;
}

static void backend_close(void *backend)
{
	struct ns_backend *b = backend;
	if (!b)
		return;
	ns_plan_free(b->plan);
	ns_logs_close(b->logs);
	ns_cgroups_close(b->cg);
	if (b->scratch) {
		rmdir(b->scratch);
		free(b->scratch);
	}
	free(b);
}

/* Tears down one life of the machine: nothing of it survives. */
static void machine_stop(struct ns_machine *m)
{
	/* Fail pending calls first so no caller waits on a guest being killed. */
	if (m->client)
		vp_client_shutdown(m->client);
	ns_spawn_kill(&m->sp);
	vp_client_free(m->client);
	m->client = NULL;
	if (m->sp.chan_fd >= 0) /* only when no client took it over */
		close(m->sp.chan_fd);
	m->sp.chan_fd = -1;
	ns_cg_remove(&m->cg);
}

static int machine_start(struct ns_machine *m)
{
	struct ns_backend *b = m->b;
	atomic_store(&m->end_noted, false);
	uint64_t t0 = clock_mono_us();
	int timeout = (int)b->cfg.ready_timeout_ms;
	char name[32];
	snprintf(name, sizeof name, "m%u.%u", m->id, m->gen++);
	m->sp.pidfd = -1;
	m->sp.chan_fd = -1;
	m->sp.upper_fd = -1;
	const struct ns_cg_limits lim = {
		.mem_bytes = b->cfg.mem_bytes,
		.pids_max = b->cfg.pids_max,
		.cpu_milli = b->cfg.cpu_milli,
	};
	int err = ns_cg_create(b->cg, name, &lim, &m->cg);
	if (err)
		return err;
	int log_wr = -1;
	if (b->logs && (err = ns_log_attach(b->logs, m->id, &log_wr)))
		goto fail;
	err = ns_spawn(b->plan, &b->ids, b->cg, &m->cg, log_wr, timeout, &m->sp);
	if (log_wr >= 0)
		close(log_wr); /* the agent has its copy */
	if (err)
		goto fail;
	int fd = m->sp.chan_fd;
	m->sp.chan_fd = -1; /* the client owns it from here, even on failure */
	if ((err = vp_client_new(fd, &m->client))) {
		m->client = NULL;
		goto fail;
	}
	int left = timeout - (int)((clock_mono_us() - t0) / 1000u);
	if (left < 1)
		left = 1;
	if ((err = vp_client_handshake(m->client, left)))
		goto fail;
	m->boot_us = clock_mono_us() - t0;
	return 0;
fail:
	machine_stop(m);
	return err;
}

static int machine_create_ns(void *backend, void **out)
{
	struct ns_backend *b = backend;
	struct ns_machine *m = calloc(1, sizeof *m);
	if (!m)
		return -ENOMEM;
	m->b = b;
	m->id = atomic_fetch_add(&b->next_id, 1);
	if (b->logs)
		ns_log_path(b->logs, m->id, m->log_path, sizeof m->log_path);
	m->sp.pidfd = -1;
	m->sp.chan_fd = -1;
	int err = machine_start(m);
	if (err) {
		if (b->logs)
			ns_log_remove(b->logs, m->id);
		free(m);
		return err;
	}
	*out = m;
	return 0;
}

static int machine_reset_ns(void *machine)
{
	struct ns_machine *m = machine;
	machine_stop(m);
	return machine_start(m);
}

static void machine_destroy_ns(void *machine)
{
	struct ns_machine *m = machine;
	if (!m)
		return;
	machine_stop(m);
	if (m->b->logs)
		ns_log_remove(m->b->logs, m->id);
	free(m);
}

/* Once per life, when the agent is found gone: how it ended, in the
 * machine's log, where a user of the tree looks (pool/NAME/log) when a
 * command fails with "guest connection lost". WNOWAIT leaves the zombie
 * for ns_spawn_kill to reap; __WALL because the agent was cloned with no
 * exit signal. */
static void note_agent_end(struct ns_machine *m)
{
	if (atomic_load(&m->end_noted) || m->sp.pidfd < 0 || !m->log_path[0])
		return;
	siginfo_t si;
	memset(&si, 0, sizeof si);
	if (waitid((idtype_t)P_PIDFD, (id_t)m->sp.pidfd, &si, WEXITED | WNOHANG | WNOWAIT | __WALL) < 0 ||
	    si.si_pid == 0 || atomic_exchange(&m->end_noted, true))
		return;
	char how[96];
	if (si.si_code == CLD_EXITED)
		snprintf(how, sizeof how, "exited with status %d", si.si_status);
	else
		snprintf(how, sizeof how, "was killed by signal %d (%s)", si.si_status,
			 strsignal(si.si_status));
	uint64_t oom = 0;
	ns_cg_oom_kills(&m->cg, &oom);
	int fd = open(m->log_path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0)
		return;
	dprintf(fd,
		"[vmpoolfs: the agent (the machine's PID 1) %s; processes killed by the memory limit "
		"in this life: %llu]\n",
		how, (unsigned long long)oom);
	close(fd);
}

static bool machine_is_alive_ns(void *machine)
{
	struct ns_machine *m = machine;
	bool alive = m->client && vp_client_alive(m->client) && !ns_spawn_exited(&m->sp);
	if (!alive)
		note_agent_end(m);
	return alive;
}

/* SIGKILL to the agent through its pidfd (never a pid that could be
 * reused): it is PID 1 of the machine's pid namespace, so the kernel kills
 * every process of the machine with it, stopped ones too. Not reaped
 * here: machine_stop does that, on the thread that owns the machine's
 * life (pidfd stays open until then). */
static void machine_kill_ns(void *machine)
{
	struct ns_machine *m = machine;
	if (m->sp.pidfd >= 0)
		(void)syscall(SYS_pidfd_send_signal, m->sp.pidfd, SIGKILL, NULL, 0);
}

static struct vp_client *machine_client_ns(void *machine)
{
	struct ns_machine *m = machine;
	return m->client;
}

static const char *machine_log_path_ns(void *machine)
{
	struct ns_machine *m = machine;
	return m->log_path[0] ? m->log_path : NULL;
}

static void machine_get_info_ns(void *machine, struct machine_info *out)
{
	const struct ns_machine *m = machine;
	memset(out, 0, sizeof *out);
	out->id = m->id;
	out->host_pid = m->sp.pid;
	out->boot_us = m->boot_us;
	if (m->cg.ndirs > 0)
		ns_cg_oom_kills(&m->cg, &out->oom_kills);
}

/* The writable layer, frozen while copied (ns_snapshot.c), as the new
 * image's layer/; its `parent` and manifest are the caller's. */
static int machine_snapshot_ns(void *machine, const char *dir)
{
	struct ns_machine *m = machine;
	if (m->sp.upper_fd < 0 || !m->client)
		return -ENOTCONN;
	char dest[PATH_MAX];
	if (snprintf(dest, sizeof dest, "%s/layer", dir) >= (int)sizeof dest)
		return -ENAMETOOLONG;
	return ns_snapshot_take(&m->cg, m->sp.upper_fd, dest);
}

static void backend_reason(const void *backend, char *buf, size_t cap)
{
	(void)backend; /* the choice says it all */
	(void)buf;
	(void)cap;
}

/* The agents' logs have a runtime directory, but it is not the backend's
 * to show (machine.h: ns has none). */
static const char *backend_runtime_dir(const void *backend)
{
	(void)backend;
	return NULL;
}

const struct machine_ops ns_machine_ops = {
	.name = "ns",
	.open = backend_open,
	.close = backend_close,
	.reason = backend_reason,
	.runtime_dir = backend_runtime_dir,
	.create = machine_create_ns,
	.reset = machine_reset_ns,
	.destroy = machine_destroy_ns,
	.is_alive = machine_is_alive_ns,
	.kill = machine_kill_ns,
	.client = machine_client_ns,
	.log_path = machine_log_path_ns,
	.get_info = machine_get_info_ns,
	.snapshot = machine_snapshot_ns,
};
