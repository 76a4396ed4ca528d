/* Where the daemon's messages go: one small helper with an explicit
 * context (struct vlog), so that whether a line reaches stderr, the
 * journal or syslog is decided once, in main, and every message of the
 * daemon takes the same road.
 *
 *   VLOG_STDERR   "vmpoolfs: MSG" lines on stderr (-f, tests, tools).
 *   VLOG_JOURNAL  the same lines prefixed "<N>" (sd-daemon(3) levels):
 *                 chosen when stderr is the journal's stream (JOURNAL_STREAM
 *                 names it, as systemd sets for a service), so that the
 *                 journal keeps each line's priority.
 *   VLOG_SYSLOG   RFC 3164 datagrams on the syslog socket (/dev/log, or
 *                 $VMPOOL_SYSLOG_SOCKET where set: containers, tests),
 *                 facility LOG_DAEMON, ident "vmpoolfs[PID]", as syslog(3)
 *                 sends them; reconnects once when the log daemon restarted.
 *                 Used without -f, from the fork on: until the daemon is
 *                 mounted each line is also echoed on stderr (the user's
 *                 terminal, which then becomes /dev/null, so the echo needs
 *                 no switch while threads run).
 *
 * Priorities are syslog(3)'s: LOG_ERR for what stops an operation or the
 * daemon, LOG_WARNING for what degrades, LOG_INFO for the start and stop
 * lines, LOG_DEBUG only when the context's debug flag is set (-d, -o debug).
 *
 * Code with a context at hand (the daemon: &fs->log) passes it. Code
 * below that has none (the machine backends, libfuse's own messages
 * through fuse_set_log_func) passes NULL, which is the process's target:
 * main sets it once with vlog_set_process() before any thread starts and
 * never changes it while threads run (the one process-wide thing here,
 * like syslog(3)'s own openlog state). Without it NULL means VLOG_STDERR.
 * vlog_msg is thread-safe. */
#ifndef VMPOOL_LIB_VLOG_H
#define VMPOOL_LIB_VLOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <syslog.h>

enum vlog_mode { VLOG_STDERR, VLOG_JOURNAL, VLOG_SYSLOG };

struct vlog_conn; /* VLOG_SYSLOG: the socket and its lock (vlog.c) */

/* Read-only once set up: a const context logs (the connection it points
 * to is the one mutable part, under its own lock). */
struct vlog {
	enum vlog_mode mode;
	bool debug;	   /* LOG_DEBUG lines are dropped unless set */
	bool echo_stderr;  /* VLOG_SYSLOG: also as VLOG_STDERR lines */
	const char *ident; /* "vmpoolfs" */
	struct vlog_conn *conn;
};

/* VLOG_STDERR, or VLOG_JOURNAL where stderr is the journal. */
void vlog_init(struct vlog *l, const char *ident, bool debug);
/* Switches l to VLOG_SYSLOG (before threads use it), echoing each line on
 * stderr too when echo_stderr. 0 or -errno; on failure to connect the
 * context still works: it retries at each message and drops what it
 * cannot send. */
int vlog_use_syslog(struct vlog *l, bool echo_stderr);
void vlog_close(struct vlog *l);
/* The target of vlog_msg(NULL, ...): see above. l must outlive its use. */
void vlog_set_process(const struct vlog *l);

void vlog_msg(const struct vlog *l, int prio, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void vlog_vmsg(const struct vlog *l, int prio, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

#define vlog_err(l, ...) vlog_msg((l), LOG_ERR, __VA_ARGS__)
#define vlog_warn(l, ...) vlog_msg((l), LOG_WARNING, __VA_ARGS__)
#define vlog_info(l, ...) vlog_msg((l), LOG_INFO, __VA_ARGS__)
#define vlog_debug(l, ...) vlog_msg((l), LOG_DEBUG, __VA_ARGS__)

#endif
