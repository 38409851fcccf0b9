#!/usr/bin/env python3
"""Traffic files for scripts/soak.sh (ns pcap, Ethernet, deterministic, standard library only).

    soak-traffic.py flood   OUT.pcap --keys N       one ERSPAN II frame per distinct session key
    soak-traffic.py random  OUT.pcap --frames N     random bytes behind an Ethernet header
    soak-traffic.py concat  OUT.pcap IN.pcap...     the records of several pcaps, in order

flood: N distinct (exporter, ERSPAN id) keys, alternating IPv4 exporters 198.51.100.10-250 with
ids 0-1023 and IPv6 exporters in 2001:db8:f::/48, so a looped file keeps presenting N sessions
(a session-table flood). random: EtherTypes IPv4, IPv6, 802.1Q and others with random bodies,
some shaped like GRE/UDP so they pass the collector's kernel filter. All frames go to the
collector's MAC 02:00:00:00:00:bb from 02:00:00:00:00:aa; only documentation addresses are used.
"""

import argparse
import random
import struct
import sys

DST, SRC = bytes.fromhex("0200000000bb"), bytes.fromhex("0200000000aa")
COLLECTOR4 = bytes([198, 51, 100, 2])
COLLECTOR6 = bytes.fromhex("20010db8000000000000000000000002")
HEADER = struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)
INNER = (bytes.fromhex("020000000002020000000001") + b"\x08\x00"
         + struct.pack(">BBHHHBBH4s4s", 0x45, 0, 46, 0, 0, 64, 17, 0, bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2]))
         + struct.pack(">HHHH", 1000, 2000, 26, 0) + b"\x00" * 18)


def record(index, data, wire=None):
    t = 1_700_000_000 * 10**9 + 1 + index * 1_000_000
    return struct.pack("<IIII", t // 10**9, t % 10**9, len(data), wire or len(data)) + data


def erspan2(exporter, session, sequence):
    gre = struct.pack(">HHI", 0x1000, 0x88BE, sequence)
    span = struct.pack(">HHI", 0x1000, session & 0x3FF, 0)
    payload = gre + span + INNER
    if len(exporter) == 4:
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0x4000, 64, 47, 0, exporter, COLLECTOR4)
        return DST + SRC + b"\x08\x00" + ip + payload
    ip = struct.pack(">IHBB16s16s", 0x60000000, len(payload), 47, 64, exporter, COLLECTOR6)
    return DST + SRC + b"\x86\xdd" + ip + payload


def flood(args):
    out = [HEADER]
    rng = random.Random(7)
    for index in range(args.keys):
        if index % 2 == 0:
            key = index // 2
            exporter = bytes([198, 51, 100, 10 + (key // 1024) % 241])
            session = key % 1024
        else:
            exporter = bytes.fromhex("20010db8000f") + struct.pack(">HQ", rng.getrandbits(16), index)
            session = rng.getrandbits(10)
        out.append(record(index, erspan2(exporter, session, index)))
    return out


def random_frames(args):
    out = [HEADER]
    rng = random.Random(11)
    for index in range(args.frames):
        kind = rng.randrange(6)
        body = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 300)))
        if kind == 0:  # IPv4 GRE with a random GRE header and body
            gre = struct.pack(">HH", rng.getrandbits(16), rng.choice([0x88BE, 0x22EB, 0x6558, rng.getrandbits(16)]))
            total = rng.choice([20 + len(gre) + len(body), rng.getrandbits(16)])
            ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, total & 0xFFFF, index & 0xFFFF, rng.choice([0, 0x2000, 0x4000, rng.getrandbits(16)]),
                             64, 47, 0, bytes([198, 51, 100, 1 + rng.randrange(250)]), COLLECTOR4)
            frame = DST + SRC + b"\x08\x00" + ip + gre + body
        elif kind == 1:  # IPv4 UDP to 4789 with a random VXLAN header
            udp = struct.pack(">HHHH", rng.getrandbits(16), 4789, 8 + len(body), 0)
            ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp) + len(body), 0, 0, 64, 17, 0, bytes([198, 51, 100, 1]), COLLECTOR4)
            frame = DST + SRC + b"\x08\x00" + ip + udp + body
        elif kind == 2:  # IPv6 with a random next header chain start
            ip = struct.pack(">IHBB16s16s", 0x60000000, len(body), rng.choice([0, 43, 44, 47, 51, 60, 17]), 64,
                             bytes.fromhex("20010db8000000000000000000000001"), COLLECTOR6)
            frame = DST + SRC + b"\x86\xdd" + ip + body
        elif kind == 3:  # VLAN tags, then anything
            frame = DST + SRC + b"".join(struct.pack(">HH", rng.choice([0x8100, 0x88A8, 0x9100]), rng.getrandbits(16))
                                         for _ in range(rng.randrange(1, 6))) + rng.choice([b"\x08\x00", b"\x86\xdd", b"\x88\xb5"]) + body
        else:  # random EtherType and bytes
            frame = DST + SRC + struct.pack(">H", rng.getrandbits(16)) + body
        out.append(record(index, frame))
    return out


def concat(args):
    out = [HEADER]
    index = 0
    for path in args.inputs:
        with open(path, "rb") as handle:
            data = handle.read()
        magic = data[:4]
        endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        if struct.unpack(endian + "I", data[20:24])[0] & 0x03FFFFFF != 1:
            continue
        offset = 24
        while offset + 16 <= len(data):
            _, _, caplen, origlen = struct.unpack(endian + "IIII", data[offset:offset + 16])
            frame = data[offset + 16:offset + 16 + caplen]
            offset += 16 + caplen
            if len(frame) >= 14:  # shorter frames cannot be sent on Ethernet
                out.append(record(index, frame))
                index += 1
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=["flood", "random", "concat"])
    parser.add_argument("out")
    parser.add_argument("inputs", nargs="*")
    parser.add_argument("--keys", type=int, default=6000)
    parser.add_argument("--frames", type=int, default=2000)
    args = parser.parse_args()
    records = {"flood": flood, "random": random_frames, "concat": concat}[args.kind](args)
    with open(args.out, "wb") as handle:
        handle.write(b"".join(records))
    print(f"{args.out}: {len(records) - 1} frames", file=sys.stderr)


if __name__ == "__main__":
    main()
