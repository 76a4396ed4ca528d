/* The image registry's structs, shared by images.c (registry, pools) and
 * images_disk.c (texts, removal, snapshots); see images.h for the rules. */
#ifndef VPFS_IMAGES_INT_H
#define VPFS_IMAGES_INT_H

#include <stdbool.h>

#include "images.h"
#include "lib/list.h"
#include "lib/thread_safety.h"

#define IMAGE_NAME_MAX 64

struct image {
	/* Constant once linked. */
	struct images *ims;
	char name[IMAGE_NAME_MAX + 1]; /* "" for a default given by path */
	char *dir;		       /* absolute */
	uint32_t id;		       /* never reused: a stale inode answers ESTALE */
	bool is_default;
	struct image *parent; /* a snapshot's parent in the registry (a reference), or NULL */
	int refs;	      /* atomic */

	/* Held while the backend and pool are opened (before ims->lock). */
	struct vp_mutex open_lock;

	/* Under ims->lock. */
	struct list_node link; /* in ims->list */
	bool pending;	       /* a snapshot being made: the name is taken, not visible */
	bool removed;	       /* rmdir done: no new machine */
	int machines;	       /* acquired or being acquired from its pool */
	int children;	       /* snapshot images whose parent it is */
	struct machine_backend *backend;
	struct pool *pool;
	struct pool_config pool_cfg; /* in effect once the pool is open */
};

struct images {
	/* Constant after open. */
	char *dir;	/* IMAGES (absolute), NULL when it did not exist at open */
	char *want_dir; /* IMAGES as given, when it did not exist: made by the first snapshot */
	struct machine_config mc;
	struct pool_config pool_cfg;
	struct image *def;

	struct vp_mutex lock;
	struct list_node list GUARDED_BY(lock); /* the images of IMAGES */
	uint32_t next_id GUARDED_BY(lock);
};

bool images_name_taken_locked(struct images *ims, const char *name) REQUIRES(&ims->lock);
void images_link_locked(struct images *ims, struct image *img, const char *parent_name) REQUIRES(&ims->lock);
/* A new image struct for dir (not linked, one reference); NULL: ENOMEM. */
struct image *images_image_new(struct images *ims, const char *name, const char *dir);
/* Images of IMAGES not known yet join the registry. */
void images_rescan(struct images *ims);
/* dir/parent's one line into out ("" when there is none). */
int images_read_parent(const char *dir, char *out, size_t cap);
/* pool.conf beside the image over pc (min=, max=, idle=); -EINVAL with why. */
int image_read_pool_conf(const struct image *img, struct pool_config *pc, char *why, size_t cap);
/* Opens img's backend and pool unless open (under img->open_lock). */
int image_open_pool(struct image *img, char *why, size_t cap);

#endif
