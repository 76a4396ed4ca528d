/* libFuzzer target for the host client against a hostile agent. Each input
 * is a script for the agent's side of a socketpair to a real vp_client:
 * after a proper handshake, the agent sends frames built from the input
 * with the codec (replies to the requests it saw, to ids never sent,
 * duplicates, the wrong reply type, OUTPUT/EXIT for any id, huge counts
 * and lengths, odd errnos), raw bytes, half frames and pauses, while
 * requester threads keep making real calls with a short timeout.
 *
 * Checked besides what the sanitizers see: every call returns within a
 * bound and with 0 or -errno; counts handed back stay within what the
 * caller asked for; exec and write-behind callbacks run exactly once and
 * never after the start failed; a frame that is malformed whatever the
 * client's state kills the channel, after which every call fails with
 * -ECONNRESET at once; the host only sends well-formed frames; and
 * vp_client_free is prompt. Seeds: tests/client/corpus. This file runs
 * an input and reads what the host sends; the requesters are in
 * fuzz_client_calls.c, the agent's script in fuzz_client_agent.c. */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/client/fuzz_client.h"

/* ---- the agent's reader: every host frame must be well-formed --------------------- */

static void *drainer_main(void *arg)
{
	struct fz *f = arg;
	bool hello_done = false;
	for (;;) {
		struct vp_hdr h;
		uint8_t *pl;
		if (vp_frame_read(f->afd, &h, &pl))
			break;
		if (vp_validate(h.type, pl, h.len))
			FAIL("host sent a malformed %s", vp_type_name(h.type));
		enum vp_dir d = vp_msg_dir(h.type);
		if (d == VP_DIR_REPLY || d == VP_DIR_NONE)
			FAIL("host sent %s", vp_type_name(h.type));
		if ((d == VP_DIR_ONEWAY) != (h.id == 0))
			FAIL("host sent %s with id %u", vp_type_name(h.type), h.id);
		if (h.type == VP_OUTPUT_ACK) {
			struct vp_output_ack m;
			vp_dec_output_ack(pl, h.len, &m);
			atomic_fetch_add(&f->acked, m.bytes);
		}
		if (h.type == VP_HELLO && !hello_done) {
			/* The handshake is not what this target fuzzes. */
			hello_done = true;
			struct vp_buf b;
			vp_buf_init(&b);
			vp_enc_ready(&b, &(struct vp_ready){ 1, 0, { (const uint8_t *)"fz", 2 } });
			vp_frame_write(f->afd, VP_READY, h.id, b.data, b.len);
			vp_buf_free(&b);
		} else if (d == VP_DIR_REQ) {
			pthread_mutex_lock(&f->mu);
			f->last_id[h.type & 0xff] = h.id;
			f->seen++;
			pthread_mutex_unlock(&f->mu);
		}
		free(pl);
	}
	return NULL;
}

/* ---- one input ------------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fz f;
	memset(&f, 0, sizeof f);
	pthread_mutex_init(&f.mu, NULL);
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		FAIL("socketpair");
	f.afd = sv[1];
	if (vp_client_new(sv[0], &f.c))
		FAIL("vp_client_new");
	struct vp_buf b;
	vp_buf_init(&b);
	vp_enc_ready(&b, &(struct vp_ready){ 1, 0, { (const uint8_t *)"fz", 2 } });
	vp_frame_write(f.afd, VP_READY, 0, b.data, b.len);
	vp_buf_free(&b);
	pthread_t drainer;
	pthread_create(&drainer, NULL, drainer_main, &f);
	if (vp_client_handshake(f.c, 5000))
		FAIL("handshake");
	vp_client_set_timeout(f.c, TMO_MS);

	struct req r[NKINDS];
	for (int i = 0; i < NKINDS; i++) {
		r[i] = (struct req){ .f = &f, .kind = i };
		pthread_create(&r[i].t, NULL, req_main, &r[i]);
	}
	/* Let the first requests arrive, so replies have ids to go to. */
	for (int i = 0; i < 200; i++) {
		pthread_mutex_lock(&f.mu);
		unsigned seen = f.seen;
		pthread_mutex_unlock(&f.mu);
		if (seen >= NKINDS)
			break;
		sleep_ms(1);
	}

	struct in in = { data, size };
	bool sync = true;
	while (in.n && agent_op(&f, &in, &sync))
		;

	/* The end: the agent hangs up, every call must fail promptly. */
	atomic_store(&f.stop, true);
	shutdown(f.afd, SHUT_WR);
	double t0 = now_s();
	for (int i = 0; i < NKINDS; i++) {
		struct timespec dl;
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_sec += (time_t)HANG_S * 2;
		if (pthread_timedjoin_np(r[i].t, NULL, &dl))
			FAIL("requester %d hangs", i);
	}
	while (vp_client_alive(f.c)) {
		if (now_s() - t0 > 3 * HANG_S)
			FAIL("channel alive after EOF");
		sleep_ms(1);
	}
	double t1 = now_s();
	vp_client_free(f.c);
	if (now_s() - t1 > HANG_S || now_s() - t0 > 3 * HANG_S)
		FAIL("shutdown took too long");
	pthread_join(drainer, NULL);
	close(f.afd);
	if (atomic_load(&f.async_done) != atomic_load(&f.async_started))
		FAIL("write-behind: %d callbacks for %d writes", atomic_load(&f.async_done),
		     atomic_load(&f.async_started));
	if (!atomic_load(&f.unsynced) && atomic_load(&f.acked) > atomic_load(&f.output_sent))
		FAIL("acked %llu of %llu output bytes", atomic_load(&f.acked), atomic_load(&f.output_sent));
	pthread_mutex_destroy(&f.mu);
	return 0;
}
