/* Path walk in the guest (guestdir.h). Every node a lookup returns counts
 * one lookup in the agent's table; each is forgotten before returning, so
 * the check leaves the table as it found it. */
#include "guestdir.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "proto/client.h"
#include "proto/proto.h"

#define MAX_LINKS 40  /* Linux's limit for one path walk */
#define MAX_DEPTH 256 /* directories deep: far past any real cwd */

struct walk {
	struct vp_client *c;
	uint64_t node[MAX_DEPTH]; /* node[0] is the root, never forgotten */
	int depth;
	char rest[2 * VP_MAX_PATH + 2]; /* what is left to walk */
};

static void pop(struct walk *w)
{
	if (w->depth > 0)
		vp_fs_forget(w->c, w->node[w->depth--], 1);
}

/* rest = prefix + "/" + rest: a symlink's target goes in front of what
 * remained after it. */
static int prepend(struct walk *w, const char *prefix)
{
	size_t pl = strlen(prefix), rl = strlen(w->rest);
	if (pl + 1 + rl + 1 > sizeof w->rest)
		return -ENAMETOOLONG;
	memmove(w->rest + pl + 1, w->rest, rl + 1);
	memcpy(w->rest, prefix, pl);
	w->rest[pl] = '/';
	return 0;
}

static int walk(struct walk *w)
{
	int links = 0;
	char *p = w->rest;
	for (;;) {
		while (*p == '/')
			p++;
		if (!*p)
			return 0;
		size_t n = strcspn(p, "/");
		char name[NAME_MAX + 1];
		if (n > NAME_MAX)
			return -ENAMETOOLONG;
		memcpy(name, p, n);
		name[n] = '\0';
		p += n;
		if (strcmp(name, ".") == 0)
			continue;
		if (strcmp(name, "..") == 0) {
			pop(w);
			continue;
		}
		struct vp_entry e;
		int r = vp_fs_lookup(w->c, w->node[w->depth], name, &e);
		if (r < 0)
			return r;
		if (S_ISLNK(e.attr.mode)) {
			char target[VP_MAX_PATH + 1];
			r = vp_fs_readlink(w->c, e.node, target, sizeof target);
			vp_fs_forget(w->c, e.node, 1);
			if (r < 0)
				return r;
			if (++links > MAX_LINKS)
				return -ELOOP;
			memmove(w->rest, p, strlen(p) + 1);
			if ((r = prepend(w, target)) < 0)
				return r;
			if (target[0] == '/')
				while (w->depth > 0)
					pop(w);
			p = w->rest;
			continue;
		}
		if (!S_ISDIR(e.attr.mode) || w->depth + 1 >= MAX_DEPTH) {
			vp_fs_forget(w->c, e.node, 1);
			return S_ISDIR(e.attr.mode) ? -ENAMETOOLONG : -ENOTDIR;
		}
		w->node[++w->depth] = e.node;
	}
}

int guest_dir_check(struct vp_client *c, const char *path, size_t len)
{
	if (len == 0 || path[0] != '/')
		return -EINVAL;
	struct walk w;
	if (len >= sizeof w.rest)
		return -ENAMETOOLONG;
	w.c = c;
	w.depth = 0;
	w.node[0] = VP_ROOT_NODE;
	memcpy(w.rest, path, len);
	w.rest[len] = '\0';
	int r = walk(&w);
	while (w.depth > 0)
		pop(&w);
	return r;
}
