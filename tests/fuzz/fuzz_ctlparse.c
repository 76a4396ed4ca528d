/* libFuzzer target for the ctl-file parser (fs/ctlparse.h): pool/NAME/ctl
 * is written by any local user allowed into the mount, so every line must
 * parse to a command or -EINVAL, and what is accepted must be applied as
 * it was accepted.
 *
 * The input is split into lines at '\n' as ctlfiles.c does, and each line
 * is parsed and applied to one exec_settings. Checks: a parsed value
 * survives a round trip through its canonical text (signal by name and
 * number, seconds with three decimals); an accepted env/cwd argument lies
 * inside the line and is stored verbatim; one entry per env name; copy and
 * format agree with the settings. Each line is also fed to the signal and
 * seconds parsers on its own.
 * Seeds: tests/fuzz/corpus/ctlparse (tests/fuzz/mkcorpus.py). */
#include "fs/ctlparse.h"
#include "proto/proto.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz_util.h"

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

static void check_signal(int signo)
{
	char buf[32];
	int back = 0;
	FUZZ_CHECK(signo >= 1 && signo <= SIGRTMAX);
	int n = snprintf(buf, sizeof(buf), "%d", signo);
	FUZZ_CHECK(ctl_parse_signal(buf, (size_t)n, &back) == 0 && back == signo);
	const char *name = ctl_signal_name(signo);
	if (name) {
		FUZZ_CHECK(ctl_parse_signal(name, strlen(name), &back) == 0 && back == signo);
		n = snprintf(buf, sizeof(buf), "sig%s", name);
		FUZZ_CHECK(ctl_parse_signal(buf, (size_t)n, &back) == 0 && back == signo);
	}
}

static void check_seconds(uint32_t ms)
{
	char buf[32];
	uint32_t back = 0;
	int n = snprintf(buf, sizeof(buf), "%u.%03u", ms / 1000, ms % 1000);
	FUZZ_CHECK(ctl_parse_seconds(buf, (size_t)n, &back) == 0 && back == ms);
}

/* The entry for the name in "K=V" (NULL when absent); at most one. */
static const char *find_env(const struct exec_settings *s, const char *kv, size_t klen)
{
	const char *found = NULL;
	for (uint32_t i = 0; i < s->nenv; i++) {
		if (strncmp(s->env[i], kv, klen) == 0) {
			FUZZ_CHECK(!found);
			found = s->env[i];
		}
	}
	return found;
}

static void check_line(struct exec_settings *s, const char *line, size_t len)
{
	int signo;
	uint32_t ms;
	/* The value parsers on raw text: whatever they accept round-trips. */
	if (ctl_parse_signal(line, len, &signo) == 0)
		check_signal(signo);
	if (ctl_parse_seconds(line, len, &ms) == 0)
		check_seconds(ms);

	struct ctl_cmd c;
	int rc = ctl_parse_line(line, len, &c);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	if (rc)
		return;
	switch (c.kind) {
	case CTL_NONE: FUZZ_CHECK(blank(line, len)); return;
	case CTL_KILL: check_signal(c.signo); return;
	case CTL_TIMEOUT:
		check_seconds(c.timeout_ms);
		FUZZ_CHECK(settings_apply(s, &c) == 0 && s->timeout_ms == c.timeout_ms);
		return;
	case CTL_SNAPSHOT:
		/* an image NAME: [A-Za-z0-9][A-Za-z0-9._-]{0,63}, no settings change */
		FUZZ_CHECK(c.arg >= line && c.arg + c.arglen <= line + len);
		FUZZ_CHECK(c.arglen >= 1 && c.arglen <= 64 && isalnum((unsigned char)c.arg[0]));
		for (size_t i = 0; i < c.arglen; i++)
			FUZZ_CHECK(isalnum((unsigned char)c.arg[i]) || strchr("._-", c.arg[i]));
		FUZZ_CHECK(settings_apply(s, &c) == -EINVAL);
		return;
	case CTL_ENV:
	case CTL_CWD: break;
	default: FUZZ_CHECK(!"unknown kind");
	}
	FUZZ_CHECK(c.arg >= line && c.arglen <= len && c.arg + c.arglen <= line + len);
	FUZZ_CHECK(c.arglen > 0 && !blank(c.arg + c.arglen - 1, 1));
	/* An argument holding a NUL is accepted but stored cut at the NUL
	 * (strndup). The daemon never parses one: cf_write refuses a ctl
	 * write with a NUL first. So only the verbatim check skips it. */
	bool has_nul = memchr(c.arg, 0, c.arglen) != NULL;
	uint32_t nenv = s->nenv;
	int arc = settings_apply(s, &c);
	if (c.kind == CTL_CWD) {
		FUZZ_CHECK(arc == 0 && s->cwd && s->cwd[0] == '/');
		FUZZ_CHECK(c.arglen < VP_MAX_PATH);
		if (!has_nul)
			FUZZ_CHECK(strlen(s->cwd) == c.arglen && memcmp(s->cwd, c.arg, c.arglen) == 0);
		return;
	}
	const char *eq = memchr(c.arg, '=', c.arglen);
	FUZZ_CHECK(eq && eq > c.arg);
	size_t klen = (size_t)(eq - c.arg) + 1;
	FUZZ_CHECK(memchr(c.arg, 0, klen) == NULL); /* names are [A-Za-z_][A-Za-z0-9_]* */
	if (arc == -E2BIG) {
		FUZZ_CHECK(nenv == VP_MAX_ENV && s->nenv == nenv);
		FUZZ_CHECK(find_env(s, c.arg, klen) == NULL);
		return;
	}
	FUZZ_CHECK(arc == 0 && s->nenv <= VP_MAX_ENV);
	const char *e = find_env(s, c.arg, klen);
	FUZZ_CHECK(e);
	if (!has_nul)
		FUZZ_CHECK(strlen(e) == c.arglen && memcmp(e, c.arg, c.arglen) == 0);
}

/* A copy is equal, and the formatted text has one line per setting. */
static void check_settings(const struct exec_settings *s)
{
	struct exec_settings d;
	FUZZ_CHECK(settings_copy(&d, s) == 0);
	FUZZ_CHECK(d.timeout_ms == s->timeout_ms && d.nenv == s->nenv);
	FUZZ_CHECK(!s->cwd == !d.cwd && (!s->cwd || strcmp(s->cwd, d.cwd) == 0));
	for (uint32_t i = 0; i < s->nenv; i++)
		FUZZ_CHECK(strcmp(s->env[i], d.env[i]) == 0);
	char *text;
	size_t len;
	FUZZ_CHECK(settings_format(&d, &text, &len) == 0);
	size_t lines = 0;
	for (size_t i = 0; i < len; i++)
		lines += text[i] == '\n';
	FUZZ_CHECK(lines == 2 + s->nenv); /* timeout=, cwd=, env=... */
	free(text);
	settings_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A private copy, exactly the input's size, so a parser reading one
	 * byte too far is an ASan report. */
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	struct exec_settings s;
	settings_init(&s, (uint32_t)size * 7);
	size_t start = 0;
	while (start < size) {
		char *nl = memchr(buf + start, '\n', size - start);
		size_t end = nl ? (size_t)(nl - buf) : size;
		check_line(&s, buf + start, end - start);
		start = end + 1;
	}
	check_settings(&s);
	settings_free(&s);
	free(buf);
	return 0;
}
