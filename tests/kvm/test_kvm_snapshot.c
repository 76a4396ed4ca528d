/* kvm monitor, third slice: snapshot and copy-on-write restore.
 * - the conformance guest boots, sends READY and answers one PING (its
 *   in-RAM counter is then 1); the vCPU is paused from the host thread
 *   (kvm_vm_pause) and the machine saved; the original then goes on;
 * - two machines restored from the snapshot run at the same time, each on
 *   its own socketpair with its own payloads; the counter each reports
 *   continues from the snapshot's 1 independently (a write in one is not
 *   seen in the other), and the snapshot files are unchanged afterwards;
 * - reset = release and restore again: the counter starts from the
 *   snapshot's value again; restore time is measured;
 * - hostile snapshots: missing, empty, truncated, grown, wrong magic or
 *   version, random byte flips, re-sealed files with missing, short,
 *   duplicate or out-of-range sections, a short or missing memory file,
 *   garbage KVM state: clean errors (or a guest that ends with an error),
 *   never a crash; fd counts are as before after every teardown.
 * SKIPs (77) when /dev/kvm cannot make a VM. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/proto.h"
#include "tests/common/tap.h"
#include "tests/common/testutil.h"
#include "tests/kvm/kvm_testutil.h"
#include "vmm/kvm/monitor/boot.h"
#include "vmm/kvm/monitor/serial.h"
#include "vmm/kvm/monitor/snapfile.h"
#include "vmm/kvm/monitor/snapshot.h"
#include "vmm/kvm/monitor/virtio_console.h"
#include "vmm/kvm/monitor/vm.h"

#define MEM (64ull << 20)
#define RUN_TIMEOUT_MS 60000
/* snapshot.c's machine-level tags and the KVM ones we poke at. */
#define TAG_REGS 1u
#define TAG_SREGS 2u
#define TAG_MSRS 6u
#define TAG_CONFIG 100u
#define TAG_SERIAL 101u
#define TAG_CONSOLE 102u

static int ping(int fd, uint32_t id, const char *echo)
{
	return guest_ping(fd, id, echo, (uint32_t)strlen(echo));
}

/* The counter the guest reported with its PONG for `id`, or -1. */
static long pong_count(int log, uint32_t id)
{
	char *s = read_log(log), key[32];
	long n = -1;
	snprintf(key, sizeof(key), "pong id=%u len=", id);
	const char *p = s ? strstr(s, key) : NULL;
	const char *c = p ? strstr(p, " n=") : NULL;
	if (c && !memchr(p, '\n', (size_t)(c - p)))
		n = strtol(c + 3, NULL, 10);
	free(s);
	return n;
}

static uint64_t hash_file(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	static uint64_t buf[1 << 13];
	uint64_t h = 0xcbf29ce484222325ull;
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (size_t i = 0; i < (size_t)n / 8; i++)
			h = (h ^ buf[i]) * 0x100000001b3ull;
		h ^= (uint64_t)n;
	}
	close(fd);
	return h;
}

/* ---- machines ------------------------------------------------------------ */

struct machine {
	struct kvm_vm vm;
	struct kvm_serial ser;
	struct kvm_console con;
	struct kvm_snap_machine m;
	int log, host;
	int run_rc;
	pthread_t runner;
};

static void *run_thread(void *arg)
{
	struct machine *mc = arg;
	mc->run_rc = kvm_vm_run(&mc->vm, RUN_TIMEOUT_MS);
	if (mc->run_rc)
		shutdown(mc->host, SHUT_RDWR); /* unblock whoever waits for a frame */
	return NULL;
}

static void host_timeout(int fd)
{
	struct timeval tv = { RUN_TIMEOUT_MS / 1000 + 5, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static int restore(struct machine *mc, const char *dir, double *ms)
{
	memset(mc, 0, sizeof(*mc));
	mc->host = -1;
	mc->log = memfd_create("kvm-serial", MFD_CLOEXEC);
	if (mc->log < 0)
		return -errno;
	mc->m = (struct kvm_snap_machine){ &mc->vm, &mc->ser, &mc->con };
	double t0 = now_s();
	int rc = kvm_snapshot_restore(dir, NULL, &mc->m, mc->log, &mc->host);
	if (ms)
		*ms = (now_s() - t0) * 1000.0;
	if (rc) {
		close(mc->log);
		mc->log = -1;
		return rc;
	}
	host_timeout(mc->host);
	return 0;
}

static void release(struct machine *mc)
{
	kvm_snapshot_release(&mc->m);
	if (mc->host >= 0)
		close(mc->host);
	if (mc->log >= 0)
		close(mc->log);
	mc->host = mc->log = -1;
}

/* ---- the original: boot, READY, one PING, pause, save --------------------- */

struct first_host {
	int fd;
	struct kvm_vm *vm;
	int ready_rc, ping_rc;
};

static void *first_host_thread(void *arg)
{
	struct first_host *fh = arg;
	struct vp_hdr h;
	uint8_t *pl = NULL;
	fh->ready_rc = vp_frame_read(fh->fd, &h, &pl);
	if (!fh->ready_rc && h.type != VP_READY)
		fh->ready_rc = -EPROTO;
	free(pl);
	if (!fh->ready_rc)
		fh->ping_rc = ping(fh->fd, 1, "first");
	/* As the monitor will: READY (and here one exchange) seen, stop. */
	kvm_vm_pause(fh->vm);
	return NULL;
}

static void boot_and_snapshot(const void *img, size_t img_len, const char *dir)
{
	struct machine o;
	memset(&o, 0, sizeof(o));
	o.log = memfd_create("kvm-serial", MFD_CLOEXEC);
	REQUIRE(o.log >= 0);
	REQUIRE_EQ(kvm_vm_open(&o.vm, NULL, MEM), 0);
	CHECK(o.vm.mem_fd >= 0);
	REQUIRE_EQ(kvm_serial_attach(&o.ser, &o.vm, KVM_SERIAL_COM1, o.log), 0);
	REQUIRE_EQ(kvm_console_open(&o.con, &o.vm, KVM_CONSOLE_BASE, KVM_CONSOLE_IRQ, &o.host), 0);
	o.m = (struct kvm_snap_machine){ &o.vm, &o.ser, &o.con };
	host_timeout(o.host);
	char dev[64], cmdline[128];
	REQUIRE_EQ(virtio_mmio_cmdline(&o.con.mmio, dev, sizeof(dev)), 0);
	snprintf(cmdline, sizeof(cmdline), "console=ttyS0 %s", dev);
	struct kvm_boot_cfg cfg = { img, img_len, NULL, 0, cmdline };
	REQUIRE_EQ(kvm_boot_linux(&o.vm, &cfg, NULL), 0);

	struct first_host fh = { .fd = o.host, .vm = &o.vm, .ready_rc = -1, .ping_rc = -1 };
	pthread_t th;
	REQUIRE_EQ(pthread_create(&th, NULL, first_host_thread, &fh), 0);
	uint64_t t0 = now_ms();
	int rc = kvm_vm_run(&o.vm, RUN_TIMEOUT_MS);
	if (rc != -EINTR)
		shutdown(o.host, SHUT_RDWR);
	pthread_join(th, NULL);
	printf("# boot to READY + 1 PING: %llu ms\n", (unsigned long long)(now_ms() - t0));
	CHECK_EQ(rc, -EINTR); /* paused, not finished */
	CHECK_EQ(fh.ready_rc, 0);
	CHECK_EQ(fh.ping_rc, 0);

	double s0 = now_s();
	CHECK_EQ(kvm_snapshot_save(&o.m, dir), 0);
	printf("# snapshot save: %.1f ms\n", (now_s() - s0) * 1000.0);
	char path[512];
	struct stat st;
	snprintf(path, sizeof(path), "%s/memory", dir);
	CHECK(stat(path, &st) == 0 && (uint64_t)st.st_size == MEM);
	printf("# memory file: %llu bytes, %llu allocated\n", (unsigned long long)st.st_size,
	       (unsigned long long)st.st_blocks * 512);
	CHECK((uint64_t)st.st_blocks * 512 < MEM / 4); /* sparse: only touched pages */
	snprintf(path, sizeof(path), "%s/state", dir);
	CHECK(stat(path, &st) == 0 && st.st_size > 0);
	printf("# state file: %llu bytes\n", (unsigned long long)st.st_size);

	/* Saving leaves the original runnable: it goes on from the same point. */
	pthread_t rt;
	REQUIRE_EQ(pthread_create(&rt, NULL, run_thread, &o), 0);
	CHECK_EQ(ping(o.host, 2, "orig"), 0);
	CHECK_EQ(ping(o.host, 3, "bye"), 0);
	pthread_join(rt, NULL);
	CHECK_EQ(o.run_rc, 0);
	CHECK_EQ(o.vm.exit_status, 0);
	CHECK_EQ(pong_count(o.log, 1), 1);
	CHECK_EQ(pong_count(o.log, 2), 2);
	release(&o);
}

/* ---- restored machines ----------------------------------------------------- */

struct talk {
	struct machine *mc;
	const char *name;
	uint32_t first_id;
	int pings;
	int rc;
};

static void *talk_thread(void *arg)
{
	struct talk *t = arg;
	char echo[64];
	t->rc = 0;
	for (int i = 0; i < t->pings && !t->rc; i++) {
		snprintf(echo, sizeof(echo), "%s-%d", t->name, i);
		t->rc = ping(t->mc->host, t->first_id + (uint32_t)i, echo);
	}
	if (!t->rc)
		t->rc = ping(t->mc->host, t->first_id + (uint32_t)t->pings, "bye");
	return NULL;
}

/* Runs a restored machine to its end while `pings` PINGs (then bye) go in. */
static void start(struct machine *mc, struct talk *t, pthread_t *th)
{
	REQUIRE_EQ(pthread_create(&mc->runner, NULL, run_thread, mc), 0);
	REQUIRE_EQ(pthread_create(th, NULL, talk_thread, t), 0);
}

static void finish(struct machine *mc, pthread_t th)
{
	pthread_join(mc->runner, NULL);
	pthread_join(th, NULL);
}

static void test_restore_two(const char *dir)
{
	char mem[512], state[512];
	snprintf(mem, sizeof(mem), "%s/memory", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	uint64_t hm = hash_file(mem), hs = hash_file(state);

	struct machine a, b;
	double ta, tb;
	REQUIRE_EQ(restore(&a, dir, &ta), 0);
	REQUIRE_EQ(restore(&b, dir, &tb), 0);
	printf("# restore: %.2f ms, %.2f ms\n", ta, tb);
	CHECK_EQ(a.vm.mem_fd, -1); /* private file mapping, no memfd */
	CHECK(a.m.serial && a.m.console && b.m.console);
	struct talk at = { &a, "alpha", 10, 3, -1 }, bt = { &b, "bravo", 20, 1, -1 };
	pthread_t tha, thb;
	uint64_t t0 = now_ms();
	start(&a, &at, &tha);
	start(&b, &bt, &thb);
	finish(&a, tha);
	finish(&b, thb);
	printf("# two restored machines ran %llu ms\n", (unsigned long long)(now_ms() - t0));
	CHECK_EQ(at.rc, 0);
	CHECK_EQ(bt.rc, 0);
	CHECK_EQ(a.run_rc, 0);
	CHECK_EQ(b.run_rc, 0);
	CHECK_EQ(a.vm.exit_status, 0);
	CHECK_EQ(b.vm.exit_status, 0);
	/* Each continues from the snapshot's count (1) on its own. */
	CHECK_EQ(pong_count(a.log, 10), 2);
	CHECK_EQ(pong_count(a.log, 11), 3);
	CHECK_EQ(pong_count(a.log, 12), 4);
	CHECK_EQ(pong_count(a.log, 13), 5);
	CHECK_EQ(pong_count(b.log, 20), 2);
	CHECK_EQ(pong_count(b.log, 21), 3);
	char *la = read_log(a.log);
	/* It went on, it did not boot again. */
	CHECKF(la && !strstr(la, "kvm-conformance-guest") && strstr(la, "\nstatus=0\n"), "log:\n%s",
	       la ? la : "-");
	free(la);
	/* The device state came along: no queue errors, bytes as sent. */
	CHECK_EQ(a.con.queue_errors, 0);
	CHECK_EQ(b.con.queue_errors, 0);
	release(&a);
	release(&b);
	CHECK(hash_file(mem) == hm);
	CHECK(hash_file(state) == hs);
}

static void test_reset(const char *dir)
{
	struct machine a;
	double sum = 0, max = 0, min = 1e9, rel = 0;
	const int rounds = 20;
	for (int i = 0; i < rounds; i++) {
		double t;
		REQUIRE_EQ(restore(&a, dir, &t), 0);
		sum += t;
		max = t > max ? t : max;
		min = t < min ? t : min;
		if (i % 7 == 0) { /* and some of them talk: count from 1 again */
			struct talk at = { &a, "reset", 30, 1, -1 };
			pthread_t th;
			start(&a, &at, &th);
			finish(&a, th);
			CHECK_EQ(at.rc, 0);
			CHECK_EQ(a.run_rc, 0);
			CHECKF(pong_count(a.log, 30) == 2, "round %d: n=%ld", i, pong_count(a.log, 30));
		}
		double r0 = now_s();
		release(&a);
		rel += (now_s() - r0) * 1000.0 / rounds;
	}
	printf("# release (teardown): avg %.2f ms\n", rel);
	printf("# reset (restore) over %d rounds: min %.2f avg %.2f max %.2f ms\n", rounds, min, sum / rounds,
	       max);
	/* For scale: what creating a bare VM (irqchip, PIT, vCPU, CPUID) and
	 * tearing one down cost. */
	double bare = 0, teardown = 0;
	for (int i = 0; i < 5; i++) {
		struct kvm_vm vm;
		double t0 = now_s();
		CHECK_EQ(kvm_vm_open(&vm, NULL, MEM), 0);
		double t1 = now_s();
		kvm_vm_close(&vm);
		bare += (t1 - t0) * 1000.0 / 5;
		teardown += (now_s() - t1) * 1000.0 / 5;
	}
	printf("# bare kvm_vm_open: avg %.2f ms, kvm_vm_close: avg %.2f ms\n", bare, teardown);
}

/* ---- hostile snapshots -------------------------------------------------------- */

struct bad {
	char dir[256], state[300], mem[300];
	uint8_t *orig;
	size_t len;
	struct snapfile_r r;
};

/* Restores from the bad directory; whatever happens, nothing stays open. */
static int try_restore(struct bad *b)
{
	struct machine mc;
	int fds = count_fds();
	int rc = restore(&mc, b->dir, NULL);
	if (rc == 0) {
		/* KVM took the state: the guest may run, but must end cleanly. */
		int run = kvm_vm_run(&mc.vm, 500);
		printf("# restored anyway; run: %d\n", run);
		release(&mc);
	}
	CHECKF(count_fds() == fds, "fds %d -> %d (rc %d)", fds, count_fds(), rc);
	return rc;
}

static int try_state(struct bad *b, const void *buf, size_t len)
{
	int rc = write_file(b->state, buf, len);
	CHECK_EQ(rc, 0);
	return rc ? rc : try_restore(b);
}

/* Re-seals the original's sections with one changed, dropped or added. */
static int try_sections(struct bad *b, uint32_t tag, const void *repl, int64_t repl_len, bool dup)
{
	struct snapfile_w w;
	snapfile_w_init(&w);
	for (uint32_t i = 0; i < b->r.nsect; i++) {
		const struct snapfile_sect *s = &b->r.sect[i];
		if (s->tag != tag) {
			snapfile_w_add(&w, s->tag, s->data, s->len);
		} else if (repl_len >= 0) {
			snapfile_w_add(&w, s->tag, repl, (uint32_t)repl_len);
			if (dup)
				snapfile_w_add(&w, s->tag, repl, (uint32_t)repl_len);
		}
	}
	const uint8_t *buf;
	size_t len;
	int rc = snapfile_w_seal(&w, &buf, &len);
	CHECK_EQ(rc, 0);
	if (!rc)
		rc = try_state(b, buf, len);
	snapfile_w_free(&w);
	return rc;
}

static const void *sect(struct bad *b, uint32_t tag, uint32_t *len)
{
	static const uint8_t none[8];
	const struct snapfile_sect *s = snapfile_find(&b->r, tag);
	CHECKF(s, "no section %u", tag);
	*len = s ? s->len : 0;
	return s ? s->data : none;
}

static void test_hostile(const char *good)
{
	struct bad b;
	memset(&b, 0, sizeof(b));
	snprintf(b.dir, sizeof(b.dir), "%s-bad", good);
	snprintf(b.state, sizeof(b.state), "%s/state", b.dir);
	snprintf(b.mem, sizeof(b.mem), "%s/memory", b.dir);
	REQUIRE(mkdir(b.dir, 0700) == 0);
	char path[512];
	snprintf(path, sizeof(path), "%s/state", good);
	void *orig;
	REQUIRE_EQ(kvm_boot_read_file(path, SNAPFILE_MAX, &orig, &b.len), 0);
	b.orig = orig;
	REQUIRE_EQ(snapfile_parse(&b.r, b.orig, b.len), 0);
	snprintf(path, sizeof(path), "%s/memory", good);
	REQUIRE(symlink(path, b.mem) == 0); /* the real memory, read-only use */

	CHECK_EQ(try_restore(&b), -ENOENT);	   /* no state file */
	CHECK_EQ(try_state(&b, b.orig, b.len), 0); /* the control: a good copy works */
	CHECK_EQ(try_state(&b, "", 0), -EBADMSG);
	const size_t cuts[] = { 1, 8, 31, 32, 33, 40, b.len / 2, b.len - 8, b.len - 1 };
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
		CHECKF(try_state(&b, b.orig, cuts[i]) == -EBADMSG, "cut at %zu", cuts[i]);
	uint8_t *v = malloc(b.len + 8);
	REQUIRE(v);
	memcpy(v, b.orig, b.len);
	v[b.len] = 0;
	CHECK_EQ(try_state(&b, v, b.len + 1), -EBADMSG); /* grown */
	v[0] ^= 0x20;
	CHECK_EQ(try_state(&b, v, b.len), -EBADMSG); /* magic */
	v[0] ^= 0x20;
	uint32_t ver = 2;
	memcpy(v + 8, &ver, 4);
	CHECK_EQ(try_state(&b, v, b.len), -EPROTONOSUPPORT);
	ver = 0;
	memcpy(v + 8, &ver, 4);
	CHECK_EQ(try_state(&b, v, b.len), -EPROTONOSUPPORT);
	/* Random damage anywhere: the checksum (or magic/version) catches it. */
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	int clean = 0;
	for (int i = 0; i < 300; i++) {
		memcpy(v, b.orig, b.len);
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		v[seed % b.len] ^= (uint8_t)(1u << (seed >> 61));
		int rc = try_state(&b, v, b.len);
		clean += rc == -EBADMSG || rc == -EPROTONOSUPPORT;
	}
	CHECKF(clean == 300, "%d of 300 flips rejected cleanly", clean);
	free(v);

	/* Well-sealed files whose contents are wrong. */
	uint32_t len;
	CHECK_EQ(try_sections(&b, TAG_CONSOLE, NULL, -1, false), -EBADMSG); /* missing */
	const void *cfg = sect(&b, TAG_CONFIG, &len);
	CHECK_EQ(try_sections(&b, TAG_CONFIG, cfg, len - 1, false), -EBADMSG); /* short */
	CHECK_EQ(try_sections(&b, TAG_CONFIG, cfg, len, true), -EBADMSG);      /* duplicate */
	uint8_t cfgb[64];
	REQUIRE(len <= sizeof(cfgb));
	memcpy(cfgb, cfg, len);
	uint64_t mem2 = MEM * 2;
	memcpy(cfgb, &mem2, 8); /* mem_size no longer matches the memory file */
	CHECK_EQ(try_sections(&b, TAG_CONFIG, cfgb, len, false), -EBADMSG);
	uint64_t odd = MEM + 1;
	memcpy(cfgb, &odd, 8);
	CHECK_EQ(try_sections(&b, TAG_CONFIG, cfgb, len, false), -EBADMSG);

	struct kvm_console_state cs;
	const void *csp = sect(&b, TAG_CONSOLE, &len);
	REQUIRE_EQ(len, sizeof(cs));
	memcpy(&cs, csp, sizeof(cs));
	cs.mmio.q[0].num = 3; /* a live queue no driver could have set up */
	CHECK_EQ(try_sections(&b, TAG_CONSOLE, &cs, sizeof(cs), false), -EBADMSG);
	memcpy(&cs, csp, sizeof(cs));
	cs.mmio.q[1].desc = MEM - 16; /* ring past RAM */
	CHECK_EQ(try_sections(&b, TAG_CONSOLE, &cs, sizeof(cs), false), -EBADMSG);
	memcpy(&cs, csp, sizeof(cs));
	cs.tx_held = 1;
	cs.tx_off = 1u << 30; /* held, with more sent than the chain holds */
	CHECK_EQ(try_sections(&b, TAG_CONSOLE, &cs, sizeof(cs), false), -EBADMSG);
	memcpy(&cs, csp, sizeof(cs));
	cs.mmio.driver_features |= 1ull << 1; /* MULTIPORT, never offered */
	CHECK_EQ(try_sections(&b, TAG_CONSOLE, &cs, sizeof(cs), false), -EBADMSG);

	struct kvm_serial_state ss;
	memcpy(&ss, sect(&b, TAG_SERIAL, &len), sizeof(ss));
	REQUIRE_EQ(len, sizeof(ss));
	ss.ier = 0xff;
	CHECK_EQ(try_sections(&b, TAG_SERIAL, &ss, sizeof(ss), false), -EBADMSG);

	const void *regs = sect(&b, TAG_REGS, &len);
	CHECK_EQ(try_sections(&b, TAG_REGS, regs, len + 8, false), -EBADMSG);
	const uint8_t *msrs = sect(&b, TAG_MSRS, &len);
	uint8_t *m2 = malloc(len);
	REQUIRE(m2);
	memcpy(m2, msrs, len);
	uint32_t apic_base = 0x1b; /* not one we save: a crafted file may not set it */
	memcpy(m2, &apic_base, 4);
	CHECK_EQ(try_sections(&b, TAG_MSRS, m2, len, false), -EBADMSG);
	CHECK_EQ(try_sections(&b, TAG_MSRS, m2, len - 3, false), -EBADMSG);
	free(m2);
	/* Garbage segment state: KVM refuses it, or the guest dies at once. */
	uint8_t garbage[512];
	const void *sregs = sect(&b, TAG_SREGS, &len);
	REQUIRE(len <= sizeof(garbage));
	memcpy(garbage, sregs, len);
	for (uint32_t i = 0; i < 64 && i < len; i++)
		garbage[i] = (uint8_t)(0xa5 ^ i * 37);
	int rc = try_sections(&b, TAG_SREGS, garbage, len, false);
	printf("# garbage sregs: restore %d\n", rc);
	CHECK(rc <= 0);

	/* The memory file: short, or gone. */
	REQUIRE_EQ(write_file(b.state, b.orig, b.len), 0);
	unlink(b.mem);
	CHECK_EQ(try_restore(&b), -ENOENT);
	int fd = open(b.mem, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	REQUIRE(fd >= 0);
	CHECK(ftruncate(fd, (off_t)(MEM - 4096)) == 0);
	close(fd);
	CHECK_EQ(try_restore(&b), -EBADMSG);

	unlink(b.mem);
	unlink(b.state);
	rmdir(b.dir);
	snapfile_free(&b.r);
	free(orig);
}

int main(void)
{
	const char *path = getenv("VMPOOL_KVM_GUEST");
	struct kvm_vm probe;
	int rc = kvm_vm_open(&probe, NULL, MEM);
	kvm_vm_close(&probe);
	if (rc || !path) {
		printf("SKIP: %s\n", !path ? "VMPOOL_KVM_GUEST not set (run through meson test)"
					   : "/dev/kvm cannot make a VM here");
		if (rc)
			printf("# %s\n", strerror(-rc));
		return 77;
	}
	void *img;
	size_t len;
	rc = kvm_boot_read_file(path, 1 << 20, &img, &len);
	if (rc) {
		printf("Bail out! %s: %s\n", path, strerror(-rc));
		return 1;
	}
	int fds = count_fds();
	char dir[] = "/tmp/kvm-snap-XXXXXX";
	if (!mkdtemp(dir)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}

	int mark = tap_mark();
	boot_and_snapshot(img, len, dir);
	tap_ok_since(mark, "boot, READY, pause, snapshot; the original goes on");
	mark = tap_mark();
	test_restore_two(dir);
	tap_ok_since(mark,
		     "two restored machines answer on their own channels, RAM independent, files unchanged");
	mark = tap_mark();
	test_reset(dir);
	tap_ok_since(mark, "reset = restore again: counter from the snapshot's value");
	mark = tap_mark();
	test_hostile(dir);
	tap_ok_since(mark, "corrupt, truncated, wrong-version, inconsistent snapshots: clean errors");

	char p[512];
	snprintf(p, sizeof(p), "%s/memory", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/state", dir);
	unlink(p);
	rmdir(dir);
	free(img);
	CHECKF(count_fds() == fds, "fds %d -> %d", fds, count_fds());
	return tap_done();
}
