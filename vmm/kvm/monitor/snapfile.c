/* Snapshot state file container (snapfile.h). */
#include "vmm/kvm/monitor/snapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OFF_VERSION 8u
#define OFF_NSECT 12u
#define OFF_TOTAL 16u
#define OFF_CHECKSUM 24u

static uint64_t fnv64(const uint8_t *p, size_t n, uint64_t h)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* The checksum field counts as zero. */
static uint64_t file_sum(const uint8_t *buf, size_t len)
{
	static const uint8_t zero[8];
	uint64_t h = fnv64(buf, OFF_CHECKSUM, 0xcbf29ce484222325ull);
	h = fnv64(zero, 8, h);
	return fnv64(buf + SNAPFILE_HDR, len - SNAPFILE_HDR, h);
}

static int reserve(struct snapfile_w *w, size_t more)
{
	if (w->err)
		return w->err;
	if (more > SNAPFILE_MAX || w->len + more > SNAPFILE_MAX)
		return w->err = -EFBIG;
	if (w->len + more <= w->cap)
		return 0;
	size_t cap = w->cap ? w->cap : 4096;
	while (cap < w->len + more)
		cap *= 2;
	uint8_t *b = realloc(w->buf, cap);
	if (!b)
		return w->err = -ENOMEM;
	w->buf = b;
	w->cap = cap;
	return 0;
}

void snapfile_w_init(struct snapfile_w *w)
{
	*w = (struct snapfile_w){ 0 };
	if (reserve(w, SNAPFILE_HDR) == 0) {
		memset(w->buf, 0, SNAPFILE_HDR);
		w->len = SNAPFILE_HDR;
	}
}

void snapfile_w_add(struct snapfile_w *w, uint32_t tag, const void *data, uint32_t len)
{
	size_t padded = ((size_t)len + 7) & ~(size_t)7;
	if (w->nsect >= SNAPFILE_MAX_SECTIONS && !w->err)
		w->err = -E2BIG;
	if (reserve(w, 8 + padded))
		return;
	memcpy(w->buf + w->len, &tag, 4);
	memcpy(w->buf + w->len + 4, &len, 4);
	memcpy(w->buf + w->len + 8, data, len);
	memset(w->buf + w->len + 8 + len, 0, padded - len);
	w->len += 8 + padded;
	w->nsect++;
}

int snapfile_w_seal(struct snapfile_w *w, const uint8_t **buf, size_t *len)
{
	if (w->err)
		return w->err;
	uint32_t version = SNAPFILE_VERSION;
	uint64_t total = w->len;
	memcpy(w->buf, SNAPFILE_MAGIC, 8);
	memcpy(w->buf + OFF_VERSION, &version, 4);
	memcpy(w->buf + OFF_NSECT, &w->nsect, 4);
	memcpy(w->buf + OFF_TOTAL, &total, 8);
	uint64_t sum = file_sum(w->buf, w->len);
	memcpy(w->buf + OFF_CHECKSUM, &sum, 8);
	*buf = w->buf;
	*len = w->len;
	return 0;
}

int snapfile_pwrite_all(int fd, const void *buf, size_t n, off_t off)
{
	const uint8_t *p = buf;
	while (n) {
		ssize_t k = pwrite(fd, p, n, off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EIO;
		p += k;
		n -= (size_t)k;
		off += k;
	}
	return 0;
}

int snapfile_replace(const char *path, int (*fill)(int fd, void *arg), void *arg)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int rc = fill(fd, arg);
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path) < 0)
		rc = -errno;
	if (rc)
		unlink(tmp);
	return rc;
}

struct sealed {
	const uint8_t *buf;
	size_t len;
};

static int write_sealed(int fd, void *arg)
{
	const struct sealed *s = arg;
	return snapfile_pwrite_all(fd, s->buf, s->len, 0);
}

int snapfile_w_write(struct snapfile_w *w, const char *path)
{
	struct sealed s;
	int rc = snapfile_w_seal(w, &s.buf, &s.len);
	return rc ? rc : snapfile_replace(path, write_sealed, &s);
}

void snapfile_w_free(struct snapfile_w *w)
{
	free(w->buf);
	*w = (struct snapfile_w){ 0 };
}

int snapfile_parse(struct snapfile_r *r, const uint8_t *buf, size_t len)
{
	r->nsect = 0;
	if (len < SNAPFILE_HDR || len > SNAPFILE_MAX || memcmp(buf, SNAPFILE_MAGIC, 8))
		return -EBADMSG;
	uint32_t version, nsect;
	uint64_t total, sum;
	memcpy(&version, buf + OFF_VERSION, 4);
	memcpy(&nsect, buf + OFF_NSECT, 4);
	memcpy(&total, buf + OFF_TOTAL, 8);
	memcpy(&sum, buf + OFF_CHECKSUM, 8);
	if (version != SNAPFILE_VERSION)
		return -EPROTONOSUPPORT;
	if (total != len || sum != file_sum(buf, len) || nsect > SNAPFILE_MAX_SECTIONS)
		return -EBADMSG;
	size_t off = SNAPFILE_HDR;
	for (uint32_t i = 0; i < nsect; i++) {
		if (len - off < 8)
			return -EBADMSG;
		uint32_t tag, slen;
		memcpy(&tag, buf + off, 4);
		memcpy(&slen, buf + off + 4, 4);
		size_t padded = ((size_t)slen + 7) & ~(size_t)7;
		if (padded > len - off - 8)
			return -EBADMSG;
		for (uint32_t k = 0; k < i; k++)
			if (r->sect[k].tag == tag)
				return -EBADMSG;
		r->sect[i] = (struct snapfile_sect){ tag, slen, buf + off + 8 };
		off += 8 + padded;
	}
	if (off != len)
		return -EBADMSG; /* trailing bytes no section claims */
	r->nsect = nsect;
	return 0;
}

int snapfile_load(struct snapfile_r *r, const char *path)
{
	*r = (struct snapfile_r){ 0 };
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int rc = 0;
	if (fstat(fd, &st) < 0)
		rc = -errno;
	else if (!S_ISREG(st.st_mode))
		rc = -EINVAL;
	else if ((uint64_t)st.st_size > SNAPFILE_MAX)
		rc = -EFBIG;
	else if (!(r->buf = malloc(st.st_size ? (size_t)st.st_size : 1)))
		rc = -ENOMEM;
	size_t got = 0;
	while (!rc && got < (size_t)st.st_size) {
		ssize_t n = read(fd, r->buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			rc = n < 0 ? -errno : -EBADMSG; /* shrank under us */
		else
			got += (size_t)n;
	}
	close(fd);
	if (!rc) {
		r->len = got;
		rc = snapfile_parse(r, r->buf, got);
	}
	if (rc)
		snapfile_free(r);
	return rc;
}

const struct snapfile_sect *snapfile_find(const struct snapfile_r *r, uint32_t tag)
{
	for (uint32_t i = 0; i < r->nsect; i++)
		if (r->sect[i].tag == tag)
			return &r->sect[i];
	return NULL;
}

int snapfile_get(const struct snapfile_r *r, uint32_t tag, void *out, uint32_t len)
{
	const struct snapfile_sect *s = snapfile_find(r, tag);
	if (!s)
		return -ENOENT;
	if (s->len != len)
		return -EBADMSG;
	memcpy(out, s->data, len);
	return 0;
}

void snapfile_free(struct snapfile_r *r)
{
	free(r->buf);
	r->buf = NULL;
	r->len = 0;
	r->nsect = 0;
}
