/* Snapshot and restore of a kvm machine (docs/design.md §3, kvm): after the guest
 * agent says READY the monitor pauses the vCPU (kvm_vm_pause) and saves;
 * new machines and resets restore from the snapshot with guest RAM mapped
 * MAP_PRIVATE from its memory file, so nothing is copied up front and a
 * reset costs milliseconds of host work.
 *
 * A snapshot is a directory with two files:
 *   memory  guest RAM, exactly mem_size bytes, sparse (pages the guest
 *           never wrote are holes);
 *   state   a snapfile (snapfile.h): the machine's layout, the KVM state
 *           (snapshot_kvm.h) and the devices' (UART registers; virtio-mmio
 *           transport, queues and the console's in-flight chains).
 * Both are written under temporary names and renamed, so a machine still
 * mapping an older memory file keeps its own pages. The files must not be
 * modified while machines restored from them live (MAP_PRIVATE shows file
 * changes in pages the guest has not written yet).
 *
 * The socketpair behind the console is not part of the machine's state:
 * each restored machine gets a new one, and nothing the old peer had sent
 * but the guest had not yet taken is carried over. The snapshot is meant
 * for a quiet point (after READY, before any request). */
#ifndef VMPOOL_KVM_SNAPSHOT_H
#define VMPOOL_KVM_SNAPSHOT_H

#include "vmm/kvm/monitor/serial.h"
#include "vmm/kvm/monitor/virtio_console.h"
#include "vmm/kvm/monitor/vm.h"

/* A machine's parts, in caller storage. serial and console may be NULL
 * (absent devices) when saving; restore creates what the snapshot has. */
struct kvm_snap_machine {
	struct kvm_vm *vm;
	struct kvm_serial *serial;
	struct kvm_console *console;
};

/* Saves `m` into `dir` (which must exist). The vCPU must be out of
 * kvm_vm_run (kvm_vm_pause, or any return); a pending I/O exit is
 * completed first. The devices are frozen for the duration by the
 * transport lock. The machine can run on afterwards. */
int kvm_snapshot_save(const struct kvm_snap_machine *m, const char *dir);

/* Builds a new machine in *m's storage from the snapshot in `dir`: VM
 * (`dev` as for kvm_vm_open) with RAM copy-on-write over dir/memory, the
 * UART logging to `log_fd` when the snapshot has one, the console with a
 * fresh channel in *host_fd when it has one (the caller closes it). On
 * success run it with kvm_vm_run; it goes on where the snapshot was taken.
 * Tear down with kvm_snapshot_release. Errors leave nothing open:
 * -ENOENT (no snapshot there), -EBADMSG (corrupt, truncated, or not
 * matching this monitor), -EPROTONOSUPPORT (another format version), or
 * what KVM refuses. */
int kvm_snapshot_restore(const char *dir, const char *dev, struct kvm_snap_machine *m, int log_fd,
			 int *host_fd);

/* Closes a machine made by kvm_snapshot_restore (or assembled the same
 * way): console first (its thread uses guest RAM), then the VM. */
void kvm_snapshot_release(struct kvm_snap_machine *m);

#endif
