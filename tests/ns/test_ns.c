/* ns machines end to end: real namespaces, the real agent from the built
 * image (VMPOOL_IMAGE), the client library on the channel. Needs root and
 * user namespaces; prints "SKIP: reason" and exits 77 otherwise. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto/client.h"
#include "vmm/kvm/machine_kvm.h"
#include "vmm/machine.h"
#include "tests/common/exec_run.h"
#include "tests/common/tap.h"
#include "tests/common/testutil.h"

/* Output of a command that must succeed, or "" (owned by r). */
static const char *sh(struct vp_client *c, const char *cmd, struct run *r)
{
	int err = run_cmd(c, cmd, r);
	if (err || r->ex.code != 0)
		fprintf(stderr, "# '%s': err %d code %d sig %d stderr: %s\n", cmd, err, r->ex.code,
			r->ex.signal, r->e.p);
	return r->o.p ? r->o.p : "";
}

/* ---- host-side counters for "nothing left behind" ------------------------ */

static int count_children(void)
{
	DIR *d = opendir("/proc");
	if (!d)
		return -1;
	int n = 0;
	struct dirent *de;
	pid_t me = getpid();
	while ((de = readdir(d))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		char path[300], buf[512];
		snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(buf, sizeof buf, f)) {
			char *rp = strrchr(buf, ')');
			int ppid;
			if (rp && sscanf(rp + 2, "%*c %d", &ppid) == 1 && ppid == me)
				n++;
		}
		fclose(f);
	}
	closedir(d);
	return n;
}

/* Host mounts the backend could leak: its scratch tmpfs, or an overlay
 * (whose options name the scratch dir). Other processes' mounts do not
 * count, so tests running beside this one do not disturb it. */
static int count_mounts(void)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -1;
	char line[4096];
	int n = 0;
	while (fgets(line, sizeof line, f)) {
		if (strstr(line, "vmpoolfs-ns."))
			n++;
	}
	fclose(f);
	return n;
}

static int walk_cgroups(const char *dir, const char *tag, int depth)
{
	if (depth > 8)
		return 0;
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		if (strstr(path, tag))
			n++;
		n += walk_cgroups(path, tag, depth + 1);
	}
	closedir(d);
	return n;
}

/* Cgroup dirs made by this process's backends (named vmpoolfs.<pid>.N). */
static int count_cgroups(void)
{
	char tag[64];
	snprintf(tag, sizeof tag, "/vmpoolfs.%d.", (int)getpid());
	return walk_cgroups("/sys/fs/cgroup", tag, 0);
}

/* ---- probes ---------------------------------------------------------------- */

static bool userns_works(void)
{
	pid_t p = fork();
	if (p == 0)
		_exit(unshare(CLONE_NEWUSER) == 0 ? 0 : 1);
	int st;
	if (p < 0 || waitpid(p, &st, 0) < 0)
		return false;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Writes len bytes of buf to a new guest file /name via the file protocol. */
static int put_file(struct vp_client *c, const char *name, const void *buf, size_t len, uint32_t mode)
{
	uint64_t fh;
	struct vp_entry e;
	int err = vp_fs_create(c, VP_ROOT_NODE, name, O_WRONLY | O_CREAT | O_TRUNC, mode, &fh, &e);
	if (err)
		return err;
	size_t off = 0;
	while (off < len && !err) {
		uint32_t n = len - off > VP_MAX_DATA ? VP_MAX_DATA : (uint32_t)(len - off), w = 0;
		err = vp_fs_write(c, fh, off, (const char *)buf + off, n, &w);
		if (!err && w == 0)
			err = -EIO;
		off += w;
	}
	int cerr = vp_fs_close(c, fh);
	return err ? err : cerr;
}

static char *read_host_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *p = malloc((size_t)n + 1);
	if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
		free(p);
		p = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return p;
}

static bool guest_has_sleep(struct vp_client *c)
{
	struct run r;
	const char *o = sh(c,
			   "for f in /proc/[0-9]*/comm; do read n < $f 2>/dev/null && [ \"$n\" = sleep ] && "
			   "echo found; "
			   "done; true",
			   &r);
	bool found = strstr(o, "found") != NULL;
	run_free(&r);
	return found;
}

/* ---- tests ----------------------------------------------------------------- */

/* The default config, on the ns backend over this image. */
static struct machine_config ns_config(const char *image)
{
	struct machine_config cfg;
	machine_config_defaults(&cfg);
	cfg.kind = MACHINE_NS;
	cfg.image_dir = image;
	return cfg;
}

static void test_backend_choice(const char *image)
{
	struct machine_config cfg;
	machine_config_defaults(&cfg);
	tap_ok(cfg.kind == MACHINE_AUTO && cfg.mem_bytes == 2ull << 30 && cfg.disk_bytes == 1ull << 30 &&
		       cfg.pids_max == 1024 && cfg.ready_timeout_ms == 10000,
	       "config defaults");
	cfg.image_dir = image;
	struct machine_backend *b = NULL;
	/* AUTO takes kvm only where the guest kernel runs natively (and then
	 * boots a template: the kvm tests cover that); elsewhere ns, with
	 * detection's reason. Forcing MACHINE_KVM is the kvm tests' business. */
	char det[320];
	bool native = kvm_detect_native(NULL, NULL, det, sizeof det) == 0;
	cfg.kind = MACHINE_AUTO;
	char why[320];
	int err = machine_backend_open_why(&cfg, &b, why, sizeof why);
	tap_ok(err == 0, "auto backend opens (%d: %s)", err, why);
	if (!err) {
		if (native) {
			/* kvm when its template booted, else ns saying why not. */
			bool kvm = strcmp(machine_backend_name(b), "kvm") == 0;
			tap_ok(kvm || strstr(machine_backend_reason(b), "did not boot"),
			       "auto on native KVM: %s", machine_backend_name(b));
			tap_ok(strstr(machine_backend_reason(b), det) != NULL, "auto reason: %s",
			       machine_backend_reason(b));
		} else {
			tap_ok(strcmp(machine_backend_name(b), "ns") == 0, "auto chooses ns");
			tap_ok(det[0] && strcmp(machine_backend_reason(b), det) == 0, "auto reason: %s",
			       machine_backend_reason(b));
		}
		machine_backend_close(b);
	}
	cfg.image_dir = "/nonexistent";
	cfg.kind = MACHINE_NS;
	tap_ok(machine_backend_open(&cfg, &b) == -ENOENT, "missing image: ENOENT");
}

static void test_exec(struct vp_client *c)
{
	struct run r;
	int err = run_cmd(c, "echo hi", &r);
	tap_ok(err == 0 && strcmp(r.o.p, "hi\n") == 0 && r.ex.code == 0 && r.ex.signal == 0,
	       "echo hi → \"hi\\n\", exit 0 (err %d, out '%s')", err, r.o.p);
	run_free(&r);

	err = run_cmd(c, "exit 3", &r);
	tap_ok(err == 0 && r.ex.code == 3, "exit 3 → code 3 (%d)", r.ex.code);
	run_free(&r);

	err = run_cmd(c, "kill -TERM $$", &r);
	tap_ok(err == 0 && r.ex.signal == SIGTERM, "kill -TERM $$ → signal 15 (%d)", r.ex.signal);
	run_free(&r);

	err = run_cmd(c, "echo out; echo err >&2", &r);
	tap_ok(err == 0 && strcmp(r.o.p, "out\n") == 0 && strcmp(r.e.p, "err\n") == 0,
	       "stdout and stderr are separate ('%s' / '%s')", r.o.p, r.e.p);
	run_free(&r);

	uint64_t t0 = now_ms();
	err = run_start(c, "sleep 100 & sleep 100; echo never", 500, 0, &r);
	int w = err ? err : run_wait(&r, 20000);
	uint64_t dt = now_ms() - t0;
	tap_ok(w == 0 && r.err == 0 && r.ex.timed_out && strstr(r.o.p, "never") == NULL,
	       "timeout 500 ms kills the command (timed_out %d, %lld ms)", r.ex.timed_out, (long long)dt);
	tap_ok(dt < 10000, "timeout is prompt (%lld ms)", (long long)dt);
	run_free(&r);
	/* The background sleep was in the same process group. */
	bool left = true;
	for (int i = 0; i < 50 && left; i++) {
		left = guest_has_sleep(c);
		if (left)
			usleep(20000);
	}
	tap_ok(!left, "timeout killed the whole process tree");
}

static void test_big_file(struct vp_client *c)
{
	const size_t size = 50u << 20;
	unsigned char *buf = malloc(size), *back = malloc(size);
	if (!buf || !back)
		abort();
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < size; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (unsigned char)x;
	}
	uint64_t t0 = now_ms();
	int err = put_file(c, "big50", buf, size, 0644);
	tap_ok(err == 0, "50 MiB written with vp_fs_create/write (%d, %lld ms)", err,
	       (long long)(now_ms() - t0));
	struct vp_entry e;
	uint64_t fh = 0;
	err = vp_fs_lookup(c, VP_ROOT_NODE, "big50", &e);
	if (!err)
		err = vp_fs_open(c, e.node, O_RDONLY, &fh);
	size_t off = 0;
	while (!err && off < size) {
		uint32_t got = 0;
		err = vp_fs_read(c, fh, off, back + off, VP_MAX_DATA, &got);
		if (!err && got == 0)
			break;
		off += got;
	}
	if (fh)
		vp_fs_close(c, fh);
	tap_ok(err == 0 && off == size && e.attr.size == size && memcmp(buf, back, size) == 0,
	       "50 MiB read back identical (%d, %zu bytes)", err, off);
	if (!err)
		vp_fs_forget(c, e.node, 1);
	vp_fs_unlink(c, VP_ROOT_NODE, "big50");
	free(buf);
	free(back);
}

static void test_isolation(struct vp_client *a, struct vp_client *b)
{
	int err = put_file(a, "only_in_a", "a\n", 2, 0644);
	struct vp_entry e;
	int lb = vp_fs_lookup(b, VP_ROOT_NODE, "only_in_a", &e);
	tap_ok(err == 0 && lb == -ENOENT, "file made in A is absent in B (%d, %d)", err, lb);
	struct run bg;
	err = run_start(a, "sleep 100", 0, 0, &bg);
	usleep(100000);
	tap_ok(err == 0 && guest_has_sleep(a), "A runs sleep");
	tap_ok(!guest_has_sleep(b), "B does not see A's sleep");
	struct run r;
	const char *o = sh(b, "ps", &r);
	tap_ok(strstr(o, "sleep") == NULL, "ps in B shows no sleep");
	run_free(&r);
	if (!err) {
		vp_exec_signal(a, bg.exec_id, SIGKILL);
		tap_ok(run_wait(&bg, 10000) == 0 && bg.ex.signal == SIGKILL, "A's sleep killed by signal");
	}
	run_free(&bg);
}

static void test_powerless(struct vp_client *c, const char *probe_path)
{
	struct run r;
	/* A real module of the image: loading it must fail. */
	int err = run_cmd(c,
			  "m=$(find /lib/modules -name '*.ko*' | head -n1); [ -n \"$m\" ] || m=/init; "
			  "insmod $m; echo rc=$?",
			  &r);
	tap_ok(err == 0 && strstr(r.o.p, "rc=0") == NULL && strstr(r.o.p, "rc=") != NULL,
	       "insmod fails in the guest (%s)", r.e.p);
	run_free(&r);

	err = run_cmd(c, "mknod /sda b 8 0; echo mknod=$?; mkdir -p /mnt; mount /sda /mnt; echo mount=$?", &r);
	tap_ok(err == 0 && strstr(r.o.p, "mknod=0") == NULL && strstr(r.o.p, "mount=0") == NULL,
	       "mknod + mount of a host block device fail (%s)", r.o.p);
	run_free(&r);

	size_t len = 0;
	char *probe = read_host_file(probe_path, &len);
	tap_ok(probe != NULL, "probe binary %s", probe_path);
	if (probe) {
		err = put_file(c, "ns_probe", probe, len, 0755);
		tap_ok(err == 0, "probe copied into the guest (%d)", err);
		free(probe);
		err = run_cmd(c, "/ns_probe", &r);
		tap_ok(err == 0 && r.ex.code == 0, "probe ran (%d, %d: %s)", err, r.ex.code, r.e.p);
		static const char *const refused[] = { "finit_module",
						       "init_module",
						       "delete_module",
						       "kexec_load",
						       "bpf",
						       "keyctl",
						       "perf_event_open",
						       "userfaultfd",
						       "syslog",
						       "open_by_handle_at",
						       "personality_weird",
						       "x32_getpid",
						       "mknod_block" };
		for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
			char want[64];
			snprintf(want, sizeof want, "%s %d\n", refused[i], EPERM);
			tap_ok(strstr(r.o.p, want) != NULL, "guest root: %s refused with EPERM", refused[i]);
		}
		tap_ok(strstr(r.o.p, "personality_query 0\n") && strstr(r.o.p, "getpid 0\n"),
		       "allowed calls still work");
		tap_ok(strstr(r.o.p, "mount_block 0\n") == NULL, "block device mount fails");
		run_free(&r);
	}

	/* The guest's clock is the host's: the agent refuses to set it. The time
	 * sent is the host's own, so even a wrong answer would move nothing. */
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	err = vp_set_time(c, &now);
	tap_ok(err == -EPERM, "SET_TIME refused with EPERM (%d)", err);

	const char *o = sh(c, "cat /proc/self/status", &r);
	tap_ok(strstr(o, "NoNewPrivs:\t1") && strstr(o, "Seccomp:\t2"),
	       "no_new_privs and seccomp filter set");
	run_free(&r);

	/* Host processes: only the guest's own pids exist in its /proc. */
	o = sh(c, "cd /proc && for p in [0-9]*; do echo $p; done", &r);
	int n = 0, maxpid = 0;
	for (const char *p = o; *p;) {
		int v = atoi(p);
		n++;
		if (v > maxpid)
			maxpid = v;
		p = strchr(p, '\n');
		p = p ? p + 1 : "";
	}
	tap_ok(n >= 1 && n < 20, "guest /proc lists only guest processes (%d)", n);
	char mine[32];
	snprintf(mine, sizeof mine, "%d\n", (int)getpid());
	tap_ok(getpid() > maxpid || strstr(o, mine) == NULL, "the daemon's pid %d is not visible",
	       (int)getpid());
	run_free(&r);
	o = sh(c, "cat /proc/1/cmdline", &r);
	tap_ok(strncmp(o, "/init", 5) == 0, "guest pid 1 is the agent (%s)", o);
	run_free(&r);
}

static void test_network(struct vp_client *c)
{
	struct run r;
	const char *o = sh(c, "ls /sys/class/net", &r);
	tap_ok(strcmp(o, "lo\n") == 0, "only lo in /sys/class/net ('%s')", o);
	run_free(&r);
	int err = run_cmd(c, "ping -c1 -W2 127.0.0.1", &r);
	tap_ok(err == 0 && r.ex.code == 0, "ping 127.0.0.1 works (%d: %s)", r.ex.code, r.e.p);
	run_free(&r);
}

static void test_reset(struct machine *m)
{
	struct vp_client *c = machine_client(m);
	struct machine_info before, after;
	machine_get_info(m, &before);
	int err = put_file(c, "survivor", "x", 1, 0644);
	struct run bg;
	int bgerr = run_start(c, "sleep 100", 0, 0, &bg);
	usleep(100000);
	tap_ok(err == 0 && bgerr == 0 && guest_has_sleep(c), "before reset: file and sleep exist");
	err = machine_reset(m);
	tap_ok(err == 0, "reset (%d)", err);
	tap_ok(run_wait(&bg, 10000) == 0 && bg.err < 0, "exec running at reset ends with an error (%d)",
	       bg.err);
	run_free(&bg);
	c = machine_client(m);
	machine_get_info(m, &after);
	tap_ok(c && machine_is_alive(m) && after.id == before.id && after.host_pid != before.host_pid,
	       "same machine, new agent (pid %d → %d)", before.host_pid, after.host_pid);
	struct vp_entry e;
	tap_ok(c && vp_fs_lookup(c, VP_ROOT_NODE, "survivor", &e) == -ENOENT, "reset wiped the file");
	tap_ok(c && !guest_has_sleep(c), "reset wiped the processes");
}

struct stdin_call {
	struct vp_client *c;
	uint32_t exec_id;
	int err;
	volatile int done;
};

static void *stdin_thread(void *arg)
{
	struct stdin_call *s = arg;
	size_t len = 4u << 20;
	char *buf = calloc(1, len);
	/* Nobody reads the pipe: once it is full this call stays pending. */
	s->err = buf ? vp_exec_stdin(s->c, s->exec_id, buf, (uint32_t)(len > VP_MAX_DATA ? VP_MAX_DATA : len),
				     false)
		     : -ENOMEM;
	if (!s->err)
		s->err = vp_exec_stdin(s->c, s->exec_id, buf, VP_MAX_DATA, false);
	free(buf);
	s->done = 1;
	return NULL;
}

static void test_kill_agent(struct machine *m)
{
	struct vp_client *c = machine_client(m);
	struct run r;
	int err = run_start(c, "sleep 100", 0, VP_EXEC_STDIN, &r);
	tap_ok(err == 0, "exec with stdin started (%d)", err);
	struct stdin_call s = { .c = c, .exec_id = r.exec_id };
	pthread_t t;
	pthread_create(&t, NULL, stdin_thread, &s);
	usleep(300000);
	bool pending = !s.done;
	struct machine_info info;
	machine_get_info(m, &info);
	uint64_t t0 = now_ms();
	kill(info.host_pid, SIGKILL);
	int w = run_wait(&r, 10000);
	tap_ok(w == 0 && r.err < 0, "running exec fails with an errno (%d) in %lld ms", r.err,
	       (long long)(now_ms() - t0));
	for (int i = 0; i < 1000 && !s.done; i++)
		usleep(10000);
	tap_ok(s.done, "pending call returned (%s at kill time)", pending ? "pending" : "already done");
	if (s.done)
		pthread_join(t, NULL);
	tap_ok(!pending || s.err < 0, "pending call failed with an errno (%d)", s.err);
	int perr = vp_ping(c);
	tap_ok(perr < 0, "later calls fail at once (%d)", perr);
	bool alive = true;
	for (int i = 0; i < 100 && alive; i++) {
		alive = machine_is_alive(m);
		if (alive)
			usleep(10000);
	}
	tap_ok(!alive, "is_alive turns false (%lld ms)", (long long)(now_ms() - t0));
	run_free(&r);
}

static void test_limits(const char *image)
{
	struct machine_config cfg = ns_config(image);
	cfg.mem_bytes = 64u << 20;
	cfg.disk_bytes = 32u << 20;
	struct machine_backend *b;
	int err = machine_backend_open(&cfg, &b);
	tap_ok(err == 0, "backend with 64 MiB memory, 32 MiB disk (%d)", err);
	if (err)
		return;
	struct machine *m;
	err = machine_create(b, &m);
	tap_ok(err == 0, "create (%d)", err);
	if (!err) {
		struct vp_client *c = machine_client(m);
		struct run r;
		err = run_cmd(c, "head -c 1073741824 /dev/zero | tail", &r);
		tap_ok(err == 0 && (r.ex.code == 137 || r.ex.signal == SIGKILL),
		       "memory hog killed (code %d, signal %d)", r.ex.code, r.ex.signal);
		run_free(&r);
		struct machine_info info;
		machine_get_info(m, &info);
		tap_ok(info.oom_kills >= 1, "oom_kills counted (%llu)", (unsigned long long)info.oom_kills);
		tap_ok(machine_is_alive(m), "the agent survived the OOM kill");
		err = run_cmd(c, "echo still", &r);
		tap_ok(err == 0 && strcmp(r.o.p, "still\n") == 0, "machine still serves commands");
		run_free(&r);

		/* Past disk_bytes the writable layer is full. */
		size_t chunk = VP_MAX_DATA;
		char *buf = calloc(1, chunk);
		uint64_t fh;
		struct vp_entry e;
		err = vp_fs_create(c, VP_ROOT_NODE, "fill", O_WRONLY | O_CREAT | O_TRUNC, 0644, &fh, &e);
		int werr = 0;
		uint64_t off = 0;
		for (int i = 0; i < 64 && !err && !werr; i++) {
			uint32_t w = 0;
			werr = vp_fs_write(c, fh, off, buf, (uint32_t)chunk, &w);
			off += w;
			if (!werr && w < chunk) /* a short write then the next one fails */
				continue;
		}
		if (!err)
			vp_fs_close(c, fh);
		tap_ok(err == 0 && werr == -ENOSPC,
		       "writing past disk_bytes gives ENOSPC (%d after %llu bytes)", werr,
		       (unsigned long long)off);
		err = run_cmd(c, "dd if=/dev/zero of=/fill2 bs=1024 count=1024", &r);
		tap_ok(err == 0 && r.ex.code != 0 && strstr(r.e.p, "No space left"), "dd sees ENOSPC too");
		run_free(&r);
		free(buf);
		machine_destroy(m);
	}
	machine_backend_close(b);
}

static void test_leaks(struct machine_backend *b)
{
	int ch0 = count_children(), fd0 = count_fds(), mn0 = count_mounts(), cg0 = count_cgroups();
	struct machine *ms[4] = { 0 };
	int ok = 0;
	for (int i = 0; i < 4; i++)
		if (machine_create(b, &ms[i]) == 0)
			ok++;
	tap_ok(ok == 4, "4 machines created");
	tap_ok(count_children() >= ch0 + ok, "their agents are children of this process");
	tap_ok(count_cgroups() >= cg0 + ok, "each has a cgroup");
	if (ms[1])
		machine_reset(ms[1]);
	for (int i = 0; i < 4; i++)
		machine_destroy(ms[i]);
	int ch1 = count_children(), fd1 = count_fds(), mn1 = count_mounts(), cg1 = count_cgroups();
	tap_ok(ch1 == ch0, "no process left (%d → %d)", ch0, ch1);
	tap_ok(fd1 == fd0, "no fd left (%d → %d)", fd0, fd1);
	tap_ok(mn1 == mn0, "no host mount left (%d → %d)", mn0, mn1);
	tap_ok(cg1 == cg0, "no cgroup left (%d → %d)", cg0, cg1);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid() != 0) {
		printf("SKIP: needs root (id maps, cgroups)\n");
		return 77;
	}
	if (!userns_works()) {
		printf("SKIP: user namespaces are unavailable here\n");
		return 77;
	}
	const char *image = getenv("VMPOOL_IMAGE");
	if (!image) {
		printf("not ok 1 - VMPOOL_IMAGE is not set\n");
		return 1;
	}
	char probe[4096];
	const char *pp = getenv("VMPOOL_NS_PROBE");
	snprintf(probe, sizeof probe, "%s", pp ? pp : "ns_probe");

	int cg_before = count_cgroups(), mn_before = count_mounts(), fd_before = count_fds();
	test_backend_choice(image);

	struct machine_config cfg = ns_config(image);
	struct machine_backend *b;
	int err = machine_backend_open(&cfg, &b);
	tap_ok(err == 0, "ns backend opens (%d)", err);
	if (err)
		return 1;
	struct machine *a = NULL, *bm = NULL;
	err = machine_create(b, &a);
	tap_ok(err == 0, "machine A created (%d)", err);
	if (err)
		return 1;
	struct machine_info info;
	machine_get_info(a, &info);
	tap_ok(info.host_pid > 0 && info.boot_us > 0 && info.oom_kills == 0, "info: pid %d, boot %llu us",
	       info.host_pid, (unsigned long long)info.boot_us);
	tap_ok(machine_is_alive(a), "A is alive");
	struct vp_client *ca = machine_client(a);
	vp_client_set_timeout(ca, 30000);

	test_exec(ca);
	test_big_file(ca);
	err = machine_create(b, &bm);
	tap_ok(err == 0, "machine B created (%d)", err);
	if (!err) {
		test_isolation(ca, machine_client(bm));
		machine_destroy(bm);
	}
	test_powerless(ca, probe);
	test_network(ca);
	test_reset(a);
	test_kill_agent(a);
	err = machine_reset(a);
	tap_ok(err == 0 && machine_is_alive(a), "a dead machine comes back with reset (%d)", err);
	machine_destroy(a);

	test_leaks(b);
	machine_backend_close(b);
	test_limits(image);

	tap_ok(count_cgroups() == cg_before, "backend close removes its cgroups");
	tap_ok(count_mounts() == mn_before, "no host mounts left");
	tap_ok(count_fds() == fd_before, "no fds left (%d → %d)", fd_before, count_fds());
	return tap_done();
}
