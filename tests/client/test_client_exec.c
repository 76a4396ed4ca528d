/* vp_client_exec_wait (proto/client_exec.h) against the real agent, built
 * for the host (VMPOOL_AGENT_HOST --fd 3 --root DIR) on a socketpair: the
 * fake agent of test_client.c cannot tell whether the exec-and-wait loop
 * agrees with what an agent actually sends (exit codes, output split over
 * frames and acknowledged windows, the agent's own timeout). */
#include "proto/client.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/common/tap.h"
#include "tests/common/testutil.h"

/* Larger than VP_OUTPUT_WINDOW, so the run only ends if the client acks. */
#define BIG_OUTPUT 2500000u

static const char *agent_path;
static char root[] = "/tmp/vmpool-client-exec.XXXXXX";

struct agent {
	pid_t pid;
	struct vp_client *c;
};

static bool agent_start(struct agent *a)
{
	a->c = NULL;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return false;
	a->pid = fork();
	if (a->pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return false;
	}
	if (a->pid == 0) {
		if (sv[1] == 3)
			fcntl(3, F_SETFD, 0);
		else
			dup2(sv[1], 3); /* dup2 clears FD_CLOEXEC on 3 */
		execl(agent_path, agent_path, "--fd", "3", "--root", root, (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	if (vp_client_new(sv[0], &a->c) < 0) {
		close(sv[0]);
		return false;
	}
	return CHECK_EQ(vp_client_handshake(a->c, 10000), 0);
}

/* The agent ends when its channel closes; a stuck one is killed so the
 * test never leaves a process behind. Returns its wait status, -1 if
 * it had to be killed. */
static int agent_stop(struct agent *a)
{
	vp_client_free(a->c);
	a->c = NULL;
	uint64_t end = now_ms() + 10000;
	int st;
	for (;;) {
		pid_t r = waitpid(a->pid, &st, WNOHANG);
		if (r == a->pid)
			return st;
		if (r < 0 || now_ms() > end)
			break;
		sleep_ms(5);
	}
	kill(a->pid, SIGKILL);
	waitpid(a->pid, &st, 0);
	return -1;
}

static struct vp_exec cmd(const char *sh, uint32_t timeout_ms)
{
	struct vp_exec e;
	memset(&e, 0, sizeof e);
	e.cmd = (struct vp_bytes){ (const uint8_t *)sh, (uint32_t)strlen(sh) };
	e.timeout_ms = timeout_ms;
	return e;
}

static void test_exit_status(void)
{
	struct agent a;
	REQUIRE(agent_start(&a));
	struct vp_exec_run r;

	struct vp_exec e = cmd("true", 0);
	CHECK_EQ(vp_client_exec_wait(a.c, &e, 0, 10000, &r), 0);
	CHECK(r.done);
	CHECK_EQ(r.ex.code, 0);
	CHECK_EQ(r.ex.signal, 0);
	CHECK_EQ(r.ex.timed_out, 0);
	CHECK_EQ(vp_exit_status(&r.ex), 0);
	CHECK(r.out.p == NULL); /* no VP_RUN_COLLECT: nothing kept */
	vp_exec_run_free(&r);

	e = cmd("exit 3", 0);
	CHECK_EQ(vp_client_exec_wait(a.c, &e, 0, 10000, &r), 0);
	CHECK_EQ(r.ex.code, 3);
	CHECK_EQ(r.ex.signal, 0);
	CHECK_EQ(vp_exit_status(&r.ex), -EIO);
	vp_exec_run_free(&r);

	e = cmd("kill -TERM $$", 0);
	CHECK_EQ(vp_client_exec_wait(a.c, &e, 0, 10000, &r), 0);
	CHECK_EQ(r.ex.code, -1);
	CHECK_EQ(r.ex.signal, SIGTERM);
	CHECK_EQ(vp_exit_status(&r.ex), -EIO);
	vp_exec_run_free(&r);

	/* A command that cannot start: the error comes back, r is done. */
	struct vp_exec bad = cmd("true", 0);
	bad.cwd = (struct vp_bytes){ (const uint8_t *)"/nonexistent-dir", 16 };
	int err = vp_client_exec_wait(a.c, &bad, VP_RUN_COLLECT, 10000, &r);
	CHECKF(err < 0 && err != -ETIMEDOUT, "bad cwd: %d", err);
	CHECK(r.done);
	CHECK_EQ(r.err, err);
	vp_exec_run_free(&r);

	CHECK(vp_client_alive(a.c));
	CHECK_EQ(agent_stop(&a), 0);
}

static void test_collect(void)
{
	struct agent a;
	REQUIRE(agent_start(&a));
	struct vp_exec_run r;

	struct vp_exec e = cmd("echo out; echo err >&2; printf abc", 0);
	CHECK_EQ(vp_client_exec_wait(a.c, &e, VP_RUN_COLLECT, 10000, &r), 0);
	CHECK_EQ(r.ex.code, 0);
	CHECK_EQ(r.out.len, 7);
	CHECKF(r.out.p && strcmp(r.out.p, "out\nabc") == 0, "stdout \"%s\"", r.out.p ? r.out.p : "(null)");
	CHECK_EQ(r.errout.len, 4);
	CHECKF(r.errout.p && strcmp(r.errout.p, "err\n") == 0, "stderr \"%s\"",
	       r.errout.p ? r.errout.p : "(null)");
	vp_exec_run_free(&r);

	/* No output at all: "" rather than NULL. */
	e = cmd("true", 0);
	CHECK_EQ(vp_client_exec_wait(a.c, &e, VP_RUN_COLLECT, 10000, &r), 0);
	CHECK(r.out.p && r.out.p[0] == '\0' && r.out.len == 0);
	CHECK(r.errout.p && r.errout.p[0] == '\0' && r.errout.len == 0);
	vp_exec_run_free(&r);

	char big[128];
	snprintf(big, sizeof big, "head -c %u /dev/zero | tr '\\0' x", BIG_OUTPUT);
	e = cmd(big, 0);
	CHECK_EQ(vp_client_exec_wait(a.c, &e, VP_RUN_COLLECT, 30000, &r), 0);
	CHECK_EQ(r.ex.code, 0);
	CHECK_EQ(r.out.len, BIG_OUTPUT);
	bool all_x = r.out.p != NULL && r.out.p[r.out.len] == '\0';
	for (size_t i = 0; all_x && i < r.out.len; i++)
		all_x = r.out.p[i] == 'x';
	CHECKF(all_x, "%u bytes of 'x', NUL-terminated", BIG_OUTPUT);
	vp_exec_run_free(&r);

	CHECK_EQ(agent_stop(&a), 0);
}

static void test_timeouts(void)
{
	struct agent a;
	REQUIRE(agent_start(&a));
	struct vp_exec_run r;

	/* The agent's own timeout: an ordinary end that says timed_out, and
	 * the channel stays usable. */
	struct vp_exec e = cmd("echo before; sleep 10", 200);
	uint64_t t0 = now_ms();
	CHECK_EQ(vp_client_exec_wait(a.c, &e, VP_RUN_COLLECT, 10000, &r), 0);
	CHECKF(now_ms() - t0 < 5000, "ended after %llu ms", (unsigned long long)(now_ms() - t0));
	CHECK_EQ(r.ex.timed_out, 1);
	CHECK_EQ(r.ex.signal, SIGKILL);
	CHECK_EQ(vp_exit_status(&r.ex), -EIO);
	CHECKF(r.out.p && strcmp(r.out.p, "before\n") == 0, "output before the kill kept");
	vp_exec_run_free(&r);
	CHECK(vp_client_alive(a.c));

	/* The caller's limit, before any agent timeout: -ETIMEDOUT, and the
	 * channel is shut down (it cannot tell a hung agent from a slow
	 * command). */
	e = cmd("sleep 10", 0);
	t0 = now_ms();
	CHECK_EQ(vp_client_exec_wait(a.c, &e, VP_RUN_COLLECT, 200, &r), -ETIMEDOUT);
	uint64_t took = now_ms() - t0;
	CHECKF(took >= 190 && took < 5000, "gave up after %llu ms", (unsigned long long)took);
	CHECK(r.done); /* on_exit ran: r may go */
	CHECK(!vp_client_alive(a.c));
	vp_exec_run_free(&r);

	/* Nothing more goes through that client. */
	e = cmd("true", 0);
	int err = vp_client_exec_wait(a.c, &e, 0, 1000, &r);
	CHECKF(err < 0 && err != -ETIMEDOUT, "after shutdown: %d", err);
	vp_exec_run_free(&r);

	/* The agent sees its channel close and ends on its own. */
	CHECK(agent_stop(&a) != -1);
}

int main(void)
{
	alarm(100); /* a hang is a failure */
	agent_path = getenv("VMPOOL_AGENT_HOST");
	if (!agent_path || access(agent_path, X_OK) < 0) {
		/* meson always builds and passes it: its absence is a broken build. */
		tap_ok(false, "VMPOOL_AGENT_HOST (%s) is not an executable agent",
		       agent_path ? agent_path : "unset");
		return tap_done();
	}
	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	static const struct tap_test tests[] = {
		{ "exec_wait: exit code, signal, start failure", test_exit_status },
		{ "exec_wait: collected stdout and stderr, past the ack window", test_collect },
		{ "exec_wait: agent timeout, then the caller's limit", test_timeouts },
	};
	int rc = tap_main(tests, sizeof tests / sizeof tests[0]);
	rmdir(root);
	return rc;
}
