"""Helpers for the soak and kill scripts (standard library only): a `styleforge serve` process,
a small HTTP client, generated PNG photos, the bad-input corpus's requests, and a check of the
blob store's files."""
import hashlib
import json
import os
import random
import signal
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.request
import zlib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(REPO, "target", "release", "styleforge")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`styleforge serve --anonymous` on the embedded defaults (SQLite, local blobs, in-process
    workers) in `data_dir`, with `home` as its (empty) model home."""

    def __init__(self, data_dir, home, log, extra=()):
        self.data_dir, self.home, self.log_path, self.extra = data_dir, home, log, list(extra)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self, timeout=60):
        env = dict(os.environ, STYLEFORGE_HOME=self.home, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--anonymous", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data_dir, *self.extra],
            stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if request(self.base, "GET", "/readyz", timeout=2)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the server did not become ready")

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()


def request(base, method, path, body=None, ctype=None, timeout=300):
    """(status, parsed JSON or raw bytes) of one request; network errors raise OSError."""
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    if ctype is None and body is not None and not isinstance(body, bytes):
        ctype = "application/json"
    req = urllib.request.Request(base + path, data=data, method=method)
    if ctype:
        req.add_header("content-type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw, rtype = r.status, r.read(), r.headers.get("content-type", "")
    except urllib.error.HTTPError as e:
        status, raw, rtype = e.code, e.read(), e.headers.get("content-type", "")
    if "json" in rtype:
        try:
            return status, json.loads(raw)
        except ValueError:
            pass
    return status, raw


def png(width, height, seed):
    """An 8-bit RGB PNG: smooth colour gradients with noise, like a small photo."""
    rng = random.Random(seed)
    a, b, c = (rng.random() * 6 for _ in range(3))
    rows = bytearray()
    for y in range(height):
        rows.append(0)
        for x in range(width):
            n = rng.randrange(24)
            rows += bytes((
                min(255, int(120 + 100 * ((x * a + y) % 97) / 97) + n),
                min(255, int(60 + 150 * ((y * b) % 131) / 131) + n),
                min(255, int(40 + 180 * ((x + y * c) % 61) / 61) + n),
            ))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(bytes(rows), 6)) + chunk(b"IEND", b"")


def corpus_requests():
    """The bad-input corpus's raw HTTP requests (tests/corpus/requests)."""
    d = os.path.join(REPO, "tests", "corpus", "requests")
    return [open(os.path.join(d, n), encoding="utf-8").read() for n in sorted(os.listdir(d)) if n.endswith(".http")]


def corpus_images():
    d = os.path.join(REPO, "tests", "corpus", "images")
    return [open(os.path.join(d, n), "rb").read() for n in sorted(os.listdir(d))]


def raw_request(base, text, image):
    """Sends a corpus request (`{IMAGE}` and `{LONG:N}` expanded, lengths recounted) and returns
    the status (0 when the connection closed without one)."""
    text = text.replace("{IMAGE}", image)
    while "{LONG:" in text:
        i = text.index("{LONG:")
        end = text.index("}", i)
        text = text[:i] + "a" * int(text[i + 6:end]) + text[end + 1:]
    head, _, body = text.partition("\n\n")
    body = body.replace("\n", "\r\n").encode()
    lines = [f"content-length: {len(body)}" if l.lower().startswith("content-length:") else l for l in head.split("\n")]
    data = ("\r\n".join(lines) + "\r\nconnection: close\r\n\r\n").encode() + body
    host, port = base[len("http://"):].split(":")
    with socket.create_connection((host, int(port)), timeout=60) as s:
        try:
            s.sendall(data)
        except OSError:
            pass
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except OSError:
            pass
    parts = out.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def check_store(blob_dir):
    """(blobs, bad) where bad lists files under the store's `sha256/` tree that are not a
    complete blob: staging files, or contents whose hash is not the name."""
    blobs, bad = 0, []
    root = os.path.join(blob_dir, "sha256")
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            if digest == name:
                blobs += 1
            else:
                bad.append(path)
    return blobs, bad


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores, {model}"


def rss_growth(samples, warmup_s, window_s=300):
    """(first, last, growth %) of resident memory after `warmup_s`: the medians of the samples in
    the first and the last `window_s` seconds after it (NaN when there are too few)."""
    after = [(t, r) for t, r in samples if t >= warmup_s]
    if len(after) < 6:
        return float("nan"), float("nan"), float("nan")
    span = min(window_s, (after[-1][0] - after[0][0]) / 3)
    head = sorted(r for t, r in after if t <= after[0][0] + span)
    tail = sorted(r for t, r in after if t >= after[-1][0] - span)
    first, last = head[len(head) // 2], tail[len(tail) // 2]
    return first, last, (last - first) / first * 100


def rss_windows(samples, window_s):
    """`"0–5 min: 494 (275–742)"`-style summaries of resident memory per window."""
    out = []
    end = samples[-1][0] if samples else 0
    start = 0.0
    while start < end:
        w = sorted(r for t, r in samples if start <= t < start + window_s)
        if w:
            out.append(f"{start / 60:.0f}–{(start + window_s) / 60:.0f} min: {w[len(w) // 2]:.0f} ({w[0]:.0f}–{w[-1]:.0f})")
        start += window_s
    return out
