/* libFuzzer target for the snapshot state file reader (snapfile.h): a
 * restore reads a file an attacker with write access to the run directory
 * may have replaced, so snapfile_parse must turn any bytes into 0 or a
 * clean -errno. Random bytes almost never carry the right total_len and
 * FNV checksum, which would keep the fuzzer at the header checks forever,
 * so when the first input byte is odd the target seals the rest itself
 * (writes its length and checksum into the header) before parsing, and
 * the section walk sees hostile tags and lengths.
 * On success it checks what the header promises: every section lies
 * inside the buffer, tags are unique, find/get agree, and writing the
 * sections again with snapfile_w gives a file that parses to the same.
 * Seeds: tests/fuzz/corpus/snapfile (tests/fuzz/mkcorpus.py). */
#include "vmm/kvm/monitor/snapfile.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tests/fuzz/fuzz_util.h"

/* The checksum as snapfile.h documents it, written independently so a
 * wrong checksum in the reader would show up as a rejected sealed file. */
static uint64_t fnv64(const uint8_t *p, size_t n, uint64_t h)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

static void seal(uint8_t *b, size_t len)
{
	uint64_t total = len, sum;
	memcpy(b, SNAPFILE_MAGIC, 8);
	memcpy(b + 16, &total, 8);
	memset(b + 24, 0, 8);
	sum = fnv64(b, len, 0xcbf29ce484222325ull);
	memcpy(b + 24, &sum, 8);
}

static void check_accepted(const struct snapfile_r *r, const uint8_t *buf, size_t len)
{
	FUZZ_CHECK(r->nsect <= SNAPFILE_MAX_SECTIONS);
	struct snapfile_w w;
	snapfile_w_init(&w);
	for (uint32_t i = 0; i < r->nsect; i++) {
		const struct snapfile_sect *s = &r->sect[i];
		FUZZ_CHECK(s->data >= buf + SNAPFILE_HDR + 8);
		FUZZ_CHECK(s->len <= len && s->data + s->len <= buf + len);
		for (uint32_t k = 0; k < i; k++)
			FUZZ_CHECK(r->sect[k].tag != s->tag);
		FUZZ_CHECK(snapfile_find(r, s->tag) == s);
		/* get() must refuse any length but the section's own. */
		uint8_t small[8];
		if (s->len != sizeof(small))
			FUZZ_CHECK(snapfile_get(r, s->tag, small, sizeof(small)) == -EBADMSG);
		snapfile_w_add(&w, s->tag, s->data, s->len);
	}

	/* Written again, the sections must read back the same, and the file
	 * has the same length (only padding bytes, which the reader ignores,
	 * may differ). */
	const uint8_t *nb;
	size_t nl;
	FUZZ_CHECK(snapfile_w_seal(&w, &nb, &nl) == 0);
	FUZZ_CHECK(nl == len);
	struct snapfile_r r2;
	FUZZ_CHECK(snapfile_parse(&r2, nb, nl) == 0);
	FUZZ_CHECK(r2.nsect == r->nsect);
	for (uint32_t i = 0; i < r->nsect; i++) {
		FUZZ_CHECK(r2.sect[i].tag == r->sect[i].tag && r2.sect[i].len == r->sect[i].len);
		FUZZ_CHECK(memcmp(r2.sect[i].data, r->sect[i].data, r->sect[i].len) == 0);
	}
	snapfile_w_free(&w);
}

/* The same bytes through snapfile_load (a real file read), which must give
 * the same verdict as parsing them in memory. */
static void check_load(const uint8_t *buf, size_t len, int want)
{
	int fd = memfd_create("fuzz_snapfile", MFD_CLOEXEC);
	if (fd < 0)
		return;
	if (len == 0 || write(fd, buf, len) == (ssize_t)len) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		struct snapfile_r r;
		int rc = snapfile_load(&r, path);
		FUZZ_CHECK(rc == (len > SNAPFILE_MAX ? -EFBIG : want));
		if (rc == 0)
			snapfile_free(&r);
	}
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	bool do_seal = data[0] & 1;
	data++;
	size--;
	/* A private copy: the reader's view of it must not depend on where
	 * libFuzzer's buffer ends, and sealing writes into it. */
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	if (do_seal && size >= SNAPFILE_HDR)
		seal(buf, size);

	struct snapfile_r r;
	int rc = snapfile_parse(&r, buf, size);
	FUZZ_CHECK(rc == 0 || rc == -EBADMSG || rc == -EPROTONOSUPPORT);
	if (rc == 0)
		check_accepted(&r, buf, size);
	else
		FUZZ_CHECK(r.nsect == 0 && snapfile_find(&r, 0) == NULL);
	check_load(buf, size, rc);
	free(buf);
	return 0;
}
