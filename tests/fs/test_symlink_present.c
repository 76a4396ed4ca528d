/* Unit test of the pure symlink transform of root/ (fs/root_proxy_symlink.c):
 * fixed cases from the hostile examples, then random targets checked
 * against a lexical resolver: the presented target names the same guest
 * path as the guest's target clamped at "/", and resolving it from the
 * link's directory never climbs above the guest's "/". */
#include "fs/root_proxy_symlink.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/common/tap.h"

static void expect(unsigned depth, const char *target, const char *want)
{
	char out[4096];
	int err = rp_symlink_present(depth, target, out, sizeof(out));
	CHECKF(err == 0 && strcmp(out, want) == 0, "depth %u, %s -> %s (err %d), want %s", depth, target,
	       err ? "?" : out, err, want);
}

static void t_fixed(void)
{
	/* Absolute targets: relative to the machine's root/. */
	expect(1, "/etc/shadow", "../etc/shadow"); /* /tmp/x */
	expect(1, "/root", "../root");		   /* /out/d */
	expect(0, "/etc/shadow", "etc/shadow");	   /* /x */
	expect(3, "/", "../../..");
	expect(0, "/", ".");
	expect(1, "/etc/", "../etc/");
	expect(0, "//a/./b/../c", "a/c");
	/* ".." stops at the guest's "/". */
	expect(1, "../../../../../../etc/shadow", "../etc/shadow"); /* /tmp/y */
	expect(1, "../../..", "..");				    /* /out/e */
	expect(0, "..", ".");
	expect(2, "../x/../../../../etc", "../../etc");
	/* A name followed by ".." is folded lexically: "x" may be a link to
	 * "/" on the host's side, from where ".." would leave root/. */
	expect(2, "x/../..", "..");
	expect(2, "a/../b", "b");
	/* Relative targets that do not climb out keep their text. */
	expect(0, "b", "b");
	expect(3, "./a//b/", "./a//b/");
	expect(1, "../lib64", "../lib64");
	expect(2, "../../usr/lib", "../../usr/lib");
	CHECK(!rp_symlink_climbs("a/..b/c.."));
	CHECK(rp_symlink_climbs("a/.."));
	CHECK(rp_symlink_climbs("/a"));
}

static void t_limits(void)
{
	char out[16];
	CHECK_EQ(rp_symlink_present(5, "/abc", out, sizeof(out)), -ENAMETOOLONG); /* 15 + NUL > 16 */
	CHECK_EQ(rp_symlink_present(4, "/abc", out, sizeof(out)), 0);
	CHECK(strcmp(out, "../../../../abc") == 0);
	CHECK_EQ(rp_symlink_present(5, "/", out, sizeof(out)), 0);
	CHECK(strcmp(out, "../../../../..") == 0);
	CHECK_EQ(rp_symlink_present(0, "0123456789abcdef", out, sizeof(out)), -ENAMETOOLONG);
	CHECK_EQ(rp_symlink_present(0, "/0123456789abcdef", out, sizeof(out)), -ENAMETOOLONG);
}

/* ---- lexical reference ------------------------------------------------ */

#define MAXC 64

struct path {
	const char *c[MAXC];
	size_t len[MAXC];
	int n;
};

/* Applies rel to p. Returns how many ".." found p already at "/". */
static int walk(struct path *p, const char *rel)
{
	int over = 0;
	if (rel[0] == '/')
		p->n = 0;
	for (const char *s = rel; *s;) {
		while (*s == '/')
			s++;
		const char *c = s;
		while (*s && *s != '/')
			s++;
		size_t n = (size_t)(s - c);
		if (n == 0 || (n == 1 && c[0] == '.'))
			continue;
		if (n == 2 && c[0] == '.' && c[1] == '.') {
			if (p->n > 0)
				p->n--;
			else
				over++;
			continue;
		}
		if (p->n < MAXC) {
			p->c[p->n] = c;
			p->len[p->n] = n;
			p->n++;
		}
	}
	return over;
}

static bool same(const struct path *a, const struct path *b)
{
	if (a->n != b->n)
		return false;
	for (int i = 0; i < a->n; i++)
		if (a->len[i] != b->len[i] || memcmp(a->c[i], b->c[i], a->len[i]) != 0)
			return false;
	return true;
}

static void t_random(void)
{
	static const char *const parts[] = { "..", "..", ".", "", "a", "b", "d1" };
	static const char *const dirs[] = { "d0", "d1", "d2", "d3", "d4", "d5" };
	srand(1234);
	for (int iter = 0; iter < 20000; iter++) {
		unsigned depth = (unsigned)(rand() % 6);
		char target[256] = "";
		if (rand() % 3 == 0)
			strcat(target, "/");
		int k = 1 + rand() % 8;
		for (int i = 0; i < k; i++) {
			if (i)
				strcat(target, "/");
			strcat(target, parts[rand() % 7]);
		}
		if (target[0] == '\0')
			continue; /* the guest cannot make an empty link */
		char out[4096];
		if (!CHECK_EQ(rp_symlink_present(depth, target, out, sizeof(out)), 0))
			return;
		struct path want = { .n = 0 }, got = { .n = 0 };
		for (unsigned i = 0; i < depth; i++)
			walk(&want, dirs[i]);
		got = want;
		walk(&want, target);
		int over = walk(&got, out);
		if (!CHECKF(out[0] != '/' && over == 0 && same(&want, &got), "depth %u, %s -> %s (climbs %d)",
			    depth, target, out, over))
			return;
	}
}

int main(void)
{
	static const struct tap_test tests[] = {
		{ "fixed cases: absolute, clamped, kept", t_fixed },
		{ "too long for the buffer", t_limits },
		{ "random targets: same guest path, never above root/", t_random },
	};
	return tap_main(tests, sizeof(tests) / sizeof(tests[0]));
}
