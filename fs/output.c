/* Output buffers with spill to an unlinked file; see output.h. */
#include "output.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OUTBUF_KEEP (64u * 1024u) /* allocation kept across commands */

void outbuf_init(struct outbuf *o, size_t mem_limit, const char *spill_dir)
{
	memset(o, 0, sizeof(*o));
	o->mem_limit = mem_limit;
	o->fd = -1;
	o->spill_dir = spill_dir;
}

void outbuf_set_budget(struct outbuf *o, struct outbudget *b)
{
	o->budget = b;
}

/* What leaves the buffer gives its bytes back to the budget. */
static void give_back(struct outbuf *o)
{
	if (o->budget)
		o->budget->used -= o->mem_len + o->file_len;
}

void outbuf_free(struct outbuf *o)
{
	give_back(o);
	free(o->mem);
	o->mem = NULL;
	o->mem_len = o->mem_cap = 0;
	if (o->fd >= 0)
		close(o->fd);
	o->fd = -1;
	o->file_len = 0;
}

void outbuf_reset(struct outbuf *o)
{
	give_back(o);
	o->mem_len = 0;
	if (o->mem_cap > OUTBUF_KEEP) {
		free(o->mem);
		o->mem = NULL;
		o->mem_cap = 0;
	}
	/* Closing frees the disk space at once; a new file is made on demand. */
	if (o->fd >= 0)
		close(o->fd);
	o->fd = -1;
	o->file_len = 0;
}

void outbuf_move(struct outbuf *dst, struct outbuf *src)
{
	give_back(src);
	*dst = *src;
	dst->budget = NULL;
	struct outbudget *b = src->budget;
	outbuf_init(src, src->mem_limit, src->spill_dir);
	src->budget = b;
}

uint64_t outbuf_len(const struct outbuf *o)
{
	return (uint64_t)o->mem_len + o->file_len;
}

static int open_spill(struct outbuf *o)
{
	const char *dir = o->spill_dir && *o->spill_dir ? o->spill_dir : "/tmp";
	/* O_TMPFILE: never visible by name, gone with the fd. */
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		char path[4096];
		int n = snprintf(path, sizeof(path), "%s/vmpoolfs-out.XXXXXX", dir);
		if (n < 0 || (size_t)n >= sizeof(path))
			return -ENAMETOOLONG;
		fd = mkostemp(path, O_CLOEXEC);
		if (fd < 0)
			return -errno;
		unlink(path);
	}
	o->fd = fd;
	return 0;
}

static int write_all_at(int fd, const char *p, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int append(struct outbuf *o, const void *data, size_t len);

int outbuf_append(struct outbuf *o, const void *data, size_t len)
{
	struct outbudget *b = o->budget;
	if (!b || b->max == 0)
		return append(o, data, len);
	uint64_t room = b->used < b->max ? b->max - b->used : 0;
	size_t n = len <= room ? len : (size_t)room;
	uint64_t before = outbuf_len(o);
	int r = n ? append(o, data, n) : 0;
	b->used += outbuf_len(o) - before; /* what a failed append kept counts too */
	if (r == 0 && n < len)
		r = -EDQUOT;
	return r;
}

static int append(struct outbuf *o, const void *data, size_t len)
{
	const char *p = data;
	/* Memory first, while nothing has been spilled (the file holds the tail). */
	if (o->file_len == 0 && o->mem_len < o->mem_limit) {
		size_t room = o->mem_limit - o->mem_len;
		size_t n = len < room ? len : room;
		if (o->mem_len + n > o->mem_cap) {
			size_t cap = o->mem_cap ? o->mem_cap : 4096;
			while (cap < o->mem_len + n)
				cap *= 2;
			if (cap > o->mem_limit)
				cap = o->mem_limit;
			char *m = realloc(o->mem, cap);
			if (!m)
				return -ENOMEM;
			o->mem = m;
			o->mem_cap = cap;
		}
		memcpy(o->mem + o->mem_len, p, n);
		o->mem_len += n;
		p += n;
		len -= n;
	}
	if (len == 0)
		return 0;
	if (o->fd < 0) {
		int r = open_spill(o);
		if (r < 0)
			return r;
	}
	int r = write_all_at(o->fd, p, len, o->file_len);
	if (r < 0)
		return r;
	o->file_len += len;
	return 0;
}

ssize_t outbuf_read(const struct outbuf *o, uint64_t off, void *dst, size_t len)
{
	uint64_t total = outbuf_len(o);
	if (off >= total || len == 0)
		return 0;
	if (len > total - off)
		len = (size_t)(total - off);
	size_t done = 0;
	char *d = dst;
	if (off < o->mem_len) {
		size_t n = o->mem_len - (size_t)off;
		if (n > len)
			n = len;
		memcpy(d, o->mem + off, n);
		done = n;
	}
	while (done < len) {
		uint64_t foff = off + done - o->mem_len;
		ssize_t n = pread(o->fd, d + done, len - done, (off_t)foff);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO; /* the file is shorter than we wrote */
		done += (size_t)n;
	}
	return (ssize_t)done;
}
