/* Backend dispatch for machine.h: resolves MACHINE_AUTO, keeps the choice
 * and its reason, and forwards machine calls to the chosen backend. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/kvm/machine_kvm.h"
#include "vmm/machine.h"
#include "vmm/ns/ns.h"

#define WHY_CAP 320

struct machine_backend {
	enum machine_kind kind; /* resolved: MACHINE_NS or MACHINE_KVM */
	char reason[2 * WHY_CAP + 64]; /* detection + a template failure */
	struct ns_backend *ns;
	struct kvm_backend *kvm;
};

struct machine {
	struct machine_backend *b;
	struct ns_machine *ns;
	struct kvm_machine *kvm;
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

static int open_kvm(struct machine_backend *b, const struct machine_config *cfg, const char *why_kvm,
		    char *why, size_t cap)
{
	int rc = kvm_backend_open(cfg, &b->kvm, why, cap);
	if (rc)
		return rc;
	b->kind = MACHINE_KVM;
	snprintf(b->reason, sizeof b->reason, "%s; template booted to READY in %llu ms", why_kvm,
		 (unsigned long long)(kvm_backend_template_us(b->kvm) / 1000));
	return 0;
}

static int open_ns(struct machine_backend *b, const struct machine_config *cfg, char *why, size_t cap)
{
	b->kind = MACHINE_NS;
	int rc = ns_backend_open(cfg, &b->ns);
	if (rc)
		snprintf(why, cap, "ns backend: %s (chosen because: %s)", strerror(-rc), b->reason);
	return rc;
}

/* AUTO: kvm only where the guest kernel runs natively and the template
 * really boots; anything else is ns, and the reason says why not kvm. */
static int open_auto(struct machine_backend *b, const struct machine_config *cfg, char *why, size_t cap)
{
	char det[WHY_CAP], err[WHY_CAP];
	if (kvm_detect_native(NULL, NULL, det, sizeof det) == 0) {
		if (open_kvm(b, cfg, det, err, sizeof err) == 0)
			return 0;
		snprintf(b->reason, sizeof b->reason, "%s, but the kvm template did not boot: %s", det, err);
	} else {
		snprintf(b->reason, sizeof b->reason, "%s", det);
	}
	return open_ns(b, cfg, why, cap);
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
	int rc;
	if (cfg->kind == MACHINE_KVM) {
		rc = open_kvm(b, cfg, "requested in the configuration", why, cap);
	} else if (cfg->kind == MACHINE_NS) {
		snprintf(b->reason, sizeof b->reason, "requested in the configuration");
		rc = open_ns(b, cfg, why, cap);
	} else {
		rc = open_auto(b, cfg, why, cap);
	}
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
	if (b->kind == MACHINE_KVM)
		kvm_backend_close(b->kvm);
	else
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

const char *machine_backend_runtime_dir(const struct machine_backend *b)
{
	return b->kind == MACHINE_KVM ? kvm_backend_runtime_dir(b->kvm) : NULL;
}

int machine_create(struct machine_backend *b, struct machine **out)
{
	struct machine *m = calloc(1, sizeof *m);
	if (!m)
		return -ENOMEM;
	m->b = b;
	int err = b->kind == MACHINE_KVM ? kvm_machine_create(b->kvm, &m->kvm)
					 : ns_machine_create(b->ns, &m->ns);
	if (err) {
		free(m);
		return err;
	}
	*out = m;
	return 0;
}

int machine_reset(struct machine *m)
{
	return m->kvm ? kvm_machine_reset(m->kvm) : ns_machine_reset(m->ns);
}

void machine_destroy(struct machine *m)
{
	if (!m)
		return;
	if (m->kvm)
		kvm_machine_destroy(m->kvm);
	else
		ns_machine_destroy(m->ns);
	free(m);
}

bool machine_is_alive(struct machine *m)
{
	if (!m)
		return false;
	return m->kvm ? kvm_machine_is_alive(m->kvm) : ns_machine_is_alive(m->ns);
}

struct vp_client *machine_client(struct machine *m)
{
	return m->kvm ? kvm_machine_client(m->kvm) : ns_machine_client(m->ns);
}

const char *machine_log_path(struct machine *m)
{
	return m->kvm ? kvm_machine_log_path(m->kvm) : ns_machine_log_path(m->ns);
}

void machine_get_info(struct machine *m, struct machine_info *out)
{
	if (m->kvm)
		kvm_machine_get_info(m->kvm, out);
	else
		ns_machine_get_info(m->ns, out);
}
