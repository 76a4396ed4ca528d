/* Options; see opts.h. */
#include "opts.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget.h"
#include "ctlparse.h"
#include "defimage.h"

/* The state directory's images (docs/usage.md, the images directory). */
#ifndef VMPOOL_IMAGES_DIR
#define VMPOOL_IMAGES_DIR "/var/lib/vmpoolfs/images"
#endif

#define DEFAULT_SPILL (4u << 20)
#define DEFAULT_THREADS 64
#define DEFAULT_PING_MS 5000

struct raw {
	char *min, *max, *idle, *max_machines, *backend, *timeout, *mem, *disk, *image, *images, *spill,
		*threads;
	char *output_max, *cpus, *pids, *nofile, *ping, *machine_calls;
	char *max_threads; /* libfuse's name for threads= (one option, two names) */
	int help, version;
	int allow_other;
	/* The words that are not options: MOUNTPOINT, or SOURCE MOUNTPOINT as
	 * mount.fuse3 passes them (mount -t fuse.vmpoolfs SOURCE MNT). */
	char *words[2];
	int nwords;
};

enum { KEY_ALLOW_OTHER };

#define OPT(t, f)                             \
	{                                     \
		t, offsetof(struct raw, f), 0 \
	}
static const struct fuse_opt spec[] = {
	OPT("min=%s", min),
	OPT("max=%s", max),
	OPT("idle=%s", idle),
	OPT("max_machines=%s", max_machines),
	OPT("backend=%s", backend),
	OPT("timeout=%s", timeout),
	OPT("mem=%s", mem),
	OPT("disk=%s", disk),
	OPT("image=%s", image),
	OPT("images=%s", images),
	OPT("spill=%s", spill),
	OPT("threads=%s", threads),
	OPT("output_max=%s", output_max),
	OPT("cpus=%s", cpus),
	OPT("pids=%s", pids),
	OPT("nofile=%s", nofile),
	OPT("ping=%s", ping),
	OPT("machine_calls=%s", machine_calls),
	OPT("max_threads=%s", max_threads),
	FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
	FUSE_OPT_END,
};

/* allow_other is libfuse's (the mount takes it) and ours (who owns a
 * machine matters only when others can reach it): noted, and kept in
 * args like everything that is not ours. */
static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct raw *r = data;
	(void)outargs;
	if (key == KEY_ALLOW_OTHER)
		r->allow_other = 1;
	if (key == FUSE_OPT_KEY_NONOPT) {
		if (r->nwords == 2) {
			fprintf(stderr,
				"vmpoolfs: too many arguments: '%s' (usage: vmpoolfs [SOURCE] MOUNTPOINT "
				"[options])\n",
				arg);
			return -1;
		}
		r->words[r->nwords] = strdup(arg);
		if (!r->words[r->nwords])
			return -1;
		r->nwords++;
		return 0; /* the mountpoint goes back in after parsing */
	}
	return 1;
}

static void usage(const char *prog, const char *image)
{
	printf("usage: %s [options] [SOURCE] MOUNTPOINT\n\n"
	       "vmpoolfs: a pool of isolated Linux guests as a file tree.\n"
	       "  mkdir MNT/pool/NAME       acquire a machine\n"
	       "  echo CMD > .../cmd        run a command; cat stdout, stderr, exit, stat\n"
	       "  rmdir MNT/pool/NAME       release it\n"
	       "SOURCE is what mount(8) passes (mount -t fuse.vmpoolfs vmpoolfs MNT -o OPTS; fstab:\n"
	       "vmpoolfs MNT fuse.vmpoolfs OPTS 0 0); it is ignored. See vmpoolfs(8).\n\n"
	       "vmpoolfs options:\n"
	       "    -o min=N               idle machines kept warm (1)\n"
	       "    -o max=N               idle machines retained (16)\n"
	       "    -o idle=SEC            idle machine evicted after SEC seconds (30)\n"
	       "    -o max_machines=N      cap on machines in use + idle + being made (64; 0 = none)\n"
	       "    -o backend=auto|ns|kvm machine backend (auto)\n"
	       "    -o timeout=SEC         default command timeout (0 = none)\n"
	       "    -o mem=SIZE            memory per machine, e.g. 512M (2G)\n"
	       "    -o disk=SIZE           writable layer per machine (1G)\n"
	       "    -o image=NAME|DIR      default image: a NAME in images=, or a directory (%s)\n"
	       "    -o images=DIR          images directory, each one MNT/images/NAME (%s)\n"
	       "    -o spill=SIZE          output kept in memory per stream before spilling to disk (4M)\n"
	       "    -o threads=N           maximum FUSE worker threads (%d); libfuse's max_threads=N\n"
	       "                           is the same option\n"
	       "    -o output_max=SIZE     stdout+stderr kept per machine and command, at most disk= "
	       "(disk=)\n"
	       "    -o cpus=N              CPU time per machine, decimal CPUs, 0 = no limit (1)\n"
	       "    -o pids=N              processes per machine (1024; clamped to the host's pid_max)\n"
	       "    -o nofile=N            open files per process of a machine (1024; clamped to file-max)\n"
	       "    -o ping=SEC            an agent that does not answer a ping for SEC is dead (5; 0 = "
	       "off)\n"
	       "    -o machine_calls=N     FUSE workers one machine's guest calls may hold (threads/4)\n"
	       "    -o allow_other         other host users may use the mount; each machine is its\n"
	       "                           maker's (mode 0700), pool/ is like /tmp (docs/usage.md)\n\n"
	       "General options:\n"
	       "    -h, --help             this help\n"
	       "    -V, --version          the version of vmpoolfs and of libfuse\n"
	       "    -f                     foreground: stay attached, messages on stderr\n"
	       "                           (without it: detach once mounted, messages to syslog)\n"
	       "    -d, -o debug           libfuse's request trace on stderr, and debug messages;\n"
	       "                           implies -f\n"
	       "    -s                     one FUSE worker thread (threads=1)\n\n"
	       "Mount options (passed to the kernel; rw, ro, dev, nodev, suid, nosuid, exec,\n"
	       "noexec, atime, noatime, sync, async and dirsync too):\n",
	       prog, image, VMPOOL_IMAGES_DIR, DEFAULT_THREADS);
	fflush(stdout);
}

int opts_parse_size(const char *s, uint64_t *out)
{
	char *end;
	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	uint64_t mul = 1;
	switch (toupper((unsigned char)*end)) {
	case '\0': break;
	case 'K':
		mul = 1ull << 10;
		end++;
		break;
	case 'M':
		mul = 1ull << 20;
		end++;
		break;
	case 'G':
		mul = 1ull << 30;
		end++;
		break;
	case 'T':
		mul = 1ull << 40;
		end++;
		break;
	default: return -EINVAL;
	}
	if (mul > 1 && (*end == 'i' || *end == 'I'))
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end != '\0')
		return -EINVAL;
	if (v > UINT64_MAX / mul)
		return -EINVAL;
	*out = v * mul;
	return 0;
}

static int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
	char *end;
	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static int bad(const char *key, const char *val, const char *why)
{
	fprintf(stderr, "vmpoolfs: invalid value for -o %s: '%s' (%s)\n", key, val ? val : "", why);
	return -EINVAL;
}

static void free_raw(struct raw *r)
{
	free(r->min), free(r->max), free(r->idle), free(r->max_machines), free(r->backend);
	free(r->timeout), free(r->mem), free(r->disk), free(r->image), free(r->images), free(r->spill),
		free(r->threads);
	free(r->ping), free(r->machine_calls);
	free(r->output_max), free(r->cpus), free(r->pids), free(r->nofile), free(r->max_threads);
	free(r->words[0]), free(r->words[1]);
}

static int apply(struct raw *r, struct vpfs_opts *o)
{
	uint32_t v;
	uint64_t sz;
	if (r->min) {
		if (parse_u32(r->min, 4096, &v))
			return bad("min", r->min, "a number of machines, 0 to 4096");
		o->pool.min_size = v;
	}
	if (r->max) {
		if (parse_u32(r->max, 4096, &v) || v == 0)
			return bad("max", r->max, "a number of machines, 1 to 4096");
		o->pool.max_size = v;
	}
	if (r->idle) {
		if (parse_u32(r->idle, UINT32_MAX / 1000, &v))
			return bad("idle", r->idle, "whole seconds");
		o->pool.max_idle_ms = v * 1000;
	}
	if (r->max_machines) {
		if (parse_u32(r->max_machines, 65536, &v))
			return bad("max_machines", r->max_machines, "a number of machines, 0 = no cap");
		o->pool.max_machines = v;
	}
	if (r->backend) {
		if (!strcmp(r->backend, "auto"))
			o->mc.kind = MACHINE_AUTO;
		else if (!strcmp(r->backend, "ns"))
			o->mc.kind = MACHINE_NS;
		else if (!strcmp(r->backend, "kvm"))
			o->mc.kind = MACHINE_KVM;
		else
			return bad("backend", r->backend, "auto, ns or kvm");
	}
	if (r->timeout && ctl_parse_seconds(r->timeout, strlen(r->timeout), &o->timeout_ms))
		return bad("timeout", r->timeout, "seconds, 0 = none");
	if (r->mem) {
		if (opts_parse_size(r->mem, &sz) || sz < (16u << 20))
			return bad("mem", r->mem, "a size of at least 16M, e.g. 512M");
		o->mc.mem_bytes = sz;
	}
	if (r->disk) {
		if (opts_parse_size(r->disk, &sz) || sz < (1u << 20))
			return bad("disk", r->disk, "a size of at least 1M, e.g. 1G");
		o->mc.disk_bytes = sz;
	}
	if (r->spill) {
		if (opts_parse_size(r->spill, &sz) || sz > (1ull << 30))
			return bad("spill", r->spill, "a size up to 1G");
		o->spill_threshold = (size_t)sz;
	}
	if (r->output_max) {
		if (opts_parse_size(r->output_max, &sz) || sz < 4096)
			return bad("output_max", r->output_max, "a size of at least 4K, e.g. 64M");
		o->output_max = sz;
	}
	/* Thousandths of a CPU, parsed like seconds: "1.5" is 1500. */
	if (r->cpus) {
		uint32_t milli;
		if (ctl_parse_seconds(r->cpus, strlen(r->cpus), &milli) || milli > 4096000 ||
		    (milli > 0 && milli < 10))
			return bad("cpus", r->cpus, "CPUs as a decimal, 0.01 to 4096, 0 = no limit");
		o->mc.cpu_milli = milli;
	}
	if (r->pids) {
		if (parse_u32(r->pids, 4194304, &v) || v < BUDGET_PIDS_MIN)
			return bad("pids", r->pids, "processes per machine, 16 to 4194304");
		o->mc.pids_max = v;
	}
	if (r->nofile) {
		if (parse_u32(r->nofile, 1u << 20, &v) || v < 64)
			return bad("nofile", r->nofile, "open files per process, 64 to 1048576");
		o->mc.nofile_max = v;
	}
	if (r->threads && r->max_threads)
		return bad("max_threads", r->max_threads, "the same option as threads=: give one");
	if (r->max_threads) {
		r->threads = r->max_threads;
		r->max_threads = NULL;
	}
	if (r->threads) {
		if (parse_u32(r->threads, 100000, &v) || v < 2)
			return bad("threads", r->threads, "at least 2");
		o->max_threads = v;
	}
	if (r->ping) {
		uint32_t ms;
		if (ctl_parse_seconds(r->ping, strlen(r->ping), &ms) || (ms && ms < 500))
			return bad("ping", r->ping, "seconds, at least 0.5, 0 = off");
		o->ping_ms = ms;
	}
	if (r->machine_calls) {
		if (parse_u32(r->machine_calls, 100000, &v) || v < 1)
			return bad("machine_calls", r->machine_calls, "at least 1");
		o->machine_calls = v;
	}
	if (r->image) {
		if (!*r->image)
			return bad("image", r->image, "a directory");
		o->image = r->image;
		r->image = NULL;
	}
	if (r->images) {
		if (!*r->images)
			return bad("images", r->images, "a directory");
		o->images_dir = r->images;
		r->images = NULL;
	}
	/* The output budget is part of the machine's disk budget: what a
	 * command prints may not cost the host more than the files it writes. */
	if (!o->output_max)
		o->output_max = o->mc.disk_bytes;
	else if (o->output_max > o->mc.disk_bytes)
		return bad("output_max", r->output_max, "at most disk=");
	if (pool_config_validate(&o->pool) < 0) {
		fprintf(stderr,
			"vmpoolfs: inconsistent pool options: need max >= 1, min <= max and "
			"max_machines >= min (or 0): min=%u max=%u max_machines=%u\n",
			o->pool.min_size, o->pool.max_size, o->pool.max_machines);
		return -EINVAL;
	}
	return 0;
}

int opts_parse(struct fuse_args *args, struct vpfs_opts *o, char **mountpoint)
{
	struct raw r;
	memset(&r, 0, sizeof(r));
	memset(o, 0, sizeof(*o));
	pool_config_defaults(&o->pool);
	machine_config_defaults(&o->mc);
	o->spill_threshold = DEFAULT_SPILL;
	o->max_threads = DEFAULT_THREADS;
	o->ping_ms = DEFAULT_PING_MS;
	*mountpoint = NULL;

	if (fuse_opt_parse(args, &r, spec, opt_proc) == -1) {
		free_raw(&r);
		return -EINVAL;
	}
	/* SOURCE MOUNTPOINT (mount.fuse3) or MOUNTPOINT: libfuse takes one. */
	if (r.nwords && fuse_opt_add_arg(args, r.words[r.nwords - 1]) != 0) {
		free_raw(&r);
		return -ENOMEM;
	}
	struct fuse_cmdline_opts co;
	memset(&co, 0, sizeof(co));
	if (fuse_parse_cmdline(args, &co) != 0) {
		free_raw(&r);
		return -EINVAL;
	}
	if (co.show_help) {
		bool buildable;
		char *img = defimage_choose(&buildable);
		usage(args->argv[0], img ? img : defimage_installed());
		free(img);
		fuse_lowlevel_help();
		free_raw(&r);
		free(co.mountpoint);
		return 1;
	}
	if (co.show_version) {
		printf("vmpoolfs %s\n", VMPOOLFS_VERSION);
		fflush(stdout);
		fuse_lowlevel_version();
		free_raw(&r);
		free(co.mountpoint);
		return 1;
	}
	if (r.nwords == 2) {
		o->source = r.words[0];
		r.words[0] = NULL;
	}
	int err = apply(&r, o);
	o->allow_other = r.allow_other != 0;
	free_raw(&r);
	if (err == 0 && budget_clamp(o->pool.max_machines, &o->mc.pids_max, &o->mc.nofile_max, stderr) < 0)
		err = -EINVAL;
	if (err == 0 && !co.mountpoint) {
		fprintf(stderr, "vmpoolfs: no mountpoint given (see --help)\n");
		err = -EINVAL;
	}
	if (err == 0 && !o->images_dir && !(o->images_dir = strdup(VMPOOL_IMAGES_DIR)))
		err = -ENOMEM;
	if (err == 0 && !o->image) {
		o->image = defimage_choose(&o->image_is_default);
		if (!o->image)
			err = -ENOMEM;
	}
	if (err) {
		free(co.mountpoint);
		opts_free(o);
		return -EINVAL;
	}
	o->mc.image_dir = o->image;
	o->foreground = co.foreground;
	o->debug = co.debug;
	if (co.singlethread)
		o->max_threads = 1;
	/* A quarter of the workers by default: three quarters stay for the
	 * other machines and the tree whatever one guest does. */
	if (!o->machine_calls)
		o->machine_calls = o->max_threads / 4 ? o->max_threads / 4 : 1;
	*mountpoint = co.mountpoint;
	return 0;
}

void opts_free(struct vpfs_opts *o)
{
	free(o->image);
	o->image = NULL;
	free(o->images_dir);
	o->images_dir = NULL;
	free(o->source);
	o->source = NULL;
}
