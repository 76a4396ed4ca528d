/* Codec tests: every sample validates, every message round trips, and the
 * bytes on the wire are the documented ones. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "all_types.h"
#include "tests/proto/test_proto.h"

/* ---- round trips ------------------------------------------------------------ */

static bool bytes_eq(struct vp_bytes a, struct vp_bytes b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static bool attr_eq(const struct vp_attr *a, const struct vp_attr *b)
{
	return a->ino == b->ino && a->size == b->size && a->blocks == b->blocks &&
	       a->atime_sec == b->atime_sec && a->mtime_sec == b->mtime_sec && a->ctime_sec == b->ctime_sec &&
	       a->atime_nsec == b->atime_nsec && a->mtime_nsec == b->mtime_nsec &&
	       a->ctime_nsec == b->ctime_nsec && a->mode == b->mode && a->nlink == b->nlink &&
	       a->uid == b->uid && a->gid == b->gid && a->rdev == b->rdev && a->blksize == b->blksize;
}

static void test_samples_validate(void)
{
	for (size_t i = 0; i < VP_NTYPES; i++) {
		struct vp_buf b;
		vp_buf_init(&b);
		sample(vp_all_types[i], &b);
		CHECK_EQ(b.err, 0);
		int e = vp_validate(vp_all_types[i], b.data, b.len);
		if (e)
			printf("#   %s: %d\n", vp_type_name(vp_all_types[i]), e);
		CHECK_EQ(e, 0);
		CHECK(vp_type_known(vp_all_types[i]));
		CHECK(strcmp(vp_type_name(vp_all_types[i]), "?") != 0);
		vp_buf_free(&b);
	}
	CHECK(!vp_type_known(0));
	CHECK(!vp_type_known(8));
	CHECK(!vp_type_known(54));
	CHECK(!vp_type_known(73));
	CHECK(strcmp(vp_type_name(999), "?") == 0);
	CHECK_EQ(vp_validate(999, NULL, 0), -EPROTO);
}

static void test_roundtrip_session(void)
{
	struct vp_buf b;
	vp_buf_init(&b);

	vp_enc_hello(&b, &(struct vp_hello){ 1, 7 });
	struct vp_hello h;
	CHECK_EQ(vp_dec_hello(b.data, b.len, &h), 0);
	CHECK(h.min_version == 1 && h.max_version == 7);
	CHECK_EQ(b.len, 8);
	CHECK(b.data[0] == 1 && b.data[4] == 7); /* little-endian on the wire */

	vp_buf_reset(&b);
	vp_enc_ready(&b, &(struct vp_ready){ 1, 0xdeadbeef, B("info") });
	struct vp_ready r;
	CHECK_EQ(vp_dec_ready(b.data, b.len, &r), 0);
	CHECK(r.version == 1 && r.features == 0xdeadbeef && bytes_eq(r.info, B("info")));
	CHECK(b.data[4] == 0xef && b.data[7] == 0xde);

	vp_buf_reset(&b);
	vp_enc_error(&b, &(struct vp_error){ EPROTONOSUPPORT, B("") });
	struct vp_error er;
	CHECK_EQ(vp_dec_error(b.data, b.len, &er), 0);
	CHECK(er.err == EPROTONOSUPPORT && er.message.len == 0);
	vp_buf_reset(&b);
	vp_enc_error(&b, &(struct vp_error){ -3, B("odd") }); /* any value decodes; receivers clamp */
	CHECK_EQ(vp_dec_error(b.data, b.len, &er), 0);
	CHECK_EQ(er.err, -3);

	CHECK_EQ(vp_validate(VP_OK, NULL, 0), 0);
	CHECK_EQ(vp_validate(VP_OK, "x", 1), -EBADMSG);

	/* SET_TIME = i64 sec, u32 nsec: sec may be anything, nsec < 1e9. */
	vp_buf_reset(&b);
	vp_enc_set_time(&b, &(struct vp_set_time){ -2, 999999999 });
	static const uint8_t set_time[] = { 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff,
					    0xff, 0xff, 0xff, 0xc9, 0x9a, 0x3b };
	CHECK(b.len == sizeof set_time && memcmp(b.data, set_time, sizeof set_time) == 0);
	struct vp_set_time st;
	CHECK_EQ(vp_dec_set_time(b.data, b.len, &st), 0);
	CHECK(st.sec == -2 && st.nsec == 999999999);
	vp_buf_reset(&b);
	vp_enc_set_time(&b, &(struct vp_set_time){ 1763780000, 0 });
	CHECK_EQ(vp_dec_set_time(b.data, b.len, &st), 0);
	CHECK(st.sec == 1763780000 && st.nsec == 0);
	CHECK_EQ(vp_validate(VP_SET_TIME, b.data, b.len), 0);
	CHECK_EQ(vp_validate(VP_SET_TIME, b.data, 8), -EBADMSG); /* no nsec */
	CHECK_EQ(vp_validate(VP_SET_TIME, NULL, 0), -EBADMSG);
	vp_buf_reset(&b);
	vp_enc_set_time(&b, &(struct vp_set_time){ 1, 1000000000u });
	CHECK_EQ(b.err, -EINVAL);
	vp_buf_reset(&b);
	vp_put_i64(&b, 1);
	vp_put_u32(&b, 1000000000u); /* by hand: the encoder refuses it */
	CHECK_EQ(vp_validate(VP_SET_TIME, b.data, b.len), -EBADMSG);
	vp_buf_reset(&b);
	vp_put_i64(&b, 1);
	vp_put_u32(&b, 0xffffffffu);
	CHECK_EQ(vp_validate(VP_SET_TIME, b.data, b.len), -EBADMSG);
	CHECK_EQ(strcmp(vp_type_name(VP_SET_TIME), "SET_TIME"), 0);
	vp_buf_free(&b);
}

static void test_roundtrip_exec(void)
{
	struct vp_buf b;
	vp_buf_init(&b);
	struct vp_exec ex, d;
	sample_exec(&ex);
	vp_enc_exec(&b, &ex);
	CHECK_EQ(b.err, 0);
	CHECK_EQ(vp_dec_exec(b.data, b.len, &d), 0);
	CHECK(d.timeout_ms == ex.timeout_ms && d.flags == ex.flags && d.nenv == 2);
	CHECK(bytes_eq(d.cmd, ex.cmd) && bytes_eq(d.cwd, ex.cwd));
	CHECK(bytes_eq(d.env[0], ex.env[0]) && bytes_eq(d.env[1], ex.env[1]));

	vp_buf_reset(&b);
	vp_enc_exec_started(&b, &(struct vp_exec_started){ 77 });
	struct vp_exec_started st;
	CHECK_EQ(vp_dec_exec_started(b.data, b.len, &st), 0);
	CHECK_EQ(st.pid, 77);

	vp_buf_reset(&b);
	vp_enc_output(&b, &(struct vp_output){ VP_STREAM_STDOUT, B("a\0b") });
	struct vp_output o;
	CHECK_EQ(vp_dec_output(b.data, b.len, &o), 0);
	CHECK(o.stream == 1 && bytes_eq(o.data, B("a\0b")));

	vp_buf_reset(&b);
	vp_enc_exit(&b, &(struct vp_exit){ 3, 0, 0, 1ull << 50 });
	struct vp_exit x;
	CHECK_EQ(vp_dec_exit(b.data, b.len, &x), 0);
	CHECK(x.code == 3 && x.signal == 0 && x.timed_out == 0 && x.duration_us == 1ull << 50);

	vp_buf_reset(&b);
	vp_enc_output_ack(&b, &(struct vp_output_ack){ 5, 6 });
	struct vp_output_ack a;
	CHECK_EQ(vp_dec_output_ack(b.data, b.len, &a), 0);
	CHECK(a.exec_id == 5 && a.bytes == 6);

	vp_buf_reset(&b);
	vp_enc_stdin(&b, &(struct vp_stdin){ 5, 0, B("") });
	struct vp_stdin in;
	CHECK_EQ(vp_dec_stdin(b.data, b.len, &in), 0);
	CHECK(in.exec_id == 5 && in.eof == 0 && in.data.len == 0);

	vp_buf_reset(&b);
	vp_enc_signal(&b, &(struct vp_signal){ 5, 9 });
	struct vp_signal s;
	CHECK_EQ(vp_dec_signal(b.data, b.len, &s), 0);
	CHECK(s.exec_id == 5 && s.signo == 9);
	vp_buf_free(&b);
}

static void test_roundtrip_fs(void)
{
	struct vp_buf b;
	vp_buf_init(&b);
	for (size_t i = 0; i < VP_NTYPES; i++) {
		uint16_t t = vp_all_types[i];
		if (t < VP_FS_LOOKUP || t > VP_FS_STATFS || t == VP_FS_SETATTR)
			continue;
		struct vp_fs_req m = sample_fs(t), d;
		vp_buf_reset(&b);
		vp_enc_fs_req(&b, t, &m);
		CHECK_EQ(b.err, 0);
		CHECK_EQ(vp_dec_fs_req(b.data, b.len, t, &d), 0);
		bool same = d.node == m.node && d.node2 == m.node2 && d.fh == m.fh && d.offset == m.offset &&
			    d.nlookup == m.nlookup && d.size == m.size && d.flags == m.flags &&
			    d.mode == m.mode && d.rdev == m.rdev && bytes_eq(d.name, m.name) &&
			    bytes_eq(d.name2, m.name2) && bytes_eq(d.data, m.data) &&
			    d.cred.uid == m.cred.uid && d.cred.gid == m.cred.gid &&
			    bytes_eq(d.cred.groups, m.cred.groups);
		if (!same)
			printf("#   %s differs after round trip\n", vp_type_name(t));
		CHECK(same);
	}
	/* Field order is the documented one: LOOKUP = u64 parent, str name,
	 * then the caller: u32 uid, u32 gid, groups as a string of u32s. */
	vp_buf_reset(&b);
	static const uint8_t gid7[] = { 7, 0, 0, 0 };
	vp_enc_fs_req(&b, VP_FS_LOOKUP,
		      &(struct vp_fs_req){ .node = 0x0102, .name = B("ab"), .cred = { 5, 6, { gid7, 4 } } });
	static const uint8_t lookup[] = { 2, 1, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 'a', 'b', 5,
					  0, 0, 0, 6, 0, 0, 0, 4, 0, 0, 0, 7, 0,   0,	0 };
	CHECK(b.len == sizeof lookup && memcmp(b.data, lookup, sizeof lookup) == 0);
	/* RENAME = u64 parent, u64 newparent, u32 flags, str name, str newname. */
	vp_buf_reset(&b);
	vp_enc_fs_req(&b, VP_FS_RENAME,
		      &(struct vp_fs_req){ .node = 1, .node2 = 2, .flags = 3, .name = B("x"), .name2 = B("y") });
	static const uint8_t rename[] = { 1, 0, 0, 0,	0, 0, 0, 0, 2,	 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 1,
					  0, 0, 0, 'x', 1, 0, 0, 0, 'y', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
	CHECK(b.len == sizeof rename && memcmp(b.data, rename, sizeof rename) == 0);
	/* SETATTR is its own struct. */
	struct vp_fs_req d;
	CHECK_EQ(vp_dec_fs_req(b.data, b.len, VP_FS_SETATTR, &d), -EBADMSG);
	vp_buf_reset(&b);
	vp_enc_fs_req(&b, VP_FS_SETATTR, &d);
	CHECK_EQ(b.err, -EINVAL);

	vp_buf_reset(&b);
	vp_enc_setattr(&b, &sample_setattr);
	CHECK_EQ(b.len, 64 + 12 + sample_setattr.cred.groups.len);
	struct vp_setattr sa;
	CHECK_EQ(vp_dec_setattr(b.data, b.len, &sa), 0);
	CHECK(sa.node == 5 && sa.fh == 6 && sa.valid == sample_setattr.valid && sa.mode == 0755 &&
	      sa.uid == 1 && sa.gid == 2 && sa.size == 77 && sa.atime_sec == 3 && sa.mtime_sec == -4 &&
	      sa.atime_nsec == 5 && sa.mtime_nsec == 6 && sa.cred.uid == 1000 && sa.cred.gid == 100 &&
	      bytes_eq(sa.cred.groups, sample_setattr.cred.groups));

	vp_buf_reset(&b);
	vp_enc_attr(&b, &sample_attr);
	CHECK_EQ(b.len, 84);
	struct vp_attr at;
	CHECK_EQ(vp_dec_attr(b.data, b.len, &at), 0);
	CHECK(attr_eq(&at, &sample_attr));

	vp_buf_reset(&b);
	vp_enc_entry(&b, &(struct vp_entry){ 3, sample_attr });
	struct vp_entry en;
	CHECK_EQ(vp_dec_entry(b.data, b.len, &en), 0);
	CHECK(en.node == 3 && attr_eq(&en.attr, &sample_attr));

	vp_buf_reset(&b);
	vp_enc_statfs(&b, &sample_statfs);
	struct vp_statfs sf;
	CHECK_EQ(vp_dec_statfs(b.data, b.len, &sf), 0);
	CHECK(sf.blocks == 1000 && sf.bfree == 500 && sf.bavail == 400 && sf.files == 99 && sf.ffree == 50 &&
	      sf.bsize == 4096 && sf.frsize == 4096 && sf.namemax == 255);

	/* CREATED and DIRENTS through the reader-level pieces. */
	vp_buf_reset(&b);
	sample(VP_FS_CREATED, &b);
	struct vp_reader r;
	vp_reader_init(&r, b.data, b.len);
	CHECK_EQ(vp_get_u64(&r), 100);
	CHECK_EQ(vp_get_u64(&r), 13);
	vp_get_attr(&r, &at);
	CHECK_EQ(vp_reader_finish(&r), 0);
	CHECK(attr_eq(&at, &sample_attr));

	vp_buf_reset(&b);
	sample(VP_FS_DIRENTS, &b);
	vp_reader_init(&r, b.data, b.len);
	CHECK_EQ(vp_get_u32(&r), 3);
	struct vp_dirent de[3];
	for (int i = 0; i < 3; i++)
		vp_get_dirent(&r, &de[i]);
	CHECK_EQ(vp_reader_finish(&r), 0);
	CHECK(de[0].ino == 1 && bytes_eq(de[0].name, B(".")) && de[0].type == 4);
	CHECK(de[2].ino == 77 && de[2].next_offset == 3 && bytes_eq(de[2].name, B("a file")));

	/* DIRENTS_PLUS: entries with their lookups; node 0 is none. */
	vp_buf_reset(&b);
	sample(VP_FS_DIRENTS_PLUS, &b);
	struct vp_dirents ds;
	CHECK_EQ(vp_dec_direntsplus(b.data, b.len, &ds), 0);
	CHECK_EQ(ds.count, 3);
	vp_reader_init(&r, ds.entries.p, ds.entries.len);
	struct vp_direntplus dp[3];
	for (int i = 0; i < 3; i++)
		vp_get_direntplus(&r, &dp[i]);
	CHECK_EQ(vp_reader_finish(&r), 0);
	CHECK(dp[0].e.node == 0 && bytes_eq(dp[0].d.name, B(".")));
	CHECK(dp[1].e.node == 12 && attr_eq(&dp[1].e.attr, &sample_attr) && dp[1].d.next_offset == 2 &&
	      bytes_eq(dp[1].d.name, B("a file")));
	CHECK(dp[2].e.node == 0 && dp[2].d.ino == 78);
	/* "." or ".." with a counted node would make the host link them. */
	vp_buf_reset(&b);
	vp_put_u32(&b, 1);
	vp_enc_dirent(&b, &(struct vp_dirent){ 2, 2, 4, B("..") });
	vp_put_u64(&b, 5);
	for (int i = 0; i < 84; i++)
		vp_put_u8(&b, 0);
	CHECK_EQ(vp_validate(VP_FS_DIRENTS_PLUS, b.data, b.len), -EBADMSG);
	/* A count larger than the entries. */
	vp_buf_reset(&b);
	sample(VP_FS_DIRENTS_PLUS, &b);
	b.data[0] = 4;
	CHECK_EQ(vp_validate(VP_FS_DIRENTS_PLUS, b.data, b.len), -EBADMSG);
	/* READDIRPLUS needs its directory's node. */
	vp_buf_reset(&b);
	vp_enc_fs_req(&b, VP_FS_READDIRPLUS, &(struct vp_fs_req){ .node = 3, .fh = 4, .size = 4096 });
	struct vp_fs_req fq;
	CHECK_EQ(vp_dec_fs_req(b.data, b.len, VP_FS_READDIRPLUS, &fq), 0);
	CHECK(fq.node == 3 && fq.fh == 4 && fq.size == 4096);
	b.data[0] = 0;
	CHECK_EQ(vp_validate(VP_FS_READDIRPLUS, b.data, b.len), -EBADMSG);
	vp_buf_free(&b);
}

static void test_frame_encode(void)
{
	struct vp_buf b;
	vp_buf_init(&b);
	CHECK_EQ(vp_frame_encode(&b, VP_PING, 0x01020304, "\x01\0\0\0z", 5), 0);
	static const uint8_t want[] = { 5, 0, 0, 0, 3, 0, 0, 0, 4, 3, 2, 1, 1, 0, 0, 0, 'z' };
	CHECK(b.len == sizeof want && memcmp(b.data, want, sizeof want) == 0);
	struct vp_hdr h;
	CHECK_EQ(vp_hdr_decode(b.data, &h), 0);
	CHECK(h.len == 5 && h.type == VP_PING && h.flags == 0 && h.id == 0x01020304);
	CHECK_EQ(vp_frame_encode(&b, 999, 1, NULL, 0), -EINVAL);
	CHECK_EQ(vp_frame_encode(&b, VP_OK, 1, NULL, VP_MAX_PAYLOAD + 1), -EMSGSIZE);
	/* The largest payload still makes a frame. */
	uint8_t *big = calloc(1, VP_MAX_PAYLOAD);
	CHECK_EQ(vp_frame_encode(&b, VP_FS_DATA, 1, big, VP_MAX_PAYLOAD), 0);
	CHECK_EQ(b.len, VP_HDR_SIZE + VP_MAX_PAYLOAD);
	free(big);
	vp_buf_free(&b);
}

static const struct tap_test tests[] = {
	{ "every type has a valid sample", test_samples_validate },
	{ "round trip: session", test_roundtrip_session },
	{ "round trip: exec stream", test_roundtrip_exec },
	{ "round trip: file requests and replies", test_roundtrip_fs },
	{ "frame encode", test_frame_encode },
};

TAP_PART(proto_roundtrip_part, tests);
