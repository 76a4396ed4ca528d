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

#include "proto_msgs.h"

#define VP_PROTO_VERSION 1u
#define VP_HDR_SIZE 12u
#define VP_MAX_DATA (1u << 20)		     /* read/write/output chunk */
#define VP_MAX_PAYLOAD (VP_MAX_DATA + 4096u) /* any frame's payload */
#define VP_MAX_NAME 255u		     /* one path component */
#define VP_MAX_CMD (128u * 1024u)	     /* Linux MAX_ARG_STRLEN */
#define VP_MAX_PATH 4096u
#define VP_MAX_ENV 256u
#define VP_OUTPUT_WINDOW (1u << 20) /* unacknowledged output bytes per exec */
#define VP_ROOT_NODE 1u		    /* node id of the guest's "/" */
#define VP_MAX_GROUPS 32u	    /* supplementary groups a file request carries */

/* Message types: the list and what each carries is proto_msgs.h. */
enum vp_type {
#define VP_ENUM_(NAME, value, codec, dir, reply) VP_##NAME = value,
	VP_MESSAGES(VP_ENUM_)
#undef VP_ENUM_
};

/* Who sends a type and whether it is answered (proto_msgs.h). */
enum vp_dir {
	VP_DIR_NONE = 0, /* not a known type */
	VP_DIR_REQ,	 /* host→guest, answered with its id */
	VP_DIR_ONEWAY,	 /* host→guest, id 0, never answered */
	VP_DIR_REPLY,	 /* guest→host */
};

struct vp_hdr {
	uint32_t len;	/* payload bytes, ≤ VP_MAX_PAYLOAD */
	uint16_t type;	/* enum vp_type */
	uint16_t flags; /* 0; reserved */
	uint32_t id;	/* request id chosen by the host; replies carry it back; 0 = one-way/unsolicited */
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
enum vp_dir vp_msg_dir(uint16_t type);
/* The reply a request type gets other than ERROR; 0 for other types. */
uint16_t vp_msg_reply(uint16_t type);

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

struct vp_hello {
	uint32_t min_version, max_version;
};
struct vp_ready {
	uint32_t version, features;
	struct vp_bytes info;
};
struct vp_error {
	int32_t err;
	struct vp_bytes message;
}; /* err positive errno */
/* The host's CLOCK_REALTIME, for a guest whose clock was restored from a
 * snapshot (docs/protocol.md, "Time"). */
struct vp_set_time {
	int64_t sec;
	uint32_t nsec; /* < 1e9 */
};

#define VP_EXEC_STDIN 0x1u /* keep a stdin pipe open for STDIN frames; else stdin is /dev/null */
struct vp_exec {
	uint32_t timeout_ms; /* 0 = none; on expiry the process group gets SIGKILL and EXIT says timed_out */
	uint32_t flags;	     /* VP_EXEC_* */
	struct vp_bytes cmd; /* run as /bin/sh -c CMD; no NUL bytes; ≤ VP_MAX_CMD */
	struct vp_bytes cwd; /* empty = "/" */
	uint32_t nenv;	     /* ≤ VP_MAX_ENV "K=V" entries, added to PATH, HOME, TERM=dumb */
	struct vp_bytes env[VP_MAX_ENV];
};
struct vp_exec_started {
	uint32_t pid;
};
#define VP_STREAM_STDOUT 1u
#define VP_STREAM_STDERR 2u
struct vp_output {
	uint8_t stream;
	struct vp_bytes data;
};
struct vp_exit {
	int32_t code;	   /* exit status when exited normally, else -1 */
	int32_t signal;	   /* terminating signal, 0 if none */
	uint8_t timed_out; /* killed because timeout_ms expired */
	uint64_t duration_us;
};
struct vp_output_ack {
	uint32_t exec_id, bytes;
};
struct vp_stdin {
	uint32_t exec_id;
	uint8_t eof;
	struct vp_bytes data;
};
struct vp_signal {
	uint32_t exec_id;
	int32_t signo;
};

struct vp_attr {
	uint64_t ino, size, blocks;
	int64_t atime_sec, mtime_sec, ctime_sec;
	uint32_t atime_nsec, mtime_nsec, ctime_nsec;
	uint32_t mode, nlink, uid, gid, rdev, blksize;
};
struct vp_entry {
	uint64_t node;
	struct vp_attr attr;
};

/* Who asks: the guest ids the agent performs a file request as
 * (docs/protocol.md, "Credentials"). uid 0 is guest root, served as the
 * agent itself is; any other uid switches the serving thread's fsuid,
 * fsgid and groups for that one request. */
struct vp_cred {
	uint32_t uid, gid;
	struct vp_bytes groups; /* u32 little-endian each, at most VP_MAX_GROUPS */
};

/* Requests on a node or a handle share one struct; unused fields are 0. */
struct vp_fs_req {
	uint64_t node;	       /* node, or parent for name operations */
	uint64_t node2;	       /* newparent (RENAME, LINK) */
	uint64_t fh;	       /* READ, WRITE, FSYNC, CLOSE, READDIR(PLUS) */
	uint64_t offset;       /* READ, WRITE, READDIR(PLUS) */
	uint64_t nlookup;      /* FORGET */
	uint32_t size;	       /* READ size, READDIR(PLUS) max_bytes */
	uint32_t flags;	       /* OPEN, CREATE open flags; RENAME flags; FSYNC datasync */
	uint32_t mode;	       /* MKNOD, MKDIR, CREATE */
	uint32_t rdev;	       /* MKNOD */
	struct vp_bytes name;  /* LOOKUP, MKNOD, MKDIR, UNLINK, RMDIR, SYMLINK, RENAME, CREATE */
	struct vp_bytes name2; /* RENAME, LINK newname; SYMLINK target */
	struct vp_bytes data;  /* WRITE */
	struct vp_cred cred;   /* every request on a node (not FORGET), last */
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
	uint64_t fh;	/* 0 = no open handle */
	uint32_t valid; /* VP_SET_* */
	uint32_t mode, uid, gid;
	uint64_t size;
	int64_t atime_sec, mtime_sec;
	uint32_t atime_nsec, mtime_nsec;
	struct vp_cred cred;
};

struct vp_dirent {
	uint64_t ino, next_offset;
	uint32_t type;
	struct vp_bytes name;
};
/* One DIRENTS_PLUS entry: a dirent, then an entry whose node is 0 when
 * the agent counted no lookup for it ("." and "..", a name gone since the
 * listing; its attr is then all zero). */
struct vp_direntplus {
	struct vp_dirent d;
	struct vp_entry e;
};
struct vp_statfs {
	uint64_t blocks, bfree, bavail, files, ffree;
	uint32_t bsize, frsize, namemax;
};

/* Payloads of one field, and the composite replies. */
struct vp_data {
	struct vp_bytes data;
}; /* PING, PONG, FS_DATA: ≤ VP_MAX_DATA */
struct vp_empty {
	uint8_t unused;
}; /* OK: no field (C has no empty struct) */
struct vp_handle {
	uint64_t fh;
}; /* non-zero */
struct vp_written {
	uint32_t count;
}; /* ≤ VP_MAX_DATA */
struct vp_created {
	uint64_t fh;
	struct vp_entry entry;
};
/* DIRENTS: `entries` points at the count entries (vp_get_dirent walks them);
 * DIRENTS_PLUS has the same shape, its entries walked by vp_get_direntplus. */
struct vp_dirents {
	uint32_t count;
	struct vp_bytes entries;
};

/* Any message's decoded payload: one member per VP_CODECS layout. */
union vp_msg {
#define VP_MEMBER_(codec, member, type, args) type member;
	VP_CODECS(VP_MEMBER_)
#undef VP_MEMBER_
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
void vp_enc_data(struct vp_buf *b, const struct vp_data *m);
void vp_enc_empty(struct vp_buf *b, const struct vp_empty *m);
void vp_enc_handle(struct vp_buf *b, const struct vp_handle *m);
void vp_enc_written(struct vp_buf *b, const struct vp_written *m);
void vp_enc_created(struct vp_buf *b, const struct vp_created *m);
void vp_enc_direntplus(struct vp_buf *b, const struct vp_direntplus *m); /* one DIRENTS_PLUS entry */
/* Re-encode each entry of m->entries (so they check them all). */
void vp_enc_dirents(struct vp_buf *b, const struct vp_dirents *m);
void vp_enc_direntsplus(struct vp_buf *b, const struct vp_dirents *m);
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
int vp_dec_data(const void *p, size_t n, struct vp_data *m);
int vp_dec_empty(const void *p, size_t n, struct vp_empty *m);
int vp_dec_handle(const void *p, size_t n, struct vp_handle *m);
int vp_dec_written(const void *p, size_t n, struct vp_written *m);
int vp_dec_created(const void *p, size_t n, struct vp_created *m);
int vp_dec_dirents(const void *p, size_t n, struct vp_dirents *m);
int vp_dec_direntsplus(const void *p, size_t n, struct vp_dirents *m);
/* Reader-level pieces for composite replies (CREATED, DIRENTS). */
void vp_get_attr(struct vp_reader *r, struct vp_attr *m);
void vp_get_dirent(struct vp_reader *r, struct vp_dirent *m);
void vp_get_direntplus(struct vp_reader *r, struct vp_direntplus *m);

/* Any message by type, through its VP_CODECS layout: 0, -EBADMSG for a
 * malformed payload, -EPROTO for an unknown type. vp_encode appends the
 * payload (b->err -EINVAL for an unknown type). */
int vp_decode(uint16_t type, const void *payload, size_t len, union vp_msg *m);
void vp_encode(struct vp_buf *b, uint16_t type, const union vp_msg *m);
/* 0 when `payload` is a well-formed instance of `type` (vp_decode into a
 * scratch message). Used by the fuzzer and by both sides to reject
 * malformed frames up front. */
int vp_validate(uint16_t type, const void *payload, size_t len);

#endif
