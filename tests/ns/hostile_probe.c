/* Runs inside a guest as a command (static, glibc): tries to reach the
 * agent as the attacker did, or checks that a command's powers
 * over its own processes stay. One line per attempt, "name: result",
 * for tests/hostile-agent.bats to match.
 *   hostile_probe attack PID   ptrace attach/seize (then exit attached),
 *                              kill -STOP/-KILL, /proc/PID/mem rw,
 *                              pidfd_getfd of every fd, process_vm_writev
 *   hostile_probe kill-init    trace pid 1 (the commands' init) and kill it
 *   hostile_probe sockets      how many sockets any visible process holds
 *   hostile_probe own          ptrace, /proc/N/mem, process_vm_readv and
 *                              kill of our own child */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static void say(const char *what, long r)
{
	if (r < 0)
		printf("%s: %s\n", what, strerror(errno));
	else
		printf("%s: ok\n", what);
	fflush(stdout);
}

static int attack(pid_t pid)
{
	say("seize", ptrace(PTRACE_SEIZE, pid, 0, 0));
	ptrace(PTRACE_DETACH, pid, 0, 0);
	say("kill-stop", kill(pid, SIGSTOP));
	say("kill-kill", kill(pid, SIGKILL));
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	say("mem-rw", fd);
	if (fd >= 0)
		close(fd);
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	say("pidfd-open", pfd);
	int got = 0;
	for (int i = 0; pfd >= 0 && i < 1024; i++) {
		int f = (int)syscall(SYS_pidfd_getfd, pfd, i, 0);
		if (f >= 0) {
			got++;
			close(f);
		}
	}
	printf("pidfd-getfd: %d fds\n", got);
	char byte = 0;
	struct iovec local = { &byte, 1 }, remote = { (void *)0x400000, 1 };
	say("vm-writev", syscall(SYS_process_vm_writev, pid, &local, 1, &remote, 1, 0));
	/* Last, as in the issue: attach and exit while the target stops. */
	say("attach", ptrace(PTRACE_ATTACH, pid, 0, 0));
	return 0;
}

static int kill_init(void)
{
	say("attach", ptrace(PTRACE_ATTACH, 1, 0, 0));
	int st;
	waitpid(1, &st, __WALL);
	/* A tracer's SIGKILL gets past an init's protection. */
	say("ptrace-kill", ptrace(PTRACE_CONT, 1, 0, SIGKILL));
	pause(); /* the end of our pid namespace takes us too */
	return 1;
}

static int sockets(void)
{
	int n = 0;
	DIR *d = opendir("/proc");
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char dir[300];
		if (de->d_name[0] < '1' || de->d_name[0] > '9' || atoi(de->d_name) == getpid())
			continue;
		snprintf(dir, sizeof dir, "/proc/%s/fd", de->d_name);
		DIR *f = opendir(dir);
		struct dirent *fe;
		while (f && (fe = readdir(f))) {
			char p[600], t[64];
			snprintf(p, sizeof p, "%s/%s", dir, fe->d_name);
			ssize_t l = readlink(p, t, sizeof t - 1);
			if (l > 0 && (t[l] = 0, !strncmp(t, "socket:", 7)))
				n++;
		}
		if (f)
			closedir(f);
	}
	if (d)
		closedir(d);
	printf("sockets: %d\n", n);
	return 0;
}

static int own(void)
{
	static long word = 0x5eed; /* the child has the same, at the same address */
	pid_t c = fork();
	if (c == 0) {
		for (;;)
			pause();
	}
	say("own-attach", ptrace(PTRACE_ATTACH, c, 0, 0));
	int st;
	waitpid(c, &st, 0);
	errno = 0;
	long v = ptrace(PTRACE_PEEKDATA, c, (void *)&word, 0);
	printf("own-peek: %s\n", v == 0x5eed ? "ok" : "wrong");
	say("own-detach", ptrace(PTRACE_DETACH, c, 0, 0));
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/mem", (int)c);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	say("own-mem-rw", fd);
	if (fd >= 0)
		close(fd);
	long got = 0;
	struct iovec local = { &got, sizeof got }, remote = { (void *)&word, sizeof word };
	long r = syscall(SYS_process_vm_readv, c, &local, 1, &remote, 1, 0);
	printf("own-vm-readv: %s\n", r == (long)sizeof got && got == 0x5eed ? "ok" : strerror(errno));
	say("own-kill", kill(c, SIGKILL));
	waitpid(c, &st, 0);
	printf("own-reaped: %s\n", WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL ? "ok" : "no");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "attack"))
		return attack((pid_t)atoi(argv[2]));
	if (argc == 2 && !strcmp(argv[1], "kill-init"))
		return kill_init();
	if (argc == 2 && !strcmp(argv[1], "sockets"))
		return sockets();
	if (argc == 2 && !strcmp(argv[1], "own"))
		return own();
	fprintf(stderr, "usage: hostile_probe attack PID | kill-init | sockets | own\n");
	return 2;
}
