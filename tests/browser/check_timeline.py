#!/usr/bin/env python3
"""Renders stash-replay's --timeline page in headless Chromium and checks the picture is not empty.

usage: check_timeline.py STASH_REPLAY TRACE.csv [OUT_DIR]

Writes OUT_DIR/timeline.html and OUT_DIR/timeline.png (kept, to look at), then decodes the PNG with
the standard library and requires the drawn series to be there: enough pixels that are not the page's
background, and enough of each series colour (live bytes blue, reserved bytes orange). Exits 77 (a
skip to CTest) when no Chromium is installed.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import zlib

SKIP = 77
LIVE = (0x1F, 0x77, 0xB4)
RESERVED = (0xFF, 0x7F, 0x0E)


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def read_png(path):
    """(width, height, rows of (r, g, b)) for an 8-bit RGB or RGBA, non-interlaced PNG."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    width, height = int.from_bytes(header[0:4], "big"), int.from_bytes(header[4:8], "big")
    depth, colour, interlace = header[8], header[9], header[12]
    if depth != 8 or colour not in (2, 6) or interlace != 0:
        raise ValueError(f"{path}: unsupported PNG (depth {depth}, colour type {colour}, interlace {interlace})")
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
                line[i] = (line[i] + pred) & 0xFF
        rows.append([tuple(line[x * channels:x * channels + 3]) for x in range(width)])
        previous = line
    return width, height, rows


def near(pixel, colour, tolerance=40):
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour))


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    replay, trace = sys.argv[1], sys.argv[2]
    out_dir = sys.argv[3] if len(sys.argv) > 3 else tempfile.mkdtemp(prefix="stash-timeline-")
    os.makedirs(out_dir, exist_ok=True)
    chromium = find_chromium()
    if not chromium:
        print("SKIPPED: no chromium on PATH (Debian: apt-get install chromium; scripts/install-deps does it)")
        return SKIP

    html = os.path.join(out_dir, "timeline.html")
    png = os.path.join(out_dir, "timeline.png")
    subprocess.run([replay, "--backend", "simulated", "--warm", "0", "--allocators", "stash,stash-pow2",
                    "--timeline", html, trace], check=True, stdout=subprocess.DEVNULL)
    if os.path.exists(png):
        os.remove(png)
    with tempfile.TemporaryDirectory(prefix="stash-chromium-") as profile:
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--no-first-run", "--user-data-dir=" + profile, "--window-size=1000,1400",
                        "--screenshot=" + png, "file://" + os.path.abspath(html)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    width, height, rows = read_png(png)
    background = rows[0][0]
    drawn = sum(1 for row in rows for p in row if p != background)
    live = sum(1 for row in rows for p in row if near(p, LIVE))
    reserved = sum(1 for row in rows for p in row if near(p, RESERVED))
    total = width * height
    print(f"{png}: {width}x{height}, background {background}, {drawn} pixels drawn "
          f"({100.0 * drawn / total:.1f}%), {live} live-blue, {reserved} reserved-orange")
    ok = True
    if background != (255, 255, 255):
        print(f"FAIL: background {background}, expected white")
        ok = False
    if drawn < total // 50:
        print("FAIL: fewer than 2% of the pixels are drawn: the page rendered (nearly) empty")
        ok = False
    if live < 500 or reserved < 500:
        print("FAIL: the live (blue) or reserved (orange) lines are missing")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
