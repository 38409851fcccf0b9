#!/usr/bin/env python3
"""Writes the hand-made adversarial fuzz inputs of Tests/Fixtures/fuzz-regressions/.

    python3 scripts/fuzz-adversarial.py [OUTDIR]   (default Tests/Fixtures/fuzz-regressions)

Each `adv-*.bin` is one input in the fuzz target's format (see Fuzz/FuzzDecodePath.swift):

    input    := selector:u8 frame*
    frame    := length:u16be wireExtra:u16be meta:u8 bytes[length]

`adversarial.json` lists, per file, what the default decoder (VXLAN port 4789, no RSPAN VLAN)
must say about each frame: "mirror" or the dotted discard reason. FuzzRegressionTests checks
that, and runs every file of the directory (crash inputs included) through the decoders and
the pipeline. Deterministic; standard library only. Addresses: 198.51.100.0/24, 2001:db8::/32.
"""

import json
import os
import struct
import sys

EXPORTER4 = bytes([198, 51, 100, 1])
COLLECTOR4 = bytes([198, 51, 100, 2])
EXPORTER6 = bytes.fromhex("20010db8000000000000000000000001")
COLLECTOR6 = bytes.fromhex("20010db8000000000000000000000002")
OUTER_MACS = bytes.fromhex("0200000000bb0200000000aa")
# Inner frame: Ethernet 02:..:02 <- 02:..:01, IPv4 192.0.2.1 -> 192.0.2.2, UDP 1000 -> 2000.
INNER_PAYLOAD = b"payload\x01\x02"
INNER_UDP = struct.pack(">HHHH", 1000, 2000, 8 + len(INNER_PAYLOAD), 0) + INNER_PAYLOAD
INNER_IP = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(INNER_UDP), 0, 0, 64, 17, 0,
                       bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])) + INNER_UDP
INNER = bytes.fromhex("020000000002020000000001") + b"\x08\x00" + INNER_IP


def ethernet(ethertype, payload, tags=()):
    out = bytearray(OUTER_MACS)
    for tpid, tci in tags:
        out += struct.pack(">HH", tpid, tci)
    out += struct.pack(">H", ethertype)
    return bytes(out) + payload


def ipv4(protocol, payload, total=None, ihl=5, fragment=0, ident=1, options=b""):
    header_length = ihl * 4
    options = options.ljust(header_length - 20, b"\x00")[: max(0, header_length - 20)]
    length = total if total is not None else header_length + len(payload)
    header = struct.pack(">BBHHHBBH4s4s", 0x40 | ihl, 0, length, ident, fragment, 64, protocol, 0,
                         EXPORTER4, COLLECTOR4) + options
    return header + payload


def ipv6(next_header, payload, payload_length=None):
    length = payload_length if payload_length is not None else len(payload)
    return struct.pack(">IHBB16s16s", 0x60000000, length, next_header, 64, EXPORTER6, COLLECTOR6) + payload


def gre(protocol, payload, sequence=None, key=None, checksum=False, flags_extra=0):
    flags = flags_extra
    fields = b""
    if checksum:
        flags |= 0x8000
        fields += b"\x00\x00\x00\x00"
    if key is not None:
        flags |= 0x2000
        fields += struct.pack(">I", key)
    if sequence is not None:
        flags |= 0x1000
        fields += struct.pack(">I", sequence)
    return struct.pack(">HH", flags, protocol) + fields + payload


def erspan2(session, payload):
    return struct.pack(">HHI", 0x1000, session & 0x3FF, 0) + payload


def erspan3(session, payload, platform=None, frame_type=0):
    word5 = (frame_type & 0x1F) << 10
    if platform is not None:
        word5 |= 1
    header = struct.pack(">HHIHH", 0x2000, session & 0x3FF, 0x12345678, 0, word5)
    if platform is not None:
        header += struct.pack(">Q", platform)
    return header + payload


def erspan2_frame(session, sequence, inner=INNER):
    return ethernet(0x0800, ipv4(47, gre(0x88BE, erspan2(session, inner), sequence=sequence)))


def frame(data, wire_extra=0, meta=0):
    return struct.pack(">HHB", len(data), wire_extra, meta) + data


def cut_datagram(ip_packet, keep):
    """An IPv4 packet whose Total Length says it ends `keep` bytes after its header."""
    header_length = (ip_packet[0] & 0x0F) * 4
    total = header_length + keep
    return ip_packet[:2] + struct.pack(">H", total) + ip_packet[4:total]


INPUTS = {}


def add(name, selector, frames):
    """frames: (bytes, expected reason or 'mirror', wire_extra, meta)."""
    INPUTS[name] = (selector, frames)


def build():
    # GRE with S (and C, K) cut inside its optional fields: by Total Length and by the snap length.
    full = ipv4(47, gre(0x88BE, erspan2(7, INNER), sequence=5))
    ckms = ipv4(47, gre(0x88BE, erspan2(8, INNER), sequence=6, key=9, checksum=True))
    frames = [(ethernet(0x0800, cut_datagram(full, keep)), "malformed.gre_truncated", 0, 0) for keep in (3, 4, 5, 7)]
    frames += [(ethernet(0x0800, cut_datagram(ckms, keep)), "malformed.gre_truncated", 0, 0) for keep in (8, 12, 15)]
    snap = ethernet(0x0800, full)
    frames += [(snap[:14 + 20 + keep], "malformed.gre_truncated", len(snap) - (14 + 20 + keep), 0) for keep in (4, 6)]
    frames.append((ethernet(0x0800, full), "mirror", 0, 0))
    add("adv-gre-sequence-cut", 0x80, frames)

    # ERSPAN III with the O bit: platform sub-header cut; header itself cut.
    with_platform = ipv4(47, gre(0x22EB, erspan3(9, INNER, platform=0x0123456789ABCDEF), sequence=1))
    frames = [(ethernet(0x0800, cut_datagram(with_platform, 8 + keep)), "malformed.erspan_platform_truncated", 0, 0)
              for keep in (12, 13, 19)]
    frames.append((ethernet(0x0800, cut_datagram(with_platform, 8 + 11)), "malformed.erspan_truncated", 0, 0))
    frames.append((ethernet(0x0800, cut_datagram(with_platform, 8 + 20 + 13)), "malformed.inner_truncated", 0, 0))
    frames.append((ethernet(0x0800, with_platform), "mirror", 0, 0))
    add("adv-erspan3-platform-cut", 0x80, frames)

    # ERSPAN III FT = 2 (raw IP inside): too short, not IP, a minimal IPv4 header.
    raw_ip = INNER[14:]
    frames = [
        (ethernet(0x0800, ipv4(47, gre(0x22EB, erspan3(10, raw_ip[:19], frame_type=2), sequence=1))), "malformed.inner_truncated", 0, 0),
        (ethernet(0x0800, ipv4(47, gre(0x22EB, erspan3(10, b"\x50" + raw_ip[1:], frame_type=2), sequence=2))), "malformed.erspan_frame_type", 0, 0),
        (ethernet(0x0800, ipv4(47, gre(0x22EB, erspan3(10, raw_ip, frame_type=2), sequence=3))), "mirror", 0, 0),
        (ethernet(0x0800, ipv4(47, gre(0x22EB, erspan3(10, INNER, frame_type=7), sequence=4))), "malformed.erspan_frame_type", 0, 0),
    ]
    add("adv-erspan3-raw-ip", 0x80, frames)

    # IPv6 extension-header chains: at the bound, past it, a loop of atomic fragment headers,
    # AH, and a header length pointing past the datagram.
    mirror6 = gre(0x88BE, erspan2(31, INNER), sequence=1)

    def chain(count, header_type, last_next=47, tail=mirror6):
        out = b""
        for index in range(count):
            following = header_type if index + 1 < count else last_next
            if header_type == 44:
                out += struct.pack(">BBHI", following, 0, 0, 0x1234)  # offset 0, M clear: atomic
            elif header_type == 51:
                out += struct.pack(">BBHI", following, 0, 0, 0)  # (0 + 2) * 4 = 8 bytes
            else:
                out += struct.pack(">BB", following, 0) + b"\x01\x04\x00\x00\x00\x00"
        return out + tail

    frames = [
        (ethernet(0x86DD, ipv6(60, chain(8, 60))), "mirror", 0, 0),
        (ethernet(0x86DD, ipv6(60, chain(9, 60))), "malformed.ipv6_header", 0, 0),
        (ethernet(0x86DD, ipv6(60, chain(200, 60))), "malformed.ipv6_header", 0, 0),
        (ethernet(0x86DD, ipv6(44, chain(12, 44))), "malformed.ipv6_header", 0, 0),
        (ethernet(0x86DD, ipv6(51, chain(9, 51))), "malformed.ipv6_header", 0, 0),
        (ethernet(0x86DD, ipv6(0, struct.pack(">BB", 47, 255) + b"\x00" * 14 + mirror6)), "malformed.ipv6_truncated", 0, 0),
        (ethernet(0x86DD, ipv6(47, mirror6, payload_length=len(mirror6) + 100)), "malformed.ipv6_header", 0, 0),
        (ethernet(0x86DD, ipv6(0, chain(3, 0, last_next=60, tail=b"\x2f"))), "malformed.ipv6_truncated", 0, 0),
    ]
    add("adv-ipv6-extension-chains", 0x80, frames)

    # Link and IPv4 headers: too many tags, a cut tag, IHL extremes.
    inner4 = gre(0x88BE, erspan2(12, INNER), sequence=1)
    five_tags = [(0x8100, 1)] * 5
    frames = [
        (ethernet(0x0800, ipv4(47, inner4), tags=five_tags), "not_mirror.non_ip", 0, 0),
        (ethernet(0x0800, ipv4(47, inner4), tags=[(0x88A8, 2), (0x8100, 3)])[:16], "malformed.vlan_truncated", 0, 0),
        (ethernet(0x0800, ipv4(47, inner4, ihl=15, total=40)), "malformed.ipv4_header", 0, 0),
        (ethernet(0x0800, ipv4(47, inner4, ihl=4)), "malformed.ipv4_header", 0, 0),
        (ethernet(0x0800, ipv4(47, inner4, ihl=15))[:14 + 40], "malformed.ipv4_truncated", 0, 0),
        (ethernet(0x0800, ipv4(47, inner4, ihl=15, options=b"\x01" * 40)), "mirror", 0, 0),
        (ethernet(0x0800, ipv4(47, inner4, total=0xFFFF)), "malformed.ipv4_header", 0, 0),
        (ethernet(0x0800, ipv4(47, inner4, total=0xFFFF)), "mirror", 0xFFFF - 20 - len(inner4), 0),
        (ethernet(0x0800, b""), "malformed.ipv4_truncated", 0, 0),
        (b"\x02" * 13, "malformed.link_truncated", 0, 0),
    ]
    add("adv-link-and-ipv4-headers", 0x80, frames)

    # Fragments: out of order, a duplicate, an overlap, past 64 KiB, odd sizes, a lone tail.
    datagram = gre(0x88BE, erspan2(20, INNER + b"\x00" * 64), sequence=1)
    pieces = [datagram[0:32], datagram[32:64], datagram[64:]]

    def fragment(offset, data, more, ident=0x77):
        return ethernet(0x0800, ipv4(47, data, fragment=(0x2000 if more else 0) | (offset // 8), ident=ident))

    frames = [
        (fragment(64, pieces[2], False), "malformed.ip_fragment", 0, 0),
        (fragment(0, pieces[0], True), "malformed.ip_fragment", 0, 0),
        (fragment(32, pieces[1], True), "malformed.ip_fragment", 0, 0),  # completes the datagram
        (fragment(0, pieces[0], True, ident=0x78), "malformed.ip_fragment", 0, 0),
        (fragment(0, pieces[0], True, ident=0x78), "malformed.ip_fragment", 0, 0),  # exact repeat
        (fragment(8, pieces[1], True, ident=0x78), "malformed.ip_fragment", 0, 0),  # overlap
        (fragment(65528, b"\x00" * 16, False, ident=0x79), "malformed.ip_fragment", 0, 0),  # past 64 KiB
        (fragment(0, b"\x00" * 13, True, ident=0x7A), "malformed.ip_fragment", 0, 0),  # MF, not 8-aligned
        (fragment(8, b"\x00" * 8, False, ident=0x7B), "malformed.ip_fragment", 0, 0),  # tail never completed
    ]
    for ident in range(0x100, 0x108):  # more datagrams than the tiny fuzz caps allow
        frames.append((fragment(0, pieces[0], True, ident=ident), "malformed.ip_fragment", 0, 0))
    add("adv-fragments", 0x80 | 2, frames)

    # GRE sequence numbers: wrap, restart forward and backward, duplicates, late arrivals.
    sequences = [0xFFFFFFFE, 0xFFFFFFFF, 0, 1, 1 << 28, 5, 5, 4, 3000, 900, 899, 0x7FFFFFFF, 0x80000000, 2]
    frames = [(erspan2_frame(1, sequence), "mirror", 0, 0) for sequence in sequences]
    add("adv-sequence-jumps", 0x80, frames)

    # RSPAN in configuration 1 (VLANs 999, 10) with offloaded and in-band tags, tiny frames.
    rspan_inner = INNER[12:]  # EtherType onwards
    # (Expectations are the default decoder's, which has no RSPAN VLAN: plain UDP to port 2000.)
    frames = [
        (OUTER_MACS + struct.pack(">HH", 0x8100, 999) + rspan_inner, "not_mirror.udp_port", 0, 0),
        (OUTER_MACS + struct.pack(">HH", 0x8100, 999), "malformed.vlan_truncated", 0, 0),
        (OUTER_MACS + b"\x08\x00", "malformed.ipv4_truncated", 0, 1 << 2),  # offloaded tag VID 999
        (OUTER_MACS + rspan_inner, "not_mirror.udp_port", 0, 2 << 2),  # offloaded VID 10, PCP 5
        (OUTER_MACS + struct.pack(">HH", 0x8100, 10) + INNER[:13], "not_mirror.non_ip", 0, 0),
    ]
    add("adv-rspan-tags", 0x80 | 1, frames)


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.normpath(
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "fuzz-regressions"))
    os.makedirs(outdir, exist_ok=True)
    build()
    manifest = {}
    for name, (selector, frames) in sorted(INPUTS.items()):
        data = bytes([selector]) + b"".join(frame(f, extra, meta) for f, _, extra, meta in frames)
        with open(os.path.join(outdir, name + ".bin"), "wb") as handle:
            handle.write(data)
        manifest[name + ".bin"] = [expected for _, expected, _, _ in frames]
    with open(os.path.join(outdir, "adversarial.json"), "w") as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True)
        handle.write("\n")
    print(f"{len(INPUTS)} adversarial inputs in {outdir}")


if __name__ == "__main__":
    main()
