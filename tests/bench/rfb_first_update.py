#!/usr/bin/python3
"""The first update a fresh VNC viewer gets, in bytes: the whole screen.

Usage: rfb_first_update.py TOOLS_DIR SERVER QUALITY_LEVEL JSON_OUT

Connects as ../shared/tools/rfb_probe.py's noVNC-like Tight client at Tight
quality level QUALITY_LEVEL (6 = JPEG 60 in QEMU), asks for the whole screen
once and writes {"first_update_bytes", "rects", "encodings", "tight_kinds"}
as JSON (RFB bytes, as rfb_probe counts them).
"""
import json
import sys

QUIET = 0.5


def main():
    tools, server, level, out = sys.argv[1:5]
    sys.path.insert(0, tools)
    import rfb_probe

    host, port = rfb_probe.parse_target(server)
    client = rfb_probe.RFBClient(
        host, port, decode=False,
        encodings=rfb_probe.parse_encodings("novnc", int(level), None))
    client.connect()
    client.request(incremental=False)
    # The screen may come in several updates (QEMU sends the new size
    # first): every update until none came for QUIET seconds.
    updates = []
    update = client.wait_update(20)
    while update is not None:
        updates.append(update)
        client.request(incremental=True)
        update = client.wait_update(QUIET)
    if not updates:
        sys.exit("no first update within 20 s")
    encodings, kinds = {}, {}
    for u in updates:
        for e, n in u.encodings.items():
            encodings[rfb_probe.enc_name(e)] = encodings.get(rfb_probe.enc_name(e), 0) + n
        for k, n in u.tight_kinds.items():
            kinds[k] = kinds.get(k, 0) + n
    result = {"first_update_bytes": sum(u.nbytes for u in updates),
              "updates": len(updates),
              "each_update_bytes": [u.nbytes for u in updates],
              "rects": sum(u.nrects for u in updates),
              "encodings": encodings, "tight_kinds": kinds}
    client.close()
    with open(out, "w") as f:
        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
