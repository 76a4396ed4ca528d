/* root/ proxy: FUSE low-level operations forwarded to the guest agent's file
 * operations (DESIGN §1 root/). See root_proxy.h for the contract.
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
 * (node ids, errno values, names in directory listings) is checked here,
 * because a bad one would make the kernel reject our reply and leave the
 * caller's request hanging, or make it name an inode of another proxy.
 *
 * Caching. Entries and attributes live 1 s; lookups that fail are not
 * cached (no negative entries) so a file a command creates shows up at once.
 * Page cache is dropped on every open (no keep_cache); write-only opens
 * bypass it (direct I/O, see write_only). rp_invalidate (after
 * a command) drops attributes and pages of every inode handed out and
 * expires the dentry each was last handed out under, so changes a command
 * made are seen at once. A regular file the
 * guest reports with size 0 is opened with direct_io: that is what procfs
 * (and debugfs, configfs, ...) files look like, and with the page cache the
 * kernel would never read past the size it believes. Deciding by size
 * rather than by path keeps the proxy node based (it never knows paths) and
 * also covers such filesystems mounted anywhere; sysfs files (size 4096)
 * need nothing special because a short read already ends them. */
#include "root_proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "proto/client.h"

#define RP_ATTR_TIMEOUT 1.0
#define RP_ENTRY_TIMEOUT 1.0
/* Write-behind: WRITE frames in flight per open handle. Two keep the guest
 * writing one while the next crosses FUSE and the channel; 4 and 8 were
 * slower on 2 cores (dd of 256 MiB, interleaved: 2.5x sshfs with 2, 2.0x
 * with 4, 2.2x with 8), as more 1 MiB buffers queue in the channel. */
#define RP_WB_MAX 2
/* How long anything waits for in-flight writes before the guest counts as
 * stuck (the client's own default timeout for a call). */
#define RP_WB_TIMEOUT_S 60

struct rp_node {
	uint64_t node;
	uint64_t nlookup; /* lookups the kernel holds (and the agent counted) */
	/* The name it was last handed out under, for rp_invalidate to expire
	 * that dentry. Renames and other hard links are not followed; their
	 * dentries fall back on the 1 s entry timeout. NULL if unknown. */
	uint64_t parent;
	char *name;
	struct rp_node *next;
};

/* An open file: fi->fh points to one (directories keep the guest's fh). */
struct rp_file {
	uint64_t fh;   /* the guest's handle */
	uint64_t node;
	uint32_t flags;    /* open flags */
	int8_t regular;    /* -1 not known yet, 0 no, 1 yes */
	unsigned inflight; /* its writes in flight */
	int err;           /* first error of a write already answered (sticky) */
	struct rp_file *prev, *next;
};

/* One WRITE in flight, answered to the kernel already. */
struct rp_wb {
	struct root_proxy *rp;
	struct rp_file *f;
	uint64_t node, off, end, seq;
	uint32_t size;
	struct rp_wb *prev, *next;
};

struct root_proxy {
	struct vp_client *client;
	uint64_t ino_base;
	pthread_mutex_t lock; /* guards the node table */
	struct rp_node **buckets;
	size_t nbuckets; /* power of two */
	size_t count;
	/* Write-behind state: every open file and every write in flight. The
	 * reader thread of the client completes writes under wb_lock, so
	 * nothing that blocks is ever done under it. */
	pthread_mutex_t wb_lock;
	pthread_cond_t wb_cond; /* a write finished */
	struct rp_file *files;
	struct rp_wb *wbs;
	uint64_t wb_seq;
};

static struct rp_file *file_of(const struct fuse_file_info *fi);
static void wb_wait_node(struct root_proxy *rp, uint64_t node);
static void wb_wait_all(struct root_proxy *rp);

/* ---- errors ----------------------------------------------------------- */

/* A positive errno for fuse_reply_err (0: success). A dead guest is EIO
 * for the caller (DESIGN §1 "Errors"). Values outside 0..511 would make the
 * kernel refuse the reply (it accepts -511..0 only) and the request would
 * never end, so a guest that sends such a value gets EIO too. */
static int reply_errno(int err)
{
	int e = -err;
	if (e == 0)
		return 0;
	if (e == ECONNRESET || e < 0 || e >= 512)
		return EIO;
	return e;
}

static void reply_err(fuse_req_t req, int err)
{
	fuse_reply_err(req, reply_errno(err));
}

/* ---- node table ------------------------------------------------------- */

static size_t bucket_of(const struct root_proxy *rp, uint64_t node)
{
	/* Node ids are mostly small and sequential; a multiplicative hash
	 * spreads them over the table's high bits. */
	uint64_t h = node * UINT64_C(0x9E3779B97F4A7C15);
	return (size_t)(h >> 32) & (rp->nbuckets - 1);
}

static int table_grow(struct root_proxy *rp)
{
	size_t n = rp->nbuckets * 2;
	struct rp_node **b = calloc(n, sizeof(*b));
	if (!b)
		return -ENOMEM;
	struct rp_node **old = rp->buckets;
	size_t oldn = rp->nbuckets;
	rp->buckets = b;
	rp->nbuckets = n;
	for (size_t i = 0; i < oldn; i++) {
		struct rp_node *e = old[i];
		while (e) {
			struct rp_node *next = e->next;
			size_t k = bucket_of(rp, e->node);
			e->next = b[k];
			b[k] = e;
			e = next;
		}
	}
	free(old);
	return 0;
}

/* Records the name an entry was handed out under. Failing to copy it only
 * costs the early expiry of that dentry, so it is not an error. */
static void node_set_name(struct rp_node *e, uint64_t parent, const char *name)
{
	if (e->name && e->parent == parent && strcmp(e->name, name) == 0)
		return;
	char *copy = strdup(name);
	if (!copy)
		return;
	free(e->name);
	e->name = copy;
	e->parent = parent;
}

/* Counts one lookup of node, handed out as parent/name. Caller holds the lock. */
static int table_add_locked(struct root_proxy *rp, uint64_t node, uint64_t parent, const char *name)
{
	size_t k = bucket_of(rp, node);
	for (struct rp_node *e = rp->buckets[k]; e; e = e->next) {
		if (e->node == node) {
			e->nlookup++;
			node_set_name(e, parent, name);
			return 0;
		}
	}
	if (rp->count >= rp->nbuckets && table_grow(rp) == 0)
		k = bucket_of(rp, node);
	struct rp_node *e = malloc(sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->node = node;
	e->nlookup = 1;
	e->name = NULL;
	node_set_name(e, parent, name);
	e->next = rp->buckets[k];
	rp->buckets[k] = e;
	rp->count++;
	return 0;
}

/* Takes back up to n lookups of node; returns how many the table held, which
 * is what may be forwarded to the agent (never more than it counted). */
static uint64_t table_drop(struct root_proxy *rp, uint64_t node, uint64_t n)
{
	uint64_t dropped = 0;
	pthread_mutex_lock(&rp->lock);
	size_t k = bucket_of(rp, node);
	for (struct rp_node **pp = &rp->buckets[k]; *pp; pp = &(*pp)->next) {
		struct rp_node *e = *pp;
		if (e->node != node)
			continue;
		dropped = n < e->nlookup ? n : e->nlookup;
		e->nlookup -= dropped;
		if (e->nlookup == 0) {
			*pp = e->next;
			free(e->name);
			free(e);
			rp->count--;
		}
		break;
	}
	pthread_mutex_unlock(&rp->lock);
	return dropped;
}

/* Gives one lookup back to both the table and the agent: used when the
 * kernel never got an entry we had counted (reply failed or interrupted). */
static void unlookup(struct root_proxy *rp, uint64_t node)
{
	if (node == VP_ROOT_NODE)
		return;
	uint64_t n = table_drop(rp, node, 1);
	if (n)
		vp_fs_forget(rp->client, node, n);
}

/* ---- inode numbers and attributes ------------------------------------ */

static fuse_ino_t ino_of(const struct root_proxy *rp, uint64_t node)
{
	return (fuse_ino_t)(rp->ino_base | node);
}

/* The guest node of a FUSE inode. The daemon routes only our inodes here;
 * anything else is a bug, reported as ESTALE rather than forwarded. */
static int node_of(const struct root_proxy *rp, fuse_ino_t ino, uint64_t *node)
{
	uint64_t n = (uint64_t)ino & RP_NODE_MASK;
	if (((uint64_t)ino & ~RP_NODE_MASK) != rp->ino_base || n == 0)
		return -ESTALE;
	*node = n;
	return 0;
}

static void attr_to_stat(const struct root_proxy *rp, uint64_t node, const struct vp_attr *a,
			 struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino_of(rp, node);
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

/* Takes ownership of the lookup the agent counted for ve, found as
 * parent/name: records it in the table and fills e. On failure the lookup
 * has been given back. */
static int adopt_entry(struct root_proxy *rp, uint64_t parent, const char *name, const struct vp_entry *ve,
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
		pthread_mutex_lock(&rp->lock);
		int err = table_add_locked(rp, node, parent, name);
		pthread_mutex_unlock(&rp->lock);
		if (err) {
			vp_fs_forget(rp->client, node, 1);
			return err;
		}
	}
	memset(e, 0, sizeof(*e));
	e->ino = ino_of(rp, node);
	e->generation = 0; /* the agent never reuses node ids */
	e->attr_timeout = RP_ATTR_TIMEOUT;
	e->entry_timeout = RP_ENTRY_TIMEOUT;
	attr_to_stat(rp, node, &ve->attr, &e->attr);
	return 0;
}

/* Replies with an entry the agent just counted as parent/name, or with the
 * error. */
static void reply_entry(struct root_proxy *rp, fuse_req_t req, int err, uint64_t parent, const char *name,
			const struct vp_entry *ve)
{
	struct fuse_entry_param e;
	if (err == 0)
		err = adopt_entry(rp, parent, name, ve, &e);
	if (err) {
		reply_err(req, err);
		return;
	}
	/* A failed reply (request interrupted, mount gone) means the kernel
	 * took no reference. */
	if (fuse_reply_entry(req, &e) != 0)
		unlookup(rp, ve->node);
}

/* Names come from the kernel, which resolves "." and ".." itself and never
 * sends a '/'; the check keeps a daemon bug from walking the guest's tree
 * in ways the kernel did not ask for. */
static int check_name(const char *name)
{
	size_t n = strnlen(name, VP_MAX_NAME + 1);
	if (n > VP_MAX_NAME)
		return -ENAMETOOLONG;
	if (n == 0 || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return -EINVAL;
	return 0;
}

/* ---- lifetime --------------------------------------------------------- */

int rp_new(struct vp_client *client, uint64_t ino_base, struct root_proxy **out)
{
	*out = NULL;
	if (!client || (ino_base & RP_NODE_MASK) != 0)
		return -EINVAL;
	struct root_proxy *rp = calloc(1, sizeof(*rp));
	if (!rp)
		return -ENOMEM;
	rp->nbuckets = 64;
	rp->buckets = calloc(rp->nbuckets, sizeof(*rp->buckets));
	if (!rp->buckets) {
		free(rp);
		return -ENOMEM;
	}
	int err = pthread_mutex_init(&rp->lock, NULL);
	if (err) {
		free(rp->buckets);
		free(rp);
		return -err;
	}
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&rp->wb_lock, NULL);
	err = pthread_cond_init(&rp->wb_cond, &ca);
	pthread_condattr_destroy(&ca);
	if (err) {
		pthread_mutex_destroy(&rp->wb_lock);
		pthread_mutex_destroy(&rp->lock);
		free(rp->buckets);
		free(rp);
		return -err;
	}
	rp->client = client;
	rp->ino_base = ino_base;
	*out = rp;
	return 0;
}

void rp_free(struct root_proxy *rp)
{
	if (!rp)
		return;
	/* Writes still in flight call back into rp: wait for them. Files the
	 * kernel never released through us (the machine went away under
	 * them) are freed here; the kernel's later RELEASE does not reach
	 * this proxy any more. */
	wb_wait_all(rp);
	for (struct rp_file *f = rp->files, *next; f; f = next) {
		next = f->next;
		free(f);
	}
	pthread_cond_destroy(&rp->wb_cond);
	pthread_mutex_destroy(&rp->wb_lock);
	/* A dead channel would fail each forget anyway; skip the calls. */
	bool alive = vp_client_alive(rp->client);
	for (size_t i = 0; i < rp->nbuckets; i++) {
		struct rp_node *e = rp->buckets[i];
		while (e) {
			struct rp_node *next = e->next;
			if (alive)
				vp_fs_forget(rp->client, e->node, e->nlookup);
			free(e->name);
			free(e);
			e = next;
		}
	}
	free(rp->buckets);
	pthread_mutex_destroy(&rp->lock);
	free(rp);
}

fuse_ino_t rp_root_ino(const struct root_proxy *rp)
{
	return ino_of(rp, VP_ROOT_NODE);
}

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
	pthread_mutex_lock(&rp->lock);
	size_t n = rp->count + 1, names_len = 0;
	for (size_t i = 0; i < rp->nbuckets; i++)
		for (struct rp_node *e = rp->buckets[i]; e; e = e->next)
			if (e->name)
				names_len += strlen(e->name);
	fuse_ino_t *inos = malloc(n * sizeof(*inos));
	struct inval_entry *ents = malloc(n * sizeof(*ents));
	char *names = malloc(names_len + 1);
	size_t ni = 0, ne = 0, off = 0;
	if (inos) {
		inos[ni++] = rp_root_ino(rp);
		for (size_t i = 0; i < rp->nbuckets; i++) {
			for (struct rp_node *e = rp->buckets[i]; e; e = e->next) {
				inos[ni++] = ino_of(rp, e->node);
				if (!ents || !names || !e->name)
					continue;
				size_t len = strlen(e->name);
				memcpy(names + off, e->name, len);
				ents[ne++] = (struct inval_entry){ino_of(rp, e->parent), off, len};
				off += len;
			}
		}
	}
	pthread_mutex_unlock(&rp->lock);
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

/* ---- names ------------------------------------------------------------ */

void rp_lookup_root(struct root_proxy *rp, fuse_req_t req)
{
	struct vp_attr a;
	int err = vp_fs_getattr(rp->client, VP_ROOT_NODE, &a);
	if (err) {
		reply_err(req, err);
		return;
	}
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = rp_root_ino(rp);
	e.attr_timeout = RP_ATTR_TIMEOUT;
	e.entry_timeout = RP_ENTRY_TIMEOUT;
	attr_to_stat(rp, VP_ROOT_NODE, &a, &e.attr);
	/* Not counted: the root's forgets are ignored (see top comment). */
	fuse_reply_entry(req, &e);
}

void rp_lookup(struct root_proxy *rp, fuse_req_t req, fuse_ino_t parent, const char *name)
{
	uint64_t p = 0;
	struct vp_entry ve;
	int err = node_of(rp, parent, &p);
	if (!err)
		err = check_name(name);
	if (!err)
		err = vp_fs_lookup(rp->client, p, name, &ve);
	/* ENOENT goes back as an error, not as a negative entry with a
	 * timeout, so the name is looked up again next time. */
	reply_entry(rp, req, err, p, name, &ve);
}

void rp_forget(struct root_proxy *rp, fuse_ino_t ino, uint64_t nlookup)
{
	uint64_t node;
	if (node_of(rp, ino, &node) || node == VP_ROOT_NODE)
		return;
	uint64_t n = table_drop(rp, node, nlookup);
	if (n)
		vp_fs_forget(rp->client, node, n);
}

void rp_mknod(struct root_proxy *rp, fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	      dev_t rdev)
{
	uint64_t p = 0;
	struct vp_entry ve;
	int err = node_of(rp, parent, &p);
	if (!err)
		err = check_name(name);
	if (!err && rdev > UINT32_MAX)
		err = -EOVERFLOW; /* the protocol carries a 32-bit rdev */
	if (!err)
		err = vp_fs_mknod(rp->client, p, name, mode, (uint32_t)rdev, &ve);
	reply_entry(rp, req, err, p, name, &ve);
}

void rp_mkdir(struct root_proxy *rp, fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	uint64_t p = 0;
	struct vp_entry ve;
	int err = node_of(rp, parent, &p);
	if (!err)
		err = check_name(name);
	if (!err)
		err = vp_fs_mkdir(rp->client, p, name, mode, &ve);
	reply_entry(rp, req, err, p, name, &ve);
}

void rp_symlink(struct root_proxy *rp, fuse_req_t req, const char *link, fuse_ino_t parent,
		const char *name)
{
	uint64_t p = 0;
	struct vp_entry ve;
	int err = node_of(rp, parent, &p);
	if (!err)
		err = check_name(name);
	if (!err && strnlen(link, VP_MAX_PATH) >= VP_MAX_PATH)
		err = -ENAMETOOLONG;
	if (!err)
		err = vp_fs_symlink(rp->client, p, name, link, &ve);
	reply_entry(rp, req, err, p, name, &ve);
}

void rp_link(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
	     const char *newname)
{
	uint64_t node = 0, p = 0;
	struct vp_entry ve;
	int err = node_of(rp, ino, &node);
	if (!err)
		err = node_of(rp, newparent, &p);
	if (!err)
		err = check_name(newname);
	if (!err)
		err = vp_fs_link(rp->client, node, p, newname, &ve);
	reply_entry(rp, req, err, p, newname, &ve);
}

/* unlink and rmdir: the same checks, another call. */
static void remove_name(struct root_proxy *rp, fuse_req_t req, fuse_ino_t parent, const char *name,
			int (*call)(struct vp_client *, uint64_t, const char *))
{
	uint64_t p = 0;
	int err = node_of(rp, parent, &p);
	if (!err)
		err = check_name(name);
	if (!err)
		err = call(rp->client, p, name);
	reply_err(req, err);
}

void rp_unlink(struct root_proxy *rp, fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_name(rp, req, parent, name, vp_fs_unlink);
}

void rp_rmdir(struct root_proxy *rp, fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_name(rp, req, parent, name, vp_fs_rmdir);
}

void rp_rename(struct root_proxy *rp, fuse_req_t req, fuse_ino_t parent, const char *name,
	       fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	uint64_t p, np;
	int err = node_of(rp, parent, &p);
	if (!err)
		err = node_of(rp, newparent, &np);
	if (!err)
		err = check_name(name);
	if (!err)
		err = check_name(newname);
	/* RENAME_NOREPLACE / EXCHANGE / WHITEOUT go through: the agent uses
	 * renameat2, and the guest kernel judges what its fs supports. */
	if (!err)
		err = vp_fs_rename(rp->client, p, name, np, newname, flags);
	reply_err(req, err);
}

/* ---- attributes ------------------------------------------------------- */

void rp_getattr(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi; /* the protocol has no handle-based getattr; the node is enough */
	uint64_t node;
	struct vp_attr a;
	int err = node_of(rp, ino, &node);
	if (!err) {
		wb_wait_node(rp, node); /* sizes and mtimes of writes answered already */
		err = vp_fs_getattr(rp->client, node, &a);
	}
	if (err) {
		reply_err(req, err);
		return;
	}
	struct stat st;
	attr_to_stat(rp, node, &a, &st);
	fuse_reply_attr(req, &st, RP_ATTR_TIMEOUT);
}

void rp_setattr(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		struct fuse_file_info *fi)
{
	struct vp_setattr s;
	memset(&s, 0, sizeof(s));
	int err = node_of(rp, ino, &s.node);
	if (err) {
		reply_err(req, err);
		return;
	}
	/* ftruncate and futimens on an open file act on its handle, which
	 * still works after the name is gone (unlinked but open). */
	s.fh = fi ? file_of(fi)->fh : 0;
	/* A truncate (or chmod away of write permission...) must not be
	 * overtaken by writes answered before it. */
	wb_wait_node(rp, s.node);
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
			reply_err(req, -EINVAL);
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
	err = vp_fs_setattr(rp->client, &s, &a);
	if (err) {
		reply_err(req, err);
		return;
	}
	struct stat st;
	attr_to_stat(rp, s.node, &a, &st);
	fuse_reply_attr(req, &st, RP_ATTR_TIMEOUT);
}

void rp_readlink(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino)
{
	uint64_t node;
	char buf[VP_MAX_PATH + 1];
	int err = node_of(rp, ino, &node);
	if (!err)
		err = vp_fs_readlink(rp->client, node, buf, sizeof(buf));
	if (err) {
		reply_err(req, err);
		return;
	}
	fuse_reply_readlink(req, buf);
}

void rp_statfs(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino)
{
	uint64_t node;
	struct vp_statfs f;
	int err = node_of(rp, ino, &node);
	if (!err)
		err = vp_fs_statfs(rp->client, node, &f);
	if (err) {
		reply_err(req, err);
		return;
	}
	struct statvfs sv;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = f.bsize;
	sv.f_frsize = f.frsize ? f.frsize : f.bsize;
	sv.f_blocks = f.blocks;
	sv.f_bfree = f.bfree;
	sv.f_bavail = f.bavail;
	sv.f_files = f.files;
	sv.f_ffree = f.ffree;
	sv.f_favail = f.ffree;
	sv.f_namemax = f.namemax;
	fuse_reply_statfs(req, &sv);
}

/* ---- write-behind ------------------------------------------------------ */

/* A write to a regular file is answered once its WRITE frame is on the
 * channel, with up to RP_WB_MAX per handle in flight, so the writer, the
 * channel and the guest's write overlap (as sshfs's and NFS's do). What
 * keeps that invisible to everyone who does not race with the writer:
 *  - Errors are sticky on the handle: the first failed write is returned by
 *    the next write, by every flush (close) and fsync of it.
 *  - flush, fsync, release and truncate through the handle, and getattr,
 *    read and open of the node through any handle, first wait for the
 *    node's writes sent before them: whoever starts after a close sees
 *    every byte (close-to-open), and a truncate is never overtaken.
 *  - The agent runs the WRITEs of one handle in the order they came
 *    (agent_pool.c). Writes through different handles of a node have no
 *    order there, so a write overlapping one in flight through any handle
 *    of its node waits for it first.
 *  - Appends, O_SYNC/O_DSYNC and non-regular files (FIFOs, devices, where
 *    each write's own result matters) stay synchronous. */

static struct rp_file *file_of(const struct fuse_file_info *fi)
{
	return (struct rp_file *)(uintptr_t)fi->fh;
}

/* What a wait waits for: writes in flight with seq <= upto, of file f (if
 * set), of node (if set), overlapping [off, end) (if range); and lim_f
 * having `limit` or more in flight. */
struct wb_query {
	const struct rp_file *f;
	uint64_t node;
	bool range;
	uint64_t off, end;
	uint64_t upto;
	const struct rp_file *lim_f;
	unsigned limit;
};

static bool wb_pending_locked(const struct root_proxy *rp, const struct wb_query *q)
{
	if (q->lim_f && q->lim_f->inflight >= q->limit)
		return true;
	for (const struct rp_wb *w = rp->wbs; w; w = w->next) {
		if (w->seq > q->upto)
			continue;
		if (q->f && w->f != q->f)
			continue;
		if (q->node && w->node != q->node)
			continue;
		if (q->range && (w->end <= q->off || q->end <= w->off))
			continue;
		return true;
	}
	return false;
}

/* Called with wb_lock held. Writes have no timeout of their own (the
 * client cannot time out a request whose caller has gone); a guest that
 * answers none for as long as a synchronous call may take is stuck, and
 * only the channel's death guarantees the callbacks that end this wait.
 * A stuck guest's synchronous calls would fail with ETIMEDOUT; here the
 * machine becomes dead instead. */
static void wb_wait_locked(struct root_proxy *rp, const struct wb_query *q)
{
	struct timespec dl;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += RP_WB_TIMEOUT_S;
	bool killed = false;
	while (wb_pending_locked(rp, q)) {
		if (killed) {
			pthread_cond_wait(&rp->wb_cond, &rp->wb_lock);
			continue;
		}
		if (pthread_cond_timedwait(&rp->wb_cond, &rp->wb_lock, &dl) == ETIMEDOUT &&
		    wb_pending_locked(rp, q)) {
			pthread_mutex_unlock(&rp->wb_lock);
			vp_client_shutdown(rp->client);
			pthread_mutex_lock(&rp->wb_lock);
			killed = true;
		}
	}
}

/* Waits for what q names, everything sent so far. */
static void wb_wait(struct root_proxy *rp, struct wb_query q)
{
	pthread_mutex_lock(&rp->wb_lock);
	if (rp->wbs) {
		q.upto = rp->wb_seq;
		wb_wait_locked(rp, &q);
	}
	pthread_mutex_unlock(&rp->wb_lock);
}

static void wb_wait_node(struct root_proxy *rp, uint64_t node)
{
	wb_wait(rp, (struct wb_query){ .node = node });
}

static void wb_wait_all(struct root_proxy *rp)
{
	wb_wait(rp, (struct wb_query){ 0 });
}

/* Waits for the file's writes and returns its sticky error. */
static int wb_wait_file(struct root_proxy *rp, struct rp_file *f)
{
	pthread_mutex_lock(&rp->wb_lock);
	if (rp->wbs) {
		struct wb_query q = { .f = f, .upto = rp->wb_seq };
		wb_wait_locked(rp, &q);
	}
	int err = f->err;
	pthread_mutex_unlock(&rp->wb_lock);
	return err;
}

static void wb_unlink_locked(struct root_proxy *rp, struct rp_wb *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		rp->wbs = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->f->inflight--;
	pthread_cond_broadcast(&rp->wb_cond);
}

/* The client's reader thread, once per write: must not block. */
static void wb_done(void *ctx, int err, uint32_t written)
{
	struct rp_wb *w = ctx;
	struct root_proxy *rp = w->rp;
	/* The agent answers a short count when a regular file's write failed
	 * after some bytes (its error is lost with it); the next write would
	 * have failed with what is nearly always the cause. */
	if (!err && written < w->size)
		err = -ENOSPC;
	pthread_mutex_lock(&rp->wb_lock);
	if (err && !w->f->err)
		w->f->err = err;
	wb_unlink_locked(rp, w);
	pthread_mutex_unlock(&rp->wb_lock);
	free(w);
}

/* Whether writes through f may go behind: known after the first write. */
static bool wb_usable(struct root_proxy *rp, struct rp_file *f)
{
	if (f->flags & (O_APPEND | O_DSYNC))
		return false;
	pthread_mutex_lock(&rp->wb_lock);
	int regular = f->regular;
	pthread_mutex_unlock(&rp->wb_lock);
	if (regular < 0) {
		struct vp_attr a;
		/* Failing to ask costs only the overlap: stay synchronous. */
		if (vp_fs_getattr(rp->client, f->node, &a) != 0)
			return false;
		regular = S_ISREG(a.mode) ? 1 : 0;
		pthread_mutex_lock(&rp->wb_lock);
		f->regular = (int8_t)regular;
		pthread_mutex_unlock(&rp->wb_lock);
	}
	return regular == 1;
}

static void wb_write(struct root_proxy *rp, fuse_req_t req, struct rp_file *f, const char *buf, size_t size,
		     uint64_t off)
{
	size_t done = 0;
	int err = 0;
	while (done < size) {
		uint32_t want = size - done > VP_MAX_DATA ? VP_MAX_DATA : (uint32_t)(size - done);
		struct rp_wb *w = malloc(sizeof(*w));
		if (!w) {
			err = -ENOMEM;
			break;
		}
		w->rp = rp;
		w->f = f;
		w->node = f->node;
		w->off = off + done;
		w->end = w->off + want;
		w->size = want;
		pthread_mutex_lock(&rp->wb_lock);
		/* Room on this handle, and nothing sent before that this write
		 * overlaps, through any handle of the node. */
		struct wb_query q = { .node = f->node, .range = true, .off = w->off, .end = w->end,
				      .upto = rp->wb_seq, .lim_f = f, .limit = RP_WB_MAX };
		wb_wait_locked(rp, &q);
		err = f->err;
		if (err) {
			pthread_mutex_unlock(&rp->wb_lock);
			free(w);
			break;
		}
		w->seq = ++rp->wb_seq;
		w->prev = NULL;
		w->next = rp->wbs;
		if (rp->wbs)
			rp->wbs->prev = w;
		rp->wbs = w;
		f->inflight++;
		pthread_mutex_unlock(&rp->wb_lock);
		err = vp_fs_write_async(rp->client, f->fh, w->off, buf + done, want, wb_done, w);
		if (err) {
			pthread_mutex_lock(&rp->wb_lock);
			wb_unlink_locked(rp, w);
			pthread_mutex_unlock(&rp->wb_lock);
			free(w);
			break;
		}
		done += want;
	}
	if (err && done == 0)
		reply_err(req, err);
	else
		fuse_reply_write(req, done);
}

/* ---- files ------------------------------------------------------------ */

/* Open flags the agent gets. Dropped: O_CLOEXEC (the agent's own fds are
 * its business), O_NOCTTY (the agent could otherwise gain a controlling
 * tty), O_DIRECT (the agent's buffers are not aligned for it; direct I/O on
 * the host side is the kernel's), FASYNC (signals would go to the agent),
 * O_LARGEFILE (implied). O_CREAT/O_EXCL only make sense for create. */
static uint32_t open_flags(int flags, bool create)
{
	int keep = O_ACCMODE | O_TRUNC | O_APPEND | O_NONBLOCK | O_DSYNC | O_SYNC | O_NOATIME | O_NOFOLLOW;
	if (create)
		keep |= O_CREAT | O_EXCL;
	return (uint32_t)(flags & keep);
}

/* A write-only open gets direct I/O. Without a writeback cache every
 * write(2) is sent to the guest at once either way, a write-only fd can
 * never be mmapped, and the cache is dropped at the next open anyway: the
 * page cache would only cost the writer a page allocation and a copy per
 * page before each request (a quarter of a 1 MiB write's time, measured)
 * and leave host memory holding a second copy of data that lives in the
 * guest. With direct I/O the daemon reads the data straight from the
 * writer's buffer. The kernel invalidates the written range of the page
 * cache for other opens of the file (checked on 6.18: a reader's cached
 * pages and a shared mapping see the new data at once). */
static bool write_only(int flags)
{
	return (flags & O_ACCMODE) == O_WRONLY;
}

/* A new open file of node, linked into the proxy (NULL: out of memory). */
static struct rp_file *file_new(struct root_proxy *rp, uint64_t fh, uint64_t node, int flags, int regular)
{
	struct rp_file *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->fh = fh;
	f->node = node;
	f->flags = (uint32_t)flags;
	f->regular = (int8_t)regular;
	pthread_mutex_lock(&rp->wb_lock);
	f->next = rp->files;
	if (rp->files)
		rp->files->prev = f;
	rp->files = f;
	pthread_mutex_unlock(&rp->wb_lock);
	return f;
}

/* Unlinks and frees f; no write of it may be in flight. */
static void file_free(struct root_proxy *rp, struct rp_file *f)
{
	pthread_mutex_lock(&rp->wb_lock);
	if (f->prev)
		f->prev->next = f->next;
	else
		rp->files = f->next;
	if (f->next)
		f->next->prev = f->prev;
	pthread_mutex_unlock(&rp->wb_lock);
	free(f);
}

void rp_open(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	uint64_t node, fh;
	int err = node_of(rp, ino, &node);
	if (!err) {
		/* An O_TRUNC open must not be overtaken by writes answered
		 * before it, and any open should see them (close-to-open). */
		wb_wait_node(rp, node);
		err = vp_fs_open(rp->client, node, open_flags(fi->flags, false), &fh);
	}
	if (err) {
		reply_err(req, err);
		return;
	}
	/* Asked after opening, so an O_TRUNC open sees the truncated size;
	 * if it fails, direct I/O is the choice that is always correct. */
	struct vp_attr a;
	bool asked = !write_only(fi->flags);
	bool got = asked && vp_fs_getattr(rp->client, node, &a) == 0;
	bool direct = !got || (S_ISREG(a.mode) && a.size == 0);
	struct rp_file *f = file_new(rp, fh, node, fi->flags, got ? S_ISREG(a.mode) : -1);
	if (!f) {
		vp_fs_close(rp->client, fh);
		reply_err(req, -ENOMEM);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)f;
	fi->direct_io = direct;
	fi->keep_cache = 0;
	if (fuse_reply_open(req, fi) != 0) {
		vp_fs_close(rp->client, fh); /* no release will come for it */
		file_free(rp, f);
	}
}

void rp_create(struct root_proxy *rp, fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	       struct fuse_file_info *fi)
{
	uint64_t p, fh = 0;
	struct vp_entry ve;
	struct fuse_entry_param e;
	int err = node_of(rp, parent, &p);
	if (!err)
		err = check_name(name);
	if (!err)
		err = vp_fs_create(rp->client, p, name, open_flags(fi->flags, true), mode, &fh, &ve);
	if (err) {
		reply_err(req, err);
		return;
	}
	err = adopt_entry(rp, p, name, &ve, &e);
	struct rp_file *f = NULL;
	if (!err) {
		f = file_new(rp, fh, ve.node, fi->flags, S_ISREG(ve.attr.mode));
		if (!f) {
			unlookup(rp, ve.node);
			err = -ENOMEM;
		}
	}
	if (err) {
		vp_fs_close(rp->client, fh);
		reply_err(req, err);
		return;
	}
	/* A file we just created is an ordinary file: cache it normally even
	 * though its size is 0 now (unless it is opened write-only). */
	fi->fh = (uint64_t)(uintptr_t)f;
	fi->direct_io = write_only(fi->flags);
	fi->keep_cache = 0;
	if (fuse_reply_create(req, &e, fi) != 0) {
		vp_fs_close(rp->client, fh);
		file_free(rp, f);
		unlookup(rp, ve.node);
	}
}

void rp_read(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	     struct fuse_file_info *fi)
{
	(void)ino;
	struct rp_file *f = file_of(fi);
	if (off < 0) {
		reply_err(req, -EINVAL);
		return;
	}
	char *buf = size ? malloc(size) : NULL;
	if (size && !buf) {
		reply_err(req, -ENOMEM);
		return;
	}
	/* Reads see every write answered before them, through any handle. */
	wb_wait_node(rp, f->node);
	/* The daemon caps requests at 1 MiB (= VP_MAX_DATA); the loop only
	 * matters if it ever allows more. A short chunk is EOF. */
	size_t done = 0;
	int err = 0;
	while (done < size) {
		uint32_t want = size - done > VP_MAX_DATA ? VP_MAX_DATA : (uint32_t)(size - done);
		uint32_t got = 0;
		err = vp_fs_read(rp->client, f->fh, (uint64_t)off + done, buf + done, want, &got);
		if (err)
			break;
		if (got > want) {
			err = -EIO; /* the client's contract; never trust past it */
			break;
		}
		done += got;
		if (got < want)
			break;
	}
	/* Data already read counts: report it as a short read. */
	if (err && done == 0)
		reply_err(req, err);
	else
		fuse_reply_buf(req, buf, done);
	free(buf);
}

void rp_write(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
	      off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	struct rp_file *f = file_of(fi);
	if (off < 0) {
		reply_err(req, -EINVAL);
		return;
	}
	if (wb_usable(rp, f)) {
		wb_write(rp, req, f, buf, size, (uint64_t)off);
		return;
	}
	/* Synchronous, but still after what other handles of the node have
	 * in flight over the same range. */
	wb_wait(rp, (struct wb_query){ .node = f->node, .range = true, .off = (uint64_t)off,
				       .end = (uint64_t)off + size });
	size_t done = 0;
	int err = 0;
	while (done < size) {
		uint32_t want = size - done > VP_MAX_DATA ? VP_MAX_DATA : (uint32_t)(size - done);
		uint32_t n = 0;
		err = vp_fs_write(rp->client, f->fh, (uint64_t)off + done, buf + done, want, &n);
		if (err)
			break;
		if (n == 0 || n > want) {
			/* No progress (or nonsense) would loop forever. */
			err = -EIO;
			break;
		}
		done += n;
	}
	if (err && done == 0)
		reply_err(req, err);
	else
		fuse_reply_write(req, done);
}

void rp_flush(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* Nothing is buffered here, but writes may be in flight: a close
	 * returns once the guest has them all, with the first error any of
	 * them met. The guest handle lives until release because the file
	 * may have other fds (dup). */
	(void)ino;
	reply_err(req, wb_wait_file(rp, file_of(fi)));
}

void rp_release(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	struct rp_file *f = file_of(fi);
	/* Its callbacks refer to f. The kernel ignores release errors; a dead
	 * guest has no handle left. */
	wb_wait_file(rp, f);
	vp_fs_close(rp->client, f->fh);
	file_free(rp, f);
	fuse_reply_err(req, 0);
}

void rp_fsync(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, int datasync,
	      struct fuse_file_info *fi)
{
	(void)ino;
	struct rp_file *f = file_of(fi);
	int err = wb_wait_file(rp, f);
	if (!err)
		err = vp_fs_fsync(rp->client, f->fh, datasync != 0);
	reply_err(req, err);
}

/* ---- directories ------------------------------------------------------ */

void rp_opendir(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	uint64_t node, fh;
	int err = node_of(rp, ino, &node);
	if (!err)
		err = vp_fs_opendir(rp->client, node, &fh);
	if (err) {
		reply_err(req, err);
		return;
	}
	fi->fh = fh;
	/* Listings change under us (commands); never keep them. */
	fi->cache_readdir = 0;
	fi->keep_cache = 0;
	if (fuse_reply_open(req, fi) != 0)
		vp_fs_close(rp->client, fh);
}

void rp_releasedir(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	vp_fs_close(rp->client, fi->fh);
	fuse_reply_err(req, 0);
}

void rp_fsyncdir(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, int datasync,
		 struct fuse_file_info *fi)
{
	(void)ino;
	reply_err(req, vp_fs_fsync(rp->client, fi->fh, datasync != 0));
}

/* Entries of one agent READDIR reply, copied out of it (the names point
 * into the reply, which is gone when vp_fs_readdir returns, and lookups for
 * readdirplus must not run inside the callback). */
struct rp_dent {
	uint64_t ino, next_offset;
	uint32_t type;
	char name[VP_MAX_NAME + 1];
};

struct dir_batch {
	struct rp_dent *ents;
	size_t n, cap;
	size_t room;  /* bytes of the FUSE reply still free */
	bool plus;
	bool skipped;       /* an entry was dropped ... */
	uint64_t skip_next; /* ... and the listing goes on from here */
	int err;
};

static bool is_dot(const char *name)
{
	return strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
}

static int collect_dent(void *ctx, const struct vp_dirent *d)
{
	struct dir_batch *b = ctx;
	/* The kernel fails a whole listing (EIO) on a name with '/' or one
	 * that is empty or too long; a name with a NUL cannot be given to
	 * fuse_add_direntry. Skip such entries from a misbehaving guest. */
	if (d->name.len == 0 || d->name.len > VP_MAX_NAME || memchr(d->name.p, '/', d->name.len) ||
	    memchr(d->name.p, '\0', d->name.len)) {
		b->skipped = true;
		b->skip_next = d->next_offset;
		return 0;
	}
	char name[VP_MAX_NAME + 1];
	memcpy(name, d->name.p, d->name.len);
	name[d->name.len] = '\0';
	size_t need = b->plus ? fuse_add_direntry_plus(NULL, NULL, 0, name, NULL, 0)
			      : fuse_add_direntry(NULL, NULL, 0, name, NULL, 0);
	if (need > b->room)
		return 1; /* full: the next READDIR resumes at this entry */
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 32;
		struct rp_dent *e = realloc(b->ents, cap * sizeof(*e));
		if (!e) {
			b->err = -ENOMEM;
			return 1;
		}
		b->ents = e;
		b->cap = cap;
	}
	struct rp_dent *e = &b->ents[b->n++];
	e->ino = d->ino;
	e->next_offset = d->next_offset;
	e->type = d->type;
	memcpy(e->name, name, d->name.len + 1);
	b->room -= need;
	return 0;
}

static void do_readdir(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	uint64_t dir;
	int err = node_of(rp, ino, &dir);
	if (!err && off < 0)
		err = -EINVAL;
	if (err) {
		reply_err(req, err);
		return;
	}
	struct dir_batch b = {.room = size, .plus = plus};
	/* The agent's entry encoding is no larger than a FUSE dirent, so
	 * asking for `size` bytes never gives fewer entries than fit. A plus
	 * entry is ~130 bytes more; ask for less to waste less. */
	uint32_t max_bytes = size > VP_MAX_DATA ? VP_MAX_DATA : (uint32_t)size;
	if (plus && max_bytes / 4 >= 4096)
		max_bytes /= 4;
	uint32_t count = 0;
	uint64_t pos = (uint64_t)off;
	/* A batch of nothing but dropped names must not read as the end of
	 * the directory: go on after them (a bounded number of times, as a
	 * guest could repeat an offset forever). */
	for (int tries = 0;; tries++) {
		b.skipped = false;
		err = vp_fs_readdir(rp->client, fi->fh, pos, max_bytes, collect_dent, &b, &count);
		if (!err)
			err = b.err;
		if (err || b.n > 0 || !b.skipped || count == 0)
			break;
		if (tries == 64 || b.skip_next == pos) {
			err = -EIO;
			break;
		}
		pos = b.skip_next;
	}
	char *buf = NULL;
	uint64_t *counted = NULL;
	if (!err || b.n) {
		buf = malloc(size ? size : 1);
		counted = plus ? malloc((b.n ? b.n : 1) * sizeof(*counted)) : NULL;
		if (!buf || (plus && !counted))
			err = -ENOMEM;
		else
			err = 0; /* entries already read are worth replying with */
	}
	if (err) {
		free(buf);
		free(counted);
		free(b.ents);
		reply_err(req, err);
		return;
	}
	size_t used = 0, ncounted = 0;
	for (size_t i = 0; i < b.n; i++) {
		struct rp_dent *d = &b.ents[i];
		off_t next = d->next_offset > (uint64_t)INT64_MAX ? INT64_MAX : (off_t)d->next_offset;
		size_t n;
		if (!plus) {
			struct stat st;
			memset(&st, 0, sizeof(st));
			/* The guest's inode number: the kernel only passes it on
			 * as d_ino; stat gives the FUSE inode. */
			st.st_ino = d->ino;
			st.st_mode = (d->type & 0xf) << 12;
			n = fuse_add_direntry(req, buf + used, size - used, d->name, &st, next);
		} else {
			struct fuse_entry_param e;
			memset(&e, 0, sizeof(e));
			e.attr.st_ino = d->ino;
			e.attr.st_mode = (d->type & 0xf) << 12;
			/* collect_dent reserved room for every entry, so each
			 * lookup below is for an entry that will be sent. */
			if (!is_dot(d->name)) {
				struct vp_entry ve;
				err = vp_fs_lookup(rp->client, dir, d->name, &ve);
				if (!err) {
					err = adopt_entry(rp, dir, d->name, &ve, &e);
					if (err)
						break;
					if (ve.node != VP_ROOT_NODE)
						counted[ncounted++] = ve.node;
				} else if (err == -ENOENT) {
					/* Removed since the listing: still list
					 * it (skipping every entry of a batch
					 * would read as the end). */
					err = 0;
				} else {
					break;
				}
			}
			/* Entries with e.ino = 0 ("." and "..", vanished
			 * names) are listed without the kernel linking an
			 * inode, and no lookup is counted for them. */
			n = fuse_add_direntry_plus(req, buf + used, size - used, d->name, &e, next);
		}
		if (n > size - used)
			break; /* cannot happen: room was reserved */
		used += n;
	}
	free(b.ents);
	/* An error after some entries ends the batch short; the kernel asks
	 * again from the last offset and then sees the error itself. */
	if (err && used == 0)
		reply_err(req, err);
	else if (fuse_reply_buf(req, buf, used) != 0)
		for (size_t i = 0; i < ncounted; i++)
			unlookup(rp, counted[i]);
	free(buf);
	free(counted);
}

void rp_readdir(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	do_readdir(rp, req, ino, size, off, fi, false);
}

void rp_readdirplus(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	do_readdir(rp, req, ino, size, off, fi, true);
}
