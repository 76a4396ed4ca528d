#!/usr/bin/env python3
"""Side-by-side latency of a command through vmpoolfs and its peers, all in
one run, interleaved sample by sample so that every kind sees the same
moments of a shared host (docs/benchmarks.md, "exec round trip and full
cycle").

  rt      `echo true > cmd; read exit` on an acquired machine: open/write/
          close of cmd, open/read/close of exit, with Python's own open()
  sh      the host's `sh -c true` (posix_spawn + waitpid): the exec floor
  cycle   mkdir pool/NAME + the round trip + rmdir pool/NAME
  bwrap   `bwrap --unshare-all --ro-bind ROOTFS / true` (a fresh sandbox)
  runc    `runc run` of a fresh container from an OCI bundle whose root is
          the same image's rootfs (read-only), process `true`

Usage (root): bench/cycle_bench.py MOUNT [ROOTFS]   (MOUNT: a mounted
vmpoolfs; ROOTFS: the image's rootfs, default build/image/rootfs)
Env: N (samples of each kind, 300), KINDS (a subset, "rt sh cycle bwrap
runc"), RUNC_N (runc samples, 40: each takes ~30 ms and more).
Prints one markdown table: p50/p95 of each kind, then the ratios asked of
issue 12 (rt / sh, cycle / bwrap, cycle / runc).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


def pct(v, p):
    s = sorted(v)
    i = int(len(s) * p + 0.5) - 1
    return s[max(0, min(len(s) - 1, i))]


def spawn_wait(argv, env):
    pid = os.posix_spawn(argv[0], argv, env)
    _, st = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(st) != 0:
        raise RuntimeError("%s: exit status %d" % (argv, os.waitstatus_to_exitcode(st)))


def rt(machine):
    with open(machine + "/cmd", "w") as f:
        f.write("true\n")
    with open(machine + "/exit") as f:
        code = f.read()
    if code != "0\n":
        raise RuntimeError("exit: %r" % code)


def make_bundle(rootfs, work):
    """An OCI bundle for runc: `runc spec`, root = ROOTFS read-only, the
    process `true`, no terminal."""
    b = os.path.join(work, "bundle")
    os.makedirs(b)
    subprocess.run(["runc", "spec", "-b", b], check=True)
    with open(os.path.join(b, "config.json")) as f:
        cfg = json.load(f)
    cfg["root"] = {"path": os.path.abspath(rootfs), "readonly": True}
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["true"]
    with open(os.path.join(b, "config.json"), "w") as f:
        json.dump(cfg, f)
    return b


def main():
    if len(sys.argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    mnt = sys.argv[1]
    rootfs = sys.argv[2] if len(sys.argv) > 2 else "build/image/rootfs"
    n = int(os.environ.get("N", "300"))
    runc_n = int(os.environ.get("RUNC_N", "40"))
    kinds = os.environ.get("KINDS", "rt sh cycle bwrap runc").split()
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    work = tempfile.mkdtemp(prefix="cycle_bench.")
    bwrap = shutil.which("bwrap")
    runc = shutil.which("runc")
    for k, exe in (("bwrap", bwrap), ("runc", runc)):
        if k in kinds and not exe:
            sys.stderr.write("cycle_bench: %s not installed (scripts/setup.sh)\n" % k)
            kinds.remove(k)
    bundle = make_bundle(rootfs, work) if "runc" in kinds else None
    machine = os.path.join(mnt, "pool", "cb_rt")
    os.mkdir(machine)
    fresh = os.path.join(mnt, "pool", "cb_cycle")
    seq = [0]

    def cycle():
        os.mkdir(fresh)
        try:
            rt(fresh)
        finally:
            os.rmdir(fresh)

    def runc_one():
        seq[0] += 1
        spawn_wait([runc, "run", "--bundle", bundle, "cb%d-%d" % (os.getpid(), seq[0])], env)

    run = {
        "rt": lambda: rt(machine),
        "sh": lambda: spawn_wait(["/bin/sh", "-c", "true"], env),
        "cycle": cycle,
        "bwrap": lambda: spawn_wait([bwrap, "--unshare-all", "--ro-bind", rootfs, "/", "true"], env),
        "runc": runc_one,
    }
    samples = {k: [] for k in kinds}
    try:
        for k in kinds:  # warm-up: caches, the pool's refill, runc's state dir
            for _ in range(10 if k != "runc" else 2):
                run[k]()
        for i in range(n):
            order = kinds[i % len(kinds):] + kinds[:i % len(kinds)]
            for k in order:
                if k == "runc" and i % max(1, n // runc_n):
                    continue
                t0 = time.perf_counter_ns()
                run[k]()
                samples[k].append((time.perf_counter_ns() - t0) / 1e6)
    finally:
        os.rmdir(machine)
        shutil.rmtree(work, ignore_errors=True)
    u = os.uname()
    print("# cycle_bench, %s, %s, %d cores, load %.2f" %
          (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), u.release,
           os.cpu_count(), os.getloadavg()[0]))
    print()
    print("| kind (interleaved) | n | p50 | p95 |")
    print("|---|---|---|---|")
    names = {
        "rt": "`echo true > cmd; read exit` (Python open/write/close, open/read/close)",
        "sh": "host `sh -c true` (posix_spawn + waitpid)",
        "cycle": "mkdir + `true` + rmdir",
        "bwrap": "bwrap `--unshare-all` `true` (image rootfs)",
        "runc": "runc fresh container `true` (image rootfs)",
    }
    for k in kinds:
        v = samples[k]
        print("| %s | %d | %.3f ms | %.3f ms |" % (names[k], len(v), pct(v, 0.5), pct(v, 0.95)))
    print()

    def ratio(a, b, goal, what):
        if a in samples and b in samples:
            r = pct(samples[a], 0.5) / pct(samples[b], 0.5)
            print("| %s | %.2fx | %s |" % (what, r, goal))

    print("| ratio of p50s | value | goal |")
    print("|---|---|---|")
    ratio("rt", "sh", "≤ 1.2x", "round trip / host `sh -c true`")
    ratio("cycle", "bwrap", "≤ 0.3x", "cycle / bwrap")
    ratio("cycle", "runc", "", "cycle / runc")
    return 0


if __name__ == "__main__":
    sys.exit(main())
