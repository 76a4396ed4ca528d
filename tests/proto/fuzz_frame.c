/* libFuzzer target for the codec: the input is decoded as a header, as the
 * payload of every message type, and as a stream of frames read from a
 * memfd. Whatever decodes must re-encode to the very same bytes, so
 * encoder and decoder can never disagree about a message.
 * Seeds: tests/proto/corpus (written by `test_proto --write-corpus DIR`). */
#include "proto/proto.h"
#include "all_types.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Decodes p as T and, when that succeeds, encodes it again into b. */
#define ROUND_TRIP(T, dec, enc)              \
	do {                                 \
		T m_;                        \
		if (dec(p, n, &m_) == 0)     \
			enc(b, &m_);         \
	} while (0)

/* Re-encodes a payload that vp_validate accepted. */
static void reencode(uint16_t t, const uint8_t *p, size_t n, struct vp_buf *b)
{
	struct vp_reader r;
	switch (t) {
	case VP_HELLO: ROUND_TRIP(struct vp_hello, vp_dec_hello, vp_enc_hello); return;
	case VP_READY: ROUND_TRIP(struct vp_ready, vp_dec_ready, vp_enc_ready); return;
	case VP_ERROR: ROUND_TRIP(struct vp_error, vp_dec_error, vp_enc_error); return;
	case VP_SET_TIME: ROUND_TRIP(struct vp_set_time, vp_dec_set_time, vp_enc_set_time); return;
	case VP_EXEC: ROUND_TRIP(struct vp_exec, vp_dec_exec, vp_enc_exec); return;
	case VP_EXEC_STARTED: ROUND_TRIP(struct vp_exec_started, vp_dec_exec_started, vp_enc_exec_started); return;
	case VP_OUTPUT: ROUND_TRIP(struct vp_output, vp_dec_output, vp_enc_output); return;
	case VP_EXIT: ROUND_TRIP(struct vp_exit, vp_dec_exit, vp_enc_exit); return;
	case VP_OUTPUT_ACK: ROUND_TRIP(struct vp_output_ack, vp_dec_output_ack, vp_enc_output_ack); return;
	case VP_STDIN: ROUND_TRIP(struct vp_stdin, vp_dec_stdin, vp_enc_stdin); return;
	case VP_SIGNAL: ROUND_TRIP(struct vp_signal, vp_dec_signal, vp_enc_signal); return;
	case VP_FS_SETATTR: ROUND_TRIP(struct vp_setattr, vp_dec_setattr, vp_enc_setattr); return;
	case VP_FS_ENTRY: ROUND_TRIP(struct vp_entry, vp_dec_entry, vp_enc_entry); return;
	case VP_FS_ATTR: ROUND_TRIP(struct vp_attr, vp_dec_attr, vp_enc_attr); return;
	case VP_FS_STATFS_REPLY: ROUND_TRIP(struct vp_statfs, vp_dec_statfs, vp_enc_statfs); return;
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
		struct vp_entry e;
		vp_reader_init(&r, p, n);
		uint64_t fh = vp_get_u64(&r);
		e.node = vp_get_u64(&r);
		vp_get_attr(&r, &e.attr);
		vp_put_u64(b, fh);
		vp_enc_entry(b, &e);
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
	default: {
		struct vp_fs_req m;
		if (!vp_dec_fs_req(p, n, t, &m))
			vp_enc_fs_req(b, t, &m);
		return;
	}
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
	for (size_t i = 0; i < VP_NTYPES; i++)
		check_payload(vp_all_types[i], data, size, &b);
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
