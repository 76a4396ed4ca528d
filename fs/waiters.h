/* Reads of stdout, stderr and exit that wait for the command.
 *
 * A read at the end of what is there while the command runs is parked: the
 * fuse_req_t goes on the session's waiter list and the worker thread returns
 * to the loop, so blocked readers never pin FUSE threads. Whoever changes
 * the state (the client's reader thread delivering output or exit, an
 * interrupt, shutdown) replies. Ownership of a parked request is decided
 * under the session lock: whoever unlinks it replies to it. Before a reply
 * from outside the interrupt callback, fuse_req_interrupt_func(req, NULL,
 * NULL) serialises with a callback already running (libfuse runs it under
 * the request's lock), so the waiter is never freed under it. */
#ifndef VPFS_WAITERS_H
#define VPFS_WAITERS_H

#include <stdbool.h>
#include <sys/types.h>

#include "handles.h"
#include "lib/list.h"
#include "session.h"

struct waiter {
	struct list_node link; /* in s->waiters while parked (in_list), under s->lock */
	struct session *s;
	fuse_req_t req;
	struct vfh *fh;
	int kind; /* SF_STDOUT, SF_STDERR, SF_EXIT (ctlfiles.h) */
	uint64_t off;
	size_t size;
	bool in_list, interrupted;
};

/* Answers at once (data, EOF, EIO, EAGAIN for nonblock) or parks req. */
void waiters_read(struct session *s, fuse_req_t req, struct vfh *fh, int kind, size_t size, off_t off,
		  bool nonblock);
/* After new output (kind SF_STDOUT/SF_STDERR) or a state change (SF_EXIT:
 * everything): answer what can be answered, wake pollers. Call without
 * s->lock. */
void waiters_wake(struct session *s, int kind);
/* Shutdown: every parked read gets err. */
void waiters_fail_all(struct session *s, int err);
/* poll on stdout/stderr/exit/stdin. */
void waiters_poll(struct session *s, fuse_req_t req, struct vfh *fh, struct fuse_pollhandle *ph);

#endif
