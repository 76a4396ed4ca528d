/* The image registry; see images.h. Snapshots and removal on disk are in
 * images_disk.c. */
#include "images.h"
#include "images_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/machine_pool.h"
#include "lib/vlog.h"

bool images_valid_name(const char *name)
{
	size_t n = strlen(name);
	if (n < 1 || n > IMAGE_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
			return false;
	}
	return true;
}

/* ---- image structs ------------------------------------------------------ */

void image_ref(struct image *img)
{
	__atomic_add_fetch(&img->refs, 1, __ATOMIC_RELAXED);
}

void image_put(struct image *img)
{
	if (!img || __atomic_sub_fetch(&img->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	/* The last reference: no session, file or child holds it, so its
	 * pool (if a removal did not free it already) has no machine out. */
	pool_free(img->pool);
	machine_backend_close(img->backend);
	if (img->parent)
		image_put(img->parent);
	vp_mutex_destroy(&img->open_lock);
	free(img->dir);
	free(img);
}

uint32_t image_id(const struct image *img)
{
	return img->id;
}

const char *image_name(const struct image *img)
{
	return img->name;
}

bool image_is_default(const struct image *img)
{
	return img->is_default;
}

struct image *images_image_new(struct images *ims, const char *name, const char *dir)
{
	struct image *img = calloc(1, sizeof *img);
	if (!img || !(img->dir = strdup(dir))) {
		free(img);
		return NULL;
	}
	snprintf(img->name, sizeof img->name, "%s", name);
	img->ims = ims;
	img->refs = 1;
	list_init(&img->link);
	vp_mutex_init(&img->open_lock);
	return img;
}

/* Under ims->lock. */
static struct image *find_name(struct images *ims, const char *name) REQUIRES(&ims->lock)
{
	list_for_each (&ims->list, it) {
		struct image *img = container_of(it, struct image, link);
		if (!img->pending && strcmp(img->name, name) == 0)
			return img;
	}
	return NULL;
}

/* Under ims->lock: name is taken, visible or being made. */
bool images_name_taken_locked(struct images *ims, const char *name)
{
	list_for_each (&ims->list, it) {
		struct image *img = container_of(it, struct image, link);
		if (strcmp(img->name, name) == 0)
			return true;
	}
	return false;
}

/* Under ims->lock: img gets an id and joins the list (taking the list's
 * reference); its parent link, when it names a listed image, counts. */
void images_link_locked(struct images *ims, struct image *img, const char *parent_name)
{
	img->id = ims->next_id++;
	list_add_tail(&ims->list, &img->link);
	if (parent_name && parent_name[0] && !strchr(parent_name, '/')) {
		struct image *p = find_name(ims, parent_name);
		if (p) {
			image_ref(p);
			img->parent = p;
			p->children++;
		}
	}
}

/* ---- scanning ------------------------------------------------------------ */

/* An image directory: rootfs/ (ns), initramfs.cpio.gz (kvm) or layer/
 * (a snapshot). */
static bool looks_like_image(int dfd, const char *name)
{
	static const char *const parts[] = { "rootfs", "layer", "initramfs.cpio.gz" };
	char p[NAME_MAX + 32];
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", name, parts[i]);
		if (faccessat(dfd, p, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			return true;
	}
	return false;
}

int images_read_parent(const char *dir, char *out, size_t cap)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/parent", dir);
	out[0] = '\0';
	FILE *f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	if (!fgets(out, (int)cap, f))
		out[0] = '\0';
	fclose(f);
	out[strcspn(out, "\n")] = '\0';
	return 0;
}

/* New images of IMAGES join the registry, parents before children so
 * that their links count (a parent missing stays unlinked). */
void images_rescan(struct images *ims)
{
	if (!ims->dir)
		return;
	int dfd = open(ims->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return;
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return;
	}
	struct {
		char name[IMAGE_NAME_MAX + 1];
		char parent[PATH_MAX];
	} *found = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!images_valid_name(de->d_name) || !looks_like_image(dirfd(d), de->d_name))
			continue;
		void *nf = realloc(found, (n + 1) * sizeof *found);
		if (!nf)
			break;
		found = nf;
		memcpy(found[n].name, de->d_name, strlen(de->d_name) + 1); /* a valid name: short */
		char dir[PATH_MAX];
		snprintf(dir, sizeof dir, "%s/%s", ims->dir, de->d_name);
		if (images_read_parent(dir, found[n].parent, sizeof found[n].parent) < 0)
			found[n].parent[0] = '\0';
		n++;
	}
	closedir(d);
	/* Add in rounds: an image whose parent is listed but not yet in the
	 * registry waits for a later round. */
	vp_mutex_lock(&ims->lock);
	bool *done = calloc(n ? n : 1, sizeof *done);
	for (bool progress = true; done && progress;) {
		progress = false;
		for (size_t i = 0; i < n; i++) {
			if (done[i])
				continue;
			if (images_name_taken_locked(ims, found[i].name)) {
				done[i] = true;
				continue;
			}
			const char *pn = found[i].parent;
			bool parent_waits = false;
			for (size_t j = 0; pn[0] && j < n && !parent_waits; j++)
				parent_waits = !done[j] && j != i && strcmp(found[j].name, pn) == 0;
			if (parent_waits)
				continue;
			char dir[PATH_MAX];
			snprintf(dir, sizeof dir, "%s/%s", ims->dir, found[i].name);
			struct image *img = images_image_new(ims, found[i].name, dir);
			if (img)
				images_link_locked(ims, img, pn);
			done[i] = progress = true;
		}
	}
	/* A parent cycle never joins; it could not boot anyway. Images whose
	 * directory went away behind our back (the builder's rm) leave the
	 * registry once nothing uses them. */
	struct list_node gone;
	list_init(&gone);
	for (struct list_node *it = ims->list.next, *nx; it != &ims->list; it = nx) {
		nx = it->next;
		struct image *img = container_of(it, struct image, link);
		bool listed = false;
		for (size_t i = 0; i < n && !listed; i++)
			listed = strcmp(found[i].name, img->name) == 0;
		if (listed || img->pending || img->is_default || img->machines > 0 || img->children > 0 ||
		    access(img->dir, F_OK) == 0)
			continue;
		img->removed = true;
		if (img->parent)
			img->parent->children--;
		list_del(&img->link);
		list_add_tail(&gone, &img->link);
	}
	vp_mutex_unlock(&ims->lock);
	while (!list_empty(&gone)) {
		struct image *img = container_of(gone.next, struct image, link);
		list_del(&img->link);
		list_init(&img->link);
		image_put(img); /* the list's; open files keep theirs (ESTALE by id) */
	}
	free(done);
	free(found);
}

/* ---- open / close --------------------------------------------------------- */

int images_open(const struct images_cfg *cfg, struct images **out, char *why, size_t cap)
{
	why[0] = '\0';
	struct images *ims = calloc(1, sizeof *ims);
	if (!ims)
		return -ENOMEM;
	vp_mutex_init(&ims->lock);
	list_init(&ims->list);
	ims->next_id = 1;
	ims->mc = *cfg->mc;
	ims->pool_cfg = *cfg->pool;
	struct stat st;
	int err = -ENOMEM;
	if (cfg->dir && stat(cfg->dir, &st) == 0 && S_ISDIR(st.st_mode) &&
	    !(ims->dir = realpath(cfg->dir, NULL)))
		goto fail;
	if (cfg->dir && !ims->dir && !(ims->want_dir = strdup(cfg->dir)))
		goto fail;
	images_rescan(ims);
	const char *def = cfg->default_image;
	if (strchr(def, '/')) {
		/* a path: the default image is not one of IMAGES (unless it is) */
		char *real = realpath(def, NULL);
		const char *slash = real ? strrchr(real, '/') : NULL;
		if (real && ims->dir && slash && (size_t)(slash - real) == strlen(ims->dir) &&
		    strncmp(real, ims->dir, strlen(ims->dir)) == 0)
			ims->def = images_get(ims, slash + 1);
		if (ims->def) {
			image_put(ims->def); /* the list keeps it */
		} else {
			ims->def = images_image_new(ims, "", real ? real : def);
			if (ims->def) {
				vp_mutex_lock(&ims->lock);
				ims->def->id = ims->next_id++;
				vp_mutex_unlock(&ims->lock);
			}
		}
		free(real);
		if (!ims->def)
			goto fail;
	} else {
		if (!(ims->def = images_get(ims, def))) {
			snprintf(why, cap, "no image '%s' in %s", def,
				 ims->dir ? ims->dir : "(no images directory)");
			err = -ENOENT;
			goto fail;
		}
		image_put(ims->def);
	}
	ims->def->is_default = true;
	if ((err = image_open_pool(ims->def, why, cap)))
		goto fail;
	*out = ims;
	return 0;
fail:
	images_close(ims);
	return err;
}

void images_close(struct images *ims)
{
	if (!ims)
		return;
	/* Pools first (each destroys its machines through its backend). */
	list_for_each (&ims->list, it) {
		struct image *img = container_of(it, struct image, link);
		pool_free(img->pool);
		img->pool = NULL;
	}
	if (ims->def && !list_linked(&ims->def->link)) {
		pool_free(ims->def->pool);
		ims->def->pool = NULL;
		image_put(ims->def);
	}
	while (!list_empty(&ims->list)) {
		struct image *img = container_of(ims->list.next, struct image, link);
		list_del(&img->link);
		image_put(img);
	}
	free(ims->dir);
	free(ims->want_dir);
	vp_mutex_destroy(&ims->lock);
	free(ims);
}

/* ---- lookups ----------------------------------------------------------------- */

struct image *images_default(struct images *ims)
{
	return ims->def;
}

static struct image *get_locked(struct images *ims, const char *name) REQUIRES(&ims->lock)
{
	struct image *img = find_name(ims, name);
	if (img)
		image_ref(img);
	return img;
}

struct image *images_get(struct images *ims, const char *name)
{
	if (!images_valid_name(name))
		return NULL;
	vp_mutex_lock(&ims->lock);
	struct image *img = get_locked(ims, name);
	vp_mutex_unlock(&ims->lock);
	if (img)
		return img;
	images_rescan(ims);
	vp_mutex_lock(&ims->lock);
	img = get_locked(ims, name);
	vp_mutex_unlock(&ims->lock);
	return img;
}

struct image *images_by_id(struct images *ims, uint32_t id)
{
	struct image *img = NULL;
	vp_mutex_lock(&ims->lock);
	if (ims->def && ims->def->id == id) {
		img = ims->def;
	} else {
		list_for_each (&ims->list, it) {
			struct image *i = container_of(it, struct image, link);
			if (i->id == id && !i->pending) {
				img = i;
				break;
			}
		}
	}
	if (img)
		image_ref(img);
	vp_mutex_unlock(&ims->lock);
	return img;
}

int images_each(struct images *ims, int (*fn)(void *ctx, const char *name, uint32_t id), void *ctx)
{
	images_rescan(ims);
	int r = 0;
	vp_mutex_lock(&ims->lock);
	list_for_each (&ims->list, it) {
		const struct image *img = container_of(it, struct image, link);
		if (!img->pending && (r = fn(ctx, img->name, img->id)) != 0)
			break;
	}
	vp_mutex_unlock(&ims->lock);
	return r;
}

/* ---- pools ------------------------------------------------------------------- */

/* pool.conf beside the image: min=, max=, idle= over the mount's. */
int image_read_pool_conf(const struct image *img, struct pool_config *pc, char *why, size_t cap)
{
	char path[PATH_MAX], line[256];
	snprintf(path, sizeof path, "%s/pool.conf", img->dir);
	FILE *f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	int err = 0;
	while (!err && fgets(line, sizeof line, f)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (!line[0] || line[0] == '#')
			continue;
		char *eq = strchr(line, '='), *end = NULL;
		unsigned long v = eq ? strtoul(eq + 1, &end, 10) : 0;
		if (!eq || end == eq + 1 || *end || v > 1000000) {
			err = -EINVAL;
		} else {
			*eq = '\0';
			if (strcmp(line, "min") == 0)
				pc->min_size = (uint32_t)v;
			else if (strcmp(line, "max") == 0)
				pc->max_size = (uint32_t)v;
			else if (strcmp(line, "idle") == 0)
				pc->max_idle_ms = (uint32_t)v * 1000u;
			else
				err = -EINVAL;
			*eq = '=';
		}
		if (err)
			snprintf(why, cap, "%s: bad line '%s' (min=, max=, idle= with a number)", path, line);
	}
	fclose(f);
	if (!err && pool_config_validate(pc) < 0) {
		snprintf(why, cap, "%s: min=%u max=%u do not fit (max_machines=%u)", path, pc->min_size,
			 pc->max_size, pc->max_machines);
		err = -EINVAL;
	}
	return err;
}

int image_open_pool(struct image *img, char *why, size_t cap)
{
	struct images *ims = img->ims;
	vp_mutex_lock(&img->open_lock);
	vp_mutex_lock(&ims->lock);
	bool have = img->pool != NULL, gone = img->removed;
	vp_mutex_unlock(&ims->lock);
	int err = gone ? -ENOENT : 0;
	if (have || gone)
		goto out;
	struct pool_config pc = ims->pool_cfg;
	if (!img->is_default && (err = image_read_pool_conf(img, &pc, why, cap)))
		goto out;
	struct machine_config mc = ims->mc;
	mc.image_dir = img->dir;
	struct machine_backend *b = NULL;
	if ((err = machine_backend_open_why(&mc, &b, why, cap)))
		goto out;
	struct pool *p = NULL;
	if ((err = pool_new(&pc, &machine_pool_ops, b, &p))) {
		machine_backend_close(b);
		snprintf(why, cap, "cannot start the pool: %s", strerror(-err));
		goto out;
	}
	vp_mutex_lock(&ims->lock);
	img->backend = b;
	img->pool = p;
	img->pool_cfg = pc;
	vp_mutex_unlock(&ims->lock);
out:
	vp_mutex_unlock(&img->open_lock);
	return err;
}

int image_machine_get(struct image *img, struct pool **pool)
{
	struct images *ims = img->ims;
	vp_mutex_lock(&ims->lock);
	int err = img->removed ? -ENOENT : 0;
	if (!err)
		img->machines++;
	struct pool *p = img->pool;
	vp_mutex_unlock(&ims->lock);
	if (err)
		return err;
	if (!p) {
		char why[512];
		err = image_open_pool(img, why, sizeof why);
		if (err) {
			vlog_err(NULL, "image %s: %s%s%s", img->name[0] ? img->name : img->dir,
				 strerror(-err), why[0] ? ": " : "", why);
			image_machine_put(img);
			return err;
		}
		vp_mutex_lock(&ims->lock);
		p = img->pool;
		vp_mutex_unlock(&ims->lock);
	}
	*pool = p;
	return 0;
}

void image_machine_put(struct image *img)
{
	vp_mutex_lock(&img->ims->lock);
	img->machines--;
	vp_mutex_unlock(&img->ims->lock);
}

struct machine_backend *image_backend(struct image *img)
{
	return img->backend; /* set before the loop, for the default */
}

struct pool *image_pool(struct image *img)
{
	return img->pool;
}
