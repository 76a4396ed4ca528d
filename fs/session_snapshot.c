/* ctl `snapshot NAME`: a machine's state as a new image; see session.h
 * and images.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "images.h"
#include "session.h"
#include "lib/vlog.h"

/* A line in the machine's log (pool/NAME/log), where its user looks. */
static void log_line(struct machine *m, const char *text)
{
	const char *path = machine_log_path(m);
	int fd = path ? open(path, O_WRONLY | O_APPEND | O_CLOEXEC) : -1;
	if (fd < 0)
		return;
	dprintf(fd, "[vmpoolfs: %s]\n", text);
	close(fd);
}

int session_snapshot(struct session *s, const char *name)
{
	struct machine *m = session_machine_hold(s);
	if (!m)
		return -ESTALE;
	int r = 0;
	vp_mutex_lock(&s->lock);
	if (s->dead)
		r = -EIO;
	else if (s->state == ST_RUNNING || s->settling || s->pending > 0 || s->snapshotting)
		r = -EBUSY;
	else
		s->snapshotting = true; /* session_start: EBUSY until it is done */
	vp_mutex_unlock(&s->lock);
	char why[512] = "", line[700];
	if (r == -EBUSY)
		snprintf(why, sizeof why, "a command is running; snapshot once it has ended");
	else if (r == -EIO)
		snprintf(why, sizeof why, "the machine is dead");
	if (r == 0) {
		r = images_snapshot(s->fs->images, s->img, m, name, why, sizeof why);
		vp_mutex_lock(&s->lock);
		s->snapshotting = false;
		vp_mutex_unlock(&s->lock);
	}
	if (r < 0)
		snprintf(line, sizeof line, "snapshot %s refused: %s", name, why[0] ? why : strerror(-r));
	else
		snprintf(line, sizeof line, "snapshot %s made: images/%s", name, name);
	log_line(m, line);
	vlog_warn(NULL, "%s: %s", s->name, line);
	session_machine_put(s);
	return r;
}
