#!/usr/bin/python3
"""The browser console in a real browser: headless Chromium (Debian's
chromium, driven over the DevTools protocol with python3-websocket) opens
vgpu-vnc's web console, connects through noVNC, and its canvas shows what
the daemon's own screenshot shows (Tight JPEG at noVNC's quality level 6:
within a PSNR bound). Keys typed into the page (noVNC sends them as QEMU
extended key events) and a click reach the demo guest, whose console echoes
them, and the canvas shows the echo. When the daemon comes back at another
resolution, the
page, still connected, shows the new size. Served over HTTPS (a
certificate made here with openssl), the page connects over wss and shows
the screen too; other sites' pages are refused on ws and wss.

Usage: browser_console_test.py VGPU_DISPLAYD VGPU_VNC VGPU_SHOT [--screenshot PNG]
"""
import argparse
import base64
import io
import json
import math
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket  # python3-websocket
from PIL import Image, ImageChops, ImageStat

MIN_PSNR_DB = 30.0  # noVNC asks for Tight quality level 6 (JPEG 79, 4:4:4)


def fail(message, work=None):
    print(f"FAIL: {message}")
    if work:
        for name in sorted(os.listdir(work)):
            if name.endswith(".log"):
                print(f"--- {name}")
                with open(os.path.join(work, name), errors="replace") as f:
                    print("".join(f.readlines()[-15:]))
    sys.exit(1)


def wait_for(condition, timeout, what, work, describe=lambda: ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    fail(f"timed out waiting for {what}{describe()}", work)


def open_console(browser, url, work, what="the console"):
    """Opens the console page and waits until noVNC is connected."""
    browser.call("Page.navigate", url=url)
    wait_for(lambda: browser.evaluate(
        "window.vgpuConsole && vgpuConsole.state") == "connected", 20,
        f"{what} to connect", work)


def canvas_showing(browser, want, what, work, size=None):
    """Waits until the page's canvas shows `want` (within MIN_PSNR_DB, and
    `size` when given) and returns it."""
    def matching():
        canvas = browser.canvas()
        if canvas is None or (size is not None and canvas.size != size):
            return None
        return canvas if psnr(canvas, want) >= MIN_PSNR_DB else None
    return wait_for(matching, 20, what, work)


def describe_canvas(canvas, want, work):
    """What the browser showed last, kept beside the logs."""
    if canvas is None:
        return " (no canvas)"
    canvas.save(os.path.join(work, "canvas.png"))
    want.save(os.path.join(work, "want.png"))
    return (f" (the canvas was {canvas.size[0]}x{canvas.size[1]}, PSNR "
            f"{psnr(canvas, want):.1f} dB against the daemon's screenshot)")


def psnr(a, b):
    if a.size != b.size:
        return 0.0
    rms = ImageStat.Stat(ImageChops.difference(a, b)).rms
    mse = sum(v * v for v in rms) / 3
    return 99.0 if mse == 0 else 10 * math.log10(255 * 255 / mse)


class Browser:
    """Headless Chromium and one page over the DevTools protocol."""

    def __init__(self, work, extra_args=()):
        self.profile = tempfile.mkdtemp(prefix="chromium-", dir=work)
        self.log = open(os.path.join(work, "chromium.log"), "w")
        self.process = subprocess.Popen(
            ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
             "--no-first-run", "--window-size=1100,800",
             "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
             *extra_args, "about:blank"],
            stdout=self.log, stderr=self.log)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        port = wait_for(lambda: os.path.exists(port_file) and
                        open(port_file).readline().strip(), 30,
                        "Chromium's DevTools port", work)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as r:
            page = next(t for t in json.load(r) if t["type"] == "page")
        self.socket = websocket.create_connection(
            page["webSocketDebuggerUrl"], suppress_origin=True, timeout=30)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.socket.send(json.dumps(
            {"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression,
                           returnByValue=True, awaitPromise=True)
        return result["result"].get("value")

    def canvas(self):
        """The console's canvas as a PIL image, or None before it exists."""
        url = self.evaluate(
            "(() => { const c = window.vgpuConsole && vgpuConsole.canvas();"
            " return c && c.width > 0 ? c.toDataURL('image/png') : null; })()")
        if not url:
            return None
        data = base64.b64decode(url.split(",", 1)[1])
        return Image.open(io.BytesIO(data)).convert("RGB")

    def close(self):
        self.socket.close()
        self.process.terminate()
        self.process.wait(timeout=10)
        self.log.close()


def start_daemon(daemon, work, socket_path, width, height, name):
    process = subprocess.Popen(
        [daemon, "--demo", "--demo_frames=20",
         f"--width={width}", f"--height={height}",
         f"--grpc_listen=unix:{socket_path}"],
        stdout=open(os.path.join(work, f"{name}.log"), "w"),
        stderr=subprocess.STDOUT)
    # Up, and its guest's last frame drawn: the screen is final (on a loaded
    # machine a still screen could otherwise be one not yet drawn).
    log = os.path.join(work, f"{name}.log")

    def drawn():
        with open(log, errors="replace") as f:
            return "frames drawn" in f.read()

    wait_for(drawn, 30, "the daemon and its guest's frames", work)
    return process


def daemon_shot(shot, socket_path, work):
    out = os.path.join(work, "shot.png")
    subprocess.run([shot, f"--server=unix:{socket_path}",
                    "--connect_timeout=10s", "--wait=stable:300",
                    "--timeout=20s", f"--out={out}"],
                   check=True, stdout=subprocess.DEVNULL)
    return Image.open(out).convert("RGB")


def dom_code(c):
    """KeyboardEvent.code of the US key that types `c` (no Shift)."""
    if c.isalpha():
        return "Key" + c.upper()
    if c.isdigit():
        return "Digit" + c
    return {" ": "Space", "\n": "Enter"}[c]


def type_keys(browser, text):
    """Types `text` (letters, digits, spaces, newlines) as a person would on
    a US keyboard, into whatever has the page's focus."""
    for c in text:
        key = "Enter" if c == "\n" else c
        common = {"key": key, "code": dom_code(c),
                  "windowsVirtualKeyCode": 13 if c == "\n" else ord(c.upper())}
        browser.call("Input.dispatchKeyEvent", type="keyDown",
                     text="\r" if c == "\n" else c, **common)
        browser.call("Input.dispatchKeyEvent", type="keyUp", **common)


def type_and_click(browser, shot, socket_path, before, work):
    """Types into the page as soon as it is connected (the page gives the
    screen the keyboard focus; nothing was clicked yet) and clicks on the
    canvas: the demo guest echoes the line and leaves a dot, the daemon's
    screen shows both, and so does the canvas."""
    text = "echo browser 7\n"
    started = time.monotonic()
    type_keys(browser, text)
    typed = daemon_shot(shot, socket_path, work)
    changed = ImageChops.difference(before, typed).getbbox()
    if changed is None:
        fail("the guest's screen did not change after typing into the page "
             "(before any click: the page should give the screen the focus)",
             work)
    # The guest's click at canvas pixel (cx, cy), wherever the page scaled
    # the canvas to.
    cx, cy = 600, 300
    box = browser.evaluate(
        "(() => { const c = vgpuConsole.canvas(), r = c.getBoundingClientRect();"
        " return [r.left, r.top, r.width / c.width, r.height / c.height]; })()")
    x, y = box[0] + (cx + 0.5) * box[2], box[1] + (cy + 0.5) * box[3]
    for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
        browser.call("Input.dispatchMouseEvent", type=kind, x=x, y=y,
                     button="left" if kind != "mouseMoved" else "none",
                     clickCount=1)
    after = daemon_shot(shot, socket_path, work)
    dot = after.getpixel((cx, cy))
    if dot != (127, 209, 127):  # the demo guest's dot
        after.save(os.path.join(work, "after-click.png"))
        fail(f"the click at canvas pixel {cx},{cy} left no dot there "
             f"(the guest's screen has {dot})", work)
    seen = canvas_showing(browser, after, "the typed text in the canvas", work)
    print(f"PASS: keys typed into the page and a click reach the guest "
          f"(its screen changed in {changed}, the dot at {cx},{cy}); the "
          f"canvas shows them, PSNR {psnr(seen, after):.1f} dB "
          f"({(time.monotonic() - started) * 1000:.0f} ms)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("daemon")
    parser.add_argument("bridge")
    parser.add_argument("shot")
    parser.add_argument("--screenshot", help="save the page as a PNG here")
    args = parser.parse_args()
    if not shutil.which("chromium"):
        fail("chromium is not installed (Debian package chromium)")
    work = tempfile.mkdtemp(prefix="vgpu-browser-")
    processes = []
    browser = None
    try:
        socket_path = os.path.join(work, "grpc.sock")
        daemon = start_daemon(args.daemon, work, socket_path, 640, 480,
                              "daemon")
        processes.append(daemon)
        bridge_log = os.path.join(work, "vnc.log")
        processes.append(subprocess.Popen(
            [args.bridge, f"--server=unix:{socket_path}",
             "--listen=127.0.0.1:0", "--web_listen=127.0.0.1:0"],
            stdout=open(bridge_log, "w"), stderr=subprocess.STDOUT))
        url = wait_for(lambda: re.search(r"web console on (http://\S+)",
                                         open(bridge_log).read()), 10,
                       "the web console", work).group(1)
        want = daemon_shot(args.shot, socket_path, work)

        # Another site's page may not open the console's websocket.
        ws_url = url.replace("http://", "ws://").rstrip("/") + "/vnc/0"
        try:
            websocket.create_connection(ws_url, origin="http://evil.example",
                                        timeout=10).close()
            fail("a websocket from another origin was accepted", work)
        except websocket.WebSocketException:  # closed or refused
            print("PASS: a websocket from another origin is refused")

        browser = Browser(work)
        started = time.monotonic()
        open_console(browser, url, work)
        connected = time.monotonic() - started
        seen = canvas_showing(browser, want, "the guest's screen in the canvas",
                              work)
        print(f"PASS: the browser shows the guest's screen {seen.size[0]}x"
              f"{seen.size[1]}, PSNR {psnr(seen, want):.1f} dB "
              f"(connected in {connected * 1000:.0f} ms)")
        type_and_click(browser, args.shot, socket_path, want, work)
        if args.screenshot:
            shot = browser.call("Page.captureScreenshot", format="png")
            with open(args.screenshot, "wb") as f:
                f.write(base64.b64decode(shot["data"]))

        # The VM comes back at another resolution: the page stays and
        # follows.
        daemon.terminate()
        daemon.wait(timeout=10)
        processes.append(start_daemon(args.daemon, work, socket_path, 800, 600,
                                      "daemon2"))
        want = daemon_shot(args.shot, socket_path, work)
        last = {}

        def resized():
            canvas = browser.canvas()
            if canvas is None:
                return None
            last["canvas"] = canvas
            if canvas.size == (800, 600) and psnr(canvas, want) >= MIN_PSNR_DB:
                return canvas
            return None

        seen = wait_for(resized, 30, "the new resolution in the browser", work,
                        lambda: describe_canvas(last.get("canvas"), want, work))
        connects = browser.evaluate("vgpuConsole.connects")
        if connects != 1:
            fail(f"the page reconnected ({connects} connects); it should have "
                 "stayed", work)
        print(f"PASS: a guest resolution change shows in the browser "
              f"({seen.size[0]}x{seen.size[1]}, PSNR {psnr(seen, want):.1f} dB)")

        # The console over HTTPS: the page, noVNC and the websocket (wss)
        # on one TLS port, with a certificate of our own.
        cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
             "-keyout", key, "-out", cert, "-days", "1",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, capture_output=True)
        tls_log = os.path.join(work, "vnc-tls.log")
        processes.append(subprocess.Popen(
            [args.bridge, f"--server=unix:{socket_path}",
             "--listen=127.0.0.1:0", "--web_listen=127.0.0.1:0",
             f"--web_tls_cert={cert}", f"--web_tls_key={key}"],
            stdout=open(tls_log, "w"), stderr=subprocess.STDOUT))
        tls_url = wait_for(lambda: re.search(r"web console on (https://\S+)",
                                             open(tls_log).read()), 10,
                           "the HTTPS web console", work).group(1)
        try:
            websocket.create_connection(
                tls_url.replace("https://", "wss://").rstrip("/") + "/vnc/0",
                origin="https://evil.example", timeout=10,
                sslopt={"cert_reqs": ssl.CERT_NONE}).close()
            fail("a wss websocket from another origin was accepted", work)
        except websocket.WebSocketException:
            print("PASS: a wss websocket from another origin is refused")
        browser.close()
        browser = Browser(work, ["--ignore-certificate-errors"])
        open_console(browser, tls_url, work, "the HTTPS console")
        seen = canvas_showing(browser, want, "the guest's screen over wss",
                              work, size=(800, 600))
        scheme = browser.evaluate("location.protocol")
        if scheme != "https:":
            fail(f"the page was served over {scheme}", work)
        print(f"PASS: the console over HTTPS and wss shows the guest's screen "
              f"(PSNR {psnr(seen, want):.1f} dB)")
    finally:
        if browser:
            browser.close()
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)
        if not os.environ.get("KEEP_WORK"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
