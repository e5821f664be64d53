#!/usr/bin/env python3
"""The TensorFlow side of `styleforge bench` for the built-in cartoon filters: the CartoonGAN-light
generator (the "light", ShuffleNet-V2-based generator of mnicnc404/CartoonGan-tensorflow) built
with Keras layers, loaded from the published checkpoint, checked against the authors' own outputs,
then timed the way scripts/pytorch-bench.py times its rows (median of 5 runs after a warm-up,
float32, 2 threads by default). Not run in CI; scripts/install-bench-tools.sh installs what it
needs (tensorflow-cpu, safetensors) into .tools/bench.

    .tools/bench/bin/python scripts/tensorflow-bench.py [--threads 2] [--runs 5]
        [--style paprika|shinkai] [--sizes 512,1024] [--xla]

The network follows the layer-by-layer description in
`shared/models/cartoongan_light/README.md`: a 5x5 convolution, two ShuffleNet-V2 down units, eight
basic units, two legacy-bilinear x2 upsamplings (no half-pixel centres, as in the authors' TF 2.0)
each followed by a biased 1x1 convolution and a basic unit, a 5x5 convolution and tanh. Every norm
is keras-contrib's InstanceNormalization with axis=None: one mean and one population standard
deviation over H, W and C together, eps 1e-3 added to the standard deviation, scalar gamma and
beta. Depthwise 3x3 layers use TF 'same' padding (at stride 2 and even sizes: none on top and
left, one on bottom and right).

The variables come from `shared/models/cartoongan_light/<style>/generator.*` through
tf.train.load_checkpoint; every float checkpoint variable must be used exactly once. Before
timing, the script runs both styles on every reference input in
`reference/cartoongan_light_ref.safetensors` through the same compiled forward function that it
times and prints the worst relative L2 error (||out - ref|| / ||ref||) of the outputs, and of the
per-block intermediates stored for the two tiny paprika cases; it stops with an error if an
output is off by 1e-4 or more. Timed inputs are random RGB in [-1, 1], NHWC, batch 1. The forward
pass is a tf.function (graph mode, TensorFlow's default CPU kernels, oneDNN included unless
TF_ENABLE_ONEDNN_OPTS=0); `--xla` compiles it with XLA instead (jit_compile=True). The peak RSS of
the process (ru_maxrss) is read after the largest size.
"""

import argparse
import os
import resource
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from keras import layers  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

TOL = 1e-4
STYLES = ("paprika", "shinkai")
SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


def shared_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.environ.get("STYLEFORGE_SHARED") or os.path.join(here, "..", "..", "shared")


class GlobalNorm(layers.Layer):
    """keras-contrib InstanceNormalization(axis=None, epsilon=1e-3): statistics over H, W and C."""

    def build(self, input_shape):
        self.gamma = self.add_weight(name="gamma", shape=(1,), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(1,), initializer="zeros")

    def call(self, x):
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        std = tf.sqrt(tf.reduce_mean(tf.square(x - mean), axis=[1, 2, 3], keepdims=True))
        return (x - mean) / (std + 1e-3) * self.gamma + self.beta


class LegacyResize2x(layers.Layer):
    """Bilinear x2 with align_corners=False and half_pixel_centers=False (TF 2.0's Keras)."""

    def call(self, x):
        size = tf.shape(x)[1:3] * 2
        return tf.raw_ops.ResizeBilinear(images=x, size=size, align_corners=False, half_pixel_centers=False)


class ChannelShuffle(layers.Layer):
    """concat(a, b) with its two halves interleaved: out[2i] = a[i], out[2i+1] = b[i]."""

    def call(self, x):
        n, h, w, c = tf.unstack(tf.shape(x))
        y = tf.reshape(x, tf.stack([n, h, w, 2, c // 2]))
        y = tf.transpose(y, [0, 1, 2, 4, 3])
        return tf.reshape(y, tf.stack([n, h, w, c]))


class Builder:
    """Creates the layers and records which checkpoint key feeds which weight."""

    def __init__(self):
        self.bindings = []  # (checkpoint key, keras variable)

    def bind(self, layer, prefix, names):
        for var, name in zip(layer.weights, names):
            self.bindings.append((f"{prefix}/{name}", var))

    def conv(self, x, prefix, filters, k, bias):
        layer = layers.Conv2D(filters, k, padding="valid", use_bias=bias)
        y = layer(x)
        self.bind(layer, prefix, ["kernel", "bias"] if bias else ["kernel"])
        return y

    def dw(self, x, prefix, stride):
        layer = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)
        y = layer(x)
        self.bind(layer, prefix, ["depthwise_kernel"])
        return y

    def norm(self, x, prefix, relu):
        layer = GlobalNorm()
        y = layer(x)
        self.bind(layer, prefix, ["gamma", "beta"])
        return layers.ReLU()(y) if relu else y

    def basic_unit(self, x, p):
        c = x.shape[-1]
        left, right = x[..., : c // 2], x[..., c // 2:]
        b = self.norm(self.conv(right, f"{p}/layer-0", c // 2, 1, False), f"{p}/layer-1", True)
        b = self.norm(self.dw(b, f"{p}/layer-3", 1), f"{p}/layer-4", False)
        b = self.norm(self.conv(b, f"{p}/layer-5", c // 2, 1, False), f"{p}/layer-6", True)
        return ChannelShuffle()(layers.Concatenate()([left, b]))

    def down_unit(self, x, p, cb):
        left = self.norm(self.dw(x, f"{p}/l_model/layer-0", 2), f"{p}/l_model/layer-1", False)
        left = self.conv(left, f"{p}/l_model/layer-2", cb, 1, False)
        right = self.norm(self.conv(x, f"{p}/r_model/layer-0", cb, 1, False), f"{p}/r_model/layer-1", True)
        right = self.norm(self.dw(right, f"{p}/r_model/layer-3", 2), f"{p}/r_model/layer-4", False)
        right = self.conv(right, f"{p}/r_model/layer-5", cb, 1, False)
        cat = self.norm(layers.Concatenate()([left, right]), f"{p}/bn_act/layer-0", True)
        return ChannelShuffle()(cat)


def cartoongan_light():
    """The generator as a Keras model: outputs (tanh output, {block name: block output})."""
    b = Builder()
    x = keras.Input((None, None, 3), batch_size=1)
    trace = {}
    y = layers.ZeroPadding2D(2)(x)
    y = b.norm(b.conv(y, "flat_conv1/model/layer-1", 96, 5, True), "flat_conv1/model/layer-2", True)
    trace["flat_conv1"] = y
    y = trace["down_conv1"] = b.down_unit(y, "down_conv1", 96)
    y = trace["down_conv2"] = b.down_unit(y, "down_conv2", 192)
    for i in range(8):
        y = b.basic_unit(y, f"residual_blocks/layer-{i}/model")
        if i == 0:
            trace["residual_blocks.0"] = y
    trace["residual_blocks"] = y
    for name, c in (("up_conv1", 192), ("up_conv2", 96)):
        y = b.conv(LegacyResize2x()(y), f"{name}/model/layer-0", c, 1, True)
        y = trace[name] = b.basic_unit(y, f"{name}/model/layer-1/model")
    y = b.conv(layers.ZeroPadding2D(2)(y), "final_conv/layer-1", 3, 5, True)
    trace["final_conv"] = y
    out = layers.Activation("tanh")(y)
    return keras.Model(x, [out, trace], name="cartoongan_light"), b.bindings


def load_checkpoint(bindings, path):
    """Assigns every bound weight from the checkpoint; each float variable must be used once."""
    reader = tf.train.load_checkpoint(path)
    dtypes = reader.get_variable_to_dtype_map()
    floats = {k[: -len(SUFFIX)] for k, d in dtypes.items() if d == tf.float32 and k.endswith(SUFFIX)}
    used = set()
    for key, var in bindings:
        value = reader.get_tensor(key + SUFFIX)
        if tuple(value.shape) != tuple(var.shape):
            raise SystemExit(f"{key}: checkpoint shape {value.shape}, model {tuple(var.shape)}")
        if key in used:
            raise SystemExit(f"{key} bound twice")
        var.assign(value)
        used.add(key)
    if used != floats:
        raise SystemExit(f"checkpoint variables not used: {sorted(floats - used)}; missing: {sorted(used - floats)}")
    return len(used)


def rel_l2(out, ref):
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    if out.shape != ref.shape:
        raise SystemExit(f"shape {out.shape}, reference {ref.shape}")
    return float(np.linalg.norm(out - ref) / np.linalg.norm(ref))


def parity(forward, bindings, root):
    """Worst relative L2 of outputs and of intermediates over both styles and every case."""
    ref = load_file(os.path.join(root, "reference", "cartoongan_light_ref.safetensors"))
    cases = sorted(k[len("input."):] for k in ref if k.startswith("input."))
    worst_out, worst_mid, count = (0.0, ""), (0.0, ""), 0
    for style in STYLES:
        count = load_checkpoint(bindings, os.path.join(root, style, "generator"))
        for case in cases:
            out, trace = forward(tf.constant(ref[f"input.{case}"]))
            e = rel_l2(out, ref[f"{style}.{case}.output"])
            worst_out = max(worst_out, (e, f"{style}.{case}"))
            for name, value in trace.items():
                key = f"{style}.{case}.{name}"
                if key in ref:
                    worst_mid = max(worst_mid, (rel_l2(value, ref[key]), key))
    return worst_out, worst_mid, count, len(cases)


def timed(fn, runs):
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--style", choices=STYLES, default="paprika", help="the weights timed (default paprika)")
    ap.add_argument("--sizes", default="512,1024", help="square sizes timed, comma-separated")
    ap.add_argument("--xla", action="store_true", help="compile the forward pass with XLA (jit_compile=True)")
    a = ap.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(a.threads)
    tf.config.threading.set_inter_op_parallelism_threads(a.threads)
    root = os.path.join(shared_dir(), "models", "cartoongan_light")

    model, bindings = cartoongan_light()

    @tf.function(jit_compile=a.xla or None, reduce_retracing=True)
    def forward_traced(x):
        return model(x, training=False)

    (e_out, worst), (e_mid, worst_mid), count, cases = parity(forward_traced, bindings, root)
    notes = [
        f"Parity: {count} checkpoint variables per style; {2 * cases} outputs (paprika, shinkai x {cases} cases),"
        f" worst relative L2 {e_out:.2e} ({worst}); intermediates {e_mid:.2e} ({worst_mid})",
    ]
    if not e_out < TOL:
        print("\n".join(notes))
        raise SystemExit(f"parity failed: relative L2 {e_out:.3e} >= {TOL}")

    load_checkpoint(bindings, os.path.join(root, a.style, "generator"))

    @tf.function(jit_compile=a.xla or None, reduce_retracing=True)
    def forward(x):
        return model(x, training=False)[0]

    rng = np.random.default_rng(0)
    rows = []
    sizes = [int(s) for s in a.sizes.split(",")]
    for s in sizes:
        x = tf.constant(rng.uniform(-1, 1, (1, s, s, 3)).astype(np.float32))
        ms = timed(lambda: forward(x).numpy(), a.runs)
        rows.append((f"CartoonGAN-light ({a.style}){' XLA' if a.xla else ''}", s, ms))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    notes.append(f"Peak RSS after the {sizes[-1]}² row: {rss:.0f} MiB")

    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") != "0"
    print(f"TensorFlow {tf.__version__} (Keras {keras.__version__}, oneDNN {'on' if onednn else 'off'}), "
          f"threads {a.threads}, runs {a.runs} (median)")
    print("| workload | size | ms |")
    print("|---|---|---|")
    for w, s, ms in rows:
        print(f"| {w} | {s}² | {ms:.1f} |")
    for n in notes:
        print(n)


if __name__ == "__main__":
    sys.exit(main())
