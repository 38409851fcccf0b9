#!/usr/bin/env python3
"""make_load.py - fast, deterministic generator of large mirror-traffic captures for span-collector tests.

    make_load.py OUT.pcap --packets N --sessions S [--type erspan2|erspan3|vxlan|mixed]
                 [--seed K] [--rate PPS] [--manifest OUT.json]

Output: classic pcap, nanosecond magic (0xa1b23c4d), LINKTYPE_ETHERNET. Record i has the
timestamp 1700000000.000000001 s + i * (1e9 / rate) ns (default rate 100000 pps: 100k packets
span one second).

Every packet:  Ether 02:00:00:00:00:aa -> 02:00:00:00:00:bb
               / IPv4 198.51.100.1 -> 198.51.100.2 (DF, id 0)
               / GRE (S set, seq) / ERSPAN II (Ver 1) or ERSPAN III (Ver 2, Gra 0, 100 us timestamp)
                 or UDP (dport 4789, checksum 0) / VXLAN (flags 0x08)
               / inner Ether / IPv4 192.0.2.x -> 192.0.2.254 / UDP (checksum 0) / payload
Sessions: ids 1..S (ERSPAN session id, or VNI for VXLAN); `mixed` cycles erspan2, erspan3, vxlan
over the ids (session 1 erspan2, 2 erspan3, 3 vxlan, 4 erspan2, ...). GRE sequence numbers
start at 0 per session and increase by one per packet of that session (no gaps: lost = 0).
Inner frame sizes (no FCS) follow a simple IMIX 7:4:1 of 64 / 576 / 1500 bytes; the first 8
bytes of the inner UDP payload hold the packet's index in the file (big-endian).

How it is fast: scapy builds one template per (session, size); the records are then
replicated into a bytearray with struct.pack_into, patching the record timestamp, the GRE
sequence number, the ERSPAN III timestamp and the inner counter. Session/size order comes from
random.Random(seed), so the same arguments always give the same bytes.

The manifest (JSON) has, per session name (<exporter>-erspan-<id> / <exporter>-vxlan-<vni>):
encapsulation, id, packets, bytes (sum of inner frame lengths), lost/out_of_order/duplicates/
truncated (all 0), frames_first_time/last_time; and the totals packets_received, packets_written,
inner_bytes, discarded (all 0), plus the file's size.
"""
import argparse
import decimal
import json
import os
import random
import struct
import sys
import time

EXPORTER = "198.51.100.1"
COLLECTOR = "198.51.100.2"
SIZES = (64, 576, 1500)
WEIGHTS = (7, 4, 1)
PCAP_NS_HEADER = struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)
START_NS = 1700000000 * 10 ** 9 + 1


def check_scapy():
    try:
        import scapy
    except ImportError:
        sys.exit("make_load.py: scapy is not installed; install exactly scapy==2.8.0")
    if scapy.__version__ != "2.8.0":
        sys.exit("make_load.py: scapy %s found, but this generator is pinned to scapy 2.8.0 "
                 "(pip install scapy==2.8.0)" % scapy.__version__)


def session_type(kind, sid):
    if kind == "mixed":
        return ("erspan2", "erspan3", "vxlan")[(sid - 1) % 3]
    return kind


def session_name(enc, sid):
    return "%s-%s-%d" % (EXPORTER, "vxlan" if enc == "vxlan" else "erspan", sid)


def build_templates(n_sessions, kind):
    from scapy.config import conf
    conf.verb = 0
    from scapy.packet import Raw
    from scapy.layers.l2 import Ether, GRE
    from scapy.layers.inet import IP, UDP
    from scapy.layers.vxlan import VXLAN
    from scapy.contrib.erspan import ERSPAN_II, ERSPAN_III

    templates = []
    for sid in range(1, n_sessions + 1):
        enc = session_type(kind, sid)
        for size, weight in zip(SIZES, WEIGHTS):
            hdr = (Ether(src="02:00:00:01:%02x:%02x" % (sid >> 8 & 0xFF, sid & 0xFF), dst="02:00:00:00:00:02")
                   / IP(src="192.0.2.%d" % (1 + sid % 250), dst="192.0.2.254", ttl=63)
                   / UDP(sport=10000 + sid % 50000, dport=2000 + size, chksum=0))
            fill = size - len(hdr) - 8
            inner = bytes(hdr / Raw(b"\0" * 8 + bytes((i * 7 + sid) & 0xFF for i in range(fill))))
            assert len(inner) == size
            outer = Ether(src="02:00:00:00:00:aa", dst="02:00:00:00:00:bb") / IP(
                src=EXPORTER, dst=COLLECTOR, ttl=64, id=0, flags="DF")
            if enc == "erspan2":
                outer = outer / GRE(seqnum_present=1, proto=0x88BE, sequence_number=0) / ERSPAN_II(
                    session_id=sid, index=sid)
            elif enc == "erspan3":
                outer = outer / GRE(seqnum_present=1, proto=0x22EB, sequence_number=0) / ERSPAN_III(
                    session_id=sid, timestamp=0, gra=0, hw=1)
            else:
                outer = outer / UDP(sport=49152 + sid % 16000, dport=4789, chksum=0) / VXLAN(flags=0x08, vni=sid)
            pkt = bytes(outer / Raw(inner))
            hlen = len(pkt) - size
            assert pkt[hlen:] == inner
            templates.append({"sid": sid, "enc": enc, "size": size, "weight": weight, "hlen": hlen,
                              "blob": struct.pack("<IIII", 0, 0, len(pkt), len(pkt)) + pkt})
    return templates


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", help="output pcap path")
    ap.add_argument("--packets", type=int, required=True)
    ap.add_argument("--sessions", type=int, required=True)
    ap.add_argument("--type", choices=["erspan2", "erspan3", "vxlan", "mixed"], default="erspan2")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rate", type=int, default=100000, help="packets per second implied by the timestamps")
    ap.add_argument("--manifest", help="write the expected per-session counts (JSON) here")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args()
    if args.packets < 0:
        ap.error("--packets must be >= 0")
    if args.sessions < 1:
        ap.error("--sessions must be >= 1")
    if args.type != "vxlan" and args.sessions > 1023:
        ap.error("ERSPAN session ids are 10 bits: --sessions 1..1023")
    if args.rate < 1 or args.rate > 10 ** 9:
        ap.error("--rate 1..1e9")
    check_scapy()

    t0 = time.perf_counter()
    templates = build_templates(args.sessions, args.type)
    rng = random.Random(args.seed)
    order = rng.choices(range(len(templates)), weights=[t["weight"] for t in templates], k=args.packets)
    t1 = time.perf_counter()

    step = 10 ** 9 // args.rate
    blobs = [t["blob"] for t in templates]
    lens = [len(b) for b in blobs]
    sess = [t["sid"] - 1 for t in templates]
    is_gre = [t["enc"] != "vxlan" for t in templates]
    is_e3 = [t["enc"] == "erspan3" for t in templates]
    cnt_off = [16 + t["hlen"] + 42 for t in templates]     # inner Eth 14 + IP 20 + UDP 8
    inner_len = [t["size"] for t in templates]
    SEQ_OFF = 16 + 14 + 20 + 4
    TS3_OFF = 16 + 14 + 20 + 8 + 4

    S = args.sessions
    seq = [0] * S
    pk = [0] * S
    by = [0] * S
    first_t = [None] * S
    last_t = [None] * S
    pack_into = struct.pack_into
    CHUNK = 16 << 20
    buf = bytearray(CHUNK + 4096)
    file_bytes = len(PCAP_NS_HEADER)
    with open(args.out, "wb") as f:
        f.write(PCAP_NS_HEADER)
        o = 0
        for i, ti in enumerate(order):
            L = lens[ti]
            if o + L > CHUNK:
                f.write(memoryview(buf)[:o])
                file_bytes += o
                o = 0
            buf[o:o + L] = blobs[ti]
            t_ns = START_NS + i * step
            pack_into("<II", buf, o, t_ns // 1000000000, t_ns % 1000000000)
            s = sess[ti]
            if is_gre[ti]:
                pack_into(">I", buf, o + SEQ_OFF, seq[s])
                seq[s] = (seq[s] + 1) & 0xFFFFFFFF
                if is_e3[ti]:
                    pack_into(">I", buf, o + TS3_OFF, (t_ns // 100000) & 0xFFFFFFFF)
            pack_into(">Q", buf, o + cnt_off[ti], i)
            pk[s] += 1
            by[s] += inner_len[ti]
            if first_t[s] is None:
                first_t[s] = t_ns
            last_t[s] = t_ns
            o += L
        if o:
            f.write(memoryview(buf)[:o])
            file_bytes += o
    t2 = time.perf_counter()

    def ts(t_ns):
        return None if t_ns is None else str(decimal.Decimal(t_ns) / 10 ** 9)

    sessions = {}
    for s in range(S):
        sid = s + 1
        enc = session_type(args.type, sid)
        sessions[session_name(enc, sid)] = {
            "encapsulation": enc, "id": sid, "packets": pk[s], "bytes": by[s],
            "lost": 0, "out_of_order": 0, "duplicates": 0, "truncated": 0,
            "first_time": ts(first_t[s]), "last_time": ts(last_t[s]),
        }
    if args.manifest:
        man = {"file": os.path.basename(args.out), "file_bytes": file_bytes, "format": "pcap-ns",
               "type": args.type, "seed": args.seed, "rate": args.rate, "sizes": list(SIZES),
               "size_weights": list(WEIGHTS), "exporter": EXPORTER,
               "start_time": ts(START_NS), "interval_ns": step,
               "packets": args.packets, "packets_received": args.packets, "packets_written": args.packets,
               "inner_bytes": sum(by),
               "discarded": {"malformed": 0, "not_mirror": 0, "unknown_session": 0, "unauthorized_exporter": 0},
               "sessions": sessions}
        with open(args.manifest, "w") as mf:
            json.dump(man, mf, indent=1)
            mf.write("\n")
    if not args.quiet:
        sys.stderr.write("%s: %d packets, %d sessions (%s), %d bytes; templates %.2fs, write %.2fs\n" % (
            args.out, args.packets, S, args.type, file_bytes, t1 - t0, t2 - t1))


if __name__ == "__main__":
    main()
