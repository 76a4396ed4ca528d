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

/* Re-encodes a payload that vp_validate accepted, through the same
 * per-type table (proto_msgs.h) that decoded it. */
static void reencode(uint16_t t, const uint8_t *p, size_t n, struct vp_buf *b)
{
	union vp_msg m;
	if (vp_decode(t, p, n, &m) == 0)
		vp_encode(b, t, &m);
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
