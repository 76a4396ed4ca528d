/* Node and handle tables, as in libfuse's example/passthrough_ll.c: a node
 * is one inode (deduplicated by dev/ino) that lives while the host holds
 * lookups on it; a handle is an open file or directory. `refs` keeps an
 * object alive while a request uses it, so a FORGET or CLOSE racing with
 * that request never closes an fd under it.
 *
 * Unlike passthrough_ll, a node does not keep its O_PATH fd for life: the
 * host kernel keeps every inode it looked up until memory pressure, so a
 * walk (find, du, tar) of a big tree held one fd per file and made the
 * agent run out (4493 for /proc, 19 998 for /sys, against 8192). At most
 * max_node_fds nodes hold an fd, least recently used closed first; a node
 * without one is reopened as parent/name and checked by dev/ino. A node
 * keeps its parent (`kids`) so that chain is always there to walk.
 * (open_by_handle_at would survive renames behind our back, but it needs
 * CAP_DAC_READ_SEARCH in the initial user namespace, and /proc has no
 * file handles at all.) */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"

/* Spreads dev over the key's bits, so that equal inode numbers on two
 * devices rarely share a key. */
static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

static void ht_insert(struct u64map *t, struct u64map_link *l, uint64_t key)
{
	l->key = key;
	u64map_insert(t, l);
}

/* inos may hold several nodes under one key (dev/ino pairs that mix to the
 * same value): the next one after l in its chain. */
static struct u64map_link *ht_next(const struct u64map_link *l, uint64_t key)
{
	for (l = l->next; l; l = l->next)
		if (l->key == key)
			return (struct u64map_link *)(uintptr_t)l;
	return NULL;
}

/* ---- nodes ------------------------------------------------------------- */

static uint64_t ino_key(dev_t dev, ino_t ino)
{
	return (uint64_t)ino ^ mix((uint64_t)dev);
}

/* A bound: the default, lowered by the environment (tests) and by the
 * agent's fd limit (a VM's PID 1 may have 4096). */
static unsigned fd_bound(const char *env, unsigned def, unsigned share)
{
	unsigned v = def;
	const char *e = getenv(env);
	if (e && *e) {
		char *end;
		unsigned long x = strtoul(e, &end, 10);
		if (*end == '\0' && x >= 1 && x < def)
			v = (unsigned)x;
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur / share < v)
		v = rl.rlim_cur / share > 16 ? (unsigned)(rl.rlim_cur / share) : 16;
	return v;
}

int agent_fs_new(const char *root, struct agent_fs **out)
{
	struct agent_fs *fs = calloc(1, sizeof *fs);
	if (!fs)
		return -ENOMEM;
	struct agent_node *n = calloc(1, sizeof *n);
	int r = -ENOMEM;
	if (!n || u64map_init(&fs->nodes, 64) < 0 || u64map_init(&fs->inos, 64) < 0 ||
	    u64map_init(&fs->handles, 64) < 0)
		goto fail;
	n->fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct stat st;
	if (n->fd < 0 || fstat(n->fd, &st) < 0) {
		r = -errno;
		if (n->fd >= 0)
			close(n->fd);
		goto fail;
	}
	pthread_mutex_init(&fs->lock, NULL);
	list_init(&fs->lru);
	list_init(&n->lru);
	fs->max_node_fds = fd_bound("VMPOOL_AGENT_NODE_FDS", AGENT_NODE_FDS, 4);
	fs->max_handles = fd_bound("VMPOOL_AGENT_HANDLES", AGENT_HANDLES, 2);
	agent_cred_init(fs);
	n->id = VP_ROOT_NODE;
	n->dev = st.st_dev;
	n->ino = st.st_ino;
	n->type = st.st_mode & S_IFMT;
	n->nlookup = 1;
	n->permanent = n->hashed = true;
	ht_insert(&fs->nodes, &n->by_id, n->id);
	ht_insert(&fs->inos, &n->by_ino, ino_key(n->dev, n->ino));
	fs->next_node = VP_ROOT_NODE + 1;
	fs->next_fh = 1;
	*out = fs;
	return 0;
fail:
	free(n);
	u64map_destroy(&fs->nodes);
	u64map_destroy(&fs->inos);
	u64map_destroy(&fs->handles);
	free(fs);
	return r;
}

static void handle_free(struct agent_handle *h)
{
	if (h->dp)
		closedir(h->dp);
	else
		close(h->fd);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

static void node_close_fd(struct agent_fs *fs, struct agent_node *n)
{
	if (n->fd < 0)
		return;
	close(n->fd);
	n->fd = -1;
	if (list_linked(&n->lru)) {
		list_del(&n->lru);
		fs->node_fds--;
	}
}

/* Closes the fds of the least recently used nodes no request holds until
 * at most max_node_fds are open. Held nodes are skipped: they are few (one
 * or two per request in progress, 64 workers at most). */
static void evict_locked(struct agent_fs *fs)
{
	struct list_node *it = fs->lru.prev;
	while (fs->node_fds > fs->max_node_fds && it != &fs->lru) {
		struct agent_node *n = container_of(it, struct agent_node, lru);
		it = it->prev;
		if (n->refs == 0)
			node_close_fd(fs, n);
	}
}

static void node_set_fd_locked(struct agent_fs *fs, struct agent_node *n, int fd)
{
	n->fd = fd;
	if (!n->permanent) {
		list_add_head(&fs->lru, &n->lru);
		fs->node_fds++;
		evict_locked(fs);
	}
}

static void node_free(struct agent_fs *fs, struct agent_node *n)
{
	node_close_fd(fs, n);
	free(n->name);
	free(n);
}

/* Drops n if nothing keeps it (lookups, kids, requests), then its parent
 * if n was what kept that one, and so on up. Nodes without lookups stay
 * while they have kids: a kid is reopened through them. */
static void node_settle_locked(struct agent_fs *fs, struct agent_node *n)
{
	while (n && !n->permanent) {
		if (n->hashed && n->nlookup == 0 && n->kids == 0) {
			u64map_remove(&fs->nodes, &n->by_id);
			u64map_remove(&fs->inos, &n->by_ino);
			n->hashed = false;
		}
		if (n->hashed || n->refs > 0)
			return;
		struct agent_node *p = n->parent;
		node_free(fs, n);
		if (!p)
			return;
		p->kids--;
		n = p;
	}
}

void agent_fs_free(struct agent_fs *fs)
{
	if (!fs)
		return;
	/* Only called once no request runs: refs are all zero. */
	u64map_for_each_safe(&fs->nodes, it, tmp) node_free(fs, container_of(it, struct agent_node, by_id));
	u64map_for_each_safe(&fs->handles, it, tmp) handle_free(container_of(it, struct agent_handle, link));
	u64map_destroy(&fs->nodes);
	u64map_destroy(&fs->inos);
	u64map_destroy(&fs->handles);
	pthread_mutex_destroy(&fs->lock);
	free(fs);
}

/* Gives n an fd again: finds the highest node on its parent chain
 * without one (the root always has one), opens it in its parent, checks
 * that it is still the same inode, and goes down from there. Each open is
 * made without the lock (a guest filesystem may be slow); the two nodes
 * involved are held meanwhile so their fds stay. */
static int node_reopen(struct agent_fs *fs, struct agent_node *n)
{
	char name[VP_MAX_NAME + 1];
	pthread_mutex_lock(&fs->lock);
	while (n->fd < 0) {
		struct agent_node *x = n;
		while (x->parent && x->parent->fd < 0)
			x = x->parent;
		struct agent_node *p = x->parent;
		if (!p || !x->name || strlen(x->name) > VP_MAX_NAME) {
			pthread_mutex_unlock(&fs->lock);
			return -ESTALE;
		}
		p->refs++;
		x->refs++;
		int pfd = p->fd;
		memcpy(name, x->name, strlen(x->name) + 1);
		pthread_mutex_unlock(&fs->lock);

		int fd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		struct stat st;
		int r = fd < 0 ? -errno : 0;
		if (r == 0 && fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			r = -errno;
		pthread_mutex_lock(&fs->lock);
		/* Renamed or replaced behind our back: not the same file. */
		if (r == 0 && (st.st_dev != x->dev || st.st_ino != x->ino))
			r = -ESTALE;
		if (r == 0 && x->fd < 0) {
			node_set_fd_locked(fs, x, fd);
			fd = -1;
		}
		if (fd >= 0)
			close(fd);
		/* Neither goes here: x is n (held by the caller) or has kids,
		 * and p has x. */
		p->refs--;
		x->refs--;
		if (r < 0) {
			pthread_mutex_unlock(&fs->lock);
			return -ESTALE;
		}
	}
	if (list_linked(&n->lru)) {
		list_del(&n->lru);
		list_add_head(&fs->lru, &n->lru);
	}
	pthread_mutex_unlock(&fs->lock);
	return 0;
}

struct agent_node *agent_node_get(struct agent_fs *fs, uint64_t id)
{
	pthread_mutex_lock(&fs->lock);
	struct u64map_link *l = u64map_find(&fs->nodes, id);
	struct agent_node *n = l ? container_of(l, struct agent_node, by_id) : NULL;
	/* A node the host forgot, kept only for its kids, is not its any more. */
	if (n && n->nlookup == 0)
		n = NULL;
	if (n)
		n->refs++;
	pthread_mutex_unlock(&fs->lock);
	if (n && node_reopen(fs, n) < 0) {
		agent_node_put(fs, n);
		return NULL;
	}
	return n;
}

void agent_node_put(struct agent_fs *fs, struct agent_node *n)
{
	if (!n)
		return;
	pthread_mutex_lock(&fs->lock);
	n->refs--;
	node_settle_locked(fs, n);
	/* Nodes held past the bound (every other one was held too) give
	 * their fds up now. */
	if (fs->node_fds > fs->max_node_fds)
		evict_locked(fs);
	pthread_mutex_unlock(&fs->lock);
}

/* Whether making p the parent of n would close a loop (a bind mount of a
 * directory below itself). */
static bool would_loop(const struct agent_node *n, const struct agent_node *p)
{
	for (; p; p = p->parent)
		if (p == n)
			return true;
	return false;
}

/* Records that n is now parent/name. A hard link's node follows the name
 * it was last found by. */
static void node_place_locked(struct agent_fs *fs, struct agent_node *n, struct agent_node *parent,
			      const char *name)
{
	if (n->permanent || !parent || (n->parent == parent && n->name && strcmp(n->name, name) == 0))
		return;
	if (n->parent != parent && would_loop(n, parent))
		return;
	char *copy = strdup(name);
	if (!copy)
		return; /* keeps the old place: at worst a later reopen is ESTALE */
	free(n->name);
	n->name = copy;
	if (n->parent != parent) {
		struct agent_node *old = n->parent;
		parent->kids++;
		n->parent = parent;
		if (old) {
			old->kids--;
			node_settle_locked(fs, old);
		}
	}
}

int agent_node_add(struct agent_fs *fs, struct agent_node *parent, const char *name, int fd, dev_t dev,
		   ino_t ino, mode_t type, uint64_t *id)
{
	uint64_t key = ino_key(dev, ino);
	pthread_mutex_lock(&fs->lock);
	for (struct u64map_link *l = u64map_find(&fs->inos, key); l; l = ht_next(l, key)) {
		struct agent_node *n = container_of(l, struct agent_node, by_ino);
		if (n->dev == dev && n->ino == ino) {
			n->nlookup++;
			*id = n->id;
			node_place_locked(fs, n, parent, name);
			if (fd >= 0 && n->fd < 0) {
				n->refs++; /* not evicted by its own arrival */
				node_set_fd_locked(fs, n, fd);
				n->refs--;
				fd = -1;
			}
			pthread_mutex_unlock(&fs->lock);
			if (fd >= 0)
				close(fd);
			return 0;
		}
	}
	struct agent_node *n = calloc(1, sizeof *n);
	char *copy = strdup(name);
	if (!n || !copy) {
		pthread_mutex_unlock(&fs->lock);
		free(n);
		free(copy);
		if (fd >= 0)
			close(fd);
		return -ENOMEM;
	}
	n->id = fs->next_node++;
	n->fd = -1;
	list_init(&n->lru);
	n->dev = dev;
	n->ino = ino;
	n->type = type;
	n->nlookup = 1;
	n->hashed = true;
	n->parent = parent;
	n->name = copy;
	parent->kids++;
	ht_insert(&fs->nodes, &n->by_id, n->id);
	ht_insert(&fs->inos, &n->by_ino, key);
	if (fd >= 0) {
		n->refs++;
		node_set_fd_locked(fs, n, fd);
		n->refs--;
	}
	*id = n->id;
	pthread_mutex_unlock(&fs->lock);
	return 0;
}

void agent_node_moved(struct agent_fs *fs, dev_t dev, ino_t ino, struct agent_node *parent, const char *name)
{
	uint64_t key = ino_key(dev, ino);
	pthread_mutex_lock(&fs->lock);
	for (struct u64map_link *l = u64map_find(&fs->inos, key); l; l = ht_next(l, key)) {
		struct agent_node *n = container_of(l, struct agent_node, by_ino);
		if (n->dev == dev && n->ino == ino) {
			node_place_locked(fs, n, parent, name);
			break;
		}
	}
	pthread_mutex_unlock(&fs->lock);
}

void agent_node_forget(struct agent_fs *fs, uint64_t id, uint64_t nlookup)
{
	pthread_mutex_lock(&fs->lock);
	struct u64map_link *l = u64map_find(&fs->nodes, id);
	struct agent_node *n = l ? container_of(l, struct agent_node, by_id) : NULL;
	if (n && !n->permanent) {
		n->nlookup -= nlookup < n->nlookup ? nlookup : n->nlookup;
		node_settle_locked(fs, n);
	}
	pthread_mutex_unlock(&fs->lock);
}

/* ---- handles ----------------------------------------------------------- */

int agent_handle_add(struct agent_fs *fs, int fd, DIR *dp, bool regular, uint64_t *fh)
{
	struct agent_handle *h = calloc(1, sizeof *h);
	if (!h) {
		if (dp)
			closedir(dp);
		else
			close(fd);
		return -ENOMEM;
	}
	h->fd = fd;
	h->dp = dp;
	h->regular = regular;
	h->hashed = true;
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutex_lock(&fs->lock);
	/* Open files are the host's to bound (each is one the kernel holds
	 * open through root/); past the bound the opener gets EMFILE rather
	 * than the agent running out of fds for commands. */
	if (fs->nhandles >= fs->max_handles) {
		pthread_mutex_unlock(&fs->lock);
		handle_free(h);
		return -EMFILE;
	}
	fs->nhandles++;
	h->id = fs->next_fh++;
	ht_insert(&fs->handles, &h->link, h->id);
	*fh = h->id;
	pthread_mutex_unlock(&fs->lock);
	return 0;
}

struct agent_handle *agent_handle_get(struct agent_fs *fs, uint64_t fh)
{
	pthread_mutex_lock(&fs->lock);
	struct u64map_link *l = u64map_find(&fs->handles, fh);
	struct agent_handle *h = l ? container_of(l, struct agent_handle, link) : NULL;
	if (h)
		h->refs++;
	pthread_mutex_unlock(&fs->lock);
	return h;
}

void agent_handle_put(struct agent_fs *fs, struct agent_handle *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&fs->lock);
	bool gone = --h->refs == 0 && !h->hashed;
	pthread_mutex_unlock(&fs->lock);
	if (gone)
		handle_free(h);
}

int agent_handle_close(struct agent_fs *fs, uint64_t fh)
{
	pthread_mutex_lock(&fs->lock);
	struct u64map_link *l = u64map_find(&fs->handles, fh);
	struct agent_handle *h = l ? container_of(l, struct agent_handle, link) : NULL;
	bool gone = false;
	if (h) {
		u64map_remove(&fs->handles, &h->link);
		fs->nhandles--;
		h->hashed = false;
		gone = h->refs == 0;
	}
	pthread_mutex_unlock(&fs->lock);
	if (!h)
		return -EBADF;
	if (gone)
		handle_free(h);
	return 0;
}
