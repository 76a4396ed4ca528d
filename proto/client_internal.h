/* Internals shared by the client library's files (not for its users):
 *   client.c         lifecycle, id table, writing frames, synchronous calls
 *   client_reader.c  the reader thread: replies to waiters, exec callbacks
 *   client_exec.c    EXEC, STDIN, SIGNAL and the exec-and-wait helper
 *   client_fs.c      the typed file calls
 *
 * Ownership rules that keep this free of use-after-free:
 *  - Every request in flight is a heap `struct pend` in the id table, owned
 *    by the table. A synchronous caller waits on a `struct waiter` on its own
 *    stack, linked from pend->w until the reader (or the channel's death)
 *    completes it, or until the caller gives up (timeout), which leaves the
 *    pend in the table as a tombstone so the late reply is recognised.
 *  - The reader may work on a waiter outside the lock only while the pend is
 *    `claimed`; a timing-out caller waits for the claim to end instead of
 *    leaving (its buffer is being filled).
 *  - Only the reader thread removes tombstones and running execs and runs
 *    exec callbacks, so on_exit runs exactly once and never concurrently
 *    with another callback of the same exec.
 * Locks: `lock` protects the id table, every pend and waiter, ready_seen,
 * freeing, users, timeout_ms, next_id, probe_id and probe_since_ms; `wlock` serialises frames on the
 * wire. Lock order: wlock before lock, never the reverse. */
#ifndef VMPOOL_CLIENT_INTERNAL_H
#define VMPOOL_CLIENT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/u64map.h"
#include "client.h"
#include "lib/thread_safety.h"

#define IB_SIZE (64u * 1024u) /* the reader's input buffer: batches small replies into one read() */

/* Tests shrink the id space to see it wrap and skip ids in use. */
#ifndef VP_CLIENT_ID_MASK
#define VP_CLIENT_ID_MASK 0xffffffffu
#endif

struct waiter {
	pthread_cond_t cond;
	bool done;
	int err;	  /* transport result: 0 = a reply is here */
	uint16_t rtype;	  /* reply type */
	uint8_t *payload; /* malloc'ed reply payload, owned by the caller once done */
	uint32_t plen;
	bool direct; /* FS_READ: DATA bytes go straight to rbuf */
	void *rbuf;
	uint32_t rcap, rgot;
};

/* PK_ASYNC: a request whose reply goes to a callback (vp_fs_write_async)
 * instead of a waiter. */
enum pend_kind { PK_CALL, PK_EXEC, PK_ASYNC };

struct pend {
	struct u64map_link link; /* key: the request id */
	uint16_t req;		 /* request type sent */
	uint16_t expect;	 /* the reply type other than ERROR it may get */
	uint8_t kind;
	bool claimed; /* the reader is completing w outside the lock */
	bool started; /* EXEC: EXEC_STARTED seen */
	bool orphan;  /* EXEC: its caller gave up before EXEC_STARTED; no callbacks */
	struct waiter *w;
	struct vp_exec_cb cb;
	void *ctx;
	/* PK_ASYNC: done runs once, by whoever takes the pend out of the
	 * table (the reader); refs: the table's and, while it sends, the
	 * sender's, so a failed send can tell whether the reader took it
	 * without touching freed memory. */
	void (*done)(void *ctx, int err, uint32_t written);
	uint32_t size;
	uint8_t refs;
	bool in_tab;
};

static inline uint32_t pend_id(const struct pend *p)
{
	return (uint32_t)p->link.key;
}

struct vp_client {
	int fd;
	int wakefd; /* eventfd, readable once the channel is dead: wakes every poll */
	bool is_sock;
	pthread_t reader;
	struct vp_mutex lock;  /* see the top of this file */
	struct vp_mutex wlock; /* one frame on the wire at a time */
	pthread_cond_t cond;   /* READY seen, channel dead, users back to 0 */
	atomic_bool dead;
	bool ready_seen GUARDED_BY(lock);
	bool freeing GUARDED_BY(lock);
	unsigned users GUARDED_BY(lock);
	int timeout_ms GUARDED_BY(lock);
	uint32_t next_id GUARDED_BY(lock);
	/* vp_client_probe: the PING in flight (0: none) and since when an
	 * answer has been wanted (0: not waiting); the reader clears both
	 * when that PING is answered. */
	uint32_t probe_id GUARDED_BY(lock);
	uint64_t probe_since_ms GUARDED_BY(lock);
	struct u64map tab GUARDED_BY(lock); /* struct pend by id */
	/* reader-only */
	uint8_t *ib;
	size_t ib_off, ib_len;
	uint8_t *scratch;
	size_t scratch_cap;
};

/* ---- client.c ---- */

/* The deadline of a call under the client's timeout (0: none). */
uint64_t client_call_deadline(struct vp_client *c);
/* Marks the channel dead and fails every waiter (idempotent). */
void client_kill(struct vp_client *c);
/* Frames are built in a vp_buf whose first VP_HDR_SIZE bytes are reserved
 * for the header; `extra` (WRITE/STDIN data) follows without being copied. */
void client_frame_begin(struct vp_buf *b);
int client_send_frame(struct vp_client *c, struct vp_buf *b, uint16_t type, uint32_t id, const void *extra,
		      size_t extra_len, uint64_t deadline);
int client_send_oneway(struct vp_client *c, struct vp_buf *b, uint16_t type);
/* users: vp_client_free waits until every caller inside has left. */
void client_enter_locked(struct vp_client *c) REQUIRES(&c->lock);
void client_leave(struct vp_client *c);
int client_map_error(const uint8_t *p, uint32_t n);
/* A PK_CALL pend for request `req`, expecting vp_msg_reply(req). */
struct pend *client_pend_new(uint16_t req);
struct pend *client_tab_find(struct vp_client *c, uint32_t id) REQUIRES(&c->lock);
/* Gives p a fresh id and puts it in the table. */
void client_tab_insert_new(struct vp_client *c, struct pend *p) REQUIRES(&c->lock);
void client_tab_remove(struct vp_client *c, struct pend *p) REQUIRES(&c->lock);
void client_complete_locked(struct pend *p, int err);
/* Sends the frame in b (+extra) as request p and waits for its reply;
 * timeout_ms INT32_MIN: the client's timeout. 0: w->rtype/payload (or the
 * direct read) hold the reply (ERROR included); else -errno. */
int client_do_call(struct vp_client *c, struct pend *p, struct vp_buf *b, const void *extra, size_t extra_len,
		   struct waiter *w, int timeout_ms, uint32_t *id_out);

/* A decoded reply; its byte fields point into payload. */
struct client_reply {
	uint16_t type;
	union vp_msg m;
	uint8_t *payload;
};
/* The one way a synchronous call gets its answer: sends request `type`
 * (its payload already in b after client_frame_begin, + extra), waits,
 * maps ERROR to -errno and decodes the reply (vp_msg_reply(type)) into
 * rep; b is freed. On 0 the caller frees rep with client_reply_free. */
int client_call(struct vp_client *c, uint16_t type, struct vp_buf *b, const void *extra, size_t extra_len,
		struct client_reply *rep);
/* client_call with its own timeout (INT32_MIN: the client's; < 0: none). */
int client_call_timeout(struct vp_client *c, uint16_t type, struct vp_buf *b, const void *extra,
			size_t extra_len, struct client_reply *rep, int timeout_ms);
/* Sends request `type` (payload in b) without waiting for its answer,
 * which is dropped when it comes; gives up after wait_ms when the
 * channel does not take the frame (-ETIMEDOUT, nothing sent). */
int client_send_nowait(struct vp_client *c, uint16_t type, struct vp_buf *b, int wait_ms);
/* client_call with the payload encoded from req. */
int client_call_msg(struct vp_client *c, uint16_t type, const union vp_msg *req, struct client_reply *rep);
void client_reply_free(struct client_reply *rep);

/* ---- client_reader.c ---- */

void *client_reader_main(void *arg);
/* Drops one reference of a PK_ASYNC pend; true when it is to be freed. */
bool client_async_put_locked(struct pend *p);

#endif
