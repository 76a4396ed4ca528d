/* vmpoolfs agent protocol: wire format shared by the host and the guest agent.
 *
 * A frame is a 12-byte little-endian header {u32 len, u16 type, u16 flags,
 * u32 id} followed by `len` payload bytes. Payload fields are little-endian
 * integers and length-prefixed byte strings (u32 length, then the bytes, no
 * NUL). docs/protocol.md is the reference for every message.
 *
 * Encoders append to a growable vp_buf; decoders fill plain structs whose
 * string/byte fields point into the payload (no copy, not NUL-terminated).
 * Every decoder checks every length against the payload and returns
 * -EBADMSG on any inconsistency (truncated, trailing bytes, over a limit). */
#ifndef VMPOOL_PROTO_H
#define VMPOOL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define VP_PROTO_VERSION 1u
#define VP_HDR_SIZE 12u
#define VP_MAX_DATA (1u << 20)               /* read/write/output chunk */
#define VP_MAX_PAYLOAD (VP_MAX_DATA + 4096u) /* any frame's payload */
#define VP_MAX_NAME 255u                     /* one path component */
#define VP_MAX_CMD (128u * 1024u)            /* Linux MAX_ARG_STRLEN */
#define VP_MAX_PATH 4096u
#define VP_MAX_ENV 256u
#define VP_OUTPUT_WINDOW (1u << 20)          /* unacknowledged output bytes per exec */
#define VP_ROOT_NODE 1u                      /* node id of the guest's "/" */

enum vp_type {
	/* session */
	VP_HELLO = 1,   /* host→guest  {u32 min_version, u32 max_version} → READY */
	VP_READY = 2,   /* guest→host  {u32 version, u32 features, str info}; also sent unsolicited with id 0 at start */
	VP_PING = 3,    /* host→guest  {bytes echo} → PONG */
	VP_PONG = 4,    /* guest→host  {bytes echo} */
	VP_ERROR = 5,   /* guest→host  {i32 errno (positive), str message}: failure reply to any request */
	VP_OK = 6,      /* guest→host  {}: success reply with no data */
	VP_SET_TIME = 7, /* host→guest  vp_set_time → OK, or ERROR(EPERM) where the agent may not set the clock */

	/* commands */
	VP_EXEC = 16,       /* host→guest vp_exec → EXEC_STARTED, OUTPUT*, EXIT (all with the EXEC's id) or ERROR */
	VP_EXEC_STARTED = 17, /* guest→host {u32 pid} */
	VP_OUTPUT = 18,     /* guest→host {u8 stream (1 stdout, 2 stderr), bytes data} */
	VP_EXIT = 19,       /* guest→host vp_exit; the last frame of an EXEC */
	VP_OUTPUT_ACK = 20, /* host→guest one-way (id 0) {u32 exec_id, u32 bytes}: credit back */
	VP_STDIN = 21,      /* host→guest {u32 exec_id, u8 eof, bytes data} → OK once written to the pipe, or ERROR */
	VP_SIGNAL = 22,     /* host→guest {u32 exec_id, i32 signo} → OK or ERROR(ESRCH) */

	/* files: passthrough on guest-side nodes (like FUSE inodes) and handles */
	VP_FS_LOOKUP = 32,   /* {u64 parent, str name} → ENTRY */
	VP_FS_FORGET = 33,   /* one-way (id 0) {u64 node, u64 nlookup} */
	VP_FS_GETATTR = 34,  /* {u64 node} → ATTR */
	VP_FS_SETATTR = 35,  /* vp_setattr → ATTR */
	VP_FS_READLINK = 36, /* {u64 node} → DATA */
	VP_FS_MKNOD = 37,    /* {u64 parent, u32 mode, u32 rdev, str name} → ENTRY */
	VP_FS_MKDIR = 38,    /* {u64 parent, u32 mode, str name} → ENTRY */
	VP_FS_UNLINK = 39,   /* {u64 parent, str name} → OK */
	VP_FS_RMDIR = 40,    /* {u64 parent, str name} → OK */
	VP_FS_SYMLINK = 41,  /* {u64 parent, str name, str target} → ENTRY */
	VP_FS_RENAME = 42,   /* {u64 parent, u64 newparent, u32 flags, str name, str newname} → OK */
	VP_FS_LINK = 43,     /* {u64 node, u64 newparent, str newname} → ENTRY */
	VP_FS_OPEN = 44,     /* {u64 node, u32 flags} → HANDLE */
	VP_FS_CREATE = 45,   /* {u64 parent, u32 flags, u32 mode, str name} → CREATED */
	VP_FS_READ = 46,     /* {u64 fh, u64 offset, u32 size} → DATA (short at EOF) */
	VP_FS_WRITE = 47,    /* {u64 fh, u64 offset, bytes data} → WRITTEN */
	VP_FS_FSYNC = 48,    /* {u64 fh, u32 datasync} → OK */
	VP_FS_CLOSE = 49,    /* {u64 fh} → OK; files and directories */
	VP_FS_OPENDIR = 50,  /* {u64 node} → HANDLE */
	VP_FS_READDIR = 51,  /* {u64 fh, u64 offset, u32 max_bytes} → DIRENTS */
	VP_FS_STATFS = 52,   /* {u64 node} → STATFS_REPLY */

	/* file replies */
	VP_FS_ENTRY = 64,   /* vp_entry */
	VP_FS_ATTR = 65,    /* vp_attr */
	VP_FS_DATA = 66,    /* {bytes data} */
	VP_FS_HANDLE = 67,  /* {u64 fh} */
	VP_FS_CREATED = 68, /* {u64 fh, vp_entry} */
	VP_FS_WRITTEN = 69, /* {u32 count} */
	VP_FS_DIRENTS = 70, /* {u32 count, count × {u64 ino, u64 next_offset, u32 type (DT_*), str name}} */
	VP_FS_STATFS_REPLY = 71, /* vp_statfs */
};

struct vp_hdr {
	uint32_t len;   /* payload bytes, ≤ VP_MAX_PAYLOAD */
	uint16_t type;  /* enum vp_type */
	uint16_t flags; /* 0; reserved */
	uint32_t id;    /* request id chosen by the host; replies carry it back; 0 = one-way/unsolicited */
};

/* Growable little-endian writer. Any failure (ENOMEM, over VP_MAX_PAYLOAD)
 * is sticky in `err`; check it once at the end. */
struct vp_buf {
	uint8_t *data;
	size_t len, cap;
	int err;
};
void vp_buf_init(struct vp_buf *b);
void vp_buf_free(struct vp_buf *b);
void vp_buf_reset(struct vp_buf *b); /* len = 0, err = 0, keeps memory */
void vp_put_u8(struct vp_buf *b, uint8_t v);
void vp_put_u16(struct vp_buf *b, uint16_t v);
void vp_put_u32(struct vp_buf *b, uint32_t v);
void vp_put_u64(struct vp_buf *b, uint64_t v);
void vp_put_i32(struct vp_buf *b, int32_t v);
void vp_put_i64(struct vp_buf *b, int64_t v);
void vp_put_raw(struct vp_buf *b, const void *p, size_t n);
void vp_put_str(struct vp_buf *b, const void *p, size_t n); /* u32 length + bytes */
void vp_put_cstr(struct vp_buf *b, const char *s);

/* Bounds-checked reader over one payload; failures are sticky in `err`
 * (-EBADMSG) and getters then return 0 / empty strings. */
struct vp_reader {
	const uint8_t *p;
	size_t left;
	int err;
};
void vp_reader_init(struct vp_reader *r, const void *payload, size_t len);
uint8_t vp_get_u8(struct vp_reader *r);
uint16_t vp_get_u16(struct vp_reader *r);
uint32_t vp_get_u32(struct vp_reader *r);
uint64_t vp_get_u64(struct vp_reader *r);
int32_t vp_get_i32(struct vp_reader *r);
int64_t vp_get_i64(struct vp_reader *r);
/* A length-prefixed string of at most `max` bytes; *p points into the payload. */
void vp_get_str(struct vp_reader *r, const uint8_t **p, uint32_t *len, uint32_t max);
/* 0 when everything was consumed without error, else -EBADMSG. */
int vp_reader_finish(const struct vp_reader *r);

/* Header: encode into 12 bytes; decode validates len ≤ VP_MAX_PAYLOAD
 * (-EMSGSIZE) and a known type (-EPROTO), flags == 0 (-EPROTO). */
void vp_hdr_encode(uint8_t out[VP_HDR_SIZE], const struct vp_hdr *h);
int vp_hdr_decode(const uint8_t in[VP_HDR_SIZE], struct vp_hdr *h);
bool vp_type_known(uint16_t type);
const char *vp_type_name(uint16_t type); /* "EXEC", ... or "?" */

/* Blocking frame I/O on a stream fd (socket, pipe, virtio console).
 * vp_frame_write writes header+payload whole (retrying on EINTR and short
 * writes); callers serialise writers themselves. vp_frame_read reads one
 * whole frame into *payload (malloc'ed, or NULL when len == 0; caller frees).
 * Both return 0, -EPIPE/-ECONNRESET at EOF, or another negative errno. */
int vp_frame_write(int fd, uint16_t type, uint32_t id, const void *payload, size_t len);
int vp_frame_read(int fd, struct vp_hdr *h, uint8_t **payload);
/* Skip n written bytes of an iovec array after a short write. */
void vp_iov_advance(struct iovec **v, int *cnt, size_t n);
/* Encode a whole frame (header + payload) into `out` (reset first). */
int vp_frame_encode(struct vp_buf *out, uint16_t type, uint32_t id, const void *payload, size_t len);

/* ---- messages ---------------------------------------------------------- */

struct vp_bytes {
	const uint8_t *p;
	uint32_t len;
};

struct vp_hello { uint32_t min_version, max_version; };
struct vp_ready { uint32_t version, features; struct vp_bytes info; };
struct vp_error { int32_t err; struct vp_bytes message; }; /* err positive errno */
/* The host's CLOCK_REALTIME, for a guest whose clock was restored from a
 * snapshot (docs/protocol.md, "Time"). */
struct vp_set_time { int64_t sec; uint32_t nsec; /* < 1e9 */ };

#define VP_EXEC_STDIN 0x1u /* keep a stdin pipe open for STDIN frames; else stdin is /dev/null */
struct vp_exec {
	uint32_t timeout_ms; /* 0 = none; on expiry the process group gets SIGKILL and EXIT says timed_out */
	uint32_t flags;      /* VP_EXEC_* */
	struct vp_bytes cmd; /* run as /bin/sh -c CMD; no NUL bytes; ≤ VP_MAX_CMD */
	struct vp_bytes cwd; /* empty = "/" */
	uint32_t nenv;       /* ≤ VP_MAX_ENV "K=V" entries, added to PATH, HOME, TERM=dumb */
	struct vp_bytes env[VP_MAX_ENV];
};
struct vp_exec_started { uint32_t pid; };
#define VP_STREAM_STDOUT 1u
#define VP_STREAM_STDERR 2u
struct vp_output { uint8_t stream; struct vp_bytes data; };
struct vp_exit {
	int32_t code;        /* exit status when exited normally, else -1 */
	int32_t signal;      /* terminating signal, 0 if none */
	uint8_t timed_out;   /* killed because timeout_ms expired */
	uint64_t duration_us;
};
struct vp_output_ack { uint32_t exec_id, bytes; };
struct vp_stdin { uint32_t exec_id; uint8_t eof; struct vp_bytes data; };
struct vp_signal { uint32_t exec_id; int32_t signo; };

struct vp_attr {
	uint64_t ino, size, blocks;
	int64_t atime_sec, mtime_sec, ctime_sec;
	uint32_t atime_nsec, mtime_nsec, ctime_nsec;
	uint32_t mode, nlink, uid, gid, rdev, blksize;
};
struct vp_entry { uint64_t node; struct vp_attr attr; };

/* Requests on a node or a handle share one struct; unused fields are 0. */
struct vp_fs_req {
	uint64_t node;      /* node, or parent for name operations */
	uint64_t node2;     /* newparent (RENAME, LINK) */
	uint64_t fh;        /* READ, WRITE, FSYNC, CLOSE, READDIR */
	uint64_t offset;    /* READ, WRITE, READDIR */
	uint64_t nlookup;   /* FORGET */
	uint32_t size;      /* READ size, READDIR max_bytes */
	uint32_t flags;     /* OPEN, CREATE open flags; RENAME flags; FSYNC datasync */
	uint32_t mode;      /* MKNOD, MKDIR, CREATE */
	uint32_t rdev;      /* MKNOD */
	struct vp_bytes name;  /* LOOKUP, MKNOD, MKDIR, UNLINK, RMDIR, SYMLINK, RENAME, CREATE */
	struct vp_bytes name2; /* RENAME, LINK newname; SYMLINK target */
	struct vp_bytes data;  /* WRITE */
};

#define VP_SET_MODE 0x01u
#define VP_SET_UID 0x02u
#define VP_SET_GID 0x04u
#define VP_SET_SIZE 0x08u
#define VP_SET_ATIME 0x10u
#define VP_SET_MTIME 0x20u
#define VP_SET_ATIME_NOW 0x40u
#define VP_SET_MTIME_NOW 0x80u
struct vp_setattr {
	uint64_t node;
	uint64_t fh; /* 0 = no open handle */
	uint32_t valid; /* VP_SET_* */
	uint32_t mode, uid, gid;
	uint64_t size;
	int64_t atime_sec, mtime_sec;
	uint32_t atime_nsec, mtime_nsec;
};

struct vp_dirent { uint64_t ino, next_offset; uint32_t type; struct vp_bytes name; };
struct vp_statfs {
	uint64_t blocks, bfree, bavail, files, ffree;
	uint32_t bsize, frsize, namemax;
};

/* Encoders append a whole payload to b (not the header). */
void vp_enc_hello(struct vp_buf *b, const struct vp_hello *m);
void vp_enc_ready(struct vp_buf *b, const struct vp_ready *m);
void vp_enc_error(struct vp_buf *b, const struct vp_error *m);
void vp_enc_set_time(struct vp_buf *b, const struct vp_set_time *m);
void vp_enc_exec(struct vp_buf *b, const struct vp_exec *m);
void vp_enc_exec_started(struct vp_buf *b, const struct vp_exec_started *m);
void vp_enc_output(struct vp_buf *b, const struct vp_output *m);
void vp_enc_exit(struct vp_buf *b, const struct vp_exit *m);
void vp_enc_output_ack(struct vp_buf *b, const struct vp_output_ack *m);
void vp_enc_stdin(struct vp_buf *b, const struct vp_stdin *m);
void vp_enc_signal(struct vp_buf *b, const struct vp_signal *m);
void vp_enc_attr(struct vp_buf *b, const struct vp_attr *m);
void vp_enc_entry(struct vp_buf *b, const struct vp_entry *m);
void vp_enc_setattr(struct vp_buf *b, const struct vp_setattr *m);
void vp_enc_statfs(struct vp_buf *b, const struct vp_statfs *m);
void vp_enc_dirent(struct vp_buf *b, const struct vp_dirent *m); /* one entry; DIRENTS = u32 count + entries */
/* FS requests: encodes the fields that `type` uses, in the order of the enum comments. */
void vp_enc_fs_req(struct vp_buf *b, uint16_t type, const struct vp_fs_req *m);

/* Decoders: 0 or -EBADMSG. */
int vp_dec_hello(const void *p, size_t n, struct vp_hello *m);
int vp_dec_ready(const void *p, size_t n, struct vp_ready *m);
int vp_dec_error(const void *p, size_t n, struct vp_error *m);
int vp_dec_set_time(const void *p, size_t n, struct vp_set_time *m);
int vp_dec_exec(const void *p, size_t n, struct vp_exec *m);
int vp_dec_exec_started(const void *p, size_t n, struct vp_exec_started *m);
int vp_dec_output(const void *p, size_t n, struct vp_output *m);
int vp_dec_exit(const void *p, size_t n, struct vp_exit *m);
int vp_dec_output_ack(const void *p, size_t n, struct vp_output_ack *m);
int vp_dec_stdin(const void *p, size_t n, struct vp_stdin *m);
int vp_dec_signal(const void *p, size_t n, struct vp_signal *m);
int vp_dec_attr(const void *p, size_t n, struct vp_attr *m);
int vp_dec_entry(const void *p, size_t n, struct vp_entry *m);
int vp_dec_setattr(const void *p, size_t n, struct vp_setattr *m);
int vp_dec_statfs(const void *p, size_t n, struct vp_statfs *m);
int vp_dec_fs_req(const void *p, size_t n, uint16_t type, struct vp_fs_req *m);
/* Reader-level pieces for composite replies (CREATED, DIRENTS). */
void vp_get_attr(struct vp_reader *r, struct vp_attr *m);
void vp_get_dirent(struct vp_reader *r, struct vp_dirent *m);

/* Decode any frame's payload by type into a tagged union-less check:
 * returns 0 when `payload` is a well-formed instance of `type`. Used by the
 * fuzzer and by both sides to reject malformed frames up front. */
int vp_validate(uint16_t type, const void *payload, size_t len);

#endif
