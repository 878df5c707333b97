#!/usr/bin/python3
"""The real guest's console in a real browser: headless Chromium opens
vgpu-vnc's web console, types TEXT into it (noVNC sends QEMU extended key
events), and the canvas must then show what the daemon's own screenshot
shows, which must differ from before the typing (the guest's VT echoed it).
The caller checks the guest's serial console for the line itself.

Usage: browser_type.py CONSOLE_URL GRPC_SOCKET VGPU_SHOT TEXT
"""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration"))
from browser_console_test import (  # noqa: E402
    Browser, canvas_showing, daemon_shot, fail, open_console, psnr, type_keys)
from PIL import ImageChops  # noqa: E402


def main():
    url, socket_path, shot, text = sys.argv[1:5]
    text = text.replace("\\n", "\n")
    work = tempfile.mkdtemp(prefix="vgpu-e2e-browser-")
    browser = None
    try:
        browser = Browser(work)
        open_console(browser, url, work)
        before = daemon_shot(shot, socket_path, work)
        # noVNC takes keys once its canvas has the focus.
        browser.evaluate("vgpuConsole.canvas().focus()")
        type_keys(browser, text)
        after = daemon_shot(shot, socket_path, work)
        changed = ImageChops.difference(before, after).getbbox()
        if changed is None:
            fail("the guest's screen did not change after typing in the browser",
                 work)
        seen = canvas_showing(browser, after, "the typed line in the canvas",
                              work)
        print(f"  browser console: typed {len(text)} keys, the guest's screen "
              f"changed in {changed}, the canvas shows it (PSNR "
              f"{psnr(seen, after):.1f} dB)")
    finally:
        if browser:
            browser.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
