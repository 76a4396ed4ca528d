/* The daemon's log; see vlog.h. */
#include "vlog.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct vlog_conn {
	pthread_mutex_t lock; /* fd and its (re)connection */
	int fd;		      /* connected datagram socket, or -1 */
	struct sockaddr_un sa;
};

/* The one process-wide target (vlog.h): written once by main before any
 * thread exists, read-only afterwards. */
static const struct vlog *process_log;

void vlog_set_process(const struct vlog *l)
{
	process_log = l;
}

/* systemd sets JOURNAL_STREAM=DEV:INO for a service whose stderr is the
 * journal; if stderr is still that stream, "<N>" prefixes carry levels. */
static bool stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(2, &st) != 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void vlog_init(struct vlog *l, const char *ident, bool debug)
{
	memset(l, 0, sizeof(*l));
	l->mode = stderr_is_journal() ? VLOG_JOURNAL : VLOG_STDERR;
	l->debug = debug;
	l->ident = ident;
}

/* Under c->lock. */
static int syslog_connect(struct vlog_conn *c)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&c->sa, sizeof(c->sa)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = fd;
	return 0;
}

int vlog_use_syslog(struct vlog *l, bool echo_stderr)
{
	const char *p = getenv("VMPOOL_SYSLOG_SOCKET");
	if (!p || !*p)
		p = "/dev/log";
	struct vlog_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (strlen(p) >= sizeof(c->sa.sun_path)) {
		free(c);
		return -ENAMETOOLONG;
	}
	c->sa.sun_family = AF_UNIX;
	memcpy(c->sa.sun_path, p, strlen(p));
	c->fd = -1;
	pthread_mutex_init(&c->lock, NULL);
	l->conn = c;
	l->mode = VLOG_SYSLOG;
	l->echo_stderr = echo_stderr;
	pthread_mutex_lock(&c->lock);
	int r = syslog_connect(c);
	pthread_mutex_unlock(&c->lock);
	return r;
}

void vlog_close(struct vlog *l)
{
	if (process_log == l)
		process_log = NULL;
	if (!l->conn)
		return;
	if (l->conn->fd >= 0)
		close(l->conn->fd);
	pthread_mutex_destroy(&l->conn->lock);
	free(l->conn);
	l->conn = NULL;
	l->mode = VLOG_STDERR;
}

/* One datagram as syslog(3) sends it: "<PRI>Mmm dd hh:mm:ss IDENT[PID]: MSG". */
static void send_syslog(const struct vlog *l, int prio, const char *msg)
{
	struct vlog_conn *c = l->conn;
	char buf[2048];
	time_t now = time(NULL);
	struct tm tm;
	char ts[32] = "";
	if (localtime_r(&now, &tm))
		strftime(ts, sizeof ts, "%b %e %H:%M:%S", &tm);
	int n = snprintf(buf, sizeof buf, "<%d>%s %s[%d]: %s", LOG_DAEMON | prio, ts, l->ident, (int)getpid(),
			 msg);
	if (n < 0 || !c)
		return;
	size_t len = (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
	pthread_mutex_lock(&c->lock);
	for (int attempt = 0; attempt < 2; attempt++) {
		if (c->fd < 0 && syslog_connect(c) < 0)
			break;
		if (send(c->fd, buf, len, MSG_NOSIGNAL) >= 0)
			break;
		/* The log daemon restarted (ECONNREFUSED, ENOTCONN): reconnect
		 * once; a full queue (EAGAIN, ENOBUFS) drops the line. */
		if (errno != ECONNREFUSED && errno != ENOTCONN)
			break;
		close(c->fd);
		c->fd = -1;
	}
	pthread_mutex_unlock(&c->lock);
}

void vlog_vmsg(const struct vlog *l, int prio, const char *fmt, va_list ap)
{
	static const struct vlog fallback = { .mode = VLOG_STDERR, .ident = "vmpoolfs" };
	if (!l)
		l = process_log ? process_log : &fallback;
	prio &= LOG_PRIMASK;
	if (prio == LOG_DEBUG && !l->debug)
		return;
	char msg[1536];
	if (vsnprintf(msg, sizeof msg, fmt, ap) < 0)
		return;
	/* One line each: a trailing newline is the caller's habit, not ours. */
	size_t len = strlen(msg);
	while (len && msg[len - 1] == '\n')
		msg[--len] = '\0';
	switch (l->mode) {
	case VLOG_SYSLOG:
		send_syslog(l, prio, msg);
		if (l->echo_stderr)
			fprintf(stderr, "%s: %s\n", l->ident, msg);
		break;
	case VLOG_JOURNAL: fprintf(stderr, "<%d>%s\n", prio, msg); break; /* the journal names us */
	case VLOG_STDERR: fprintf(stderr, "%s: %s\n", l->ident, msg); break;
	}
}

void vlog_msg(const struct vlog *l, int prio, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog_vmsg(l, prio, fmt, ap);
	va_end(ap);
}
