/* Internals shared by the codec's three files, not part of the public API
 * (only proto/proto_*.c include this):
 *   proto_wire.c    buffers, reader, header, type table, frame I/O
 *   proto_fields.c  the table-driven field engine most payloads use
 *   proto_codec.c   each message's layout, vp_decode/vp_encode
 *
 * Contract: the reader helpers are sticky like the vp_get_* getters: once
 * r->err is set they consume nothing and leave zeros / empty bytes, and
 * any failure they detect is -EBADMSG with nothing left to read. The
 * writer helpers likewise do nothing once b->err is set. Integers are
 * little-endian, n ∈ {1, 2, 4, 8} bytes wide. */
#ifndef VMPOOL_PROTO_INTERNAL_H
#define VMPOOL_PROTO_INTERNAL_H

#include <stddef.h>

#include "proto.h"

/* ---- proto_wire.c -------------------------------------------------------- */

void proto_put_le(struct vp_buf *b, uint64_t v, unsigned n);
uint64_t proto_get_le(struct vp_reader *r, unsigned n);
/* Fails r unless ok. */
void proto_check(struct vp_reader *r, bool ok);
/* A length-prefixed string of at most max bytes, pointing into the payload. */
void proto_get_bytes(struct vp_reader *r, struct vp_bytes *b, uint32_t max);
/* proto_get_bytes, and fails r on a NUL byte in them. */
void proto_get_text(struct vp_reader *r, struct vp_bytes *b, uint32_t max);
bool proto_has_nul(const struct vp_bytes *b);

/* ---- proto_fields.c ------------------------------------------------------ */

/* Most payloads are a fixed list of fields. One table per message drives
 * both its decoder and its encoder, so the two cannot disagree on the wire
 * order; the table carries each field's own limit, and a message's `ok`
 * function the rules that tie its fields together. */
enum proto_field_kind {
	K_END,
	K_INT,	   /* integer member (signed ones as their bits), ≤ max */
	K_NONZERO, /* likewise, and not 0 */
	K_BYTES,   /* struct vp_bytes: u32 length ≤ max, then the bytes */
	K_TEXT,	   /* likewise, with no NUL byte */
	K_NAME,	   /* one path component: not empty, ".", ".."; no '/', NUL */
	K_U32S,	   /* struct vp_bytes of little-endian u32s: ≤ max of them */
};

struct proto_field {
	uint16_t off; /* offsetof the member */
	uint8_t kind; /* enum proto_field_kind */
	uint8_t size; /* sizeof an integer member: its width on the wire */
	uint64_t max;
};

/* Cross-field rules of one message, run after its fields decoded cleanly. */
typedef bool proto_fields_ok_fn(const void *m);

#define FIELD(T, m, kind, max)                                 \
	{                                                      \
		offsetof(T, m), kind, sizeof(((T *)0)->m), max \
	}
#define F_INT(T, m) FIELD(T, m, K_INT, UINT64_MAX)
#define F_MAX(T, m, max) FIELD(T, m, K_INT, max)
#define F_NONZERO(T, m) FIELD(T, m, K_NONZERO, UINT64_MAX)
#define F_BYTES(T, m, max) FIELD(T, m, K_BYTES, max)
#define F_TEXT(T, m, max) FIELD(T, m, K_TEXT, max)
#define F_NAME(T, m) FIELD(T, m, K_NAME, VP_MAX_NAME)
#define F_U32S(T, m, max) FIELD(T, m, K_U32S, (max)*4u)
#define F_END                  \
	{                      \
		0, K_END, 0, 0 \
	}

/* The table's fields of m, in order (reader sticky as above). */
void proto_get_fields(struct vp_reader *r, void *m, const struct proto_field *f);
void proto_put_fields(struct vp_buf *b, const void *m, const struct proto_field *f);
/* proto_get_fields, then ok (NULL: none). */
void proto_get_msg(struct vp_reader *r, void *m, const struct proto_field *f, proto_fields_ok_fn *ok);
/* A whole payload of exactly these fields: 0 or -EBADMSG. */
int proto_dec_msg(const void *p, size_t n, void *m, const struct proto_field *f, proto_fields_ok_fn *ok);
/* Appends m's fields and re-reads them (proto_self_check). */
void proto_enc_msg(struct vp_buf *b, const void *m, const struct proto_field *f, proto_fields_ok_fn *ok);

/* Every encoder re-reads what it appended with the matching decoder, so a
 * message that the peer would reject never leaves this side: `dec`, the
 * decoder's result, becomes b->err -EINVAL unless b already failed. */
void proto_self_check(struct vp_buf *b, int dec);

/* For encoders with a hand-written decoder: re-decode b's bytes from
 * `start` with decoder into a scratch `type`. */
#define PROTO_SELF_CHECK(b, start, decoder, type)                                                     \
	do {                                                                                          \
		if (!(b)->err) {                                                                      \
			type tmp_;                                                                    \
			proto_self_check(b, decoder((b)->data + (start), (b)->len - (start), &tmp_)); \
		}                                                                                     \
	} while (0)

#endif
