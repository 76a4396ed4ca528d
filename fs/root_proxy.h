/* root/ of one machine: FUSE low-level operations proxied to the guest agent
 * like sshfs proxies SFTP.
 *
 * FUSE inode numbers of a proxy are ino_base | guest_node (guest nodes are
 * < 2^40, node 1 is the guest's "/"); the daemon routes an inode to its
 * proxy by its high bits. With ino_base = 0 the guest "/" is FUSE_ROOT_ID,
 * which lets a test harness mount one proxy on its own.
 *
 * Every rp_* request function replies to req exactly once (or, for forget,
 * never, as FUSE requires). The proxy keeps its own lookup counts so that
 * rp_free can forget everything and rp_invalidate can drop the kernel's
 * caches of every inode it handed out. Thread-safe. */
#ifndef VMPOOL_ROOT_PROXY_H
#define VMPOOL_ROOT_PROXY_H

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <stdint.h>

struct vp_client;
struct root_proxy;

#define RP_NODE_BITS 40
#define RP_NODE_MASK ((UINT64_C(1) << RP_NODE_BITS) - 1)

int rp_new(struct vp_client *client, uint64_t ino_base, struct root_proxy **out);
void rp_free(struct root_proxy *rp);

/* Agent round trips the proxy made for the kernel's requests of each kind
 * since rp_new (monotonic; read without locks, each value on its own). */
struct rp_counters {
	uint64_t lookups;     /* LOOKUP: one per kernel lookup of a name */
	uint64_t getattrs;    /* GETATTR */
	uint64_t readdirs;    /* READDIR (names only) */
	uint64_t readdirplus; /* READDIRPLUS: one per kernel readdirplus */
};
void rp_get_counters(const struct root_proxy *rp, struct rp_counters *c);
/* The FUSE inode of the guest's "/". */
fuse_ino_t rp_root_ino(const struct root_proxy *rp);
/* Drop attribute, entry and page caches of every inode handed out (after a
 * command ends). Must not be called from a thread serving a FUSE request
 * that holds a lock the kernel may wait on; returns at once on NULL se. */
void rp_invalidate(struct root_proxy *rp, struct fuse_session *se);

/* Reply to a lookup of the root/ entry itself (under pool/NAME), without
 * asking the guest (attributes that expire at once: GETATTR asks). */
void rp_lookup_root(struct root_proxy *rp, fuse_req_t req);

void rp_lookup(struct root_proxy *rp, fuse_req_t req, fuse_ino_t parent, const char *name);
void rp_forget(struct root_proxy *rp, fuse_ino_t ino, uint64_t nlookup);
void rp_getattr(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void rp_setattr(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		struct fuse_file_info *fi);
void rp_readlink(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino);
void rp_mknod(struct root_proxy *rp, fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	      dev_t rdev);
void rp_mkdir(struct root_proxy *rp, fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void rp_unlink(struct root_proxy *rp, fuse_req_t req, fuse_ino_t parent, const char *name);
void rp_rmdir(struct root_proxy *rp, fuse_req_t req, fuse_ino_t parent, const char *name);
void rp_symlink(struct root_proxy *rp, fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
void rp_rename(struct root_proxy *rp, fuse_req_t req, fuse_ino_t parent, const char *name,
	       fuse_ino_t newparent, const char *newname, unsigned int flags);
void rp_link(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
void rp_open(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void rp_create(struct root_proxy *rp, fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	       struct fuse_file_info *fi);
void rp_read(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	     struct fuse_file_info *fi);
void rp_write(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
	      struct fuse_file_info *fi);
void rp_flush(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void rp_release(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void rp_fsync(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void rp_opendir(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void rp_readdir(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi);
void rp_readdirplus(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi);
void rp_releasedir(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void rp_fsyncdir(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, int datasync,
		 struct fuse_file_info *fi);
void rp_statfs(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino);

#endif
