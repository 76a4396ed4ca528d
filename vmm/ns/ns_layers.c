/* The layers of an image for the ns backend, and the hand-over of a
 * machine's writable layer from its setup to the daemon; see ns.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/ns/ns.h"

/* The parent named in dir/parent: a NAME beside dir, or a path. */
static int read_parent(const char *dir, char *out, size_t cap)
{
	char path[PATH_MAX], name[PATH_MAX];
	if (snprintf(path, sizeof path, "%s/parent", dir) >= (int)sizeof path)
		return -ENAMETOOLONG;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, name, sizeof name - 1);
	int err = n < 0 ? -errno : 0;
	close(fd);
	if (err)
		return err;
	while (n > 0 && (name[n - 1] == '\n' || name[n - 1] == ' '))
		n--;
	name[n] = '\0';
	if (n == 0 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return -EINVAL;
	if (strchr(name, '/'))
		return snprintf(out, cap, "%s", name) >= (int)cap ? -ENAMETOOLONG : 0;
	const char *slash = strrchr(dir, '/');
	int dl = slash ? (int)(slash - dir) : 1;
	const char *base = slash ? dir : ".";
	return snprintf(out, cap, "%.*s/%s", dl, base, name) >= (int)cap ? -ENAMETOOLONG : 0;
}

static bool is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int ns_layers_resolve(const char *image_dir, char (*out)[PATH_MAX], int max, int *n)
{
	char dir[PATH_MAX];
	if (snprintf(dir, sizeof dir, "%s", image_dir) >= (int)sizeof dir)
		return -ENAMETOOLONG;
	*n = 0;
	for (;;) {
		if (*n >= max)
			return -ELOOP; /* too deep, or a cycle of parents */
		char layer[PATH_MAX + 16];
		snprintf(layer, sizeof layer, "%s/layer", dir);
		char rootfs[PATH_MAX + 16];
		snprintf(rootfs, sizeof rootfs, "%s/rootfs", dir);
		if (is_dir(rootfs)) {
			if (strlen(rootfs) >= PATH_MAX)
				return -ENAMETOOLONG;
			memcpy(out[(*n)++], rootfs, strlen(rootfs) + 1);
			return 0;
		}
		if (!is_dir(layer))
			return -ENOENT;
		if (strlen(layer) >= PATH_MAX)
			return -ENAMETOOLONG;
		memcpy(out[(*n)++], layer, strlen(layer) + 1);
		char parent[PATH_MAX];
		int err = read_parent(dir, parent, sizeof parent);
		if (err)
			return err;
		memcpy(dir, parent, strlen(parent) + 1);
	}
}

/* Child side: async-signal-safe (raw system calls, stack memory). */
int ns_layers_send_fd(int sock, int fd)
{
	char byte = 'u';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	memset(&u, 0, sizeof u);
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof u.buf };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof fd);
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

int ns_layers_recv_fd(int sock, int *fd)
{
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof u.buf };
	ssize_t r;
	do
		r = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	if (r != 1 || byte != 'u' || !c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
	    c->cmsg_len != CMSG_LEN(sizeof(int)))
		return -EPROTO;
	memcpy(fd, CMSG_DATA(c), sizeof *fd);
	return 0;
}
