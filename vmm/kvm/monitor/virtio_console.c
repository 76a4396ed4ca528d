/* virtio-console, port 0, bridged to a socketpair (virtio_console.h). */
#include "vmm/kvm/monitor/virtio_console.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vmm/kvm/monitor/vm.h"

#define CONFIG_LEN 12u /* cols, rows, max_nr_ports, emerg_wr: all 0 here */

static void console_reset(void *dev)
{
	struct kvm_console *c = dev;
	/* The chains live in guest memory the driver is taking back. */
	c->rx_held = c->tx_held = false;
	c->tx_off = 0;
}

static const struct virtio_mmio_ops console_ops = {
	.device_id = VIRTIO_ID_CONSOLE,
	.features = VIRTIO_F_VERSION_1,
	.nqueues = 2,
	.config_len = CONFIG_LEN,
	.read_config = NULL, /* the transport returns zeros */
	.reset = console_reset,
};

/* Takes the next chain of qi into *held; false when there is none or the
 * ring is broken (then the queue is failed and left alone). */
static bool take(struct kvm_console *c, unsigned qi, struct virtq_chain *chain, bool *held)
{
	if (*held)
		return true;
	if (!virtio_mmio_queue_live(&c->mmio, qi))
		return false;
	int rc = virtq_pop(&c->mmio.mem, &c->mmio.q[qi].vq, chain);
	if (rc < 0) {
		c->queue_errors++;
		virtio_mmio_queue_fail(&c->mmio, qi);
	}
	*held = rc > 0;
	return *held;
}

static void give_back(struct kvm_console *c, unsigned qi, struct virtq_chain *chain, bool *held,
		      uint32_t written)
{
	virtq_push(&c->mmio.mem, &c->mmio.q[qi].vq, chain->head, written);
	virtio_mmio_used(&c->mmio, qi);
	*held = false;
}

static void host_failed(struct kvm_console *c, int err)
{
	if (!c->host_err)
		c->host_err = err;
	c->host_gone = true;
}

/* Guest → host: sends the held chain's readable bytes from tx_off. */
static void pump_tx(struct kvm_console *c)
{
	struct iovec iov[VIRTQ_NUM_MAX];
	while (take(c, KVM_CONSOLE_TXQ, c->tx, &c->tx_held)) {
		struct virtq_chain *ch = c->tx;
		if (c->host_gone || c->tx_off >= ch->read_len) {
			/* Nobody listens, or all sent: the guest gets its buffer back. */
			c->tx_off = 0;
			give_back(c, KVM_CONSOLE_TXQ, ch, &c->tx_held, 0);
			continue;
		}
		unsigned n = 0;
		uint64_t skip = c->tx_off;
		for (unsigned k = 0; k < ch->nread; k++) {
			if (skip >= ch->iov[k].iov_len) {
				skip -= ch->iov[k].iov_len;
				continue;
			}
			iov[n].iov_base = (uint8_t *)ch->iov[k].iov_base + skip;
			iov[n++].iov_len = ch->iov[k].iov_len - skip;
			skip = 0;
		}
		struct msghdr msg = { .msg_iov = iov, .msg_iovlen = n };
		/* NOSIGNAL: a host end closed under us is an error, not SIGPIPE. */
		ssize_t w = sendmsg(c->sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return; /* wait for POLLOUT */
			host_failed(c, -errno);
			continue;
		}
		c->tx_off += (uint64_t)w;
		c->from_guest += (uint64_t)w;
	}
}

/* Host → guest: fills the held receive chain with what the socket has. */
static void pump_rx(struct kvm_console *c)
{
	while (!c->host_gone && take(c, KVM_CONSOLE_RXQ, c->rx, &c->rx_held)) {
		struct virtq_chain *ch = c->rx;
		if (ch->write_len == 0) {
			give_back(c, KVM_CONSOLE_RXQ, ch, &c->rx_held, 0);
			continue;
		}
		ssize_t r = readv(c->sock, ch->iov + ch->nread, (int)ch->nwrite);
		if (r < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return; /* keep the chain for the next bytes */
			host_failed(c, -errno);
			return;
		}
		if (r == 0) {
			c->host_gone = true;
			return;
		}
		c->to_guest += (uint64_t)r;
		give_back(c, KVM_CONSOLE_RXQ, ch, &c->rx_held, (uint32_t)r);
	}
}

static void drain(int fd)
{
	uint64_t v;
	if (read(fd, &v, sizeof(v)) < 0)
		return; /* EAGAIN: nothing pending */
}

static void *device_thread(void *arg)
{
	struct kvm_console *c = arg;
	for (;;) {
		pthread_mutex_lock(&c->mmio.lock);
		pump_tx(c);
		pump_rx(c);
		short ev = (short)((c->rx_held ? POLLIN : 0) | (c->tx_held ? POLLOUT : 0));
		bool gone = c->host_gone;
		pthread_mutex_unlock(&c->mmio.lock);

		struct pollfd p[4] = {
			{ .fd = c->stop_fd, .events = POLLIN },
			{ .fd = c->mmio.q[KVM_CONSOLE_RXQ].notify_fd, .events = POLLIN },
			{ .fd = c->mmio.q[KVM_CONSOLE_TXQ].notify_fd, .events = POLLIN },
			/* A closed peer reports POLLHUP whatever we ask: stop asking. */
			{ .fd = gone || !ev ? -1 : c->sock, .events = ev },
		};
		if (poll(p, 4, -1) < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		for (int i = 1; i < 3; i++)
			if (p[i].revents)
				drain(p[i].fd);
		if (p[3].revents & (POLLHUP | POLLERR) && !(p[3].revents & POLLIN)) {
			pthread_mutex_lock(&c->mmio.lock);
			host_failed(c, -EPIPE);
			pthread_mutex_unlock(&c->mmio.lock);
		}
	}
	return NULL;
}

int kvm_console_open(struct kvm_console *c, struct kvm_vm *vm, uint64_t base, uint32_t irq, int *host_fd)
{
	memset(c, 0, sizeof(*c));
	c->sock = c->stop_fd = -1;
	int sv[2] = { -1, -1 };
	int rc = -ENOMEM;
	c->rx = malloc(sizeof(*c->rx));
	c->tx = malloc(sizeof(*c->tx));
	if (!c->rx || !c->tx)
		goto fail;
	rc = virtio_mmio_init(&c->mmio, vm, base, irq, &console_ops, c);
	if (rc)
		goto fail; /* it cleaned up after itself */
	c->mmio_ok = true;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
	    fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0 ||
	    (c->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		rc = errno ? -errno : -EIO;
		goto fail;
	}
	c->sock = sv[0];
	rc = -pthread_create(&c->thread, NULL, device_thread, c);
	if (rc)
		goto fail;
	c->running = true;
	*host_fd = sv[1];
	return 0;
fail:
	if (sv[1] >= 0)
		close(sv[1]);
	if (c->sock < 0 && sv[0] >= 0)
		close(sv[0]);
	kvm_console_close(c);
	return rc;
}

void kvm_console_close(struct kvm_console *c)
{
	if (c->running) {
		uint64_t one = 1;
		if (write(c->stop_fd, &one, sizeof(one)) == sizeof(one))
			pthread_join(c->thread, NULL);
		c->running = false;
	}
	if (c->mmio_ok)
		virtio_mmio_destroy(&c->mmio);
	c->mmio_ok = false;
	if (c->sock >= 0)
		close(c->sock);
	if (c->stop_fd >= 0)
		close(c->stop_fd);
	free(c->rx);
	free(c->tx);
	c->rx = c->tx = NULL;
	c->sock = c->stop_fd = -1;
}

void kvm_console_save(struct kvm_console *c, struct kvm_console_state *st)
{
	memset(st, 0, sizeof(*st));
	virtio_mmio_save(&c->mmio, &st->mmio);
	st->rx_held = c->rx_held;
	st->tx_held = c->tx_held;
	st->tx_off = c->tx_held ? c->tx_off : 0;
}

/* The chain taken last from qi is the one at last_avail - 1; the restored
 * ring still offers it (the driver only reuses what comes back used). */
static int retake(struct kvm_console *c, unsigned qi, struct virtq_chain *chain)
{
	struct virtq *vq = &c->mmio.q[qi].vq;
	if (!virtio_mmio_queue_live(&c->mmio, qi) || vq->last_avail == vq->used_idx)
		return -EBADMSG;
	vq->last_avail--;
	return virtq_pop(&c->mmio.mem, vq, chain) == 1 ? 0 : -EBADMSG;
}

int kvm_console_restore(struct kvm_console *c, const struct kvm_console_state *st)
{
	if (st->rx_held > 1 || st->tx_held > 1 || (!st->tx_held && st->tx_off))
		return -EBADMSG;
	pthread_mutex_lock(&c->mmio.lock);
	struct virtio_mmio_state before;
	virtio_mmio_save(&c->mmio, &before);
	int rc = virtio_mmio_restore(&c->mmio, &st->mmio);
	if (!rc && st->rx_held)
		rc = retake(c, KVM_CONSOLE_RXQ, c->rx);
	if (!rc && st->tx_held) {
		rc = retake(c, KVM_CONSOLE_TXQ, c->tx);
		if (!rc && st->tx_off > c->tx->read_len)
			rc = -EBADMSG;
	}
	if (rc) {
		(void)virtio_mmio_restore(&c->mmio, &before); /* it came from this transport */
	} else {
		c->rx_held = st->rx_held;
		c->tx_held = st->tx_held;
		c->tx_off = st->tx_off;
	}
	pthread_mutex_unlock(&c->mmio.lock);
	/* The device thread sleeps in poll: have it look at the queues again. */
	for (unsigned i = 0; !rc && i < 2; i++)
		if (write(c->mmio.q[i].notify_fd, &(uint64_t){ 1 }, sizeof(uint64_t)) < 0)
			rc = -errno;
	return rc;
}
