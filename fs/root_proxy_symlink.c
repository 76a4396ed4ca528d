/* root/ proxy: the presented target of a guest symlink (see
 * root_proxy_symlink.h for the rule and why). */
#include "fs/root_proxy_symlink.h"

#include <errno.h>
#include <string.h>

static bool is_dotdot(const char *c, size_t n)
{
	return n == 2 && c[0] == '.' && c[1] == '.';
}

bool rp_symlink_climbs(const char *target)
{
	if (target[0] == '/')
		return true;
	for (const char *s = target; *s;) {
		const char *c = s;
		while (*s && *s != '/')
			s++;
		if (is_dotdot(c, (size_t)(s - c)))
			return true;
		while (*s == '/')
			s++;
	}
	return false;
}

int rp_symlink_present(unsigned depth, const char *target, char *out, size_t cap)
{
	size_t tlen = strlen(target);
	if (!rp_symlink_climbs(target)) {
		if (tlen >= cap)
			return -ENAMETOOLONG;
		memcpy(out, target, tlen + 1);
		return 0;
	}
	/* keep: levels of the link's directory the target has not climbed out
	 * of yet; an absolute target starts from the guest's "/". The names
	 * below what is kept are built in out, joined by '/'. */
	unsigned keep = target[0] == '/' ? 0 : depth;
	size_t len = 0;
	for (const char *s = target; *s;) {
		while (*s == '/')
			s++;
		const char *c = s;
		while (*s && *s != '/')
			s++;
		size_t n = (size_t)(s - c);
		if (n == 0 || (n == 1 && c[0] == '.'))
			continue;
		if (is_dotdot(c, n)) {
			if (len > 0) {
				const char *sl = memrchr(out, '/', len);
				len = sl ? (size_t)(sl - out) : 0;
			} else if (keep > 0) {
				keep--;
			}
			/* else: at the guest's "/", where ".." stays */
			continue;
		}
		if (len + (len ? 1 : 0) + n >= cap)
			return -ENAMETOOLONG;
		if (len)
			out[len++] = '/';
		memcpy(out + len, c, n);
		len += n;
	}
	/* A trailing '/' asks for a directory; keep that meaning. */
	bool slash = len > 0 && target[tlen - 1] == '/';
	size_t ups = (size_t)(depth - keep);
	if (ups == 0 && len == 0) {
		if (cap < 2)
			return -ENAMETOOLONG;
		memcpy(out, ".", 2);
		return 0;
	}
	/* "../" per level climbed; without names after them the last '/' goes. */
	size_t prefix = ups * 3 - (len == 0 ? 1 : 0);
	size_t total = prefix + len + (slash ? 1 : 0);
	if (total >= cap)
		return -ENAMETOOLONG;
	memmove(out + prefix, out, len);
	/* With no names after them, the last '/' lands on out[total], which
	 * the NUL overwrites (total < cap, so it is in bounds). */
	for (size_t i = 0; i < ups; i++)
		memcpy(out + i * 3, "../", 3);
	if (slash)
		out[prefix + len] = '/';
	out[total] = '\0';
	return 0;
}
