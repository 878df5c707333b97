"""A gRPC client not written in C++: Python (Debian's python3-grpcio) against
vgpu-displayd. Stubs are generated from the project's proto at test time.

Usage: python_client_test.py VGPU_DISPLAYD PROTO_DIR
Starts the daemon with its built-in guest, then lists scanouts, takes PNG
and raw screenshots and streams frame updates; a second daemon whose guest
changes resolution every few frames is watched through several modesets.
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import zlib

DAEMON, PROTO_DIR = sys.argv[1], sys.argv[2]


def generate_stubs(out_dir):
    from grpc_tools import protoc
    # health.proto is compiled from a copy named health_check/health.proto:
    # a generated grpc/health/v1 package would shadow python3-grpcio's grpc.
    health_root = os.path.join(out_dir, "protos")
    os.makedirs(os.path.join(health_root, "health_check"))
    shutil.copy(os.path.join(PROTO_DIR, "grpc/health/v1/health.proto"),
                os.path.join(health_root, "health_check/health.proto"))
    for root, name in ((PROTO_DIR, "vgpu/display/v1/display.proto"),
                       (health_root, "health_check/health.proto")):
        args = ["protoc", f"-I{root}", f"--python_out={out_dir}",
                f"--grpc_python_out={out_dir}", os.path.join(root, name)]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {name}")
    sys.path.insert(0, out_dir)


def start_daemon(cls, *flags):
    """Starts vgpu-displayd with its demo guest (640x480, 60 fps, `flags`)
    and connects `cls.stub` to it over a unix socket."""
    cls.work = tempfile.mkdtemp(prefix="vgpu-py-")
    generate_stubs(cls.work)
    import grpc
    from vgpu.display.v1 import display_pb2, display_pb2_grpc
    cls.pb = display_pb2
    cls.address = f"unix:{cls.work}/grpc.sock"
    cls.daemon = subprocess.Popen(
        [DAEMON, "--demo", "--demo_fps=60", "--width=640", "--height=480",
         f"--grpc_listen={cls.address}", *flags],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cls.channel = grpc.insecure_channel(
        cls.address, options=[("grpc.max_receive_message_length", 64 << 20)])
    grpc.channel_ready_future(cls.channel).result(timeout=10)
    cls.stub = display_pb2_grpc.DisplayStub(cls.channel)


def stop_daemon(cls):
    cls.channel.close()
    cls.daemon.terminate()
    cls.daemon.wait(timeout=10)


def png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def paint_rect(screen, width, rect):
    """Draws a raw (BGRX) or solid rect of an update into `screen`."""
    r, row = rect.rect, rect.rect.width * 4
    for y in range(r.height):
        start = ((r.y + y) * width + r.x) * 4
        if rect.solid:
            screen[start:start + row] = struct.pack("<I", rect.solid_bgrx) * r.width
        else:
            screen[start:start + row] = rect.data[y * row:(y + 1) * row]


class PythonClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        start_daemon(cls, "--demo_scene=console")

    @classmethod
    def tearDownClass(cls):
        stop_daemon(cls)

    def test_list_scanouts(self):
        deadline = time.time() + 10
        while True:
            scanouts = self.stub.ListScanouts(self.pb.ListScanoutsRequest()).scanouts
            if scanouts[0].frame_sequence > 0 or time.time() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(len(scanouts), 1)
        self.assertTrue(scanouts[0].enabled)
        self.assertEqual((scanouts[0].width, scanouts[0].height), (640, 480))
        self.assertGreater(scanouts[0].frame_sequence, 0)

    def test_png_screenshot_after_next_flush(self):
        shot = self.stub.GetScreenshot(self.pb.GetScreenshotRequest(
            scanout_id=0, format=self.pb.IMAGE_FORMAT_PNG, next_flush=True, timeout_ms=10000))
        self.assertEqual(png_size(shot.data), (640, 480))
        self.assertEqual(shot.format, self.pb.IMAGE_FORMAT_PNG)

    def test_raw_screenshot_of_a_region_has_console_pixels(self):
        shot = self.stub.GetScreenshot(self.pb.GetScreenshotRequest(
            scanout_id=0, format=self.pb.IMAGE_FORMAT_RAW_BGRX, next_flush=True,
            region=self.pb.Rect(x=0, y=0, width=64, height=16), timeout_ms=10000))
        self.assertEqual((shot.width, shot.height), (64, 16))
        self.assertEqual(len(shot.data), 64 * 16 * 4)
        # The demo console's background colour (B, G, R) = (0x20, 0x18, 0x10).
        self.assertIn(b"\x20\x18\x10", shot.data)

    def test_watch_frames_streams_increasing_updates(self):
        stream = self.stub.WatchFrames(self.pb.WatchFramesRequest(
            scanout_id=0, format=self.pb.IMAGE_FORMAT_RAW_BGRX), timeout=20)
        saw_mode, sequences = False, []
        for event in stream:
            if event.HasField("mode_changed"):
                saw_mode = True
            elif event.update.end_of_update:
                sequences.append(event.update.frame_sequence)
                for rect in event.update.rects:
                    if rect.solid:  # one colour: no pixel data
                        self.assertEqual(len(rect.data), 0)
                    else:
                        self.assertEqual(len(rect.data), rect.rect.width * rect.rect.height * 4)
                if len(sequences) >= 5:
                    break
        stream.cancel()
        self.assertTrue(saw_mode)
        self.assertEqual(sequences, sorted(sequences))
        self.assertGreater(sequences[-1], sequences[0])

    def test_unknown_scanout_is_not_found(self):
        import grpc
        with self.assertRaises(grpc.RpcError) as error:
            self.stub.GetScreenshot(self.pb.GetScreenshotRequest(scanout_id=9))
        self.assertEqual(error.exception.code(), grpc.StatusCode.NOT_FOUND)


def proto_fields(data):
    """Decodes one protobuf message's fields: [(number, value)], where a
    length-delimited value is bytes and a varint an int (enough for the
    reflection service's replies)."""
    fields, i = [], 0
    def varint():
        nonlocal i
        value, shift = 0, 0
        while True:
            byte = data[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value
    while i < len(data):
        key = varint()
        number, kind = key >> 3, key & 7
        if kind == 0:
            fields.append((number, varint()))
        elif kind == 2:
            length = varint()
            fields.append((number, data[i:i + length]))
            i += length
        else:
            raise ValueError(f"wire type {kind} not expected here")
    return fields


def string_field(number, text):
    """One length-delimited protobuf field (for a request built by hand)."""
    data = text.encode()
    assert len(data) < 128
    return bytes([number << 3 | 2, len(data)]) + data


class HealthAndReflectionTest(unittest.TestCase):
    """What a generic gRPC client (grpcurl, a load balancer, a Kubernetes
    probe) relies on: grpc.health.v1 for the server and for the Display
    service by name, and server reflection describing every service."""

    @classmethod
    def setUpClass(cls):
        start_daemon(cls)

    @classmethod
    def tearDownClass(cls):
        stop_daemon(cls)

    def test_health_serving_for_server_and_display_service(self):
        import grpc
        from health_check import health_pb2, health_pb2_grpc
        stub = health_pb2_grpc.HealthStub(self.channel)
        serving = health_pb2.HealthCheckResponse.SERVING
        for service in ("", "vgpu.display.v1.Display"):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service),
                               timeout=5)
            self.assertEqual(reply.status, serving, service)
        with self.assertRaises(grpc.RpcError) as caught:
            stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"),
                       timeout=5)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.NOT_FOUND)

    def reflect(self, request):
        call = self.channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            request_serializer=lambda x: x, response_deserializer=lambda x: x)
        replies = list(call(iter([request]), timeout=5))
        self.assertEqual(len(replies), 1)
        return dict(proto_fields(replies[0]))

    def test_reflection_lists_and_describes_every_service(self):
        from google.protobuf import descriptor_pb2
        # list_services (field 7) -> list_services_response (6): services (1)
        # each with name (1).
        reply = self.reflect(string_field(7, ""))
        self.assertIn(6, reply, f"no service list: {reply}")
        names = {dict(proto_fields(service))[1].decode()
                 for number, service in proto_fields(reply[6]) if number == 1}
        self.assertTrue({"vgpu.display.v1.Display", "grpc.health.v1.Health",
                         "grpc.reflection.v1alpha.ServerReflection"} <= names,
                        names)
        for name in sorted(names):
            # file_containing_symbol (4) -> file_descriptor_response (4):
            # file_descriptor_proto (1), serialized FileDescriptorProtos.
            reply = self.reflect(string_field(4, name))
            self.assertIn(4, reply, f"{name}: {reply}")
            files = [descriptor_pb2.FileDescriptorProto.FromString(blob)
                     for number, blob in proto_fields(reply[4]) if number == 1]
            services = {f"{f.package}.{s.name}" for f in files
                        for s in f.service}
            self.assertIn(name, services)


class ResizingGuestTest(unittest.TestCase):
    """A viewer keeps a copy of the screen while the guest modesets (new
    framebuffer, SET_SCANOUT, flush, UNREF of the old one) every 4 frames."""

    @classmethod
    def setUpClass(cls):
        start_daemon(cls, "--demo_scene=video", "--demo_mode_every=4")

    @classmethod
    def tearDownClass(cls):
        stop_daemon(cls)

    def test_every_update_lies_inside_the_last_mode(self):
        stream = self.stub.WatchFrames(self.pb.WatchFramesRequest(
            scanout_id=0, format=self.pb.IMAGE_FORMAT_RAW_BGRX), timeout=30)
        modes, width, height = [], 0, 0
        screen = bytearray()
        covered = None  # pixels the first update after a mode has drawn
        for event in stream:
            if event.HasField("mode_changed"):
                width, height = event.mode_changed.width, event.mode_changed.height
                modes.append((width, height))
                screen = bytearray(width * height * 4)
                covered = bytearray(width * height)
                continue
            for rect in event.update.rects:
                r = rect.rect
                self.assertLessEqual(r.x + r.width, width, (r, modes[-1]))
                self.assertLessEqual(r.y + r.height, height, (r, modes[-1]))
                paint_rect(screen, width, rect)
                if covered is not None:
                    for y in range(r.height):
                        covered[(r.y + y) * width + r.x:(r.y + y) * width + r.x + r.width] = \
                            b"\x01" * r.width
            if event.update.end_of_update and covered is not None:
                self.assertNotIn(0, covered, "first update after %dx%d left pixels out" % modes[-1])
                covered = None
            if len(modes) >= 6 and covered is None:
                break
        stream.cancel()
        self.assertGreaterEqual(len(modes), 6)
        self.assertGreater(len(set(modes)), 2)  # really changed size
        # The server agrees with the copy on the mode it ended on.
        shot = self.stub.GetScreenshot(self.pb.GetScreenshotRequest(
            scanout_id=0, format=self.pb.IMAGE_FORMAT_RAW_BGRX))
        self.assertEqual(len(shot.data), shot.width * shot.height * 4)


class ScrollingGuestTest(unittest.TestCase):
    """A viewer that accepts copy rects over a scrolling console: scrolls
    arrive as copies of what it already shows, and its copy of the screen
    equals the daemon's screenshot of the same frame, pixel for pixel."""

    @classmethod
    def setUpClass(cls):
        start_daemon(cls, "--demo_scene=scroll", "--demo_fps=5")

    @classmethod
    def tearDownClass(cls):
        stop_daemon(cls)

    def test_copies_reassemble_the_screen(self):
        import queue
        requests = queue.Queue()
        requests.put(self.pb.StreamFramesRequest(subscribe=self.pb.Subscribe(
            scanout_id=0, formats=[self.pb.IMAGE_FORMAT_RAW_BGRX], accept_copies=True)))

        def request_stream():
            while True:
                request = requests.get()
                if request is None:
                    return
                yield request

        stream = self.stub.StreamFrames(request_stream(), timeout=60)
        width = height = 0
        screen = bytearray()
        copies = matches = 0
        for event in stream:
            if event.HasField("mode_changed"):
                width, height = event.mode_changed.width, event.mode_changed.height
                screen = bytearray(width * height * 4)
                continue
            if not event.HasField("update"):
                continue
            update = event.update
            for copy in update.copies:
                r, row = copy.rect, copy.rect.width * 4
                source = bytes(screen)  # as through a buffer
                for y in range(r.height):
                    start = ((r.y + y) * width + r.x) * 4
                    src = ((copy.src_y + y) * width + copy.src_x) * 4
                    screen[start:start + row] = source[src:src + row]
                copies += 1
            for rect in update.rects:
                paint_rect(screen, width, rect)
            if not update.end_of_update:
                continue
            # The daemon's own picture, when it is still the same frame.
            shot = self.stub.GetScreenshot(self.pb.GetScreenshotRequest(
                scanout_id=0, format=self.pb.IMAGE_FORMAT_RAW_BGRX))
            if shot.frame_sequence == update.frame_sequence:
                pixels = bytearray(shot.data)
                # X bytes are not part of the picture.
                pixels[3::4] = bytes(len(pixels) // 4)
                mine = bytearray(screen)
                mine[3::4] = bytes(len(mine) // 4)
                self.assertEqual(mine, pixels, "frame %d" % update.frame_sequence)
                matches += 1
            requests.put(self.pb.StreamFramesRequest(
                ack=self.pb.Ack(update_id=update.update_id)))
            if matches >= 3 and copies >= 3:
                break
        requests.put(None)
        stream.cancel()
        self.assertGreaterEqual(copies, 3)
        self.assertGreaterEqual(matches, 3)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
