#!/usr/bin/env python3
"""generate.py - independent test-fixture generator for span-collector (scapy 2.8.0).

    python3 generate.py [OUTDIR]        (default: the directory of this script)

Writes, deterministically (fixed timestamps, no randomness):

  <fixture>.pcap                          input capture (classic pcap, ns magic, LINKTYPE_ETHERNET)
  <fixture>.pcapng                        for a few fixtures, the same records as pcapng
                                          (if_tsresol = 9) to exercise the pcapng reader
  <fixture>.<session>.expected.pcap       the inner frames the collector must write for that
                                          session, in order, with the input record's timestamp and
                                          orig_len (':' in the session name becomes '_' here)
  expected.json                           the manifest (see README.md)

The expected inner frames are the bytes of the scapy objects the packets were built from
(bytes(IN)), never a parse of the outer packet: the manifest is an independent oracle.
The vector IDs (V01.., S01.., M01..) refer to shared/docs/PROTOCOLS.md section D.
"""
import decimal
import ipaddress
import json
import os
import struct
import sys

try:
    import scapy
except ImportError:
    sys.exit("generate.py: scapy is not installed; install exactly scapy==2.8.0 (pip install scapy==2.8.0)")
if scapy.__version__ != "2.8.0":
    sys.exit("generate.py: scapy %s found, but the fixtures are pinned to scapy 2.8.0 "
             "(dissection/defaults differ between versions): pip install scapy==2.8.0" % scapy.__version__)

from scapy.config import conf  # noqa: E402
conf.verb = 0
from scapy.packet import Raw, Padding  # noqa: E402
from scapy.layers.l2 import Ether, Dot1Q, Dot1AD, ARP, GRE, GRErouting, GRE_PPTP  # noqa: E402
from scapy.layers.inet import IP, UDP, TCP, ICMP, IPOption_NOP, IPOption_RR, fragment  # noqa: E402
from scapy.layers.inet6 import (IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop,  # noqa: E402
                                IPv6ExtHdrRouting, IPv6ExtHdrFragment, ICMPv6EchoRequest,
                                HBHOptUnknown, PadN, fragment6)
from scapy.layers.vxlan import VXLAN  # noqa: E402
from scapy.contrib.geneve import GENEVE, GeneveOptions  # noqa: E402
from scapy.layers.dns import DNS, DNSQR  # noqa: E402
from scapy.contrib.erspan import ERSPAN_I, ERSPAN_II, ERSPAN_III, ERSPAN_PlatformSpecific  # noqa: E402
from scapy.utils import PcapWriter, PcapNgWriter  # noqa: E402

D = decimal.Decimal
BASE_TIME = D("1700000000.000000001")   # record i is at BASE_TIME + i ms
STEP = D("0.001")

EXP = "198.51.100.1"          # default exporter (outer source)
COLL = "198.51.100.2"         # collector (outer destination)
EXP6 = "2001:db8::1"
COLL6 = "2001:db8::2"
OMAC_SRC = "02:00:00:00:00:aa"
OMAC_DST = "02:00:00:00:00:bb"
IMAC_SRC = "02:00:00:00:00:01"
IMAC_DST = "02:00:00:00:00:02"

DEFAULT_OPTIONS = {"rspan_vlans": [], "vxlan_ports": [4789], "allow_exporters": []}
BUCKETS = ("malformed", "not_mirror", "unknown_session", "unauthorized_exporter")
ANOMALIES = ("gre_checksum_bad", "gre_reserved_bits", "erspan_version_mismatch",
             "vxlan_reserved_bits", "nested_mirror", "erspan1_with_key_or_checksum", "geneve_oam")
REASONS = {
    "malformed": ("link_truncated", "vlan_truncated", "ipv4_truncated", "ipv4_header",
                  "ipv6_truncated", "ipv6_header", "ip_fragment", "gre_truncated", "gre_version",
                  "gre_routing", "erspan_truncated", "erspan_version", "erspan_platform_truncated",
                  "erspan_frame_type", "udp_truncated", "vxlan_truncated", "vxlan_flags",
                  "vxlan_gpe_protocol", "geneve_truncated", "geneve_version", "inner_ip_version",
                  "inner_truncated"),
    "not_mirror": ("non_ip", "ip_protocol", "udp_port", "gre_protocol", "gre_keepalive", "geneve_protocol", "link_type"),
    "unauthorized_exporter": ("allow_list",),
}
ENCAPS = ("erspan1", "erspan2", "erspan3", "gre", "vxlan", "rspan", "geneve")


# --------------------------------------------------------------------------------------------
# building blocks (PROTOCOLS.md D)

def inner(k, extra=0):
    """IN: a distinct inner frame per k (2 bytes of k in the payload); `extra` filler bytes."""
    return (Ether(src=IMAC_SRC, dst=IMAC_DST)
            / IP(src="192.0.2.1", dst="192.0.2.2")
            / UDP(sport=1000, dport=2000)
            / Raw(b"payload" + struct.pack(">H", k) + bytes((i * 7 + k) & 0xFF for i in range(extra))))


def inner6(k, extra=0):
    return (Ether(src=IMAC_SRC, dst=IMAC_DST)
            / IPv6(src="2001:db8:1::1", dst="2001:db8:1::2")
            / UDP(sport=1000, dport=2000)
            / Raw(b"payload" + struct.pack(">H", k) + bytes((i * 5 + k) & 0xFF for i in range(extra))))


def o4(src=EXP, dst=COLL, **ipkw):
    return Ether(src=OMAC_SRC, dst=OMAC_DST) / IP(src=src, dst=dst, **ipkw)


def o6(src=EXP6, dst=COLL6):
    return Ether(src=OMAC_SRC, dst=OMAC_DST) / IPv6(src=src, dst=dst)


def G(seq, **kw):
    """What real Type II/III senders emit: GRE with S set."""
    return GRE(seqnum_present=1, sequence_number=seq, **kw)


def tel_destopt():
    """Linux ip6gre/ip6erspan Destination Options header: Tunnel Encapsulation Limit 4 + PadN."""
    return IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=4, optdata=b"\x04"), PadN(optdata=b"\x00")])


def inet_checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


# --------------------------------------------------------------------------------------------
# fixture model

def ref_sequence(seqs):
    """Reference implementation of the collector's sequence accounting (used only to
    cross-check the hand-written expectations)."""
    nxt = None
    seen = set()
    lost = ooo = dup = 0
    for s in seqs:
        if nxt is None:
            nxt = (s + 1) & 0xFFFFFFFF
            seen = {s}
            continue
        d = (s - nxt) & 0xFFFFFFFF
        if d >= 1 << 31:
            d -= 1 << 32
        if d == 0:
            nxt = (s + 1) & 0xFFFFFFFF
        elif d > 0:
            if d >= 1 << 28:               # forward restart
                nxt = (s + 1) & 0xFFFFFFFF
                seen = set()
            else:
                lost += d
                nxt = (s + 1) & 0xFFFFFFFF
        else:
            if -d >= 1 << 24:              # backward restart
                nxt = (s + 1) & 0xFFFFFFFF
                seen = set()
            elif s in seen:
                dup += 1
            else:
                ooo += 1
                lost -= 1
        seen.add(s)
    return {"lost": lost, "out_of_order": ooo, "duplicates": dup}


def frame_file(fixture, session):
    return "%s.%s.expected.pcap" % (fixture, session.replace(":", "_"))


class Fixture:
    def __init__(self, name, description, options=None, section="fixtures", pcapng=False):
        self.name = name
        self.description = description
        self.options = dict(DEFAULT_OPTIONS)
        self.options.update(options or {})
        self.section = section
        self.pcapng = pcapng
        self.input = name + (".pcapng" if pcapng else ".pcap")
        self.records = []          # (bytes, wirelen)
        self.sessions = {}         # name -> dict
        self.reasons = {}
        self.anomalies = {}
        self.seq_expect = {}       # name -> explicit expectations
        self.extra = {}            # extra manifest keys (reassembly section)
        self.ng_frames = None      # pcapng expectations per written frame (see add(ng=...))

    def time(self, i):
        return BASE_TIME + i * STEP

    def add(self, pkt, *, session=None, encap=None, sid=None, frame=None, frame_caplen=None,
            frame_wirelen=None, seq=None, truncated=False, reason=None, anomalies=(),
            caplen=None, wirelen=None, trailer=b"", check_embedded=True, at=None, raw_ip=False, ng=None):
        """One input record.

        pkt      scapy packet (or bytes) of the whole outer frame as sent.
        trailer  bytes appended after the outer IP packet (outer padding / FCS junk).
        caplen   snap length of the record (None: whole frame); wirelen defaults to the
                 full length (frame + trailer).
        session  expected output session (then encap, sid, frame are required):
                 frame is the scapy object of the inner frame (or bytes); frame_caplen cuts it;
                 frame_wirelen is its orig_len (defaults to the frame's full length).
        reason   dotted discard reason instead of a session.
        at       record index whose timestamp the output frame carries (reassembly).
        raw_ip   the frame is raw IP (ERSPAN III FT=2): with pcap output it goes to the series
                 `<session>-ip` (link type 101); `session` itself is still created (the frame
                 is routed after the session lookup, with 0 packets if it has no other frame)
                 and keeps the sequence accounting.
        ng       pcapng expectation for this frame (ng_meta()): comment, epb_flags direction
                 and error bits, interface (1 for raw IP). Fixtures with pcapng expectations
                 give it for every written frame (None: no options, e.g. VXLAN).
        """
        full = bytes(pkt) + trailer
        wl = len(full) if wirelen is None else wirelen
        rec = full if caplen is None else full[:caplen]
        idx = len(self.records)
        self.records.append((rec, wl))
        assert session is None or reason is None, (self.name, idx)
        for a in anomalies:
            assert a in ANOMALIES, a
            self.anomalies[a] = self.anomalies.get(a, 0) + 1
        if reason is not None:
            bucket, _, r = reason.partition(".")
            assert r in REASONS[bucket], reason
            self.reasons[reason] = self.reasons.get(reason, 0) + 1
            return idx
        if session is None:
            return idx               # absorbed fragment (reassembly section)
        assert encap in ENCAPS, encap
        fb = frame if isinstance(frame, (bytes, bytearray)) else bytes(frame)
        fb = bytes(fb)
        orig = len(fb) if frame_wirelen is None else frame_wirelen
        if frame_caplen is not None:
            fb = fb[:frame_caplen]
        if check_embedded:
            # self-check only (the oracle is fb itself): the inner bytes must be in the record
            assert fb in rec, (self.name, idx, "inner frame not embedded in the outer record")
        owner = self.session_entry(session, encap, sid)
        s = self.session_entry(session + "-ip", encap, sid, link_type=101) if raw_ip else owner
        assert s["id"] == sid, (self.name, session)
        s["frames"].append((fb, orig, idx if at is None else at))
        if seq is not None:
            owner["seqs"].append(seq)
        if truncated:
            s["truncated"] += 1
        if self.ng_frames is not None:
            entry = {"session": session, "interface": 1 if raw_ip else 0}
            entry.update(ng or {"comment": None, "direction": None, "errors": []})
            self.ng_frames.append(entry)
        return idx

    def session_entry(self, session, encap, sid, link_type=1):
        s = self.sessions.get(session)
        if s is None:
            s = self.sessions[session] = {"encapsulation": encap, "id": sid, "frames": [],
                                          "seqs": [], "truncated": 0, "link_type": link_type}
        return s

    def pcapng_manifest(self):
        """What the same input must give with --format pcapng: one file per session (the
        `-ip` series folded into its session as interface 1), each frame's options in input
        order, and the statistics block of each file."""
        statistics = {}
        for name, s in self.sessions.items():
            if name.endswith("-ip") and name[:-3] in self.sessions:
                continue
            ref = ref_sequence(s["seqs"])
            ip = self.sessions.get(name + "-ip", {"frames": []})
            statistics[name] = {"records": [len(s["frames"]), len(ip["frames"])], "lost": ref["lost"],
                                "out_of_order": ref["out_of_order"], "duplicates": ref["duplicates"],
                                "restarts": 0}
        return {"frames": self.ng_frames, "statistics": statistics}

    def expect_seq(self, session, lost=0, out_of_order=0, duplicates=0):
        self.seq_expect[session] = {"lost": lost, "out_of_order": out_of_order, "duplicates": duplicates}

    def manifest(self):
        sessions = {}
        written = 0
        for name, s in self.sessions.items():
            ref = ref_sequence(s["seqs"])
            exp = self.seq_expect.get(name, {"lost": 0, "out_of_order": 0, "duplicates": 0})
            if ref != exp:
                raise SystemExit("%s/%s: hand-written sequence expectation %r != reference %r"
                                 % (self.name, name, exp, ref))
            written += len(s["frames"])
            sessions[name] = {
                "encapsulation": s["encapsulation"], "id": s["id"], "packets": len(s["frames"]),
                "bytes": sum(len(f[0]) for f in s["frames"]),
                "lost": exp["lost"], "out_of_order": exp["out_of_order"],
                "duplicates": exp["duplicates"], "truncated": s["truncated"],
                "frames": frame_file(self.name, name),
            }
            if s["link_type"] != 1:
                sessions[name]["link_type"] = s["link_type"]
        discarded = {b: 0 for b in BUCKETS}
        for r, n in self.reasons.items():
            discarded[r.split(".")[0]] += n
        m = {"input": self.input,
             "description": self.description, "options": self.options,
             "packets_received": len(self.records), "packets_written": written,
             "sessions": sessions, "discarded": discarded,
             "reasons": dict(sorted(self.reasons.items())),
             "anomalies": dict(sorted(self.anomalies.items()))}
        if self.ng_frames is not None:
            m["pcapng"] = self.pcapng_manifest()
        m.update(self.extra)
        merged = self.extra.get("reassembly", {}).get("fragments_merged", 0)
        assert m["packets_received"] == written + sum(discarded.values()) + merged, self.name
        return m


class NsPcapNgWriter(PcapNgWriter):
    """scapy 2.8.0's PcapNgWriter writes microsecond timestamps from float(pkt.time) and no
    if_tsresol option; this subclass keeps scapy's block writer but uses if_tsresol = 9 and the
    exact Decimal time."""

    def __init__(self, filename):
        super().__init__(filename)
        self.tsresol = 10 ** 9

    def _get_time(self, packet, sec, usec):
        return sec, usec

    def _write_block_idb(self, linktype, ifname=None):
        block_idb = struct.pack("<HHI", linktype, 0, 262144)
        opts = struct.pack("<HHB", 9, 1, 9) + b"\0\0\0"        # if_tsresol = 10^-9
        opts += struct.pack("<HH", 0, 0)
        self.f.write(self.build_block(struct.pack("<I", 1), block_idb, options=opts))


def write_records(path, records, pcapng=False, linktype=1):
    """records: (data, Decimal time, wirelen). Classic pcap: ns magic, LINKTYPE_ETHERNET (or
    `linktype`, 101 for the raw-IP series)."""
    if pcapng:
        w = NsPcapNgWriter(path)
        w.linktype = 1
    else:
        w = PcapWriter(path, nano=True, linktype=linktype)
    w.write_header(None)
    for data, t, wl in records:
        sec = int(t)
        ns = int((t - sec) * 10 ** 9)
        assert sec + D(ns) / 10 ** 9 == t
        if pcapng:
            w.write_packet(data, sec=t, usec=0, wirelen=wl)
        else:
            w.write_packet(data, sec=sec, usec=ns, wirelen=wl)
    w.close()


def write_fixture(fx, outdir):
    path = os.path.join(outdir, fx.input)
    if hasattr(fx, "write_input"):          # input-format fixtures (build_input_fixtures)
        fx.write_input(path)
    else:
        write_records(path, [(rec, fx.time(i), wl) for i, (rec, wl) in enumerate(fx.records)], fx.pcapng)
    for name, s in fx.sessions.items():
        write_records(os.path.join(outdir, frame_file(fx.name, name)),
                      [(fb, fx.time(at), orig) for fb, orig, at in s["frames"]], linktype=s["link_type"])


# --------------------------------------------------------------------------------------------
# fixtures

def n_erspan(exp, sid):
    return "%s-erspan-%d" % (exp, sid)


def platform_word(**kw):
    """The raw 64 bits of a scapy ERSPAN_PlatformSpecific sub-header."""
    return int.from_bytes(bytes(ERSPAN_PlatformSpecific(**kw)), "big")


def ng_meta(transport, sid=None, seq=None, key=None, vlan=0, cos=0, en=0, bso=0, t=0, index=0, sgt=0,
            hw=0, d=0, ft=0, gra=0, ts=0, platf=None):
    """pcapng expectation of one frame, from the values its headers were built with: the
    opt_comment (grammar in docs/FORMATS.md), the epb_flags direction (ERSPAN III only:
    inbound for D=0, outbound for D=1) and link-layer error bits (BSO 01 too short, 10 too
    long, 11 CRC)."""
    if transport == "erspan1":
        c = "erspan=1"
    elif transport == "teb":
        c = "gre=teb"
    else:
        c = "erspan=%d id=%d" % (2 if transport == "erspan2" else 3, sid)
    if seq is not None:
        c += " seq=%d" % seq
    if key is not None:
        c += " key=%d" % key
    direction, errors = None, []
    if transport == "erspan2":
        c += " vlan=%d cos=%d en=%d t=%d index=%d" % (vlan, cos, en, t, index)
    elif transport == "erspan3":
        c += (" vlan=%d cos=%d bso=%d t=%d sgt=%d hw=%d dir=%s ft=%d gra=%d ts=0x%08x"
              % (vlan, cos, bso, t, sgt, hw, "egress" if d else "ingress", ft, gra, ts))
        if platf is not None:
            c += " platf=%d:0x%016x" % (platf >> 58, platf)
        direction = "outbound" if d else "inbound"
        errors = {0: [], 1: ["too_short"], 2: ["too_long"], 3: ["crc"]}[bso]
    return {"comment": c, "direction": direction, "errors": errors}


def build_fixtures():
    F = []

    def fx(*a, **kw):
        f = Fixture(*a, **kw)
        F.append(f)
        return f

    # ---------------------------------------------------------------- D.2 valid traffic
    f = fx("v01_erspan1", "V01: ERSPAN Type I (GRE 0000 88be, no ERSPAN header), 2 packets")
    for k in range(2):
        IN = inner(k)
        f.add(o4() / GRE() / ERSPAN_I() / IN, session=EXP + "-erspan1", encap="erspan1", sid=None, frame=IN)

    f = fx("erspan1_gre_flags", "V01 variants: Type I (0x88BE, S clear) with GRE K, C (valid checksum), and C+K")
    for k, gre in enumerate([GRE(proto=0x88BE, key_present=1, key=77),
                             GRE(proto=0x88BE, chksum_present=1),
                             GRE(proto=0x88BE, chksum_present=1, key_present=1, key=78)]):
        IN = inner(k)
        p = o4() / gre / IN
        b = bytes(p)
        if gre.chksum_present:
            assert inet_checksum(b[34:]) == 0xFFFF, "scapy GRE checksum does not verify"
        # A.7: the kernel would read these differently; counted, still Type I.
        f.add(p, session=EXP + "-erspan1", encap="erspan1", sid=None, frame=IN,
              anomalies=("erspan1_with_key_or_checksum",))

    f = fx("v02_erspan2", "V02: ERSPAN Type II session 7 index 5, GRE S seq 0,1,2")
    for k in range(3):
        IN = inner(k)
        f.add(o4() / G(k) / ERSPAN_II(session_id=7, index=5) / IN,
              session=n_erspan(EXP, 7), encap="erspan2", sid=7, frame=IN, seq=k)

    f = fx("v03_erspan2_fields", "V03: Type II golden header 1064 b555 000abcde (vlan 100 cos 5 en 2 T=1 "
           "id 0x155 index 0xabcde); T=1 counts as truncated, inner complete so orig_len = caplen")
    IN = inner(0)
    er = ERSPAN_II(vlan=100, cos=5, en=2, t=1, session_id=0x155, index=0xABCDE)
    assert bytes(er) == bytes.fromhex("1064b555000abcde")
    f.add(o4() / G(0x01020304) / er / IN, session=n_erspan(EXP, 0x155), encap="erspan2", sid=0x155,
          frame=IN, seq=0x01020304, truncated=True)

    f = fx("v04_erspan3", "V04: ERSPAN Type III session 9 timestamp 0x11223344 D=1 (egress) Gra 0, seq 0,1")
    for k in range(2):
        IN = inner(k)
        f.add(o4() / G(k) / ERSPAN_III(session_id=9, timestamp=0x11223344 + k, d=1, gra=0) / IN,
              session=n_erspan(EXP, 9), encap="erspan3", sid=9, frame=IN, seq=k)

    f = fx("v05_erspan3_no_s", "V05: Type III over 0x22EB with GRE S clear (scapy default) is still Type III")
    for k in range(2):
        IN = inner(k)
        p = o4() / GRE() / ERSPAN_III(session_id=9) / IN
        assert bytes(p)[34:38] == bytes.fromhex("000022eb")
        f.add(p, session=n_erspan(EXP, 9), encap="erspan3", sid=9, frame=IN)

    f = fx("v06_erspan3_platform", "V06: Type III O=1 with platform sub-header Platf ID 0,1,3,4,5,6,7,0x3F "
           "(8 bytes skipped for every ID), Gra 2, session 6, seq 0..7")
    plat = [(0, 0x12345, 0xDEADBEEF), (1, 0x00ABC, 42), (3, 0x01234, 0x00000001),
            (4, 0, 0), (5, (0x3FF << 16) | 0x42, 1700000000), (6, (0x001 << 16) | 0x7, 1700000001),
            (7, 0x54321, 2), (0x3F, 0x3FFFFFF, 0xFFFFFFFF)]
    for k, (pid, i1, i2) in enumerate(plat):
        IN = inner(k)
        f.add(o4() / G(k) / ERSPAN_III(session_id=6, timestamp=1000 + k, gra=2, o=1, hw=3)
              / ERSPAN_PlatformSpecific(platf_id=pid, info1=i1, info2=i2) / IN,
              session=n_erspan(EXP, 6), encap="erspan3", sid=6, frame=IN, seq=k)

    f = fx("erspan3_frame_type", "V07 + M16: Type III FT=2 (raw IP payload) -> written as raw IP: with pcap to "
           "the series <session>-ip (link type 101; the session itself exists with 0 packets), with pcapng on "
           "interface 1 (link type 101) of the session's file; FT=7 (8 zero bytes + Ethernet) -> "
           "malformed.erspan_frame_type")
    f.ng_frames = []
    RAW = IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1000, dport=2000) / Raw(b"payload-ft2")
    f.add(o4() / G(0) / ERSPAN_III(session_id=70, ft=2) / RAW, session=n_erspan(EXP, 70), encap="erspan3", sid=70,
          frame=RAW, seq=0, raw_ip=True, ng=ng_meta("erspan3", sid=70, seq=0, ft=2))
    f.add(o4() / G(1) / ERSPAN_III(session_id=70, ft=7) / Raw(b"\0" * 8) / inner(1), reason="malformed.erspan_frame_type")

    f = fx("erspan3_metadata", "pcapng metadata (epb_flags, opt_comment, statistics block) and raw IP. Session 90 "
           "(Type III, GRE seq 10,11,12,13,15,14,16,16,20: lost 3, out_of_order 1, duplicates 1): BSO 0/1/2/3 "
           "with D=0/1, Platf 0x5 (golden A.5 header) and 0x3, Gra 0-3, T=1 once, SGT/Hw ID edges, FT=2 raw "
           "IPv4 and IPv6 (pcap: series -ip, link type 101; pcapng: interface 1), one GRE key; FT=2 with 19 "
           "bytes (malformed.inner_truncated) and with version nibble 5 (malformed.erspan_frame_type). "
           "Session 91 Type II (vlan/cos/en/index), GRE TEB key 100 with seq, Type I, VXLAN 5000 (no options)")
    f.ng_frames = []
    S90 = n_erspan(EXP, 90)

    def e3m(seq, *, key=None, payload=None, **kw):
        """One Type III frame of session 90 built from kw (the ERSPAN_III fields) and the same
        values as the pcapng expectation."""
        plat = kw.pop("plat", None)
        fields = dict(session_id=90, vlan=kw.get("vlan", 0), cos=kw.get("cos", 0), bso=kw.get("bso", 0),
                      t=kw.get("t", 0), timestamp=kw.get("ts", 0), sgt_other=kw.get("sgt", 0), hw=kw.get("hw", 0),
                      d=kw.get("d", 0), gra=kw.get("gra", 0), ft=kw.get("ft", 0), o=1 if plat else 0)
        g = G(seq, key_present=1, key=key) if key is not None else G(seq)
        er = ERSPAN_III(**fields)
        k = len(f.records)
        frame = payload if payload is not None else inner(k)
        p = o4() / g / er / (ERSPAN_PlatformSpecific(**plat) / frame if plat else frame)
        meta = ng_meta("erspan3", sid=90, seq=seq, key=key, platf=platform_word(**plat) if plat else None, **kw)
        f.add(p, session=S90, encap="erspan3", sid=90, frame=frame, seq=seq, truncated=bool(kw.get("t", 0)),
              raw_ip=payload is not None, ng=meta)

    # PROTOCOLS.md A.5 golden values (vlan 100, cos 5, D=1, Gra 2, Hw 42, SGT 0x1234, Platf 5).
    e3m(10, vlan=100, cos=5, sgt=0x1234, hw=42, d=1, gra=2, ts=0x0A0B0C0D,
        plat=dict(platf_id=5, info1=(0x3FF << 16) | 0x42, info2=1700000000))
    e3m(11, bso=1, d=0, gra=0, ts=0xFFFFFFFF, hw=1, sgt=1)
    e3m(12, bso=2, d=1, gra=1, ts=0x00000001, plat=dict(platf_id=3, info1=0x01234, info2=0x00000001))
    e3m(13, bso=3, d=0, t=1, gra=3, ts=0x377CA5E0, hw=63, sgt=0xFFFF, vlan=4095, cos=7)
    RAW4 = IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1000, dport=2000) / Raw(b"payload-raw4")
    e3m(15, ft=2, d=1, bso=1, payload=RAW4)
    RAW6 = IPv6(src="2001:db8:1::1", dst="2001:db8:1::2") / UDP(sport=1000, dport=2000) / Raw(b"payload-raw6")
    e3m(14, ft=2, d=0, key=0xABCDEF, payload=RAW6)
    e3m(16, bso=0, d=0, vlan=1, cos=1)
    e3m(16, bso=3, d=1)
    e3m(20, d=0, ts=12345, gra=2, plat=dict(platf_id=5, info1=(1 << 16) | 3, info2=1700000037))
    f.expect_seq(S90, lost=3, out_of_order=1, duplicates=1)
    # FT=2 payloads the raw-IP path refuses (not written, no sequence accounting).
    f.add(o4() / G(21) / ERSPAN_III(session_id=90, ft=2) / Raw(bytes(RAW4)[:19]), reason="malformed.inner_truncated")
    bad = bytearray(bytes(RAW4))
    bad[0] = 0x55
    f.add(o4() / G(22) / ERSPAN_III(session_id=90, ft=2) / Raw(bytes(bad)), reason="malformed.erspan_frame_type")
    for seq in range(2):
        IN = inner(100 + seq)
        er = ERSPAN_II(vlan=100 + seq, cos=5, en=2, t=0, session_id=91, index=0xABCDE - seq)
        f.add(o4() / G(seq) / er / IN, session=n_erspan(EXP, 91), encap="erspan2", sid=91, frame=IN, seq=seq,
              ng=ng_meta("erspan2", sid=91, seq=seq, vlan=100 + seq, cos=5, en=2, index=0xABCDE - seq))
    IN = inner(110)
    f.add(o4() / GRE(proto=0x6558, key_present=1, key=100, seqnum_present=1, sequence_number=7) / IN,
          session=EXP + "-gre-100", encap="gre", sid=100, frame=IN, seq=7, ng=ng_meta("teb", seq=7, key=100))
    IN = inner(111)
    f.add(o4() / GRE() / ERSPAN_I() / IN, session=EXP + "-erspan1", encap="erspan1", sid=None, frame=IN,
          ng=ng_meta("erspan1"))
    IN = inner(112)
    f.add(o4() / UDP(sport=50000, dport=4789) / VXLAN(flags=0x08, vni=5000) / IN, session=EXP + "-vxlan-5000",
          encap="vxlan", sid=5000, frame=IN)

    f = fx("v08_ipv6_erspan2", "V08: Type II over IPv6 (no extension headers), session 3 -> name uses RFC 5952 text")
    for k in range(2):
        IN = inner(k)
        f.add(o6() / G(k) / ERSPAN_II(session_id=3) / IN, session=n_erspan(EXP6, 3), encap="erspan2",
              sid=3, frame=IN, seq=k)

    f = fx("v10_inner_dot1q", "V10: Type II En=3 VLAN 10 with the 802.1Q tag kept inside the inner frame")
    IN = (Ether(src=IMAC_SRC, dst=IMAC_DST) / Dot1Q(vlan=10) / IP(src="192.0.2.1", dst="192.0.2.2")
          / UDP(sport=1000, dport=2000) / Raw(b"payload-v10"))
    f.add(o4() / G(0) / ERSPAN_II(en=3, vlan=10, session_id=10) / IN, session=n_erspan(EXP, 10),
          encap="erspan2", sid=10, frame=IN, seq=0)

    f = fx("v11_inner_qinq", "V11: Type II carrying an 802.1ad + 802.1Q double-tagged inner frame (both kept)")
    IN = (Ether(src=IMAC_SRC, dst=IMAC_DST) / Dot1AD(vlan=100) / Dot1Q(vlan=10)
          / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1000, dport=2000) / Raw(b"payload-v11"))
    assert bytes(IN)[12:14] == b"\x88\xa8" and bytes(IN)[16:18] == b"\x81\x00"
    f.add(o4() / G(0) / ERSPAN_II(session_id=11) / IN, session=n_erspan(EXP, 11), encap="erspan2",
          sid=11, frame=IN, seq=0)

    f = fx("v12_outer_vlan", "V12: outer tags on the capture link peeled before IP: 802.1Q; 802.1ad+802.1Q; "
           "0x9100+802.1ad+802.1Q (3 tags); Type II session 12 seq 0,1,2")
    outers = [Ether(src=OMAC_SRC, dst=OMAC_DST) / Dot1Q(vlan=20),
              Ether(src=OMAC_SRC, dst=OMAC_DST) / Dot1AD(vlan=100) / Dot1Q(vlan=20),
              Ether(src=OMAC_SRC, dst=OMAC_DST, type=0x9100) / Dot1Q(vlan=300, type=0x88A8)
              / Dot1Q(vlan=100, type=0x8100) / Dot1Q(vlan=20)]
    for k, ol in enumerate(outers):
        IN = inner(k)
        p = ol / IP(src=EXP, dst=COLL) / G(k) / ERSPAN_II(session_id=12) / IN
        f.add(p, session=n_erspan(EXP, 12), encap="erspan2", sid=12, frame=IN, seq=k)
    assert bytes(p)[12:14] == b"\x91\x00" and bytes(p)[16:18] == b"\x88\xa8" and bytes(p)[20:22] == b"\x81\x00"

    f = fx("v14_gre_key", "V14: Type II with GRE K (key 0x1234) and S: session from the ERSPAN header (14), key ignored")
    for k in range(2):
        IN = inner(k)
        p = o4() / G(k, key_present=1, key=0x1234) / ERSPAN_II(session_id=14) / IN
        assert bytes(p)[34:38] == bytes.fromhex("300088be")
        f.add(p, session=n_erspan(EXP, 14), encap="erspan2", sid=14, frame=IN, seq=k)

    f = fx("v15_gre_checksum_ok", "V15: Type II with GRE C (scapy auto checksum, verifies): no anomaly")
    for k in range(2):
        IN = inner(k)
        p = o4() / G(k, chksum_present=1) / ERSPAN_II(session_id=15) / IN
        assert inet_checksum(bytes(p)[34:]) == 0xFFFF
        f.add(p, session=n_erspan(EXP, 15), encap="erspan2", sid=15, frame=IN, seq=k)

    f = fx("v16_session_ids", "V16: Type II session ids 1, 2, 1023, 0 -> four sessions (0 and 1023 legal)")
    for k, sid in enumerate([1, 2, 1023, 0]):
        IN = inner(k)
        f.add(o4() / G(0) / ERSPAN_II(session_id=sid) / IN, session=n_erspan(EXP, sid), encap="erspan2",
              sid=sid, frame=IN, seq=0)

    f = fx("v17_teb_nokey", "V17: GRE transparent Ethernet bridging (0x6558) without key -> session <exporter>-gre")
    for k in range(2):
        IN = inner(k)
        f.add(o4() / GRE(proto=0x6558) / IN, session=EXP + "-gre", encap="gre", sid=None, frame=IN)

    f = fx("v18_teb_key_seq", "V18: GRE TEB key 100 with S: seq 0,1,3 -> lost 1")
    for k, seq in enumerate([0, 1, 3]):
        IN = inner(k)
        f.add(o4() / GRE(proto=0x6558, key_present=1, key=100, seqnum_present=1, sequence_number=seq) / IN,
              session=EXP + "-gre-100", encap="gre", sid=100, frame=IN, seq=seq)
    f.expect_seq(EXP + "-gre-100", lost=1)

    f = fx("v19_nvgre", "V19: NVGRE (TEB, K only) key = VSID 0x123456 << 8 | FlowID 7 = 305419783")
    key = (0x123456 << 8) + 7
    assert key == 305419783
    for k in range(2):
        IN = inner(k)
        f.add(o4() / GRE(proto=0x6558, key_present=1, key=key) / IN, session=EXP + "-gre-305419783",
              encap="gre", sid=305419783, frame=IN)

    f = fx("v20_vxlan", "V20: VXLAN (flags 0x08) on UDP 4789, VNI 123")
    for k in range(2):
        IN = inner(k)
        p = o4() / UDP(sport=54321 + k, dport=4789) / VXLAN(flags=0x08, vni=123) / IN
        assert bytes(p)[42:50] == bytes.fromhex("080000000000 7b00".replace(" ", ""))
        f.add(p, session=EXP + "-vxlan-123", encap="vxlan", sid=123, frame=IN)

    f = fx("v21_vxlan_8472", "V21: VXLAN on UDP 8472 accepted because vxlan_ports = [4789, 8472]; "
           "session key is (exporter, VNI), port not part of it",
           options={"vxlan_ports": [4789, 8472]})
    for k, (port, vni) in enumerate([(8472, 123), (4789, 124), (8472, 124)]):
        IN = inner(k)
        f.add(o4() / UDP(sport=40000 + k, dport=port) / VXLAN(flags=0x08, vni=vni) / IN,
              session="%s-vxlan-%d" % (EXP, vni), encap="vxlan", sid=vni, frame=IN)

    f = fx("v22_vxlan_vni_edges", "V22: VXLAN VNI 0 and 0xFFFFFF (16777215) are both valid")
    for k, vni in enumerate([0, 0xFFFFFF]):
        IN = inner(k)
        f.add(o4() / UDP(sport=54321, dport=4789) / VXLAN(flags=0x08, vni=vni) / IN,
              session="%s-vxlan-%d" % (EXP, vni), encap="vxlan", sid=vni, frame=IN)

    f = fx("v23_rspan", "V23: RSPAN VLAN 999 (rspan_vlans=[999]): 802.1Q 999; 802.1Q PCP 5 VID 999; "
           "802.1ad 999 over 802.1Q 10 (only the outer tag removed); ARP in VLAN 999; "
           "VLAN 998 (not RSPAN) carrying UDP 2000 -> not_mirror.udp_port",
           options={"rspan_vlans": [999]})
    RS = "replay-vlan-999"
    pay = IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1000, dport=2000) / Raw(b"payload-rspan-0")
    f.add(Ether(src=IMAC_SRC, dst=IMAC_DST) / Dot1Q(vlan=999) / pay, session=RS, encap="rspan", sid=999,
          frame=Ether(src=IMAC_SRC, dst=IMAC_DST) / pay, check_embedded=False)
    pay = IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1000, dport=2000) / Raw(b"payload-rspan-1")
    f.add(Ether(src=IMAC_SRC, dst=IMAC_DST) / Dot1Q(prio=5, vlan=999) / pay, session=RS, encap="rspan",
          sid=999, frame=Ether(src=IMAC_SRC, dst=IMAC_DST) / pay, check_embedded=False)
    pay = IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1000, dport=2000) / Raw(b"payload-rspan-2")
    exp_frame = Ether(src=IMAC_SRC, dst=IMAC_DST) / Dot1Q(vlan=10) / pay
    p = Ether(src=IMAC_SRC, dst=IMAC_DST) / Dot1AD(vlan=999) / Dot1Q(vlan=10) / pay
    assert bytes(p) == bytes(exp_frame)[:12] + b"\x88\xa8\x03\xe7" + bytes(exp_frame)[12:]
    f.add(p, session=RS, encap="rspan", sid=999, frame=exp_frame, check_embedded=False)
    arp = ARP(op=1, hwsrc=IMAC_SRC, psrc="192.0.2.1", hwdst="00:00:00:00:00:00", pdst="192.0.2.2")
    f.add(Ether(src=IMAC_SRC, dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=999) / arp, session=RS, encap="rspan",
          sid=999, frame=Ether(src=IMAC_SRC, dst="ff:ff:ff:ff:ff:ff") / arp, check_embedded=False)
    f.add(Ether(src=IMAC_SRC, dst=IMAC_DST) / Dot1Q(vlan=998) / IP(src="192.0.2.1", dst="192.0.2.2")
          / UDP(sport=1000, dport=2000) / Raw(b"payload-vlan-998"), reason="not_mirror.udp_port")

    f = fx("v24_rspan_qinq", "V24: RSPAN 802.1Q 999 over 802.1Q 10: only VID 999 stripped, inner tag 10 kept",
           options={"rspan_vlans": [999]})
    for k in range(2):
        pay = IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1000, dport=2000) / Raw(b"payload-v24-%d" % k)
        exp_frame = Ether(src=IMAC_SRC, dst=IMAC_DST) / Dot1Q(vlan=10) / pay
        p = Ether(src=IMAC_SRC, dst=IMAC_DST) / Dot1Q(vlan=999) / Dot1Q(vlan=10) / pay
        assert bytes(p) == bytes(exp_frame)[:12] + b"\x81\x00\x03\xe7" + bytes(exp_frame)[12:]
        f.add(p, session=RS, encap="rspan", sid=999, frame=exp_frame, check_embedded=False)

    # ---------------------------------------------------------------- D.3 sequence / timestamps
    def seq_fixture(name, desc, seqs, sid=1, **expect):
        f = fx(name, desc)
        for k, seq in enumerate(seqs):
            IN = inner(k)
            f.add(o4() / G(seq) / ERSPAN_II(session_id=sid) / IN, session=n_erspan(EXP, sid),
                  encap="erspan2", sid=sid, frame=IN, seq=seq)
        f.expect_seq(n_erspan(EXP, sid), **expect)
        return f

    seq_fixture("s01_seq_wrap", "S01: GRE seq 0xFFFFFFFE, 0xFFFFFFFF, 0, 1: 32-bit wrap, no loss",
                [0xFFFFFFFE, 0xFFFFFFFF, 0, 1])
    seq_fixture("s03_seq_loss", "S03: GRE seq 10, 11, 15, 16 -> lost 3", [10, 11, 15, 16], lost=3)
    seq_fixture("s04_seq_reorder", "S04: GRE seq 10, 12, 11, 13 -> out_of_order 1, lost 0 (net)",
                [10, 12, 11, 13], out_of_order=1)
    seq_fixture("s05_seq_backward", "S05: GRE seq 1000000, 1000001, 0, 1, 2: backward jump 1000002 < 2^24 "
                "is not a restart -> out_of_order 3, lost -3; all 5 written", [1000000, 1000001, 0, 1, 2],
                out_of_order=3, lost=-3)

    f = fx("s05_seq_restart", "S05 variant: exporter restarts. Session 1: seq 0x30000000, 0x30000001, 5, 6, 7 "
           "(backward jump >= 2^24); session 2: seq 5, 6, 0x30000000, 0x30000001 (forward jump >= 2^28): "
           "nothing counted, everything written")
    order = [(1, 0x30000000), (2, 5), (1, 0x30000001), (2, 6), (1, 5), (2, 0x30000000), (1, 6),
             (2, 0x30000001), (1, 7)]
    for k, (sid, seq) in enumerate(order):
        IN = inner(k)
        f.add(o4() / G(seq) / ERSPAN_II(session_id=sid) / IN, session=n_erspan(EXP, sid), encap="erspan2",
              sid=sid, frame=IN, seq=seq)

    f = fx("s06_seq_duplicate", "S06: GRE seq 4, 5, 5, 6 where both seq-5 records are byte-identical -> "
           "duplicates 1, all 4 written")
    for k, seq in enumerate([4, 5, 5, 6]):
        IN = inner(seq)
        f.add(o4() / G(seq) / ERSPAN_II(session_id=1) / IN, session=n_erspan(EXP, 1), encap="erspan2",
              sid=1, frame=IN, seq=seq)
    assert f.records[1][0] == f.records[2][0]
    f.expect_seq(n_erspan(EXP, 1), duplicates=1)

    f = fx("s07_direction", "S07: same inner frame as Type III D=0 (seq 1) then D=1 (seq 2): one session "
           "(direction does not split), both written")
    IN = inner(0)
    for seq, d in [(1, 0), (2, 1)]:
        f.add(o4() / G(seq) / ERSPAN_III(session_id=7, d=d, timestamp=seq) / IN, session=n_erspan(EXP, 7),
              encap="erspan3", sid=7, frame=IN, seq=seq)

    f = fx("s08_s10_erspan3_timestamps", "S08: Gra 0 timestamps 0xFFFFFFF0, 0xFFFFFFFF, 0x10 (session 8); "
           "S09: Gra 2, timestamp 999999999, Platf 5 seconds 1700000037 (session 9); S10: Gra 3, timestamp "
           "0x377CA5E0, SGT 1, Hw ID 39 (session 10). All written with the receive time.")
    k = 0
    for seq, ts in enumerate([0xFFFFFFF0, 0xFFFFFFFF, 0x10]):
        IN = inner(k)
        k += 1
        f.add(o4() / G(seq) / ERSPAN_III(session_id=8, timestamp=ts, gra=0) / IN, session=n_erspan(EXP, 8),
              encap="erspan3", sid=8, frame=IN, seq=seq)
    IN = inner(k)
    k += 1
    f.add(o4() / G(0) / ERSPAN_III(session_id=9, timestamp=999999999, gra=2, o=1)
          / ERSPAN_PlatformSpecific(platf_id=5, info1=(1 << 16) | 3, info2=1700000037) / IN,
          session=n_erspan(EXP, 9), encap="erspan3", sid=9, frame=IN, seq=0)
    IN = inner(k)
    p = o4() / G(0x34037DE0) / ERSPAN_III(session_id=10, timestamp=0x377CA5E0, gra=3, sgt_other=1, hw=39) / IN
    f.add(p, session=n_erspan(EXP, 10), encap="erspan3", sid=10, frame=IN, seq=0x34037DE0)

    f = fx("erspan2_3_same_session", "Type II and Type III with the same exporter + id are ONE session; "
           "encapsulation = type of the first packet: id 5 (III, II, III) -> erspan3; id 6 (II, III) -> erspan2; "
           "GRE seq shared per session")
    order = [(5, 3, 0), (6, 2, 0), (5, 2, 1), (6, 3, 1), (5, 3, 2)]
    for k, (sid, typ, seq) in enumerate(order):
        IN = inner(k)
        er = ERSPAN_III(session_id=sid, timestamp=k) if typ == 3 else ERSPAN_II(session_id=sid)
        f.add(o4() / G(seq) / er / IN, session=n_erspan(EXP, sid), encap="erspan%d" % typ, sid=sid,
              frame=IN, seq=seq)
    assert f.sessions[n_erspan(EXP, 5)]["encapsulation"] == "erspan3"
    assert f.sessions[n_erspan(EXP, 6)]["encapsulation"] == "erspan2"

    # ---------------------------------------------------------------- D.4 malformed / adversarial
    f = fx("m04_truncated_headers", "M04: Type III+O packet (S set) whose IP datagram ends 3, 6, 13, 24, 40 bytes "
           "after the IP header -> gre_truncated x2, erspan_truncated, erspan_platform_truncated, inner_truncated")
    full = bytes(G(0) / ERSPAN_III(session_id=4, o=1) / ERSPAN_PlatformSpecific(platf_id=5) / inner(0))
    for cut, reason in [(3, "gre_truncated"), (6, "gre_truncated"), (13, "erspan_truncated"),
                        (24, "erspan_platform_truncated"), (40, "inner_truncated")]:
        p = o4() / Raw(full[:cut])
        p[IP].proto = 47
        assert len(bytes(p)) == 34 + cut
        f.add(p, reason="malformed." + reason)

    f = fx("m06_gre_checksum_bad", "M06: Type II with GRE C and a wrong checksum 0xdead (anomaly "
           "gre_checksum_bad, frame still written), then one with a correct checksum")
    for k in range(2):
        IN = inner(k)
        g = G(k, chksum_present=1, chksum=0xDEAD) if k == 0 else G(k, chksum_present=1)
        p = o4() / g / ERSPAN_II(session_id=6) / IN
        ok = inet_checksum(bytes(p)[34:]) == 0xFFFF
        assert ok == (k == 1)
        f.add(p, session=n_erspan(EXP, 6), encap="erspan2", sid=6, frame=IN, seq=k,
              anomalies=() if ok else ("gre_checksum_bad",))

    f = fx("m07_gre_routing", "M07: GRE R bit with SREs (0x5000 88be) carrying Type II -> malformed.gre_routing")
    p = (o4() / GRE(routing_present=1, seqnum_present=1, proto=0x88BE)
         / GRErouting(address_family=0x0800, routing_info=b"\xc6\x33\x64\x03") / GRErouting()
         / ERSPAN_II(session_id=7) / inner(0))
    assert bytes(p)[34:38] == bytes.fromhex("500088be")
    f.add(p, reason="malformed.gre_routing")

    f = fx("m08_gre_version", "M08: GRE version != 0 with a mirror protocol -> malformed.gre_version: "
           "v1 0x88BE (Type I-like), v1 0x22EB + S + Type III, v2 0x6558")
    f.add(o4() / GRE(version=1, proto=0x88BE) / Raw(bytes(inner(0))), reason="malformed.gre_version")
    f.add(o4() / GRE(version=1, proto=0x22EB, seqnum_present=1) / ERSPAN_III(session_id=8) / inner(1),
          reason="malformed.gre_version")
    f.add(o4() / GRE(version=2, proto=0x6558) / inner(2), reason="malformed.gre_version")

    f = fx("m09_gre_reserved_bits", "M09: GRE with s, Recur=1 and a reserved flag bit (1908 88be) on Type II, "
           "and Recur=2 on TEB -> decoded, anomaly gre_reserved_bits each")
    IN = inner(0)
    p = o4() / G(0, flags=1, recursion_control=1, strict_route_source=1) / ERSPAN_II(session_id=9) / IN
    assert bytes(p)[34:38] == bytes.fromhex("190888be")
    f.add(p, session=n_erspan(EXP, 9), encap="erspan2", sid=9, frame=IN, seq=0, anomalies=("gre_reserved_bits",))
    IN = inner(1)
    p = o4() / GRE(proto=0x6558, recursion_control=2) / IN
    assert bytes(p)[34:38] == bytes.fromhex("02006558")
    f.add(p, session=EXP + "-gre", encap="gre", sid=None, frame=IN, anomalies=("gre_reserved_bits",))

    f = fx("m10_m11_version_mismatch", "M10: Type III header under GRE 0x88BE+S (old Linux) -> Type III; "
           "M11: Type II header under 0x22EB+S -> Type II; anomaly erspan_version_mismatch each")
    IN = inner(0)
    p = o4() / GRE(proto=0x88BE, seqnum_present=1, sequence_number=0) / ERSPAN_III(session_id=10) / IN
    assert bytes(p)[34:38] == bytes.fromhex("100088be") and bytes(p)[42] >> 4 == 2
    f.add(p, session=n_erspan(EXP, 10), encap="erspan3", sid=10, frame=IN, seq=0,
          anomalies=("erspan_version_mismatch",))
    IN = inner(1)
    p = o4() / GRE(proto=0x22EB, seqnum_present=1, sequence_number=0) / Raw(bytes(ERSPAN_II(session_id=11) / IN))
    assert bytes(p)[34:38] == bytes.fromhex("100022eb") and bytes(p)[42] >> 4 == 1
    f.add(p, session=n_erspan(EXP, 11), encap="erspan2", sid=11, frame=IN, seq=0,
          anomalies=("erspan_version_mismatch",))

    f = fx("m12_erspan_version", "M12: unknown ERSPAN Ver: 0x88BE+S with Ver 0, 3, 15 and 0x22EB+S with Ver 0, 15 "
           "-> malformed.erspan_version")
    for k, v in enumerate([0, 3, 15]):
        f.add(o4() / G(k) / ERSPAN_II(ver=v, session_id=12) / inner(k), reason="malformed.erspan_version")
    for k, v in enumerate([0, 15]):
        f.add(o4() / GRE(proto=0x22EB, seqnum_present=1, sequence_number=k)
              / ERSPAN_III(ver=v, session_id=12) / inner(3 + k), reason="malformed.erspan_version")

    f = fx("m14_m15_erspan1_mac_nibble", "M14/M15: Type I whose inner destination MAC starts 12: / 22: "
           "(scapy mis-dissects these as Type II / III): still Type I")
    for k, dmac in enumerate(["12:00:00:00:00:02", "22:00:00:00:00:02"]):
        IN = (Ether(src=IMAC_SRC, dst=dmac) / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1000, dport=2000)
              / Raw(b"payload-m14-%d" % k))
        f.add(o4() / GRE(proto=0x88BE) / IN, session=EXP + "-erspan1", encap="erspan1", sid=None, frame=IN)

    f = fx("m17_erspan3_bso_t", "M17: Type III BSO 1/2/3 with T=0, then BSO 0 T=1 and BSO 3 T=1: frames unchanged, "
           "truncated 2 (inner complete, so orig_len = caplen)")
    for k, (bso, t) in enumerate([(1, 0), (2, 0), (3, 0), (0, 1), (3, 1)]):
        IN = inner(k)
        f.add(o4() / G(k) / ERSPAN_III(session_id=17, bso=bso, t=t) / IN, session=n_erspan(EXP, 17),
              encap="erspan3", sid=17, frame=IN, seq=k, truncated=bool(t))

    f = fx("erspan_t_bit_cut", "ERSPAN T=1 where the inner frame really was cut: orig_len = inner L2 header + "
           "inner IP length. Session 21 (Type II): IPv4 inner 600 bytes cut to 100, ARP T=1 (orig = caplen); "
           "session 22 (Type III): IPv6 inner 400 bytes cut to 90; session 23 (Type II): 802.1Q-tagged IPv4 "
           "inner 300 bytes cut to 64")
    IN = inner(0, extra=600 - 51)
    assert len(IN) == 600
    f.add(o4() / G(0) / ERSPAN_II(session_id=21, t=1) / Raw(bytes(IN)[:100]), session=n_erspan(EXP, 21),
          encap="erspan2", sid=21, frame=IN, frame_caplen=100, frame_wirelen=14 + len(bytes(IN[IP])), seq=0,
          truncated=True)
    assert 14 + len(bytes(IN[IP])) == 600
    arp = (Ether(src=IMAC_SRC, dst="ff:ff:ff:ff:ff:ff")
           / ARP(op=1, hwsrc=IMAC_SRC, psrc="192.0.2.1", hwdst="00:00:00:00:00:00", pdst="192.0.2.2"))
    f.add(o4() / G(1) / ERSPAN_II(session_id=21, t=1) / arp, session=n_erspan(EXP, 21), encap="erspan2",
          sid=21, frame=arp, seq=1, truncated=True)
    IN6 = inner6(1, extra=400 - 71)
    assert len(IN6) == 400 and 14 + 40 + (len(bytes(IN6[IPv6])) - 40) == 400
    f.add(o4() / G(0) / ERSPAN_III(session_id=22, t=1) / Raw(bytes(IN6)[:90]), session=n_erspan(EXP, 22),
          encap="erspan3", sid=22, frame=IN6, frame_caplen=90, frame_wirelen=14 + 40 + (len(bytes(IN6[IPv6])) - 40), seq=0,
          truncated=True)
    INQ = (Ether(src=IMAC_SRC, dst=IMAC_DST) / Dot1Q(vlan=10) / IP(src="192.0.2.1", dst="192.0.2.2")
           / UDP(sport=1000, dport=2000) / Raw(b"payload-q" + b"\x5a" * (300 - 18 - 28 - 9)))
    assert len(INQ) == 300 and 18 + len(bytes(INQ[IP])) == 300
    f.add(o4() / G(0) / ERSPAN_II(session_id=23, t=1, en=3, vlan=10) / Raw(bytes(INQ)[:64]),
          session=n_erspan(EXP, 23), encap="erspan2", sid=23, frame=INQ, frame_caplen=64,
          frame_wirelen=18 + len(bytes(INQ[IP])), seq=0, truncated=True)

    f = fx("m18_nested_erspan", "M18: ERSPAN II session 18 whose inner frame is itself ERSPAN II (to the collector): "
           "written as-is, anomaly nested_mirror")
    NESTED = o4(EXP, COLL) / G(0) / ERSPAN_II(session_id=5) / inner(0)
    NESTED[Ether].src = IMAC_SRC
    NESTED[Ether].dst = IMAC_DST
    f.add(o4() / G(0) / ERSPAN_II(session_id=18) / NESTED, session=n_erspan(EXP, 18), encap="erspan2",
          sid=18, frame=NESTED, seq=0, anomalies=("nested_mirror",))

    f = fx("m19_gre_not_mirror", "M19: GRE protocol 0x0000 (keepalive) -> not_mirror.gre_keepalive; 0x883E (WCCP), "
           "0x0800 (plain IP-in-GRE), PPTP GRE v1 0x880B -> not_mirror.gre_protocol")
    f.add(o4() / GRE(proto=0x0000) / Raw(bytes(IP(src=COLL, dst=EXP) / GRE(proto=0x0000))),
          reason="not_mirror.gre_keepalive")
    f.add(o4() / GRE(proto=0x883E) / Raw(b"\0\0\0\0") / IP(src="192.0.2.1", dst="192.0.2.2") / TCP(dport=80),
          reason="not_mirror.gre_protocol")
    f.add(o4() / GRE(proto=0x0800) / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1000, dport=2000)
          / Raw(b"ip-in-gre"), reason="not_mirror.gre_protocol")
    p = (o4() / GRE_PPTP(seqnum_present=1, call_id=5, sequence_number=1)
         / Raw(b"\xff\x03\x00\x21" + bytes(IP(src="192.0.2.1", dst="192.0.2.2") / ICMP())))
    assert bytes(p)[34:38] == bytes.fromhex("3001880b")
    f.add(p, reason="not_mirror.gre_protocol")

    f = fx("m20_m22_vxlan_flags", "M20/M22 + GPE: VXLAN flags 0x00 -> malformed.vxlan_flags; flags 0x88 (VNI 20) "
           "and reserved2 0xff (VNI 22) -> written, anomaly vxlan_reserved_bits; on the GPE port 4790, GPE (flags "
           "0x0C) with next protocol 4 (NSH) and 5 (MPLS) -> malformed.vxlan_gpe_protocol")
    p = o4() / UDP(sport=54321, dport=4789) / VXLAN(flags=0x00, vni=20) / inner(0)
    assert bytes(p)[42:50] == bytes.fromhex("0000000000001400")
    f.add(p, reason="malformed.vxlan_flags")
    IN = inner(1)
    p = o4() / UDP(sport=54321, dport=4789) / VXLAN(flags=0x88, vni=20) / IN
    assert bytes(p)[42:50] == bytes.fromhex("8800000000001400")
    f.add(p, session=EXP + "-vxlan-20", encap="vxlan", sid=20, frame=IN, anomalies=("vxlan_reserved_bits",))
    IN = inner(2)
    p = o4() / UDP(sport=54321, dport=4789) / VXLAN(flags=0x08, vni=22, reserved2=0xFF) / IN
    assert bytes(p)[42:50] == bytes.fromhex("08000000000016ff")
    f.add(p, session=EXP + "-vxlan-22", encap="vxlan", sid=22, frame=IN, anomalies=("vxlan_reserved_bits",))
    p = o4() / UDP(sport=54321, dport=4790) / VXLAN(flags=0x0C, NextProtocol=5, vni=23) / Raw(b"\0" * 24)
    assert bytes(p)[42:50] == bytes.fromhex("0c00000500001700")
    f.add(p, reason="malformed.vxlan_gpe_protocol")
    p = o4() / UDP(sport=54321, dport=4790) / VXLAN(flags=0x0C, NextProtocol=4, vni=23) / Raw(b"\0" * 24)
    assert bytes(p)[42:50] == bytes.fromhex("0c00000400001700")
    f.add(p, reason="malformed.vxlan_gpe_protocol")

    f = fx("m21_vxlan_gpe_ethernet", "M21: scapy default VXLAN()/Ether: GPE-style 0c 00 00 03 (I+P, next protocol 3 "
           "Ethernet) on the VXLAN port 4789 -> VXLAN VNI 1 whose 0x04 flag and byte 3 are reserved bits (RFC 7348: "
           "ignored on receipt; counted as vxlan_reserved_bits)")
    IN = inner(0)
    p = o4() / UDP(sport=54321, dport=4789) / VXLAN(vni=1) / IN
    assert bytes(p)[42:50] == bytes.fromhex("0c00000300000100")
    f.add(p, session=EXP + "-vxlan-1", encap="vxlan", sid=1, frame=IN, anomalies=("vxlan_reserved_bits",))

    f = fx("m23_inner_truncated", "M23: encapsulation followed by fewer than 14 bytes -> malformed.inner_truncated: "
           "Type II + 10 bytes, TEB + 10 bytes, VXLAN + 13 bytes, Type I + 0 bytes")
    ib = bytes(inner(0))
    f.add(o4() / G(0) / ERSPAN_II(session_id=23) / Raw(ib[:10]), reason="malformed.inner_truncated")
    f.add(o4() / GRE(proto=0x6558) / Raw(ib[:10]), reason="malformed.inner_truncated")
    f.add(o4() / UDP(sport=54321, dport=4789) / VXLAN(flags=0x08, vni=23) / Raw(ib[:13]),
          reason="malformed.inner_truncated")
    p = o4() / GRE(proto=0x88BE)
    assert len(bytes(p)) == 38
    f.add(p, reason="malformed.inner_truncated")

    f = fx("m25_allow_list", "M25: allow_exporters = [198.51.100.0/24]: Type II from 203.0.113.1-5 -> "
           "unauthorized_exporter.allow_list x5; from 198.51.100.1 -> written",
           options={"allow_exporters": ["198.51.100.0/24"]})
    for k in range(6):
        IN = inner(k)
        src = "203.0.113.%d" % (k + 1) if k < 5 else EXP
        p = o4(src=src) / G(0) / ERSPAN_II(session_id=25) / IN
        if k < 5:
            f.add(p, reason="unauthorized_exporter.allow_list")
        else:
            f.add(p, session=n_erspan(EXP, 25), encap="erspan2", sid=25, frame=IN, seq=0)

    # ---------------------------------------------------------------- other traffic / transports
    f = fx("not_mirror", "Not mirror traffic: ARP and ethertype 0x88B5 (non_ip); IPv4 TCP, ICMP, IPv6 TCP, ICMPv6 "
           "(ip_protocol); UDP 53, UDP 8472 VXLAN with 8472 not configured, UDP source port 4789 to 5555, "
           "IPv6 UDP 53 (udp_port)")
    f.add(Ether(src=OMAC_SRC, dst="ff:ff:ff:ff:ff:ff")
          / ARP(op=1, hwsrc=OMAC_SRC, psrc=EXP, hwdst="00:00:00:00:00:00", pdst=COLL), reason="not_mirror.non_ip")
    f.add(Ether(src=OMAC_SRC, dst=OMAC_DST, type=0x88B5) / Raw(b"local experimental ethertype 1"),
          reason="not_mirror.non_ip")
    f.add(o4() / TCP(sport=12345, dport=22, flags="S"), reason="not_mirror.ip_protocol")
    f.add(o4() / ICMP() / Raw(b"ping"), reason="not_mirror.ip_protocol")
    f.add(o6() / TCP(sport=12345, dport=22, flags="S"), reason="not_mirror.ip_protocol")
    f.add(o6() / ICMPv6EchoRequest(id=1, seq=1), reason="not_mirror.ip_protocol")
    f.add(o4() / UDP(sport=5353, dport=53) / DNS(id=0x1234, rd=1, qd=DNSQR(qname="example.com")),
          reason="not_mirror.udp_port")
    f.add(o4() / UDP(sport=54321, dport=8472) / VXLAN(flags=0x08, vni=123) / inner(0), reason="not_mirror.udp_port")
    f.add(o4() / UDP(sport=4789, dport=5555) / VXLAN(flags=0x08, vni=123) / inner(1), reason="not_mirror.udp_port")
    f.add(o6() / UDP(sport=5353, dport=53) / DNS(id=0x1234, rd=1, qd=DNSQR(qname="example.com")),
          reason="not_mirror.udp_port")

    f = fx("ipv6_ext_headers", "IPv6 outer with extension headers: Linux Destination Options (Tunnel Encapsulation "
           "Limit 4 + PadN) before GRE/Type II (session 31); Hop-by-Hop + Routing (type 0, segleft 0) + Destination "
           "Options before GRE/Type III (session 32); Destination Options before UDP/VXLAN (VNI 60)")
    for k in range(2):
        IN = inner(k)
        p = o6() / tel_destopt() / G(k) / ERSPAN_II(session_id=31) / IN
        assert bytes(p)[54:62] == bytes.fromhex("2f00040104010100")
        f.add(p, session=n_erspan(EXP6, 31), encap="erspan2", sid=31, frame=IN, seq=k)
    IN = inner(2)
    f.add(o6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting(addresses=["2001:db8::5"], segleft=0)
          / IPv6ExtHdrDestOpt() / G(0) / ERSPAN_III(session_id=32) / IN,
          session=n_erspan(EXP6, 32), encap="erspan3", sid=32, frame=IN, seq=0)
    IN = inner(3)
    f.add(o6() / tel_destopt() / UDP(sport=54321, dport=4789) / VXLAN(flags=0x08, vni=60) / IN,
          session=EXP6 + "-vxlan-60", encap="vxlan", sid=60, frame=IN)

    f = fx("ipv6_exporter_names", "Exporter names in RFC 5952 text: 2001:db8:0:0:1:0:0:1 -> 2001:db8::1:0:0:1 "
           "(first of two equal zero runs), 2001:db8:0:1:1:1:1:1 (single zero group not compressed), "
           "2001:0DB8::00AB -> 2001:db8::ab; Type II session 1 each")
    for k, (addr, name) in enumerate([("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
                                      ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
                                      ("2001:0DB8:0000:0000:0000:0000:0000:00AB", "2001:db8::ab")]):
        assert ipaddress.IPv6Address(addr).compressed == name
        IN = inner(k)
        f.add(o6(src=addr) / G(0) / ERSPAN_II(session_id=1) / IN, session=n_erspan(name, 1), encap="erspan2",
              sid=1, frame=IN, seq=0)

    f = fx("vxlan_ipv6", "VXLAN over IPv6 (UDP 4789, checksum set), VNI 77, 2 packets")
    for k in range(2):
        IN = inner(k)
        f.add(o6() / UDP(sport=50000 + k, dport=4789) / VXLAN(flags=0x08, vni=77) / IN,
              session=EXP6 + "-vxlan-77", encap="vxlan", sid=77, frame=IN)

    f = fx("ipv4_options_outer", "Outer IPv4 with options (IHL 6: NOP x4; IHL 10: record route) before GRE/Type II "
           "session 40")
    for k, opts in enumerate([[IPOption_NOP()] * 4, [IPOption_RR(routers=["198.51.100.9"] * 4)]]):
        IN = inner(k)
        p = o4(options=opts) / G(k) / ERSPAN_II(session_id=40) / IN
        assert bytes(p)[14] in (0x46, 0x4A), hex(bytes(p)[14])
        f.add(p, session=n_erspan(EXP, 40), encap="erspan2", sid=40, frame=IN, seq=k)

    f = fx("padding_fcs", "Frames bounded by the outer IP length: Type II + 4 junk bytes after the IP packet; "
           "inner frame with Ethernet padding to 60 bytes (padding kept) + outer 4-byte FCS; VXLAN over IPv6 + "
           "4 junk bytes (IPv6 payload length bound); Type I + 4 junk bytes")
    IN = inner(0)
    f.add(o4() / G(0) / ERSPAN_II(session_id=41) / IN, trailer=b"\xde\xad\xbe\xef",
          session=n_erspan(EXP, 41), encap="erspan2", sid=41, frame=IN, seq=0)
    INP = (Ether(src=IMAC_SRC, dst=IMAC_DST) / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1000, dport=2000)
           / Raw(b"p1") / Padding(b"\0" * 16))
    assert len(INP) == 60
    # Raw, so the outer IP length covers the inner padding (scapy leaves Padding layers out
    # of enclosing lengths): the padding is inside the datagram, hence part of the frame.
    f.add(o4() / G(1) / ERSPAN_II(session_id=41) / Raw(bytes(INP)), trailer=b"\x1c\xdf\x44\x21",
          session=n_erspan(EXP, 41), encap="erspan2", sid=41, frame=INP, seq=1)
    IN = inner(2)
    f.add(o6() / UDP(sport=54321, dport=4789) / VXLAN(flags=0x08, vni=41) / IN, trailer=b"\xca\xfe\xba\xbe",
          session=EXP6 + "-vxlan-41", encap="vxlan", sid=41, frame=IN)
    IN = inner(3)
    f.add(o4() / GRE(proto=0x88BE) / IN, trailer=b"\x00\x00\x00\x00", session=EXP + "-erspan1",
          encap="erspan1", sid=None, frame=IN)

    f = fx("snap_truncated", "Capture (snap) truncation with all headers present: record caplen < wirelen; "
           "written with caplen = inner bytes present and orig_len = inner wire length; counts in truncated. "
           "Type II 1014-byte inner cut at 200 (session 50); same with 4 uncaptured FCS bytes on the wire; "
           "VXLAN over IPv6 1014-byte inner cut at 150; Type III+O 1014-byte inner cut at 100")
    for k, extra_wire in enumerate([0, 4]):
        IN = inner(k, extra=1014 - 51)
        assert len(IN) == 1014
        p = o4() / G(k) / ERSPAN_II(session_id=50) / IN
        assert len(bytes(p)) == 50 + 1014
        f.add(p, caplen=200, wirelen=50 + 1014 + extra_wire, session=n_erspan(EXP, 50), encap="erspan2",
              sid=50, frame=IN, frame_caplen=150, frame_wirelen=1014, seq=k, truncated=True)
    IN = inner(2, extra=1014 - 51)
    p = o6() / UDP(sport=54321, dport=4789) / VXLAN(flags=0x08, vni=50) / IN
    assert len(bytes(p)) == 70 + 1014
    f.add(p, caplen=150, session=EXP6 + "-vxlan-50", encap="vxlan", sid=50, frame=IN, frame_caplen=80,
          frame_wirelen=1014, truncated=True)
    IN = inner(3, extra=1014 - 51)
    p = o4() / G(0) / ERSPAN_III(session_id=51, o=1) / ERSPAN_PlatformSpecific(platf_id=3) / IN
    assert len(bytes(p)) == 62 + 1014
    f.add(p, caplen=100, session=n_erspan(EXP, 51), encap="erspan3", sid=51, frame=IN, frame_caplen=38,
          frame_wirelen=1014, seq=0, truncated=True)

    f = fx("snap_truncated_headers", "Capture (snap) truncation that cuts a needed header (wirelen is the full "
           "frame): 12 bytes (link_truncated), 802.1Q cut after 2 tag bytes (vlan_truncated), IPv4 cut at 10 bytes "
           "(ipv4_truncated), GRE+S cut at 6 (gre_truncated), Type II cut at 4 (erspan_truncated), Type III+O "
           "sub-header cut at 4 (erspan_platform_truncated), Type II with 10 inner bytes (inner_truncated), IPv6 "
           "cut at 30 (ipv6_truncated), UDP cut at 4 (udp_truncated), VXLAN cut at 4 (vxlan_truncated)")
    ib = bytes(inner(0, extra=100))
    cases = [
        (o4() / G(0) / ERSPAN_II(session_id=52) / Raw(ib), 12, "link_truncated"),
        (Ether(src=OMAC_SRC, dst=OMAC_DST) / Dot1Q(vlan=20) / IP(src=EXP, dst=COLL) / G(0) / ERSPAN_II(session_id=52)
         / Raw(ib), 16, "vlan_truncated"),
        (o4() / G(0) / ERSPAN_II(session_id=52) / Raw(ib), 14 + 10, "ipv4_truncated"),
        (o4() / G(0) / ERSPAN_II(session_id=52) / Raw(ib), 34 + 6, "gre_truncated"),
        (o4() / G(0) / ERSPAN_II(session_id=52) / Raw(ib), 42 + 4, "erspan_truncated"),
        (o4() / G(0) / ERSPAN_III(session_id=52, o=1) / ERSPAN_PlatformSpecific(platf_id=5) / Raw(ib), 54 + 4,
         "erspan_platform_truncated"),
        (o4() / G(0) / ERSPAN_II(session_id=52) / Raw(ib), 50 + 10, "inner_truncated"),
        (o6() / G(0) / ERSPAN_II(session_id=52) / Raw(ib), 14 + 30, "ipv6_truncated"),
        (o4() / UDP(sport=54321, dport=4789) / VXLAN(flags=0x08, vni=52) / Raw(ib), 34 + 4, "udp_truncated"),
        (o4() / UDP(sport=54321, dport=4789) / VXLAN(flags=0x08, vni=52) / Raw(ib), 42 + 4, "vxlan_truncated"),
    ]
    for p, cap, reason in cases:
        f.add(p, caplen=cap, reason="malformed." + reason)

    f = fx("malformed_outer", "Malformed outer headers (caplen = wirelen): 10-byte frame (link_truncated); "
           "0x8100 + 2 bytes (vlan_truncated); 0x0800 + 12 bytes (ipv4_truncated); IPv4 IHL 4 and IPv4 version 5 "
           "and Total Length 16 < 20 (ipv4_header); 0x86DD + 30 bytes (ipv6_truncated); IPv6 version 4 under "
           "0x86DD (ipv6_header); IPv4 proto 17 with a 4-byte datagram (udp_truncated); UDP 4789 with a 4-byte "
           "payload (vxlan_truncated)")
    eth = Ether(src=OMAC_SRC, dst=OMAC_DST)
    f.add(Raw(bytes(eth)[:10]), reason="malformed.link_truncated")
    f.add(Ether(src=OMAC_SRC, dst=OMAC_DST, type=0x8100) / Raw(b"\x00\x14"), reason="malformed.vlan_truncated")
    f.add(Ether(src=OMAC_SRC, dst=OMAC_DST, type=0x0800) / Raw(bytes(IP(src=EXP, dst=COLL, proto=47))[:12]),
          reason="malformed.ipv4_truncated")
    good = bytes(o4() / G(0) / ERSPAN_II(session_id=53) / inner(0))
    bad = bytearray(good)
    bad[14] = 0x44                                   # IHL 4
    f.add(Raw(bytes(bad)), reason="malformed.ipv4_header")
    bad = bytearray(good)
    bad[14] = 0x55                                   # version 5
    f.add(Raw(bytes(bad)), reason="malformed.ipv4_header")
    bad = bytearray(good)
    bad[16:18] = struct.pack(">H", 16)               # total length 16 < IHL*4
    f.add(Raw(bytes(bad)), reason="malformed.ipv4_header")
    f.add(Ether(src=OMAC_SRC, dst=OMAC_DST, type=0x86DD) / Raw(bytes(IPv6(src=EXP6, dst=COLL6, nh=47))[:30]),
          reason="malformed.ipv6_truncated")
    good6 = bytearray(bytes(o6() / G(0) / ERSPAN_II(session_id=53) / inner(1)))
    good6[14] = 0x40 | (good6[14] & 0x0F)            # version 4 in an IPv6 header
    f.add(Raw(bytes(good6)), reason="malformed.ipv6_header")
    p = o4() / Raw(b"\xd4\x31\x12\xb5")
    p[IP].proto = 17
    f.add(p, reason="malformed.udp_truncated")
    f.add(o4() / UDP(sport=54321, dport=4789) / Raw(b"\x08\0\0\0"), reason="malformed.vxlan_truncated")

    f = fx("mixed_sessions", "Several sessions interleaved (rspan_vlans=[999]): Type II id 1 from .1 (seq 0,1,2,4 "
           "-> lost 1), Type II id 1 from .3 (distinct session), Type III id 2 from .3, VXLAN VNI 5000 from .4, "
           "TEB key 7 from .5, Type I from .6, RSPAN VLAN 999, plus ARP (not_mirror.non_ip) and a truncated GRE "
           "header (malformed.gre_truncated)", options={"rspan_vlans": [999]})
    k = [0]

    def nk():
        k[0] += 1
        return inner(k[0])

    def e2(src, sid, seq):
        IN = nk()
        f.add(o4(src=src) / G(seq) / ERSPAN_II(session_id=sid) / IN, session=n_erspan(src, sid),
              encap="erspan2", sid=sid, frame=IN, seq=seq)

    def e3(src, sid, seq):
        IN = nk()
        f.add(o4(src=src) / G(seq) / ERSPAN_III(session_id=sid, timestamp=seq) / IN, session=n_erspan(src, sid),
              encap="erspan3", sid=sid, frame=IN, seq=seq)

    def vx(src, vni):
        IN = nk()
        f.add(o4(src=src) / UDP(sport=50000 + k[0], dport=4789) / VXLAN(flags=0x08, vni=vni) / IN,
              session="%s-vxlan-%d" % (src, vni), encap="vxlan", sid=vni, frame=IN)

    def teb(src, key, seq):
        IN = nk()
        f.add(o4(src=src) / GRE(proto=0x6558, key_present=1, key=key, seqnum_present=1, sequence_number=seq) / IN,
              session="%s-gre-%d" % (src, key), encap="gre", sid=key, frame=IN, seq=seq)

    def e1(src):
        IN = nk()
        f.add(o4(src=src) / GRE() / ERSPAN_I() / IN, session=src + "-erspan1", encap="erspan1", sid=None, frame=IN)

    def rspan():
        k[0] += 1
        pay = IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1000, dport=2000) / Raw(b"payload-rspan-%d" % k[0])
        f.add(Ether(src=IMAC_SRC, dst=IMAC_DST) / Dot1Q(vlan=999) / pay, session="replay-vlan-999", encap="rspan",
              sid=999, frame=Ether(src=IMAC_SRC, dst=IMAC_DST) / pay, check_embedded=False)

    A, B, C, Dd, E = EXP, "198.51.100.3", "198.51.100.4", "198.51.100.5", "198.51.100.6"
    e2(A, 1, 0)
    e3(B, 2, 100)
    vx(C, 5000)
    e2(A, 1, 1)
    teb(Dd, 7, 0)
    e1(E)
    rspan()
    e2(B, 1, 0)
    f.add(Ether(src=OMAC_SRC, dst="ff:ff:ff:ff:ff:ff")
          / ARP(op=1, hwsrc=OMAC_SRC, psrc=EXP, hwdst="00:00:00:00:00:00", pdst=COLL), reason="not_mirror.non_ip")
    e3(B, 2, 101)
    e2(A, 1, 2)
    vx(C, 5000)
    # proto set explicitly: a bare GRE() has protocol 0 (a keepalive), not a cut ERSPAN header.
    p = o4(src=B) / Raw(bytes(GRE(seqnum_present=1, sequence_number=102, proto=0x88BE))[:6])
    p[IP].proto = 47
    f.add(p, reason="malformed.gre_truncated")
    teb(Dd, 7, 1)
    e2(A, 1, 4)
    e1(E)
    rspan()
    e3(B, 2, 102)
    f.expect_seq(n_erspan(A, 1), lost=1)

    # ---------------------------------------------------------------- pcapng copies
    for src_name in ("v02_erspan2", "snap_truncated", "mixed_sessions"):
        src = next(x for x in F if x.name == src_name)
        g = fx(src_name + "_pcapng", src.description + " [same records as %s.pcap, written as pcapng with "
               "if_tsresol=9]" % src_name, options=src.options, pcapng=True)
        g.input = src_name + ".pcapng"
        g.records = list(src.records)
        g.sessions = src.sessions
        g.reasons = dict(src.reasons)
        g.anomalies = dict(src.anomalies)
        g.seq_expect = dict(src.seq_expect)

    # ---------------------------------------------------------------- reassembly (future)
    R = "fixtures_reassembly"

    def frag_extra(f, fragments, datagrams, merged, overlaps=0, incomplete=0, without=None):
        f.extra["reassembly"] = {"fragments": fragments, "datagrams_reassembled": datagrams,
                                 "fragments_merged": merged, "overlapping_datagrams": overlaps,
                                 "incomplete_datagrams": incomplete}
        f.extra["without_reassembly"] = without

    def big_erspan(k, sid, ipid):
        IN = inner(k, extra=1472 - 9)         # 1472-byte UDP payload -> 1514-byte inner frame
        assert len(IN) == 1514
        return IN, o4(id=ipid) / G(0) / ERSPAN_II(session_id=sid) / IN

    f = fx("m01_ipv4_fragments", "M01: Type II with a 1514-byte inner frame in an IPv4 datagram fragmented with "
           "fragsize 1480 (2 fragments, in order): reassembled, then decoded; the frame carries the time of the "
           "fragment that completed the datagram", section=R)
    IN, p = big_erspan(0, 1, 0x1001)
    frs = fragment(p, fragsize=1480)
    assert len(frs) == 2
    f.add(frs[0])
    f.add(frs[1], session=n_erspan(EXP, 1), encap="erspan2", sid=1, frame=IN, seq=0, check_embedded=False)
    frag_extra(f, 2, 1, 1, without={"packets_written": 0, "reasons": {"malformed.ip_fragment": 2}})

    f = fx("m02_ipv4_fragments_reversed", "M02: as M01 with the two fragments in reverse order", section=R)
    IN, p = big_erspan(1, 2, 0x1002)
    frs = fragment(p, fragsize=1480)
    f.add(frs[1])
    f.add(frs[0], session=n_erspan(EXP, 2), encap="erspan2", sid=2, frame=IN, seq=0, check_embedded=False)
    frag_extra(f, 2, 1, 1, without={"packets_written": 0, "reasons": {"malformed.ip_fragment": 2}})

    f = fx("m03_ipv6_fragments", "M03: Type II over IPv6 with a Fragment header, fragment6(..., 1280): 2 fragments "
           "reassembled, then decoded", section=R)
    IN = inner(2, extra=1472 - 9)
    p = o6() / IPv6ExtHdrFragment(id=0x3003) / G(0) / ERSPAN_II(session_id=3) / IN
    frs = fragment6(p, 1280)
    assert len(frs) == 2
    f.add(frs[0])
    f.add(frs[1], session=n_erspan(EXP6, 3), encap="erspan2", sid=3, frame=IN, seq=0, check_embedded=False)
    frag_extra(f, 2, 1, 1, without={"packets_written": 0, "reasons": {"malformed.ip_fragment": 2}})

    f = fx("ipv4_fragments_overlap", "Overlapping IPv4 fragments with conflicting data (second fragment starts 8 "
           "bytes inside the first): the datagram is dropped (both fragments malformed.ip_fragment); an unfragmented "
           "Type II packet (session 5) is unaffected", section=R)
    IN, p = big_erspan(3, 4, 0x1004)
    ipb = bytes(p[IP])
    hdr, payload = ipb[:20], ipb[20:]
    f1 = o4(id=0x1004, flags="MF", frag=0, proto=47) / Raw(payload[:1480])
    f2 = o4(id=0x1004, frag=(1480 - 8) // 8, proto=47) / Raw(b"\xee" * 8 + payload[1480:])
    f.add(f1, reason="malformed.ip_fragment")
    f.add(f2, reason="malformed.ip_fragment")
    IN = inner(4)
    f.add(o4() / G(0) / ERSPAN_II(session_id=5) / IN, session=n_erspan(EXP, 5), encap="erspan2", sid=5,
          frame=IN, seq=0)
    frag_extra(f, 2, 0, 0, overlaps=1, without={"packets_written": 1, "reasons": {"malformed.ip_fragment": 2}})

    f = fx("ipv4_fragments_incomplete", "A fragment train that never completes (only the first of 2 fragments): "
           "discarded as malformed.ip_fragment at timeout / end of input; an unfragmented Type II packet "
           "(session 7) is unaffected", section=R)
    IN, p = big_erspan(5, 6, 0x1006)
    frs = fragment(p, fragsize=1480)
    f.add(frs[0], reason="malformed.ip_fragment")
    IN = inner(6)
    f.add(o4() / G(0) / ERSPAN_II(session_id=7) / IN, session=n_erspan(EXP, 7), encap="erspan2", sid=7,
          frame=IN, seq=0)
    frag_extra(f, 1, 0, 0, incomplete=1, without={"packets_written": 1, "reasons": {"malformed.ip_fragment": 1}})


    # ---------------------------------------------------------------- switch timestamps (C.4)
    f = fx("erspan3_switch_time", "ERSPAN III switch timestamps consistent with the record times: 198.51.100.1 "
           "sends Gra 00 Linux/OVS-style Unix time in 100 us ticks truncated to 32 bits (0.3 ms before the record "
           "time), the last one 100 s off (implausible); 198.51.100.2 sends Gra 10 IEEE 1588 ns with Platf 0x5 "
           "TAI seconds (record time - 0.5 ms + 37 s). Written with receive time by default; switch_times gives "
           "the record times expected with --erspan-timestamps 198.51.100.1/32=unix100us and "
           "198.51.100.2/32=ptp")
    expected_switch = {"198.51.100.1-erspan-31": [], "198.51.100.2-erspan-32": []}
    implausible = 0
    for k in range(6):
        exporter = EXP if k % 2 == 0 else "198.51.100.2"
        when_ns = int((f.time(len(f.records))) * 1000000000)
        IN = inner(k)
        if k % 2 == 0:
            ticks = when_ns // 100000 - 3
            off = k == 4
            raw = ((ticks + 1000000) if off else ticks) & 0xFFFFFFFF
            er = ERSPAN_III(session_id=31, timestamp=raw, gra=0)
            p = o4(src=exporter) / G(k // 2) / er / IN
            if off:
                implausible += 1
                expected_switch["198.51.100.1-erspan-31"].append(str(when_ns))
            else:
                expected_switch["198.51.100.1-erspan-31"].append(str(ticks * 100000))
            f.add(p, session="198.51.100.1-erspan-31", encap="erspan3", sid=31, frame=IN, seq=k // 2)
        else:
            switch_ns = when_ns - 500000
            seconds, nanoseconds = divmod(switch_ns, 1000000000)
            er = ERSPAN_III(session_id=32, timestamp=nanoseconds, gra=2, o=1)
            plat = ERSPAN_PlatformSpecific(platf_id=5, info1=0, info2=seconds + 37)
            p = o4(src=exporter) / G(k // 2) / er / plat / IN
            expected_switch["198.51.100.2-erspan-32"].append(str(switch_ns))
            f.add(p, session="198.51.100.2-erspan-32", encap="erspan3", sid=32, frame=IN, seq=k // 2)
    f.extra["switch_times"] = {"rules": ["198.51.100.1/32=unix100us", "198.51.100.2/32=ptp"],
                               "record_times_ns": expected_switch, "implausible": implausible}

    build_geneve_and_vxlan_port_fixtures(fx)
    build_input_fixtures(F)
    return F


# --------------------------------------------------------------------------------------------
# Geneve (RFC 8926, UDP 6081) and VXLAN reserved bits vs VXLAN-GPE (issue 10, items 1-2;
# PROTOCOLS.md A.9, A.9b). VNIs 100-199 are used only here, so the sessions of these fixtures
# are pairwise distinct and can be replayed live together.

def vxlan_header(flags, vni, reserved1=0, reserved2=0):
    """VXLAN/VXLAN-GPE header bytes for flag values scapy's VXLAN layer lays out differently
    (its conditional fields move the VNI for some flag bits)."""
    return Raw(struct.pack(">B3sI", flags, reserved1.to_bytes(3, "big"), vni << 8 | reserved2))


def build_geneve_and_vxlan_port_fixtures(fx):
    f = fx("geneve_basic", "Geneve (UDP 6081, no options, Protocol Type 0x6558) VNI 100, 3 packets -> "
           "<exporter>-geneve-100")
    for k in range(3):
        IN = inner(k)
        p = o4() / UDP(sport=49152 + k, dport=6081) / GENEVE(vni=100, proto=0x6558) / IN
        assert bytes(p)[42:50] == bytes.fromhex("0000655800006400")
        f.add(p, session=EXP + "-geneve-100", encap="geneve", sid=100, frame=IN)

    f = fx("geneve_options", "Geneve options are skipped: 20 bytes of AWS-GWLB-style TLVs (class 0x0108), "
           "12 bytes with the C (critical) bit set, the maximum 63 words; VNI 101. An inner frame that is UDP to "
           "the VXLAN-GPE port 4790 is a nested mirror (written, anomaly nested_mirror)")
    opts = [GeneveOptions(classid=0x0108, type=1, data=b"\x11" * 8), GeneveOptions(classid=0x0108, type=2, data=b"\x22" * 4)]
    IN = inner(0)
    p = o4() / UDP(sport=49152, dport=6081) / GENEVE(vni=101, proto=0x6558, options=opts) / IN
    assert bytes(p)[42:44] == b"\x05\x00"
    f.add(p, session=EXP + "-geneve-101", encap="geneve", sid=101, frame=IN)
    IN = inner(1)
    p = (o4() / UDP(sport=49153, dport=6081)
         / GENEVE(vni=101, proto=0x6558, critical=1, options=[GeneveOptions(classid=0xFFFF, type=0x80, data=b"\x33" * 8)])
         / IN)
    assert bytes(p)[42:44] == b"\x03\x40"
    f.add(p, session=EXP + "-geneve-101", encap="geneve", sid=101, frame=IN)
    IN = inner(2)
    big = [GeneveOptions(classid=0x0108, type=3, data=b"\x44" * 124), GeneveOptions(classid=0x0108, type=4, data=b"\x55" * 120)]
    p = o4() / UDP(sport=49154, dport=6081) / GENEVE(vni=101, proto=0x6558, options=big) / IN
    assert bytes(p)[42] == 63
    f.add(p, session=EXP + "-geneve-101", encap="geneve", sid=101, frame=IN)
    IN = (Ether(src=IMAC_SRC, dst=IMAC_DST) / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1000, dport=4790)
          / VXLAN(flags=0x0C, NextProtocol=3, vni=7) / inner(3))
    p = o4() / UDP(sport=49155, dport=6081) / GENEVE(vni=101, proto=0x6558) / IN
    f.add(p, session=EXP + "-geneve-101", encap="geneve", sid=101, frame=IN, anomalies=("nested_mirror",))

    f = fx("geneve_ipv6", "Geneve over IPv6 (UDP checksum set), VNI 102, with one 8-byte option")
    for k in range(2):
        IN = inner6(k)
        p = (o6() / UDP(sport=49152 + k, dport=6081)
             / GENEVE(vni=102, proto=0x6558, options=[GeneveOptions(classid=0x0102, type=1, data=b"\x66" * 4)]) / IN)
        f.add(p, session=EXP6 + "-geneve-102", encap="geneve", sid=102, frame=IN)

    f = fx("geneve_raw_ip", "Geneve Protocol Type 0x0800 (IPv4) and 0x86DD (IPv6, after an option), VNI 103 -> "
           "raw IP exactly like ERSPAN III FT=2: pcap series <session>-ip (link type 101, the session itself "
           "exists with 0 packets), pcapng interface 1 of the session's file; 0x0800 carrying an IPv6 packet -> "
           "malformed.inner_ip_version")
    f.ng_frames = []
    RAW4 = IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1000, dport=2000) / Raw(b"geneve-ipv4")
    RAW6 = IPv6(src="2001:db8:1::1", dst="2001:db8:1::2") / UDP(sport=1000, dport=2000) / Raw(b"geneve-ipv6")
    p = o4() / UDP(sport=49152, dport=6081) / GENEVE(vni=103, proto=0x0800) / RAW4
    assert bytes(p)[44:46] == b"\x08\x00"
    f.add(p, session=EXP + "-geneve-103", encap="geneve", sid=103, frame=RAW4, raw_ip=True)
    p = (o4() / UDP(sport=49153, dport=6081)
         / GENEVE(vni=103, proto=0x86DD, options=[GeneveOptions(classid=0x0108, type=1, data=b"\x77" * 4)]) / RAW6)
    f.add(p, session=EXP + "-geneve-103", encap="geneve", sid=103, frame=RAW6, raw_ip=True)
    p = o4() / UDP(sport=49154, dport=6081) / GENEVE(vni=103, proto=0x0800) / RAW6
    f.add(p, reason="malformed.inner_ip_version")

    f = fx("geneve_oam", "Geneve with the O (OAM) bit, VNI 104: written, anomaly geneve_oam; then a normal frame")
    IN = inner(0)
    p = o4() / UDP(sport=49152, dport=6081) / GENEVE(vni=104, proto=0x6558, oam=1) / IN
    assert bytes(p)[43] == 0x80
    f.add(p, session=EXP + "-geneve-104", encap="geneve", sid=104, frame=IN, anomalies=("geneve_oam",))
    IN = inner(1)
    f.add(o4() / UDP(sport=49153, dport=6081) / GENEVE(vni=104, proto=0x6558) / IN,
          session=EXP + "-geneve-104", encap="geneve", sid=104, frame=IN)

    f = fx("geneve_malformed", "Geneve that cannot be kept: version 1 -> malformed.geneve_version; Opt Len 63 "
           "words with 40 bytes after the header -> malformed.geneve_truncated; 6 bytes of header -> "
           "malformed.geneve_truncated; Protocol Type 0x894F (NSH) and 0x0806 (ARP) -> "
           "not_mirror.geneve_protocol; one valid frame (VNI 105)")
    p = o4() / UDP(sport=49152, dport=6081) / GENEVE(version=1, vni=105, proto=0x6558) / inner(0)
    assert bytes(p)[42] == 0x40
    f.add(p, reason="malformed.geneve_version")
    p = o4() / UDP(sport=49152, dport=6081) / GENEVE(optionlen=63, vni=105, proto=0x6558) / Raw(b"\0" * 40)
    f.add(p, reason="malformed.geneve_truncated")
    f.add(o4() / UDP(sport=49152, dport=6081) / Raw(b"\0\0\x65\x58\0\0"), reason="malformed.geneve_truncated")
    f.add(o4() / UDP(sport=49152, dport=6081) / GENEVE(vni=105, proto=0x894F) / Raw(b"\0" * 24),
          reason="not_mirror.geneve_protocol")
    f.add(o4() / UDP(sport=49152, dport=6081) / GENEVE(vni=105, proto=0x0806) / Raw(b"\0" * 28),
          reason="not_mirror.geneve_protocol")
    IN = inner(5)
    f.add(o4() / UDP(sport=49152, dport=6081) / GENEVE(vni=105, proto=0x6558) / IN,
          session=EXP + "-geneve-105", encap="geneve", sid=105, frame=IN)

    f = fx("vxlan_reserved_bits", "VXLAN on the VXLAN port 4789 checks only the I flag (RFC 7348; Linux 6.14 "
           "user-defined reserved bits): flags 0x0C with byte 3 = 1 (GPE-looking, IPv4) carrying Ethernet, every "
           "flag bit and every reserved byte set, VNI 110 -> written, anomaly vxlan_reserved_bits; flags 0x00 -> "
           "malformed.vxlan_flags")
    IN = inner(0)
    p = o4() / UDP(sport=49152, dport=4789) / VXLAN(flags=0x0C, NextProtocol=1, vni=110) / IN
    assert bytes(p)[42:50] == bytes.fromhex("0c00000100006e00")
    f.add(p, session=EXP + "-vxlan-110", encap="vxlan", sid=110, frame=IN, anomalies=("vxlan_reserved_bits",))
    IN = inner(1)
    p = o4() / UDP(sport=49153, dport=4789) / vxlan_header(0xFF, 110, 0xABCDEF, 0x5A) / IN
    assert bytes(p)[42:50] == bytes.fromhex("ffabcdef00006e5a")
    f.add(p, session=EXP + "-vxlan-110", encap="vxlan", sid=110, frame=IN, anomalies=("vxlan_reserved_bits",))
    IN = inner(2)
    f.add(o4() / UDP(sport=49154, dport=4789) / VXLAN(flags=0x08, vni=110) / IN,
          session=EXP + "-vxlan-110", encap="vxlan", sid=110, frame=IN)
    p = o4() / UDP(sport=49155, dport=4789) / vxlan_header(0x04, 110) / inner(3)
    f.add(p, reason="malformed.vxlan_flags")

    f = fx("vxlan_gpe", "VXLAN-GPE only on the GPE port 4790: next protocol 3 (Ethernet) VNI 120 and P clear "
           "(plain VXLAN layout, Ethernet) -> <exporter>-vxlan-120; next protocol 1 (IPv4) and 2 (IPv6) VNI 121 -> "
           "raw IP (pcap series -ip, link type 101); an Ethernet frame carrying UDP to the Geneve port -> "
           "nested_mirror; next protocol 4 (NSH) -> malformed.vxlan_gpe_protocol; Ver 1 -> malformed.vxlan_flags; "
           "GPE reserved byte set -> anomaly vxlan_reserved_bits")
    f.ng_frames = []
    IN = inner(0)
    p = o4() / UDP(sport=49152, dport=4790) / VXLAN(flags=0x0C, NextProtocol=3, vni=120) / IN
    assert bytes(p)[42:50] == bytes.fromhex("0c00000300007800")
    f.add(p, session=EXP + "-vxlan-120", encap="vxlan", sid=120, frame=IN)
    IN = inner(1)
    p = o4() / UDP(sport=49153, dport=4790) / VXLAN(flags=0x08, vni=120) / IN
    f.add(p, session=EXP + "-vxlan-120", encap="vxlan", sid=120, frame=IN)
    IN = inner(2)
    p = o4() / UDP(sport=49154, dport=4790) / vxlan_header(0x0C, 120, 0x000103, 0x01) / IN
    assert bytes(p)[42:50] == bytes.fromhex("0c00010300007801")
    f.add(p, session=EXP + "-vxlan-120", encap="vxlan", sid=120, frame=IN, anomalies=("vxlan_reserved_bits",))
    IN = (Ether(src=IMAC_SRC, dst=IMAC_DST) / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1000, dport=6081)
          / GENEVE(vni=9, proto=0x6558) / inner(3))
    f.add(o4() / UDP(sport=49155, dport=4790) / VXLAN(flags=0x0C, NextProtocol=3, vni=120) / IN,
          session=EXP + "-vxlan-120", encap="vxlan", sid=120, frame=IN, anomalies=("nested_mirror",))
    RAW4 = IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1000, dport=2000) / Raw(b"gpe-ipv4")
    RAW6 = IPv6(src="2001:db8:1::1", dst="2001:db8:1::2") / UDP(sport=1000, dport=2000) / Raw(b"gpe-ipv6")
    f.add(o4() / UDP(sport=49156, dport=4790) / VXLAN(flags=0x0C, NextProtocol=1, vni=121) / RAW4,
          session=EXP + "-vxlan-121", encap="vxlan", sid=121, frame=RAW4, raw_ip=True)
    f.add(o4() / UDP(sport=49157, dport=4790) / VXLAN(flags=0x0C, NextProtocol=2, vni=121) / RAW6,
          session=EXP + "-vxlan-121", encap="vxlan", sid=121, frame=RAW6, raw_ip=True)
    f.add(o4() / UDP(sport=49158, dport=4790) / VXLAN(flags=0x0C, NextProtocol=4, vni=122) / Raw(b"\0" * 24),
          reason="malformed.vxlan_gpe_protocol")
    f.add(o4() / UDP(sport=49159, dport=4790) / vxlan_header(0x1C, 122, 0x000003) / inner(4),
          reason="malformed.vxlan_flags")

    f = fx("geneve_ports", "geneve_ports = [6082, 4790], vxlan_gpe_ports = []: Geneve on 6082 and on 4790 -> one "
           "session <exporter>-geneve-130 (the port is not part of the key); Geneve on 6081 (no longer configured) "
           "-> not_mirror.udp_port", options={"geneve_ports": [6082, 4790], "vxlan_gpe_ports": []})
    for k, port in enumerate([6082, 4790]):
        IN = inner(k)
        f.add(o4() / UDP(sport=49152 + k, dport=port) / GENEVE(vni=130, proto=0x6558) / IN,
              session=EXP + "-geneve-130", encap="geneve", sid=130, frame=IN)
    f.add(o4() / UDP(sport=49154, dport=6081) / GENEVE(vni=130, proto=0x6558) / inner(2), reason="not_mirror.udp_port")


# capture-file inputs (issue 10: multi-interface pcapng, Linux cooked captures, raw IP,
# compressed inputs). The packets are scapy's; the containers around them are written here
# (pcapng block by block, as scapy 2.8.0 writes one interface per file only).

INPUT_BASE = D("1700000000")                 # whole milliseconds: exact in every resolution used


def pcapng_block(order, block_type, body):
    """One pcapng block in byte order `order` ('<' or '>'): type, total length, body padded to
    32 bits, total length."""
    body = body + b"\0" * (-len(body) % 4)
    total = 12 + len(body)
    return struct.pack(order + "II", block_type, total) + body + struct.pack(order + "I", total)


def pcapng_option(order, code, value):
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


class MultiInterfacePcapNg(Fixture):
    """A pcapng file like `dumpcap -i eth0 -i any -i tun0` writes, plus what other writers do:
    several sections (the second big-endian), interfaces of different link types, each with
    its own if_tsresol (10^-9, 10^-6 with if_tsoffset, 2^-20, 10^-3), Enhanced, Simple and
    obsolete Packet Blocks, and blocks to skip (Interface Statistics, custom)."""

    def __init__(self, name, description):
        super().__init__(name, description, pcapng=True)
        self.sections = []      # [(order, [(linktype, tsresol or None, tsoffset)])]
        self.placement = []     # per record: (section, interface, block kind, timestamp units)
        self.times = []         # per record: the timestamp the collector must compute

    def open_section(self, order, interfaces):
        self.sections.append((order, interfaces))

    def time(self, i):
        return self.times[i]

    def add_on(self, interface, t, pkt, kind="epb", **kw):
        section = len(self.sections) - 1
        linktype, tsresol, tsoffset = self.sections[section][1][interface]
        if tsresol is None:
            tsresol = 6
        seconds = t - tsoffset
        if tsresol & 0x80:
            units = int(seconds * 2 ** (tsresol & 0x7F))
            effective = D(units * 10 ** 9 // 2 ** (tsresol & 0x7F)) / 10 ** 9 + tsoffset
        else:
            units = int(seconds * 10 ** tsresol)
            assert D(units) / 10 ** tsresol == seconds, "time not exact in this resolution"
            effective = t
        if kind == "spb":               # no timestamp: the last one seen
            effective = self.times[-1]
        self.placement.append((section, interface, kind, units))
        self.times.append(effective)
        return self.add(pkt, **kw)

    def write_input(self, path):
        out = bytearray()
        records = iter(enumerate(self.records))
        for section, (order, interfaces) in enumerate(self.sections):
            shb = struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1)
            shb += pcapng_option(order, 4, b"generate.py") + struct.pack(order + "HH", 0, 0)
            out += pcapng_block(order, 0x0A0D0D0A, shb)
            for linktype, tsresol, tsoffset in interfaces:
                idb = struct.pack(order + "HHI", linktype, 0, 262144)
                if tsresol is not None:
                    idb += pcapng_option(order, 9, bytes([tsresol]))
                if tsoffset:
                    idb += pcapng_option(order, 14, struct.pack(order + "q", tsoffset))
                idb += struct.pack(order + "HH", 0, 0)
                out += pcapng_block(order, 1, idb)
            # A block every reader skips: an Interface Statistics Block.
            out += pcapng_block(order, 5, struct.pack(order + "III", 0, 0, 0) + struct.pack(order + "HH", 0, 0))
            for index, (data, wirelen) in enumerate(self.records):
                record_section, interface, kind, units = self.placement[index]
                if record_section != section:
                    continue
                high, low = units >> 32, units & 0xFFFFFFFF
                if kind == "epb":
                    body = struct.pack(order + "IIIII", interface, high, low, len(data), wirelen) + data
                    out += pcapng_block(order, 6, body)
                elif kind == "pb":      # obsolete Packet Block: 16-bit interface, drops count
                    body = struct.pack(order + "HHIIII", interface, 0, high, low, len(data), wirelen) + data
                    out += pcapng_block(order, 2, body)
                else:                   # Simple Packet Block: interface 0, original length only
                    assert interface == 0 and len(data) == wirelen
                    out += pcapng_block(order, 3, struct.pack(order + "I", wirelen) + data)
            # A custom block (copyable, PEN 32473 = documentation) between sections.
            out += pcapng_block(order, 0x00000BAD, struct.pack(order + "I", 32473) + b"skip me")
        with open(path, "wb") as f:
            f.write(out)


class LinkTypeFixture(Fixture):
    """A classic pcap whose records are of `linktype` (113 SLL, 276 SLL2, 101 raw IP)."""

    def __init__(self, name, description, linktype, section="fixtures"):
        super().__init__(name, description, section=section)
        self.linktype = linktype

    def write_input(self, path):
        write_records(path, [(rec, self.time(i), wl) for i, (rec, wl) in enumerate(self.records)],
                      linktype=self.linktype)


class CompressedCopy(Fixture):
    """The records of `source`, written in its format, compressed in two parts (two gzip
    members / two zstd frames, as `cat a.gz b.gz` or a split archive gives); the name keeps the
    name of an uncompressed capture, so only the magic can tell."""

    def __init__(self, name, source, compression):
        super().__init__(name, source.description + " [same records, %s-compressed in two parts]" % compression,
                         options=source.options, pcapng=source.pcapng)
        self.source = source
        self.compression = compression
        # Not `.gz`/`.zst`: only the magic tells. (Not `.pcap` either: tests that read every
        # `*.pcap` fixture as classic pcap would take it for one.)
        self.input = name + (".pcapng" if source.pcapng else ".cap")
        self.records = list(source.records)
        self.sessions = source.sessions
        self.reasons = dict(source.reasons)
        self.anomalies = dict(source.anomalies)
        self.seq_expect = dict(source.seq_expect)

    def write_input(self, path):
        import gzip
        import subprocess
        write_records(path + ".plain", [(rec, self.time(i), wl) for i, (rec, wl) in enumerate(self.records)],
                      self.pcapng)
        with open(path + ".plain", "rb") as f:
            plain = f.read()
        os.remove(path + ".plain")
        half = len(plain) // 2
        parts = (plain[:half], plain[half:])
        if self.compression == "gzip":
            data = b"".join(gzip.compress(part, mtime=0) for part in parts)
        else:
            data = b"".join(subprocess.run(["zstd", "-q", "-c", "--no-progress"], input=part, check=True,
                                           stdout=subprocess.PIPE).stdout for part in parts)
        with open(path, "wb") as f:
            f.write(data)


def build_input_fixtures(F):
    from scapy.layers.l2 import CookedLinux, CookedLinuxV2
    R = "fixtures_reassembly"

    def add(fixture):
        F.append(fixture)
        return fixture

    def e2(f, sid, k, seq, link=None, exporter=EXP, **kw):
        """A Type II frame of session `sid` behind the link header `link` (None: Ethernet)."""
        IN = inner(k)
        ip_gre = IP(src=exporter, dst=COLL) / G(seq) / ERSPAN_II(session_id=sid) / IN
        pkt = (o4(src=exporter) / G(seq) / ERSPAN_II(session_id=sid) / IN) if link is None else link / ip_gre
        return dict(pkt=pkt, session=n_erspan(exporter, sid), encap="erspan2", sid=sid, frame=IN, seq=seq, **kw)

    # ---- several interfaces of different link types, several sections, every resolution
    f = add(MultiInterfacePcapNg("inputs_multi_interface", "pcapng with two sections (little- then big-endian): "
            "interfaces Ethernet (if_tsresol 9), Linux cooked v2 (default 10^-6, if_tsoffset 1000 s), raw IP "
            "(if_tsresol 2^-20) and USER0 (147, counted not_mirror.link_type), then Ethernet (if_tsresol 3) with a "
            "Simple and an obsolete Packet Block; an Interface Statistics Block and a custom block skipped. Sessions "
            "11 (Ethernet and SLL2 records) and 12 (raw IP and the second section); each frame carries its "
            "record's time in its interface's resolution"))
    f.open_section("<", [(1, 9, 0), (276, None, 1000), (101, 0x80 | 20, 0), (147, 3, 0)])
    t = lambda i: INPUT_BASE + i * STEP + D("0.000000123") * (i == 0)   # noqa: E731
    r = e2(f, 11, 0, 0)
    f.add_on(0, t(0), r.pop("pkt"), **r)
    r = e2(f, 11, 1, 1, link=CookedLinuxV2(proto=0x0800))
    f.add_on(1, t(1), r.pop("pkt"), **r)
    IN = inner(2)
    f.add_on(2, t(2), IP(src=EXP, dst=COLL) / G(0) / ERSPAN_II(session_id=12) / IN, session=n_erspan(EXP, 12),
             encap="erspan2", sid=12, frame=IN, seq=0)
    f.add_on(3, t(3), b"\x00" * 40, reason="not_mirror.link_type")
    r = e2(f, 11, 4, 2)
    f.add_on(0, t(4), r.pop("pkt"), kind="pb", **r)
    f.open_section(">", [(1, 3, 0)])
    r = e2(f, 12, 5, 1)
    f.add_on(0, t(5), r.pop("pkt"), **r)
    r = e2(f, 12, 6, 2)
    f.add_on(0, t(6), r.pop("pkt"), kind="spb", **r)

    # ---- Linux cooked captures (tcpdump -i any) with VLAN tags in the cooked payload
    for name, linktype, link in (("inputs_sll_vlan", 113, lambda proto: CookedLinux(pkttype=0, proto=proto)),
                                 ("inputs_sll2_vlan", 276, lambda proto: CookedLinuxV2(proto=proto))):
        f = add(LinkTypeFixture(name, "LINKTYPE %d (Linux cooked): ERSPAN II untagged, behind an 802.1Q tag, "
                                "behind 802.1ad + 802.1Q (QinQ), QinQ as Linux 6.x reports it (protocol IPv4, the inner tag left "
                                "in the data) and an ARP frame (not_mirror.non_ip)" % linktype,
                                linktype))
        r = e2(f, 21, 0, 0, link=link(0x0800))
        f.add(r.pop("pkt"), **r)
        r = e2(f, 21, 1, 1, link=link(0x8100) / Dot1Q(vlan=7, type=0x0800))
        f.add(r.pop("pkt"), **r)
        r = e2(f, 21, 2, 2, link=link(0x88A8) / Dot1AD(vlan=8, type=0x8100) / Dot1Q(vlan=9, type=0x0800))
        f.add(r.pop("pkt"), **r)
        # As Linux 6.x reports 802.1ad + 802.1Q to AF_PACKET SOCK_DGRAM (tcpdump -i any): the
        # outer tag offloaded and gone, the protocol field already IPv4, the inner tag's TCI and
        # encapsulated protocol still in front of the IP header.
        r = e2(f, 21, 3, 3, link=link(0x0800) / Raw(struct.pack(">HH", 20, 0x0800)))
        f.add(r.pop("pkt"), **r)
        f.add(link(0x0806) / ARP(psrc="192.0.2.1", pdst="192.0.2.2"), reason="not_mirror.non_ip")

    # ---- fragments inside cooked and raw-IP captures: reassembled as for Ethernet
    def frag_extra(f, fragments, datagrams, merged):
        f.extra["reassembly"] = {"fragments": fragments, "datagrams_reassembled": datagrams,
                                 "fragments_merged": merged, "overlapping_datagrams": 0, "incomplete_datagrams": 0}
        f.extra["without_reassembly"] = {"packets_written": 1, "reasons": {"malformed.ip_fragment": fragments}}

    def big_inner(k):
        IN = inner(k, extra=1472 - 9)
        assert len(IN) == 1514
        return IN

    f = add(LinkTypeFixture("inputs_sll_fragments", "Linux cooked v1 behind an 802.1Q tag: a 1514-byte Type II "
                            "frame in 2 IPv4 fragments (reassembled), then an unfragmented one", 113, section=R))
    IN = big_inner(10)
    ip = IP(src=EXP, dst=COLL, id=0x2001) / G(0) / ERSPAN_II(session_id=31) / IN
    frs = fragment(ip, fragsize=1480)
    assert len(frs) == 2
    link = CookedLinux(pkttype=0, proto=0x8100) / Dot1Q(vlan=7, type=0x0800)
    f.add(link / frs[0])
    f.add(link / frs[1], session=n_erspan(EXP, 31), encap="erspan2", sid=31, frame=IN, seq=0, check_embedded=False)
    r = e2(f, 31, 11, 1, link=CookedLinux(pkttype=0, proto=0x0800))
    f.add(r.pop("pkt"), **r)
    frag_extra(f, 2, 1, 1)

    f = add(LinkTypeFixture("inputs_sll2_fragments", "Linux cooked v2: a 1514-byte Type II frame over IPv6 in 2 "
                            "fragments (fragment6, 1280), reassembled, then an unfragmented IPv4 one", 276,
                            section=R))
    IN = big_inner(12)
    p = IPv6(src=EXP6, dst=COLL6) / IPv6ExtHdrFragment(id=0x3005) / G(0) / ERSPAN_II(session_id=32) / IN
    frs = fragment6(p, 1280)
    assert len(frs) == 2
    f.add(CookedLinuxV2(proto=0x86DD) / frs[0])
    f.add(CookedLinuxV2(proto=0x86DD) / frs[1], session=n_erspan(EXP6, 32), encap="erspan2", sid=32, frame=IN,
          seq=0, check_embedded=False)
    r = e2(f, 33, 13, 0, link=CookedLinuxV2(proto=0x0800))
    f.add(r.pop("pkt"), **r)
    frag_extra(f, 2, 1, 1)

    f = add(LinkTypeFixture("inputs_rawip_fragments", "LINKTYPE_RAW (101): a 1514-byte Type II frame in 2 IPv4 "
                            "fragments in reverse order (reassembled), then an unfragmented one", 101, section=R))
    IN = big_inner(14)
    ip = IP(src=EXP, dst=COLL, id=0x2002) / G(0) / ERSPAN_II(session_id=34) / IN
    frs = fragment(ip, fragsize=1480)
    f.add(frs[1])
    f.add(frs[0], session=n_erspan(EXP, 34), encap="erspan2", sid=34, frame=IN, seq=0, check_embedded=False)
    IN = inner(15)
    f.add(IP(src=EXP, dst=COLL) / G(1) / ERSPAN_II(session_id=34) / IN, session=n_erspan(EXP, 34), encap="erspan2",
          sid=34, frame=IN, seq=1)
    frag_extra(f, 2, 1, 1)

    # ---- compressed inputs, told by their magic
    mixed = next(x for x in F if x.name == "mixed_sessions")
    mixed_ng = next(x for x in F if x.name == "mixed_sessions_pcapng")
    add(CompressedCopy("inputs_gzip_members", mixed, "gzip"))
    add(CompressedCopy("inputs_zstd_frames", mixed_ng, "zstd"))


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    os.makedirs(outdir, exist_ok=True)
    fixtures = build_fixtures()
    names = [f.name for f in fixtures]
    assert len(set(names)) == len(names), "duplicate fixture names"
    manifest = {"scapy": scapy.__version__, "time_base": str(BASE_TIME), "time_step": str(STEP),
                "fixtures": {}, "fixtures_reassembly": {}}
    for f in fixtures:
        manifest[f.section][f.name] = f.manifest()
        write_fixture(f, outdir)
    with open(os.path.join(outdir, "expected.json"), "w") as mf:
        json.dump(manifest, mf, indent=1, sort_keys=False)
        mf.write("\n")
    n = sum(len(v) for k, v in manifest.items() if k.startswith("fixtures"))
    sys.stderr.write("generate.py: %d fixtures written to %s\n" % (n, outdir))


if __name__ == "__main__":
    main()
