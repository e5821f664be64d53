#!/usr/bin/env python3
"""Soak test: mixed traffic against `styleforge serve` on the embedded defaults (SQLite, local
blob store, in-process workers), with the server's resident memory sampled every 10 s.

    scripts/soak-test.py [--minutes 30] [--clients 2] [--warmup-minutes 5]

Traffic, chosen at random by each client: uploads of generated photos (64–640 px), synchronous
stylisations (MicroAST with built-in paintings, CartoonGAN filters), jobs followed to the end,
jobs cancelled at once, the bad-input corpus (its images uploaded, its raw HTTP requests sent),
reads (lists, history, styles, thumbnails) and deletions. Passes when no request gets a 5xx or
loses its connection and the resident memory after the warm-up grows by under 10 %: the median
of the last 5 minutes' samples against the median of the first 5 minutes after the warm-up
(medians, because the allocator returns freed pages in bursts and single samples swing). Needs a release build
(`cargo build --release`); writes target/soak-report/{rss.csv,summary.md,server.log}.
"""
import argparse
import collections
import os
import random
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reliability as rel  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--minutes", type=float, default=30)
ap.add_argument("--clients", type=int, default=2)
ap.add_argument("--warmup-minutes", type=float, default=5)
ap.add_argument("--seed", type=int, default=1)
args = ap.parse_args()

report = os.path.join(rel.REPO, "target", "soak-report")
os.makedirs(report, exist_ok=True)
work = tempfile.mkdtemp(prefix="styleforge-soak-")
server = rel.Server(os.path.join(work, "data"), os.path.join(work, "home"), os.path.join(report, "server.log"))
open(server.log_path, "w").close()
server.start()
base = server.base

counts = collections.Counter()  # (action, status class)
failures = []  # 5xx and lost connections
lock = threading.Lock()
stop = time.time() + args.minutes * 60
images = []  # uploaded ids
bad_images = rel.corpus_images()
bad_requests = rel.corpus_requests()
filters = ["cartoon-paprika", "cartoon-shinkai"]
paintings = ["starry-night", "great-wave", "the-scream", "udnie", "composition-vii"]


def note(action, status, detail=""):
    with lock:
        counts[(action, f"{status // 100}xx" if status else "lost")] += 1
        if status >= 500 or status == 0:
            failures.append(f"{action}: {status} {str(detail)[:300]}")


def upload(rng):
    side = rng.randrange(64, 641)
    s, body = rel.request(base, "POST", "/v1/images", rel.png(side, rng.randrange(64, 641), rng.random()), "image/png")
    note("upload", s, body)
    if s == 201:
        with lock:
            images.append(body["id"])


def some_image(rng):
    with lock:
        return rng.choice(images) if images else None


def stylize(rng):
    image = some_image(rng)
    if not image:
        return upload(rng)
    req = {"image": image, "max_size": 384}
    if rng.random() < 0.5:
        req["style"] = rng.choice(filters)
    else:
        req.update(style=rng.choice(paintings), strength=round(rng.uniform(0.3, 1.0), 2))
    s, body = rel.request(base, "POST", "/v1/stylize", req)
    note("stylize", s, body)


def job(rng, cancel):
    image = some_image(rng)
    if not image:
        return upload(rng)
    s, body = rel.request(base, "POST", "/v1/stylize", {"image": image, "style": rng.choice(paintings + filters), "async": True})
    note("cancel" if cancel else "job", s, body)
    if s != 202:
        return
    jid = body["job"]
    if cancel:
        s, body = rel.request(base, "POST", f"/v1/jobs/{jid}/cancel")
        note("cancel", s, body)
    deadline = time.time() + 300
    while time.time() < deadline:
        s, body = rel.request(base, "GET", f"/v1/jobs/{jid}")
        if s != 200:
            note("job-poll", s, body)
            return
        if body["state"] in ("succeeded", "failed", "cancelled"):
            # A failed job is a failure of the service: every input here is valid.
            note(f"job-{body['state']}", 500 if body["state"] == "failed" else 200, body)
            if body.get("result"):
                s, _ = rel.request(base, "GET", f"/v1/results/{body['result']}")
                note("result", s)
            return
        time.sleep(0.2)
    note("job-poll", 0, "no end in 300 s")


def bad(rng):
    image = some_image(rng) or "img_missing"
    if rng.random() < 0.5:
        s, body = rel.request(base, "POST", "/v1/images", rng.choice(bad_images), rng.choice(["image/png", "image/jpeg", "image/webp", "application/octet-stream"]))
        note("bad-upload", s, body)
        if s == 201:
            with lock:
                images.append(body["id"])
    else:
        note("bad-request", rel.raw_request(base, rng.choice(bad_requests), image))


def read(rng):
    image = some_image(rng)
    paths = ["/v1/images?limit=20", "/v1/history?limit=20", "/v1/styles", "/v1/methods", "/healthz", "/"]
    if image:
        paths += [f"/v1/images/{image}/thumbnail?size=128", f"/v1/images/{image}/info", f"/v1/styles/cartoon-paprika/thumbnail?image={image}"]
    s, body = rel.request(base, "GET", rng.choice(paths))
    note("read", s, body)


def delete(rng):
    with lock:
        if len(images) < 20:
            return
        image = images.pop(rng.randrange(len(images)))
    s, body = rel.request(base, "DELETE", f"/v1/images/{image}")
    note("delete", s, body)


actions = [(upload, 15), (stylize, 30), (lambda r: job(r, False), 12), (lambda r: job(r, True), 8), (bad, 17), (read, 13), (delete, 5)]


def client(i):
    rng = random.Random(args.seed * 1000 + i)
    funcs, weights = zip(*actions)
    while time.time() < stop:
        f = rng.choices(funcs, weights)[0]
        try:
            f(rng)
        except OSError as e:
            note(getattr(f, "__name__", "job"), 0, e)


threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.clients)]
for t in threads:
    t.start()
t0 = time.time()
samples = []
with open(os.path.join(report, "rss.csv"), "w") as csv:
    csv.write("seconds,rss_mib,requests\n")
    while time.time() < stop:
        time.sleep(min(10, max(0, stop - time.time())))
        rss = server.rss_kib() / 1024
        with lock:
            n = sum(counts.values())
        samples.append((time.time() - t0, rss))
        csv.write(f"{time.time() - t0:.0f},{rss:.1f},{n}\n")
        csv.flush()
        print(f"{(time.time() - t0) / 60:5.1f} min  rss {rss:7.1f} MiB  requests {n}  failures {len(failures)}", flush=True)
for t in threads:
    t.join(360)
server.stop()

first, last, growth = rel.rss_growth(samples, args.warmup_minutes * 60)
total = sum(counts.values())
lines = [
    f"Soak test: {args.minutes:g} min, {args.clients} clients, on {rel.machine()}; warm-up {args.warmup_minutes:g} min.",
    "",
    f"- requests: {total}; 5xx or lost connections: {len(failures)}",
    f"- resident memory: {samples[0][1]:.0f} MiB at 10 s, {first:.0f} MiB after the warm-up, {last:.0f} MiB at the end (growth {growth:+.1f} %), peak {max(r for _, r in samples):.0f} MiB",
    "- resident memory by 5-minute window (median, min–max MiB): " + "; ".join(rel.rss_windows(samples, 300)),
    "",
    "| action | " + " | ".join(["2xx", "4xx", "5xx", "lost"]) + " |",
    "|---|---|---|---|---|",
]
for action in sorted({a for a, _ in counts}):
    lines.append(f"| {action} | " + " | ".join(str(counts[(action, c)]) for c in ["2xx", "4xx", "5xx", "lost"]) + " |")
lines += ["", "failures:" if failures else "no failures"] + [f"- {f}" for f in failures[:50]]
ok = not failures and growth < 10
lines.append("")
lines.append("PASS" if ok else "FAIL")
open(os.path.join(report, "summary.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
shutil.rmtree(work, ignore_errors=True)
sys.exit(0 if ok else 1)
