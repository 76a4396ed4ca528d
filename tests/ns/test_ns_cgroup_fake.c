/* ns_cgroup.c against a fake cgroup2 filesystem: these hosts have no v2
 * memory/pids controllers, so the pure v2 path runs only here. The fake is
 * a FUSE filesystem served from a thread of this process and mounted on a
 * temp dir; fake mountinfo and cgroup files point the code at it through
 * ns_cgroups_open_at. The fake does what cgroupfs v2 does where the code
 * relies on it: mkdir makes a cgroup with its control files (memory.* and
 * pids.* only when the parent enables those controllers), control files
 * cannot be created or removed, a write replaces a file's value, rmdir
 * fails EBUSY while a child cgroup exists. Needs root (mount) and
 * /dev/fuse; prints "SKIP: reason" and exits 77 without them. */
#define FUSE_USE_VERSION 35
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <fuse.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/ns/ns.h"
#include "tests/common/tap.h"

/* ---- the fake cgroupfs ---------------------------------------------------- */

/* A node is a cgroup (dir) or one of its control files, by its path below
 * the mount ("/" the root, "/a/memory.max"). */
struct node {
	char *path;
	bool dir;
	char *val; /* files: the last value written, or the initial one */
};

struct fake {
	pthread_mutex_t mu;
	struct node *n;
	size_t nn, cap;
	const char *root_ctls; /* the root's cgroup.controllers */
	char mnt[256];
	struct fuse *fuse;
	pthread_t thr;
};

/* A cgroup's control files; ctl: the controller they need enabled in the
 * parent (NULL: always there). */
static const struct ctlfile {
	const char *name, *ctl, *init;
	bool ro;
} ctlfiles[] = {
	{"cgroup.controllers", NULL, "", true}, /* computed at read */
	{"cgroup.subtree_control", NULL, "", false},
	{"cgroup.procs", NULL, "", false},
	{"memory.max", "memory", "max\n", false},
	{"memory.swap.max", "memory", "max\n", false},
	{"memory.events", "memory", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n", true},
	{"pids.max", "pids", "max\n", false},
	{"cpu.max", "cpu", "max 100000\n", false},
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
	return strncmp(path, dir, dl) == 0 && path[dl] == '/' && path[dl + 1] &&
	       !strchr(path + dl + 1, '/');
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
static int fk_mkdir(struct fake *fk, const char *path)
{
	pthread_mutex_lock(&fk->mu);
	int err = fk_mkdir_locked(fk, path);
	pthread_mutex_unlock(&fk->mu);
	return err;
}

static int fk_set(struct fake *fk, const char *path, const char *val)
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
static void fk_get(struct fake *fk, const char *path, char *buf, size_t cap)
{
	pthread_mutex_lock(&fk->mu);
	struct node *n = fk_find(fk, path);
	snprintf(buf, cap, "%s", n && !n->dir ? n->val : "<missing>");
	pthread_mutex_unlock(&fk->mu);
}

static bool fk_is_dir(struct fake *fk, const char *path)
{
	pthread_mutex_lock(&fk->mu);
	struct node *n = fk_find(fk, path);
	bool dir = n && n->dir;
	pthread_mutex_unlock(&fk->mu);
	return dir;
}

/* How many dirs have `part` in their path. */
static int fk_count_dirs(struct fake *fk, const char *part)
{
	int k = 0;
	pthread_mutex_lock(&fk->mu);
	for (size_t i = 0; i < fk->nn; i++)
		k += fk->n[i].dir && strstr(fk->n[i].path, part);
	pthread_mutex_unlock(&fk->mu);
	return k;
}

#define CHECK_VAL(fk, path, want)                                                    \
	do {                                                                         \
		char v_[256];                                                        \
		fk_get(fk, path, v_, sizeof v_);                                     \
		CHECKF(strcmp(v_, want) == 0, "%s is \"%s\", not \"%s\"", path, v_, want); \
	} while (0)

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

static int op_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	(void)off, (void)fi, (void)flags;
	struct fake *fk = ctx_fake();
	struct stat dst = {.st_mode = S_IFDIR}, fst = {.st_mode = S_IFREG};
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
static int op_write(const char *path, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
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
static int fake_start(struct fake *fk, const char *mnt, const char *root_ctls)
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

static void fake_stop(struct fake *fk)
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

/* ---- a test's environment ------------------------------------------------- */

/* A temp dir with the fake mounted on mnt/ and the files standing for
 * /proc/self/mountinfo, /proc/self/cgroup and /proc/thread-self/cgroup. */
struct env {
	char tmp[64], mnt[128], info[128], self[128], thread[128];
	struct ns_cgroup_sources src;
	struct fake fk;
};

static bool write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");
	bool ok = f && fputs(text, f) >= 0;
	if (f)
		ok = fclose(f) == 0 && ok;
	return CHECKF(ok, "writing %s", path);
}

/* Mountinfo like a host's: optional fields, the cgroup2 mount on the fake,
 * and (v1_too) v1 memory and pids hierarchies in tmp/memory, tmp/pids. */
static bool write_mountinfo(const struct env *e, bool v1_too)
{
	char text[2048];
	int n = snprintf(text, sizeof text,
		"22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/root rw,discard\n"
		"23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n"
		"31 23 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755\n"
		"41 31 0:38 / %s rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate\n",
		e->mnt);
	if (v1_too)
		snprintf(text + n, sizeof text - (size_t)n,
			 "32 31 0:29 / %s/cpu rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,cpu,cpuacct\n"
			 "35 31 0:32 / %s/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory\n"
			 "39 31 0:36 / %s/pids rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,pids\n",
			 e->tmp, e->tmp, e->tmp);
	return write_text(e->info, text);
}

/* Mounts a fake whose root has root_ctls; self_cgroup is the text of both
 * cgroup files. */
static bool env_open(struct env *e, const char *root_ctls, const char *self_cgroup, bool v1_too)
{
	memset(e, 0, sizeof *e);
	snprintf(e->tmp, sizeof e->tmp, "/tmp/ns-cgroup-fake.XXXXXX");
	if (!CHECK(mkdtemp(e->tmp)))
		return false;
	snprintf(e->mnt, sizeof e->mnt, "%s/mnt", e->tmp);
	snprintf(e->info, sizeof e->info, "%s/mountinfo", e->tmp);
	snprintf(e->self, sizeof e->self, "%s/self-cgroup", e->tmp);
	snprintf(e->thread, sizeof e->thread, "%s/thread-cgroup", e->tmp);
	e->src = (struct ns_cgroup_sources){e->info, e->self, e->thread};
	if (!CHECK(mkdir(e->mnt, 0755) == 0) || !write_mountinfo(e, v1_too) ||
	    !write_text(e->self, self_cgroup) || !write_text(e->thread, self_cgroup))
		return false;
	return CHECK_EQ(fake_start(&e->fk, e->mnt, root_ctls), 0);
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st, (void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

static void env_close(struct env *e)
{
	fake_stop(&e->fk);
	if (e->tmp[0])
		CHECK(nftw(e->tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) == 0);
}

/* The path below the mount of a dir the code under test made. */
static const char *in_fake(const struct env *e, const char *dir)
{
	size_t n = strlen(e->mnt);
	return strncmp(dir, e->mnt, n) == 0 && dir[n] == '/' ? dir + n : "<outside the fake>";
}

/* ---- tests ---------------------------------------------------------------- */

/* Our own cgroup, and where the backend's parent must go: beside it (v2
 * cannot give controllers to a cgroup with processes), or under the root. */
static const struct v2case {
	const char *self, *host; /* host: in the fake, "" the root */
	const char *pre[2];      /* cgroups there before */
} v2cases[] = {
	{"0::/a/b\n", "/a", {"/a", "/a/b"}},
	{"0::/\n", "", {NULL, NULL}},
};

static void v2_lifecycle(const struct v2case *t)
{
	struct env e;
	struct ns_cgroups *cg = NULL;
	if (!env_open(&e, "cpu io memory pids", t->self, false))
		goto out;
	CHECK_EQ(fk_set(&e.fk, "/cgroup.subtree_control", "+memory +pids +cpu\n"), 0);
	for (int i = 0; i < 2 && t->pre[i]; i++)
		CHECK_EQ(fk_mkdir(&e.fk, t->pre[i]), 0);
	if (!CHECK_EQ(ns_cgroups_open_at(&e.src, &cg), 0))
		goto out;
	CHECK_EQ(ns_cgroups_version(cg), 2);
	const char *dirs[NS_CG_MAX_DIRS] = {0};
	CHECK_EQ(ns_cgroups_dirs(cg, dirs, NS_CG_MAX_DIRS), 1);
	char want[256], path[512];
	snprintf(want, sizeof want, "%s/vmpoolfs.%d.0", t->host, (int)getpid());
	const char *parent = in_fake(&e, dirs[0]);
	CHECKF(strcmp(parent, want) == 0, "parent %s, expected %s", parent, want);
	CHECK(fk_is_dir(&e.fk, want));
	CHECK_EQ(fk_count_dirs(&e.fk, "vmpoolfs"), 1);
	snprintf(path, sizeof path, "%s/cgroup.subtree_control", t->host);
	CHECK_VAL(&e.fk, path, "+memory +pids +cpu");
	snprintf(path, sizeof path, "%s/cgroup.subtree_control", want);
	CHECK_VAL(&e.fk, path, "+memory +pids +cpu");
	if (t->pre[1]) /* our own cgroup is left as it was */
		CHECK_VAL(&e.fk, "/a/b/cgroup.subtree_control", "");
	CHECK(ns_cgroups_has_cpu(cg));

	struct ns_cg c;
	const struct ns_cg_limits lim = {.mem_bytes = 64u << 20, .pids_max = 100, .cpu_milli = 1500};
	if (!CHECK_EQ(ns_cg_create(cg, "m1", &lim, &c), 0))
		goto out;
	CHECK_EQ(c.version, 2);
	CHECK_EQ(c.ndirs, 1);
	char leaf[300];
	snprintf(leaf, sizeof leaf, "%s/m1", want);
	CHECKF(strcmp(in_fake(&e, c.dirs[0]), leaf) == 0, "leaf %s", c.dirs[0]);
	snprintf(path, sizeof path, "%s/memory.max", leaf);
	CHECK_VAL(&e.fk, path, "67108864");
	snprintf(path, sizeof path, "%s/pids.max", leaf);
	CHECK_VAL(&e.fk, path, "100");
	snprintf(path, sizeof path, "%s/memory.swap.max", leaf);
	CHECK_VAL(&e.fk, path, "0");
	snprintf(path, sizeof path, "%s/cpu.max", leaf);
	CHECK_VAL(&e.fk, path, "150000 100000");

	struct ns_cg_clone st;
	struct stat a, b;
	if (CHECK_EQ(ns_cg_clone_begin(cg, &c, &st), 0) && CHECK(st.cgroup_fd >= 0)) {
		CHECK(fstat(st.cgroup_fd, &a) == 0 && stat(c.dirs[0], &b) == 0 && a.st_ino == b.st_ino &&
		      a.st_dev == b.st_dev);
		CHECK_EQ(ns_cg_clone_end(&st), 0);
		CHECK_EQ(st.cgroup_fd, -1);
	}

	uint64_t kills = 99;
	CHECK_EQ(ns_cg_oom_kills(&c, &kills), 0);
	CHECK_EQ(kills, 0);
	snprintf(path, sizeof path, "%s/memory.events", leaf);
	CHECK_EQ(fk_set(&e.fk, path, "low 0\nhigh 0\nmax 2\noom 1\noom_kill 3\n"), 0);
	CHECK_EQ(ns_cg_oom_kills(&c, &kills), 0);
	CHECK_EQ(kills, 3);

	CHECK_EQ(ns_cg_remove(&c), 0);
	CHECK(!fk_is_dir(&e.fk, leaf));
	CHECK(fk_is_dir(&e.fk, want));
	ns_cgroups_close(cg);
	cg = NULL;
	CHECK_EQ(fk_count_dirs(&e.fk, "vmpoolfs"), 0);
	for (int i = 0; i < 2 && t->pre[i]; i++)
		CHECK(fk_is_dir(&e.fk, t->pre[i]));
out:
	ns_cgroups_close(cg);
	env_close(&e);
}

static void test_v2_beside_own(void)
{
	v2_lifecycle(&v2cases[0]);
}

static void test_v2_at_root(void)
{
	v2_lifecycle(&v2cases[1]);
}

/* No memory or no pids controller for us: refused, nothing left behind. */
static void test_v2_unsupported(void)
{
	static const struct {
		const char *root_ctls, *root_subtree, *self;
	} cases[] = {
		{"cpu io pids", "", "0::/\n"},
		{"cpu io memory", "", "0::/\n"},
		{"cpu memory pids", "+memory\n", "0::/a/b\n"}, /* pids not delegated to /a */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct env e;
		struct ns_cgroups *cg = NULL;
		bool nested = strcmp(cases[i].self, "0::/\n") != 0;
		if (env_open(&e, cases[i].root_ctls, cases[i].self, false)) {
			CHECK_EQ(fk_set(&e.fk, "/cgroup.subtree_control", cases[i].root_subtree), 0);
			if (nested)
				CHECK(fk_mkdir(&e.fk, "/a") == 0 && fk_mkdir(&e.fk, "/a/b") == 0);
			CHECKF(ns_cgroups_open_at(&e.src, &cg) == -EOPNOTSUPP, "case %zu", i);
			CHECK(cg == NULL);
			CHECK_EQ(fk_count_dirs(&e.fk, "/"), nested ? 3 : 1);
			if (nested)
				CHECK_VAL(&e.fk, "/a/cgroup.subtree_control", "");
			else
				CHECK_VAL(&e.fk, "/cgroup.subtree_control", "");
		}
		ns_cgroups_close(cg);
		env_close(&e);
	}
}

/* cpu.max for a few limits (quota per 100 ms period, at least the kernel's
 * 1 ms); no cpu controller: open works, a CPU limit is refused, none is
 * fine. */
static void test_v2_cpu_max(void)
{
	static const struct {
		uint32_t milli;
		const char *want;
	} cases[] = {
		{1000, "100000 100000"}, {250, "25000 100000"}, {4000, "400000 100000"}, {5, "1000 100000"},
	};
	struct env e;
	struct ns_cgroups *cg = NULL;
	if (env_open(&e, "cpu memory pids", "0::/\n", false)) {
		if (CHECK_EQ(ns_cgroups_open_at(&e.src, &cg), 0)) {
			CHECK(ns_cgroups_has_cpu(cg));
			for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
				struct ns_cg c;
				const struct ns_cg_limits lim = {64u << 20, 100, cases[i].milli};
				if (!CHECK_EQ(ns_cg_create(cg, "m1", &lim, &c), 0))
					continue;
				char path[600];
				snprintf(path, sizeof path, "%s/cpu.max", in_fake(&e, c.dirs[0]));
				CHECK_VAL(&e.fk, path, cases[i].want);
				CHECK_EQ(ns_cg_remove(&c), 0);
			}
		}
		ns_cgroups_close(cg);
		cg = NULL;
	}
	env_close(&e);
	if (env_open(&e, "io memory pids", "0::/\n", false)) {
		if (CHECK_EQ(ns_cgroups_open_at(&e.src, &cg), 0)) {
			CHECK(!ns_cgroups_has_cpu(cg));
			CHECK_VAL(&e.fk, "/cgroup.subtree_control", "+memory +pids");
			struct ns_cg c;
			struct ns_cg_limits lim = {64u << 20, 100, 1000};
			CHECK_EQ(ns_cg_create(cg, "m1", &lim, &c), -EOPNOTSUPP);
			CHECK_EQ(fk_count_dirs(&e.fk, "/"), 2); /* the root and our parent: no leaf left */
			lim.cpu_milli = 0;
			if (CHECK_EQ(ns_cg_create(cg, "m1", &lim, &c), 0))
				CHECK_EQ(ns_cg_remove(&c), 0);
		}
		ns_cgroups_close(cg);
	}
	env_close(&e);
}

/* A parent whose daemon died is removed at open; a live one's stays. */
static void test_v2_stale_parents(void)
{
	struct env e;
	struct ns_cgroups *cg = NULL;
	pid_t dead = fork();
	if (dead == 0)
		_exit(0);
	REQUIRE(dead > 0);
	CHECK_EQ(waitpid(dead, NULL, 0), dead);
	pid_t live = fork();
	if (live == 0) {
		pause();
		_exit(0);
	}
	REQUIRE(live > 0);
	char dparent[64], dleaf[80], lparent[64], lleaf[80];
	snprintf(dparent, sizeof dparent, "/vmpoolfs.%d.0", (int)dead);
	snprintf(dleaf, sizeof dleaf, "%s/m3", dparent);
	snprintf(lparent, sizeof lparent, "/vmpoolfs.%d.0", (int)live);
	snprintf(lleaf, sizeof lleaf, "%s/m3", lparent);
	if (env_open(&e, "memory pids", "0::/\n", false)) {
		CHECK_EQ(fk_set(&e.fk, "/cgroup.subtree_control", "+memory +pids\n"), 0);
		const char *pre[] = {dparent, dleaf, lparent, lleaf, "/user.slice"};
		for (size_t i = 0; i < sizeof pre / sizeof pre[0]; i++)
			CHECK_EQ(fk_mkdir(&e.fk, pre[i]), 0);
		if (CHECK_EQ(ns_cgroups_open_at(&e.src, &cg), 0)) {
			CHECK(!fk_is_dir(&e.fk, dparent));
			CHECK(!fk_is_dir(&e.fk, dleaf));
			CHECK(fk_is_dir(&e.fk, lleaf));
			CHECK(fk_is_dir(&e.fk, "/user.slice"));
			CHECK_EQ(fk_count_dirs(&e.fk, "vmpoolfs"), 3); /* ours, the live one's and its leaf */
		}
		ns_cgroups_close(cg);
		CHECK(fk_is_dir(&e.fk, lleaf));
	}
	kill(live, SIGKILL);
	waitpid(live, NULL, 0);
	env_close(&e);
}

/* v1 memory, pids and cpu hierarchies next to a cgroup2 mount (hybrid):
 * v1 is used. The v1 mounts are plain dirs, enough for open and close (the
 * parent is only made there; limits need a v1 fake). */
static void test_hybrid_picks_v1(void)
{
	struct env e;
	struct ns_cgroups *cg = NULL;
	if (!env_open(&e, "cpu memory pids", "12:pids:/\n4:memory:/user.slice\n1:cpu,cpuacct:/\n0::/\n", true))
		goto out;
	char mem[200], pids[200], cpu[200], want[3][300];
	snprintf(mem, sizeof mem, "%s/memory", e.tmp);
	snprintf(pids, sizeof pids, "%s/pids", e.tmp);
	snprintf(cpu, sizeof cpu, "%s/cpu", e.tmp);
	CHECK(mkdir(mem, 0755) == 0 && mkdir(pids, 0755) == 0 && mkdir(cpu, 0755) == 0);
	strcat(mem, "/user.slice");
	CHECK(mkdir(mem, 0755) == 0);
	snprintf(want[0], sizeof want[0], "%s/vmpoolfs.%d.0", mem, (int)getpid());
	snprintf(want[1], sizeof want[1], "%s/vmpoolfs.%d.0", pids, (int)getpid());
	snprintf(want[2], sizeof want[2], "%s/vmpoolfs.%d.0", cpu, (int)getpid());
	if (!CHECK_EQ(ns_cgroups_open_at(&e.src, &cg), 0))
		goto out;
	CHECK_EQ(ns_cgroups_version(cg), 1);
	const char *dirs[NS_CG_MAX_DIRS] = {0};
	CHECK(ns_cgroups_has_cpu(cg));
	if (CHECK_EQ(ns_cgroups_dirs(cg, dirs, NS_CG_MAX_DIRS), 3)) {
		struct stat st;
		for (int i = 0; i < 3; i++)
			CHECKF(strcmp(dirs[i], want[i]) == 0 && stat(dirs[i], &st) == 0 && S_ISDIR(st.st_mode),
			       "dir %d is %s", i, dirs[i]);
	}
	CHECK_EQ(fk_count_dirs(&e.fk, "/"), 1);
	CHECK_VAL(&e.fk, "/cgroup.subtree_control", "");
	ns_cgroups_close(cg);
	cg = NULL;
	CHECK(access(want[0], F_OK) != 0 && access(want[1], F_OK) != 0 && access(want[2], F_OK) != 0);
out:
	ns_cgroups_close(cg);
	env_close(&e);
}

int main(void)
{
	if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) != 0) {
		printf("SKIP: mounting the fake cgroupfs needs root and /dev/fuse\n");
		return 77;
	}
	static const struct tap_test tests[] = {
		{"v2: parent beside our own cgroup, limits, clone fd, oom_kill, cleanup", test_v2_beside_own},
		{"v2: parent under the root when we are at the root", test_v2_at_root},
		{"v2: no memory or pids controller: EOPNOTSUPP, nothing left", test_v2_unsupported},
		{"v2: cpu.max from the CPU limit; none without a cpu controller", test_v2_cpu_max},
		{"v2: stale parents of dead daemons removed, live ones kept", test_v2_stale_parents},
		{"hybrid v1 + cgroup2: v1 is picked, with its cpu hierarchy", test_hybrid_picks_v1},
	};
	return tap_main(tests, sizeof tests / sizeof tests[0]);
}
