/* Codec tests: frame I/O over a socketpair and a pipe, blocking or not,
 * bad headers on the wire and peers that close mid-frame. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/proto/test_proto.h"

/* ---- frame I/O ----------------------------------------------------------------------- */

struct bigread {
	int fd;
	int err;
	struct vp_hdr h;
	uint8_t *payload;
};

static void *read_thread(void *arg)
{
	struct bigread *br = arg;
	br->err = vp_frame_read(br->fd, &br->h, &br->payload);
	return NULL;
}

static bool frame_io_on(int rfd, int wfd)
{
	int mark = tap_mark();
	CHECK_EQ(vp_frame_write(wfd, VP_OK, 5, NULL, 0), 0);
	CHECK_EQ(vp_frame_write(wfd, VP_PING, 6, "\x02\0\0\0hi", 6), 0);
	struct vp_hdr h;
	uint8_t *p = (uint8_t *)1;
	CHECK_EQ(vp_frame_read(rfd, &h, &p), 0);
	CHECK(h.type == VP_OK && h.id == 5 && h.len == 0 && p == NULL);
	CHECK_EQ(vp_frame_read(rfd, &h, &p), 0);
	CHECK(h.type == VP_PING && h.id == 6 && h.len == 6 && p && memcmp(p, "\x02\0\0\0hi", 6) == 0);
	free(p);

	/* A maximal frame: the writer must cope with short writes while the
	 * reader drains concurrently. */
	uint8_t *big = malloc(VP_MAX_PAYLOAD);
	for (size_t i = 0; i < VP_MAX_PAYLOAD; i++)
		big[i] = (uint8_t)(i * 7);
	struct bigread br = { .fd = rfd };
	pthread_t t;
	pthread_create(&t, NULL, read_thread, &br);
	CHECK_EQ(vp_frame_write(wfd, VP_FS_DATA, 0xffffffffu, big, VP_MAX_PAYLOAD), 0);
	pthread_join(t, NULL);
	CHECK_EQ(br.err, 0);
	CHECK(br.h.len == VP_MAX_PAYLOAD && br.h.id == 0xffffffffu);
	CHECK(br.payload && memcmp(br.payload, big, VP_MAX_PAYLOAD) == 0);
	free(br.payload);
	free(big);

	CHECK_EQ(vp_frame_write(wfd, VP_OK, 1, NULL, VP_MAX_PAYLOAD + 1), -EMSGSIZE);
	CHECK_EQ(vp_frame_write(wfd, 12345, 1, NULL, 0), -EINVAL);
	return tap_mark() == mark;
}

static void test_frame_io_socketpair(void)
{
	int sv[2];
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	CHECK(frame_io_on(sv[0], sv[1]));
	/* Non-blocking both ends: EAGAIN is waited out, not returned. */
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	CHECK(frame_io_on(sv[0], sv[1]));
	close(sv[0]);
	close(sv[1]);
}

static void test_frame_io_pipe(void)
{
	int pv[2];
	CHECK_EQ(pipe2(pv, O_CLOEXEC), 0);
	CHECK(frame_io_on(pv[0], pv[1]));
	close(pv[0]);
	close(pv[1]);
}

static void test_frame_bad_header_io(void)
{
	int sv[2];
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	/* Oversize length: rejected from the header alone; the bytes after it
	 * stay unread (a reader that tried to read the payload would hang). */
	uint8_t raw[VP_HDR_SIZE + 4];
	struct vp_hdr h = { .len = VP_MAX_PAYLOAD + 1, .type = VP_FS_DATA, .id = 3 };
	vp_hdr_encode(raw, &h);
	memcpy(raw + VP_HDR_SIZE, "MARK", 4);
	CHECK_EQ(write(sv[1], raw, sizeof raw), (ssize_t)sizeof raw);
	uint8_t *p = (uint8_t *)1;
	CHECK_EQ(vp_frame_read(sv[0], &h, &p), -EMSGSIZE);
	CHECK(p == NULL);
	char mark[4];
	CHECK_EQ(read(sv[0], mark, 4), 4);
	CHECK(memcmp(mark, "MARK", 4) == 0);
	/* Unknown type and nonzero flags: -EPROTO, payload left unread. */
	h = (struct vp_hdr){ .len = 4, .type = 300, .id = 3 };
	vp_hdr_encode(raw, &h);
	CHECK_EQ(write(sv[1], raw, sizeof raw), (ssize_t)sizeof raw);
	CHECK_EQ(vp_frame_read(sv[0], &h, &p), -EPROTO);
	CHECK_EQ(read(sv[0], mark, 4), 4);
	h = (struct vp_hdr){ .len = 4, .type = VP_PING, .flags = 2, .id = 3 };
	vp_hdr_encode(raw, &h);
	CHECK_EQ(write(sv[1], raw, sizeof raw), (ssize_t)sizeof raw);
	CHECK_EQ(vp_frame_read(sv[0], &h, &p), -EPROTO);
	CHECK_EQ(read(sv[0], mark, 4), 4);
	close(sv[0]);
	close(sv[1]);
}

static void test_frame_peer_closes(void)
{
	int sv[2];
	struct vp_hdr h;
	uint8_t *p;
	uint8_t raw[VP_HDR_SIZE];

	/* Closed at a frame boundary. */
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[1]);
	CHECK_EQ(vp_frame_read(sv[0], &h, &p), -ECONNRESET);
	close(sv[0]);

	/* Closed inside the header. */
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	CHECK_EQ(write(sv[1], "\x05\0\0", 3), 3);
	close(sv[1]);
	CHECK_EQ(vp_frame_read(sv[0], &h, &p), -ECONNRESET);
	close(sv[0]);

	/* Closed inside the payload, over a socket and over a pipe. */
	for (int kind = 0; kind < 2; kind++) {
		if (kind == 0)
			CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		else
			CHECK_EQ(pipe2(sv, O_CLOEXEC), 0);
		h = (struct vp_hdr){ .len = 100, .type = VP_FS_DATA, .id = 1 };
		vp_hdr_encode(raw, &h);
		CHECK_EQ(write(sv[1], raw, sizeof raw), (ssize_t)sizeof raw);
		CHECK_EQ(write(sv[1], "0123456789", 10), 10);
		close(sv[1]);
		p = (uint8_t *)1;
		CHECK_EQ(vp_frame_read(sv[0], &h, &p), -ECONNRESET);
		CHECK(p == NULL);
		close(sv[0]);
	}

	/* Writing to a closed socket: -EPIPE, and no SIGPIPE (this process does
	 * not ignore it here, so a signal would end the test). */
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[0]);
	CHECK_EQ(vp_frame_write(sv[1], VP_OK, 1, NULL, 0), -EPIPE);
	close(sv[1]);

	/* A pipe gives EPIPE too once its callers ignore SIGPIPE. */
	struct sigaction ign = { .sa_handler = SIG_IGN }, old;
	sigaction(SIGPIPE, &ign, &old);
	CHECK_EQ(pipe2(sv, O_CLOEXEC), 0);
	close(sv[0]);
	CHECK_EQ(vp_frame_write(sv[1], VP_OK, 1, NULL, 0), -EPIPE);
	close(sv[1]);
	sigaction(SIGPIPE, &old, NULL);
}

/* The peer closes while a big frame is being written: an error, not a hang. */
static void *close_soon(void *arg)
{
	int *fd = arg;
	char buf[1000];
	ssize_t r = read(*fd, buf, sizeof buf);
	(void)r;
	close(*fd);
	return NULL;
}

static void test_frame_write_peer_closes(void)
{
	int sv[2];
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pthread_t t;
	pthread_create(&t, NULL, close_soon, &sv[0]);
	uint8_t *big = calloc(1, VP_MAX_PAYLOAD);
	int e = vp_frame_write(sv[1], VP_FS_DATA, 1, big, VP_MAX_PAYLOAD);
	CHECK(e == -EPIPE || e == -ECONNRESET);
	pthread_join(t, NULL);
	free(big);
	close(sv[1]);
}

static const struct tap_test tests[] = {
	{ "frame I/O over a socketpair", test_frame_io_socketpair },
	{ "frame I/O over a pipe", test_frame_io_pipe },
	{ "bad header rejected before the payload", test_frame_bad_header_io },
	{ "peer closes mid-frame", test_frame_peer_closes },
	{ "peer closes during a big write", test_frame_write_peer_closes },
};

TAP_PART(proto_frame_io_part, tests);
