/* ctl words and exec settings; see ctlparse.h. */
#include "ctlparse.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

#define ENV_ENTRY_MAX (32u * 1024u) /* keeps a full EXEC frame under VP_MAX_PAYLOAD */

static const struct {
	const char *name;
	int signo;
} sigtab[] = {
	{ "HUP", SIGHUP },	 { "INT", SIGINT },   { "QUIT", SIGQUIT },   { "ILL", SIGILL },
	{ "TRAP", SIGTRAP },	 { "ABRT", SIGABRT }, { "BUS", SIGBUS },     { "FPE", SIGFPE },
	{ "KILL", SIGKILL },	 { "USR1", SIGUSR1 }, { "SEGV", SIGSEGV },   { "USR2", SIGUSR2 },
	{ "PIPE", SIGPIPE },	 { "ALRM", SIGALRM }, { "TERM", SIGTERM },   { "CHLD", SIGCHLD },
	{ "CONT", SIGCONT },	 { "STOP", SIGSTOP }, { "TSTP", SIGTSTP },   { "TTIN", SIGTTIN },
	{ "TTOU", SIGTTOU },	 { "URG", SIGURG },   { "XCPU", SIGXCPU },   { "XFSZ", SIGXFSZ },
	{ "VTALRM", SIGVTALRM }, { "PROF", SIGPROF }, { "WINCH", SIGWINCH }, { "IO", SIGIO },
	{ "PWR", SIGPWR },	 { "SYS", SIGSYS },
};

void settings_init(struct exec_settings *s, uint32_t timeout_ms)
{
	memset(s, 0, sizeof(*s));
	s->timeout_ms = timeout_ms;
}

void settings_free(struct exec_settings *s)
{
	for (uint32_t i = 0; i < s->nenv; i++)
		free(s->env[i]);
	free(s->env);
	free(s->cwd);
	memset(s, 0, sizeof(*s));
}

int settings_copy(struct exec_settings *dst, const struct exec_settings *src)
{
	settings_init(dst, src->timeout_ms);
	if (src->cwd && !(dst->cwd = strdup(src->cwd)))
		goto nomem;
	if (src->nenv) {
		dst->env = calloc(src->nenv, sizeof(char *));
		if (!dst->env)
			goto nomem;
		for (uint32_t i = 0; i < src->nenv; i++) {
			if (!(dst->env[i] = strdup(src->env[i])))
				goto nomem;
			dst->nenv = i + 1;
		}
	}
	return 0;
nomem:
	settings_free(dst);
	return -ENOMEM;
}

int settings_format(const struct exec_settings *s, char **out, size_t *len)
{
	char *buf = NULL;
	size_t sz = 0;
	FILE *f = open_memstream(&buf, &sz);
	if (!f)
		return -ENOMEM;
	fprintf(f, "timeout=%u", s->timeout_ms / 1000);
	if (s->timeout_ms % 1000)
		fprintf(f, ".%03u", s->timeout_ms % 1000);
	fprintf(f, "\ncwd=%s\n", s->cwd ? s->cwd : "/");
	for (uint32_t i = 0; i < s->nenv; i++)
		fprintf(f, "env=%s\n", s->env[i]);
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*out = buf;
	*len = sz;
	return 0;
}

static bool word_is(const char *w, size_t n, const char *lit)
{
	return strlen(lit) == n && memcmp(w, lit, n) == 0;
}

int ctl_parse_signal(const char *s, size_t len, int *signo)
{
	if (len == 0)
		return -EINVAL;
	if (isdigit((unsigned char)s[0])) {
		int v = 0;
		for (size_t i = 0; i < len; i++) {
			if (!isdigit((unsigned char)s[i]))
				return -EINVAL;
			v = v * 10 + (s[i] - '0');
			if (v > 64)
				return -EINVAL;
		}
		if (v < 1 || v > SIGRTMAX)
			return -EINVAL;
		*signo = v;
		return 0;
	}
	if (len > 3 && strncasecmp(s, "SIG", 3) == 0) {
		s += 3;
		len -= 3;
	}
	for (size_t i = 0; i < sizeof(sigtab) / sizeof(sigtab[0]); i++) {
		if (strlen(sigtab[i].name) == len && strncasecmp(sigtab[i].name, s, len) == 0) {
			*signo = sigtab[i].signo;
			return 0;
		}
	}
	return -EINVAL;
}

const char *ctl_signal_name(int signo)
{
	for (size_t i = 0; i < sizeof(sigtab) / sizeof(sigtab[0]); i++)
		if (sigtab[i].signo == signo)
			return sigtab[i].name;
	return NULL;
}

int ctl_parse_seconds(const char *s, size_t len, uint32_t *ms)
{
	uint64_t whole = 0, frac = 0;
	size_t i = 0, fd = 0;
	if (len == 0)
		return -EINVAL;
	for (; i < len && isdigit((unsigned char)s[i]); i++) {
		whole = whole * 10 + (uint64_t)(s[i] - '0');
		if (whole > UINT32_MAX / 1000)
			return -ERANGE;
	}
	if (i == 0)
		return -EINVAL;
	if (i < len && s[i] == '.') {
		for (i++; i < len && isdigit((unsigned char)s[i]); i++, fd++) {
			if (fd < 3)
				frac = frac * 10 + (uint64_t)(s[i] - '0');
		}
		if (fd == 0)
			return -EINVAL;
		for (size_t k = fd; k < 3; k++)
			frac *= 10;
	}
	if (i != len)
		return -EINVAL;
	uint64_t v = whole * 1000 + frac;
	if (v > UINT32_MAX)
		return -ERANGE;
	*ms = (uint32_t)v;
	return 0;
}

static bool env_name_ok(const char *k, size_t n)
{
	if (n == 0 || !(isalpha((unsigned char)k[0]) || k[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!(isalnum((unsigned char)k[i]) || k[i] == '_'))
			return false;
	return true;
}

int ctl_parse_line(const char *line, size_t len, struct ctl_cmd *out)
{
	memset(out, 0, sizeof(*out));
	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	size_t i = 0;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i == len)
		return 0; /* blank */
	const char *w = line + i;
	size_t wl = 0;
	while (i + wl < len && line[i + wl] != ' ' && line[i + wl] != '\t')
		wl++;
	size_t j = i + wl;
	while (j < len && (line[j] == ' ' || line[j] == '\t'))
		j++;
	const char *arg = line + j;
	size_t al = len - j;

	if (word_is(w, wl, "kill")) {
		out->kind = CTL_KILL;
		out->signo = SIGTERM;
		if (al == 0)
			return 0;
		return ctl_parse_signal(arg, al, &out->signo);
	}
	if (word_is(w, wl, "timeout")) {
		out->kind = CTL_TIMEOUT;
		int r = ctl_parse_seconds(arg, al, &out->timeout_ms);
		return r == -ERANGE ? -EINVAL : r;
	}
	if (word_is(w, wl, "env")) {
		const char *eq = memchr(arg, '=', al);
		if (!eq || !env_name_ok(arg, (size_t)(eq - arg)) || al > ENV_ENTRY_MAX)
			return -EINVAL;
		out->kind = CTL_ENV;
		out->arg = arg;
		out->arglen = al;
		return 0;
	}
	if (word_is(w, wl, "snapshot")) {
		/* an image NAME (images.h): [A-Za-z0-9][A-Za-z0-9._-]{0,63} */
		if (al == 0 || al > 64)
			return -EINVAL;
		for (size_t k = 0; k < al; k++) {
			char c = arg[k];
			bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
				     (c >= '0' && c <= '9');
			if (!alnum && (k == 0 || (c != '.' && c != '_' && c != '-')))
				return -EINVAL;
		}
		out->kind = CTL_SNAPSHOT;
		out->arg = arg;
		out->arglen = al;
		return 0;
	}
	if (word_is(w, wl, "cwd")) {
		if (al == 0 || arg[0] != '/' || al >= VP_MAX_PATH)
			return -EINVAL;
		out->kind = CTL_CWD;
		out->arg = arg;
		out->arglen = al;
		return 0;
	}
	return -EINVAL;
}

int settings_apply(struct exec_settings *s, const struct ctl_cmd *c)
{
	switch (c->kind) {
	case CTL_TIMEOUT: s->timeout_ms = c->timeout_ms; return 0;
	case CTL_CWD: {
		char *p = strndup(c->arg, c->arglen);
		if (!p)
			return -ENOMEM;
		free(s->cwd);
		s->cwd = p;
		return 0;
	}
	case CTL_ENV: {
		size_t klen = (size_t)((const char *)memchr(c->arg, '=', c->arglen) - c->arg) + 1;
		char *kv = strndup(c->arg, c->arglen);
		if (!kv)
			return -ENOMEM;
		for (uint32_t i = 0; i < s->nenv; i++) {
			if (strncmp(s->env[i], kv, klen) == 0) { /* same K= : replace */
				free(s->env[i]);
				s->env[i] = kv;
				return 0;
			}
		}
		if (s->nenv >= VP_MAX_ENV) {
			free(kv);
			return -E2BIG;
		}
		char **e = realloc(s->env, (s->nenv + 1) * sizeof(char *));
		if (!e) {
			free(kv);
			return -ENOMEM;
		}
		s->env = e;
		s->env[s->nenv++] = kv;
		return 0;
	}
	default: return -EINVAL;
	}
}
