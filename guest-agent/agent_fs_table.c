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

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* ---- a small chained hash keyed by u64 --------------------------------- */

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

static int ht_init(struct agent_ht *t)
{
	t->nb = 64;
	t->n = 0;
	t->b = calloc(t->nb, sizeof *t->b);
	return t->b ? 0 : -ENOMEM;
}

static void ht_grow(struct agent_ht *t)
{
	size_t nb = t->nb * 2;
	struct agent_ht_link **b = calloc(nb, sizeof *b);
	if (!b)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < t->nb; i++) {
		struct agent_ht_link *l = t->b[i], *next;
		for (; l; l = next) {
			next = l->next;
			size_t k = mix(l->key) & (nb - 1);
			l->next = b[k];
			b[k] = l;
		}
	}
	free(t->b);
	t->b = b;
	t->nb = nb;
}

static void ht_insert(struct agent_ht *t, struct agent_ht_link *l, uint64_t key)
{
	if (t->n >= t->nb * 2)
		ht_grow(t);
	l->key = key;
	size_t k = mix(key) & (t->nb - 1);
	l->next = t->b[k];
	t->b[k] = l;
	t->n++;
}

static struct agent_ht_link *ht_first(const struct agent_ht *t, uint64_t key)
{
	for (struct agent_ht_link *l = t->b[mix(key) & (t->nb - 1)]; l; l = l->next)
		if (l->key == key)
			return l;
	return NULL;
}

static struct agent_ht_link *ht_next(const struct agent_ht_link *l, uint64_t key)
{
	for (l = l->next; l; l = l->next)
		if (l->key == key)
			return (struct agent_ht_link *)l;
	return NULL;
}

static void ht_remove(struct agent_ht *t, struct agent_ht_link *l)
{
	struct agent_ht_link **pp = &t->b[mix(l->key) & (t->nb - 1)];
	for (; *pp; pp = &(*pp)->next) {
		if (*pp == l) {
			*pp = l->next;
			t->n--;
			return;
		}
	}
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
	if (!n || ht_init(&fs->nodes) < 0 || ht_init(&fs->inos) < 0 || ht_init(&fs->handles) < 0)
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
	free(fs->nodes.b);
	free(fs->inos.b);
	free(fs->handles.b);
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
	for (size_t i = 0; i < fs->nodes.nb; i++) {
		struct agent_ht_link *l = fs->nodes.b[i], *next;
		for (; l; l = next) {
			next = l->next;
			node_free(container_of(l, struct agent_node, by_id));
		}
	}
	for (size_t i = 0; i < fs->handles.nb; i++) {
		struct agent_ht_link *l = fs->handles.b[i], *next;
		for (; l; l = next) {
			next = l->next;
			handle_free(container_of(l, struct agent_handle, link));
		}
	}
	free(fs->nodes.b);
	free(fs->inos.b);
	free(fs->handles.b);
	pthread_mutex_destroy(&fs->lock);
	free(fs);
}

struct agent_node *agent_node_get(struct agent_fs *fs, uint64_t id)
{
	pthread_mutex_lock(&fs->lock);
	struct agent_ht_link *l = ht_first(&fs->nodes, id);
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
	for (struct agent_ht_link *l = ht_first(&fs->inos, key); l; l = ht_next(l, key)) {
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
	struct agent_ht_link *l = ht_first(&fs->nodes, id);
	struct agent_node *n = l ? container_of(l, struct agent_node, by_id) : NULL;
	bool gone = false;
	if (n && !n->permanent) {
		n->nlookup -= nlookup < n->nlookup ? nlookup : n->nlookup;
		if (n->nlookup == 0) {
			ht_remove(&fs->nodes, &n->by_id);
			ht_remove(&fs->inos, &n->by_ino);
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
	struct agent_ht_link *l = ht_first(&fs->handles, fh);
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
	struct agent_ht_link *l = ht_first(&fs->handles, fh);
	struct agent_handle *h = l ? container_of(l, struct agent_handle, link) : NULL;
	bool gone = false;
	if (h) {
		ht_remove(&fs->handles, &h->link);
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
