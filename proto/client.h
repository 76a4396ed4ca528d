/* Host-side client of the agent protocol (see proto.h, docs/protocol.md).
 *
 * One client owns one channel fd. Any number of threads may issue requests
 * at once; a reader thread matches replies to waiters by request id and
 * delivers EXEC output to callbacks. When the channel dies (EOF, error,
 * malformed frame, vp_client_shutdown) every pending and future call fails
 * with -ECONNRESET and every running exec gets on_exit(err = -ECONNRESET),
 * so nothing waits on a dead guest. All functions return 0 or -errno; an
 * ERROR reply from the agent becomes its negated errno. */
#ifndef VMPOOL_CLIENT_H
#define VMPOOL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "proto.h"
#include "client_exec.h"

struct vp_client;

/* Takes ownership of fd (closed by vp_client_free). Starts the reader thread. */
int vp_client_new(int fd, struct vp_client **out);
/* Fails every waiter, closes the channel, joins the reader; safe on NULL. */
void vp_client_free(struct vp_client *c);
/* Marks the channel dead and wakes every waiter (idempotent, any thread). */
void vp_client_shutdown(struct vp_client *c);
bool vp_client_alive(struct vp_client *c);

/* Wait for the agent's READY (unsolicited, id 0) for at most timeout_ms;
 * then HELLO is exchanged to agree on the version. -ETIMEDOUT, -EPROTO. */
int vp_client_handshake(struct vp_client *c, int timeout_ms);
/* The handshake with an agent that said READY to someone else before: a
 * machine restored from a snapshot taken after READY never sends it again.
 * Only HELLO → READY, bounded by timeout_ms. -ETIMEDOUT, -EPROTO. */
int vp_client_handshake_resumed(struct vp_client *c, int timeout_ms);
#define VP_CLIENT_DEFAULT_TIMEOUT_MS 60000
/* Timeout for every synchronous call below, in ms (default 60000; <0 = none). */
void vp_client_set_timeout(struct vp_client *c, int timeout_ms);

int vp_ping(struct vp_client *c);
/* Health probe that never blocks (a thread watching many machines calls
 * it): sends a PING when none is out, and says whether the agent answered
 * within bound_ms of when an answer was first wanted. 0: answered, or
 * still within the bound; -ETIMEDOUT: no answer for bound_ms (the caller
 * declares the guest dead); -ECONNRESET: the channel is dead already. A
 * PING that cannot be sent at once (another sender holds a full channel)
 * is retried at the next call, with the clock still running. */
int vp_client_probe(struct vp_client *c, int bound_ms);
/* SET_TIME: the guest's CLOCK_REALTIME := *now (tv_nsec < 1e9, else
 * -EINVAL). -EPERM from an agent that may not set the clock (not a VM),
 * -ENOSYS from one older than SET_TIME. */
int vp_set_time(struct vp_client *c, const struct timespec *now);

/* EXEC. Callbacks run on the reader thread: copy the data and return
 * quickly. Output is acknowledged to the agent after on_output returns (that
 * is the backpressure: a slow consumer slows the command, not memory).
 * on_exit runs exactly once: err == 0 with *ex filled, or err < 0 (channel
 * died, ex == NULL). After on_exit no callback runs for that exec. */
struct vp_exec_cb {
	void (*on_started)(void *ctx, uint32_t pid); /* may be NULL */
	void (*on_output)(void *ctx, int stream, const void *data, size_t len);
	void (*on_exit)(void *ctx, const struct vp_exit *ex, int err);
};
/* Sends EXEC and returns once the agent answered EXEC_STARTED (0) or ERROR
 * (-errno, and no callback runs). *exec_id names it for stdin/signal. */
int vp_exec_start(struct vp_client *c, const struct vp_exec *req, const struct vp_exec_cb *cb, void *ctx,
		  uint32_t *exec_id);
/* Data for the command's stdin; returns once the agent wrote it to the pipe.
 * eof closes the pipe after the data. -ESRCH when the command has ended. */
int vp_exec_stdin(struct vp_client *c, uint32_t exec_id, const void *data, size_t len, bool eof);
/* The same with its own timeout (INT32_MIN: the client's; < 0: none). */
int vp_exec_stdin_timeout(struct vp_client *c, uint32_t exec_id, const void *data, size_t len, bool eof,
			  int timeout_ms);
int vp_exec_signal(struct vp_client *c, uint32_t exec_id, int signo);
int vp_exec_signal_timeout(struct vp_client *c, uint32_t exec_id, int signo, int timeout_ms);
/* SIGNAL without waiting for the agent's answer: 0 once the frame is on
 * the channel; -ETIMEDOUT when the channel did not take it within wait_ms
 * (a guest that stopped reading). For a caller that must not wait on the
 * guest (rmdir). */
int vp_exec_signal_nowait(struct vp_client *c, uint32_t exec_id, int signo, int wait_ms);

/* Files (guest-side nodes and handles; see proto.h). */

/* The guest ids that the calling thread's next file requests on nodes
 * carry (docs/protocol.md, "Credentials"), until it sets others; NULL or
 * uid 0: guest root, every thread's default. Per thread, like the agent's
 * fsuid it becomes, so one FUSE worker's caller never leaks into another's
 * request; the root/ proxy sets it around each request and clears it. At
 * most VP_MAX_GROUPS groups are kept (the rest dropped, like NFS's
 * AUTH_SYS keeps 16). */
void vp_fs_set_caller(uint32_t uid, uint32_t gid, const uint32_t *groups, size_t ngroups);
void vp_fs_clear_caller(void);
int vp_fs_lookup(struct vp_client *c, uint64_t parent, const char *name, struct vp_entry *out);
void vp_fs_forget(struct vp_client *c, uint64_t node, uint64_t nlookup); /* one-way */
int vp_fs_getattr(struct vp_client *c, uint64_t node, struct vp_attr *out);
int vp_fs_setattr(struct vp_client *c, const struct vp_setattr *req, struct vp_attr *out);
/* Copies at most cap-1 bytes and NUL-terminates; -ENAMETOOLONG if longer. */
int vp_fs_readlink(struct vp_client *c, uint64_t node, char *buf, size_t cap);
int vp_fs_mknod(struct vp_client *c, uint64_t parent, const char *name, uint32_t mode, uint32_t rdev,
		struct vp_entry *out);
int vp_fs_mkdir(struct vp_client *c, uint64_t parent, const char *name, uint32_t mode, struct vp_entry *out);
int vp_fs_unlink(struct vp_client *c, uint64_t parent, const char *name);
int vp_fs_rmdir(struct vp_client *c, uint64_t parent, const char *name);
int vp_fs_symlink(struct vp_client *c, uint64_t parent, const char *name, const char *target,
		  struct vp_entry *out);
int vp_fs_rename(struct vp_client *c, uint64_t parent, const char *name, uint64_t newparent,
		 const char *newname, uint32_t flags);
int vp_fs_link(struct vp_client *c, uint64_t node, uint64_t newparent, const char *newname,
	       struct vp_entry *out);
int vp_fs_open(struct vp_client *c, uint64_t node, uint32_t flags, uint64_t *fh);
int vp_fs_create(struct vp_client *c, uint64_t parent, const char *name, uint32_t flags, uint32_t mode,
		 uint64_t *fh, struct vp_entry *out);
/* Reads up to size (≤ VP_MAX_DATA) bytes straight into buf; *got may be short at EOF. */
int vp_fs_read(struct vp_client *c, uint64_t fh, uint64_t offset, void *buf, uint32_t size, uint32_t *got);
int vp_fs_write(struct vp_client *c, uint64_t fh, uint64_t offset, const void *buf, uint32_t size,
		uint32_t *written);
/* WRITE without waiting for the reply (write-behind). The frame, data
 * included, is on the channel when it returns 0; done then runs exactly
 * once on the reader thread: err = 0 with the bytes the guest wrote, or
 * -errno (an ERROR reply, -EPROTO, -ECONNRESET when the channel dies). It
 * must not block or call back into the client. On an error return done
 * never runs. Replies, and so callbacks, come in the order the guest
 * finished the writes, which for concurrent writes need not be the order
 * they were sent. No timeout: a write the guest never answers ends only
 * with the channel (vp_client_shutdown). */
int vp_fs_write_async(struct vp_client *c, uint64_t fh, uint64_t offset, const void *buf, uint32_t size,
		      void (*done)(void *ctx, int err, uint32_t written), void *ctx);
int vp_fs_fsync(struct vp_client *c, uint64_t fh, bool datasync);
int vp_fs_close(struct vp_client *c, uint64_t fh);
int vp_fs_opendir(struct vp_client *c, uint64_t node, uint64_t *fh);
/* Calls fn for each entry from offset on, up to max_bytes of reply; fn returns
 * non-zero to stop early. *count = entries delivered (0 at end of directory). */
int vp_fs_readdir(struct vp_client *c, uint64_t fh, uint64_t offset, uint32_t max_bytes,
		  int (*fn)(void *ctx, const struct vp_dirent *d), void *ctx, uint32_t *count);
/* READDIRPLUS of directory `node` open as fh: as vp_fs_readdir, each entry
 * with its entry (d->e.node 0: none, as for "." and ".."). An entry fn
 * accepts (returns 0 for) hands its lookup to the caller, who forgets it
 * in time; the entries after one fn refuses are forgotten here. */
int vp_fs_readdirplus(struct vp_client *c, uint64_t node, uint64_t fh, uint64_t offset, uint32_t max_bytes,
		      int (*fn)(void *ctx, const struct vp_direntplus *d), void *ctx, uint32_t *count);
int vp_fs_statfs(struct vp_client *c, uint64_t node, struct vp_statfs *out);

#endif
