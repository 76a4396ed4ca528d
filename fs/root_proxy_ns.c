/* root/ proxy: operations that change the guest's namespace or a node's
 * attributes. Those that make a node answer with an entry the agent counted
 * (root_proxy_nodes.c takes it over); the rest answer with an errno. */
#include "fs/root_proxy_int.h"

#include <errno.h>
#include <stdio.h> /* RENAME_EXCHANGE */
#include <string.h>

void rp_mknod(struct root_proxy *rp, fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	      dev_t rdev)
{
	uint64_t p = 0;
	struct vp_entry ve;
	int err = rpi_node_of(rp, parent, &p);
	if (!err)
		err = rpi_check_name(name);
	if (!err && rdev > UINT32_MAX)
		err = -EOVERFLOW; /* the protocol carries a 32-bit rdev */
	if (!err) {
		rpi_as_caller(rp, req);
		err = vp_fs_mknod(rp->client, p, name, mode, (uint32_t)rdev, &ve);
		vp_fs_clear_caller();
	}
	rpi_reply_entry(rp, req, err, p, name, &ve);
}

void rp_mkdir(struct root_proxy *rp, fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	uint64_t p = 0;
	struct vp_entry ve;
	int err = rpi_node_of(rp, parent, &p);
	if (!err)
		err = rpi_check_name(name);
	if (!err) {
		rpi_as_caller(rp, req);
		err = vp_fs_mkdir(rp->client, p, name, mode, &ve);
		vp_fs_clear_caller();
	}
	rpi_reply_entry(rp, req, err, p, name, &ve);
}

void rp_symlink(struct root_proxy *rp, fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	uint64_t p = 0;
	struct vp_entry ve;
	int err = rpi_node_of(rp, parent, &p);
	if (!err)
		err = rpi_check_name(name);
	if (!err && strnlen(link, VP_MAX_PATH) >= VP_MAX_PATH)
		err = -ENAMETOOLONG;
	if (!err) {
		rpi_as_caller(rp, req);
		err = vp_fs_symlink(rp->client, p, name, link, &ve);
		vp_fs_clear_caller();
	}
	rpi_reply_entry(rp, req, err, p, name, &ve);
}

void rp_link(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	uint64_t node = 0, p = 0;
	struct vp_entry ve;
	int err = rpi_node_of(rp, ino, &node);
	if (!err)
		err = rpi_node_of(rp, newparent, &p);
	if (!err)
		err = rpi_check_name(newname);
	if (!err) {
		rpi_as_caller(rp, req);
		err = vp_fs_link(rp->client, node, p, newname, &ve);
		vp_fs_clear_caller();
	}
	rpi_reply_entry(rp, req, err, p, newname, &ve);
}

/* unlink and rmdir: the same checks, another call. */
static void remove_name(struct root_proxy *rp, fuse_req_t req, fuse_ino_t parent, const char *name,
			int (*call)(struct vp_client *, uint64_t, const char *))
{
	uint64_t p = 0;
	int err = rpi_node_of(rp, parent, &p);
	if (!err)
		err = rpi_check_name(name);
	if (!err) {
		rpi_as_caller(rp, req);
		err = call(rp->client, p, name);
		vp_fs_clear_caller();
	}
	rpi_reply_err(req, err);
}

void rp_unlink(struct root_proxy *rp, fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_name(rp, req, parent, name, vp_fs_unlink);
}

void rp_rmdir(struct root_proxy *rp, fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_name(rp, req, parent, name, vp_fs_rmdir);
}

/* Records a node the agent now has at parent/name as moved there, asking
 * the agent which node that is: for a rename whose source the table did not
 * know by that name (a name it failed to copy, a guest rename meanwhile). */
static void lookup_moved(struct root_proxy *rp, uint64_t parent, const char *name)
{
	struct vp_entry ve;
	if (vp_fs_lookup(rp->client, parent, name, &ve) != 0)
		return;
	rpi_node_moved(rp, ve.node, parent, name);
	vp_fs_forget(rp->client, ve.node, 1);
}

/* The kernel moves its dentry on our reply; the table must follow, or
 * symlinks below a directory moved up would be presented with more ".."
 * than the kernel's path has, climbing out of root/. */
static void note_rename(struct root_proxy *rp, uint64_t p, const char *name, uint64_t np, const char *newname,
			unsigned int flags)
{
	bool exchange = (flags & RENAME_EXCHANGE) != 0;
	unsigned found = rpi_nodes_renamed(rp, p, name, np, newname, exchange);
	if (!(found & 1))
		lookup_moved(rp, np, newname);
	if (exchange && !(found & 2))
		lookup_moved(rp, p, name);
}

void rp_rename(struct root_proxy *rp, fuse_req_t req, fuse_ino_t parent, const char *name,
	       fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	uint64_t p, np;
	int err = rpi_node_of(rp, parent, &p);
	if (!err)
		err = rpi_node_of(rp, newparent, &np);
	if (!err)
		err = rpi_check_name(name);
	if (!err)
		err = rpi_check_name(newname);
	/* RENAME_NOREPLACE / EXCHANGE / WHITEOUT go through: the agent uses
	 * renameat2, and the guest kernel judges what its fs supports. */
	if (!err) {
		rpi_as_caller(rp, req);
		err = vp_fs_rename(rp->client, p, name, np, newname, flags);
		vp_fs_clear_caller();
	}
	if (!err)
		note_rename(rp, p, name, np, newname, flags);
	rpi_reply_err(req, err);
}

void rp_setattr(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		struct fuse_file_info *fi)
{
	struct vp_setattr s;
	memset(&s, 0, sizeof(s));
	int err = rpi_node_of(rp, ino, &s.node);
	if (err) {
		rpi_reply_err(req, err);
		return;
	}
	/* ftruncate and futimens on an open file act on its handle, which
	 * still works after the name is gone (unlinked but open). */
	s.fh = fi ? rpi_file_of(fi)->fh : 0;
	/* A truncate (or chmod away of write permission...) must not be
	 * overtaken by writes answered before it. */
	rpi_wb_wait_node(rp, s.node);
	if (to_set & FUSE_SET_ATTR_MODE) {
		s.valid |= VP_SET_MODE;
		s.mode = attr->st_mode;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		s.valid |= VP_SET_UID;
		s.uid = attr->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		s.valid |= VP_SET_GID;
		s.gid = attr->st_gid;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (attr->st_size < 0) {
			rpi_reply_err(req, -EINVAL);
			return;
		}
		s.valid |= VP_SET_SIZE;
		s.size = (uint64_t)attr->st_size;
	}
	/* The kernel sets ATIME together with ATIME_NOW and fills in its own
	 * clock; send both so the guest uses its own "now" (UTIME_NOW), with
	 * the kernel's time as a fallback value that is never the epoch. */
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW)) {
		s.valid |= VP_SET_ATIME;
		if (to_set & FUSE_SET_ATTR_ATIME_NOW)
			s.valid |= VP_SET_ATIME_NOW;
		s.atime_sec = attr->st_atim.tv_sec;
		s.atime_nsec = (uint32_t)attr->st_atim.tv_nsec;
	}
	if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) {
		s.valid |= VP_SET_MTIME;
		if (to_set & FUSE_SET_ATTR_MTIME_NOW)
			s.valid |= VP_SET_MTIME_NOW;
		s.mtime_sec = attr->st_mtim.tv_sec;
		s.mtime_nsec = (uint32_t)attr->st_mtim.tv_nsec;
	}
	/* FUSE_SET_ATTR_CTIME (sent along with other changes) has no
	 * counterpart: ctime follows any change in the guest by itself. */
	struct vp_attr a;
	rpi_as_caller(rp, req);
	err = vp_fs_setattr(rp->client, &s, &a);
	vp_fs_clear_caller();
	if (err) {
		rpi_reply_err(req, err);
		return;
	}
	struct stat st;
	rpi_attr_to_stat(rp, s.node, &a, &st);
	fuse_reply_attr(req, &st, RP_ATTR_TIMEOUT);
}
