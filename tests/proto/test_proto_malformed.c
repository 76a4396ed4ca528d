/* Codec tests: truncated and oversized payloads, bad headers, names,
 * limits and value ranges, the buffer and the reader. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "all_types.h"
#include "tests/proto/test_proto.h"

/* ---- malformed ------------------------------------------------------------------ */

static void test_truncated_and_trailing(void)
{
	for (size_t i = 0; i < VP_NTYPES; i++) {
		uint16_t t = vp_all_types[i];
		struct vp_buf b;
		vp_buf_init(&b);
		sample(t, &b);
		size_t n = b.len;
		for (size_t k = 0; k < n; k++) {
			/* A copy of exactly k bytes, so ASan sees any read past it. */
			uint8_t *p = malloc(k ? k : 1);
			memcpy(p, b.data, k);
			int e = vp_validate(t, p, k);
			CHECKF(e == -EBADMSG, "%s truncated to %zu of %zu: %d", vp_type_name(t), k, n, e);
			free(p);
		}
		vp_put_u8(&b, 0);
		int e = vp_validate(t, b.data, b.len);
		CHECKF(e == -EBADMSG, "%s with a trailing byte: %d", vp_type_name(t), e);
		vp_buf_free(&b);
	}
}

static void test_bad_header(void)
{
	uint8_t raw[VP_HDR_SIZE];
	struct vp_hdr h = { .len = VP_MAX_PAYLOAD, .type = VP_OK, .flags = 0, .id = 9 }, d;
	vp_hdr_encode(raw, &h);
	CHECK_EQ(vp_hdr_decode(raw, &d), 0);
	h.len = VP_MAX_PAYLOAD + 1;
	vp_hdr_encode(raw, &h);
	CHECK_EQ(vp_hdr_decode(raw, &d), -EMSGSIZE);
	CHECK_EQ(d.id, 9); /* the rest is still decoded, for logs */
	h.len = 0xffffffffu;
	vp_hdr_encode(raw, &h);
	CHECK_EQ(vp_hdr_decode(raw, &d), -EMSGSIZE);
	h.len = 0;
	h.type = 8;
	vp_hdr_encode(raw, &h);
	CHECK_EQ(vp_hdr_decode(raw, &d), -EPROTO);
	h.type = 0xffff;
	vp_hdr_encode(raw, &h);
	CHECK_EQ(vp_hdr_decode(raw, &d), -EPROTO);
	h.type = VP_OK;
	h.flags = 1;
	vp_hdr_encode(raw, &h);
	CHECK_EQ(vp_hdr_decode(raw, &d), -EPROTO);
	h.flags = 0x8000;
	vp_hdr_encode(raw, &h);
	CHECK_EQ(vp_hdr_decode(raw, &d), -EPROTO);
}

static int enc_check_fs(uint16_t type, struct vp_fs_req m)
{
	struct vp_buf b;
	vp_buf_init(&b);
	vp_enc_fs_req(&b, type, &m);
	int e = b.err;
	vp_buf_free(&b);
	return e;
}

/* Encodes an fs request without the encoder's own checks, to feed bad
 * values to the decoder. */
static int dec_check_raw(uint16_t type, uint64_t node, const void *name, uint32_t nlen)
{
	struct vp_buf b;
	vp_buf_init(&b);
	vp_put_u64(&b, node);
	vp_put_str(&b, name, nlen);
	vp_put_u32(&b, 0); /* the caller: guest root, no groups */
	vp_put_u32(&b, 0);
	vp_put_u32(&b, 0);
	int e = vp_validate(type, b.data, b.len);
	vp_buf_free(&b);
	return e;
}

static void test_names(void)
{
	char name[VP_MAX_NAME + 2];
	memset(name, 'n', sizeof name);
	CHECK_EQ(dec_check_raw(VP_FS_LOOKUP, 1, "ok", 2), 0);
	CHECK_EQ(dec_check_raw(VP_FS_LOOKUP, 1, name, VP_MAX_NAME), 0);
	CHECK_EQ(dec_check_raw(VP_FS_LOOKUP, 1, name, VP_MAX_NAME + 1), -EBADMSG);
	CHECK_EQ(dec_check_raw(VP_FS_LOOKUP, 1, "", 0), -EBADMSG);
	CHECK_EQ(dec_check_raw(VP_FS_LOOKUP, 1, ".", 1), -EBADMSG);
	CHECK_EQ(dec_check_raw(VP_FS_LOOKUP, 1, "..", 2), -EBADMSG);
	CHECK_EQ(dec_check_raw(VP_FS_LOOKUP, 1, "...", 3), 0);
	CHECK_EQ(dec_check_raw(VP_FS_LOOKUP, 1, ".x", 2), 0);
	CHECK_EQ(dec_check_raw(VP_FS_LOOKUP, 1, "a/b", 3), -EBADMSG);
	CHECK_EQ(dec_check_raw(VP_FS_LOOKUP, 1, "/", 1), -EBADMSG);
	CHECK_EQ(dec_check_raw(VP_FS_LOOKUP, 1, "a\0b", 3), -EBADMSG);
	CHECK_EQ(dec_check_raw(VP_FS_UNLINK, 1, "..", 2), -EBADMSG);
	CHECK_EQ(dec_check_raw(VP_FS_RMDIR, 1, "x/", 2), -EBADMSG);
	CHECK_EQ(dec_check_raw(VP_FS_LOOKUP, 0, "ok", 2), -EBADMSG); /* node 0 does not exist */
	/* The caller's groups: whole u32s, at most VP_MAX_GROUPS. */
	{
		struct vp_buf b;
		vp_buf_init(&b);
		uint32_t g[VP_MAX_GROUPS + 1] = { 0 };
		const uint32_t lens[] = { 0, 4, VP_MAX_GROUPS * 4u, 3, VP_MAX_GROUPS * 4u + 4u };
		const int want[] = { 0, 0, 0, -EBADMSG, -EBADMSG };
		for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
			vp_buf_reset(&b);
			vp_put_u64(&b, 1);
			vp_put_u32(&b, 1000);
			vp_put_u32(&b, 1000);
			vp_put_str(&b, g, lens[i]);
			CHECK_EQ(vp_validate(VP_FS_GETATTR, b.data, b.len), want[i]);
		}
		struct vp_fs_req m = { .node = 1, .cred = { 1, 1, { (const uint8_t *)g, 6 } } };
		vp_buf_reset(&b);
		vp_enc_fs_req(&b, VP_FS_GETATTR, &m);
		CHECK_EQ(b.err, -EINVAL); /* the encoder refuses what the decoder would */
		vp_buf_free(&b);
	}
	/* A length prefix larger than the payload. */
	uint8_t lie[] = { 1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 'a' };
	CHECK_EQ(vp_validate(VP_FS_LOOKUP, lie, sizeof lie), -EBADMSG);

	/* The encoders refuse what the decoders would. */
	CHECK_EQ(enc_check_fs(VP_FS_LOOKUP, (struct vp_fs_req){ .node = 1, .name = B("a/b") }), -EINVAL);
	CHECK_EQ(enc_check_fs(VP_FS_MKDIR, (struct vp_fs_req){ .node = 1, .name = B("..") }), -EINVAL);
	CHECK_EQ(enc_check_fs(VP_FS_CREATE, (struct vp_fs_req){ .node = 1, .name = B("") }), -EINVAL);
	CHECK_EQ(enc_check_fs(VP_FS_LINK, (struct vp_fs_req){ .node = 1, .node2 = 2, .name2 = B(".") }),
		 -EINVAL);
	CHECK_EQ(enc_check_fs(VP_FS_RENAME,
			      (struct vp_fs_req){ .node = 1, .node2 = 2, .name = B("a"), .name2 = B("b\0") }),
		 -EINVAL);
	CHECK_EQ(enc_check_fs(VP_FS_LOOKUP, (struct vp_fs_req){ .node = 1, .name = { (uint8_t *)name, 256 } }),
		 -EINVAL);

	/* Symlink targets may hold '/', never NUL; up to VP_MAX_PATH. */
	char *target = malloc(VP_MAX_PATH + 1);
	memset(target, '/', VP_MAX_PATH + 1);
	struct vp_fs_req m = { .node = 1, .name = B("l"), .name2 = { (uint8_t *)target, VP_MAX_PATH } };
	CHECK_EQ(enc_check_fs(VP_FS_SYMLINK, m), 0);
	m.name2.len = VP_MAX_PATH + 1;
	CHECK_EQ(enc_check_fs(VP_FS_SYMLINK, m), -EINVAL);
	CHECK_EQ(enc_check_fs(VP_FS_SYMLINK,
			      (struct vp_fs_req){ .node = 1, .name = B("l"), .name2 = B("a\0b") }),
		 -EINVAL);
	free(target);

	/* Dirent names: "." and ".." are fine, '/' and NUL and empty are not. */
	struct vp_buf b;
	vp_buf_init(&b);
	vp_enc_dirent(&b, &(struct vp_dirent){ 1, 1, 4, B("a/b") });
	CHECK_EQ(b.err, -EINVAL);
	vp_buf_reset(&b);
	vp_enc_dirent(&b, &(struct vp_dirent){ 1, 1, 4, B("") });
	CHECK_EQ(b.err, -EINVAL);
	vp_buf_reset(&b);
	vp_enc_dirent(&b, &(struct vp_dirent){ 1, 1, 99, B("x") });
	CHECK_EQ(b.err, -EINVAL);
	vp_buf_free(&b);
}

static void test_limits(void)
{
	struct vp_buf b;
	vp_buf_init(&b);
	struct vp_exec *ex = calloc(1, sizeof *ex);
	char *big = malloc(VP_MAX_DATA + 2);
	memset(big, 'x', VP_MAX_DATA + 2);
	big[0] = 'K';
	big[1] = '=';

	/* cmd: VP_MAX_CMD bytes is fine, one more is not; no NUL. */
	ex->cmd = (struct vp_bytes){ (uint8_t *)big, VP_MAX_CMD };
	vp_enc_exec(&b, ex);
	CHECK_EQ(b.err, 0);
	vp_buf_reset(&b);
	ex->cmd.len = VP_MAX_CMD + 1;
	vp_enc_exec(&b, ex);
	CHECK_EQ(b.err, -EINVAL);
	vp_buf_reset(&b);
	ex->cmd = B("true\0false");
	vp_enc_exec(&b, ex);
	CHECK_EQ(b.err, -EINVAL);

	/* env: VP_MAX_ENV entries fine; count over the limit refused both ways. */
	vp_buf_reset(&b);
	ex->cmd = B("env");
	ex->nenv = VP_MAX_ENV;
	for (unsigned i = 0; i < VP_MAX_ENV; i++)
		ex->env[i] = B("K=V");
	vp_enc_exec(&b, ex);
	CHECK_EQ(b.err, 0);
	struct vp_exec *d = calloc(1, sizeof *d);
	CHECK_EQ(vp_dec_exec(b.data, b.len, d), 0);
	CHECK_EQ(d->nenv, VP_MAX_ENV);
	vp_buf_reset(&b);
	ex->nenv = VP_MAX_ENV + 1;
	vp_enc_exec(&b, ex);
	CHECK_EQ(b.err, -EINVAL);
	/* Hand-made: nenv = 257 followed by 257 entries. */
	vp_buf_reset(&b);
	vp_put_u32(&b, 0);
	vp_put_u32(&b, 0);
	vp_put_cstr(&b, "true");
	vp_put_cstr(&b, "");
	vp_put_u32(&b, VP_MAX_ENV + 1);
	for (unsigned i = 0; i < VP_MAX_ENV + 1; i++)
		vp_put_cstr(&b, "K=V");
	CHECK_EQ(vp_validate(VP_EXEC, b.data, b.len), -EBADMSG);
	/* A huge count with nothing after it fails fast. */
	vp_buf_reset(&b);
	vp_put_u32(&b, 0);
	vp_put_u32(&b, 0);
	vp_put_cstr(&b, "true");
	vp_put_cstr(&b, "");
	vp_put_u32(&b, 0xffffffffu);
	CHECK_EQ(vp_validate(VP_EXEC, b.data, b.len), -EBADMSG);
	/* env entries must be K=V. */
	ex->nenv = 1;
	const char *bad_env[] = { "novalue", "=x", "", "K=a\0b" };
	for (size_t i = 0; i < 4; i++) {
		vp_buf_reset(&b);
		ex->env[0] = (struct vp_bytes){ (const uint8_t *)bad_env[i],
						i == 3 ? 5 : (uint32_t)strlen(bad_env[i]) };
		vp_enc_exec(&b, ex);
		CHECK_EQ(b.err, -EINVAL);
	}
	/* Unknown exec flag bits. */
	vp_buf_reset(&b);
	ex->nenv = 0;
	ex->flags = 2;
	vp_enc_exec(&b, ex);
	CHECK_EQ(b.err, -EINVAL);

	/* data: VP_MAX_DATA fine, one more is not. */
	vp_buf_reset(&b);
	vp_enc_fs_req(&b, VP_FS_WRITE,
		      &(struct vp_fs_req){ .fh = 1, .data = { (uint8_t *)big, VP_MAX_DATA } });
	CHECK_EQ(b.err, 0);
	vp_buf_reset(&b);
	vp_enc_fs_req(&b, VP_FS_WRITE,
		      &(struct vp_fs_req){ .fh = 1, .data = { (uint8_t *)big, VP_MAX_DATA + 1 } });
	CHECK_EQ(b.err, -EINVAL);
	vp_buf_reset(&b);
	vp_enc_output(&b, &(struct vp_output){ 1, { (uint8_t *)big, VP_MAX_DATA + 1 } });
	CHECK_EQ(b.err, -EINVAL);
	vp_buf_reset(&b);
	vp_enc_fs_req(&b, VP_FS_READ, &(struct vp_fs_req){ .fh = 1, .size = VP_MAX_DATA + 1 });
	CHECK_EQ(b.err, -EINVAL);

	/* Value ranges. */
	vp_buf_reset(&b);
	vp_enc_output(&b, &(struct vp_output){ 3, B("x") });
	CHECK_EQ(b.err, -EINVAL);
	vp_buf_reset(&b);
	vp_enc_output(&b, &(struct vp_output){ 1, B("") });
	CHECK_EQ(b.err, -EINVAL);
	vp_buf_reset(&b);
	vp_enc_exit(&b, &(struct vp_exit){ 0, 0, 2, 0 });
	CHECK_EQ(b.err, -EINVAL);
	vp_buf_reset(&b);
	vp_enc_exit(&b, &(struct vp_exit){ 256, 0, 0, 0 });
	CHECK_EQ(b.err, -EINVAL);
	vp_buf_reset(&b);
	vp_enc_signal(&b, &(struct vp_signal){ 1, 0 });
	CHECK_EQ(b.err, -EINVAL);
	vp_buf_reset(&b);
	vp_enc_hello(&b, &(struct vp_hello){ 2, 1 });
	CHECK_EQ(b.err, -EINVAL);
	vp_buf_reset(&b);
	vp_enc_error(&b, &(struct vp_error){ EIO, B("a\0b") });
	CHECK_EQ(b.err, -EINVAL);
	vp_buf_reset(&b);
	vp_enc_ready(&b, &(struct vp_ready){ 1, 0, { (uint8_t *)big, VP_MAX_PATH + 1 } });
	CHECK_EQ(b.err, -EINVAL);
	vp_buf_reset(&b);
	struct vp_attr a = sample_attr;
	a.mtime_nsec = 1000000000u;
	vp_enc_attr(&b, &a);
	CHECK_EQ(b.err, -EINVAL);
	vp_buf_reset(&b);
	struct vp_setattr sa = sample_setattr;
	sa.valid = 0x100;
	vp_enc_setattr(&b, &sa);
	CHECK_EQ(b.err, -EINVAL);
	vp_buf_reset(&b);
	vp_enc_entry(&b, &(struct vp_entry){ 0, sample_attr });
	CHECK_EQ(b.err, -EINVAL);
	/* FS_HANDLE 0 and WRITTEN over the limit. */
	vp_buf_reset(&b);
	vp_put_u64(&b, 0);
	CHECK_EQ(vp_validate(VP_FS_HANDLE, b.data, b.len), -EBADMSG);
	vp_buf_reset(&b);
	vp_put_u32(&b, VP_MAX_DATA + 1);
	CHECK_EQ(vp_validate(VP_FS_WRITTEN, b.data, b.len), -EBADMSG);
	/* DIRENTS claiming more entries than it holds, without spinning. */
	vp_buf_reset(&b);
	vp_put_u32(&b, 0xffffffffu);
	vp_enc_dirent(&b, &(struct vp_dirent){ 1, 1, 4, B("x") });
	CHECK_EQ(vp_validate(VP_FS_DIRENTS, b.data, b.len), -EBADMSG);
	CHECK_EQ(vp_validate(VP_FS_DATA, NULL, VP_MAX_PAYLOAD + 1), -EBADMSG);

	free(d);
	free(ex);
	free(big);
	vp_buf_free(&b);
}

static void test_buf_reader(void)
{
	struct vp_buf b;
	vp_buf_init(&b);
	vp_put_u8(&b, 0x81);
	vp_put_u16(&b, 0x8283);
	vp_put_u32(&b, 0x84858687u);
	vp_put_u64(&b, 0x88898a8b8c8d8e8full);
	vp_put_i32(&b, -2);
	vp_put_i64(&b, -3);
	vp_put_cstr(&b, "str");
	CHECK_EQ(b.err, 0);
	CHECK_EQ(b.len, 1 + 2 + 4 + 8 + 4 + 8 + 4 + 3);
	CHECK(b.data[1] == 0x83 && b.data[2] == 0x82);
	struct vp_reader r;
	vp_reader_init(&r, b.data, b.len);
	CHECK_EQ(vp_get_u8(&r), 0x81);
	CHECK_EQ(vp_get_u16(&r), 0x8283);
	CHECK_EQ(vp_get_u32(&r), 0x84858687u);
	CHECK(vp_get_u64(&r) == 0x88898a8b8c8d8e8full);
	CHECK_EQ(vp_get_i32(&r), -2);
	CHECK_EQ(vp_get_i64(&r), -3);
	const uint8_t *p;
	uint32_t n;
	vp_get_str(&r, &p, &n, 2); /* over max */
	CHECK_EQ(r.err, -EBADMSG);
	CHECK(n == 0 && p != NULL);
	CHECK_EQ(vp_get_u32(&r), 0); /* sticky */
	CHECK_EQ(vp_reader_finish(&r), -EBADMSG);
	vp_reader_init(&r, b.data, 3);
	vp_get_u8(&r);
	CHECK_EQ(vp_reader_finish(&r), -EBADMSG); /* bytes left */
	vp_get_u16(&r);
	CHECK_EQ(vp_reader_finish(&r), 0);
	vp_get_u8(&r);
	CHECK_EQ(vp_reader_finish(&r), -EBADMSG); /* past the end */

	/* The buffer refuses to grow past a whole frame; the error sticks. */
	vp_buf_reset(&b);
	uint8_t *big = calloc(1, VP_MAX_PAYLOAD);
	vp_put_raw(&b, big, VP_MAX_PAYLOAD);
	vp_put_raw(&b, big, VP_HDR_SIZE);
	CHECK_EQ(b.err, 0);
	vp_put_u8(&b, 1);
	CHECK_EQ(b.err, -EMSGSIZE);
	vp_put_u8(&b, 1);
	CHECK_EQ(b.err, -EMSGSIZE);
	vp_buf_reset(&b);
	CHECK(b.err == 0 && b.len == 0 && b.data != NULL);
	free(big);
	vp_buf_free(&b);
	CHECK(b.data == NULL && b.len == 0);
}

static const struct tap_test tests[] = {
	{ "truncated at every byte, trailing bytes", test_truncated_and_trailing },
	{ "bad headers: size, type, flags", test_bad_header },
	{ "names and targets", test_names },
	{ "limits and value ranges", test_limits },
	{ "buffer and reader", test_buf_reader },
};

TAP_PART(proto_malformed_part, tests);
