/* The template machine (machine_kvm.h): boots the image's kernel and
 * initramfs once, waits for the agent to say READY and answer HELLO, then
 * pauses and snapshots it, so that every machine afterwards is a
 * copy-on-write restore instead of a boot (docs/design.md §3, kvm). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/kvm/monitor/boot.h"
#include "vmm/kvm/machine_kvm.h"

#define KERNEL_MAX (256u << 20)
/* Quiet and quick: the serial console is the log (every character is a
 * vCPU exit, so only warnings go there); a panic reboots at once and a
 * reboot is a triple fault, which ends the run loop (the machine is then
 * dead, not hung); no PCI bus and no display to probe. The virtio-mmio
 * word names the agent channel (the agent passes it to the module). */
#define CMDLINE_BASE                                                          \
	"console=ttyS0 quiet loglevel=4 panic=-1 reboot=t pci=off nomodeset " \
	"8250.nr_uarts=1 random.trust_cpu=on"

static int read_image_file(const char *dir, const char *name, size_t max, void **buf, size_t *len, char *why,
			   size_t cap)
{
	char path[4096];
	if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
		return -ENAMETOOLONG;
	int rc = kvm_boot_read_file(path, max, buf, len);
	if (rc)
		snprintf(why, cap, "%s: %s", path, strerror(-rc));
	return rc;
}

/* The log's last non-empty line, for an error message. */
static void last_log_line(int fd, char *out, size_t cap)
{
	char buf[512];
	out[0] = '\0';
	off_t end = lseek(fd, 0, SEEK_END);
	off_t from = end > (off_t)sizeof buf - 1 ? end - (off_t)sizeof buf + 1 : 0;
	ssize_t n = end > 0 ? pread(fd, buf, (size_t)(end - from), from) : 0;
	if (n <= 0)
		return;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	const char *line = strrchr(buf, '\n');
	line = line ? line + 1 : buf;
	size_t len = strnlen(line, cap - 1); /* a long line is cut: it is only a hint */
	memcpy(out, line, len);
	out[len] = '\0';
}

/* VM, UART, console, kernel and initrd in RAM; *host_fd is the channel. */
static int assemble(struct kvm_live *l, const struct kvm_template_cfg *cfg, int log_fd, int *host_fd,
		    char *why, size_t cap)
{
	void *kernel = NULL, *initrd = NULL;
	size_t klen = 0, ilen = 0;
	int rc = read_image_file(cfg->image_dir, "vmlinuz", KERNEL_MAX, &kernel, &klen, why, cap);
	if (!rc)
		rc = read_image_file(cfg->image_dir, "initramfs.cpio.gz", cfg->mem_bytes, &initrd, &ilen, why,
				     cap);
	if (!rc && (rc = kvm_vm_open(&l->vm, NULL, cfg->mem_bytes)) != 0)
		snprintf(why, cap, "/dev/kvm: cannot make a VM: %s", strerror(-rc));
	if (!rc) {
		l->parts.vm = &l->vm;
		l->vm_up = true;
		rc = kvm_serial_attach(&l->ser, &l->vm, KVM_SERIAL_COM1, log_fd);
	}
	if (!rc) {
		l->parts.serial = &l->ser;
		rc = kvm_console_open(&l->con, &l->vm, KVM_CONSOLE_BASE, KVM_CONSOLE_IRQ, host_fd);
	}
	char dev[64], cmdline[256];
	if (!rc) {
		l->parts.console = &l->con;
		rc = virtio_mmio_cmdline(&l->con.mmio, dev, sizeof dev);
	}
	if (!rc) {
		snprintf(cmdline, sizeof cmdline, "%s %s", CMDLINE_BASE, dev);
		struct kvm_boot_cfg boot = { kernel, klen, initrd, ilen, cmdline };
		rc = kvm_boot_linux(&l->vm, &boot, NULL);
		if (rc)
			snprintf(why, cap, "%s/vmlinuz with its initramfs in %llu MiB: %s", cfg->image_dir,
				 (unsigned long long)(cfg->mem_bytes >> 20), strerror(-rc));
	}
	if (rc && !why[0])
		snprintf(why, cap, "kvm machine setup: %s", strerror(-rc));
	free(kernel); /* the guest has its copies */
	free(initrd);
	return rc;
}

/* Why READY did not come: still running (timeout) or the guest ended. */
static int explain(struct kvm_live *l, int rc, const struct kvm_template_cfg *cfg, int log_fd, char *why,
		   size_t cap)
{
	char last[160];
	last_log_line(log_fd, last, sizeof last);
	if (l->run_rc != -EINTR) {
		snprintf(why, cap,
			 "the guest stopped before its agent was ready (%s, exit status %d); serial: %s",
			 l->run_rc ? strerror(-l->run_rc) : "exit port", l->vm.exit_status,
			 last[0] ? last : "(empty)");
		return -EIO;
	}
	if (rc == -ETIMEDOUT)
		snprintf(why, cap, "no READY from the guest agent within %u ms; serial: %s",
			 cfg->ready_timeout_ms, last[0] ? last : "(empty)");
	else
		snprintf(why, cap, "handshake with the guest agent: %s; serial: %s", strerror(-rc),
			 last[0] ? last : "(empty)");
	return rc;
}

int kvm_template_snapshot(const struct kvm_template_cfg *cfg, char *why, size_t cap)
{
	why[0] = '\0';
	int log_fd = open(cfg->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
	if (log_fd < 0) {
		int rc = -errno;
		snprintf(why, cap, "%s: %s", cfg->log_path, strerror(-rc));
		return rc;
	}
	struct kvm_live *l = calloc(1, sizeof *l);
	if (!l) {
		close(log_fd);
		return -ENOMEM;
	}
	int host_fd = -1;
	int rc = assemble(l, cfg, log_fd, &host_fd, why, cap);
	if (!rc) {
		rc = kvm_live_start(l, host_fd, false, cfg->ready_timeout_ms);
		kvm_live_pause(l); /* READY seen, or given up: either way, stop here */
		if (rc)
			rc = explain(l, rc, cfg, log_fd, why, cap);
		else if (l->run_rc != -EINTR)
			rc = explain(l, -EIO, cfg, log_fd, why, cap); /* stopped right after */
	} else if (host_fd >= 0) {
		close(host_fd);
	}
	if (!rc && (rc = kvm_snapshot_save(&l->parts, cfg->snap_dir)) != 0)
		snprintf(why, cap, "snapshot into %s: %s", cfg->snap_dir, strerror(-rc));
	kvm_live_stop(l);
	free(l);
	close(log_fd);
	return rc;
}
