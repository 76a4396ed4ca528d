/* Big READs of regular files answered with splice (agent.h,
 * agent_read_spliced): the data goes from the file to the channel socket
 * without passing through the agent's memory. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"

/* Sends all n bytes of buf on the channel socket (the lock held). */
static int sock_send_all(int fd, const uint8_t *buf, size_t n)
{
	while (n) {
		ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct pollfd pf = { .fd = fd, .events = POLLOUT };
			poll(&pf, 1, -1);
			continue;
		}
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

/* A READ of a regular file answered without the data passing through the
 * agent's memory: the file's pages are spliced into a pipe (by reference
 * for tmpfs, the guest's writable layer), then from the pipe into the
 * socket behind DATA's header. The pread path copied them twice (into a
 * buffer, then into the socket): those two copies were a fifth of all CPU
 * time in a sequential read of root/ (perf). The whole reply is in the pipe before the header goes
 * out, as the header carries its length. Returns 1 when this path does not
 * apply (not a socket, no big pipe, a file that cannot splice): nothing was
 * sent and the caller uses pread. */
int agent_read_spliced(struct agent_chan *c, struct agent_handle *h, uint32_t id, uint64_t off, uint32_t size)
{
	struct stat st;
	/* A page-aligned offset, so the reply's pages fit the pipe that
	 * F_SETPIPE_SZ can give (pipe-max-size, 1 MiB by default: 256
	 * buffers of at most one page each). */
	if (!h->regular || size < AGENT_SPLICE_MIN || size > VP_MAX_DATA || off > (uint64_t)INT64_MAX ||
	    (off & 4095) != 0 || fstat(c->fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		return 1;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return 1;
	int r = 1;
	/* Fails past fs.pipe-max-size or the user's pipe quota: fall back. */
	if (fcntl(p[1], F_SETPIPE_SZ, (int)size) < (int)size)
		goto out;
	loff_t pos = (loff_t)off;
	size_t got = 0;
	while (got < size) {
		ssize_t n = splice(h->fd, &pos, p[1], NULL, size - got, SPLICE_F_NONBLOCK);
		if (n < 0 && errno == EINTR && got == 0)
			continue;
		if (n < 0 && got == 0)
			goto out; /* pread says what the matter is, or manages */
		if (n <= 0)
			break; /* EOF, or an error after data: a short read */
		got += (size_t)n;
	}
	uint8_t hdr[VP_HDR_SIZE + 4];
	vp_hdr_encode(hdr, &(struct vp_hdr){ .len = 4 + (uint32_t)got, .type = VP_FS_DATA, .id = id });
	for (int i = 0; i < 4; i++)
		hdr[VP_HDR_SIZE + i] = (uint8_t)(got >> (8 * i));
	pthread_mutex_lock(&c->lock);
	r = sock_send_all(c->fd, hdr, sizeof hdr);
	size_t sent = 0;
	while (r == 0 && sent < got) {
		ssize_t n = splice(p[0], NULL, c->fd, NULL, got - sent, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd pf = { .fd = c->fd, .events = POLLOUT };
			poll(&pf, 1, -1);
			continue;
		}
		if (n <= 0)
			r = n < 0 ? -errno : -EIO; /* the channel is broken, as for any failed reply */
		else
			sent += (size_t)n;
	}
	pthread_mutex_unlock(&c->lock);
	if (r < 0)
		AGENT_LOG("reply to READ %u: %s", id, strerror(-r));
	r = 0; /* answered, or the channel is gone: either way not again */
out:
	close(p[0]);
	close(p[1]);
	return r;
}
