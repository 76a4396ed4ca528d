/* Snapshot directory: memory file, state file, and putting a machine back
 * together from them (snapshot.h). */
#include "vmm/kvm/monitor/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/kvm/monitor/snapfile.h"
#include "vmm/kvm/monitor/snapshot_kvm.h"

/* Machine-level sections; the KVM ones (snapshot_kvm.c) are below 100. */
enum { TAG_CONFIG = 100, TAG_SERIAL, TAG_CONSOLE };

#define PAGE 4096u

/* The machine's shape: what restore must build before state goes in. */
struct snap_config {
	uint64_t mem_size;
	uint64_t console_base;
	uint32_t console_irq;
	uint16_t serial_port;
	uint8_t has_serial, has_console;
};

static int dir_path(char *buf, size_t cap, const char *dir, const char *name)
{
	return snprintf(buf, cap, "%s/%s", dir, name) >= (int)cap ? -ENAMETOOLONG : 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i += 8) {
		uint64_t v;
		memcpy(&v, p + i, 8);
		if (v)
			return false;
	}
	return true;
}

/* Only pages with content are written; the rest stay holes. A booted VM's
 * memfd knows which pages were ever touched (SEEK_DATA), which also avoids
 * faulting in the untouched ones. A restored VM's private mapping does
 * not: there, pages reading all zeros are skipped. */
static int copy_ram(const struct kvm_vm *vm, int out)
{
	if (ftruncate(out, (off_t)vm->mem_size) < 0)
		return -errno;
	if (vm->mem_fd < 0) {
		for (uint64_t off = 0; off < vm->mem_size; off += PAGE)
			if (!all_zero(vm->mem + off, PAGE)) {
				int rc = snapfile_pwrite_all(out, vm->mem + off, PAGE, (off_t)off);
				if (rc)
					return rc;
			}
		return 0;
	}
	off_t off = 0;
	while ((uint64_t)off < vm->mem_size) {
		off_t data = lseek(vm->mem_fd, off, SEEK_DATA);
		if (data < 0)
			return errno == ENXIO ? 0 : -errno; /* ENXIO: no data after off */
		off_t hole = lseek(vm->mem_fd, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		if ((uint64_t)hole > vm->mem_size)
			hole = (off_t)vm->mem_size;
		int rc = snapfile_pwrite_all(out, vm->mem + data, (size_t)(hole - data), data);
		if (rc)
			return rc;
		off = hole;
	}
	return 0;
}

/* snapfile_replace's argument is not const: the VM goes through a holder
 * so that no cast drops its const (-Wcast-qual). */
struct ram_src {
	const struct kvm_vm *vm;
};

static int fill_memory(int fd, void *arg)
{
	const struct ram_src *src = arg;
	return copy_ram(src->vm, fd);
}

static int write_memory(const struct kvm_vm *vm, const char *dir)
{
	char path[4096];
	int rc = dir_path(path, sizeof(path), dir, "memory");
	struct ram_src src = { vm };
	return rc ? rc : snapfile_replace(path, fill_memory, &src);
}

static int save_locked(const struct kvm_snap_machine *m, const char *dir)
{
	struct kvm_vm *vm = m->vm;
	struct snap_config cfg = {
		.mem_size = vm->mem_size,
		.has_serial = m->serial != NULL,
		.has_console = m->console != NULL,
	};
	struct snapfile_w w;
	snapfile_w_init(&w);
	int rc = write_memory(vm, dir);
	if (!rc)
		rc = kvm_state_save(vm, &w);
	if (!rc && m->serial) {
		struct kvm_serial_state st;
		kvm_serial_save(m->serial, &st);
		cfg.serial_port = m->serial->port;
		snapfile_w_add(&w, TAG_SERIAL, &st, sizeof(st));
	}
	if (!rc && m->console) {
		struct kvm_console_state st;
		kvm_console_save(m->console, &st);
		cfg.console_base = m->console->mmio.base;
		cfg.console_irq = m->console->mmio.irq;
		snapfile_w_add(&w, TAG_CONSOLE, &st, sizeof(st));
	}
	char path[4096];
	if (!rc)
		rc = dir_path(path, sizeof(path), dir, "state");
	if (!rc) {
		snapfile_w_add(&w, TAG_CONFIG, &cfg, sizeof(cfg));
		rc = snapfile_w_write(&w, path);
	}
	snapfile_w_free(&w);
	return rc;
}

int kvm_snapshot_save(const struct kvm_snap_machine *m, const char *dir)
{
	int rc = kvm_vm_settle(m->vm);
	if (rc)
		return rc;
	/* The device thread may not touch rings or RAM while both are copied:
	 * the state must describe exactly the memory next to it. */
	if (m->console)
		pthread_mutex_lock(&m->console->mmio.lock);
	rc = save_locked(m, dir);
	if (m->console)
		pthread_mutex_unlock(&m->console->mmio.lock);
	return rc;
}

static int check_config(const struct snap_config *c)
{
	if (c->mem_size < (2u << 20) || c->mem_size > KVM_VM_MEM_MAX || (c->mem_size & (PAGE - 1)) ||
	    c->has_serial > 1 || c->has_console > 1)
		return -EBADMSG;
	return 0;
}

static int open_memory(const char *dir, uint64_t mem_size, int *fd)
{
	char path[4096];
	int rc = dir_path(path, sizeof(path), dir, "memory");
	if (rc)
		return rc;
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return -errno;
	struct stat st;
	if (fstat(*fd, &st) < 0)
		rc = -errno;
	else if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != mem_size)
		rc = -EBADMSG; /* truncated (a private mapping past EOF would SIGBUS) */
	if (rc) {
		close(*fd);
		*fd = -1;
	}
	return rc;
}

/* Builds the devices the snapshot has and puts their state back. The
 * console joins *m only once opened, so a failure tears down just what
 * exists. */
static int restore_devices(const struct snapfile_r *r, const struct snap_config *cfg,
			   struct kvm_snap_machine *m, struct kvm_console *con, int log_fd, int *host_fd)
{
	if (cfg->has_serial) {
		struct kvm_serial_state st;
		if (snapfile_get(r, TAG_SERIAL, &st, sizeof(st)))
			return -EBADMSG;
		int rc = kvm_serial_attach(m->serial, m->vm, cfg->serial_port, log_fd);
		if (!rc)
			rc = kvm_serial_restore(m->serial, &st);
		if (rc)
			return rc;
	}
	if (cfg->has_console) {
		struct kvm_console_state st;
		if (snapfile_get(r, TAG_CONSOLE, &st, sizeof(st)))
			return -EBADMSG;
		int rc = kvm_console_open(con, m->vm, cfg->console_base, cfg->console_irq, host_fd);
		if (rc) /* it closed itself */
			return rc == -EINVAL ? -EBADMSG : rc;
		m->console = con;
		return kvm_console_restore(con, &st);
	}
	return 0;
}

int kvm_snapshot_restore(const char *dir, const char *dev, struct kvm_snap_machine *m, int log_fd,
			 int *host_fd)
{
	*host_fd = -1;
	struct kvm_console *con = m->console;
	m->console = NULL;
	struct snapfile_r r;
	char path[4096];
	int rc = dir_path(path, sizeof(path), dir, "state");
	if (rc)
		return rc;
	rc = snapfile_load(&r, path);
	if (rc)
		return rc;
	struct snap_config cfg;
	int mem_fd = -1;
	if (snapfile_get(&r, TAG_CONFIG, &cfg, sizeof(cfg)) || check_config(&cfg))
		rc = -EBADMSG;
	if (!rc && ((cfg.has_serial && (log_fd < 0 || !m->serial)) || (cfg.has_console && !con)))
		rc = -EINVAL; /* the caller gave no place for a device it has */
	if (!rc)
		rc = open_memory(dir, cfg.mem_size, &mem_fd);
	if (!rc) {
		rc = kvm_vm_open_cow(m->vm, dev, cfg.mem_size, mem_fd);
		close(mem_fd); /* the mapping keeps the file's pages */
		if (!rc)
			rc = kvm_state_restore(m->vm, &r);
		if (!rc)
			rc = restore_devices(&r, &cfg, m, con, log_fd, host_fd);
		if (rc)
			kvm_snapshot_release(m); /* safe after a failed open too */
	}
	snapfile_free(&r);
	if (!rc && !cfg.has_serial)
		m->serial = NULL;
	if (rc && *host_fd >= 0) {
		close(*host_fd);
		*host_fd = -1;
	}
	return rc;
}

void kvm_snapshot_release(struct kvm_snap_machine *m)
{
	if (m->console)
		kvm_console_close(m->console);
	m->console = NULL;
	if (m->vm)
		kvm_vm_close(m->vm);
}
