#!/usr/bin/python3
"""A viewer that stays attached through a soak: WatchFrames (raw BGRX) from
vgpu-displayd, keeping its own copy of the screen. On SIGTERM it writes the
copy as a binary PPM and prints how many modes and updates it saw.

Usage: soak_viewer.py ADDRESS PROTO_DIR OUT.ppm
"""
import os
import signal
import struct
import sys
import tempfile
import threading

address, proto_dir, out = sys.argv[1:4]
# Next to OUT (the soak's scratch folder, removed with it).
stubs = tempfile.mkdtemp(prefix="pb-", dir=os.path.dirname(os.path.abspath(out)))
from grpc_tools import protoc  # noqa: E402
if protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={stubs}", f"--grpc_python_out={stubs}",
                os.path.join(proto_dir, "vgpu/display/v1/display.proto")]) != 0:
    sys.exit("protoc failed")
sys.path.insert(0, stubs)
import grpc  # noqa: E402
from vgpu.display.v1 import display_pb2 as pb, display_pb2_grpc as pbg  # noqa: E402

lock = threading.Lock()
state = {"width": 0, "height": 0, "screen": bytearray(), "modes": 0, "updates": 0, "error": ""}


def watch():
    channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 64 << 20)])
    stream = pbg.DisplayStub(channel).WatchFrames(pb.WatchFramesRequest(format=pb.IMAGE_FORMAT_RAW_BGRX))
    try:
        for event in stream:
            with lock:
                if event.HasField("mode_changed"):
                    m = event.mode_changed
                    state["width"], state["height"] = (m.width, m.height) if m.enabled else (0, 0)
                    state["screen"] = bytearray(state["width"] * state["height"] * 4)
                    state["modes"] += 1
                    continue
                w = state["width"]
                for rect in event.update.rects:
                    r = rect.rect
                    if r.x + r.width > w or r.y + r.height > state["height"]:
                        state["error"] = "rect outside the screen"
                        continue
                    row = r.width * 4
                    for y in range(r.height):
                        start = ((r.y + y) * w + r.x) * 4
                        state["screen"][start:start + row] = (
                            struct.pack("<I", rect.solid_bgrx) * r.width if rect.solid
                            else rect.data[y * row:(y + 1) * row])
                if event.update.end_of_update:
                    state["updates"] += 1
    except grpc.RpcError as e:
        with lock:
            state["error"] = "stream ended: %s" % e.code().name


def finish(*_):
    with lock:
        w, h, screen = state["width"], state["height"], state["screen"]
        with open(out, "wb") as f:
            f.write(b"P6\n%d %d\n255\n" % (w, h))
            f.write(bytes(b for i in range(0, len(screen), 4) for b in (screen[i + 2], screen[i + 1], screen[i])))
        print("modes %d updates %d %s" % (state["modes"], state["updates"], state["error"]), flush=True)
    os._exit(0)


signal.signal(signal.SIGTERM, finish)
threading.Thread(target=watch, daemon=True).start()
signal.pause()
