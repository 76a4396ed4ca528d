/* The kvm machine backend with the real guest: the built image's Linux
 * kernel and initramfs (VMPOOL_IMAGE), the agent as PID 1 on the virtio
 * console. EXEC `echo hi` gives "hi\n" and exit 0; a file one command
 * writes is gone after reset; two machines do not share files.
 * Runs only where KVM runs the guest kernel natively (kvm_intel/kvm_amd,
 * no kvm_pvm): elsewhere the kernel would run emulated (docs/design.md §3, "KVM on
 * these development machines"), so this prints SKIP with the reason and
 * exits 77, which is not a pass. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto/client.h"
#include "tests/common/exec_run.h"
#include "tests/common/tap.h"
#include "tests/common/testutil.h"
#include "vmm/kvm/machine_kvm.h"
#include "vmm/machine.h"

#define EXEC_MS 30000

/* Runs cmd in m; its stdout (NUL-terminated) in out; returns the exit
 * code, or -errno when it could not run or did not end in time. */
static int sh(struct machine *m, const char *cmd, char *out, size_t cap)
{
	struct run r;
	int rc = run_cmd_within(machine_client(m), cmd, EXEC_MS, &r);
	if (!rc)
		rc = r.ex.code;
	snprintf(out, cap, "%s", r.o.p ? r.o.p : "");
	run_free(&r);
	return rc;
}

static struct machine_backend *backend;

static void test_echo(void)
{
	struct machine *m = NULL;
	REQUIRE_EQ(machine_create(backend, &m), 0);
	char out[256];
	CHECK_EQ(sh(m, "echo hi", out, sizeof out), 0);
	CHECKF(!strcmp(out, "hi\n"), "stdout: '%s'", out);
	CHECK_EQ(sh(m, "exit 3", out, sizeof out), 3);
	machine_destroy(m);
}

static void test_reset_and_isolation(void)
{
	struct machine *a = NULL, *b = NULL;
	REQUIRE_EQ(machine_create(backend, &a), 0);
	CHECK_EQ(machine_create(backend, &b), 0);
	char out[256];
	CHECK_EQ(sh(a, "echo secret > /root/left-behind && cat /root/left-behind", out, sizeof out), 0);
	CHECKF(!strcmp(out, "secret\n"), "stdout: '%s'", out);
	if (b)
		CHECK_EQ(sh(b, "test -e /root/left-behind", out, sizeof out), 1); /* another machine's file */
	double t0 = now_s();
	CHECK_EQ(machine_reset(a), 0);
	printf("# reset: %.1f ms\n", (now_s() - t0) * 1000.0);
	CHECK_EQ(sh(a, "test -e /root/left-behind", out, sizeof out), 1);
	CHECK_EQ(sh(a, "echo hi", out, sizeof out), 0);
	machine_destroy(a);
	machine_destroy(b);
}

/* Restored from a snapshot taken at the template's boot, the guest's
 * clock would lag; SET_TIME after the resumed handshake sets it. */
static void test_clock(void)
{
	struct machine *m = NULL;
	REQUIRE_EQ(machine_create(backend, &m), 0);
	sleep_ms(2000); /* the snapshot is older than this machine by now */
	char out[64];
	CHECK_EQ(machine_reset(m), 0);
	CHECK_EQ(sh(m, "date +%s", out, sizeof out), 0);
	long guest = strtol(out, NULL, 10), host = (long)time(NULL);
	CHECKF(guest > host - 5 && guest <= host + 1, "guest %ld, host %ld", guest, host);
	machine_destroy(m);
}

int main(void)
{
	const char *image = getenv("VMPOOL_IMAGE");
	char why[512] = "";
	if (!image) {
		printf("SKIP: VMPOOL_IMAGE not set (run through meson test)\n");
		return 77;
	}
	/* The AUTO rule decides whether a Linux guest can run here at all. */
	if (kvm_detect_native(NULL, NULL, why, sizeof why)) {
		printf("SKIP: KVM here cannot run the Linux guest natively: %s\n", why);
		return 77;
	}
	char kernel[512];
	snprintf(kernel, sizeof kernel, "%s/vmlinuz", image);
	if (access(kernel, R_OK)) {
		printf("SKIP: %s: %s (the image was built without a kernel package)\n", kernel,
		       strerror(errno));
		return 77;
	}
	struct machine_config cfg;
	machine_config_defaults(&cfg);
	cfg.kind = MACHINE_KVM;
	cfg.image_dir = image;
	cfg.mem_bytes = 512ull << 20;
	cfg.ready_timeout_ms = 60000;
	double t0 = now_s();
	int rc = machine_backend_open_why(&cfg, &backend, why, sizeof why);
	if (rc) {
		printf("Bail out! kvm backend with %s: %s: %s\n", image, strerror(-rc), why);
		return 1;
	}
	printf("# template boot to READY + snapshot: %.0f ms\n", (now_s() - t0) * 1000.0);
	static const struct tap_test tests[] = {
		{ "echo hi: stdout and exit status through the virtio console", test_echo },
		{ "a file written is gone after reset; machines do not share files", test_reset_and_isolation },
		{ "a restored guest's clock is the host's (SET_TIME)", test_clock },
	};
	rc = tap_main(tests, sizeof tests / sizeof tests[0]);
	machine_backend_close(backend);
	return rc;
}
