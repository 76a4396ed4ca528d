/* The ns agents' logs (vmm/ns/ns_log.c, machine_log_path):
 * - the copier on its own: what reaches a log's pipe lands in its file,
 *   capped at NS_LOG_LIMIT with one marker line while the writer is never
 *   held up; a new life of the same machine starts an empty file while
 *   the old one drains into the old inode; remove and close leave nothing;
 * - with machines: the agent's stderr is that pipe, a clean start logs
 *   nothing, the guest cannot reopen the pipe (it cannot name the agent,
 *   and the inode belongs to an unmapped host id), destroy removes the file and backend close the
 *   directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/common/exec_run.h"
#include "tests/common/tap.h"
#include "tests/common/testutil.h"
#include "vmm/machine.h"
#include "vmm/ns/ns.h"

static const char *image;

/* The file's content once it holds `want` (or after 5 s); free() it. */
static char *file_with(const char *path, const char *want)
{
	char *buf = NULL;
	for (int i = 0; i < 500; i++) {
		free(buf);
		buf = NULL;
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		struct stat st;
		if (fd >= 0 && fstat(fd, &st) == 0 && (buf = calloc(1, (size_t)st.st_size + 1)) &&
		    read(fd, buf, (size_t)st.st_size) < 0)
			buf[0] = '\0';
		if (fd >= 0)
			close(fd);
		if (buf && strstr(buf, want))
			break;
		sleep_ms(10);
	}
	return buf ? buf : calloc(1, 1);
}

/* Writes all of buf into a non-blocking pipe, waiting while it is full. */
static int write_nb(int fd, const char *buf, size_t n)
{
	while (n) {
		ssize_t w = write(fd, buf, n);
		if (w < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			if (poll(&p, 1, 5000) != 1)
				return -ETIMEDOUT; /* the copier stopped draining */
			continue;
		}
		if (w < 0)
			return -errno;
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

static void test_copier(void)
{
	int fds = count_fds();
	struct ns_logs *l = NULL;
	REQUIRE_EQ(ns_logs_open(&l), 0);
	char path[512], dir[512];
	REQUIRE_EQ(ns_log_path(l, 7, path, sizeof path), 0);
	snprintf(dir, sizeof dir, "%s", path);
	*strrchr(dir, '/') = '\0';
	int wr = -1;
	REQUIRE_EQ(ns_log_attach(l, 7, &wr), 0);
	CHECK(fcntl(wr, F_GETFL) & O_NONBLOCK);
	CHECK(fcntl(wr, F_GETFD) & FD_CLOEXEC);
	CHECK(write(wr, "first line\n", 11) == 11);
	char *got = file_with(path, "first line\n");
	CHECKF(strcmp(got, "first line\n") == 0, "log: '%.100s'", got);
	free(got);

	/* 3 MiB more: all accepted, the file stops at the limit. */
	size_t big = 3u << 20;
	char *xs = malloc(big);
	REQUIRE(xs);
	memset(xs, 'x', big);
	CHECK_EQ(write_nb(wr, xs, big), 0);
	free(xs);
	got = file_with(path, "[vmpoolfs: log truncated");
	size_t len = strlen(got);
	CHECKF(len == NS_LOG_LIMIT + strlen("\n[vmpoolfs: log truncated at 1048576 bytes]\n"), "length %zu",
	       len);
	CHECK(strncmp(got, "first line\nxxx", 14) == 0);
	CHECK(strstr(got, "\n[vmpoolfs: log truncated at 1048576 bytes]\n") == got + NS_LOG_LIMIT);
	free(got);

	/* A new life: an empty file at the same path; the old pipe's late
	 * bytes go to the old inode, never into the new log. */
	int wr2 = -1;
	REQUIRE_EQ(ns_log_attach(l, 7, &wr2), 0);
	CHECK_EQ(write_nb(wr, "late\n", 5), 0);
	CHECK(write(wr2, "second life\n", 12) == 12);
	got = file_with(path, "second life\n");
	CHECKF(strcmp(got, "second life\n") == 0, "new life: '%.100s'", got);
	free(got);
	close(wr);
	close(wr2);
	ns_log_remove(l, 7);
	CHECK(access(path, F_OK) < 0 && errno == ENOENT);
	ns_logs_close(l);
	CHECK(access(dir, F_OK) < 0 && errno == ENOENT);
	CHECK_EQ(count_fds(), fds);
}

static int sh_code(struct machine *m, const char *cmd, char *out, size_t cap)
{
	struct run r;
	int err = run_cmd(machine_client(m), cmd, &r);
	int code = err ? err : r.ex.signal ? 128 + r.ex.signal : r.ex.code;
	snprintf(out, cap, "%s", r.o.p ? r.o.p : "");
	run_free(&r);
	return code;
}

static void test_machines(void)
{
	struct machine_config cfg;
	machine_config_defaults(&cfg);
	cfg.kind = MACHINE_NS;
	cfg.image_dir = image;
	struct machine_backend *b = NULL;
	REQUIRE_EQ(machine_backend_open(&cfg, &b), 0);
	struct machine *m = NULL;
	REQUIRE_EQ(machine_create(b, &m), 0);
	char path[512], dir[512], out[256];
	snprintf(path, sizeof path, "%s", machine_log_path(m));
	snprintf(dir, sizeof dir, "%s", path);
	*strrchr(dir, '/') = '\0';
	CHECKF(strstr(path, "/vmpool-ns-") && access(path, F_OK) == 0, "log: %s", path);
	/* The agent is out of the guest's sight (its commands have a pid
	 * namespace of their own): look from the host. */
	struct machine_info info;
	machine_get_info(m, &info);
	char fd2[64];
	snprintf(fd2, sizeof fd2, "/proc/%d/fd/2", (int)info.host_pid);
	ssize_t n = readlink(fd2, out, sizeof out - 1);
	out[n > 0 ? n : 0] = '\0';
	CHECKF(strncmp(out, "pipe:[", 6) == 0, "agent's stderr: %s", out);
	/* pid 1 there is the commands' init, which has no fd at all */
	CHECK(sh_code(m, "echo from-the-guest > /proc/1/fd/2", out, sizeof out) != 0);
	CHECK_EQ(machine_reset(m), 0);
	CHECK(access(path, F_OK) == 0);
	/* A clean start says nothing (the agent's log is for trouble). */
	sleep_ms(200); /* what the agent would say at start has long arrived */
	char *got = file_with(path, "");
	CHECKF(got[0] == '\0', "log of a clean start: '%.200s'", got);
	free(got);
	machine_destroy(m);
	CHECK(access(path, F_OK) < 0 && errno == ENOENT);
	CHECK(access(dir, F_OK) == 0);
	machine_backend_close(b);
	CHECK(access(dir, F_OK) < 0 && errno == ENOENT);
}

int main(void)
{
	if (geteuid() != 0) {
		printf("1..0 # SKIP needs root (id maps, cgroups)\n");
		return 77;
	}
	image = getenv("VMPOOL_IMAGE");
	if (!image) {
		printf("Bail out! VMPOOL_IMAGE is not set\n");
		return 1;
	}
	static const struct tap_test tests[] = {
		{ "the copier: capped with a marker, a new life starts empty, nothing left", test_copier },
		{ "machines: the agent's stderr is the pipe, guests cannot reopen it, cleanup", test_machines },
	};
	return tap_main(tests, sizeof tests / sizeof tests[0]);
}
