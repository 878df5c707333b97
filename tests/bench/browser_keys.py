#!/usr/bin/python3
"""Keystroke-to-pixel latency from the browser console: headless Chromium
opens vgpu-vnc's web console (noVNC), and for each key the page dispatches
its keydown on noVNC's canvas and waits for the canvas's next draw (noVNC
draws an update into it); the time between the two, from the page's own
clock, covers noVNC, the websocket, vgpu-vnc, the daemon's Input service,
the virtio-input device, the guest's echo, the daemon's frame and the way
back. The screen must be still for 30 ms before each key. Prints p50/p99.

Keys alternate between a letter and Backspace, so a line never fills.

Usage: browser_keys.py CONSOLE_URL [--keys N] [--label L]
"""
import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration"))
from browser_console_test import Browser, open_console, wait_for  # noqa: E402

# Hooks the canvas's drawing calls once: each draw stamps the page clock
# and wakes a waiting key.
HOOK = """
(() => {
  const canvas = vgpuConsole.canvas(), ctx = canvas.getContext('2d');
  if (window.vgpuBench) return true;
  window.vgpuBench = {lastDraw: 0, waiter: null};
  for (const name of ['drawImage', 'putImageData']) {
    const original = ctx[name].bind(ctx);
    ctx[name] = (...args) => {
      const result = original(...args);
      vgpuBench.lastDraw = performance.now();
      if (vgpuBench.waiter) { const w = vgpuBench.waiter; vgpuBench.waiter = null; w(); }
      return result;
    };
  }
  return true;
})()
"""

KEY = """
(async (key, code) => {
  const canvas = vgpuConsole.canvas();
  const quiet = () => performance.now() - vgpuBench.lastDraw >= 30;
  const wait = (ms) => new Promise(r => setTimeout(r, ms));
  for (let i = 0; i < 300 && !quiet(); ++i) await wait(5);
  const drawn = new Promise(r => { vgpuBench.waiter = r; });
  const sent = performance.now();
  canvas.dispatchEvent(new KeyboardEvent('keydown',
      {key, code, bubbles: true, cancelable: true}));
  const result = await Promise.race([drawn.then(() => 'drawn'),
                                     wait(3000).then(() => 'timeout')]);
  const elapsed = vgpuBench.lastDraw - sent;
  canvas.dispatchEvent(new KeyboardEvent('keyup',
      {key, code, bubbles: true, cancelable: true}));
  return result === 'drawn' ? elapsed : -1;
})
"""


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p * (len(values) - 1) + 0.5))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--label", default="browser")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="vgpu-browser-keys-")
    browser = None
    try:
        browser = Browser(work)
        open_console(browser, args.url, work)
        wait_for(lambda: browser.evaluate(
            "(() => { const c = vgpuConsole.canvas(); return c && c.width > 0; })()"),
            20, "the canvas", work)
        browser.evaluate(HOOK)
        letters = "asdfghjkl"
        times, missed = [], 0
        for i in range(args.keys):
            if i % 2:
                key, code = "Backspace", "Backspace"
            else:
                key = letters[(i // 2) % len(letters)]
                code = "Key" + key.upper()
            elapsed = browser.evaluate(f"{KEY}('{key}', '{code}')")
            if elapsed is None or elapsed < 0:
                missed += 1
            else:
                times.append(elapsed)
        if not times:
            print(f"{args.label} keystroke-to-pixel: no key drew anything")
            return 1
        print(f"{args.label} keystroke-to-pixel: {len(times)} keys, {missed} "
              f"without a draw within 3 s; p50 {percentile(times, 0.5):.1f} ms "
              f"p99 {percentile(times, 0.99):.1f} ms max {max(times):.1f} ms")
        return 0 if missed == 0 else 1
    finally:
        if browser:
            browser.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
