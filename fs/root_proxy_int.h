/* root/ proxy internals, shared by the fs/root_proxy*.c files only; the
 * daemon's contract is root_proxy.h. Internal functions are named rpi_*.
 *
 *   root_proxy.c         lifetime (rp_new, rp_free) and the caching policy
 *   root_proxy_nodes.c   node table, inode numbers, entry replies, errors,
 *                        rp_forget, rp_invalidate
 *   root_proxy_lookup.c  lookup, getattr, readlink, statfs, directories
 *   root_proxy_ns.c      mknod, mkdir, symlink, link, unlink, rmdir,
 *                        rename, setattr
 *   root_proxy_file.c    open, create, read, write, flush, release, fsync
 *   root_proxy_wb.c      write-behind: writes answered before the guest
 *                        has them, and the waits that hide it
 *
 * Locks. client and ino_base are set by rp_new and never change.
 *   nodes_lock  the node table: `nodes` and every struct rp_node in it.
 *   wb_lock     the list of open files, each file's regular, inflight and
 *               err, the list of writes in flight and wb_seq; wb_cond is
 *               waited on and broadcast under it.
 * Lock order: the two are never held together. Neither is held across a
 * call into the client (the client's reader thread completes writes under
 * wb_lock, so waiting on the guest under it would deadlock) or across a
 * notification to the kernel (which may wait on a request that needs one). */
#ifndef VMPOOL_ROOT_PROXY_INT_H
#define VMPOOL_ROOT_PROXY_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "fs/root_proxy.h"
#include "lib/list.h"
#include "lib/u64map.h"
#include "proto/client.h"
#include "lib/thread_safety.h"

#define RP_ATTR_TIMEOUT 1.0
#define RP_ENTRY_TIMEOUT 1.0

struct root_proxy {
	struct vp_client *client;
	uint64_t ino_base;
	uid_t own_uid; /* the daemon's: served as guest root, like uid 0 */

	/* rp_counters, counted with relaxed atomics (no lock). */
	uint64_t n_lookups, n_getattrs, n_readdirs, n_readdirplus;

	struct vp_mutex nodes_lock;
	struct u64map nodes GUARDED_BY(nodes_lock); /* struct rp_node by guest node id */

	struct vp_mutex wb_lock;
	pthread_cond_t wb_cond;			    /* a write finished (CLOCK_MONOTONIC) */
	struct list_node files GUARDED_BY(wb_lock); /* struct rp_file, every open file */
	struct list_node wbs GUARDED_BY(wb_lock);   /* struct rp_wb, every write in flight */
	uint64_t wb_seq GUARDED_BY(wb_lock);	    /* seq of the last write sent */
};

/* An open file: fi->fh points to one (directories keep the guest's fh).
 * fh, node and flags never change; the rest is under wb_lock. */
struct rp_file {
	uint64_t fh; /* the guest's handle */
	uint64_t node;
	uint32_t flags;	       /* open flags */
	int8_t regular;	       /* -1 not known yet, 0 no, 1 yes */
	unsigned inflight;     /* its writes in flight */
	int err;	       /* first error of a write already answered (sticky) */
	struct list_node link; /* in root_proxy.files */
};

/* Counts one agent round trip in one of the n_* counters. */
static inline void rpi_count(uint64_t *counter)
{
	__atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

/* ---- root_proxy_nodes.c ---------------------------------------------- */

int rpi_nodes_init(struct root_proxy *rp);
/* Returns every lookup the table still holds to the agent (if the channel
 * is alive) and frees the table. */
void rpi_nodes_fini(struct root_proxy *rp);

/* A positive errno for fuse_reply_err from 0 or -errno; anything the
 * kernel would refuse, and a dead guest, become EIO. */
int rpi_reply_errno(int err);
void rpi_reply_err(fuse_req_t req, int err);

fuse_ino_t rpi_ino_of(const struct root_proxy *rp, uint64_t node);
/* The guest node of one of our FUSE inodes; -ESTALE for any other. */
int rpi_node_of(const struct root_proxy *rp, fuse_ino_t ino, uint64_t *node);
void rpi_attr_to_stat(const struct root_proxy *rp, uint64_t node, const struct vp_attr *a, struct stat *st);
/* 0, or -EINVAL/-ENAMETOOLONG for a name that is not one path component. */
int rpi_check_name(const char *name);
/* The requests this thread sends next carry req's caller, mapped to guest
 * ids (root_proxy.c); vp_fs_clear_caller() right after them. */
void rpi_as_caller(const struct root_proxy *rp, fuse_req_t req);

/* Takes over the lookup the agent counted for ve, found as parent/name,
 * and fills e. On failure the lookup has been given back. */
int rpi_adopt_entry(struct root_proxy *rp, uint64_t parent, const char *name, const struct vp_entry *ve,
		    struct fuse_entry_param *e);
/* Replies with the entry the agent just counted as parent/name, or with
 * err; gives the lookup back if the kernel did not take it. */
void rpi_reply_entry(struct root_proxy *rp, fuse_req_t req, int err, uint64_t parent, const char *name,
		     const struct vp_entry *ve);
/* Gives one lookup back to the table and the agent: for an entry the
 * kernel never got. */
void rpi_unlookup(struct root_proxy *rp, uint64_t node);

/* Levels below the guest's "/" of the directory a symlink node was found
 * in, as a lower bound of where the kernel resolves it: 0 when unsure. */
unsigned rpi_link_depth(struct root_proxy *rp, uint64_t link);
/* Moves the table's record of parent/name to newparent/newname after a
 * rename through root/ (and the other way too for RENAME_EXCHANGE).
 * Returns bit 0 if the first was found, bit 1 the second. */
unsigned rpi_nodes_renamed(struct root_proxy *rp, uint64_t parent, const char *name, uint64_t newparent,
			   const char *newname, bool exchange);
/* Records that node is now parent/name, if the table holds it. */
void rpi_node_moved(struct root_proxy *rp, uint64_t node, uint64_t parent, const char *name);

/* ---- root_proxy_wb.c ------------------------------------------------- */

int rpi_wb_init(struct root_proxy *rp);
/* Waits for every write in flight, then frees the files the kernel never
 * released through us and the write-behind state. */
void rpi_wb_fini(struct root_proxy *rp);

/* Each waits for writes sent before the call: of the node; of every node;
 * of the node overlapping [off, end). */
void rpi_wb_wait_node(struct root_proxy *rp, uint64_t node);
void rpi_wb_wait_all(struct root_proxy *rp);
void rpi_wb_wait_range(struct root_proxy *rp, uint64_t node, uint64_t off, uint64_t end);
/* Waits for the file's writes; returns its sticky error (0 or -errno). */
int rpi_wb_wait_file(struct root_proxy *rp, struct rp_file *f);

/* Whether writes through f may go behind (asks the guest once). */
bool rpi_wb_usable(struct root_proxy *rp, struct rp_file *f);
/* Sends the write behind and replies to req. */
void rpi_wb_write(struct root_proxy *rp, fuse_req_t req, struct rp_file *f, const char *buf, size_t size,
		  uint64_t off);

/* ---- root_proxy_file.c ----------------------------------------------- */

static inline struct rp_file *rpi_file_of(const struct fuse_file_info *fi)
{
	return (struct rp_file *)(uintptr_t)fi->fh;
}

#endif
