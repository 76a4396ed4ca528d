/* The fake cgroup2 filesystem of the ns-cgroup-fake tests: a FUSE
 * filesystem served from a thread of this process. It does what cgroupfs
 * v2 does where ns_cgroup.c relies on it: mkdir makes a cgroup with its
 * control files (memory.* and pids.* only when the parent enables those
 * controllers), control files cannot be created or removed, a write
 * replaces a file's value, rmdir fails EBUSY while a child cgroup exists. */
#define FUSE_USE_VERSION 35
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "tests/ns/test_ns_cgroup_fake.h"

/* A cgroup's control files; ctl: the controller they need enabled in the
 * parent (NULL: always there). */
static const struct ctlfile {
	const char *name, *ctl, *init;
	bool ro;
} ctlfiles[] = {
	{ "cgroup.controllers", NULL, "", true }, /* computed at read */
	{ "cgroup.subtree_control", NULL, "", false },
	{ "cgroup.procs", NULL, "", false },
	{ "memory.max", "memory", "max\n", false },
	{ "memory.swap.max", "memory", "max\n", false },
	{ "memory.events", "memory", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n", true },
	{ "pids.max", "pids", "max\n", false },
	{ "cpu.max", "cpu", "max 100000\n", false },
};

static const struct ctlfile *ctlfile_of(const char *path)
{
	const char *base = strrchr(path, '/') + 1;
	for (size_t i = 0; i < sizeof ctlfiles / sizeof ctlfiles[0]; i++)
		if (strcmp(ctlfiles[i].name, base) == 0)
			return &ctlfiles[i];
	return NULL;
}

/* Callers hold mu. */
static struct node *fk_find(struct fake *fk, const char *path)
{
	for (size_t i = 0; i < fk->nn; i++)
		if (strcmp(fk->n[i].path, path) == 0)
			return &fk->n[i];
	return NULL;
}

/* The dir part of path ("/" for "/x"), in buf. */
static const char *dir_of(const char *path, char *buf, size_t cap)
{
	const char *slash = strrchr(path, '/');
	snprintf(buf, cap, "%.*s", slash == path ? 1 : (int)(slash - path), path);
	return buf;
}

/* Whether path is directly in dir. */
static bool is_child(const char *path, const char *dir)
{
	size_t dl = strcmp(dir, "/") == 0 ? 0 : strlen(dir);
	return strncmp(path, dir, dl) == 0 && path[dl] == '/' && path[dl + 1] && !strchr(path + dl + 1, '/');
}

static void fk_add(struct fake *fk, const char *path, bool dir, const char *val)
{
	if (fk->nn == fk->cap) {
		fk->cap = fk->cap ? fk->cap * 2 : 64;
		if (!(fk->n = realloc(fk->n, fk->cap * sizeof *fk->n)))
			abort();
	}
	struct node *n = &fk->n[fk->nn++];
	n->path = strdup(path);
	n->dir = dir;
	n->val = val ? strdup(val) : NULL;
	if (!n->path || (val && !n->val))
		abort();
}

static void fk_del(struct fake *fk, struct node *n)
{
	free(n->path);
	free(n->val);
	*n = fk->n[--fk->nn];
}

/* The controllers a cgroup has: the root's list, else the "+x" tokens of
 * the parent's subtree_control. */
static void controllers(struct fake *fk, const char *dir, char *out, size_t cap)
{
	out[0] = '\0';
	if (strcmp(dir, "/") == 0) {
		snprintf(out, cap, "%s", fk->root_ctls);
		return;
	}
	char parent[512], sc[600];
	dir_of(dir, parent, sizeof parent);
	snprintf(sc, sizeof sc, "%s/cgroup.subtree_control", strcmp(parent, "/") ? parent : "");
	struct node *n = fk_find(fk, sc);
	char *copy = strdup(n->val), *save = NULL;
	for (char *t = strtok_r(copy, " \n", &save); t; t = strtok_r(NULL, " \n", &save))
		if (t[0] == '+')
			snprintf(out + strlen(out), cap - strlen(out), "%s%s", out[0] ? " " : "", t + 1);
	free(copy);
}

static bool has_ctl(const char *list, const char *ctl)
{
	size_t n = strlen(ctl);
	for (const char *p = strstr(list, ctl); p; p = strstr(p + 1, ctl))
		if ((p == list || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' '))
			return true;
	return false;
}

/* A cgroup dir with its control files. */
static void add_cgroup(struct fake *fk, const char *path)
{
	char ctls[256], f[600];
	fk_add(fk, path, true, NULL);
	controllers(fk, path, ctls, sizeof ctls);
	bool root = strcmp(path, "/") == 0;
	for (size_t i = 0; i < sizeof ctlfiles / sizeof ctlfiles[0]; i++) {
		const struct ctlfile *c = &ctlfiles[i];
		if (c->ctl && (root || !has_ctl(ctls, c->ctl)))
			continue; /* the root has no memory.* nor pids.* files */
		snprintf(f, sizeof f, "%s/%s", root ? "" : path, c->name);
		fk_add(fk, f, false, c->init);
	}
}

static int fk_mkdir_locked(struct fake *fk, const char *path)
{
	char parent[512];
	struct node *p = fk_find(fk, dir_of(path, parent, sizeof parent));
	if (fk_find(fk, path))
		return -EEXIST;
	if (!p)
		return -ENOENT;
	if (!p->dir)
		return -ENOTDIR;
	add_cgroup(fk, path);
	return 0;
}

/* Test side: mkdir, set and get a value, count dirs, under the lock. */
int fk_mkdir(struct fake *fk, const char *path)
{
	pthread_mutex_lock(&fk->mu);
	int err = fk_mkdir_locked(fk, path);
	pthread_mutex_unlock(&fk->mu);
	return err;
}

int fk_set(struct fake *fk, const char *path, const char *val)
{
	pthread_mutex_lock(&fk->mu);
	struct node *n = fk_find(fk, path);
	int err = !n ? -ENOENT : n->dir ? -EISDIR : 0;
	if (!err) {
		free(n->val);
		if (!(n->val = strdup(val)))
			abort();
	}
	pthread_mutex_unlock(&fk->mu);
	return err;
}

/* The value of a file ("<missing>" when there is none). */
void fk_get(struct fake *fk, const char *path, char *buf, size_t cap)
{
	pthread_mutex_lock(&fk->mu);
	struct node *n = fk_find(fk, path);
	snprintf(buf, cap, "%s", n && !n->dir ? n->val : "<missing>");
	pthread_mutex_unlock(&fk->mu);
}

bool fk_is_dir(struct fake *fk, const char *path)
{
	pthread_mutex_lock(&fk->mu);
	struct node *n = fk_find(fk, path);
	bool dir = n && n->dir;
	pthread_mutex_unlock(&fk->mu);
	return dir;
}

/* How many dirs have `part` in their path. */
int fk_count_dirs(struct fake *fk, const char *part)
{
	int k = 0;
	pthread_mutex_lock(&fk->mu);
	for (size_t i = 0; i < fk->nn; i++)
		k += fk->n[i].dir && strstr(fk->n[i].path, part);
	pthread_mutex_unlock(&fk->mu);
	return k;
}

/* ---- its FUSE operations -------------------------------------------------- */

static struct fake *ctx_fake(void)
{
	return fuse_get_context()->private_data;
}

static void *op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	(void)conn;
	/* Nothing cached: the test changes the fake behind the kernel's back. */
	cfg->entry_timeout = cfg->attr_timeout = cfg->negative_timeout = 0;
	cfg->direct_io = 1;
	return ctx_fake();
}

static int op_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	(void)fi;
	struct fake *fk = ctx_fake();
	pthread_mutex_lock(&fk->mu);
	struct node *n = fk_find(fk, path);
	memset(st, 0, sizeof *st);
	if (n) {
		const struct ctlfile *c = n->dir ? NULL : ctlfile_of(path);
		st->st_mode = n->dir ? S_IFDIR | 0755 : S_IFREG | (c->ro ? 0444 : 0644);
		st->st_nlink = n->dir ? 2 : 1;
	}
	pthread_mutex_unlock(&fk->mu);
	return n ? 0 : -ENOENT;
}

static int op_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off, struct fuse_file_info *fi,
		      enum fuse_readdir_flags flags)
{
	(void)off, (void)fi, (void)flags;
	struct fake *fk = ctx_fake();
	struct stat dst = { .st_mode = S_IFDIR }, fst = { .st_mode = S_IFREG };
	fill(buf, ".", &dst, 0, 0);
	fill(buf, "..", &dst, 0, 0);
	pthread_mutex_lock(&fk->mu);
	for (size_t i = 0; i < fk->nn; i++)
		if (is_child(fk->n[i].path, path))
			fill(buf, strrchr(fk->n[i].path, '/') + 1, fk->n[i].dir ? &dst : &fst, 0, 0);
	pthread_mutex_unlock(&fk->mu);
	return 0;
}

static int op_mkdir(const char *path, mode_t mode)
{
	(void)mode;
	return fk_mkdir(ctx_fake(), path);
}

static int op_rmdir(const char *path)
{
	struct fake *fk = ctx_fake();
	pthread_mutex_lock(&fk->mu);
	struct node *n = fk_find(fk, path);
	int err = !n ? -ENOENT : !n->dir ? -ENOTDIR : strcmp(path, "/") == 0 ? -EBUSY : 0;
	for (size_t i = 0; !err && i < fk->nn; i++)
		if (fk->n[i].dir && is_child(fk->n[i].path, path))
			err = -EBUSY;
	for (size_t i = fk->nn; !err && i-- > 0;)
		if (is_child(fk->n[i].path, path) || strcmp(fk->n[i].path, path) == 0)
			fk_del(fk, &fk->n[i]);
	pthread_mutex_unlock(&fk->mu);
	return err;
}

/* Control files come and go with their cgroup only. */
static int op_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	(void)path, (void)mode, (void)fi;
	return -EPERM;
}

static int op_mknod(const char *path, mode_t mode, dev_t dev)
{
	(void)path, (void)mode, (void)dev;
	return -EPERM;
}

static int op_unlink(const char *path)
{
	(void)path;
	return -EPERM;
}

static int op_open(const char *path, struct fuse_file_info *fi)
{
	struct fake *fk = ctx_fake();
	pthread_mutex_lock(&fk->mu);
	struct node *n = fk_find(fk, path);
	int err = !n ? -ENOENT : n->dir ? -EISDIR : 0;
	if (!err && (fi->flags & O_ACCMODE) != O_RDONLY && ctlfile_of(path)->ro)
		err = -EACCES;
	pthread_mutex_unlock(&fk->mu);
	return err;
}

static int op_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)fi;
	struct fake *fk = ctx_fake();
	char val[1024], dir[512];
	pthread_mutex_lock(&fk->mu);
	struct node *n = fk_find(fk, path);
	if (n && strcmp(ctlfile_of(path)->name, "cgroup.controllers") == 0) {
		controllers(fk, dir_of(path, dir, sizeof dir), val, sizeof val - 1);
		strcat(val, "\n");
	} else if (n) {
		snprintf(val, sizeof val, "%s", n->val);
	}
	pthread_mutex_unlock(&fk->mu);
	if (!n)
		return -ENOENT;
	size_t len = strlen(val);
	if ((size_t)off >= len)
		return 0;
	if (size > len - (size_t)off)
		size = len - (size_t)off;
	memcpy(buf, val + off, size);
	return (int)size;
}

/* Each write is one whole value, as in cgroupfs. subtree_control refuses
 * controllers the cgroup does not have (ENOENT, like the kernel). */
static int op_write(const char *path, const char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)off, (void)fi;
	struct fake *fk = ctx_fake();
	char *val = strndup(buf, size), dir[512], ctls[256];
	if (!val)
		return -ENOMEM;
	int err = 0;
	pthread_mutex_lock(&fk->mu);
	struct node *n = fk_find(fk, path);
	if (!n) {
		err = -ENOENT;
	} else if (strcmp(ctlfile_of(path)->name, "cgroup.subtree_control") == 0) {
		controllers(fk, dir_of(path, dir, sizeof dir), ctls, sizeof ctls);
		char *copy = strdup(val), *save = NULL;
		for (char *t = strtok_r(copy, " \n", &save); t && !err; t = strtok_r(NULL, " \n", &save))
			if ((t[0] != '+' && t[0] != '-') || !has_ctl(ctls, t + 1))
				err = -ENOENT;
		free(copy);
	}
	if (!err) {
		free(n->val);
		n->val = val;
		val = NULL;
	}
	pthread_mutex_unlock(&fk->mu);
	free(val);
	return err ? err : (int)size;
}

static const struct fuse_operations fake_ops = {
	.init = op_init,
	.getattr = op_getattr,
	.readdir = op_readdir,
	.mkdir = op_mkdir,
	.rmdir = op_rmdir,
	.unlink = op_unlink,
	.create = op_create,
	.mknod = op_mknod,
	.open = op_open,
	.read = op_read,
	.write = op_write,
};

static void *fake_loop(void *arg)
{
	struct fake *fk = arg;
	fuse_loop(fk->fuse);
	return NULL;
}

/* Mounts a fake with only its root cgroup on mnt. */
int fake_start(struct fake *fk, const char *mnt, const char *root_ctls)
{
	memset(fk, 0, sizeof *fk);
	pthread_mutex_init(&fk->mu, NULL);
	fk->root_ctls = root_ctls;
	snprintf(fk->mnt, sizeof fk->mnt, "%s", mnt);
	add_cgroup(fk, "/");
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	fuse_opt_add_arg(&args, "fake-cgroupfs");
	fk->fuse = fuse_new(&args, &fake_ops, sizeof fake_ops, fk);
	fuse_opt_free_args(&args);
	if (!fk->fuse)
		return -EIO;
	if (fuse_mount(fk->fuse, mnt) != 0) {
		fuse_destroy(fk->fuse);
		fk->fuse = NULL;
		return -EIO;
	}
	return -pthread_create(&fk->thr, NULL, fake_loop, fk);
}

void fake_stop(struct fake *fk)
{
	if (fk->fuse) {
		/* The unmount ends the loop (its read gets ENODEV). */
		fuse_exit(fk->fuse);
		CHECK(umount2(fk->mnt, MNT_DETACH) == 0);
		pthread_join(fk->thr, NULL);
		fuse_unmount(fk->fuse);
		fuse_destroy(fk->fuse);
	}
	while (fk->nn)
		fk_del(fk, &fk->n[0]);
	free(fk->n);
	pthread_mutex_destroy(&fk->mu);
}
