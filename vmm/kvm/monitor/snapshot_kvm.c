/* vCPU, irqchip, PIT and clock state to and from snapshot sections
 * (snapshot_kvm.h). */
#include "vmm/kvm/monitor/snapshot_kvm.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/kvm/monitor/snapfile.h"
#include "vmm/kvm/monitor/vm.h"

enum {
	TAG_REGS = 1,
	TAG_SREGS,
	TAG_FPU,
	TAG_XSAVE,
	TAG_XCRS,
	TAG_MSRS,
	TAG_LAPIC,
	TAG_EVENTS,
	TAG_MP_STATE,
	TAG_DEBUGREGS,
	TAG_PIC_MASTER,
	TAG_PIC_SLAVE,
	TAG_IOAPIC,
	TAG_PIT,
	TAG_CLOCK,
};

/* What a 64-bit guest kernel (and our conformance guest) keeps in MSRs
 * beyond sregs: syscall entry, segment bases, TSC, PAT, MISC_ENABLE, the
 * paravirtual clock and friends. TSC comes before TSC_DEADLINE, which is
 * last (its write is relative to the TSC and needs the LAPIC restored).
 * Only those this KVM lists (KVM_GET_MSR_INDEX_LIST) are saved. */
static const uint32_t wanted_msrs[] = {
	0x00000174, 0x00000175, 0x00000176,		/* SYSENTER_CS/ESP/EIP */
	0xc0000080,					/* EFER */
	0xc0000081, 0xc0000082, 0xc0000083, 0xc0000084, /* STAR LSTAR CSTAR SFMASK */
	0xc0000100, 0xc0000101, 0xc0000102,		/* FS_BASE GS_BASE KERNEL_GS_BASE */
	0xc0000103,					/* TSC_AUX */
	0x00000277,					/* PAT */
	0x000001a0,					/* MISC_ENABLE */
	0x00000010,					/* TSC */
	0x0000003b,					/* TSC_ADJUST */
	0x4b564d00, 0x4b564d01,				/* KVM wall clock, system time (new) */
	0x4b564d02, 0x4b564d03, 0x4b564d04,		/* async PF, steal time, PV EOI */
	0x000006e0,					/* TSC_DEADLINE */
};
#define NWANTED (sizeof(wanted_msrs) / sizeof(wanted_msrs[0]))

static int neg_errno(void)
{
	return errno ? -errno : -EIO;
}

static bool msr_wanted(uint32_t index)
{
	for (size_t i = 0; i < NWANTED; i++)
		if (wanted_msrs[i] == index)
			return true;
	return false;
}

/* The wanted MSRs this KVM supports, in wanted order. */
static int supported_msrs(struct kvm_vm *vm, uint32_t *out, uint32_t *n)
{
	struct kvm_msr_list probe = { .nmsrs = 0 };
	/* E2BIG with nmsrs set to the real count is the expected answer. */
	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return neg_errno();
	struct kvm_msr_list *list = calloc(1, sizeof(*list) + probe.nmsrs * sizeof(uint32_t));
	if (!list)
		return -ENOMEM;
	list->nmsrs = probe.nmsrs;
	int rc = ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, list) < 0 ? neg_errno() : 0;
	*n = 0;
	for (size_t w = 0; !rc && w < NWANTED; w++)
		for (uint32_t i = 0; i < list->nmsrs; i++)
			if (list->indices[i] == wanted_msrs[w]) {
				out[(*n)++] = wanted_msrs[w];
				break;
			}
	free(list);
	return rc;
}

/* struct kvm_msrs ends in a flexible array: room for NWANTED entries
 * after it, as a union so no compiler sees a sized member follow it. */
union msrs {
	struct kvm_msrs hdr;
	uint8_t room[sizeof(struct kvm_msrs) + NWANTED * sizeof(struct kvm_msr_entry)];
};

static int save_msrs(struct kvm_vm *vm, struct snapfile_w *w)
{
	uint32_t idx[NWANTED], n;
	int rc = supported_msrs(vm, idx, &n);
	if (rc)
		return rc;
	union msrs m;
	memset(&m, 0, sizeof(m));
	m.hdr.nmsrs = n;
	for (uint32_t i = 0; i < n; i++)
		m.hdr.entries[i].index = idx[i];
	int got = ioctl(vm->vcpu_fd, KVM_GET_MSRS, &m);
	if (got < 0)
		return neg_errno();
	if ((uint32_t)got != n)
		return -EIO; /* listed but unreadable: the snapshot would be incomplete */
	snapfile_w_add(w, TAG_MSRS, m.hdr.entries, n * (uint32_t)sizeof(m.hdr.entries[0]));
	return 0;
}

static int restore_msrs(struct kvm_vm *vm, const struct snapfile_r *r)
{
	const struct snapfile_sect *s = snapfile_find(r, TAG_MSRS);
	if (!s)
		return -EBADMSG;
	union msrs m;
	memset(&m, 0, sizeof(m));
	if (s->len % sizeof(m.hdr.entries[0]) || s->len / sizeof(m.hdr.entries[0]) > NWANTED)
		return -EBADMSG;
	m.hdr.nmsrs = s->len / (uint32_t)sizeof(m.hdr.entries[0]);
	memcpy(m.hdr.entries, s->data, s->len);
	/* Only MSRs we would have saved: a crafted file sets nothing else. */
	for (uint32_t i = 0; i < m.hdr.nmsrs; i++)
		if (!msr_wanted(m.hdr.entries[i].index) || m.hdr.entries[i].reserved)
			return -EBADMSG;
	int set = ioctl(vm->vcpu_fd, KVM_SET_MSRS, &m);
	if (set < 0)
		return neg_errno();
	return (uint32_t)set == m.hdr.nmsrs ? 0 : -EINVAL;
}

/* XSAVE when KVM has it (AVX state and friends), sized as KVM says (AMX
 * makes it larger than struct kvm_xsave); the legacy FPU area otherwise. */
static int xsave_size(struct kvm_vm *vm)
{
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) <= 0)
		return 0;
	int sz = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	return sz > (int)sizeof(struct kvm_xsave) ? sz : (int)sizeof(struct kvm_xsave);
}

static int save_fpu(struct kvm_vm *vm, struct snapfile_w *w)
{
	int sz = xsave_size(vm);
	if (sz > 0) {
		void *x = calloc(1, (size_t)sz);
		if (!x)
			return -ENOMEM;
		unsigned long req = sz > (int)sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE;
		int rc = ioctl(vm->vcpu_fd, req, x) < 0 ? neg_errno() : 0;
		if (!rc)
			snapfile_w_add(w, TAG_XSAVE, x, (uint32_t)sz);
		free(x);
		if (rc != -EINVAL && rc != -ENOTTY)
			return rc;
		/* Listed but refused (PVM may): fall back to the FPU area. */
	}
	struct kvm_fpu fpu;
	memset(&fpu, 0, sizeof(fpu));
	if (ioctl(vm->vcpu_fd, KVM_GET_FPU, &fpu) < 0)
		return neg_errno();
	snapfile_w_add(w, TAG_FPU, &fpu, sizeof(fpu));
	return 0;
}

static int restore_fpu(struct kvm_vm *vm, const struct snapfile_r *r)
{
	const struct snapfile_sect *x = snapfile_find(r, TAG_XSAVE);
	if (x) {
		if ((int)x->len != xsave_size(vm))
			return -EBADMSG; /* another host's layout, or damage */
		void *buf = malloc(x->len);
		if (!buf)
			return -ENOMEM;
		memcpy(buf, x->data, x->len);
		int rc = ioctl(vm->vcpu_fd, KVM_SET_XSAVE, buf) < 0 ? neg_errno() : 0;
		free(buf);
		return rc;
	}
	struct kvm_fpu fpu;
	int rc = snapfile_get(r, TAG_FPU, &fpu, sizeof(fpu));
	if (rc)
		return -EBADMSG;
	return ioctl(vm->vcpu_fd, KVM_SET_FPU, &fpu) < 0 ? neg_errno() : 0;
}

/* A fixed-size state read with one ioctl into a section. */
static int save_one(int fd, unsigned long req, void *buf, size_t len, struct snapfile_w *w, uint32_t tag)
{
	if (ioctl(fd, req, buf) < 0)
		return neg_errno();
	snapfile_w_add(w, tag, buf, (uint32_t)len);
	return 0;
}

static int restore_one(int fd, unsigned long req, void *buf, size_t len, const struct snapfile_r *r,
		       uint32_t tag)
{
	if (snapfile_get(r, tag, buf, (uint32_t)len))
		return -EBADMSG; /* absent or the wrong size: not what we wrote */
	return ioctl(fd, req, buf) < 0 ? neg_errno() : 0;
}

/* Room for any one of the states, used one at a time. */
union kvm_scratch {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xcrs xcrs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events ev;
	struct kvm_mp_state mp;
	struct kvm_debugregs dr;
	struct kvm_irqchip chip;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
};

static bool has_xcrs(struct kvm_vm *vm)
{
	return ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0;
}

int kvm_state_save(struct kvm_vm *vm, struct snapfile_w *w)
{
	/* One union of scratch space: every state is zeroed before KVM fills
	 * it, so no stack garbage reaches the (checksummed) file. */
	union kvm_scratch u;
	int v = vm->vcpu_fd, rc = 0;
#define SAVE(fd, req, field, tag) \
	(memset(&u, 0, sizeof(u)), save_one(fd, req, &u.field, sizeof(u.field), w, tag))
	if (!rc)
		rc = SAVE(v, KVM_GET_REGS, regs, TAG_REGS);
	if (!rc)
		rc = SAVE(v, KVM_GET_SREGS, sregs, TAG_SREGS);
	if (!rc)
		rc = save_fpu(vm, w);
	if (!rc && has_xcrs(vm))
		rc = SAVE(v, KVM_GET_XCRS, xcrs, TAG_XCRS);
	if (!rc)
		rc = SAVE(v, KVM_GET_LAPIC, lapic, TAG_LAPIC);
	if (!rc)
		rc = save_msrs(vm, w);
	if (!rc)
		rc = SAVE(v, KVM_GET_VCPU_EVENTS, ev, TAG_EVENTS);
	if (!rc)
		rc = SAVE(v, KVM_GET_MP_STATE, mp, TAG_MP_STATE);
	if (!rc)
		rc = SAVE(v, KVM_GET_DEBUGREGS, dr, TAG_DEBUGREGS);
	static const struct {
		uint32_t id, tag;
	} chips[] = {
		{ KVM_IRQCHIP_PIC_MASTER, TAG_PIC_MASTER },
		{ KVM_IRQCHIP_PIC_SLAVE, TAG_PIC_SLAVE },
		{ KVM_IRQCHIP_IOAPIC, TAG_IOAPIC },
	};
	for (size_t i = 0; !rc && i < 3; i++) {
		memset(&u, 0, sizeof(u));
		u.chip.chip_id = chips[i].id;
		rc = save_one(vm->vm_fd, KVM_GET_IRQCHIP, &u.chip, sizeof(u.chip), w, chips[i].tag);
	}
	if (!rc)
		rc = SAVE(vm->vm_fd, KVM_GET_PIT2, pit, TAG_PIT);
	if (!rc)
		rc = SAVE(vm->vm_fd, KVM_GET_CLOCK, clock, TAG_CLOCK);
#undef SAVE
	return rc ? rc : w->err;
}

int kvm_state_restore(struct kvm_vm *vm, const struct snapfile_r *r)
{
	union kvm_scratch u;
	int v = vm->vcpu_fd, rc = 0;
#define RESTORE(fd, req, field, tag) restore_one(fd, req, &u.field, sizeof(u.field), r, tag)
	if (snapfile_get(r, TAG_CLOCK, &u.clock, sizeof(u.clock)))
		return -EBADMSG;
	/* Only the clock value: the flags GET reports are not all settable. */
	struct kvm_clock_data clock = { .clock = u.clock.clock };
	if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &clock) < 0)
		return neg_errno();
	static const struct {
		uint32_t id, tag;
	} chips[] = {
		{ KVM_IRQCHIP_PIC_MASTER, TAG_PIC_MASTER },
		{ KVM_IRQCHIP_PIC_SLAVE, TAG_PIC_SLAVE },
		{ KVM_IRQCHIP_IOAPIC, TAG_IOAPIC },
	};
	for (size_t i = 0; !rc && i < 3; i++) {
		if (snapfile_get(r, chips[i].tag, &u.chip, sizeof(u.chip)) || u.chip.chip_id != chips[i].id)
			return -EBADMSG; /* absent, or a chip filed under another's tag */
		if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &u.chip) < 0)
			rc = neg_errno();
	}
	if (!rc)
		rc = RESTORE(vm->vm_fd, KVM_SET_PIT2, pit, TAG_PIT);
	if (!rc)
		rc = RESTORE(v, KVM_SET_SREGS, sregs, TAG_SREGS);
	if (!rc)
		rc = RESTORE(v, KVM_SET_REGS, regs, TAG_REGS);
	if (!rc)
		rc = restore_fpu(vm, r);
	if (!rc && snapfile_find(r, TAG_XCRS))
		rc = RESTORE(v, KVM_SET_XCRS, xcrs, TAG_XCRS);
	if (!rc)
		rc = RESTORE(v, KVM_SET_LAPIC, lapic, TAG_LAPIC);
	if (!rc)
		rc = restore_msrs(vm, r);
	if (!rc)
		rc = RESTORE(v, KVM_SET_DEBUGREGS, dr, TAG_DEBUGREGS);
	if (!rc)
		rc = RESTORE(v, KVM_SET_VCPU_EVENTS, ev, TAG_EVENTS);
	if (!rc)
		rc = RESTORE(v, KVM_SET_MP_STATE, mp, TAG_MP_STATE);
#undef RESTORE
	return rc;
}
