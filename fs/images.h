/* The image registry: every image of the images directory (docs/design.md
 * §4, the IMAGES layout) and the mount's default image, each with its own
 * machine backend and warm pool, opened on first use.
 *
 * An image is IMAGES/NAME/ (a base image: rootfs/; a snapshot: layer/ and
 * `parent`), or the directory `-o image=PATH` names. The registry scans
 * IMAGES at open and again when images/ is listed or a name is not known
 * yet (the builder adds images while the daemon runs). Its counts say
 * what holds an image: `machines` (acquired or being acquired from its
 * pool) and `children` (snapshot images whose parent it is); rmdir of an
 * image is refused (EBUSY) while either is not zero, and for the default.
 *
 * Snapshots (images_snapshot) are made in IMAGES/.tmp-NAME.XXXXXX and
 * renamed into place under IMAGES/.lock (flock, shared with the builder),
 * so a failure leaves nothing; removal renames away first, then deletes.
 *
 * Locks: `image.open_lock` (held while the image's backend and pool are
 * opened, slow: a backend open checks the host and may boot a template)
 * before `images.lock` (names, ids, counts, each image's pool pointer),
 * before `pool.mu` (pool_get_stats under images.lock). Nothing else is
 * taken under images.lock, and no machine op or pool_free runs under it.
 *
 * An image struct is counted (`refs`): the registry's list, each session
 * made from it, open files, and a snapshot child's parent link. */
#ifndef VPFS_IMAGES_H
#define VPFS_IMAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pool/pool.h"
#include "vmm/machine.h"

struct images;
struct image;

struct images_cfg {
	const char *dir;		 /* IMAGES; NULL or missing: only the default image */
	const char *default_image;	 /* a NAME in dir, or a path (contains '/') */
	const struct machine_config *mc; /* image_dir is set per image */
	const struct pool_config *pool;	 /* the default image's; others start from it, then pool.conf */
};

/* Scans dir and opens the default image's backend and pool (min warm).
 * On failure `why` says what failed (cap bytes). */
int images_open(const struct images_cfg *cfg, struct images **out, char *why, size_t cap);
/* After every machine has been released: frees every pool, then every backend. */
void images_close(struct images *ims);

/* A valid image NAME: [A-Za-z0-9][A-Za-z0-9._-]{0,63}. */
bool images_valid_name(const char *name);

/* The default image (no reference needed: it lives until close). */
struct image *images_default(struct images *ims);
/* By name (rescanning IMAGES once when unknown) or by id; with a
 * reference, NULL when there is none (or it was removed). */
struct image *images_get(struct images *ims, const char *name);
struct image *images_by_id(struct images *ims, uint32_t id);
void image_ref(struct image *img);
void image_put(struct image *img);
/* After a rescan, fn for every image of IMAGES (the listing of images/);
 * stops at the first non-zero result and returns it. */
int images_each(struct images *ims, int (*fn)(void *ctx, const char *name, uint32_t id), void *ctx);

/* Constant for the image's life. */
uint32_t image_id(const struct image *img);
const char *image_name(const struct image *img); /* "" for a default image given by path */
bool image_is_default(const struct image *img);

/* A machine of img is about to be acquired: counts it and opens the
 * image's backend and pool on first use (pool.conf). -ENOENT once the
 * image is removed, the backend's error otherwise. Pair with
 * image_machine_put after pool_release. */
int image_machine_get(struct image *img, struct pool **pool);
void image_machine_put(struct image *img);
/* The default image's backend and pool (open from images_open on). */
struct machine_backend *image_backend(struct image *img);
struct pool *image_pool(struct image *img);

/* Texts of images/NAME/{stats,config,manifest}; malloc'ed. */
int image_format_stats(struct image *img, char **out, size_t *len);
int image_format_config(struct image *img, char **out, size_t *len);
int image_read_manifest(struct image *img, char **out, size_t *len);

/* rmdir images/NAME: -ENOENT, -EBUSY (in use, a parent, or the default). */
int images_remove(struct images *ims, const char *name);
/* `snapshot NAME` of a machine acquired from parent (no command running):
 * the new image appears at once. -EINVAL (bad name), -EEXIST, -ENOENT (no
 * images directory), -EOPNOTSUPP (backend), or the copy's error; `why`
 * gets a line for the machine's log. */
int images_snapshot(struct images *ims, struct image *parent, struct machine *m, const char *name, char *why,
		    size_t cap);

#endif
