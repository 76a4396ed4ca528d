/* The KVM side of a snapshot (docs/design.md §3, kvm): the vCPU (registers, FPU or
 * XSAVE, XCRs, the MSRs a guest kernel relies on, LAPIC, pending events,
 * MP state, debug registers), the in-kernel irqchip (both 8259s and the
 * IOAPIC), the PIT and the KVM clock, as snapfile sections. Internal to
 * snapshot.c; the vCPU must be stopped and settled (kvm_vm_settle).
 * Restore goes into a freshly opened VM (irqchip, PIT, vCPU and CPUID as
 * kvm_vm_open makes them), in the order KVM needs: clock, irqchip, PIT,
 * then sregs before regs (the mode decides how registers are taken), FPU,
 * XCRs, LAPIC, MSRs (TSC before TSC_DEADLINE, which needs the LAPIC in
 * deadline mode), debug registers, events, MP state last. KVM rejects what
 * it cannot take (-EINVAL); section sizes are checked here (-EBADMSG). */
#ifndef VMPOOL_KVM_SNAPSHOT_KVM_H
#define VMPOOL_KVM_SNAPSHOT_KVM_H

struct kvm_vm;
struct snapfile_w;
struct snapfile_r;

int kvm_state_save(struct kvm_vm *vm, struct snapfile_w *w);
int kvm_state_restore(struct kvm_vm *vm, const struct snapfile_r *r);

#endif
