/* The words of pool/NAME/ctl and the per-machine exec settings they change
 * (docs/design.md §1: kill [SIG], timeout SEC, env K=V, cwd PATH,
 * snapshot NAME). Pure functions,
 * no FUSE, so they are unit-tested on their own. */
#ifndef VPFS_CTLPARSE_H
#define VPFS_CTLPARSE_H

#include <stddef.h>
#include <stdint.h>

/* Settings applied to every later command of one machine. */
struct exec_settings {
	uint32_t timeout_ms; /* 0 = none */
	char *cwd;	     /* NULL = "/" */
	char **env;	     /* "K=V", at most VP_MAX_ENV */
	uint32_t nenv;
};
void settings_init(struct exec_settings *s, uint32_t timeout_ms);
void settings_free(struct exec_settings *s);
/* Deep copy (so a command keeps what was in force when it started). */
int settings_copy(struct exec_settings *dst, const struct exec_settings *src);
/* The text shown when ctl is read; malloc'ed, caller frees. */
int settings_format(const struct exec_settings *s, char **out, size_t *len);

enum ctl_kind { CTL_NONE = 0, CTL_KILL, CTL_TIMEOUT, CTL_ENV, CTL_CWD, CTL_SNAPSHOT };
struct ctl_cmd {
	enum ctl_kind kind;
	int signo;	     /* CTL_KILL */
	uint32_t timeout_ms; /* CTL_TIMEOUT */
	const char *arg;     /* CTL_ENV "K=V", CTL_CWD path, CTL_SNAPSHOT image NAME: points into the line */
	size_t arglen;
};
/* One line without its newline. CTL_NONE for a blank line; -EINVAL for an
 * unknown word or a bad value. */
int ctl_parse_line(const char *line, size_t len, struct ctl_cmd *out);
/* Applies a parsed timeout/env/cwd to s; -EINVAL, -E2BIG (too many env), -ENOMEM. */
int settings_apply(struct exec_settings *s, const struct ctl_cmd *c);

/* "TERM", "SIGTERM", "term", "15" → 15; -EINVAL otherwise. */
int ctl_parse_signal(const char *s, size_t len, int *signo);
/* "TERM" for 15, NULL when unknown. */
const char *ctl_signal_name(int signo);
/* Seconds with up to 3 decimals ("2", "0.5") → ms; -EINVAL, -ERANGE. */
int ctl_parse_seconds(const char *s, size_t len, uint32_t *ms);

#endif
