/* What the kvm tests share (header only): the host side of a PING to the
 * conformance guest's agent, reading and writing files (serial logs,
 * images, snapshots), and counting the process's fds and threads (teardown
 * must leave them as they were). */
#ifndef VMPOOL_TESTS_KVM_TESTUTIL_H
#define VMPOOL_TESTS_KVM_TESTUTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/proto.h"
#include "tests/common/testutil.h"

/* Sends PING `id` carrying `echo`, reads one frame, and checks it is the
 * PONG of that id with the same bytes. 0 or -errno (-EPROTO: another
 * frame; -EBADMSG: other bytes). */
static inline int guest_ping(int fd, uint32_t id, const void *echo, uint32_t len)
{
	struct vp_buf b;
	vp_buf_init(&b);
	vp_put_str(&b, echo, len);
	int rc = b.err ? b.err : vp_frame_write(fd, VP_PING, id, b.data, b.len);
	vp_buf_free(&b);
	if (rc)
		return rc;
	struct vp_hdr h;
	uint8_t *pl = NULL;
	rc = vp_frame_read(fd, &h, &pl);
	if (!rc && (h.type != VP_PONG || h.id != id))
		rc = -EPROTO;
	if (!rc) {
		struct vp_reader r;
		const uint8_t *p;
		uint32_t n;
		vp_reader_init(&r, pl, h.len);
		vp_get_str(&r, &p, &n, VP_MAX_DATA);
		rc = vp_reader_finish(&r);
		if (!rc && (n != len || memcmp(p, echo, len)))
			rc = -EBADMSG;
	}
	free(pl);
	return rc;
}

/* The whole content of a log file (memfd), NUL-terminated; free() it. */
static inline char *read_log(int fd)
{
	off_t len = lseek(fd, 0, SEEK_END);
	char *buf = len >= 0 ? calloc(1, (size_t)len + 1) : NULL;
	if (buf && pread(fd, buf, (size_t)len, 0) != len) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* Creates or replaces a file with exactly these bytes. */
static inline int write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, buf, len);
	close(fd);
	return n == (ssize_t)len ? 0 : -EIO;
}

/* A whole file by name, NUL-terminated; free() it. NULL if unreadable. */
static inline char *read_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	char *s = read_log(fd);
	close(fd);
	return s;
}

#endif
