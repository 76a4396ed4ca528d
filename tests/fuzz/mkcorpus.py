#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets in tests/fuzz (one folder per
target under tests/fuzz/corpus). The seeds are checked in; this script is
how they were made, so a format change can regenerate them:
    python3 tests/fuzz/mkcorpus.py tests/fuzz/corpus
Each seed is a well-formed input plus a few near misses, so the fuzzer
starts past the magic numbers and checksums."""
import os
import struct
import sys


def fnv64(b, h=0xcbf29ce484222325):
    for x in b:
        h = ((h ^ x) * 0x100000001b3) & 0xffffffffffffffff
    return h


def snapfile(sections, version=1):
    body = b""
    for tag, data in sections:
        body += struct.pack("<II", tag, len(data)) + data + b"\0" * (-len(data) % 8)
    total = 32 + len(body)
    hdr = b"VPKVMSNP" + struct.pack("<IIQQ", version, len(sections), total, 0)
    s = fnv64(hdr + body)
    return b"VPKVMSNP" + struct.pack("<IIQQ", version, len(sections), total, s) + body


def bzimage(version=0x020f, xlf=1, kernel_len=0x400, init_size=0x10000, addr_max=0x37ffffff,
            setup_sects=1, cmdline_size=255, hdr_disp=0x66):
    setup_len = ((setup_sects or 4) + 1) * 512  # boot.rst: 0 means 4
    img = bytearray(setup_len + kernel_len)
    img[0x1f1] = setup_sects
    struct.pack_into("<I", img, 0x1f4, (kernel_len + 15) // 16)
    struct.pack_into("<H", img, 0x1fe, 0xaa55)
    img[0x200] = 0xeb
    img[0x201] = hdr_disp
    img[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", img, 0x206, version)
    struct.pack_into("<I", img, 0x22c, addr_max)
    struct.pack_into("<H", img, 0x236, xlf)
    struct.pack_into("<I", img, 0x238, cmdline_size)
    struct.pack_into("<I", img, 0x260, init_size)
    for i in range(kernel_len):
        img[setup_len + i] = (i * 7) & 0xff
    return bytes(img)


def bz_seed(img, mem=0, initrd=0x1000, cmdlen=20):
    return struct.pack("<BHB", mem, initrd, cmdlen) + img


# virtq program: RAM size (3: 32 KiB), queue config, then ops (the switch
# in fuzz_virtq.c).
def vq_config(num_log2=3, desc=0, avail=0x100, used=0x200, last=0, used_idx=0):
    return struct.pack("<BBHHHBHH", 3, num_log2, desc, avail, used, 1, last, used_idx)


def vq_desc(i, addr, length, flags, nxt, hi=0):
    return struct.pack("<BBHBHBB", 1, i, addr, hi, length, flags, nxt)


def vq_publish(head):
    return struct.pack("<BB", 2, head)


def vq_pop(off=0):
    return struct.pack("<BH", 4, off)


NEXT, WRITE, INDIRECT = 1, 2, 4


def main(out):
    seeds = {
        "snapfile": {
            "good": b"\0" + snapfile([(1, b"regs" * 10), (2, b"sregs"), (7, b"")]),
            "empty": b"\0" + snapfile([]),
            "sealed-dup": b"\1" + snapfile([(1, b"a"), (1, b"b")]),
            "sealed-long": b"\1" + snapfile([(3, b"x" * 20)])[:-8],
            "version2": b"\0" + snapfile([(1, b"a")], version=2),
        },
        "bzimage": {
            "good": bz_seed(bzimage()),
            "initrd-cap": bz_seed(bzimage(addr_max=0x1fffff), mem=1, initrd=0x8000),
            "big-init": bz_seed(bzimage(init_size=0x2000000), mem=3),
            "old": bz_seed(bzimage(version=0x020a)),
            "short-hdr": bz_seed(bzimage(hdr_disp=0x30)),
            "no-initrd": bz_seed(bzimage(setup_sects=0, kernel_len=0x300), initrd=0, cmdlen=200),
        },
        "virtq": {
            "chain": vq_config() + vq_desc(0, 0x1000, 16, NEXT, 1) + vq_desc(1, 0x1100, 32, WRITE, 0)
                     + vq_publish(0) + vq_pop() + vq_publish(1) + vq_pop(5),
            "loop": vq_config() + vq_desc(2, 0x1000, 8, NEXT, 3) + vq_desc(3, 0x1000, 8, NEXT, 2)
                    + vq_publish(2) + vq_pop(),
            "indirect": vq_config() + vq_desc(0, 0x1000, 16, INDIRECT, 0) + vq_publish(0) + vq_pop(),
            "outside": vq_config(num_log2=8, desc=0x1000, avail=0x2000, used=0x3000)
                       + vq_desc(0, 0xfff0, 0x20, 0, 0) + vq_publish(0) + vq_pop()
                       + vq_desc(1, 0x0, 0xffff, WRITE, 0, hi=1) + vq_publish(1) + vq_pop(),
            "ahead": vq_config() + struct.pack("<BH", 3, 100) + vq_pop(),
        },
        "ctlparse": {
            "all": b"kill\nkill SIGINT\nkill 9\ntimeout 2.5\nenv A=b\nenv A=c\ncwd /tmp\n\n  \r\n",
            "bad": b"kill FOO\ntimeout 1.\ntimeout 99999999\nenv 1A=x\ncwd rel\nfrob\n",
            "env": b"".join(b"env K%d=%d\n" % (i, i) for i in range(40)),
            "snapshot": b"snapshot deps-1.0_a\nsnapshot ../x\nsnapshot a/b\nsnapshot .hidden\nsnapshot\n"
            + b"snapshot " + b"n" * 65 + b"\n",
        },
    }
    for target, files in seeds.items():
        d = os.path.join(out, target)
        os.makedirs(d, exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus"))
