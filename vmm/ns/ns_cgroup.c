/* Per-machine cgroups for the ns backend: memory, pids and CPU limits, and
 * the OOM-kill counter. Works with cgroup v1 (memory and pids hierarchies, as on
 * hosts that still mount v1) and with a pure v2 hierarchy; the layout is
 * detected once, at backend open, from /proc/self/mountinfo and
 * /proc/self/cgroup (or files standing for them: ns_cgroups_open_at). Each
 * backend makes its own parent cgroup (so several daemons or test processes
 * never collide) and one leaf per machine. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/smallfile.h"
#include "vmm/ns/ns.h"

struct mnt {
	char point[1024];
	char root[1024];
	bool found;
};

struct ns_cgroups {
	int version;
	int ndirs;
	char *parent[NS_CG_MAX_DIRS]; /* this backend's parent cgroup per hierarchy */
	struct mnt mnt[NS_CG_MAX_DIRS];
	const char *ctl[NS_CG_MAX_DIRS]; /* v1: controller naming the hierarchy */
	int pids_dir;			 /* index in parent[] of the pids hierarchy */
	int cpu_dir;			 /* ... of the cpu controller; -1: none */
	bool has_memsw;			 /* v1: memory.memsw.* exists (swap accounting) */
	char *thread_cgroup;		 /* v1: read at each clone (ns_cg_clone_begin) */
};

/* ---- small file helpers ----------------------------------------------- */

static int write_file(const char *dir, const char *name, const char *val)
{
	char path[4096];
	if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
		return -ENAMETOOLONG;
	return vp_write_small_file(path, val);
}


/* "a,b,c" contains token t. */
static bool has_token(const char *list, const char *t, char sep)
{
	size_t n = strlen(t);
	for (const char *p = list; p && *p;) {
		const char *e = strchr(p, sep);
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len == n && memcmp(p, t, n) == 0)
			return true;
		p = e ? e + 1 : NULL;
	}
	return false;
}

/* ---- layout detection -------------------------------------------------- */

/* Finds the cgroup v1 mount carrying controller `ctl`, or (ctl NULL) the
 * first cgroup2 mount. Mountinfo fields: id parent dev root point opts
 * [optional...] - fstype source superopts. Paths with spaces are escaped
 * (\040) by the kernel; cgroup mounts never have them in practice. */
static int find_mount(const char *mountinfo, const char *ctl, struct mnt *out)
{
	FILE *f = fopen(mountinfo, "re");
	if (!f)
		return -errno;
	char *line = NULL;
	size_t cap = 0;
	out->found = false;
	while (getline(&line, &cap, f) > 0) {
		char root[1024], point[1024];
		if (sscanf(line, "%*s %*s %*s %1023s %1023s", root, point) != 2)
			continue;
		const char *dash = strstr(line, " - ");
		if (!dash)
			continue;
		char fstype[64], source[256], sopts[1024];
		if (sscanf(dash + 3, "%63s %255s %1023s", fstype, source, sopts) != 3)
			continue;
		bool match = ctl ? strcmp(fstype, "cgroup") == 0 && has_token(sopts, ctl, ',')
				 : strcmp(fstype, "cgroup2") == 0;
		if (match) {
			snprintf(out->point, sizeof out->point, "%s", point);
			snprintf(out->root, sizeof out->root, "%s", root);
			out->found = true;
			break;
		}
	}
	free(line);
	fclose(f);
	return 0;
}

/* Our cgroup path in the hierarchy whose /proc/self/cgroup line lists `ctl`
 * (v1) or in the unified hierarchy (ctl NULL: the "0::" line). */
static int own_cgroup(const char *file, const char *ctl, char *out, size_t cap)
{
	FILE *f = fopen(file, "re");
	if (!f)
		return -errno;
	char *line = NULL;
	size_t lcap = 0;
	int err = -ENOENT;
	while (getline(&line, &lcap, f) > 0) {
		line[strcspn(line, "\n")] = '\0';
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = '\0';
		const char *ctls = c1 + 1;
		*c1 = '\0';
		bool match = ctl ? has_token(ctls, ctl, ',') : (strcmp(line, "0") == 0 && *ctls == '\0');
		if (match) {
			snprintf(out, cap, "%s", c2 + 1);
			err = 0;
			break;
		}
	}
	free(line);
	fclose(f);
	return err;
}

/* The directory of our own cgroup: mount point + path below the mount root. */
static int own_dir(const struct mnt *m, const char *cgpath, char *out, size_t cap)
{
	const char *rel = cgpath;
	size_t rl = strlen(m->root);
	if (strcmp(m->root, "/") != 0 && strncmp(cgpath, m->root, rl) == 0 &&
	    (cgpath[rl] == '/' || cgpath[rl] == '\0'))
		rel = cgpath + rl;
	if (strcmp(rel, "/") == 0)
		rel = "";
	if (snprintf(out, cap, "%s%s", m->point, rel) >= (int)cap)
		return -ENAMETOOLONG;
	return 0;
}

static int rmdir_retry(const char *dir);

/* SIGKILLs every process in a leftover cgroup `dir`: 1 if there was one. */
static int kill_members(const char *dir)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/cgroup.procs", dir);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	int any = 0;
	long pid;
	while (fscanf(f, "%ld", &pid) == 1)
		if (pid > 0 && kill((pid_t)pid, SIGKILL) == 0)
			any = 1;
	fclose(f);
	return any;
}

/* Parents left by a daemon that died: removed when their owner pid no
 * longer exists. Its agents normally die with it (each is PID 1 of its
 * machine and exits at the channel's EOF, taking the machine's processes
 * with it), but one still finishing, or stopped, keeps its cgroup busy:
 * whatever is left in a dead daemon's cgroup has no owner, so it is
 * killed first, then the cgroup goes once the kernel has let go of it.
 * Best effort; what stays busy is tried again by the next start. */
static void remove_stale(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		int pid;
		unsigned n;
		if (de->d_type != DT_DIR || sscanf(de->d_name, "vmpoolfs.%d.%u", &pid, &n) != 2 || pid <= 0)
			continue;
		if (pid == getpid() || kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		char parent[4096];
		if (snprintf(parent, sizeof parent, "%s/%s", dir, de->d_name) >= (int)sizeof parent)
			continue;
		DIR *sub = opendir(parent);
		if (!sub)
			continue;
		struct dirent *m;
		while ((m = readdir(sub))) {
			char leaf[4400];
			if (m->d_type != DT_DIR || m->d_name[0] != 'm' ||
			    snprintf(leaf, sizeof leaf, "%s/%s", parent, m->d_name) >= (int)sizeof leaf)
				continue;
			if (kill_members(leaf))
				rmdir_retry(leaf);
			else
				rmdir(leaf);
		}
		closedir(sub);
		kill_members(parent); /* none belong there; just in case */
		rmdir(parent);
	}
	closedir(d);
}

/* Creates a uniquely named child of dir for this backend. */
static int make_parent(const char *dir, char **out)
{
	static const char prefix[] = "vmpoolfs";
	remove_stale(dir);
	for (unsigned n = 0; n < 1000; n++) {
		char *p;
		if (asprintf(&p, "%s/%s.%d.%u", dir, prefix, (int)getpid(), n) < 0)
			return -ENOMEM;
		if (mkdir(p, 0755) == 0) {
			*out = p;
			return 0;
		}
		int err = -errno;
		free(p);
		if (err != -EEXIST)
			return err;
	}
	return -EEXIST;
}

/* The CPU controller is optional at open: a backend asked for no CPU limit
 * runs without it, and ns_cg_create refuses a limit it cannot set. */
static int open_v1(struct ns_cgroups *cg, const struct ns_cgroup_sources *src)
{
	static const char *const ctls[] = { "memory", "pids", "cpu" };
	struct mnt m[3];
	for (int i = 0; i < 3; i++) {
		int err = find_mount(src->mountinfo, ctls[i], &m[i]);
		if (err)
			return err;
		if (!m[i].found && i < 2)
			return -EOPNOTSUPP;
	}
	cg->version = 1;
	cg->cpu_dir = -1;
	for (int i = 0; i < 3; i++) {
		if (!m[i].found)
			continue;
		/* Co-mounted controllers share one hierarchy: one dir serves them. */
		int same = -1;
		for (int j = 0; j < cg->ndirs; j++)
			if (strcmp(cg->mnt[j].point, m[i].point) == 0)
				same = j;
		if (same < 0) {
			char path[4096], dir[4096];
			int err = own_cgroup(src->self_cgroup, ctls[i], path, sizeof path);
			if (!err)
				err = own_dir(&m[i], path, dir, sizeof dir);
			if (!err)
				err = make_parent(dir, &cg->parent[cg->ndirs]);
			if (err && i == 2)
				break; /* no usable cpu hierarchy: as if none */
			if (err)
				return err;
			cg->mnt[cg->ndirs] = m[i];
			cg->ctl[cg->ndirs] = ctls[i];
			same = cg->ndirs++;
		}
		if (i == 1)
			cg->pids_dir = same;
		else if (i == 2)
			cg->cpu_dir = same;
	}
	char memsw[4200];
	snprintf(memsw, sizeof memsw, "%s/memory.memsw.limit_in_bytes", cg->parent[0]);
	cg->has_memsw = access(memsw, F_OK) == 0;
	return 0;
}

static int open_v2(struct ns_cgroups *cg, const struct ns_cgroup_sources *src)
{
	struct mnt m;
	int err = find_mount(src->mountinfo, NULL, &m);
	if (err)
		return err;
	if (!m.found)
		return -EOPNOTSUPP;
	char path[4096], dir[4096], buf[512];
	err = own_cgroup(src->self_cgroup, NULL, path, sizeof path);
	if (!err)
		err = own_dir(&m, path, dir, sizeof dir);
	if (err)
		return err;
	/* A v2 cgroup with processes in it cannot hand controllers to children
	 * ("no internal processes"), except the root. So the parent goes under
	 * the root when we are there, else beside our own cgroup: our parent
	 * already delegates memory and pids to us when we have them. */
	char host[4096];
	bool at_root = strcmp(dir, m.point) == 0;
	if (at_root) {
		snprintf(host, sizeof host, "%s", dir);
	} else {
		char *slash = strrchr(dir, '/');
		if (!slash)
			return -EOPNOTSUPP;
		snprintf(host, sizeof host, "%.*s", (int)(slash - dir), dir);
	}
	char ctlpath[4200];
	snprintf(ctlpath, sizeof ctlpath, "%s/cgroup.controllers", host);
	if ((err = vp_read_small_file(ctlpath, buf, sizeof buf)))
		return err;
	buf[strcspn(buf, "\n")] = '\0';
	if (!has_token(buf, "memory", ' ') || !has_token(buf, "pids", ' '))
		return -EOPNOTSUPP;
	bool cpu = has_token(buf, "cpu", ' ');
	const char *want = cpu ? "+memory +pids +cpu" : "+memory +pids";
	/* Make sure host gives them to its children (idempotent when it does). */
	if ((err = write_file(host, "cgroup.subtree_control", want)))
		return err;
	cg->version = 2;
	if ((err = make_parent(host, &cg->parent[0])))
		return err;
	cg->ndirs = 1;
	cg->pids_dir = 0;
	cg->cpu_dir = cpu ? 0 : -1;
	return write_file(cg->parent[0], "cgroup.subtree_control", want);
}

int ns_cgroups_open_at(const struct ns_cgroup_sources *src, struct ns_cgroups **out)
{
	struct ns_cgroups *cg = calloc(1, sizeof *cg);
	if (!cg)
		return -ENOMEM;
	if (!(cg->thread_cgroup = strdup(src->thread_cgroup))) {
		free(cg);
		return -ENOMEM;
	}
	/* v1 first: where memory is bound to a v1 hierarchy, the cgroup2 mount
	 * (hybrid layout) has no controllers to offer. */
	int err = open_v1(cg, src);
	if (err) {
		for (int i = 0; i < cg->ndirs; i++) {
			rmdir(cg->parent[i]);
			free(cg->parent[i]);
			cg->parent[i] = NULL;
		}
		cg->ndirs = 0;
		cg->cpu_dir = -1;
		err = open_v2(cg, src);
	}
	if (err) {
		ns_cgroups_close(cg);
		return err;
	}
	*out = cg;
	return 0;
}

int ns_cgroups_open(struct ns_cgroups **out)
{
	static const struct ns_cgroup_sources proc = {
		.mountinfo = "/proc/self/mountinfo",
		.self_cgroup = "/proc/self/cgroup",
		.thread_cgroup = "/proc/thread-self/cgroup",
	};
	return ns_cgroups_open_at(&proc, out);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The kernel removes exited tasks from a cgroup a little after they are
 * reaped; rmdir says EBUSY until then. */
static int rmdir_retry(const char *dir)
{
	for (int i = 0; i < 200; i++) {
		if (rmdir(dir) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY)
			return -errno;
		sleep_ms(i < 20 ? 1 : 10);
	}
	return -EBUSY;
}

void ns_cgroups_close(struct ns_cgroups *cg)
{
	if (!cg)
		return;
	for (int i = 0; i < cg->ndirs; i++) {
		rmdir_retry(cg->parent[i]);
		free(cg->parent[i]);
	}
	free(cg->thread_cgroup);
	free(cg);
}

int ns_cgroups_version(const struct ns_cgroups *cg)
{
	return cg->version;
}

bool ns_cgroups_has_cpu(const struct ns_cgroups *cg)
{
	return cg->cpu_dir >= 0;
}

int ns_cgroups_dirs(const struct ns_cgroups *cg, const char **dirs, int max)
{
	int n = 0;
	for (; n < cg->ndirs && n < max; n++)
		dirs[n] = cg->parent[n];
	return n;
}

/* ---- per machine ------------------------------------------------------- */

/* CPU time per period: the scheduler lets the cgroup run quota µs of every
 * period µs across all CPUs, so 1500 mCPU is 150 ms per 100 ms. */
#define NS_CPU_PERIOD_US 100000u

static int set_cpu(const struct ns_cgroups *cg, const struct ns_cg *c, uint32_t cpu_milli)
{
	if (cpu_milli == 0)
		return 0;
	if (cg->cpu_dir < 0)
		return -EOPNOTSUPP;
	const char *dir = c->dirs[cg->cpu_dir];
	uint64_t quota = (uint64_t)cpu_milli * (NS_CPU_PERIOD_US / 1000u);
	if (quota < 1000)
		quota = 1000; /* the kernel's minimum quota is 1 ms */
	char v[64];
	if (cg->version == 1) {
		int err;
		snprintf(v, sizeof v, "%u", NS_CPU_PERIOD_US);
		if ((err = write_file(dir, "cpu.cfs_period_us", v)))
			return err;
		snprintf(v, sizeof v, "%" PRIu64, quota);
		return write_file(dir, "cpu.cfs_quota_us", v);
	}
	snprintf(v, sizeof v, "%" PRIu64 " %u", quota, NS_CPU_PERIOD_US);
	return write_file(dir, "cpu.max", v);
}

static int set_limits(const struct ns_cgroups *cg, struct ns_cg *c, const struct ns_cg_limits *lim)
{
	char v[32];
	int err;
	snprintf(v, sizeof v, "%" PRIu64, lim->mem_bytes);
	if (cg->version == 1) {
		if ((err = write_file(c->dirs[0], "memory.limit_in_bytes", v)))
			return err;
		/* memory+swap limit too, so a host that gains swap still holds the
		 * guest to mem_bytes (it must be ≥ the memory limit, set after it). */
		if (cg->has_memsw && (err = write_file(c->dirs[0], "memory.memsw.limit_in_bytes", v)))
			return err;
	} else {
		if ((err = write_file(c->dirs[0], "memory.max", v)))
			return err;
		/* No swapping the guest out instead of enforcing the limit. */
		write_file(c->dirs[0], "memory.swap.max", "0");
	}
	snprintf(v, sizeof v, "%" PRIu32, lim->pids_max);
	if ((err = write_file(c->dirs[cg->pids_dir], "pids.max", v)))
		return err;
	return set_cpu(cg, c, lim->cpu_milli);
}

int ns_cg_create(struct ns_cgroups *cg, const char *name, const struct ns_cg_limits *lim, struct ns_cg *out)
{
	memset(out, 0, sizeof *out);
	out->version = cg->version;
	int err = lim->cpu_milli && cg->cpu_dir < 0 ? -EOPNOTSUPP : 0;
	for (int i = 0; !err && i < cg->ndirs; i++) {
		char *d;
		if (asprintf(&d, "%s/%s", cg->parent[i], name) < 0) {
			err = -ENOMEM;
			break;
		}
		if (mkdir(d, 0755) < 0) {
			err = -errno;
			free(d);
			break;
		}
		out->dirs[out->ndirs++] = d;
	}
	if (!err)
		err = set_limits(cg, out, lim);
	if (err)
		ns_cg_remove(out);
	return err;
}

/* Starting the child inside its cgroup, rather than moving it there after
 * clone: moving a process (cgroup.procs) waits for an RCU grace period on
 * the global threadgroup lock, 15 ms here, most of a machine's start.
 * v2 has CLONE_INTO_CGROUP. v1 has not, but moving only the calling thread
 * ("0" to tasks) skips that lock: the thread goes in, clones (the child
 * inherits the thread's cgroups, and the pids limit applies to that very
 * fork) and comes back. */
int ns_cg_clone_begin(const struct ns_cgroups *cg, const struct ns_cg *c, struct ns_cg_clone *st)
{
	memset(st, 0, sizeof *st);
	st->cgroup_fd = -1;
	if (c->version == 2) {
		st->cgroup_fd = open(c->dirs[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		return st->cgroup_fd < 0 ? -errno : 0;
	}
	for (int i = 0; i < c->ndirs; i++) {
		char path[4096], dir[4096];
		int err = own_cgroup(cg->thread_cgroup, cg->ctl[i], path, sizeof path);
		if (!err)
			err = own_dir(&cg->mnt[i], path, dir, sizeof dir);
		if (!err && !(st->home[i] = strdup(dir)))
			err = -ENOMEM;
		if (!err)
			err = write_file(c->dirs[i], "tasks", "0");
		if (err) {
			ns_cg_clone_end(st);
			return err;
		}
		st->nhome = i + 1;
	}
	return 0;
}

int ns_cg_clone_end(struct ns_cg_clone *st)
{
	int first = 0;
	if (st->cgroup_fd >= 0)
		close(st->cgroup_fd);
	st->cgroup_fd = -1;
	for (int i = 0; i < st->nhome; i++) {
		int err = write_file(st->home[i], "tasks", "0");
		if (err && !first)
			first = err;
	}
	for (int i = 0; i < NS_CG_MAX_DIRS; i++) {
		free(st->home[i]);
		st->home[i] = NULL;
	}
	st->nhome = 0;
	return first;
}

int ns_cg_oom_kills(const struct ns_cg *c, uint64_t *out)
{
	char path[4200], buf[1024];
	*out = 0;
	if (c->ndirs < 1)
		return -ENOENT;
	/* v1: memory.oom_control has "oom_kill N" (Linux ≥ 4.13);
	 * v2: memory.events has "oom_kill N". */
	snprintf(path, sizeof path, "%s/%s", c->dirs[0],
		 c->version == 1 ? "memory.oom_control" : "memory.events");
	int err = vp_read_small_file(path, buf, sizeof buf);
	if (err)
		return err;
	for (char *p = buf; p && *p;) {
		unsigned long long v;
		if (sscanf(p, "oom_kill %llu", &v) == 1) {
			*out = v;
			return 0;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return -ENOENT;
}

int ns_cg_remove(struct ns_cg *c)
{
	int first = 0;
	for (int i = c->ndirs - 1; i >= 0; i--) {
		int err = rmdir_retry(c->dirs[i]);
		if (err && !first)
			first = err;
		free(c->dirs[i]);
		c->dirs[i] = NULL;
	}
	c->ndirs = 0;
	return first;
}
