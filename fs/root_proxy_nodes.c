/* root/ proxy: the node table, inode numbers, entry replies and errors.
 *
 * Lookup counts. The agent counts lookups per node like passthrough_ll does
 * (every ENTRY reply it sends counts one; FORGET gives them back). The
 * kernel holds exactly the lookups it received in successful entry replies.
 * The proxy mirrors those counts in a node table so that rp_free can return
 * whatever the kernel still held when the mount goes away, and so that
 * rp_invalidate knows which inodes the kernel may have cached. Node 1 (the
 * guest's "/") is special: it is reached through rp_lookup_root, which the
 * agent does not count, so it is never in the table and its forgets are
 * never forwarded.
 *
 * The guest is not trusted: every value it returns that reaches the kernel
 * (node ids, errno values, names in directory listings) is checked, because
 * a bad one would make the kernel reject our reply and leave the caller's
 * request hanging, or make it name an inode of another proxy. */
#include "fs/root_proxy_int.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"

struct rp_node {
	struct u64map_link link; /* key: the guest node id */
	uint64_t nlookup;	 /* lookups the kernel holds (and the agent counted) */
	/* The name it was last handed out under, for rp_invalidate to expire
	 * that dentry. Renames and other hard links are not followed; their
	 * dentries fall back on the 1 s entry timeout. NULL if unknown. */
	uint64_t parent;
	char *name;
	/* The parent before the last change and when it changed, for
	 * rpi_link_depth: the kernel may still resolve through the old place
	 * for a moment (see there). */
	uint64_t old_parent;
	uint64_t moved_ms;
};

static struct rp_node *node_entry(struct u64map_link *l)
{
	return l ? container_of(l, struct rp_node, link) : NULL;
}

/* ---- errors ----------------------------------------------------------- */

/* A dead guest is EIO for the caller. Values outside 0..511 would make the
 * kernel refuse the reply (it accepts -511..0 only) and the request would
 * never end, so a guest that sends such a value gets EIO too. */
int rpi_reply_errno(int err)
{
	int e = -err;
	if (e == 0)
		return 0;
	if (e == ECONNRESET || e < 0 || e >= 512)
		return EIO;
	return e;
}

void rpi_reply_err(fuse_req_t req, int err)
{
	fuse_reply_err(req, rpi_reply_errno(err));
}

/* ---- node table ------------------------------------------------------- */

int rpi_nodes_init(struct root_proxy *rp)
{
	int err = u64map_init(&rp->nodes, 64);
	if (err)
		return err;
	err = vp_mutex_init(&rp->nodes_lock);
	if (err) {
		u64map_destroy(&rp->nodes);
		return -err;
	}
	return 0;
}

void rpi_nodes_fini(struct root_proxy *rp)
{
	/* No forgets: the proxy is freed when its machine is released, and
	 * the pool resets or destroys every released machine, which drops
	 * every node the agent holds. Sending them made rmdir wait on a
	 * guest that does not read its channel (a forget per node, each up
	 * to a call's timeout), and rmdir holds pool/ for every tenant. */
	u64map_for_each_safe(&rp->nodes, it, tmp)
	{
		struct rp_node *e = node_entry(it);
		u64map_remove(&rp->nodes, it);
		free(e->name);
		free(e);
	}
	u64map_destroy(&rp->nodes);
	vp_mutex_destroy(&rp->nodes_lock);
}

/* Records the name an entry was handed out under. Failing to copy it only
 * costs the early expiry of that dentry, so it is not an error; the parent
 * is always recorded, as symlinks below depend on it (rpi_link_depth). */
static void node_set_name(struct rp_node *e, uint64_t parent, const char *name)
{
	if (e->parent != parent) {
		if (e->parent) {
			e->old_parent = e->parent;
			e->moved_ms = clock_mono_ms();
		}
		e->parent = parent;
		free(e->name);
		e->name = NULL;
	}
	if (e->name && strcmp(e->name, name) == 0)
		return;
	free(e->name);
	e->name = strdup(name);
}

/* Counts one lookup of node, handed out as parent/name. */
static int table_add(struct root_proxy *rp, uint64_t node, uint64_t parent, const char *name)
{
	int err = 0;
	vp_mutex_lock(&rp->nodes_lock);
	struct rp_node *e = node_entry(u64map_find(&rp->nodes, node));
	if (e) {
		e->nlookup++;
	} else if ((e = calloc(1, sizeof(*e))) != NULL) {
		e->link.key = node;
		e->nlookup = 1;
		u64map_insert(&rp->nodes, &e->link);
	} else {
		err = -ENOMEM;
	}
	if (e)
		node_set_name(e, parent, name);
	vp_mutex_unlock(&rp->nodes_lock);
	return err;
}

/* Takes back up to n lookups of node; returns how many the table held, which
 * is what may be forwarded to the agent (never more than it counted). */
static uint64_t table_drop(struct root_proxy *rp, uint64_t node, uint64_t n)
{
	uint64_t dropped = 0;
	vp_mutex_lock(&rp->nodes_lock);
	struct rp_node *e = node_entry(u64map_find(&rp->nodes, node));
	if (e) {
		dropped = n < e->nlookup ? n : e->nlookup;
		e->nlookup -= dropped;
		if (e->nlookup == 0)
			u64map_remove(&rp->nodes, &e->link);
		else
			e = NULL;
	}
	vp_mutex_unlock(&rp->nodes_lock);
	if (e) {
		free(e->name);
		free(e);
	}
	return dropped;
}

void rpi_unlookup(struct root_proxy *rp, uint64_t node)
{
	if (node == VP_ROOT_NODE)
		return;
	uint64_t n = table_drop(rp, node, 1);
	if (n)
		vp_fs_forget(rp->client, node, n);
}

void rp_forget(struct root_proxy *rp, fuse_ino_t ino, uint64_t nlookup)
{
	uint64_t node;
	if (rpi_node_of(rp, ino, &node) || node == VP_ROOT_NODE)
		return;
	uint64_t n = table_drop(rp, node, nlookup);
	if (n)
		vp_fs_forget(rp->client, node, n);
}

/* ---- where a node is, for symlinks ----------------------------------- */

/* How long a node's previous parent still counts after it changed: the
 * kernel may resolve through the old place until it has processed our
 * reply (a directory's one dentry moves then), and a non-directory's other
 * dentries (hard links, the old name of a renamed link) stay valid for the
 * entry timeout after their last lookup. Twice that timeout covers both. */
#define MOVE_WINDOW_MS ((uint64_t)(RP_ENTRY_TIMEOUT * 2000))
/* Bounds the walk: a loop of stale parents, or a chain deeper than any
 * path the kernel walks (PATH_MAX / 2 components), is "unknown". */
#define DEPTH_STEPS 4096u
#define DEPTH_UNKNOWN UINT_MAX

static bool moved_lately(const struct rp_node *e, uint64_t now)
{
	return e->old_parent != 0 && now - e->moved_ms < MOVE_WINDOW_MS;
}

/* Levels of dir below the guest's "/", following recorded parents; where a
 * directory moved lately, the smaller of its two places, since the kernel
 * may still have it at either. */
static unsigned dir_depth_locked(const struct root_proxy *rp, uint64_t dir, uint64_t now, unsigned *steps)
{
	unsigned d = 0;
	while (dir != VP_ROOT_NODE) {
		if (*steps == 0)
			return DEPTH_UNKNOWN;
		(*steps)--;
		const struct rp_node *e = node_entry(u64map_find(&rp->nodes, dir));
		if (!e || !e->parent)
			return DEPTH_UNKNOWN;
		d++;
		if (moved_lately(e, now)) {
			unsigned a = dir_depth_locked(rp, e->parent, now, steps);
			unsigned b = dir_depth_locked(rp, e->old_parent, now, steps);
			if (a == DEPTH_UNKNOWN || b == DEPTH_UNKNOWN)
				return DEPTH_UNKNOWN;
			return d + (a < b ? a : b);
		}
		dir = e->parent;
	}
	return d;
}

unsigned rpi_link_depth(struct root_proxy *rp, uint64_t link)
{
	/* Too deep is what lets a link climb out of root/, too shallow only
	 * names another guest file: every doubt gives 0, which no target can
	 * climb above from any real depth. A link that moved lately may be
	 * followed through another of its dentries than the recorded one,
	 * whose depth is not known at all. */
	unsigned steps = DEPTH_STEPS, d = DEPTH_UNKNOWN;
	uint64_t now = clock_mono_ms();
	vp_mutex_lock(&rp->nodes_lock);
	const struct rp_node *e = node_entry(u64map_find(&rp->nodes, link));
	if (e && e->parent && !moved_lately(e, now))
		d = dir_depth_locked(rp, e->parent, now, &steps);
	vp_mutex_unlock(&rp->nodes_lock);
	return d == DEPTH_UNKNOWN ? 0 : d;
}

unsigned rpi_nodes_renamed(struct root_proxy *rp, uint64_t parent, const char *name, uint64_t newparent,
			   const char *newname, bool exchange)
{
	struct rp_node *a = NULL, *b = NULL;
	vp_mutex_lock(&rp->nodes_lock);
	u64map_for_each_safe(&rp->nodes, it, tmp)
	{
		struct rp_node *e = node_entry(it);
		if (!e->name)
			continue;
		if (!a && e->parent == parent && strcmp(e->name, name) == 0)
			a = e;
		else if (exchange && !b && e->parent == newparent && strcmp(e->name, newname) == 0)
			b = e;
	}
	/* Both found before either moves: after the first, the second's
	 * place holds the first. */
	if (a)
		node_set_name(a, newparent, newname);
	if (b)
		node_set_name(b, parent, name);
	vp_mutex_unlock(&rp->nodes_lock);
	return (a ? 1u : 0u) | (b ? 2u : 0u);
}

void rpi_node_moved(struct root_proxy *rp, uint64_t node, uint64_t parent, const char *name)
{
	vp_mutex_lock(&rp->nodes_lock);
	struct rp_node *e = node_entry(u64map_find(&rp->nodes, node));
	if (e)
		node_set_name(e, parent, name);
	vp_mutex_unlock(&rp->nodes_lock);
}

/* ---- inode numbers and attributes ------------------------------------ */

fuse_ino_t rpi_ino_of(const struct root_proxy *rp, uint64_t node)
{
	return (fuse_ino_t)(rp->ino_base | node);
}

/* The daemon routes only our inodes here; anything else is a bug, reported
 * as ESTALE rather than forwarded. */
int rpi_node_of(const struct root_proxy *rp, fuse_ino_t ino, uint64_t *node)
{
	uint64_t n = (uint64_t)ino & RP_NODE_MASK;
	if (((uint64_t)ino & ~RP_NODE_MASK) != rp->ino_base || n == 0)
		return -ESTALE;
	*node = n;
	return 0;
}

void rpi_attr_to_stat(const struct root_proxy *rp, uint64_t node, const struct vp_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = rpi_ino_of(rp, node);
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_rdev = a->rdev;
	/* Sizes beyond off_t cannot be real; clamp rather than wrap negative. */
	st->st_size = a->size > (uint64_t)INT64_MAX ? INT64_MAX : (off_t)a->size;
	st->st_blocks = a->blocks > (uint64_t)INT64_MAX ? INT64_MAX : (blkcnt_t)a->blocks;
	st->st_blksize = a->blksize;
	st->st_atim.tv_sec = a->atime_sec;
	st->st_atim.tv_nsec = a->atime_nsec < 1000000000u ? a->atime_nsec : 0;
	st->st_mtim.tv_sec = a->mtime_sec;
	st->st_mtim.tv_nsec = a->mtime_nsec < 1000000000u ? a->mtime_nsec : 0;
	st->st_ctim.tv_sec = a->ctime_sec;
	st->st_ctim.tv_nsec = a->ctime_nsec < 1000000000u ? a->ctime_nsec : 0;
}

/* Names come from the kernel, which resolves "." and ".." itself and never
 * sends a '/'; the check keeps a daemon bug from walking the guest's tree
 * in ways the kernel did not ask for. */
int rpi_check_name(const char *name)
{
	size_t n = strnlen(name, VP_MAX_NAME + 1);
	if (n > VP_MAX_NAME)
		return -ENAMETOOLONG;
	if (n == 0 || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return -EINVAL;
	return 0;
}

/* ---- entries ---------------------------------------------------------- */

int rpi_adopt_entry(struct root_proxy *rp, uint64_t parent, const char *name, const struct vp_entry *ve,
		    struct fuse_entry_param *e)
{
	uint64_t node = ve->node;
	if (node == 0)
		return -EIO; /* nothing to give back: no such node */
	if (node > RP_NODE_MASK) {
		/* It would alias another proxy's (or the daemon's) inodes. */
		vp_fs_forget(rp->client, node, 1);
		return -EOVERFLOW;
	}
	if (node == VP_ROOT_NODE) {
		/* "/" reached by name (a bind mount of / in the guest): the
		 * kernel will treat it as the root inode, whose lookups are
		 * not counted, so return the agent's count at once. */
		vp_fs_forget(rp->client, node, 1);
	} else {
		int err = table_add(rp, node, parent, name);
		if (err) {
			vp_fs_forget(rp->client, node, 1);
			return err;
		}
	}
	memset(e, 0, sizeof(*e));
	e->ino = rpi_ino_of(rp, node);
	e->generation = 0; /* the agent never reuses node ids */
	e->attr_timeout = RP_ATTR_TIMEOUT;
	e->entry_timeout = RP_ENTRY_TIMEOUT;
	rpi_attr_to_stat(rp, node, &ve->attr, &e->attr);
	return 0;
}

void rpi_reply_entry(struct root_proxy *rp, fuse_req_t req, int err, uint64_t parent, const char *name,
		     const struct vp_entry *ve)
{
	struct fuse_entry_param e;
	if (err == 0)
		err = rpi_adopt_entry(rp, parent, name, ve, &e);
	if (err) {
		rpi_reply_err(req, err);
		return;
	}
	/* A failed reply (request interrupted, mount gone) means the kernel
	 * took no reference. */
	if (fuse_reply_entry(req, &e) != 0)
		rpi_unlookup(rp, ve->node);
}

/* ---- invalidation ----------------------------------------------------- */

/* One known dentry: parent/name, names packed in one buffer. */
struct inval_entry {
	fuse_ino_t parent;
	size_t name_off, name_len;
};

void rp_invalidate(struct root_proxy *rp, struct fuse_session *se)
{
	if (!rp || !se)
		return;
	/* Collect under the lock, notify without it: a notification can wait
	 * on the kernel (a directory's lock), which may be waiting on a
	 * request that needs our lock (a lookup adding to the table). */
	vp_mutex_lock(&rp->nodes_lock);
	size_t n = rp->nodes.count + 1, names_len = 0;
	u64map_for_each_safe(&rp->nodes, it, tmp)
	{
		const struct rp_node *e = node_entry(it);
		if (e->name)
			names_len += strlen(e->name);
	}
	fuse_ino_t *inos = malloc(n * sizeof(*inos));
	struct inval_entry *ents = malloc(n * sizeof(*ents));
	char *names = malloc(names_len + 1);
	size_t ni = 0, ne = 0, off = 0;
	if (inos) {
		inos[ni++] = rp_root_ino(rp);
		u64map_for_each_safe(&rp->nodes, it, tmp)
		{
			const struct rp_node *e = node_entry(it);
			inos[ni++] = rpi_ino_of(rp, e->link.key);
			if (!ents || !names || !e->name)
				continue;
			size_t len = strlen(e->name);
			memcpy(names + off, e->name, len);
			ents[ne++] = (struct inval_entry){ rpi_ino_of(rp, e->parent), off, len };
			off += len;
		}
	}
	vp_mutex_unlock(&rp->nodes_lock);
	/* Entries are only expired, not dropped: the next access looks the
	 * name up again and keeps the dentry if the guest still has the same
	 * node there. Dropping (inval_entry) would also unhash directories in
	 * use, so a process whose cwd is inside root/ would get ENOENT from
	 * getcwd after every command. A kernel without expiry (before 6.2)
	 * answers ENOSYS; the 1 s entry timeout then does the work. ENOENT
	 * (the kernel no longer has the parent or name) is expected. */
	for (size_t i = 0; i < ne; i++) {
		int err = fuse_lowlevel_notify_expire_entry(se, ents[i].parent, names + ents[i].name_off,
							    ents[i].name_len, FUSE_LL_EXPIRE_ONLY);
		if (err == -ENOSYS)
			break;
	}
	/* Attributes and pages; ENOENT again just means already dropped. */
	for (size_t i = 0; i < ni; i++)
		fuse_lowlevel_notify_inval_inode(se, inos[i], 0, 0);
	free(names);
	free(ents);
	free(inos);
}
