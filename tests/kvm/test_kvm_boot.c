/* kvm monitor, first slice: boots the conformance guest through the Linux
 * boot path and checks its serial report (e820, command line, initrd
 * placement and checksum), its exit status and a clean teardown; hostile
 * and truncated images give clean errors; a guest that spins, halts or
 * faults ends the run loop cleanly. SKIPs when /dev/kvm cannot make a VM. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tests/common/tap.h"
#include "tests/kvm/kvm_testutil.h"
#include "tests/common/testutil.h"
#include "vmm/kvm/monitor/boot.h"
#include "vmm/kvm/monitor/bootparam.h"
#include "vmm/kvm/monitor/serial.h"
#include "vmm/kvm/monitor/vm.h"

#define MEM (64ull << 20)
#define RUN_TIMEOUT_MS 60000

struct fixture {
	uint8_t *image;
	size_t image_len;
};

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* The whole report the guest must print for this boot. */
static void expected_report(char *out, size_t cap, const char *cmdline, uint64_t initrd, size_t initrd_len,
			    uint32_t sum)
{
	snprintf(out, cap,
		 "kvm-conformance-guest\n"
		 "proto=020f loader=ff uart=ok\n"
		 "e820 3\n"
		 "e820 0 0000000000000000 000000000009fc00 1\n"
		 "e820 1 000000000009fc00 0000000000060400 2\n"
		 "e820 2 0000000000100000 %016llx 1\n"
		 "cmdline=%s\n"
		 "initrd=0x%08llx+0x%08zx sum=%08x\n"
		 "virtio=absent\n" /* announced on the command line, but nothing there */
		 "status=0\n",
		 (unsigned long long)(MEM - 0x100000), cmdline, (unsigned long long)initrd, initrd_len, sum);
}

static void test_boot(struct fixture *fx)
{
	int fds_before = count_fds();
	int log = memfd_create("kvm-serial", MFD_CLOEXEC);
	REQUIRE(log >= 0);
	size_t initrd_len = 100 * 1024 + 123; /* not page sized: the length must be exact */
	uint8_t *initrd = malloc(initrd_len);
	REQUIRE(initrd);
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < initrd_len; i++)
		initrd[i] = (uint8_t)xorshift(&seed);
	const char *cmdline = "console=ttyS0 virtio_mmio.device=4K@0xd0000000:5 vmpool.test=\"a b\" end";

	struct kvm_vm vm;
	struct kvm_serial uart;
	struct kvm_boot_layout lay;
	int rc = kvm_vm_open(&vm, NULL, MEM);
	CHECK_EQ(rc, 0);
	if (!rc)
		rc = kvm_serial_attach(&uart, &vm, KVM_SERIAL_COM1, log);
	CHECK_EQ(rc, 0);
	struct kvm_boot_cfg cfg = { fx->image, fx->image_len, initrd, initrd_len, cmdline };
	if (!rc)
		rc = kvm_boot_linux(&vm, &cfg, &lay);
	CHECK_EQ(rc, 0);
	uint64_t t0 = now_ms();
	if (!rc)
		rc = kvm_vm_run(&vm, RUN_TIMEOUT_MS);
	printf("# guest ran %llu ms, %llu exits\n", (unsigned long long)(now_ms() - t0),
	       (unsigned long long)vm.exits);
	CHECK_EQ(rc, 0);
	CHECK(vm.stopped);
	CHECK_EQ(vm.exit_status, 0);
	CHECK_EQ(uart.log_err, 0);

	/* Placed where the boot protocol says: as high as RAM allows, page
	 * aligned, and the e820 table as the report shows. */
	uint64_t want_initrd = (MEM - initrd_len) & ~0xfffull;
	CHECK_EQ(lay.initrd, want_initrd);
	CHECK_EQ(lay.entry, 0x100200);
	CHECK_EQ(lay.e820_entries, 3);
	char *got = read_log(log);
	char want[4096];
	expected_report(want, sizeof(want), cmdline, want_initrd, initrd_len, fnv1a(initrd, initrd_len));
	CHECKF(got && strcmp(got, want) == 0, "report:\n%s\nwanted:\n%s", got ? got : "(none)", want);
	free(got);
	free(initrd);
	kvm_vm_close(&vm);
	kvm_vm_close(&vm); /* idempotent */
	close(log);
	CHECK_EQ(count_fds(), fds_before);
}

/* The image, damaged by `mutate`, must be refused with `want` by both the
 * parser and the loader, and leave the VM usable. */
static void expect_refused(struct fixture *fx, struct kvm_vm *vm, const char *what, size_t len,
			   void (*mutate)(uint8_t *img, size_t len), int want)
{
	uint8_t *img = malloc(fx->image_len);
	if (!CHECK(img))
		return;
	memcpy(img, fx->image, fx->image_len);
	if (mutate)
		mutate(img, len);
	struct kvm_bzimage bz;
	struct kvm_boot_cfg cfg = { img, len, NULL, 0, "x" };
	int p = kvm_bzimage_parse(img, len, &bz);
	int l = kvm_boot_linux(vm, &cfg, NULL);
	CHECKF(p == want && l == want, "%s: parse %d, load %d, wanted %d", what, p, l, want);
	free(img);
}

static void m_magic(uint8_t *p, size_t n)
{
	(void)n;
	p[BP_HEADER + 3] = 'X';
}
static void m_bootflag(uint8_t *p, size_t n)
{
	(void)n;
	p[BP_BOOT_FLAG] = 0;
}
static void m_v205(uint8_t *p, size_t n)
{
	(void)n;
	p[BP_VERSION] = 0x05;
	p[BP_VERSION + 1] = 2;
}
static void m_v20b(uint8_t *p, size_t n)
{
	(void)n;
	p[BP_VERSION] = 0x0b;
	p[BP_VERSION + 1] = 2;
}
static void m_no64(uint8_t *p, size_t n)
{
	(void)n;
	p[BP_XLOADFLAGS] &= (uint8_t)~BP_XLF_KERNEL_64;
}
static void m_hdrlong(uint8_t *p, size_t n)
{
	(void)n;
	p[BP_JUMP + 1] = 0xff;
}
static void m_hdrshort(uint8_t *p, size_t n)
{
	(void)n;
	p[BP_JUMP + 1] = 0x10;
}
static void m_sects(uint8_t *p, size_t n)
{
	(void)n;
	p[BP_SETUP_SECTS] = 0xff;
}
static void m_syssize(uint8_t *p, size_t n)
{
	(void)n;
	p[BP_SYSSIZE + 2] = 0x10;
}

static void test_hostile_images(struct fixture *fx)
{
	struct kvm_vm vm;
	REQUIRE_EQ(kvm_vm_open(&vm, NULL, MEM), 0);
	size_t n = fx->image_len;
	expect_refused(fx, &vm, "empty", 0, NULL, -ENOEXEC);
	expect_refused(fx, &vm, "truncated in the boot sector", 300, NULL, -ENOEXEC);
	expect_refused(fx, &vm, "truncated in the header", BP_HEADER + 8, NULL, -ENOEXEC);
	expect_refused(fx, &vm, "setup only", 1024, NULL, -ENOEXEC);
	expect_refused(fx, &vm, "truncated payload", n - 64, NULL, -ENOEXEC);
	expect_refused(fx, &vm, "bad HdrS", n, m_magic, -ENOEXEC);
	expect_refused(fx, &vm, "bad boot flag", n, m_bootflag, -ENOEXEC);
	expect_refused(fx, &vm, "protocol 2.05", n, m_v205, -ENOEXEC);
	expect_refused(fx, &vm, "protocol 2.11", n, m_v20b, -ENOEXEC);
	expect_refused(fx, &vm, "no XLF_KERNEL_64", n, m_no64, -ENOEXEC);
	expect_refused(fx, &vm, "header too short", n, m_hdrshort, -ENOEXEC);
	expect_refused(fx, &vm, "setup_sects past file", n, m_sects, -ENOEXEC);
	expect_refused(fx, &vm, "syssize past file", n, m_syssize, -ENOEXEC);

	/* A header longer than the fields we know is copied only that far. */
	uint8_t *longhdr = malloc(n);
	if (CHECK(longhdr)) {
		memcpy(longhdr, fx->image, n);
		m_hdrlong(longhdr, n);
		struct kvm_bzimage bz;
		CHECK_EQ(kvm_bzimage_parse(longhdr, n, &bz), 0);
		CHECK_EQ(bz.hdr_end, BP_HEADER_MAX_END);
	}
	free(longhdr);

	/* Loader limits on a valid image. */
	char *longcmd = malloc(4096);
	uint8_t *big = malloc(MEM);
	if (CHECK(longcmd && big)) {
		memset(longcmd, 'a', 4095);
		longcmd[4095] = 0;
		struct kvm_boot_cfg cfg = { fx->image, n, NULL, 0, longcmd };
		CHECK_EQ(kvm_boot_linux(&vm, &cfg, NULL), -E2BIG); /* header says 2047 */
		cfg = (struct kvm_boot_cfg){ fx->image, n, big, MEM, "" };
		CHECK_EQ(kvm_boot_linux(&vm, &cfg, NULL), -ENOMEM);
		cfg = (struct kvm_boot_cfg){ fx->image, n, NULL, 1, "" };
		CHECK_EQ(kvm_boot_linux(&vm, &cfg, NULL), -EINVAL);
	}
	free(longcmd);
	free(big);

	/* Random header damage: never a crash (ASan watches), only 0 or a
	 * clean error; whatever loads stays inside guest RAM. */
	uint8_t *img = malloc(n);
	uint64_t seed = 12345;
	int loaded = 0;
	for (int i = 0; img && i < 3000; i++) {
		memcpy(img, fx->image, n);
		int flips = 1 + (int)(xorshift(&seed) % 4);
		for (int f = 0; f < flips; f++)
			img[BP_SETUP_SECTS + xorshift(&seed) % (BP_HEADER_MAX_END - BP_SETUP_SECTS)] =
				(uint8_t)xorshift(&seed);
		size_t len = (xorshift(&seed) % 8) ? n : (size_t)(xorshift(&seed) % n);
		struct kvm_boot_cfg cfg = { img, len, img, 4096, "fuzz" };
		int rc = kvm_boot_linux(&vm, &cfg, NULL);
		CHECKF(rc == 0 || rc == -ENOEXEC || rc == -E2BIG || rc == -ENOMEM, "fuzz %d: rc %d", i, rc);
		loaded += rc == 0;
	}
	printf("# fuzz: %d of 3000 damaged images still loaded\n", loaded);
	free(img);
	kvm_vm_close(&vm);
}

/* A guest that spins, halts with interrupts off (sleeps in the kernel) or
 * faults (no exception can be delivered) must end the run loop cleanly. */
static int run_code(struct fixture *fx, const uint8_t *code, size_t len, unsigned timeout_ms)
{
	struct kvm_vm vm;
	int rc = kvm_vm_open(&vm, NULL, MEM);
	struct kvm_boot_cfg cfg = { fx->image, fx->image_len, NULL, 0, "" };
	if (!rc)
		rc = kvm_boot_linux(&vm, &cfg, NULL);
	if (!rc) {
		memcpy(kvm_vm_gpa(&vm, 0x100200, len), code, len); /* replace the entry */
		rc = kvm_vm_run(&vm, timeout_ms);
	}
	kvm_vm_close(&vm);
	return rc;
}

static void test_stuck_guests(struct fixture *fx)
{
	static const uint8_t spin[] = { 0xeb, 0xfe };	    /* jmp . */
	static const uint8_t halt[] = { 0xf4, 0xeb, 0xfd }; /* hlt; jmp back */
	static const uint8_t fault[] = { 0x0f, 0x0b };	    /* ud2 */
	uint64_t t0 = now_ms();
	CHECK_EQ(run_code(fx, spin, sizeof(spin), 300), -ETIMEDOUT);
	CHECK_EQ(run_code(fx, halt, sizeof(halt), 300), -ETIMEDOUT);
	CHECKF(now_ms() - t0 < 5000, "timeouts took %llu ms", (unsigned long long)(now_ms() - t0));
	CHECK_EQ(run_code(fx, fault, sizeof(fault), 10000), -EFAULT);
}

static void test_bad_args(struct fixture *fx)
{
	(void)fx;
	struct kvm_vm vm;
	CHECK_EQ(kvm_vm_open(&vm, NULL, 1 << 20), -EINVAL);
	CHECK_EQ(kvm_vm_open(&vm, NULL, KVM_VM_MEM_MAX + 4096), -EINVAL);
	CHECK_EQ(kvm_vm_open(&vm, NULL, MEM + 1), -EINVAL);
	CHECK_EQ(kvm_vm_open(&vm, "/nonexistent/kvm", MEM), -ENOENT);
	kvm_vm_close(&vm);
	REQUIRE_EQ(kvm_vm_open(&vm, NULL, MEM), 0);
	struct kvm_serial a, b;
	CHECK_EQ(kvm_serial_attach(&a, &vm, KVM_SERIAL_COM1, 2), 0);
	CHECK_EQ(kvm_serial_attach(&b, &vm, KVM_SERIAL_COM1 + 4, 2), -EEXIST);
	CHECK(kvm_vm_gpa(&vm, MEM - 1, 2) == NULL);
	CHECK(kvm_vm_gpa(&vm, UINT64_MAX, 2) == NULL);
	CHECK(kvm_vm_gpa(&vm, MEM - 1, 1) != NULL);
	kvm_vm_close(&vm);
}

int main(void)
{
	const char *path = getenv("VMPOOL_KVM_GUEST");
	if (!path) {
		printf("SKIP: VMPOOL_KVM_GUEST not set (run through meson test)\n");
		return 77;
	}
	struct kvm_vm probe;
	int rc = kvm_vm_open(&probe, NULL, MEM);
	kvm_vm_close(&probe);
	if (rc) {
		printf("SKIP: /dev/kvm cannot make a VM here: %s\n", strerror(-rc));
		return 77;
	}
	struct fixture fx;
	void *img;
	rc = kvm_boot_read_file(path, 1 << 20, &img, &fx.image_len);
	if (rc) {
		printf("Bail out! %s: %s\n", path, strerror(-rc));
		return 1;
	}
	fx.image = img;

	static const struct {
		const char *name;
		void (*fn)(struct fixture *);
	} tests[] = {
		{ "conformance guest boots and reports boot_params", test_boot },
		{ "hostile and truncated images are refused cleanly", test_hostile_images },
		{ "spinning, halted and faulting guests end the run loop", test_stuck_guests },
		{ "argument checks", test_bad_args },
	};
	size_t n = sizeof(tests) / sizeof(tests[0]);
	tap_plan((int)n);
	for (size_t i = 0; i < n; i++) {
		int mark = tap_mark();
		tests[i].fn(&fx);
		tap_ok_since(mark, "%s", tests[i].name);
	}
	free(img);
	return tap_done();
}
