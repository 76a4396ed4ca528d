/* machine.h over the backends' machine_ops tables: resolves MACHINE_AUTO,
 * keeps the choice and its reason, and forwards every machine call to the
 * chosen backend's table. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/client.h"
#include "vmm/kvm/machine_kvm.h"
#include "vmm/machine.h"
#include "vmm/machine_ops.h"
#include "vmm/ns/ns.h"

#define WHY_CAP 320

struct machine_backend {
	const struct machine_ops *ops;
	void *impl;
	char reason[2 * WHY_CAP + 64]; /* detection + a template failure */
};

struct machine {
	const struct machine_ops *ops;
	void *impl;
};

void machine_config_defaults(struct machine_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->kind = MACHINE_AUTO;
	cfg->image_dir = NULL; /* the caller names the built image */
	cfg->mem_bytes = 2ull << 30;
	cfg->disk_bytes = 1ull << 30;
	cfg->pids_max = 1024;
	cfg->cpu_milli = 1000;
	cfg->nofile_max = 1024;
	cfg->ready_timeout_ms = 10000;
}

/* Opens `ops` chosen because of `chosen` (copied into the reason first:
 * a failure message quotes it). A backend with nothing to say about its
 * failure gets a line naming it, the errno and why it was chosen. */
static int open_with(struct machine_backend *b, const struct machine_ops *ops,
		     const struct machine_config *cfg, const char *chosen, char *why, size_t cap)
{
	if (chosen != b->reason)
		snprintf(b->reason, sizeof b->reason, "%s", chosen);
	why[0] = '\0';
	int rc = ops->open(cfg, &b->impl, why, cap);
	if (rc) {
		if (!why[0])
			snprintf(why, cap, "%s backend: %s (chosen because: %s)", ops->name, strerror(-rc),
				 b->reason);
		return rc;
	}
	b->ops = ops;
	ops->reason(b->impl, b->reason, sizeof b->reason);
	return 0;
}

/* AUTO: kvm only where the guest kernel runs natively and the template
 * really boots; anything else is ns, and the reason says why not kvm. */
static int open_auto(struct machine_backend *b, const struct machine_config *cfg, char *why, size_t cap)
{
	char det[WHY_CAP], err[WHY_CAP];
	if (kvm_detect_native(NULL, NULL, det, sizeof det) == 0) {
		if (open_with(b, &kvm_machine_ops, cfg, det, err, sizeof err) == 0)
			return 0;
		snprintf(b->reason, sizeof b->reason, "%s, but the kvm template did not boot: %s", det, err);
	} else {
		snprintf(b->reason, sizeof b->reason, "%s", det);
	}
	return open_with(b, &ns_machine_ops, cfg, b->reason, why, cap);
}

int machine_backend_open_why(const struct machine_config *cfg, struct machine_backend **out, char *why,
			     size_t cap)
{
	char scratch[WHY_CAP];
	if (!why || !cap) {
		why = scratch;
		cap = sizeof scratch;
	}
	why[0] = '\0';
	if (cfg->kind != MACHINE_AUTO && cfg->kind != MACHINE_NS && cfg->kind != MACHINE_KVM) {
		snprintf(why, cap, "unknown backend kind %d", (int)cfg->kind);
		return -EINVAL;
	}
	struct machine_backend *b = calloc(1, sizeof *b);
	if (!b)
		return -ENOMEM;
	static const char requested[] = "requested in the configuration";
	int rc;
	if (cfg->kind == MACHINE_KVM)
		rc = open_with(b, &kvm_machine_ops, cfg, requested, why, cap);
	else if (cfg->kind == MACHINE_NS)
		rc = open_with(b, &ns_machine_ops, cfg, requested, why, cap);
	else
		rc = open_auto(b, cfg, why, cap);
	if (rc) {
		free(b);
		return rc;
	}
	*out = b;
	return 0;
}

int machine_backend_open(const struct machine_config *cfg, struct machine_backend **out)
{
	return machine_backend_open_why(cfg, out, NULL, 0);
}

void machine_backend_close(struct machine_backend *b)
{
	if (!b)
		return;
	b->ops->close(b->impl);
	free(b);
}

const char *machine_backend_name(const struct machine_backend *b)
{
	return b->ops->name;
}

const char *machine_backend_reason(const struct machine_backend *b)
{
	return b->reason;
}

const char *machine_backend_runtime_dir(const struct machine_backend *b)
{
	return b->ops->runtime_dir(b->impl);
}

int machine_create(struct machine_backend *b, struct machine **out)
{
	struct machine *m = calloc(1, sizeof *m);
	if (!m)
		return -ENOMEM;
	m->ops = b->ops;
	int err = b->ops->create(b->impl, &m->impl);
	if (err) {
		free(m);
		return err;
	}
	*out = m;
	return 0;
}

int machine_reset(struct machine *m)
{
	return m->ops->reset(m->impl);
}

void machine_destroy(struct machine *m)
{
	if (!m)
		return;
	m->ops->destroy(m->impl);
	free(m);
}

bool machine_is_alive(struct machine *m)
{
	return m && m->ops->is_alive(m->impl);
}

void machine_kill(struct machine *m)
{
	if (m->ops->kill)
		m->ops->kill(m->impl);
	vp_client_shutdown(m->ops->client(m->impl));
}

struct vp_client *machine_client(struct machine *m)
{
	return m->ops->client(m->impl);
}

const char *machine_log_path(struct machine *m)
{
	return m->ops->log_path(m->impl);
}

int machine_snapshot(struct machine *m, const char *dir)
{
	return m->ops->snapshot ? m->ops->snapshot(m->impl, dir) : -EOPNOTSUPP;
}

void machine_get_info(struct machine *m, struct machine_info *out)
{
	m->ops->get_info(m->impl, out);
}
