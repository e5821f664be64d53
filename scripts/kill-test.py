#!/usr/bin/env python3
"""Kill test: SIGKILL `styleforge serve` in the middle of jobs, restart it, and check that every
accepted job finishes exactly once and that the blob store holds no half-written file.

    scripts/kill-test.py [--trials 20] [--jobs 3] [--side 1536]

Each trial starts the server on the same data directory (SQLite, local blob store, one
in-process worker, 3 s leases), waits for the jobs left by the previous trial to finish, submits
`--jobs` new jobs (MicroAST with a built-in painting, or a CartoonGAN filter, on a generated
photo of `--side` px), waits until one is running, sleeps 0–2 s at random and kills the server
with SIGKILL. A last start lets everything finish, then the database and the store are checked:
each accepted job `succeeded` with one result row, every result's blob is present, and every
file under the store's `sha256/` tree is a complete blob (its sha256 is its name). Needs a
release build; writes target/kill-report/{summary.md,server.log}.
"""
import argparse
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reliability as rel  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--trials", type=int, default=20)
ap.add_argument("--jobs", type=int, default=3)
ap.add_argument("--side", type=int, default=1536)
ap.add_argument("--seed", type=int, default=1)
args = ap.parse_args()
rng = random.Random(args.seed)

report = os.path.join(rel.REPO, "target", "kill-report")
os.makedirs(report, exist_ok=True)
work = tempfile.mkdtemp(prefix="styleforge-kill-")
data, home = os.path.join(work, "data"), os.path.join(work, "home")
log = os.path.join(report, "server.log")
open(log, "w").close()
styles = ["starry-night", "great-wave", "cartoon-paprika", "cartoon-shinkai", "udnie"]
accepted = []
killed_running = 0
recoveries = []


def new_server():
    return rel.Server(data, home, log, ["--workers", "1", "--lease-secs", "3"]).start()


def wait_all(base, ids, timeout=900):
    deadline = time.time() + timeout
    pending = set(ids)
    while pending and time.time() < deadline:
        for jid in list(pending):
            s, body = rel.request(base, "GET", f"/v1/jobs/{jid}")
            if s == 200 and body["state"] in ("succeeded", "failed", "cancelled"):
                pending.discard(jid)
        time.sleep(0.2)
    return pending


photo = rel.png(args.side, args.side * 3 // 4, 7)
for trial in range(1, args.trials + 1):
    server = new_server()
    t0 = time.time()
    left = wait_all(server.base, accepted)
    if left:
        print(f"trial {trial}: {len(left)} jobs still unfinished after 900 s", flush=True)
    recoveries.append(time.time() - t0)
    s, body = rel.request(server.base, "POST", "/v1/images", photo, "image/png")
    assert s in (200, 201), (s, body)
    image = body["id"]
    mine = []
    for _ in range(args.jobs):
        s, body = rel.request(server.base, "POST", "/v1/stylize", {"image": image, "style": rng.choice(styles), "async": True})
        assert s == 202, (s, body)
        mine.append(body["job"])
    accepted += mine
    running = False
    deadline = time.time() + 120
    while time.time() < deadline and not running:
        for jid in mine:
            s, body = rel.request(server.base, "GET", f"/v1/jobs/{jid}")
            if s == 200 and body["state"] == "running":
                running = True
        time.sleep(0.05)
    time.sleep(rng.uniform(0, 2))
    states = [rel.request(server.base, "GET", f"/v1/jobs/{j}")[1]["state"] for j in mine]
    killed_running += states.count("running")
    server.kill()
    print(f"trial {trial}: killed with jobs {states} (recovery of the previous trial's jobs: {recoveries[-1]:.1f} s)", flush=True)

server = new_server()
t0 = time.time()
left = wait_all(server.base, accepted)
recoveries.append(time.time() - t0)
server.stop()

db = sqlite3.connect(os.path.join(data, "styleforge.db"))
rows = {jid: (state, attempts) for jid, state, attempts in db.execute("SELECT id, state, attempts FROM jobs")}
results = {}
for job_id, sha in db.execute("SELECT job_id, sha256 FROM results"):
    results.setdefault(job_id, []).append(sha)
blobs, bad = rel.check_store(os.path.join(data, "blobs"))
present = {n for _, _, files in os.walk(os.path.join(data, "blobs", "sha256")) for n in files}
not_succeeded = [j for j in accepted if rows.get(j, ("missing",))[0] != "succeeded"]
not_once = [j for j in accepted if len(results.get(j, [])) != 1]
missing_blobs = [sha for shas in results.values() for sha in shas if sha not in present]
attempts = [rows[j][1] for j in accepted if j in rows]
ok = not (left or not_succeeded or not_once or missing_blobs or bad)
lines = [
    f"Kill test: {args.trials} trials of SIGKILL mid-job, {args.jobs} jobs each ({args.side}×{args.side * 3 // 4} px), on {rel.machine()}.",
    "",
    f"- jobs accepted: {len(accepted)}; running when killed: {killed_running}; succeeded: {len(accepted) - len(not_succeeded)}; with exactly one result: {len(accepted) - len(not_once)}",
    f"- attempts per job: " + ", ".join(f"{a}: {attempts.count(a)}" for a in sorted(set(attempts))),
    f"- time for the jobs left by a kill to finish after the restart: {min(recoveries[1:]):.1f}–{max(recoveries[1:]):.1f} s",
    f"- blob store: {blobs} complete blobs, {len(bad)} other files, {len(missing_blobs)} results without their blob",
]
if not_succeeded:
    lines.append(f"- not succeeded: {[(j, rows.get(j)) for j in not_succeeded[:10]]}")
if not_once:
    lines.append(f"- not exactly one result: {[(j, len(results.get(j, []))) for j in not_once[:10]]}")
if bad:
    lines.append(f"- incomplete files: {bad[:10]}")
lines += ["", "PASS" if ok else "FAIL"]
open(os.path.join(report, "summary.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
shutil.rmtree(work, ignore_errors=True)
sys.exit(0 if ok else 1)
