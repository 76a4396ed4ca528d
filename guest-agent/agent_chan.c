/* The agent's end of the channel: serialised frame writes and a frame
 * reader that tells a fatal (unframeable) header from an unknown type. */
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"

void agent_log(const char *fmt, ...)
{
	/* One fprintf per line: stderr is unbuffered, so this keeps lines
	 * from different threads whole. */
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	fprintf(stderr, "vmpool-agent: %s\n", line);
}

void agent_chan_init(struct agent_chan *c, int fd)
{
#ifdef __GLIBC__
	/* READ replies and WRITE payloads are ~1 MiB buffers, allocated by one
	 * thread and often freed by another. With glibc's defaults they went
	 * back to the kernel (munmap, or a trim of the heap top) and came back
	 * as fresh pages: ~145 page faults per MiB written (measured). Fixed
	 * thresholds keep them in the heap; at most a few MiB stay mapped
	 * after a transfer. */
	mallopt(M_MMAP_THRESHOLD, 2 << 20);
	mallopt(M_TRIM_THRESHOLD, 4 << 20);
#endif
	c->fd = fd;
	pthread_mutex_init(&c->lock, NULL);
}

void agent_chan_destroy(struct agent_chan *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	pthread_mutex_destroy(&c->lock);
}

int agent_send(struct agent_chan *c, uint16_t type, uint32_t id, const struct vp_buf *payload)
{
	const void *p = payload ? payload->data : NULL;
	size_t n = payload ? payload->len : 0;
	if (payload && payload->err) {
		/* The encoder gave up (ENOMEM or over the frame limit): the
		 * request still gets an answer. */
		return agent_send_error(c, id, payload->err, "reply encoding failed");
	}
	if (n > VP_MAX_PAYLOAD)
		return agent_send_error(c, id, EOVERFLOW, "reply too large");
	pthread_mutex_lock(&c->lock);
	int r = vp_frame_write(c->fd, type, id, p, n);
	pthread_mutex_unlock(&c->lock);
	return r;
}

int agent_send_error(struct agent_chan *c, uint32_t id, int err, const char *msg)
{
	struct vp_error e = { .err = err < 0 ? -err : err };
	if (msg) {
		e.message.p = (const uint8_t *)msg;
		e.message.len = (uint32_t)strlen(msg);
	}
	struct vp_buf b;
	vp_buf_init(&b);
	vp_enc_error(&b, &e);
	int r;
	if (b.err) {
		r = b.err;
	} else {
		pthread_mutex_lock(&c->lock);
		r = vp_frame_write(c->fd, VP_ERROR, id, b.data, b.len);
		pthread_mutex_unlock(&c->lock);
	}
	vp_buf_free(&b);
	return r;
}

int agent_send_ok(struct agent_chan *c, uint32_t id)
{
	return agent_send(c, VP_OK, id, NULL);
}

static int read_full(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EPIPE;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int agent_read_frame(int fd, struct vp_hdr *h, uint8_t **payload)
{
	uint8_t raw[VP_HDR_SIZE];
	*payload = NULL;
	int r = read_full(fd, raw, sizeof raw);
	if (r < 0)
		return r;
	r = vp_hdr_decode(raw, h);
	bool unknown = false;
	if (r < 0) {
		/* An unknown type in an otherwise sound header is a request
		 * from a newer host: skip its payload and answer ENOSYS. A bad
		 * length or flags leaves no trustworthy frame boundary. */
		h->len = le32(raw);
		h->type = (uint16_t)(raw[4] | raw[5] << 8);
		h->flags = (uint16_t)(raw[6] | raw[7] << 8);
		h->id = le32(raw + 8);
		if (h->len > VP_MAX_PAYLOAD)
			return -EMSGSIZE;
		if (h->flags != 0 || vp_type_known(h->type))
			return -EPROTO;
		unknown = true;
	}
	if (h->len > 0) {
		uint8_t *p = malloc(h->len);
		if (!p)
			return -ENOMEM;
		r = read_full(fd, p, h->len);
		if (r < 0) {
			free(p);
			return r;
		}
		if (unknown)
			free(p);
		else
			*payload = p;
	}
	return unknown ? -ENOSYS : 0;
}

void agent_msg_free(struct agent_msg *m)
{
	if (!m)
		return;
	free(m->payload);
	free(m);
}
