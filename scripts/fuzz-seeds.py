#!/usr/bin/env python3
"""Turns the fixture pcaps into fuzz inputs for Fuzz/FuzzDecodePath.swift.

    python3 scripts/fuzz-seeds.py Tests/Fixtures OUTDIR

Every classic pcap fixture (Tests/Fixtures/*.pcap, not the *.expected.pcap outputs) becomes two
inputs, all its records in order as frames of one input (so one input carries a whole session
with its GRE sequence numbers):

    OUTDIR/<fixture>.decode   selector = configuration, decoders and session model only
    OUTDIR/<fixture>.pipeline selector | 0x80: also through Pipeline + Storage

and every input fixture under 8 KiB (pcap, pcapng, gzip/zstd) becomes, as it is,

    OUTDIR/<file>.file        selector | 0x40: the capture-file readers (FuzzInput.swift)

Input format (keep in step with Tests/CollectorCoreTests/FuzzInput.swift, which the fuzz target
and FuzzRegressionTests share):

    input    := selector:u8 frame*
    frame    := length:u16be wireExtra:u16be meta:u8 bytes[length]

The selector's configuration follows the fixture's options in expected.json: RSPAN VLANs or
extra VXLAN ports -> 1, an exporter allow-list -> 3, otherwise 0. wireExtra is the record's
orig_len - caplen (snap truncation); meta is 0 (Ethernet, no offloaded tag, interface 0,
+1 us per frame). Standard library only.
"""

import json
import os
import struct
import sys


def pcap_records(path):
    with open(path, "rb") as handle:
        data = handle.read()
    if len(data) < 24:
        return None
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        return None  # pcapng: the same records exist as .pcap
    linktype = struct.unpack(endian + "I", data[20:24])[0] & 0x03FFFFFF
    if linktype != 1:
        return None
    records = []
    offset = 24
    while offset + 16 <= len(data):
        _, _, caplen, origlen = struct.unpack(endian + "IIII", data[offset:offset + 16])
        offset += 16
        records.append((data[offset:offset + caplen], max(origlen, caplen)))
        offset += caplen
    return records


def selector_for(options):
    if options.get("allow_exporters"):
        return 3
    if options.get("rspan_vlans") or any(port != 4789 for port in options.get("vxlan_ports", [4789])):
        return 1
    return 0


def encode(selector, records):
    out = bytearray([selector])
    for data, origlen in records:
        data = data[:0xFFFF]
        out += struct.pack(">HHB", len(data), min(origlen - len(data), 0xFFFF), 0)
        out += data
    return bytes(out)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    fixtures, outdir = sys.argv[1], sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    options = {}
    try:
        with open(os.path.join(fixtures, "expected.json")) as handle:
            manifest = json.load(handle)
        for group in ("fixtures", "fixtures_reassembly"):
            for name, fixture in manifest.get(group, {}).items():
                options[fixture.get("input", name + ".pcap")] = fixture.get("options", {})
    except (OSError, ValueError):
        pass
    written = 0
    for name in sorted(os.listdir(fixtures)):
        if not name.endswith(".pcap") or name.endswith(".expected.pcap"):
            continue
        records = pcap_records(os.path.join(fixtures, name))
        if not records:
            continue
        selector = selector_for(options.get(name, {}))
        stem = name[:-len(".pcap")]
        for suffix, value in (("decode", selector), ("pipeline", selector | 0x80)):
            with open(os.path.join(outdir, stem + "." + suffix), "wb") as handle:
                handle.write(encode(value, records))
            written += 1
    # Capture files as they are (selector bit 6): every input fixture small enough for the
    # fuzzer's length limit, classic, pcapng and compressed alike.
    for name in sorted(os.listdir(fixtures)):
        if name.endswith(".expected.pcap") or not name.endswith((".pcap", ".pcapng", ".cap")):
            continue
        with open(os.path.join(fixtures, name), "rb") as handle:
            data = handle.read()
        if len(data) >= 8191:
            continue
        selector = selector_for(options.get(name, {})) | 0x40
        with open(os.path.join(outdir, name.replace(".", "_") + ".file"), "wb") as handle:
            handle.write(bytes([selector]) + data)
        written += 1
    print(f"{written} seed inputs in {outdir}")


if __name__ == "__main__":
    main()
