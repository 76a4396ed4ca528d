/* The kvm machine backend through machine.h, with the conformance guest
 * as the "kernel" (it runs here under emulation):
 * - open boots the template to READY, snapshots it into the backend's
 *   runtime directory and tears it down;
 * - machine_create restores it; the client answers PING after the resumed
 *   handshake (the agent said READY before the snapshot, never again);
 * - two machines at once: each one's PING counter (in guest RAM) starts at
 *   1 on its own; reset gives a pristine machine (the counter is 1 again);
 * - every created or reset machine was told the host's time (SET_TIME):
 *   its log's `time sec=` is within a few seconds of CLOCK_REALTIME;
 * - a guest that dies in the middle of a request (EXEC makes the
 *   conformance guest stop unanswered): the request and the next PING fail
 *   with an errno, the machine turns !alive, reset brings it back;
 * - destroy and close leave fds, threads and the runtime directory as
 *   before;
 * - no vmlinuz: -ENOENT; a guest that spins and never says READY:
 *   -ETIMEDOUT in bounded time; one that faults: -EIO; both say why;
 * - AUTO: the detection rule against fake /sys/module trees, and what
 *   machine_backend_open(AUTO) picks on this host.
 * SKIP (77) when /dev/kvm cannot make a VM. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "proto/client.h"
#include "tests/common/tap.h"
#include "tests/common/testutil.h"
#include "tests/kvm/kvm_testutil.h"
#include "vmm/kvm/monitor/boot.h"
#include "vmm/kvm/machine_kvm.h"
#include "vmm/machine.h"
#include "vmm/rundir.h"

#define MEM (64ull << 20)
#define READY_MS 5000u

struct fixture {
	char tmp[64];	 /* TMPDIR for the backends: empty whenever none is open */
	char img[128];	 /* vmlinuz = the conformance guest, any initramfs */
	char spin[128];	 /* vmlinuz whose entry is `jmp .` */
	char fault[128]; /* vmlinuz whose entry is `ud2` */
	char noimg[128]; /* initramfs only */
	uint8_t *guest;
	size_t guest_len;
};

static struct fixture fx;

static int write_in(const char *dir, const char *name, const void *buf, size_t len)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	return write_file(path, buf, len);
}

/* An image dir: `entry` replaces the guest's 64-bit entry when not NULL;
 * with_kernel false leaves vmlinuz out. */
static int make_image(char *dir, const char *name, const uint8_t *entry, size_t entry_len, bool with_kernel)
{
	static const char initrd[] = "not really a cpio archive\n";
	snprintf(dir, 128, "%s/%s", fx.tmp, name);
	if (mkdir(dir, 0700) < 0)
		return -errno;
	int rc = write_in(dir, "initramfs.cpio.gz", initrd, sizeof initrd - 1);
	if (rc || !with_kernel)
		return rc;
	uint8_t *k = malloc(fx.guest_len);
	if (!k)
		return -ENOMEM;
	memcpy(k, fx.guest, fx.guest_len);
	struct kvm_bzimage bz;
	rc = kvm_bzimage_parse(k, fx.guest_len, &bz);
	if (!rc && entry)
		memcpy(k + bz.setup_len + 0x200, entry, entry_len); /* code32_start + 0x200 */
	if (!rc)
		rc = write_in(dir, "vmlinuz", k, fx.guest_len);
	free(k);
	return rc;
}

/* Entries of fx.tmp other than the image dirs: runtime dirs left behind. */
static int leftovers(void)
{
	return count_dir(fx.tmp) - 2 - 4;
}

static struct machine_config kvm_config(const char *image, uint32_t ready_ms)
{
	struct machine_config cfg;
	machine_config_defaults(&cfg);
	cfg.kind = MACHINE_KVM;
	cfg.image_dir = image;
	cfg.mem_bytes = MEM;
	cfg.ready_timeout_ms = ready_ms;
	return cfg;
}

static bool file_exists(const char *dir, const char *name)
{
	char p[512];
	struct stat st;
	snprintf(p, sizeof p, "%s/%s", dir, name);
	return stat(p, &st) == 0;
}

/* The n= of the guest's last PONG in a machine's serial log; 0 if none. */
static long last_pong(struct machine *m)
{
	char *s = read_path(machine_log_path(m));
	const char *p = s, *last = NULL;
	while (p && (p = strstr(p, "pong id=")) != NULL)
		last = p++;
	const char *n = last ? strstr(last, " n=") : NULL;
	long v = n ? strtol(n + 3, NULL, 10) : 0;
	free(s);
	return v;
}

/* The guest logs a PONG after sending it: give the log a moment. */
static long wait_pong(struct machine *m, long want)
{
	long v = last_pong(m);
	for (uint64_t end = now_ms() + 3000; v != want && now_ms() < end; v = last_pong(m))
		sleep_ms(2);
	return v;
}

static int64_t realtime_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec;
}

/* Whether m's serial log says its guest was told a time within 5 s of
 * `host` (the host's CLOCK_REALTIME when the machine was made). The guest
 * logs before it answers, so the line is there once create returned. */
static bool told_time(struct machine *m, int64_t host)
{
	char *s = read_path(machine_log_path(m));
	const char *p = s ? strstr(s, "time sec=") : NULL;
	long long told = p ? strtoll(p + 9, NULL, 10) : 0;
	bool ok = p && told >= host - 5 && told <= host + 5;
	if (!ok)
		printf("# host %lld, guest told %.*s\n", (long long)host, p ? (int)strcspn(p, "\n") : 7,
		       p ? p : "nothing");
	free(s);
	return ok;
}

static int pings(struct machine *m, int n)
{
	int rc = 0;
	for (int i = 0; i < n && !rc; i++)
		rc = vp_ping(machine_client(m));
	return rc;
}

/* ---- the backend's life ------------------------------------------------ */

static struct machine_backend *open_backend(void)
{
	struct machine_config cfg = kvm_config(fx.img, READY_MS);
	struct machine_backend *b = NULL;
	char why[512] = "";
	double t0 = now_s();
	int rc = machine_backend_open_why(&cfg, &b, why, sizeof why);
	CHECKF(rc == 0, "open: %s: %s", strerror(-rc), why);
	if (!rc)
		printf("# template boot + snapshot: %.1f ms; %s\n", (now_s() - t0) * 1000.0,
		       machine_backend_reason(b));
	return rc ? NULL : b;
}

static void test_open(void)
{
	struct machine_backend *b = open_backend();
	REQUIRE(b);
	CHECK(!strcmp(machine_backend_name(b), "kvm"));
	CHECK(strstr(machine_backend_reason(b), "requested") != NULL);
	const char *dir = machine_backend_runtime_dir(b);
	REQUIRE(dir != NULL);
	CHECK(!strncmp(dir, fx.tmp, strlen(fx.tmp)));
	CHECK(file_exists(dir, "snapshot/memory"));
	CHECK(file_exists(dir, "snapshot/state"));
	char p[512];
	snprintf(p, sizeof p, "%s/template.log", dir);
	char *log = read_path(p);
	/* Booted, said READY, answered the HELLO, then was snapshotted; only
	 * restored machines are told the time. */
	CHECKF(log && strstr(log, "kvm-conformance-guest\n") && strstr(log, "ready sent\n") &&
		       strstr(log, "hello id=") && !strstr(log, "status=") && !strstr(log, "time sec="),
	       "template log:\n%s", log ? log : "-");
	free(log);
	char *keep = strdup(dir);
	machine_backend_close(b);
	struct stat st;
	CHECK(keep && stat(keep, &st) < 0 && errno == ENOENT);
	free(keep);
}

static void test_machines(void)
{
	struct machine_backend *b = open_backend();
	REQUIRE(b);
	struct machine *a = NULL, *c = NULL;
	double t0 = now_s();
	int64_t host = realtime_s();
	CHECK_EQ(machine_create(b, &a), 0);
	double t1 = now_s();
	CHECK_EQ(machine_create(b, &c), 0);
	if (!a || !c)
		goto out;
	printf("# create (restore + resumed handshake): %.1f ms, %.1f ms\n", (t1 - t0) * 1000.0,
	       (now_s() - t1) * 1000.0);
	CHECK(machine_is_alive(a) && machine_is_alive(c));
	struct machine_info ia, ic;
	machine_get_info(a, &ia);
	machine_get_info(c, &ic);
	CHECK(ia.id != ic.id);
	CHECK_EQ(ia.host_pid, getpid());
	CHECK_EQ(ia.oom_kills, 0);
	CHECK(ia.boot_us > 0);
	CHECK(strcmp(machine_log_path(a), machine_log_path(c)) != 0);
	CHECK(told_time(a, host));
	CHECK(told_time(c, host));

	/* Each counter is in its own machine's RAM: both start from the
	 * snapshot's 0, whatever the other does. */
	CHECK_EQ(pings(a, 3), 0);
	CHECK_EQ(pings(c, 1), 0);
	CHECK_EQ(wait_pong(a, 3), 3);
	CHECK_EQ(wait_pong(c, 1), 1);
	CHECK_EQ(pings(a, 1), 0);
	CHECK_EQ(wait_pong(a, 4), 4);
	CHECK_EQ(wait_pong(c, 1), 1);

	/* Reset: pristine again, and the log starts over. */
	t0 = now_s();
	host = realtime_s();
	CHECK_EQ(machine_reset(a), 0);
	printf("# reset: %.1f ms\n", (now_s() - t0) * 1000.0);
	CHECK(machine_is_alive(a));
	CHECK(told_time(a, host));
	CHECK_EQ(last_pong(a), 0);
	CHECK_EQ(pings(a, 1), 0);
	CHECK_EQ(wait_pong(a, 1), 1);
	char *log = read_path(machine_log_path(a));
	CHECKF(log && !strstr(log, "n=4") && !strstr(log, "kvm-conformance-guest"), "log after reset:\n%s",
	       log ? log : "-");
	free(log);
	for (int i = 0; i < 5; i++) { /* and again, as a pool does */
		host = realtime_s();
		CHECK_EQ(machine_reset(c), 0);
		CHECK(told_time(c, host));
		CHECK_EQ(pings(c, 2), 0);
		CHECK_EQ(wait_pong(c, 2), 2);
	}
out:
	machine_destroy(a);
	machine_destroy(c);
	machine_backend_close(b);
}

/* ---- a guest that dies in the middle of a request -------------------------- */

struct pending {
	struct vp_client *c;
	int rc;
	double took;
};

static void no_output(void *ctx, int stream, const void *data, size_t len)
{
	(void)ctx, (void)stream, (void)data, (void)len;
}

static void no_exit(void *ctx, const struct vp_exit *ex, int err)
{
	(void)ctx, (void)ex, (void)err;
}

static void *exec_main(void *arg)
{
	struct pending *p = arg;
	static const struct vp_exec_cb cb = { NULL, no_output, no_exit };
	struct vp_exec e;
	memset(&e, 0, sizeof e);
	e.cmd = (struct vp_bytes){ (const uint8_t *)"true", 4 };
	uint32_t id;
	double t0 = now_s();
	p->rc = vp_exec_start(p->c, &e, &cb, NULL, &id);
	p->took = now_s() - t0;
	return NULL;
}

/* PINGs until one fails (those behind the EXEC are in flight when the
 * guest dies), for at most 10 s. */
static void *ping_main(void *arg)
{
	struct pending *p = arg;
	double t0 = now_s();
	do
		p->rc = vp_ping(p->c);
	while (p->rc == 0 && now_s() - t0 < 10.0);
	p->took = now_s() - t0;
	return NULL;
}

static void test_guest_dies(void)
{
	struct machine_backend *b = open_backend();
	REQUIRE(b);
	struct machine *m = NULL;
	CHECK_EQ(machine_create(b, &m), 0);
	if (!m)
		goto out;
	struct vp_client *c = machine_client(m);
	vp_client_set_timeout(c, 30000); /* far beyond what the test allows */
	CHECK_EQ(vp_ping(c), 0);
	struct pending p = { c, 1, 0 }, q = { c, 1, 0 };
	pthread_t th, tq;
	REQUIRE(pthread_create(&th, NULL, exec_main, &p) == 0);
	REQUIRE(pthread_create(&tq, NULL, ping_main, &q) == 0);
	pthread_join(th, NULL);
	pthread_join(tq, NULL);
	printf("# request on a dying guest failed after %.1f ms: %s; pings failed after %.1f ms: %s\n",
	       p.took * 1000.0, strerror(-p.rc), q.took * 1000.0, strerror(-q.rc));
	CHECK(p.rc < 0);
	CHECK(p.took < 5.0);
	CHECK(q.rc < 0);
	CHECK(q.took < 5.0);
	uint64_t end = now_ms() + 5000;
	while (machine_is_alive(m) && now_ms() < end)
		sleep_ms(5);
	CHECK(!machine_is_alive(m));
	CHECK(vp_ping(machine_client(m)) < 0);
	char *log = read_path(machine_log_path(m));
	CHECKF(log && strstr(log, ": stopping\n") && strstr(log, "status=0\n"), "log:\n%s", log ? log : "-");
	free(log);
	/* A dead machine comes back with reset. */
	CHECK_EQ(machine_reset(m), 0);
	CHECK(machine_is_alive(m));
	CHECK_EQ(vp_ping(machine_client(m)), 0);
	CHECK_EQ(wait_pong(m, 1), 1);
out:
	machine_destroy(m);
	machine_backend_close(b);
}

/* ---- nothing left behind ------------------------------------------------------ */

/* Threads of ours: KVM adds a task of its own to the process per VM
 * ("kvm-nx-lpage-recovery", a vhost task, from the first KVM_RUN on),
 * which goes away with the VM. */
static int own_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL) {
		char p[300], comm[32] = "";
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof p, "/proc/self/task/%s/comm", e->d_name);
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 && read(fd, comm, sizeof comm - 1) < 0)
			comm[0] = '\0';
		if (fd >= 0)
			close(fd);
		n += strncmp(comm, "kvm-", 4) != 0;
	}
	if (d)
		closedir(d);
	return n;
}

/* The value fn settles at within 3 s, for counts a reset's reaper thread
 * brings down in the background (it releases the old VM after the reset
 * returned). */
static int settled(int (*fn)(void), int want)
{
	int got = fn();
	for (int i = 0; i < 300 && got != want; i++) {
		sleep_ms(10);
		got = fn();
	}
	return got;
}

static void test_leaks(void)
{
	int fds = count_fds(), threads = count_threads();
	struct machine_backend *b = open_backend();
	REQUIRE(b);
	int fds_open = count_fds(), threads_open = count_threads(), own = own_threads();
	/* The template is gone, with its threads; the reaper is there. */
	CHECK_EQ(threads_open, threads + 1);
	struct machine *m[3] = { NULL, NULL, NULL };
	for (int i = 0; i < 3; i++)
		CHECK_EQ(machine_create(b, &m[i]), 0);
	/* vCPU, console device and client reader, per machine. */
	CHECK_EQ(own_threads(), own + 3 * 3);
	CHECK(m[1] && machine_reset(m[1]) == 0);
	CHECK_EQ(settled(own_threads, own + 3 * 3), own + 3 * 3);
	for (int i = 0; i < 3; i++)
		machine_destroy(m[i]);
	CHECK_EQ(settled(count_fds, fds_open), fds_open);
	CHECK_EQ(settled(count_threads, threads_open), threads_open);
	CHECK_EQ(count_dir(machine_backend_runtime_dir(b)), 2 + 2); /* template.log, snapshot */
	machine_backend_close(b);
	CHECK_EQ(count_fds(), fds);
	CHECK_EQ(count_threads(), threads);
	CHECK_EQ(leftovers(), 0);
}

/* A reset returns before the old VM is released (the reaper does that);
 * closing the backend right after still releases everything. */
static void test_reset_then_close(void)
{
	int fds = count_fds(), threads = count_threads();
	struct machine_backend *b = open_backend();
	REQUIRE(b);
	struct machine *m = NULL;
	REQUIRE(machine_create(b, &m) == 0);
	for (int i = 0; i < 6; i++)
		CHECK_EQ(machine_reset(m), 0);
	CHECK_EQ(vp_ping(machine_client(m)), 0);
	machine_destroy(m);
	machine_backend_close(b);
	CHECK_EQ(count_fds(), fds);
	CHECK_EQ(count_threads(), threads);
	CHECK_EQ(leftovers(), 0);
}

/* ---- images that do not make a machine ---------------------------------------- */

static int try_open(const char *image, uint64_t mem, uint32_t ready_ms, char *why, size_t cap, double *took)
{
	struct machine_config cfg = kvm_config(image, ready_ms);
	cfg.mem_bytes = mem;
	struct machine_backend *b = NULL;
	double t0 = now_s();
	int rc = machine_backend_open_why(&cfg, &b, why, cap);
	*took = now_s() - t0;
	if (!rc)
		machine_backend_close(b);
	printf("# %s: %s after %.0f ms: %s\n", strrchr(image, '/') + 1, rc ? strerror(-rc) : "opened",
	       *took * 1000.0, why);
	return rc;
}

static void test_bad_images(void)
{
	int fds = count_fds(), threads = count_threads();
	char why[512];
	double took;
	CHECK_EQ(try_open(fx.noimg, MEM, READY_MS, why, sizeof why, &took), -ENOENT);
	CHECK(strstr(why, "vmlinuz") != NULL);
	CHECK_EQ(try_open(fx.spin, MEM, 300, why, sizeof why, &took), -ETIMEDOUT);
	CHECK(took >= 0.29 && took < 3.0);
	CHECK(strstr(why, "no READY") != NULL);
	CHECK_EQ(try_open(fx.fault, MEM, READY_MS, why, sizeof why, &took), -EIO);
	CHECK(took < 3.0);
	CHECK(strstr(why, "stopped before") != NULL);
	struct machine_config cfg = kvm_config(fx.img, READY_MS);
	cfg.mem_bytes = 1 << 20;
	struct machine_backend *b = NULL;
	CHECK_EQ(machine_backend_open_why(&cfg, &b, why, sizeof why), -EINVAL);
	cfg.kind = (enum machine_kind)7;
	CHECK_EQ(machine_backend_open(&cfg, &b), -EINVAL);
	CHECK_EQ(count_fds(), fds);
	CHECK_EQ(count_threads(), threads);
	CHECK_EQ(leftovers(), 0);
}

/* ---- AUTO ---------------------------------------------------------------------- */

/* kvm_detect_native with a /sys/module holding just `mods`. */
static int fake_sys(const char *name, const char *const *mods)
{
	char dir[160], p[224], why[256] = "";
	snprintf(dir, sizeof dir, "%s/%s", fx.tmp, name);
	mkdir(dir, 0700);
	for (const char *const *m = mods; *m; m++) {
		snprintf(p, sizeof p, "%s/%s", dir, *m);
		mkdir(p, 0700);
	}
	int rc = kvm_detect_native(NULL, dir, why, sizeof why);
	for (const char *const *m = mods; *m; m++) {
		snprintf(p, sizeof p, "%s/%s", dir, *m);
		rmdir(p);
	}
	rmdir(dir);
	printf("# %s: %d, %s\n", name, rc, why);
	return rc;
}

static void test_auto(void)
{
	static const char *const pvm[] = { "kvm", "kvm_pvm", NULL };
	static const char *const intel[] = { "kvm", "kvm_intel", NULL };
	static const char *const amd[] = { "kvm_amd", "kvm", NULL };
	static const char *const bare[] = { "kvm", NULL };
	CHECK_EQ(fake_sys("sys-pvm", pvm), -ENODEV);
	CHECK_EQ(fake_sys("sys-intel", intel), 0);
	CHECK_EQ(fake_sys("sys-amd", amd), 0);
	CHECK_EQ(fake_sys("sys-bare", bare), -ENODEV);
	char why[256];
	CHECK_EQ(kvm_detect_native("/nonexistent/kvm", "/sys/module", why, sizeof why), -ENOENT);
	CHECK(!strcmp(why, "/nonexistent/kvm: No such file or directory"));
	CHECK_EQ(kvm_detect_native(NULL, NULL, why, sizeof why) == 0,
		 access("/sys/module/kvm_pvm", F_OK) != 0 && (access("/sys/module/kvm_intel", F_OK) == 0 ||
							      access("/sys/module/kvm_amd", F_OK) == 0));
	printf("# this host: %s\n", why);
	if (access("/sys/module/kvm_pvm", F_OK) == 0)
		CHECK(!strcmp(why, "KVM here is PVM (kvm_pvm): a non-PVM guest kernel would run emulated"));

	/* machine_backend_open(AUTO) with the real image (the ns backend is
	 * what this host gets when KVM is not native). */
	const char *image = getenv("VMPOOL_IMAGE");
	if (!image) {
		printf("# AUTO open not tried: VMPOOL_IMAGE not set\n");
		return;
	}
	struct machine_config cfg;
	machine_config_defaults(&cfg);
	cfg.image_dir = image;
	struct machine_backend *b = NULL;
	char err[512] = "";
	bool native = kvm_detect_native(NULL, NULL, why, sizeof why) == 0;
	char kernel[512];
	snprintf(kernel, sizeof kernel, "%s/vmlinuz", image);
	if (!native && access(kernel, R_OK) == 0) {
		/* Asked for explicitly, kvm is tried even here; the emulated
		 * kernel cannot be ready in time, and the error says so. */
		double took;
		CHECK_EQ(try_open(image, 256ull << 20, 1500, err, sizeof err, &took), -ETIMEDOUT);
		CHECK(took < 10.0);
		CHECK(strstr(err, "no READY from the guest agent within 1500 ms") != NULL);
		CHECK_EQ(leftovers(), 0);
	}
	int rc = machine_backend_open_why(&cfg, &b, err, sizeof err);
	if (rc) {
		/* ns could not open here: the error still names why not kvm. */
		printf("# AUTO open: %s: %s\n", strerror(-rc), err);
		CHECK(strstr(err, why) != NULL);
		return;
	}
	printf("# AUTO: backend=%s backend_reason=%s\n", machine_backend_name(b), machine_backend_reason(b));
	if (kvm_detect_native(NULL, NULL, why, sizeof why) != 0) {
		CHECK(!strcmp(machine_backend_name(b), "ns"));
		CHECK(!strcmp(machine_backend_reason(b), why));
	} else {
		CHECK(!strcmp(machine_backend_name(b), "kvm") ||
		      strstr(machine_backend_reason(b), "did not boot") != NULL);
	}
	machine_backend_close(b);
}

int main(void)
{
	const char *path = getenv("VMPOOL_KVM_GUEST");
	if (!path) {
		printf("SKIP: VMPOOL_KVM_GUEST not set (run through meson test)\n");
		return 77;
	}
	char why[256];
	if (kvm_detect_usable(NULL, why, sizeof why)) {
		printf("SKIP: /dev/kvm cannot make a VM here (%s)\n", why);
		return 77;
	}
	void *img;
	int rc = kvm_boot_read_file(path, 1 << 20, &img, &fx.guest_len);
	snprintf(fx.tmp, sizeof fx.tmp, "/tmp/kvm-machine-XXXXXX");
	if (rc || !mkdtemp(fx.tmp)) {
		printf("Bail out! %s: %s\n", rc ? path : "mkdtemp", strerror(rc ? -rc : errno));
		return 1;
	}
	fx.guest = img;
	/* The backends' runtime directories go here, where the test sees all. */
	setenv("TMPDIR", fx.tmp, 1);
	static const uint8_t spin[] = { 0xeb, 0xfe };  /* jmp . */
	static const uint8_t fault[] = { 0x0f, 0x0b }; /* ud2 */
	if (make_image(fx.img, "img", NULL, 0, true) || make_image(fx.spin, "spin", spin, sizeof spin, true) ||
	    make_image(fx.fault, "fault", fault, sizeof fault, true) ||
	    make_image(fx.noimg, "noimg", NULL, 0, false)) {
		printf("Bail out! cannot write the test images under %s\n", fx.tmp);
		return 1;
	}
	static const struct tap_test tests[] = {
		{ "open: template boots to READY, snapshot in the runtime dir, removed at close", test_open },
		{ "create, two machines with their own RAM, reset is pristine", test_machines },
		{ "a guest dying mid-request: errors, not hangs; !alive; reset revives", test_guest_dies },
		{ "destroy and close leave fds, threads and files as before", test_leaks },
		{ "resets in a row, then close: the reaper's queue is released too", test_reset_then_close },
		{ "no vmlinuz -ENOENT, spinning guest -ETIMEDOUT, faulting guest -EIO", test_bad_images },
		{ "AUTO: native only without kvm_pvm and with kvm_intel/kvm_amd", test_auto },
	};
	rc = tap_main(tests, sizeof tests / sizeof tests[0]);
	rundir_remove(fx.img);
	rundir_remove(fx.spin);
	rundir_remove(fx.fault);
	rundir_remove(fx.noimg);
	rmdir(fx.tmp);
	free(img);
	return rc;
}
