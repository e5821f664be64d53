#!/usr/bin/env python3
"""ONNX Runtime's side of `styleforge bench --only onnx`: times ONNX models on the CPU the way the
bench times styleforge (one warm-up run, then the median of --runs runs on random RGB 0..255
inputs, float32), with the intra-op thread count styleforge uses, and prints one JSON object per
model and size: {"model": PATH, "width": W, "height": H, "median_ms": MS, "onnxruntime": VERSION}.

`styleforge bench` runs this script itself when ONNX Runtime is installed
(`scripts/install-test-tools.sh` puts it in .tools/py), so both sides are measured in one run:

    .tools/py/bin/python scripts/onnxruntime-bench.py --model a.onnx --model b.onnx \
        --sizes 256x256,512x512 --runs 5 --threads 2
"""

import argparse
import json
import statistics
import time

import numpy as np
import onnxruntime as ort


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", required=True, help="an ONNX file (repeatable)")
    p.add_argument("--sizes", default="256x256,512x512", help="WxH list, comma-separated")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in a.sizes.split(",") if s]
    rng = np.random.default_rng(0)
    for path in a.model:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = a.threads
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        for w, h in sizes:
            def feed():
                return {name: rng.uniform(0, 255, size=(1, 3, h, w)).astype(np.float32)}

            session.run(None, feed())
            times = []
            for _ in range(max(1, a.runs)):
                x = feed()
                t = time.perf_counter()
                session.run(None, x)
                times.append((time.perf_counter() - t) * 1e3)
            print(json.dumps({"model": path, "width": w, "height": h, "median_ms": statistics.median(times), "onnxruntime": ort.__version__}), flush=True)


if __name__ == "__main__":
    main()
