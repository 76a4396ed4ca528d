/* Backend dispatch for machine.h: resolves MACHINE_AUTO, keeps the choice
 * and its reason, and forwards machine calls to the chosen backend. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/machine.h"
#include "vmm/ns.h"

struct machine_backend {
	enum machine_kind kind; /* resolved: MACHINE_NS or MACHINE_KVM */
	char reason[160];
	struct ns_backend *ns;
};

struct machine {
	struct machine_backend *b;
	struct ns_machine *ns;
};

void machine_config_defaults(struct machine_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->kind = MACHINE_AUTO;
	cfg->image_dir = NULL; /* the caller names the built image */
	cfg->mem_bytes = 2ull << 30;
	cfg->disk_bytes = 1ull << 30;
	cfg->pids_max = 1024;
	cfg->ready_timeout_ms = 10000;
}

int machine_backend_open(const struct machine_config *cfg, struct machine_backend **out)
{
	const char *reason;
	switch (cfg->kind) {
	case MACHINE_KVM:
		/* The monitor is not part of this build yet. */
		return -ENOSYS;
	case MACHINE_AUTO:
		reason = "kvm monitor not available in this build";
		break;
	case MACHINE_NS:
		reason = "requested in the configuration";
		break;
	default:
		return -EINVAL;
	}
	struct machine_backend *b = calloc(1, sizeof *b);
	if (!b)
		return -ENOMEM;
	b->kind = MACHINE_NS;
	snprintf(b->reason, sizeof b->reason, "%s", reason);
	int err = ns_backend_open(cfg, &b->ns);
	if (err) {
		free(b);
		return err;
	}
	*out = b;
	return 0;
}

void machine_backend_close(struct machine_backend *b)
{
	if (!b)
		return;
	ns_backend_close(b->ns);
	free(b);
}

const char *machine_backend_name(const struct machine_backend *b)
{
	return b->kind == MACHINE_KVM ? "kvm" : "ns";
}

const char *machine_backend_reason(const struct machine_backend *b)
{
	return b->reason;
}

int machine_create(struct machine_backend *b, struct machine **out)
{
	struct machine *m = calloc(1, sizeof *m);
	if (!m)
		return -ENOMEM;
	m->b = b;
	int err = ns_machine_create(b->ns, &m->ns);
	if (err) {
		free(m);
		return err;
	}
	*out = m;
	return 0;
}

int machine_reset(struct machine *m)
{
	return ns_machine_reset(m->ns);
}

void machine_destroy(struct machine *m)
{
	if (!m)
		return;
	ns_machine_destroy(m->ns);
	free(m);
}

bool machine_is_alive(struct machine *m)
{
	return m && ns_machine_is_alive(m->ns);
}

struct vp_client *machine_client(struct machine *m)
{
	return ns_machine_client(m->ns);
}

void machine_get_info(struct machine *m, struct machine_info *out)
{
	ns_machine_get_info(m->ns, out);
}
