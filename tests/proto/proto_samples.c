/* The codec tests' samples (see test_proto.h): one valid payload of every
 * message type, also the fuzzer's seeds (test_proto --write-corpus). */
#include <errno.h>
#include <string.h>

#include "tests/proto/test_proto.h"

const struct vp_attr sample_attr = {
	.ino = 0x1122334455667788ull,
	.size = 1ull << 40,
	.blocks = 9,
	.atime_sec = -5,
	.mtime_sec = 1763780000,
	.ctime_sec = 0x7fffffffffffffffll,
	.atime_nsec = 999999999,
	.mtime_nsec = 1,
	.ctime_nsec = 0,
	.mode = 0100644,
	.nlink = 2,
	.uid = 1000,
	.gid = 0xffffffffu,
	.rdev = 0x0801,
	.blksize = 4096,
};

struct vp_fs_req sample_fs(uint16_t type)
{
	struct vp_fs_req m = { 0 };
	m.node = 42;
	/* A caller on every request that carries one (the codec ignores it
	 * on the others): uid 1000, gid 100, groups 100 and 27. */
	m.cred = (struct vp_cred){ 1000, 100, { (const uint8_t *)"\x64\0\0\0\x1b\0\0\0", 8 } };
	switch (type) {
	case VP_FS_LOOKUP:
	case VP_FS_UNLINK:
	case VP_FS_RMDIR: m.name = B("file.txt"); break;
	case VP_FS_FORGET:
		m.nlookup = 3;
		m.cred = (struct vp_cred){ 0 };
		break;
	case VP_FS_MKNOD:
		m.mode = 010644;
		m.rdev = 7;
		m.name = B("fifo");
		break;
	case VP_FS_MKDIR:
		m.mode = 040755;
		m.name = B("dir");
		break;
	case VP_FS_SYMLINK:
		m.name = B("ln");
		m.name2 = B("../a/b c");
		break;
	case VP_FS_RENAME:
		m.node2 = 43;
		m.flags = 1;
		m.name = B("old");
		m.name2 = B("new");
		break;
	case VP_FS_LINK:
		m.node2 = 44;
		m.name2 = B("hard");
		break;
	case VP_FS_OPEN: m.flags = 02 | 01000; break;
	case VP_FS_CREATE:
		m.flags = 0101;
		m.mode = 0600;
		m.name = B("new");
		break;
	case VP_FS_READDIRPLUS:
		m.cred = (struct vp_cred){ 0 };
		m.fh = 7;
		m.offset = 5;
		m.size = 4096;
		break;
	case VP_FS_READ:
	case VP_FS_READDIR:
		m.node = 0;
		m.cred = (struct vp_cred){ 0 };
		m.fh = 7;
		m.offset = 1ull << 33;
		m.size = VP_MAX_DATA;
		break;
	case VP_FS_WRITE:
		m.node = 0;
		m.cred = (struct vp_cred){ 0 };
		m.fh = 7;
		m.offset = 12;
		m.data = B("hello\0world");
		break;
	case VP_FS_FSYNC:
		m.node = 0;
		m.cred = (struct vp_cred){ 0 };
		m.fh = 8;
		m.flags = 1;
		break;
	case VP_FS_CLOSE:
		m.node = 0;
		m.cred = (struct vp_cred){ 0 };
		m.fh = 9;
		break;
	}
	return m;
}

void sample_exec(struct vp_exec *m)
{
	memset(m, 0, sizeof *m);
	m->timeout_ms = 1500;
	m->flags = VP_EXEC_STDIN;
	m->cmd = B("echo hi; seq 3 >&2");
	m->cwd = B("/tmp");
	m->nenv = 2;
	m->env[0] = B("A=1");
	m->env[1] = B("B==x");
}

const struct vp_setattr sample_setattr = {
	.node = 5,
	.fh = 6,
	.valid = VP_SET_MODE | VP_SET_SIZE | VP_SET_MTIME | VP_SET_ATIME_NOW,
	.mode = 0755,
	.uid = 1,
	.gid = 2,
	.size = 77,
	.atime_sec = 3,
	.mtime_sec = -4,
	.atime_nsec = 5,
	.mtime_nsec = 6,
	.cred = { 1000, 100, { (const uint8_t *)"\x64\0\0\0", 4 } },
};
const struct vp_statfs sample_statfs = {
	.blocks = 1000,
	.bfree = 500,
	.bavail = 400,
	.files = 99,
	.ffree = 50,
	.bsize = 4096,
	.frsize = 4096,
	.namemax = 255,
};

/* Appends a valid payload of `type` to b. */
void sample(uint16_t type, struct vp_buf *b)
{
	struct vp_exec ex;
	switch (type) {
	case VP_HELLO: vp_enc_hello(b, &(struct vp_hello){ 1, 3 }); break;
	case VP_READY: vp_enc_ready(b, &(struct vp_ready){ 1, 0, B("vmpool-agent 0.1") }); break;
	case VP_PING:
	case VP_PONG:
	case VP_FS_DATA: vp_put_str(b, "\x00\x01\xff", 3); break;
	case VP_ERROR: vp_enc_error(b, &(struct vp_error){ ENOENT, B("no such file") }); break;
	case VP_OK: break;
	case VP_SET_TIME: vp_enc_set_time(b, &(struct vp_set_time){ 1763780000, 999999999 }); break;
	case VP_EXEC:
		sample_exec(&ex);
		vp_enc_exec(b, &ex);
		break;
	case VP_EXEC_STARTED: vp_enc_exec_started(b, &(struct vp_exec_started){ 4242 }); break;
	case VP_OUTPUT: vp_enc_output(b, &(struct vp_output){ VP_STREAM_STDERR, B("out\n") }); break;
	case VP_EXIT: vp_enc_exit(b, &(struct vp_exit){ -1, 9, 1, 123456789 }); break;
	case VP_OUTPUT_ACK: vp_enc_output_ack(b, &(struct vp_output_ack){ 17, 4096 }); break;
	case VP_STDIN: vp_enc_stdin(b, &(struct vp_stdin){ 17, 1, B("input") }); break;
	case VP_SIGNAL: vp_enc_signal(b, &(struct vp_signal){ 17, 15 }); break;
	case VP_FS_SETATTR: vp_enc_setattr(b, &sample_setattr); break;
	case VP_FS_ENTRY: vp_enc_entry(b, &(struct vp_entry){ 12, sample_attr }); break;
	case VP_FS_ATTR: vp_enc_attr(b, &sample_attr); break;
	case VP_FS_HANDLE: vp_put_u64(b, 99); break;
	case VP_FS_CREATED:
		vp_put_u64(b, 100);
		vp_enc_entry(b, &(struct vp_entry){ 13, sample_attr });
		break;
	case VP_FS_WRITTEN: vp_put_u32(b, 11); break;
	case VP_FS_DIRENTS:
		vp_put_u32(b, 3);
		vp_enc_dirent(b, &(struct vp_dirent){ 1, 1, 4, B(".") });
		vp_enc_dirent(b, &(struct vp_dirent){ 2, 2, 4, B("..") });
		vp_enc_dirent(b, &(struct vp_dirent){ 77, 3, 8, B("a file") });
		break;
	case VP_FS_STATFS_REPLY: vp_enc_statfs(b, &sample_statfs); break;
	case VP_FS_DIRENTS_PLUS:
		vp_put_u32(b, 3);
		vp_enc_direntplus(b, &(struct vp_direntplus){ { 1, 1, 4, B(".") }, { 0, { 0 } } });
		vp_enc_direntplus(b,
				  &(struct vp_direntplus){ { 77, 2, 8, B("a file") }, { 12, sample_attr } });
		vp_enc_direntplus(b, &(struct vp_direntplus){ { 78, 3, 8, B("gone") }, { 0, { 0 } } });
		break;
	default: {
		struct vp_fs_req m = sample_fs(type);
		vp_enc_fs_req(b, type, &m);
	}
	}
}
