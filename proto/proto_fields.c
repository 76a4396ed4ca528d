/* The table-driven field engine (proto_internal.h): one struct
 * proto_field table per payload layout both decodes and encodes it. */
#include "proto_internal.h"

#include <errno.h>
#include <string.h>

/* One path component the guest may create or look up: "." and ".." would
 * escape the node the host named, '/' would make it a path. */
static bool name_ok(const struct vp_bytes *b)
{
	if (b->len == 0 || b->len > VP_MAX_NAME || proto_has_nul(b) || memchr(b->p, '/', b->len))
		return false;
	if (b->p[0] == '.' && (b->len == 1 || (b->len == 2 && b->p[1] == '.')))
		return false;
	return true;
}

/* An integer member as a wire value and back; all union members start at
 * offset 0, so the first `size` bytes are the member of that width. */
union member {
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
};

static uint64_t member_load(const uint8_t *p, unsigned size)
{
	union member v;
	memcpy(&v, p, size);
	return size == 1 ? v.u8 : size == 2 ? v.u16 : size == 4 ? v.u32 : v.u64;
}

static void member_store(uint8_t *p, uint64_t x, unsigned size)
{
	union member v;
	if (size == 1)
		v.u8 = (uint8_t)x;
	else if (size == 2)
		v.u16 = (uint16_t)x;
	else if (size == 4)
		v.u32 = (uint32_t)x;
	else
		v.u64 = x;
	memcpy(p, &v, size);
}

static bool is_int(const struct proto_field *f)
{
	return f->kind == K_INT || f->kind == K_NONZERO;
}

void proto_get_fields(struct vp_reader *r, void *m, const struct proto_field *f)
{
	for (; f->kind != K_END; f++) {
		uint8_t *p = (uint8_t *)m + f->off;
		if (is_int(f)) {
			uint64_t v = proto_get_le(r, f->size);
			member_store(p, v, f->size);
			proto_check(r, v <= f->max && (v != 0 || f->kind == K_INT));
			continue;
		}
		struct vp_bytes *b = (struct vp_bytes *)p;
		proto_get_bytes(r, b, (uint32_t)f->max);
		if (f->kind == K_TEXT)
			proto_check(r, r->err || !proto_has_nul(b));
		else if (f->kind == K_NAME)
			proto_check(r, r->err || name_ok(b));
		else if (f->kind == K_U32S)
			proto_check(r, r->err || b->len % 4u == 0);
	}
}

void proto_put_fields(struct vp_buf *b, const void *m, const struct proto_field *f)
{
	for (; f->kind != K_END; f++) {
		const uint8_t *p = (const uint8_t *)m + f->off;
		if (is_int(f)) {
			proto_put_le(b, member_load(p, f->size), f->size);
		} else {
			const struct vp_bytes *s = (const struct vp_bytes *)p;
			vp_put_str(b, s->p, s->len);
		}
	}
}

void proto_get_msg(struct vp_reader *r, void *m, const struct proto_field *f, proto_fields_ok_fn *ok)
{
	proto_get_fields(r, m, f);
	proto_check(r, r->err || !ok || ok(m));
}

int proto_dec_msg(const void *p, size_t n, void *m, const struct proto_field *f, proto_fields_ok_fn *ok)
{
	struct vp_reader r;
	vp_reader_init(&r, p, n);
	proto_get_msg(&r, m, f, ok);
	return vp_reader_finish(&r);
}

void proto_self_check(struct vp_buf *b, int dec)
{
	if (!b->err && dec)
		b->err = -EINVAL;
}

void proto_enc_msg(struct vp_buf *b, const void *m, const struct proto_field *f, proto_fields_ok_fn *ok)
{
	size_t s = b->len;
	proto_put_fields(b, m, f);
	if (!b->err) {
		union vp_msg tmp; /* room for any message */
		proto_self_check(b, proto_dec_msg(b->data + s, b->len - s, &tmp, f, ok));
	}
}
