/* Unit tests of the daemon's pure parts: output buffers (spill to disk,
 * no byte lost, the per-machine budget), the host budget check, the ctl
 * words and the inode layout. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/budget.h"
#include "fs/ctlparse.h"
#include "fs/ino.h"
#include "fs/mountcheck.h"
#include "vmm/machine.h"
#include "fs/output.h"
#include "tests/common/tap.h"

static void test_output(void)
{
	struct outbuf o;
	outbuf_init(&o, 1000, getenv("TMPDIR"));
	char *src = malloc(100000), *dst = malloc(100000);
	for (int i = 0; i < 100000; i++)
		src[i] = (char)(i * 7 + i / 13);
	size_t off = 0;
	/* Uneven chunks across the memory/file boundary. */
	for (size_t step = 1; off < 100000; step = step * 3 % 4999 + 1) {
		size_t k = step < 100000 - off ? step : 100000 - off;
		TAP_OK(outbuf_append(&o, src + off, k) == 0);
		off += k;
	}
	TAP_OK(outbuf_len(&o) == 100000);
	TAP_OK(o.mem_len == 1000 && o.fd >= 0);
	TAP_OK(outbuf_read(&o, 0, dst, 100000) == 100000);
	TAP_OK(memcmp(src, dst, 100000) == 0);
	TAP_OK(outbuf_read(&o, 990, dst, 20) == 20 && memcmp(dst, src + 990, 20) == 0);
	TAP_OK(outbuf_read(&o, 99990, dst, 100) == 10);
	TAP_OK(outbuf_read(&o, 100000, dst, 100) == 0);
	outbuf_reset(&o);
	TAP_OK(outbuf_len(&o) == 0 && o.fd < 0);
	TAP_OK(outbuf_append(&o, "abc", 3) == 0 && outbuf_read(&o, 0, dst, 10) == 3);
	outbuf_free(&o);
	free(src);
	free(dst);
}

/* Two streams on one budget: the stream that crosses it keeps the prefix
 * that fits, then both get EDQUOT; a reset gives the bytes back. */
static void test_output_budget(void)
{
	struct outbudget b = { .max = 5000 };
	struct outbuf o[2];
	char buf[4000], dst[4000];
	memset(buf, 'x', sizeof buf);
	for (int i = 0; i < 2; i++) {
		outbuf_init(&o[i], 1000, getenv("TMPDIR"));
		outbuf_set_budget(&o[i], &b);
	}
	TAP_OK(outbuf_append(&o[0], buf, 3000) == 0);
	TAP_OK(outbuf_append(&o[1], buf, 1500) == 0 && b.used == 4500);
	TAP_OK(outbuf_append(&o[0], "0123456789", 10) == 0);
	char ys[600];
	memset(ys, 'y', sizeof ys);
	TAP_OK(outbuf_append(&o[0], ys, sizeof ys) == -EDQUOT);
	TAP_OK(b.used == 5000 && outbuf_len(&o[0]) == 3500 && outbuf_len(&o[1]) == 1500);
	TAP_OK(outbuf_read(&o[0], 3000, dst, sizeof dst) == 500 && memcmp(dst, "0123456789yyy", 13) == 0 &&
	       dst[499] == 'y');
	TAP_OK(outbuf_append(&o[1], "z", 1) == -EDQUOT && outbuf_len(&o[1]) == 1500);
	outbuf_reset(&o[0]);
	TAP_OK(b.used == 1500);
	TAP_OK(outbuf_append(&o[0], buf, 3500) == 0 && b.used == 5000);
	outbuf_free(&o[0]);
	outbuf_free(&o[1]);
	TAP_OK(b.used == 0);
	/* No budget (max 0): unbounded, as before. */
	struct outbudget none = { 0 };
	outbuf_init(&o[0], 10, getenv("TMPDIR"));
	outbuf_set_budget(&o[0], &none);
	TAP_OK(outbuf_append(&o[0], buf, sizeof buf) == 0 && outbuf_len(&o[0]) == sizeof buf);
	outbuf_free(&o[0]);
}

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* The host check against files standing for pid_max and file-max. */
static void test_host_budget(void)
{
	char dir[] = "/tmp/vp-budget.XXXXXX", pm[64], fm[64];
	if (!mkdtemp(dir)) {
		TAP_OK(0);
		return;
	}
	snprintf(pm, sizeof pm, "%s/pid_max", dir);
	snprintf(fm, sizeof fm, "%s/file-max", dir);
	const struct budget_sources src = { pm, fm };
	char *msg = NULL;
	size_t mlen = 0;
	FILE *log = open_memstream(&msg, &mlen);
	uint32_t pids = 1024, nofile = 1024;

	/* Everything fits: untouched, nothing said. */
	put(pm, "4194304\n");
	put(fm, "9223372036854775807\n");
	TAP_OK(budget_clamp_at(&src, 64, &pids, &nofile, log) == 0 && pids == 1024 && nofile == 1024);
	fflush(log);
	TAP_OK(mlen == 0);
	/* pid_max: 64 x 1024 > 32768 / 2: 256 each, said. */
	put(pm, "32768\n");
	TAP_OK(budget_clamp_at(&src, 64, &pids, &nofile, log) == 0 && pids == 256 && nofile == 1024);
	fflush(log);
	TAP_OK(strstr(msg, "pids clamped from 1024 to 256") != NULL);
	/* file-max: 4 x (agent + 256 x nofile) <= 1048576 / 2: nofile 480. */
	put(fm, "1048576\n");
	pids = 256, nofile = 1024;
	TAP_OK(budget_clamp_at(&src, 4, &pids, &nofile, log) == 0 && pids == 256 &&
	       nofile == (1048576 / 2 / 4 - MACHINE_AGENT_NOFILE) / 256);
	fflush(log);
	TAP_OK(strstr(msg, "nofile clamped from 1024 to 480") != NULL);
	/* nofile would go below its floor: floor, then fewer pids. */
	put(fm, "4194304\n");
	pids = 256, nofile = 1024;
	TAP_OK(budget_clamp_at(&src, 64, &pids, &nofile, log) == 0 && nofile == BUDGET_NOFILE_MIN &&
	       pids == (4194304 / 2 / 64 - MACHINE_AGENT_NOFILE) / BUDGET_NOFILE_MIN);
	/* The agents' own files alone do not fit: refused. */
	put(fm, "1048576\n");
	pids = 256, nofile = 1024;
	TAP_OK(budget_clamp_at(&src, 64, &pids, &nofile, log) == -ERANGE);
	/* Not even the floors fit: refused with a line saying so. */
	put(pm, "100\n");
	pids = 1024, nofile = 1024;
	TAP_OK(budget_clamp_at(&src, 64, &pids, &nofile, log) == -ERANGE);
	fflush(log);
	TAP_OK(strstr(msg, "lower max_machines") != NULL);
	put(pm, "4194304\n");
	put(fm, "1000\n");
	pids = 1024, nofile = 1024;
	TAP_OK(budget_clamp_at(&src, 64, &pids, &nofile, log) == -ERANGE);
	/* No cap on machines: nothing to bound, said, limits kept. */
	pids = 1024, nofile = 1024;
	TAP_OK(budget_clamp_at(&src, 0, &pids, &nofile, log) == 0 && pids == 1024 && nofile == 1024);
	fflush(log);
	TAP_OK(strstr(msg, "max_machines=0") != NULL);
	/* An unreadable source: that check skipped, said. */
	unlink(pm);
	put(fm, "9223372036854775807\n");
	pids = 1024, nofile = 64;
	TAP_OK(budget_clamp_at(&src, 2, &pids, &nofile, log) == 0 && pids == 1024);
	fflush(log);
	TAP_OK(strstr(msg, "pids per machine not checked") != NULL);
	fclose(log);
	free(msg);
	unlink(fm);
	rmdir(dir);
}

static int parse(const char *line, struct ctl_cmd *c)
{
	return ctl_parse_line(line, strlen(line), c);
}

static void test_ctl(void)
{
	struct ctl_cmd c;
	TAP_OK(parse("kill", &c) == 0 && c.kind == CTL_KILL && c.signo == SIGTERM);
	TAP_OK(parse("kill 9", &c) == 0 && c.signo == 9);
	TAP_OK(parse("kill KILL", &c) == 0 && c.signo == SIGKILL);
	TAP_OK(parse("kill sigint", &c) == 0 && c.signo == SIGINT);
	TAP_OK(parse("kill 0", &c) == -EINVAL);
	TAP_OK(parse("kill FOO", &c) == -EINVAL);
	TAP_OK(parse("timeout 2", &c) == 0 && c.kind == CTL_TIMEOUT && c.timeout_ms == 2000);
	TAP_OK(parse("timeout 0.25", &c) == 0 && c.timeout_ms == 250);
	TAP_OK(parse("timeout -1", &c) == -EINVAL);
	TAP_OK(parse("timeout", &c) == -EINVAL);
	TAP_OK(parse("timeout 99999999999", &c) == -EINVAL);
	TAP_OK(parse("env A=b c", &c) == 0 && c.kind == CTL_ENV && c.arglen == 5);
	TAP_OK(parse("env 1A=b", &c) == -EINVAL);
	TAP_OK(parse("env A", &c) == -EINVAL);
	TAP_OK(parse("cwd /tmp/x y", &c) == 0 && c.kind == CTL_CWD && c.arglen == 8);
	TAP_OK(parse("cwd rel", &c) == -EINVAL);
	TAP_OK(parse("snapshot deps-1.0_a", &c) == 0 && c.kind == CTL_SNAPSHOT && c.arglen == 10);
	TAP_OK(parse("snapshot ../x", &c) == -EINVAL);
	TAP_OK(parse("snapshot a/b", &c) == -EINVAL);
	TAP_OK(parse("snapshot .x", &c) == -EINVAL);
	TAP_OK(parse("snapshot", &c) == -EINVAL);
	TAP_OK(parse("snapshot a b", &c) == -EINVAL);
	TAP_OK(parse("  ", &c) == 0 && c.kind == CTL_NONE);
	TAP_OK(parse("bogus", &c) == -EINVAL);
	TAP_OK(parse("kill\r", &c) == 0 && c.kind == CTL_KILL);

	struct exec_settings s, cp;
	settings_init(&s, 5000);
	TAP_OK(parse("env A=1", &c) == 0 && settings_apply(&s, &c) == 0);
	TAP_OK(parse("env B=2", &c) == 0 && settings_apply(&s, &c) == 0);
	TAP_OK(parse("env A=3", &c) == 0 && settings_apply(&s, &c) == 0);
	TAP_OK(s.nenv == 2 && strcmp(s.env[0], "A=3") == 0);
	TAP_OK(parse("cwd /w", &c) == 0 && settings_apply(&s, &c) == 0);
	TAP_OK(settings_copy(&cp, &s) == 0 && cp.nenv == 2 && strcmp(cp.cwd, "/w") == 0);
	char *txt;
	size_t len;
	TAP_OK(settings_format(&s, &txt, &len) == 0 &&
	       strcmp(txt, "timeout=5\ncwd=/w\nenv=A=3\nenv=B=2\n") == 0);
	free(txt);
	settings_free(&s);
	settings_free(&cp);
	uint32_t ms;
	TAP_OK(ctl_parse_seconds("1.5", 3, &ms) == 0 && ms == 1500);
	TAP_OK(ctl_parse_seconds("1.", 2, &ms) == -EINVAL);
	TAP_OK(strcmp(ctl_signal_name(SIGTERM), "TERM") == 0);
}

/* Both forms of inode hold every serial, and neither can be taken for the
 * other. */
/* The topmost mount on a path, its escapes undone; ours by type or by
 * source; a path that is only a prefix is not a match. */
static void test_mountcheck(void)
{
	char path[] = "/tmp/vpfs-mi.XXXXXX";
	int fd = mkstemp(path);
	REQUIRE(fd >= 0);
	dprintf(fd, "22 1 0:21 / / rw - ext4 /dev/sda1 rw\n"
		    "40 22 0:40 / /srv/a\\040b rw - tmpfs none rw\n"
		    "41 40 0:41 / /srv/a\\040b rw,nosuid - fuse.vmpoolfs vmpoolfs rw,user_id=0\n"
		    "42 22 0:42 / /srv/ab rw shared:5 - fuse /dev/fuse rw\n");
	close(fd);
	struct mount_entry e;
	CHECK_EQ(mountcheck_find(path, "/srv/a b", &e), 1);
	CHECK(strcmp(e.fstype, "fuse.vmpoolfs") == 0 && strcmp(e.source, "vmpoolfs") == 0);
	CHECK(mountcheck_is_ours(&e));
	CHECK_EQ(mountcheck_find(path, "/srv/ab", &e), 1);
	CHECK(!mountcheck_is_ours(&e));
	CHECK_EQ(mountcheck_find(path, "/srv", &e), 0);
	CHECK_EQ(mountcheck_find(path, "/srv/a", &e), 0);
	struct mount_entry other = { .fstype = "fuse", .source = "vmpoolfs" };
	CHECK(mountcheck_is_ours(&other));
	struct mount_entry tmpfs = { .fstype = "tmpfs", .source = "vmpoolfs" };
	CHECK(!mountcheck_is_ours(&tmpfs));
	unlink(path);
	CHECK_EQ(mountcheck_find(path, "/", &e), -ENOENT);
}

static void test_ino(void)
{
	TAP_OK(ino_make(0, INO_ROOT) == FUSE_ROOT_ID);
	uint64_t serials[] = { 1, 2, 255, 256, INO_SERIAL_MAX };
	for (size_t i = 0; i < sizeof(serials) / sizeof(serials[0]); i++) {
		uint64_t n = serials[i];
		fuse_ino_t c = ino_make(n, 7), r = (fuse_ino_t)(ino_rp_base(n) | RP_NODE_MASK);
		TAP_OK(!ino_is_rp(c) && ino_serial(c) == n && ino_file(c) == 7);
		TAP_OK(ino_is_rp(r) && ino_rp_serial(r) == n);
		TAP_OK(ino_is_rp(ino_rp_base(n) | 1) && ino_rp_serial(ino_rp_base(n) | 1) == n);
	}
	TAP_OK(!ino_is_rp(ino_make(INO_SERIAL_MAX, (1u << INO_FILE_BITS) - 1)));
}

int main(void)
{
	test_output();
	test_output_budget();
	test_host_budget();
	test_ctl();
	test_ino();
	test_mountcheck();
	return tap_done();
}
