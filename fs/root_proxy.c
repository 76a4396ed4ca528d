/* root/ proxy: FUSE low-level operations forwarded to the guest agent's file
 * operations. See root_proxy.h for the contract and root_proxy_int.h for
 * how the files share the work; this one holds the lifetime.
 *
 * Caching. Entries and attributes live 1 s; lookups that fail are not
 * cached (no negative entries) so a file a command creates shows up at once.
 * Page cache is dropped on every open (no keep_cache); write-only opens
 * bypass it (direct I/O, see root_proxy_file.c). rp_invalidate (after a
 * command) drops attributes and pages of every inode handed out and expires
 * the dentry each was last handed out under, so changes a command made are
 * seen at once. A regular file the guest reports with size 0 is opened with
 * direct_io: that is what procfs (and debugfs, configfs, ...) files look
 * like, and with the page cache the kernel would never read past the size
 * it believes. Deciding by size rather than by path keeps the proxy node
 * based (it never knows paths) and also covers such filesystems mounted
 * anywhere; sysfs files (size 4096) need nothing special because a short
 * read already ends them. */
#include "fs/root_proxy_int.h"

#include <errno.h>
#include <stdlib.h>

int rp_new(struct vp_client *client, uint64_t ino_base, struct root_proxy **out)
{
	*out = NULL;
	if (!client || (ino_base & RP_NODE_MASK) != 0)
		return -EINVAL;
	struct root_proxy *rp = calloc(1, sizeof(*rp));
	if (!rp)
		return -ENOMEM;
	rp->client = client;
	rp->ino_base = ino_base;
	int err = rpi_nodes_init(rp);
	if (err) {
		free(rp);
		return err;
	}
	err = rpi_wb_init(rp);
	if (err) {
		rpi_nodes_fini(rp);
		free(rp);
		return err;
	}
	*out = rp;
	return 0;
}

void rp_free(struct root_proxy *rp)
{
	if (!rp)
		return;
	/* Writes still in flight call back into rp: they end first. */
	rpi_wb_fini(rp);
	rpi_nodes_fini(rp);
	free(rp);
}

fuse_ino_t rp_root_ino(const struct root_proxy *rp)
{
	return rpi_ino_of(rp, VP_ROOT_NODE);
}
