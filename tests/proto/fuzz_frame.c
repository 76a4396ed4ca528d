/* libFuzzer target for the codec: the input is decoded as a header, as the
 * payload of every message type, and as a stream of frames read from a
 * memfd. Whatever decodes must re-encode to the very same bytes, so
 * encoder and decoder can never disagree about a message.
 * Seeds: tests/proto/corpus (written by `test_proto --write-corpus DIR`). */
#include "guest-agent/proto.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const uint16_t types[] = {
	VP_HELLO, VP_READY, VP_PING, VP_PONG, VP_ERROR, VP_OK, VP_EXEC, VP_EXEC_STARTED, VP_OUTPUT, VP_EXIT,
	VP_OUTPUT_ACK, VP_STDIN, VP_SIGNAL, VP_FS_LOOKUP, VP_FS_FORGET, VP_FS_GETATTR, VP_FS_SETATTR,
	VP_FS_READLINK, VP_FS_MKNOD, VP_FS_MKDIR, VP_FS_UNLINK, VP_FS_RMDIR, VP_FS_SYMLINK, VP_FS_RENAME,
	VP_FS_LINK, VP_FS_OPEN, VP_FS_CREATE, VP_FS_READ, VP_FS_WRITE, VP_FS_FSYNC, VP_FS_CLOSE,
	VP_FS_OPENDIR, VP_FS_READDIR, VP_FS_STATFS, VP_FS_ENTRY, VP_FS_ATTR, VP_FS_DATA, VP_FS_HANDLE,
	VP_FS_CREATED, VP_FS_WRITTEN, VP_FS_DIRENTS, VP_FS_STATFS_REPLY,
};

/* Re-encodes a payload that vp_validate accepted. */
static void reencode(uint16_t t, const uint8_t *p, size_t n, struct vp_buf *b)
{
	union {
		struct vp_hello hello;
		struct vp_ready ready;
		struct vp_error error;
		struct vp_exec exec;
		struct vp_exec_started started;
		struct vp_output output;
		struct vp_exit exit;
		struct vp_output_ack ack;
		struct vp_stdin in;
		struct vp_signal sig;
		struct vp_attr attr;
		struct vp_entry entry;
		struct vp_setattr setattr;
		struct vp_statfs statfs;
		struct vp_fs_req fs;
	} u;
	struct vp_reader r;
	switch (t) {
	case VP_HELLO: if (!vp_dec_hello(p, n, &u.hello)) vp_enc_hello(b, &u.hello); return;
	case VP_READY: if (!vp_dec_ready(p, n, &u.ready)) vp_enc_ready(b, &u.ready); return;
	case VP_ERROR: if (!vp_dec_error(p, n, &u.error)) vp_enc_error(b, &u.error); return;
	case VP_EXEC: if (!vp_dec_exec(p, n, &u.exec)) vp_enc_exec(b, &u.exec); return;
	case VP_EXEC_STARTED:
		if (!vp_dec_exec_started(p, n, &u.started))
			vp_enc_exec_started(b, &u.started);
		return;
	case VP_OUTPUT: if (!vp_dec_output(p, n, &u.output)) vp_enc_output(b, &u.output); return;
	case VP_EXIT: if (!vp_dec_exit(p, n, &u.exit)) vp_enc_exit(b, &u.exit); return;
	case VP_OUTPUT_ACK: if (!vp_dec_output_ack(p, n, &u.ack)) vp_enc_output_ack(b, &u.ack); return;
	case VP_STDIN: if (!vp_dec_stdin(p, n, &u.in)) vp_enc_stdin(b, &u.in); return;
	case VP_SIGNAL: if (!vp_dec_signal(p, n, &u.sig)) vp_enc_signal(b, &u.sig); return;
	case VP_FS_SETATTR: if (!vp_dec_setattr(p, n, &u.setattr)) vp_enc_setattr(b, &u.setattr); return;
	case VP_FS_ENTRY: if (!vp_dec_entry(p, n, &u.entry)) vp_enc_entry(b, &u.entry); return;
	case VP_FS_ATTR: if (!vp_dec_attr(p, n, &u.attr)) vp_enc_attr(b, &u.attr); return;
	case VP_FS_STATFS_REPLY: if (!vp_dec_statfs(p, n, &u.statfs)) vp_enc_statfs(b, &u.statfs); return;
	case VP_OK: return;
	case VP_PING:
	case VP_PONG:
	case VP_FS_DATA: {
		const uint8_t *s;
		uint32_t len;
		vp_reader_init(&r, p, n);
		vp_get_str(&r, &s, &len, VP_MAX_DATA);
		vp_put_str(b, s, len);
		return;
	}
	case VP_FS_HANDLE:
		vp_reader_init(&r, p, n);
		vp_put_u64(b, vp_get_u64(&r));
		return;
	case VP_FS_WRITTEN:
		vp_reader_init(&r, p, n);
		vp_put_u32(b, vp_get_u32(&r));
		return;
	case VP_FS_CREATED: {
		vp_reader_init(&r, p, n);
		uint64_t fh = vp_get_u64(&r);
		u.entry.node = vp_get_u64(&r);
		vp_get_attr(&r, &u.entry.attr);
		vp_put_u64(b, fh);
		vp_enc_entry(b, &u.entry);
		return;
	}
	case VP_FS_DIRENTS: {
		vp_reader_init(&r, p, n);
		uint32_t count = vp_get_u32(&r);
		vp_put_u32(b, count);
		for (uint32_t i = 0; i < count && !r.err; i++) {
			struct vp_dirent d;
			vp_get_dirent(&r, &d);
			vp_enc_dirent(b, &d);
		}
		return;
	}
	default:
		if (!vp_dec_fs_req(p, n, t, &u.fs))
			vp_enc_fs_req(b, t, &u.fs);
		return;
	}
}

static void check_payload(uint16_t t, const uint8_t *p, size_t n, struct vp_buf *b)
{
	if (vp_validate(t, p, n) != 0)
		return;
	vp_buf_reset(b);
	reencode(t, p, n, b);
	if (b->err || b->len != n || (n && memcmp(b->data, p, n) != 0))
		abort(); /* decoded, but does not encode back to itself */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vp_buf b;
	vp_buf_init(&b);

	if (size >= VP_HDR_SIZE) {
		struct vp_hdr h;
		int e = vp_hdr_decode(data, &h);
		/* The payload after a good header, as its own type. */
		if (e == 0)
			check_payload(h.type, data + VP_HDR_SIZE, size - VP_HDR_SIZE, &b);
	}
	/* The whole input as the payload of every type, and with an arbitrary
	 * type taken from its first two bytes (unknown types included). */
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
		check_payload(types[i], data, size, &b);
	if (size >= 2)
		(void)vp_validate((uint16_t)(data[0] | data[1] << 8), data + 2, size - 2);

	/* A stream of frames, through the blocking reader. */
	int fd = memfd_create("fuzz_frame", MFD_CLOEXEC);
	if (fd >= 0) {
		if (size == 0 || write(fd, data, size) == (ssize_t)size) {
			lseek(fd, 0, SEEK_SET);
			for (;;) {
				struct vp_hdr h;
				uint8_t *pl;
				if (vp_frame_read(fd, &h, &pl) != 0)
					break;
				check_payload(h.type, pl, h.len, &b);
				free(pl);
			}
		}
		close(fd);
	}
	vp_buf_free(&b);
	return 0;
}
