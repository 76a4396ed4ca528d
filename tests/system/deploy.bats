#!/usr/bin/env bats
# deploy/*.yaml against the Kubernetes API's object models (Debian's
# python3-kubernetes), no cluster needed: tests/system/check-manifests.py.

REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
CHECK="/usr/bin/python3 $BATS_TEST_DIRNAME/check-manifests.py"

@test "the DaemonSet and the job pod are valid API objects with what vmpoolfs needs" {
	run $CHECK "$REPO/deploy/daemonset.yaml" "$REPO/deploy/job-pod.yaml"
	echo "$output"
	[ "$status" = 0 ]
	[[ "$output" == "ok: 2 objects" ]]
}

@test "an unknown field is refused" {
	sed 's/mountPropagation: Bidirectional/mountPropagation: Bidirectional\n              mountPropagaton: Bidirectional/' \
		"$REPO/deploy/daemonset.yaml" >"$BATS_TEST_TMPDIR/ds.yaml"
	run $CHECK "$BATS_TEST_TMPDIR/ds.yaml" "$REPO/deploy/job-pod.yaml"
	echo "$output"
	[ "$status" != 0 ]
	[[ "$output" == *"mountPropagaton: unknown field"* ]]
}

@test "a missing required field is refused" {
	sed 's/^        - name: vmpoolfs$/        - stdin: false/' "$REPO/deploy/daemonset.yaml" >"$BATS_TEST_TMPDIR/ds.yaml"
	run $CHECK "$BATS_TEST_TMPDIR/ds.yaml" "$REPO/deploy/job-pod.yaml"
	echo "$output"
	[ "$status" != 0 ]
	[[ "$output" == *"`name`"* ]]
}

@test "a job pod without HostToContainer is refused" {
	sed 's/HostToContainer/None/' "$REPO/deploy/job-pod.yaml" >"$BATS_TEST_TMPDIR/job.yaml"
	run $CHECK "$REPO/deploy/daemonset.yaml" "$BATS_TEST_TMPDIR/job.yaml"
	[ "$status" != 0 ]
}
