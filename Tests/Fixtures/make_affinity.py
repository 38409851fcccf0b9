#!/usr/bin/env python3
"""make_affinity.py OUT.pcap [--per-session N] [--seed K]

VXLAN mirror traffic for the session-affinity test: 4 IPv4 exporters (198.51.100.11-14) and 2
IPv6 exporters (2001:db8::11, ::12), 2 VNIs each (12 sessions), N packets per session,
interleaved. Every packet gets a random UDP source port (as cloud mirrors and VXLAN senders
vary it per inner flow), so only a session-affine fanout keeps a session on one worker. The
inner frame carries its session number and a per-session counter in the first 8 payload bytes
(big-endian), so a reader can check completeness and order. Outer MACs: 02:00:00:00:00:aa ->
02:00:00:00:00:bb. Deterministic for a given seed.
"""
import argparse
import random
import struct
import sys

import scapy
if scapy.__version__ != "2.8.0":
    sys.exit("make_affinity.py needs scapy 2.8.0 (pip install scapy==2.8.0), found %s" % scapy.__version__)
from scapy.layers.inet import IP, UDP  # noqa: E402
from scapy.layers.inet6 import IPv6  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.layers.vxlan import VXLAN  # noqa: E402
from scapy.packet import Raw  # noqa: E402
from scapy.utils import PcapWriter  # noqa: E402

EXPORTERS = ["198.51.100.11", "198.51.100.12", "198.51.100.13", "198.51.100.14", "2001:db8::11", "2001:db8::12"]
VNIS = [1, 2]


def session_name(exporter, vni):
    return "%s-vxlan-%d" % (exporter, vni)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--per-session", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    sessions = [(e, v) for e in EXPORTERS for v in VNIS]
    writer = PcapWriter(args.out, linktype=1, nano=True, sync=False)
    for counter in range(args.per_session):
        for number, (exporter, vni) in enumerate(sessions):
            inner = (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="192.0.2.1", dst="192.0.2.2")
                     / UDP(sport=1000 + counter % 1000, dport=2000) / Raw(struct.pack(">II", number, counter) + b"affinity"))
            outer_ip = (IPv6(src=exporter, dst="2001:db8::2") if ":" in exporter
                        else IP(src=exporter, dst="198.51.100.2"))
            packet = (Ether(src="02:00:00:00:00:aa", dst="02:00:00:00:00:bb") / outer_ip
                      / UDP(sport=rng.randrange(1024, 65536), dport=4789) / VXLAN(flags=0x08, vni=vni) / inner)
            packet.time = 1700000000 + counter
            writer.write(packet)
    writer.close()
    print("\n".join(session_name(e, v) for e, v in sessions))


if __name__ == "__main__":
    main()
