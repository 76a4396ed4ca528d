/* kvm machines beside ns machines, in one run: create (snapshot restore +
 * handshake), reset, and a PING round trip over the agent channel.
 * Usage: kvm_bench GUEST_BZIMAGE [NS_IMAGE_DIR]. The kvm machines run
 * GUEST_BZIMAGE (the conformance guest: on PVM hosts only it runs, fully
 * emulated, so its PING figure is emulation speed, not the monitor's) from
 * a temporary image dir; ns machines run the built image (default: the
 * build's, or $VMPOOL_IMAGE). Needs root and /dev/kvm. Prints one table. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/client.h"
#include "vmm/machine.h"
#include "vmm/rundir.h"
#include "benchstat.h"

#ifndef VMPOOL_IMAGE_DEFAULT
#define VMPOOL_IMAGE_DEFAULT "image"
#endif

#define N_CREATE 40
#define N_PING 200
#define KVM_MEM (64ull << 20)

struct figures {
	double create[N_CREATE], reset[N_CREATE], ping[N_PING];
	double open_ms;
};

static int copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int err = out < 0 ? -errno : 0;
	char buf[65536];
	ssize_t n;
	while (!err && (n = read(in, buf, sizeof buf)) != 0) {
		if (n < 0 || write(out, buf, (size_t)n) != n)
			err = n < 0 ? -errno : -EIO;
	}
	close(in);
	if (out >= 0 && close(out) < 0 && !err)
		err = -errno;
	return err;
}

/* vmlinuz = the guest; the initramfs is only loaded, never read by it. */
static int make_image(char *dir, const char *guest)
{
	char path[512];
	if (!mkdtemp(dir))
		return -errno;
	snprintf(path, sizeof path, "%s/vmlinuz", dir);
	int err = copy_file(guest, path);
	snprintf(path, sizeof path, "%s/initramfs.cpio.gz", dir);
	int fd = err ? -1 : open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (!err && (fd < 0 || write(fd, "bench", 5) != 5))
		err = -EIO;
	if (fd >= 0)
		close(fd);
	return err;
}

static int measure(enum machine_kind kind, const char *image, uint64_t mem, struct figures *f)
{
	struct machine_config cfg;
	machine_config_defaults(&cfg);
	cfg.kind = kind;
	cfg.image_dir = image;
	if (mem)
		cfg.mem_bytes = mem;
	struct machine_backend *b;
	char why[512];
	double t0 = bench_now_us();
	int err = machine_backend_open_why(&cfg, &b, why, sizeof why);
	f->open_ms = (bench_now_us() - t0) / 1e3;
	if (err) {
		fprintf(stderr, "kvm_bench: %s backend: %s: %s\n", kind == MACHINE_KVM ? "kvm" : "ns",
			strerror(-err), why);
		return err;
	}
	struct machine *m = NULL;
	for (int i = 0; i < N_CREATE && !err; i++) {
		t0 = bench_now_us();
		err = machine_create(b, &m);
		f->create[i] = bench_now_us() - t0;
		if (!err) {
			t0 = bench_now_us();
			err = machine_reset(m);
			f->reset[i] = bench_now_us() - t0;
		}
		if (i < N_CREATE - 1 || err) {
			machine_destroy(m);
			m = NULL;
		}
	}
	for (int i = 0; i < N_PING && !err; i++) {
		t0 = bench_now_us();
		err = vp_ping(machine_client(m));
		f->ping[i] = bench_now_us() - t0;
	}
	if (err)
		fprintf(stderr, "kvm_bench: %s machines: %s\n", kind == MACHINE_KVM ? "kvm" : "ns",
			strerror(-err));
	machine_destroy(m);
	machine_backend_close(b);
	return err;
}

static void row(const char *what, double *kvm, double *ns, int n)
{
	double k50 = bench_percentile(kvm, n, 0.5), k95 = bench_percentile(kvm, n, 0.95);
	double n50 = bench_percentile(ns, n, 0.5), n95 = bench_percentile(ns, n, 0.95);
	printf("%-34s %9.3f / %9.3f ms %9.3f / %9.3f ms %8.2fx\n", what, k50 / 1e3, k95 / 1e3, n50 / 1e3,
	       n95 / 1e3, k50 / n50);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: kvm_bench GUEST_BZIMAGE [NS_IMAGE_DIR]\n");
		return 2;
	}
	const char *ns_image = argc > 2 ? argv[2] : getenv("VMPOOL_IMAGE");
	if (!ns_image)
		ns_image = VMPOOL_IMAGE_DEFAULT;
	char dir[] = "/tmp/vmpool-kvm-bench-XXXXXX";
	int err = make_image(dir, argv[1]);
	static struct figures kvm, ns;
	if (!err)
		err = measure(MACHINE_KVM, dir, KVM_MEM, &kvm);
	rundir_remove(dir);
	if (!err)
		err = measure(MACHINE_NS, ns_image, 0, &ns);
	if (err)
		return 1;
	printf("%-34s %25s %25s %9s\n", "", "kvm p50 / p95", "ns p50 / p95", "kvm/ns");
	printf("%-34s %22.1f ms %22.1f ms\n", "backend open (kvm: template boot)", kvm.open_ms, ns.open_ms);
	row("create (n=40)", kvm.create, ns.create, N_CREATE);
	row("reset (n=40)", kvm.reset, ns.reset, N_CREATE);
	row("PING round trip (n=200)", kvm.ping, ns.ping, N_PING);
	return 0;
}
