/* pollcheck FILE [TIMEOUT_MS]: checks that a pipe-like file of vmpoolfs
 * (stdout, stderr, exit) honours O_NONBLOCK and poll(2):
 *   1. a non-blocking read while the command runs with nothing to read
 *      must fail with EAGAIN;
 *   2. poll(POLLIN) must wake when data (or the end) arrives;
 *   3. the read after it returns that data.
 * Prints "first=EAGAIN|DATA|EOF|ERR:<errno>", "poll=POLLIN ms=N" or
 * "poll=timeout", then "data=<bytes>"; exits 0 when all three held. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: pollcheck FILE [TIMEOUT_MS]\n");
		return 2;
	}
	int timeout = argc > 2 ? atoi(argv[2]) : 10000;
	int fd = open(argv[1], O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		perror(argv[1]);
		return 2;
	}
	char buf[4096];
	int ok = 1;
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n < 0 && errno == EAGAIN) {
		printf("first=EAGAIN\n");
	} else {
		ok = 0;
		if (n > 0)
			printf("first=DATA\n");
		else if (n == 0)
			printf("first=EOF\n");
		else
			printf("first=ERR:%d\n", errno);
	}
	struct pollfd p = { .fd = fd, .events = POLLIN };
	long t0 = now_ms();
	int r = poll(&p, 1, timeout);
	if (r == 1 && (p.revents & POLLIN)) {
		printf("poll=POLLIN ms=%ld\n", now_ms() - t0);
	} else {
		printf("poll=%s revents=%#x\n", r == 0 ? "timeout" : "error", (unsigned)p.revents);
		ok = 0;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	if (n > 0) {
		buf[n] = '\0';
		while (n > 0 && buf[n - 1] == '\n')
			buf[--n] = '\0';
		printf("data=%s\n", buf);
	} else {
		printf("data=%s\n", n == 0 ? "<EOF>" : strerror(errno));
		ok = 0;
	}
	close(fd);
	return ok ? 0 : 1;
}
