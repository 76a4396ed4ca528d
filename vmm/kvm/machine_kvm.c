/* The kvm backend and its machines (machine_kvm.h). The backend owns a
 * private runtime directory (rundir.h: removed at close, or by the next
 * daemon if this one is killed):
 *   template.log        serial log of the template boot
 *   snapshot/           memory + state, taken after the agent's READY
 *   machine-<id>.log    each machine's serial log (emptied at reset)
 * A machine is a copy-on-write restore of the snapshot: its RAM starts as
 * the snapshot's pages (MAP_PRIVATE), so a reset, which restores again,
 * keeps nothing of the previous user. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/clock.h"
#include "proto/client.h"
#include "vmm/kvm/machine_kvm.h"
#include "vmm/machine_ops.h"
#include "vmm/rundir.h"

#define MEM_MIN (2ull << 20) /* what vm.c takes at least */
#define DIR_CAP 448	     /* leaves room for the names inside it */
#define PATH_CAP 512

struct kvm_backend {
	char dir[DIR_CAP];   /* the runtime directory */
	char snap[PATH_CAP]; /* dir/snapshot */
	uint32_t ready_timeout_ms;
	uint64_t template_us;
	atomic_uint next_id;
	struct kvm_reaper reaper;
};

struct kvm_machine {
	struct kvm_backend *b;
	uint32_t id;
	int log_fd;
	char log_path[PATH_CAP];
	uint64_t boot_us;
	struct kvm_live *live; /* heap: a reset hands the old one to the reaper */
};

static int runtime_dir(struct kvm_backend *b, char *why, size_t cap)
{
	int rc = rundir_make("kvm", b->dir, sizeof b->dir);
	if (rc) {
		snprintf(why, cap, "kvm runtime directory in $TMPDIR: %s", strerror(-rc));
		return rc;
	}
	snprintf(b->snap, sizeof b->snap, "%s/snapshot", b->dir); /* fits: dir is shorter */
	if (mkdir(b->snap, 0700) < 0) {
		rc = -errno;
		snprintf(why, cap, "%s: %s", b->snap, strerror(-rc));
	}
	return rc;
}

/* A kernel that is not ready in time on a host where it runs emulated
 * (explicit MACHINE_KVM on PVM): say so, it is the likely cause. */
static void add_native_hint(char *why, size_t cap)
{
	char det[256];
	size_t len = strlen(why);
	if (kvm_detect_native(NULL, NULL, det, sizeof det) != 0 && len < cap)
		snprintf(why + len, cap - len, " (%s)", det);
}

static int backend_open(const struct machine_config *cfg, void **out, char *why, size_t cap)
{
	why[0] = '\0';
	/* RAM is one slot below the MMIO hole: more than that is capped. */
	uint64_t mem = cfg->mem_bytes < KVM_VM_MEM_MAX ? cfg->mem_bytes : KVM_VM_MEM_MAX;
	mem &= ~0xfffull;
	if (mem < MEM_MIN || !cfg->image_dir) {
		snprintf(why, cap, "%s", !cfg->image_dir ? "no image directory" : "guest RAM under 2 MiB");
		return -EINVAL;
	}
	int rc = kvm_detect_usable(NULL, why, cap);
	if (rc)
		return rc;
	struct kvm_backend *b = calloc(1, sizeof *b);
	if (!b)
		return -ENOMEM;
	b->ready_timeout_ms = cfg->ready_timeout_ms;
	rc = kvm_reaper_start(&b->reaper);
	if (rc) {
		snprintf(why, cap, "reaper thread: %s", strerror(-rc));
		free(b);
		return rc;
	}
	rc = runtime_dir(b, why, cap);
	char log[PATH_CAP];
	snprintf(log, sizeof log, "%s/template.log", b->dir);
	uint64_t t0 = clock_mono_us();
	if (!rc) {
		struct kvm_template_cfg t = { cfg->image_dir, mem, cfg->ready_timeout_ms, log, b->snap };
		rc = kvm_template_snapshot(&t, why, cap);
	}
	if (rc) {
		kvm_reaper_stop(&b->reaper);
		rundir_remove(b->dir);
		free(b);
		if (rc == -ETIMEDOUT)
			add_native_hint(why, cap);
		return rc;
	}
	b->template_us = clock_mono_us() - t0;
	*out = b;
	return 0;
}

static void backend_close(void *backend)
{
	struct kvm_backend *b = backend;
	if (!b)
		return;
	kvm_reaper_stop(&b->reaper);
	rundir_remove(b->dir);
	free(b);
}

static const char *backend_runtime_dir(const void *backend)
{
	const struct kvm_backend *b = backend;
	return b->dir;
}

static void backend_reason(const void *backend, char *buf, size_t cap)
{
	const struct kvm_backend *b = backend;
	size_t len = strlen(buf);
	if (len < cap)
		snprintf(buf + len, cap - len, "; template booted to READY in %llu ms",
			 (unsigned long long)(b->template_us / 1000));
}

/* A new life for m from the snapshot: VM, devices, vCPU thread, client. */
static int restore(struct kvm_machine *m)
{
	struct kvm_live *l = calloc(1, sizeof *l);
	if (!l)
		return -ENOMEM;
	l->parts = (struct kvm_snap_machine){ &l->vm, &l->ser, &l->con };
	uint64_t t0 = clock_mono_us();
	int host_fd = -1;
	int rc = kvm_snapshot_restore(m->b->snap, NULL, &l->parts, m->log_fd, &host_fd);
	if (!rc) {
		l->vm_up = true;
		l->note_end = true;
		rc = kvm_live_start(l, host_fd, true, m->b->ready_timeout_ms);
	}
	if (rc) {
		kvm_live_stop(l);
		free(l);
		l = NULL;
	}
	m->live = l;
	m->boot_us = clock_mono_us() - t0;
	return rc;
}

static int machine_create_kvm(void *backend, void **out)
{
	struct kvm_backend *b = backend;
	struct kvm_machine *m = calloc(1, sizeof *m);
	if (!m)
		return -ENOMEM;
	m->b = b;
	m->id = atomic_fetch_add(&b->next_id, 1) + 1;
	snprintf(m->log_path, sizeof m->log_path, "%s/machine-%u.log", b->dir, m->id);
	/* O_APPEND: the UART writes at the end, also after a reset empties it. */
	m->log_fd = open(m->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
	int rc = m->log_fd < 0 ? -errno : restore(m);
	if (rc) {
		if (m->log_fd >= 0) {
			close(m->log_fd);
			unlink(m->log_path);
		}
		free(m);
		return rc;
	}
	*out = m;
	return 0;
}

static int machine_reset_kvm(void *machine)
{
	struct kvm_machine *m = machine;
	if (m->live)
		kvm_reaper_release(&m->b->reaper, m->live);
	m->live = NULL;
	if (ftruncate(m->log_fd, 0) < 0)
		return -errno;
	return restore(m);
}

static void machine_destroy_kvm(void *machine)
{
	struct kvm_machine *m = machine;
	if (!m)
		return;
	if (m->live) {
		kvm_live_stop(m->live);
		free(m->live);
	}
	close(m->log_fd);
	unlink(m->log_path);
	free(m);
}

static bool machine_is_alive_kvm(void *machine)
{
	struct kvm_machine *m = machine;
	return m->live && kvm_live_alive(m->live);
}

static struct vp_client *machine_client_kvm(void *machine)
{
	const struct kvm_machine *m = machine;
	return m->live ? m->live->client : NULL;
}

static void machine_get_info_kvm(void *machine, struct machine_info *out)
{
	const struct kvm_machine *m = machine;
	memset(out, 0, sizeof *out);
	out->id = m->id;
	out->host_pid = (int32_t)getpid(); /* the VMM is a thread of this process */
	out->oom_kills = 0;		   /* the guest's own OOM killer is not visible here */
	out->boot_us = m->boot_us;
}

static const char *machine_log_path_kvm(void *machine)
{
	const struct kvm_machine *m = machine;
	return m->log_path;
}

const struct machine_ops kvm_machine_ops = {
	.name = "kvm",
	.open = backend_open,
	.close = backend_close,
	.reason = backend_reason,
	.runtime_dir = backend_runtime_dir,
	.create = machine_create_kvm,
	.reset = machine_reset_kvm,
	.destroy = machine_destroy_kvm,
	.is_alive = machine_is_alive_kvm,
	.client = machine_client_kvm,
	.log_path = machine_log_path_kvm,
	.get_info = machine_get_info_kvm,
};
