/* Can this host run the kvm backend, and natively (machine_kvm.h)?
 * "Usable" means a VM can really be made, not just that /dev/kvm opens:
 * permissions, missing capabilities and a busy KVM all show up there.
 * "Native" asks which KVM module serves it: with PVM (kvm_pvm) a guest
 * kernel that is not PVM-enabled runs fully emulated (docs/design.md §3, "KVM on
 * these development machines"), so AUTO must not pick kvm there. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "vmm/kvm/machine_kvm.h"

#define PROBE_MEM (2ull << 20) /* the least vm.c takes: enough to prove a VM */

int kvm_detect_usable(const char *dev, char *why, size_t cap)
{
	struct kvm_vm vm;
	int rc = kvm_vm_open(&vm, dev, PROBE_MEM);
	kvm_vm_close(&vm);
	if (rc)
		snprintf(why, cap, "%s: %s", dev ? dev : "/dev/kvm", strerror(-rc));
	return rc;
}

static bool module_loaded(const char *sys_module, const char *name)
{
	char path[512];
	struct stat st;
	snprintf(path, sizeof path, "%s/%s", sys_module, name);
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int kvm_detect_native(const char *dev, const char *sys_module, char *why, size_t cap)
{
	const char *mods = sys_module ? sys_module : "/sys/module";
	int rc = kvm_detect_usable(dev, why, cap);
	if (rc)
		return rc;
	if (module_loaded(mods, "kvm_pvm")) {
		snprintf(why, cap, "KVM here is PVM (kvm_pvm): a non-PVM guest kernel would run emulated");
		return -ENODEV;
	}
	static const char *const hw[] = { "kvm_intel", "kvm_amd" };
	for (size_t i = 0; i < sizeof hw / sizeof hw[0]; i++)
		if (module_loaded(mods, hw[i])) {
			snprintf(why, cap, "hardware KVM (%s)", hw[i]);
			return 0;
		}
	snprintf(why, cap,
		 "KVM here is neither kvm_intel nor kvm_amd: cannot tell it runs a guest kernel natively");
	return -ENODEV;
}
