/* Unit tests of the daemon's pure parts: output buffers (spill to disk,
 * no byte lost) and the ctl words. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/ctlparse.h"
#include "fs/output.h"

static int fails, n;

#define CHECK(cond)                                                              \
	do {                                                                     \
		n++;                                                             \
		if (cond) {                                                      \
			printf("ok %d - %s\n", n, #cond);                        \
		} else {                                                         \
			printf("not ok %d - %s (line %d)\n", n, #cond, __LINE__); \
			fails++;                                                 \
		}                                                                \
	} while (0)

static void test_output(void)
{
	struct outbuf o;
	outbuf_init(&o, 1000, getenv("TMPDIR"));
	char *src = malloc(100000), *dst = malloc(100000);
	for (int i = 0; i < 100000; i++)
		src[i] = (char)(i * 7 + i / 13);
	size_t off = 0;
	/* Uneven chunks across the memory/file boundary. */
	for (size_t step = 1; off < 100000; step = step * 3 % 4999 + 1) {
		size_t k = step < 100000 - off ? step : 100000 - off;
		CHECK(outbuf_append(&o, src + off, k) == 0);
		off += k;
	}
	CHECK(outbuf_len(&o) == 100000);
	CHECK(o.mem_len == 1000 && o.fd >= 0);
	CHECK(outbuf_read(&o, 0, dst, 100000) == 100000);
	CHECK(memcmp(src, dst, 100000) == 0);
	CHECK(outbuf_read(&o, 990, dst, 20) == 20 && memcmp(dst, src + 990, 20) == 0);
	CHECK(outbuf_read(&o, 99990, dst, 100) == 10);
	CHECK(outbuf_read(&o, 100000, dst, 100) == 0);
	outbuf_reset(&o);
	CHECK(outbuf_len(&o) == 0 && o.fd < 0);
	CHECK(outbuf_append(&o, "abc", 3) == 0 && outbuf_read(&o, 0, dst, 10) == 3);
	outbuf_free(&o);
	free(src);
	free(dst);
}

static int parse(const char *line, struct ctl_cmd *c)
{
	return ctl_parse_line(line, strlen(line), c);
}

static void test_ctl(void)
{
	struct ctl_cmd c;
	CHECK(parse("kill", &c) == 0 && c.kind == CTL_KILL && c.signo == SIGTERM);
	CHECK(parse("kill 9", &c) == 0 && c.signo == 9);
	CHECK(parse("kill KILL", &c) == 0 && c.signo == SIGKILL);
	CHECK(parse("kill sigint", &c) == 0 && c.signo == SIGINT);
	CHECK(parse("kill 0", &c) == -EINVAL);
	CHECK(parse("kill FOO", &c) == -EINVAL);
	CHECK(parse("timeout 2", &c) == 0 && c.kind == CTL_TIMEOUT && c.timeout_ms == 2000);
	CHECK(parse("timeout 0.25", &c) == 0 && c.timeout_ms == 250);
	CHECK(parse("timeout -1", &c) == -EINVAL);
	CHECK(parse("timeout", &c) == -EINVAL);
	CHECK(parse("timeout 99999999999", &c) == -EINVAL);
	CHECK(parse("env A=b c", &c) == 0 && c.kind == CTL_ENV && c.arglen == 5);
	CHECK(parse("env 1A=b", &c) == -EINVAL);
	CHECK(parse("env A", &c) == -EINVAL);
	CHECK(parse("cwd /tmp/x y", &c) == 0 && c.kind == CTL_CWD && c.arglen == 8);
	CHECK(parse("cwd rel", &c) == -EINVAL);
	CHECK(parse("  ", &c) == 0 && c.kind == CTL_NONE);
	CHECK(parse("bogus", &c) == -EINVAL);
	CHECK(parse("kill\r", &c) == 0 && c.kind == CTL_KILL);

	struct exec_settings s, cp;
	settings_init(&s, 5000);
	CHECK(parse("env A=1", &c) == 0 && settings_apply(&s, &c) == 0);
	CHECK(parse("env B=2", &c) == 0 && settings_apply(&s, &c) == 0);
	CHECK(parse("env A=3", &c) == 0 && settings_apply(&s, &c) == 0);
	CHECK(s.nenv == 2 && strcmp(s.env[0], "A=3") == 0);
	CHECK(parse("cwd /w", &c) == 0 && settings_apply(&s, &c) == 0);
	CHECK(settings_copy(&cp, &s) == 0 && cp.nenv == 2 && strcmp(cp.cwd, "/w") == 0);
	char *txt;
	size_t len;
	CHECK(settings_format(&s, &txt, &len) == 0 &&
	      strcmp(txt, "timeout=5\ncwd=/w\nenv=A=3\nenv=B=2\n") == 0);
	free(txt);
	settings_free(&s);
	settings_free(&cp);
	uint32_t ms;
	CHECK(ctl_parse_seconds("1.5", 3, &ms) == 0 && ms == 1500);
	CHECK(ctl_parse_seconds("1.", 2, &ms) == -EINVAL);
	CHECK(strcmp(ctl_signal_name(SIGTERM), "TERM") == 0);
}

int main(void)
{
	test_output();
	test_ctl();
	printf("1..%d\n", n);
	return fails ? 1 : 0;
}
