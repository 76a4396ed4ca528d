/* Protocol codec tests: round trips of every message, malformed payloads
 * and headers (test_proto_roundtrip.c, test_proto_malformed.c), frame I/O
 * over a socketpair and a pipe (test_proto_frame_io.c), run in order.
 * `test_proto --write-corpus DIR` writes the fuzzer's seed frames. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "all_types.h"
#include "tests/proto/test_proto.h"

/* ---- corpus ------------------------------------------------------------------------- */

static int write_corpus(const char *dir)
{
	mkdir(dir, 0755);
	struct vp_buf pl, fr;
	vp_buf_init(&pl);
	vp_buf_init(&fr);
	for (size_t i = 0; i < VP_NTYPES; i++) {
		vp_buf_reset(&pl);
		sample(vp_all_types[i], &pl);
		if (pl.err || vp_frame_encode(&fr, vp_all_types[i], (uint32_t)i + 1, pl.data, pl.len)) {
			fprintf(stderr, "cannot encode %s\n", vp_type_name(vp_all_types[i]));
			return 1;
		}
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", dir, vp_type_name(vp_all_types[i]));
		FILE *f = fopen(path, "wb");
		if (!f || fwrite(fr.data, 1, fr.len, f) != fr.len || fclose(f) != 0) {
			perror(path);
			return 1;
		}
	}
	vp_buf_free(&pl);
	vp_buf_free(&fr);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0)
		return write_corpus(argv[2]);
	alarm(60); /* a hang is a failure */
	static const struct tap_part *const parts[] = {
		&proto_roundtrip_part,
		&proto_malformed_part,
		&proto_frame_io_part,
	};
	return tap_main_parts(parts, sizeof parts / sizeof parts[0]);
}
