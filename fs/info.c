/* MNT/stats and MNT/config; see info.h. */
#include "info.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* *len was bound to the stream by open_memstream and is set by fclose. */
int info_memstream_done(FILE *f, char **buf, char **out)
{
	if (fclose(f) != 0) {
		free(*buf);
		return -ENOMEM;
	}
	*out = *buf;
	return 0;
}

/* The pool's counters, shared by MNT/stats and images/NAME/stats. */
void info_print_pool_stats(FILE *f, const struct pool_stats *st)
{
#define U(k, v) fprintf(f, "%s=%llu\n", k, (unsigned long long)(v))
	U("hits", st->hits);
	U("misses", st->misses);
	U("evictions", st->evictions);
	U("idle", st->idle);
	U("in_use", st->in_use);
	U("creating", st->creating);
	U("resetting", st->resetting);
	U("creates", st->creates);
	U("create_failures", st->create_failures);
	U("resets", st->resets);
	U("reset_failures", st->reset_failures);
	U("health_checks", st->health_checks);
	U("health_failures", st->health_failures);
	U("boot_us_last", st->boot_us_last);
	U("boot_us_avg", st->boot_us_avg);
	U("reset_us_last", st->reset_us_last);
	U("reset_us_avg", st->reset_us_avg);
#undef U
}

int info_format_stats(struct vpfs *fs, char **out, size_t *len)
{
	struct pool_stats st;
	pool_get_stats(fs->pool, &st);
	vp_mutex_lock(&fs->lock);
	unsigned long long sessions = fs->nlive, commands = fs->commands_run;
	vp_mutex_unlock(&fs->lock);
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	if (!f)
		return -ENOMEM;
	info_print_pool_stats(f, &st);
	fprintf(f, "sessions=%llu\ncommands_run=%llu\n", sessions, commands);
	return info_memstream_done(f, &buf, out);
}

int info_format_config(struct vpfs *fs, char **out, size_t *len)
{
	const struct vpfs_opts *o = &fs->opts;
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	if (!f)
		return -ENOMEM;
	fprintf(f, "backend=%s\n", machine_backend_name(fs->backend));
	fprintf(f, "backend_reason=%s\n", machine_backend_reason(fs->backend));
	fprintf(f, "min=%u\n", o->pool.min_size);
	fprintf(f, "max=%u\n", o->pool.max_size);
	fprintf(f, "idle=%u\n", o->pool.max_idle_ms / 1000u);
	fprintf(f, "max_machines=%u\n", o->pool.max_machines);
	fprintf(f, "timeout=%u", o->timeout_ms / 1000u);
	if (o->timeout_ms % 1000u)
		fprintf(f, ".%03u", o->timeout_ms % 1000u);
	fputc('\n', f);
	fprintf(f, "mem=%llu\n", (unsigned long long)o->mc.mem_bytes);
	fprintf(f, "disk=%llu\n", (unsigned long long)o->mc.disk_bytes);
	fprintf(f, "image=%s\n", o->image);
	fprintf(f, "images=%s\n", o->images_dir ? o->images_dir : "");
	fprintf(f, "spill=%zu\n", o->spill_threshold);
	fprintf(f, "output_max=%llu\n", (unsigned long long)o->output_max);
	fprintf(f, "cpus=%u.%03u\n", o->mc.cpu_milli / 1000u, o->mc.cpu_milli % 1000u);
	fprintf(f, "pids=%u\n", o->mc.pids_max);
	fprintf(f, "nofile=%u\n", o->mc.nofile_max);
	fprintf(f, "ping_ms=%u\n", (unsigned)o->ping_ms);
	fprintf(f, "machine_calls=%u\n", o->machine_calls);
	fprintf(f, "version=%s\n", VMPOOLFS_VERSION);
	return info_memstream_done(f, &buf, out);
}
