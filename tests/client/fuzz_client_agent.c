/* fuzz_client's agent side: frames built from the input with the codec
 * (natural and wrong replies, wild values, raw bytes, half frames, pauses),
 * and the check that a frame malformed whatever the client's state kills
 * the channel. */
#include <string.h>
#include <sys/socket.h>

#include "tests/client/fuzz_client.h"

/* The request types the agent may answer, by the last id it saw for each. */
static const uint16_t req_types[] = {
	VP_PING,       VP_FS_LOOKUP, VP_FS_GETATTR, VP_FS_READ,	   VP_FS_READDIR,  VP_FS_WRITE,	 VP_EXEC,
	VP_STDIN,      VP_SIGNAL,    VP_FS_OPEN,    VP_FS_CREATE,  VP_FS_READLINK, VP_FS_STATFS, VP_FS_CLOSE,
	VP_FS_SETATTR, VP_SET_TIME,  VP_FS_MKDIR,   VP_FS_OPENDIR, VP_FS_FSYNC,	   VP_FS_UNLINK,
};
#define NREQ (sizeof req_types / sizeof req_types[0])

static const uint16_t reply_types[] = {
	VP_READY,     VP_PONG,	     VP_ERROR,	    VP_OK,	   VP_EXEC_STARTED,
	VP_OUTPUT,    VP_EXIT,	     VP_FS_ENTRY,   VP_FS_ATTR,	   VP_FS_DATA,
	VP_FS_HANDLE, VP_FS_CREATED, VP_FS_WRITTEN, VP_FS_DIRENTS, VP_FS_STATFS_REPLY,
};
#define NREPLY (sizeof reply_types / sizeof reply_types[0])

static uint8_t in_u8(struct in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static uint32_t in_u32(struct in *in)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v = v << 8 | in_u8(in);
	return v;
}

/* A value for an integer field: mostly sane (< lim), sometimes extreme. */
static uint32_t val32(struct in *in, bool wild, uint32_t lim)
{
	static const uint32_t odd[] = { 0,	     1,		  0x7fffffffu,	   0x80000000u,
					0xffffffffu, VP_MAX_DATA, VP_MAX_DATA + 1, 4095,
					4096,	     1000000000u };
	if (wild) {
		uint8_t s = in_u8(in);
		return s < 10 ? odd[s] : in_u32(in);
	}
	return lim ? in_u32(in) % lim : in_u32(in);
}

static uint64_t val64(struct in *in, bool wild)
{
	uint64_t hi = val32(in, wild, 0);
	return hi << 32 | val32(in, wild, 0);
}

/* A str/bytes field: short ones from the input, big ones a pattern. */
static void put_bytes(struct vp_buf *b, struct in *in, bool wild, bool name)
{
	static const uint32_t big[] = { VP_MAX_DATA, 70000, 4097, 65536, 256, VP_MAX_DATA + 1 };
	uint8_t s = in_u8(in);
	uint32_t n = s & 0x7f;
	if (s & 0x80 && wild) {
		n = big[n % 6];
		vp_put_u32(b, n);
		for (uint32_t i = 0; i < n && !b->err; i++)
			vp_put_u8(b, (uint8_t)('a' + i % 26));
		return;
	}
	if (name && !wild && n == 0)
		n = 1;
	vp_put_u32(b, n);
	for (uint32_t i = 0; i < n; i++) {
		uint8_t ch = in_u8(in);
		if (!wild)
			ch = (uint8_t)('a' + ch % 26); /* no NUL, no '/', never "." */
		vp_put_u8(b, ch);
	}
}

static void put_attr(struct vp_buf *b, struct in *in, bool wild)
{
	for (int i = 0; i < 6; i++)
		vp_put_u64(b, val64(in, wild));
	for (int i = 0; i < 3; i++)
		vp_put_u32(b, val32(in, wild, 1000000000u));
	for (int i = 0; i < 6; i++)
		vp_put_u32(b, val32(in, wild, 0));
}

/* A payload laid out as `type` wants, its values from the input: wild ones
 * may break the value rules (vp_validate then fails). */
static void gen_payload(struct vp_buf *b, uint16_t type, struct in *in, bool wild)
{
	static const int32_t errnos[] = { 0,	-1,   EIO,	 ENOENT,    ETIMEDOUT, ECONNRESET,
					  4095, 4096, INT32_MAX, INT32_MIN, EAGAIN,    ESTALE };
	switch (type) {
	case VP_READY:
		vp_put_u32(b, wild ? val32(in, true, 0) : 1);
		vp_put_u32(b, val32(in, wild, 1));
		put_bytes(b, in, wild, false);
		break;
	case VP_PONG:
	case VP_FS_DATA: put_bytes(b, in, wild, false); break;
	case VP_ERROR: {
		uint8_t s = in_u8(in);
		vp_put_i32(b, s < 12 ? errnos[s] : (int32_t)val32(in, wild, 200));
		put_bytes(b, in, false, false);
		break;
	}
	case VP_OK: break;
	case VP_EXEC_STARTED:
	case VP_FS_WRITTEN: vp_put_u32(b, val32(in, wild, 6000)); break;
	case VP_OUTPUT:
		vp_put_u8(b, (uint8_t)(wild ? in_u8(in) : 1 + in_u8(in) % 2));
		put_bytes(b, in, wild, true);
		break;
	case VP_EXIT:
		vp_put_i32(b, (int32_t)val32(in, wild, 257) - 1);
		vp_put_i32(b, (int32_t)val32(in, wild, 65));
		vp_put_u8(b, (uint8_t)val32(in, wild, 2));
		vp_put_u64(b, val64(in, wild));
		break;
	case VP_FS_ENTRY:
		vp_put_u64(b, wild ? val64(in, true) : 2 + val32(in, false, 100));
		put_attr(b, in, wild);
		break;
	case VP_FS_ATTR: put_attr(b, in, wild); break;
	case VP_FS_HANDLE: vp_put_u64(b, wild ? val64(in, true) : 1 + val32(in, false, 100)); break;
	case VP_FS_CREATED:
		vp_put_u64(b, wild ? val64(in, true) : 1 + val32(in, false, 100));
		vp_put_u64(b, wild ? val64(in, true) : 2 + val32(in, false, 100));
		put_attr(b, in, wild);
		break;
	case VP_FS_DIRENTS: {
		/* The count may disagree with the entries that follow. */
		uint32_t n = in_u8(in) % 64;
		vp_put_u32(b, wild ? val32(in, true, 0) : n);
		for (uint32_t i = 0; i < n; i++) {
			vp_put_u64(b, val64(in, false));
			vp_put_u64(b, val64(in, false));
			vp_put_u32(b, val32(in, wild, 16));
			put_bytes(b, in, wild, true);
		}
		break;
	}
	case VP_FS_STATFS_REPLY:
		for (int i = 0; i < 5; i++)
			vp_put_u64(b, val64(in, wild));
		for (int i = 0; i < 3; i++)
			vp_put_u32(b, val32(in, wild, 0));
		break;
	default: /* a request type as a reply: any bytes */ put_bytes(b, in, false, false); break;
	}
}

static bool send_all(struct fz *f, const void *p, size_t n)
{
	const uint8_t *d = p;
	while (n) {
		ssize_t w = send(f->afd, d, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false; /* the client closed the channel */
		d += w;
		n -= (size_t)w;
	}
	return true;
}

/* The natural answers to a request, and the frames of a running exec. */
static uint16_t natural_reply(uint16_t req, uint8_t sel)
{
	if (req == VP_EXEC) {
		static const uint16_t t[] = { VP_EXEC_STARTED, VP_OUTPUT, VP_EXIT, VP_ERROR };
		return t[sel % 4];
	}
	return sel % 4 == 0 ? VP_ERROR : vp_msg_reply(req);
}

/* Waits for the client to notice a frame that is malformed whatever its
 * state, then checks that calls fail at once. */
static void expect_dead(struct fz *f, const char *why)
{
	double until = now_s() + HANG_S;
	while (vp_client_alive(f->c)) {
		if (now_s() > until)
			FAIL("channel still alive after %s", why);
		sleep_ms(1);
	}
	double t0 = now_s();
	int rc = vp_ping(f->c);
	if (rc != -ECONNRESET || now_s() - t0 > 1.0)
		FAIL("ping on a dead channel: %d", rc);
}

/* One op of the script (see fuzz_client.h). */
bool agent_op(struct fz *f, struct in *in, bool *sync)
{
	uint8_t op = in_u8(in);
	uint8_t sel = in_u8(in);
	uint16_t target = req_types[sel % NREQ];
	pthread_mutex_lock(&f->mu);
	uint32_t last = f->last_id[target & 0xff];
	pthread_mutex_unlock(&f->mu);

	switch (op & 7) {
	case 3: { /* raw bytes */
		uint8_t raw[256];
		uint8_t n = in_u8(in);
		for (unsigned i = 0; i < n; i++)
			raw[i] = in_u8(in);
		*sync = false;
		atomic_store(&f->unsynced, true);
		return send_all(f, raw, n);
	}
	case 4: /* a pause: calls time out, late replies follow */ sleep_ms(sel % 64); return true;
	default: break;
	}

	/* A frame: its id, type and payload. */
	bool fatal = false;
	uint32_t id;
	switch ((op >> 3) & 7) {
	case 4:
		id = FATAL_ID | in_u32(in);
		fatal = true;
		break;
	case 5:
		id = 0; /* READY was seen: any frame with id 0 is fatal */
		fatal = true;
		break;
	case 6: id = in_u32(in); break;
	case 7: id = last + 1; break;
	default:
		id = last ? last : FATAL_ID | sel;
		fatal = !last;
		break;
	}
	uint8_t tsel = in_u8(in);
	uint16_t type;
	if (tsel < 160)
		type = natural_reply(target, tsel);
	else if (tsel < 250)
		type = reply_types[tsel % NREPLY];
	else if (tsel < 254)
		type = req_types[tsel % NREQ];
	else
		type = (uint16_t)in_u32(in);
	bool wild = (op & 0x40) != 0;
	struct vp_buf b;
	vp_buf_init(&b);
	if (op & 0x80 && wild) {
		put_bytes(&b, in, false, false); /* any bytes at all */
	} else {
		gen_payload(&b, type, in, wild);
	}
	if (b.err) {
		vp_buf_free(&b);
		return true;
	}
	uint16_t flags = (op & 7) == 2 && (sel & 0x80) ? 1 : 0;
	uint8_t hdr[VP_HDR_SIZE];
	vp_hdr_encode(hdr, &(struct vp_hdr){ .len = (uint32_t)b.len, .type = type, .flags = flags, .id = id });
	fatal = fatal || flags || vp_msg_dir(type) != VP_DIR_REPLY || vp_validate(type, b.data, b.len);
	bool half = (op & 7) == 1 && b.len > 1;
	bool ok = send_all(f, hdr, sizeof hdr) && send_all(f, b.data, half ? b.len / 2 : b.len);
	if (ok && !half && type == VP_OUTPUT && !fatal) {
		struct vp_output m;
		if (vp_dec_output(b.data, b.len, &m) == 0)
			atomic_fetch_add(&f->output_sent, m.data.len);
	}
	vp_buf_free(&b);
	if (half) {
		/* The reader now waits for the rest of a frame: calls time out. */
		*sync = false;
		atomic_store(&f->unsynced, true);
		return ok;
	}
	if (ok && fatal && *sync) {
		expect_dead(f, vp_type_name(type));
		return false;
	}
	return ok;
}
