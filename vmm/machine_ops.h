/* What a machine backend gives machine.c: one const table per backend
 * (ns_machine_ops in vmm/ns/ns.h, kvm_machine_ops in vmm/kvm/machine_kvm.h),
 * so machine.c forwards every machine.h call through it instead of
 * branching on the backend. Only machine.c calls these; the rules of
 * machine.h (0 or -errno, one thread per machine for create/reset/destroy,
 * is_alive/client/log_path/get_info from any thread holding the machine)
 * apply unchanged.
 *
 * `backend` is what open made, `machine` what create made: each backend's
 * own structs, opaque here. Every member is set but `kill` and `snapshot`. */
#ifndef VMPOOL_MACHINE_OPS_H
#define VMPOOL_MACHINE_OPS_H

#include <stdbool.h>
#include <stddef.h>

#include "vmm/machine.h"

struct machine_ops {
	const char *name; /* "ns" | "kvm": machine_backend_name */
	/* On failure `why` (cap bytes, non-empty) gets a line when the backend
	 * has more to say than the errno; else it is left empty. */
	int (*open)(const struct machine_config *cfg, void **backend, char *why, size_t cap);
	void (*close)(void *backend); /* after every machine is destroyed */
	/* Appends to `buf` (a string, cap bytes in all) what the backend adds
	 * to the reason for choosing it, once open (kvm: the template's boot
	 * time); may leave it as it is. */
	void (*reason)(const void *backend, char *buf, size_t cap);
	const char *(*runtime_dir)(const void *backend); /* NULL when none */

	int (*create)(void *backend, void **machine);
	int (*reset)(void *machine);
	void (*destroy)(void *machine); /* never NULL */
	bool (*is_alive)(void *machine);
	/* Ends the guest from the host side at once, whatever its agent does
	 * (machine_kill); may run beside the machine's users but never beside
	 * reset/destroy. NULL: the backend only has the channel's shutdown. */
	void (*kill)(void *machine);
	struct vp_client *(*client)(void *machine);
	const char *(*log_path)(void *machine);
	void (*get_info)(void *machine, struct machine_info *out);
	/* machine_snapshot: the machine's state now, as the own part of a new
	 * image, into `dir` (an empty directory). NULL: -EOPNOTSUPP. */
	int (*snapshot)(void *machine, const char *dir);
};

#endif
