#!/usr/bin/python3
"""Turns a Linux console font (PSF1 or PSF2, gzipped, 8 pixels wide, e.g.
console-setup-linux's Lat15-Terminus16.psf.gz) into a C++ include with the
glyphs of printable ASCII, looked up through the font's Unicode table.

Usage: psf_font.py FONT.psf.gz OUT.inc
"""
import gzip
import os
import struct
import sys


def glyph_map(data):
    """(glyph bytes, height, {code point: glyph index}) of a PSF font."""
    if data[:2] == b"\x36\x04":  # PSF1
        mode, height = data[2], data[3]
        count = 512 if mode & 0x01 else 256
        glyphs = data[4:4 + count * height]
        table = {}
        if mode & 0x02:
            pos, glyph = 4 + count * height, 0
            while glyph < count and pos + 1 < len(data):
                (value,) = struct.unpack_from("<H", data, pos)
                pos += 2
                if value == 0xFFFF:
                    glyph += 1
                elif value != 0xFFFE:
                    table.setdefault(value, glyph)
        return glyphs, height, 8, table
    if data[:4] == b"\x72\xb5\x4a\x86":  # PSF2
        _, _, header, flags, count, size, height, width = struct.unpack_from(
            "<8I", data)
        glyphs = data[header:header + count * size]
        table = {}
        if flags & 0x01:
            pos, glyph = header + count * size, 0
            text = data[pos:]
            for entry in text.split(b"\xff")[:count]:
                for part in entry.split(b"\xfe")[:1]:
                    for ch in part.decode("utf-8", "replace"):
                        table.setdefault(ord(ch), glyph)
                glyph += 1
        return glyphs, height, width, table
    sys.exit(f"{sys.argv[1]}: not a PSF font")


def main():
    font, out = sys.argv[1], sys.argv[2]
    glyphs, height, width, table = glyph_map(gzip.open(font).read())
    if width != 8:
        sys.exit(f"{font}: glyphs are {width} pixels wide, want 8")
    rows = []
    for code in range(0x20, 0x7F):
        index = table.get(code, code)
        bits = glyphs[index * height:(index + 1) * height]
        rows.append("  {" + ", ".join(f"0x{b:02x}" for b in bits) + "},"
                    f"  // {chr(code)!r}")
    with open(out, "w") as f:
        f.write(f"// Generated at build time from {os.path.basename(font)} "
                "by psf_font.py.\n")
        f.write(f"inline constexpr uint32_t kFontHeight = {height};\n")
        f.write("// Printable ASCII (0x20..0x7E); one byte per row, the top "
                "bit the leftmost pixel.\n")
        f.write(f"inline constexpr uint8_t kFontGlyphs[95][{height}] = {{\n")
        f.write("\n".join(rows) + "\n};\n")


if __name__ == "__main__":
    main()
