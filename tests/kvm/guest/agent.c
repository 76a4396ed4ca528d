/* The agent protocol's basic frames, spoken by the conformance guest over
 * the virtio console (docs/protocol.md; layout of proto/proto.h).
 * proto.c needs libc, so the 12-byte header {u32 len, u16 type, u16 flags,
 * u32 id} is encoded by hand here. Sends READY (id 0) at start, answers
 * every PING with a PONG carrying the same id and echo, answers HELLO with
 * READY (version 1 when HELLO's range holds it, else ERROR
 * EPROTONOSUPPORT: the handshake of a machine restored after READY, which
 * sends no READY of its own), answers SET_TIME with OK (it keeps no clock,
 * it only reports the time it was told), and ends after a PING whose echo
 * is "bye" (a conformance-guest convention, so the test can stop it).
 * EXEC, which it cannot serve, ends it at once without an answer: how a
 * test makes a guest die in the middle of a request. Other frames are
 * ignored. Each frame is reported on COM1: `ready sent`, `hello id=N`,
 * `time sec=S nsec=NS` (before the OK, so the line is there once the host
 * has its answer), `pong id=N len=L n=C`, `exec id=N: stopping`, where C
 * counts the PINGs answered so far: a value in guest RAM, so machines
 * restored from one snapshot show whether their RAM is their own
 * (tests/kvm/test_kvm_snapshot.c). */
#include "tests/kvm/guest/guest.h"

#define VP_HDR 12u
#define VP_READY 2u
#define VP_PING 3u
#define VP_PONG 4u
#define VP_HELLO 1u
#define VP_ERROR 5u
#define VP_OK 6u
#define VP_SET_TIME 7u
#define VP_EXEC 16u
#define VERSION 1u	     /* VP_PROTO_VERSION */
#define EPROTONOSUPPORT_ 93u /* Linux's value, as ERROR carries it */
#define MAX_PAYLOAD 256u     /* the host's test pings are small */
#define NSEC_PER_SEC 1000000000u

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int send_frame(struct vcon_dev *d, uint16_t type, uint32_t id, const uint8_t *pl, uint32_t len)
{
	uint8_t f[VP_HDR + MAX_PAYLOAD];
	if (len > MAX_PAYLOAD)
		return -1;
	put32(f, len);
	f[4] = (uint8_t)type;
	f[5] = (uint8_t)(type >> 8);
	f[6] = f[7] = 0;
	put32(f + 8, id);
	memcpy(f + VP_HDR, pl, len);
	return vcon_send(d, f, VP_HDR + len);
}

static void recv_exact(struct vcon_dev *d, uint8_t *buf, uint32_t len)
{
	for (uint32_t got = 0; got < len;)
		got += vcon_recv(d, buf + got, len - got);
}

/* In .bss, i.e. in guest RAM that a snapshot captures. */
static uint32_t pings_answered;

/* READY{version, features 0, info}: unsolicited (id 0) at start, or the
 * answer to HELLO `id`. */
static int send_ready(struct vcon_dev *d, uint32_t id)
{
	static const char info[] = "kvm-conformance-guest";
	uint8_t ready[8 + 4 + sizeof(info) - 1];
	put32(ready, VERSION);
	put32(ready + 4, 0);
	put32(ready + 8, sizeof(info) - 1);
	memcpy(ready + 12, info, sizeof(info) - 1);
	return send_frame(d, VP_READY, id, ready, sizeof(ready));
}

/* HELLO{u32 min, u32 max}: READY when version 1 is in range, else ERROR
 * {i32 EPROTONOSUPPORT, str ""}. A payload of another size is a bad frame. */
static int answer_hello(struct vcon_dev *d, uint32_t id, const uint8_t *pl, uint32_t len)
{
	if (len != 8 || get32(pl) > get32(pl + 4))
		return -1;
	puts_("hello id=");
	putdec(id);
	putc_('\n');
	if (get32(pl) <= VERSION && VERSION <= get32(pl + 4))
		return send_ready(d, id);
	uint8_t err[8];
	put32(err, EPROTONOSUPPORT_);
	put32(err + 4, 0);
	return send_frame(d, VP_ERROR, id, err, sizeof(err));
}

/* SET_TIME{i64 sec, u32 nsec}: logged, then OK. A payload of another size
 * or nsec ≥ 1e9 is a bad frame. */
static int answer_set_time(struct vcon_dev *d, uint32_t id, const uint8_t *pl, uint32_t len)
{
	if (len != 12 || get32(pl + 8) >= NSEC_PER_SEC)
		return -1;
	uint64_t sec = (uint64_t)get32(pl) | (uint64_t)get32(pl + 4) << 32;
	puts_("time sec=");
	if ((int64_t)sec < 0) {
		putc_('-');
		sec = -sec;
	}
	putdec(sec);
	puts_(" nsec=");
	putdec(get32(pl + 8));
	putc_('\n');
	return send_frame(d, VP_OK, id, pl, 0);
}

int agent_run(struct vcon_dev *d)
{
	if (send_ready(d, 0))
		return GUEST_ERR_PROTO;
	puts_("ready sent\n");
	for (;;) {
		uint8_t hdr[VP_HDR], pl[MAX_PAYLOAD];
		recv_exact(d, hdr, VP_HDR);
		uint32_t len = get32(hdr);
		uint16_t type = (uint16_t)(hdr[4] | hdr[5] << 8);
		uint32_t id = get32(hdr + 8);
		if (len > MAX_PAYLOAD || hdr[6] || hdr[7]) {
			puts_("bad frame\n");
			return GUEST_ERR_PROTO; /* cannot resynchronise a byte stream */
		}
		recv_exact(d, pl, len);
		if (type == VP_HELLO || type == VP_SET_TIME) {
			if ((type == VP_HELLO ? answer_hello : answer_set_time)(d, id, pl, len))
				return GUEST_ERR_PROTO;
			continue;
		}
		if (type == VP_EXEC) {
			puts_("exec id=");
			putdec(id);
			puts_(": stopping\n");
			return 0;
		}
		if (type != VP_PING) {
			puts_("ignored type=");
			putdec(type);
			putc_('\n');
			continue;
		}
		/* {bytes echo}: u32 length that must match the payload. */
		if (len < 4 || get32(pl) != len - 4) {
			puts_("bad ping\n");
			return GUEST_ERR_PROTO;
		}
		if (send_frame(d, VP_PONG, id, pl, len))
			return GUEST_ERR_PROTO;
		puts_("pong id=");
		putdec(id);
		puts_(" len=");
		putdec(len - 4);
		puts_(" n=");
		putdec(++pings_answered);
		putc_('\n');
		if (len == 7 && pl[4] == 'b' && pl[5] == 'y' && pl[6] == 'e')
			return 0;
	}
}
