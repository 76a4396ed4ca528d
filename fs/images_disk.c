/* The image registry's files and its changes on disk: the texts of
 * images/NAME/, rmdir of an image, and snapshots; see images.h. */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "images.h"
#include "images_int.h"
#include "info.h"
#include "lib/vlog.h"

/* ---- texts -------------------------------------------------------------------- */

int image_format_stats(struct image *img, char **out, size_t *len)
{
	struct pool_stats st;
	memset(&st, 0, sizeof st);
	vp_mutex_lock(&img->ims->lock);
	if (img->pool)
		pool_get_stats(img->pool, &st);
	int machines = img->machines;
	vp_mutex_unlock(&img->ims->lock);
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	if (!f)
		return -ENOMEM;
	info_print_pool_stats(f, &st);
	fprintf(f, "machines=%d\n", machines < 0 ? 0 : machines);
	return info_memstream_done(f, &buf, out);
}

int image_format_config(struct image *img, char **out, size_t *len)
{
	vp_mutex_lock(&img->ims->lock);
	bool open = img->pool != NULL;
	struct pool_config pc = open ? img->pool_cfg : img->ims->pool_cfg;
	int machines = img->machines, children = img->children;
	vp_mutex_unlock(&img->ims->lock);
	char parent[PATH_MAX], why[300];
	if (!open && !img->is_default)
		(void)image_read_pool_conf(img, &pc, why, sizeof why); /* what the first mkdir will use */
	if (images_read_parent(img->dir, parent, sizeof parent) < 0)
		parent[0] = '\0';
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	if (!f)
		return -ENOMEM;
	fprintf(f, "name=%s\n", img->name);
	fprintf(f, "dir=%s\n", img->dir);
	fprintf(f, "kind=%s\n", parent[0] ? "snapshot" : "base");
	fprintf(f, "parent=%s\n", parent);
	fprintf(f, "default=%d\n", img->is_default);
	fprintf(f, "pool=%s\n", open ? "open" : "closed");
	fprintf(f, "backend=%s\n", open ? machine_backend_name(img->backend) : "");
	fprintf(f, "min=%u\n", pc.min_size);
	fprintf(f, "max=%u\n", pc.max_size);
	fprintf(f, "idle=%u\n", pc.max_idle_ms / 1000u);
	fprintf(f, "max_machines=%u\n", pc.max_machines);
	fprintf(f, "machines=%d\n", machines < 0 ? 0 : machines);
	fprintf(f, "children=%d\n", children);
	return info_memstream_done(f, &buf, out);
}

#define MANIFEST_MAX (1u << 20)

int image_read_manifest(struct image *img, char **out, size_t *len)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/manifest", img->dir);
	*len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno != ENOENT)
		return -errno;
	char *buf = malloc(MANIFEST_MAX);
	if (!buf) {
		if (fd >= 0)
			close(fd);
		return -ENOMEM;
	}
	while (fd >= 0 && *len < MANIFEST_MAX) {
		ssize_t n = read(fd, buf + *len, MANIFEST_MAX - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		*len += (size_t)n;
	}
	if (fd >= 0)
		close(fd);
	char *shrunk = realloc(buf, *len ? *len : 1);
	*out = shrunk ? shrunk : buf;
	return 0;
}

/* ---- on disk ------------------------------------------------------------------ */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if ((flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int rm_rf(const char *path)
{
	return nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* IMAGES/.lock, taken (flock): the builder takes it too. */
static int lock_images(const char *dir)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/.lock", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	while (flock(fd, LOCK_EX) < 0)
		if (errno != EINTR) {
			int err = -errno;
			close(fd);
			return err;
		}
	return fd;
}

int images_remove(struct images *ims, const char *name)
{
	if (!images_valid_name(name))
		return -ENOENT;
	struct image *img = images_get(ims, name);
	if (!img)
		return -ENOENT;
	vp_mutex_lock(&ims->lock);
	int err = 0;
	if (img->is_default || img->machines > 0 || img->children > 0 || img->removed)
		err = img->removed ? -ENOENT : -EBUSY;
	else
		img->removed = true;
	vp_mutex_unlock(&ims->lock);
	if (err) {
		if (err == -EBUSY)
			vlog_warn(NULL, "rmdir images/%s: %s", name,
				  img->is_default ? "the mount's default image"
						  : "in use by machines or snapshots");
		image_put(img);
		return err;
	}
	/* Its pool has no machine out (machines == 0): free it now. A
	 * concurrent opener sees `removed` under open_lock. */
	vp_mutex_lock(&img->open_lock);
	vp_mutex_lock(&ims->lock);
	struct pool *p = img->pool;
	struct machine_backend *b = img->backend;
	img->pool = NULL;
	img->backend = NULL;
	vp_mutex_unlock(&ims->lock);
	vp_mutex_unlock(&img->open_lock);
	pool_free(p);
	machine_backend_close(b);
	/* Out of sight first (one rename), then deleted. */
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof tmp, "%s/.tmp-rm-%s.%d.%u", ims->dir, name, (int)getpid(), img->id);
	int lfd = lock_images(ims->dir);
	if (lfd < 0 || rename(img->dir, tmp) < 0) {
		err = lfd < 0 ? lfd : -errno;
		vlog_warn(NULL, "rmdir images/%s: %s", name, strerror(-err));
	}
	if (lfd >= 0)
		close(lfd);
	if (!err)
		(void)rm_rf(tmp);
	vp_mutex_lock(&ims->lock);
	list_del(&img->link);
	list_init(&img->link);
	struct image *parent = img->parent;
	if (parent)
		parent->children--;
	vp_mutex_unlock(&ims->lock);
	image_put(img); /* the list's */
	image_put(img); /* ours */
	return 0;
}

/* ---- snapshots ---------------------------------------------------------------- */

/* Bytes under dirfd (its files' sizes, each hard link once is not worth
 * it: an estimate for the manifest). */
static uint64_t du(int dfd, int depth)
{
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return 0;
	}
	uint64_t total = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(st.st_mode) && depth < 64) {
			int sub = openat(dirfd(d), de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				total += du(sub, depth + 1);
		} else if (S_ISREG(st.st_mode)) {
			total += (uint64_t)st.st_size;
		}
	}
	closedir(d);
	return total;
}

static int write_text(const char *dir, const char *file, const char *text)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	FILE *f = fopen(path, "we");
	if (!f)
		return -errno;
	fputs(text, f);
	return fclose(f) == 0 ? 0 : -EIO;
}

/* parent (its NAME, or its path when it is not one of IMAGES) and the
 * manifest of a snapshot, into tmp. */
static int write_meta(const char *tmp, const char *name, const struct image *parent)
{
	const char *pname = parent->name[0] ? parent->name : parent->dir;
	char *text = NULL;
	if (asprintf(&text, "%s\n", pname) < 0)
		return -ENOMEM;
	int err = write_text(tmp, "parent", text);
	free(text);
	if (err)
		return err;
	char layer[PATH_MAX + 8], when[32];
	snprintf(layer, sizeof layer, "%s/layer", tmp);
	int lfd = open(layer, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	uint64_t size = lfd >= 0 ? du(lfd, 0) : 0;
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (asprintf(&text, "name=%s\nkind=snapshot\nparent=%s\ncreated=%s\nsize_bytes=%llu\n", name, pname,
		     when, (unsigned long long)size) < 0)
		return -ENOMEM;
	err = write_text(tmp, "manifest", text);
	free(text);
	return err;
}

int images_snapshot(struct images *ims, struct image *parent, struct machine *m, const char *name, char *why,
		    size_t cap)
{
	why[0] = '\0';
	if (!images_valid_name(name)) {
		snprintf(why, cap, "bad image name '%.80s' (letters, digits, '.', '_', '-'; 64 at most)",
			 name);
		return -EINVAL;
	}
	if (!ims->dir) {
		snprintf(why, cap, "no images directory %s (-o images=DIR)",
			 ims->want_dir ? ims->want_dir : "");
		return -ENOENT;
	}
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s/%s", ims->dir, name);
	struct image *img = images_image_new(ims, name, dir);
	if (!img)
		return -ENOMEM;
	/* The name, reserved (not visible) while the copy runs. */
	images_rescan(ims);
	vp_mutex_lock(&ims->lock);
	int err = images_name_taken_locked(ims, name) || access(dir, F_OK) == 0 ? -EEXIST : 0;
	if (!err) {
		img->pending = true;
		images_link_locked(ims, img, parent->name[0] ? parent->name : NULL);
	}
	vp_mutex_unlock(&ims->lock);
	if (err) {
		snprintf(why, cap, "image %s exists", name);
		image_put(img);
		return err;
	}
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof tmp, "%s/.tmp-%s.XXXXXX", ims->dir, name);
	int lfd = lock_images(ims->dir);
	if (lfd < 0) {
		err = lfd;
		snprintf(why, cap, "cannot lock %s/.lock: %s", ims->dir, strerror(-err));
	} else if (!mkdtemp(tmp) || chmod(tmp, 0755) < 0) {
		err = -errno;
		snprintf(why, cap, "cannot make %s: %s", tmp, strerror(-err));
		tmp[0] = '\0';
	} else if ((err = machine_snapshot(m, tmp))) {
		snprintf(why, cap, "%s",
			 err == -EOPNOTSUPP ? "this backend has no snapshots" : strerror(-err));
	} else if ((err = write_meta(tmp, name, parent))) {
		snprintf(why, cap, "cannot write the manifest: %s", strerror(-err));
	} else if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_NOREPLACE) < 0) {
		err = -errno;
		snprintf(why, cap, "cannot rename it into place: %s", strerror(-err));
	}
	if (err && tmp[0] && lfd >= 0)
		(void)rm_rf(tmp);
	if (lfd >= 0)
		close(lfd);
	vp_mutex_lock(&ims->lock);
	if (err) {
		list_del(&img->link);
		list_init(&img->link);
		if (img->parent)
			img->parent->children--;
	} else {
		img->pending = false;
	}
	vp_mutex_unlock(&ims->lock);
	if (err)
		image_put(img); /* the list's: frees it, and its parent link */
	return err;
}
