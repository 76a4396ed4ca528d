/* systemd's readiness protocol (sd_notify(3)), without libsystemd: one
 * datagram with "READY=1", "STOPPING=1" or "STATUS=..." to the socket that
 * $NOTIFY_SOCKET names (a path, or "@name" for the abstract namespace).
 * The unit vmpoolfs@.service (Type=notify) waits for READY=1, which the
 * daemon sends once the tree is mounted. */
#ifndef VPFS_SDNOTIFY_H
#define VPFS_SDNOTIFY_H

/* 0 when sent, 1 when there is no $NOTIFY_SOCKET (not under systemd),
 * else -errno. */
int sd_notify_send(const char *state);

#endif
