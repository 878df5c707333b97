#!/usr/bin/python3
"""Writes the seed inputs of the vhost-user and service-request fuzzers.

Usage: make_seeds.py PB_DIR   (PB_DIR holds display_pb2 generated from
proto/vgpu/display/v1/display.proto). Seeds are the well-formed sequences
and requests a real peer sends, plus a few classic malformations; the
fuzzers grow the corpora from them.
"""
import os
import struct
import sys

sys.path.insert(0, sys.argv[1])
from vgpu.display.v1 import display_pb2 as pb  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

# vhost-user requests and flags
GET_FEATURES, SET_FEATURES, SET_OWNER, SET_MEM_TABLE = 1, 2, 3, 5
SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE, GET_VRING_BASE = 8, 9, 10, 11
SET_VRING_KICK, SET_VRING_CALL = 12, 13
GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES = 15, 16
SET_VRING_ENABLE, GET_CONFIG, GPU_SET_SOCKET, RESET_DEVICE = 18, 24, 33, 34
VERSION, NEED_REPLY = 1, 1 << 3
USER = 0x7F0000000000


def msg(request, payload=b"", flags=VERSION):
    return struct.pack("<III", request, flags, len(payload)) + payload


def record(data, fds=0, kind=0, pages=16):
    return bytes([fds | (kind << 2), pages]) + struct.pack("<H", len(data)) + data


def u64(v):
    return struct.pack("<Q", v)


def handshake():
    return (record(msg(GET_FEATURES)) +
            record(msg(SET_FEATURES, u64((1 << 32) | (1 << 30) | 0xF))) +
            record(msg(SET_OWNER)) +
            record(msg(GET_PROTOCOL_FEATURES)) +
            record(msg(SET_PROTOCOL_FEATURES, u64((1 << 3) | (1 << 9) | (1 << 13)))) +
            record(msg(GET_CONFIG, struct.pack("<III", 0, 24, 0) + bytes(24))))


def mem_table(pages=16, kind=0, declared=None):
    size = (pages + 1) * 4096 if declared is None else declared
    table = struct.pack("<II", 1, 0) + struct.pack("<QQQQ", 0, size, USER, 0)
    return record(msg(SET_MEM_TABLE, table), fds=1, kind=kind, pages=pages)


def ring(index, num=64):
    desc, avail, used = 0x1000, 0x1000 + 16 * num, 0x3000
    out = record(msg(SET_VRING_NUM, struct.pack("<II", index, num)))
    out += record(msg(SET_VRING_ADDR, struct.pack("<IIQQQQ", index, 0, USER + desc,
                                                  USER + used, USER + avail, 0)))
    out += record(msg(SET_VRING_BASE, struct.pack("<II", index, 0)))
    out += record(msg(SET_VRING_CALL, u64(index)), fds=1, kind=2)
    out += record(msg(SET_VRING_KICK, u64(index)), fds=1, kind=2)
    out += record(msg(SET_VRING_ENABLE, struct.pack("<II", index, 1)))
    return out


def write(folder, name, data):
    path = os.path.join(HERE, "corpus", folder)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, name), "wb") as f:
        f.write(data)


vu = "vhost_user_message"
write(vu, "handshake", handshake())
write(vu, "running_device", handshake() + mem_table() + ring(0) + ring(1))
write(vu, "reset_and_restart", handshake() + mem_table() + ring(0) +
      record(msg(GET_VRING_BASE, struct.pack("<II", 0, 0))) +
      record(msg(RESET_DEVICE)) + ring(0))
write(vu, "short_ram_file", handshake() + mem_table(kind=1))
write(vu, "ram_not_a_file", handshake() + mem_table(kind=3))
write(vu, "declared_past_the_file", handshake() + mem_table(pages=4, declared=64 << 20))
write(vu, "truncated_header", record(msg(GET_FEATURES)[:7]))
write(vu, "payload_longer_than_sent", record(struct.pack("<III", SET_MEM_TABLE, 1, 200) + bytes(40)))
write(vu, "display_socket", handshake() + record(msg(GPU_SET_SOCKET), fds=1, kind=2))

# input_device: u8 flags, u16 n, n bytes of guest RAM, then operations.
def input_ram(event_buffers=4, led=True):
    ram = bytearray(0x2008)
    for i in range(event_buffers):  # event queue: 8-byte writable buffers
        struct.pack_into("<QIHH", ram, 16 * i, 0x1000 + 8 * i, 8, 2, 0)
    struct.pack_into("<HH4H", ram, 0x100, 0, event_buffers, 0, 1, 2, 3)
    if led:  # status queue: one CapsLock event
        struct.pack_into("<QIHH", ram, 0x400, 0x2000, 8, 0, 0)
        struct.pack_into("<HHH", ram, 0x500, 0, 1, 0)
        struct.pack_into("<HHi", ram, 0x2000, 0x11, 1, 1)
    return bytes(ram)


def input_seed(flags, ram, ops):
    return bytes([flags]) + struct.pack("<H", len(ram)) + ram + ops


def key(code, value):
    return bytes([2, 1]) + bytes([1]) + struct.pack("<HI", code, value)


def config(select, subsel):
    return bytes([0, 0, 2, select, subsel]) + bytes([1]) + struct.pack("<HH", 136, 0)


inp = "input_device"
write(inp, "keys_through_four_buffers",
      input_seed(1, input_ram(), key(30, 1) + key(30, 0) + bytes([3, 4])))
write(inp, "probe_name_and_keys",
      input_seed(0, input_ram(), config(1, 0) + config(0x11, 1) + config(0x12, 0)))
write(inp, "tablet_motion_then_reset",
      input_seed(1 | (1 << 2), input_ram(),
                 bytes([2, 2, 3]) + struct.pack("<HI", 0, 100) + bytes([3]) +
                 struct.pack("<HI", 1, 200) + bytes([3, 6, 7, 3])))
write(inp, "ring_rewritten_under_the_device",
      input_seed(0, input_ram(), key(30, 1) + bytes([5]) + struct.pack("<H", 0x102) +
                 bytes([2, 0xff, 0xff, 3])))

sr = "service_request"
write(sr, "screenshot_now", b"\x00" + pb.GetScreenshotRequest(format=pb.IMAGE_FORMAT_PNG).SerializeToString())
write(sr, "screenshot_region_jpeg", b"\x00" + pb.GetScreenshotRequest(
    format=pb.IMAGE_FORMAT_JPEG, jpeg_quality=40, jpeg_subsampling=pb.JPEG_SUBSAMPLING_444,
    region=pb.Rect(x=10, y=5, width=50, height=30)).SerializeToString())
write(sr, "screenshot_raw_next_flush", b"\x00" + pb.GetScreenshotRequest(
    format=pb.IMAGE_FORMAT_RAW_BGRX, next_flush=True, timeout_ms=100).SerializeToString())
write(sr, "screenshot_zstd_stable", b"\x00" + pb.GetScreenshotRequest(
    format=pb.IMAGE_FORMAT_ZSTD_BGRX, stable_for_ms=500,
    region=pb.Rect(x=90, y=60, width=4000, height=4000)).SerializeToString())
write(sr, "watch_raw", b"\x01" + pb.WatchFramesRequest(format=pb.IMAGE_FORMAT_RAW_BGRX).SerializeToString())
write(sr, "watch_jpeg_refresh", b"\x01" + pb.WatchFramesRequest(
    format=pb.IMAGE_FORMAT_JPEG, jpeg_quality=60, max_fps=30, lossless_refresh_ms=200,
    refresh_format=pb.IMAGE_FORMAT_ZSTD_BGRX).SerializeToString())
write(sr, "subscribe_jpeg_cursor", b"\x02" + pb.Subscribe(
    formats=[pb.IMAGE_FORMAT_JPEG, pb.IMAGE_FORMAT_ZSTD_BGRX], jpeg_quality=80, max_in_flight=1,
    include_cursor=True).SerializeToString())
write(sr, "subscribe_rgbx", b"\x02" + pb.Subscribe(
    formats=[pb.IMAGE_FORMAT_RAW_RGBX], max_fps=5).SerializeToString())
