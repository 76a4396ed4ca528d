/* Node and handle tables, as in libfuse's example/passthrough_ll.c: a node
 * is an O_PATH fd for one inode (deduplicated by dev/ino) that lives while
 * the host holds lookups on it; a handle is an open file or directory.
 * `refs` keeps an object alive while a request uses it, so a FORGET or
 * CLOSE racing with that request never closes an fd under it. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
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

static void node_free(struct agent_node *n)
{
	close(n->fd);
	free(n);
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

void agent_fs_free(struct agent_fs *fs)
{
	if (!fs)
		return;
	/* Only called once no request runs: refs are all zero. */
	u64map_for_each_safe(&fs->nodes, it, tmp)
		node_free(container_of(it, struct agent_node, by_id));
	u64map_for_each_safe(&fs->handles, it, tmp)
		handle_free(container_of(it, struct agent_handle, link));
	u64map_destroy(&fs->nodes);
	u64map_destroy(&fs->inos);
	u64map_destroy(&fs->handles);
	pthread_mutex_destroy(&fs->lock);
	free(fs);
}

struct agent_node *agent_node_get(struct agent_fs *fs, uint64_t id)
{
	pthread_mutex_lock(&fs->lock);
	struct u64map_link *l = u64map_find(&fs->nodes, id);
	struct agent_node *n = l ? container_of(l, struct agent_node, by_id) : NULL;
	if (n)
		n->refs++;
	pthread_mutex_unlock(&fs->lock);
	return n;
}

void agent_node_put(struct agent_fs *fs, struct agent_node *n)
{
	if (!n)
		return;
	pthread_mutex_lock(&fs->lock);
	bool gone = --n->refs == 0 && !n->hashed;
	pthread_mutex_unlock(&fs->lock);
	if (gone)
		node_free(n);
}

int agent_node_add(struct agent_fs *fs, int fd, dev_t dev, ino_t ino, mode_t type, uint64_t *id)
{
	uint64_t key = ino_key(dev, ino);
	pthread_mutex_lock(&fs->lock);
	for (struct u64map_link *l = u64map_find(&fs->inos, key); l; l = ht_next(l, key)) {
		struct agent_node *n = container_of(l, struct agent_node, by_ino);
		if (n->dev == dev && n->ino == ino) {
			n->nlookup++;
			*id = n->id;
			pthread_mutex_unlock(&fs->lock);
			close(fd);
			return 0;
		}
	}
	struct agent_node *n = calloc(1, sizeof *n);
	if (!n) {
		pthread_mutex_unlock(&fs->lock);
		close(fd);
		return -ENOMEM;
	}
	n->id = fs->next_node++;
	n->fd = fd;
	n->dev = dev;
	n->ino = ino;
	n->type = type;
	n->nlookup = 1;
	n->hashed = true;
	ht_insert(&fs->nodes, &n->by_id, n->id);
	ht_insert(&fs->inos, &n->by_ino, key);
	*id = n->id;
	pthread_mutex_unlock(&fs->lock);
	return 0;
}

void agent_node_forget(struct agent_fs *fs, uint64_t id, uint64_t nlookup)
{
	pthread_mutex_lock(&fs->lock);
	struct u64map_link *l = u64map_find(&fs->nodes, id);
	struct agent_node *n = l ? container_of(l, struct agent_node, by_id) : NULL;
	bool gone = false;
	if (n && !n->permanent) {
		n->nlookup -= nlookup < n->nlookup ? nlookup : n->nlookup;
		if (n->nlookup == 0) {
			u64map_remove(&fs->nodes, &n->by_id);
			u64map_remove(&fs->inos, &n->by_ino);
			n->hashed = false;
			gone = n->refs == 0;
		}
	}
	pthread_mutex_unlock(&fs->lock);
	if (gone)
		node_free(n);
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
