#!/usr/bin/env python3
"""The PyTorch side of `styleforge bench`: the same four workloads, timed the same way (median of
5 runs after a warm-up, float32, 2 threads by default), for anyone with PyTorch and torchvision
installed. Not run in CI (the project does not depend on Python packages beyond its test tools).

    python3 scripts/pytorch-bench.py [--threads 2] [--runs 5] [--only classic|microast|filters]
        [--microast-repo DIR [--microast-weights DIR]]

(`scripts/install-bench-tools.sh` installs PyTorch, torchvision and safetensors into .tools/bench:
`.tools/bench/bin/python scripts/pytorch-bench.py`.)

Workloads (the network definitions are the references the styleforge networks reproduce):
- TransformerNet (pytorch/examples fast_neural_style, width 32), forward at 512x512;
- torchvision VGG-19 features up to relu4_1, forward at 512x512;
- one Gatys loss-and-gradient evaluation at 384x384 (VGG-19 to relu5_1, content relu4_2, Gram
  style losses at relu1_1..relu5_1, total variation), gradient with respect to the image;
- one CycleGAN ResNet generator training step at 128x128 (ngf 32, 6 blocks, instance norm,
  reflection padding): forward, L1 loss, backward, Adam step.
Weights are random: timing does not depend on them.

MicroAST (Wang et al., AAAI 2023) rows need a checkout of EndyWon/MicroAST, given with
`--microast-repo DIR`: the script imports `net_microAST` (and its `function` helper) from there and
does not define the network itself; without the flag these rows are skipped with a note. The four
published weight files (`*_iter_160000.pth.tar`) are loaded from `--microast-weights` (default
DIR/models). Each row is one full stylisation at alpha 1 under torch.inference_mode(): style
encoder and modulator on a 512x512 style, content encoder and decoder on the content, at content
sizes 512x512, 1024x1024 and 3840x2160 (4K); inputs are random RGB in [0, 1]. `--runs` applies to
these rows too (at least 1 after the warm-up). They run before the other workloads, so the peak
RSS of the process (ru_maxrss), read right after the 4K row and printed under the table, is
MicroAST's own (plus PyTorch itself).

Filter rows (`--only filters`; also in the default run, after MicroAST and before the classic
workloads), each defined here from the layer description in `../shared` and checked before it is
timed against the reference outputs made with the original code, on the same weights: the script
prints the worst relative L2 error (||out - ref|| / ||ref||) and stops if it is 1e-4 or more.
- RFB-320 face detector (Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB, version-RFB-320;
  `shared/models/face_detector/README.md`), the published `version-RFB-320.pth`: raw logits and
  box regressions, and the test-mode scores (softmax) and decoded corner boxes, on the four
  reference inputs of `reference/face_ref.safetensors`; its priors are generated here and checked
  against the stored ones. Timed: one test-mode forward pass (network, softmax, box decoding) at
  320x240, the detector's fixed input size.
- AnimeGANv2 generator in the bryandlee/animegan2-pytorch layout (`shared/parity/
  animegan2_generator.pth`, random weights): `block_c`'s output, the output with the port's default
  `align_corners=True` resizing at an even and an odd size, and the x2 `align_corners=False`
  variant, against `parity/animegan2.safetensors`. Timed: one forward pass at 512x512 with
  `align_corners=True`.
Timed inputs are random values in [-1, 1], the range both networks take.
The peak RSS read after the filter rows is printed when MicroAST did not run before them.

`--only classic|microast|filters` runs one group. The reference files are read from `../shared`
beside the checkout (`STYLEFORGE_SHARED` overrides the path, as for the tests); the filter rows
need the `safetensors` package.
"""

import argparse
import math
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torchvision


class ConvLayer(nn.Module):
    def __init__(self, cin, cout, k, stride):
        super().__init__()
        self.pad = nn.ReflectionPad2d(k // 2)
        self.conv2d = nn.Conv2d(cin, cout, k, stride)

    def forward(self, x):
        return self.conv2d(self.pad(x))


class Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.in1 = ConvLayer(c, c, 3, 1), nn.InstanceNorm2d(c, affine=True)
        self.conv2, self.in2 = ConvLayer(c, c, 3, 1), nn.InstanceNorm2d(c, affine=True)

    def forward(self, x):
        y = torch.relu(self.in1(self.conv1(x)))
        return self.in2(self.conv2(y)) + x


class Upsample(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = ConvLayer(cin, cout, 3, 1)

    def forward(self, x):
        return self.conv(nn.functional.interpolate(x, scale_factor=2, mode="nearest"))


class TransformerNet(nn.Module):
    def __init__(self, nc=32):
        super().__init__()
        c1, c2, c3 = nc, 2 * nc, 4 * nc
        self.down = nn.ModuleList([ConvLayer(3, c1, 9, 1), ConvLayer(c1, c2, 3, 2), ConvLayer(c2, c3, 3, 2)])
        self.dnorm = nn.ModuleList([nn.InstanceNorm2d(c, affine=True) for c in (c1, c2, c3)])
        self.res = nn.Sequential(*[Residual(c3) for _ in range(5)])
        self.up = nn.ModuleList([Upsample(c3, c2), Upsample(c2, c1)])
        self.unorm = nn.ModuleList([nn.InstanceNorm2d(c, affine=True) for c in (c2, c1)])
        self.out = ConvLayer(c1, 3, 9, 1)

    def forward(self, x):
        for conv, norm in zip(self.down, self.dnorm):
            x = torch.relu(norm(conv(x)))
        x = self.res(x)
        for conv, norm in zip(self.up, self.unorm):
            x = torch.relu(norm(conv(x)))
        return self.out(x)


def resnet_generator(ngf=32, n_blocks=6):
    norm = lambda c: nn.InstanceNorm2d(c)
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), norm(ngf), nn.ReLU(True)]
    for m in (1, 2):
        layers += [nn.Conv2d(ngf * m, ngf * m * 2, 3, 2, 1), norm(ngf * m * 2), nn.ReLU(True)]

    class Block(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv_block = nn.Sequential(
                nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), norm(c), nn.ReLU(True),
                nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), norm(c))

        def forward(self, x):
            return x + self.conv_block(x)

    layers += [Block(ngf * 4) for _ in range(n_blocks)]
    for m in (4, 2):
        layers += [nn.ConvTranspose2d(ngf * m, ngf * m // 2, 3, 2, 1, output_padding=1), norm(ngf * m // 2), nn.ReLU(True)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def gram(f):
    n, c, h, w = f.shape
    f = f.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def timed(fn, runs):
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def microast_rows(repo, weights, runs):
    """Full MicroAST stylisation (TestNet.forward) with the published weights; returns table rows
    and the peak RSS in MiB after the 4K row."""
    sys.path.insert(0, os.path.abspath(repo))
    import net_microAST as net  # from the user's checkout of EndyWon/MicroAST

    def load(module, name):
        path = os.path.join(weights, f"{name}_iter_160000.pth.tar")
        module.load_state_dict(torch.load(path, map_location="cpu"))
        return module.eval()

    network = net.TestNet(load(net.Encoder(), "content_encoder"), load(net.Encoder(), "style_encoder"),
                          load(net.Modulator(), "modulator"), load(net.Decoder(), "decoder")).eval()
    style = torch.rand(1, 3, 512, 512)
    rows = []
    for w, h in ((512, 512), (1024, 1024), (3840, 2160)):
        content = torch.rand(1, 3, h, w)
        with torch.inference_mode():
            ms = timed(lambda: network(content, style, 1.0), max(1, runs))
        rows.append(("MicroAST stylisation (512² style, alpha 1)", w if w == h else (w, h), ms))
        del content
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return rows, rss


TOL = 1e-4


def shared_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.environ.get("STYLEFORGE_SHARED") or os.path.join(here, "..", "..", "shared")


def rel_l2(out, ref):
    out, ref = out.double(), ref.double()
    if out.shape != ref.shape:
        raise SystemExit(f"shape {tuple(out.shape)}, reference {tuple(ref.shape)}")
    return ((out - ref).norm() / ref.norm()).item()


# RFB-320 face detector (shared/models/face_detector/README.md). The module tree reproduces the
# state dict's key layout: base_net.N (conv_bn, conv_dw, one BasicRFB), extras.0, and the heads.

def conv_bn(cin, cout, stride):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


def conv_dw(cin, cout, stride=1):
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU(),
        nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class BasicConv(nn.Module):
    """Convolution without bias, batch norm, and a ReLU where asked."""

    def __init__(self, cin, cout, k, pad=0, dilation=1, relu=False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, 1, pad, dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = relu

    def forward(self, x):
        x = self.bn(self.conv(x))
        return torch.relu(x) if self.relu else x


class BasicRFB(nn.Module):
    """The receptive-field block at 64 channels (inter 8, scale 1.0)."""

    def __init__(self, c=64, inter=8):
        super().__init__()
        i, i2 = inter, 2 * inter
        self.branch0 = nn.Sequential(BasicConv(c, i, 1), BasicConv(i, i2, 3, 1, relu=True),
                                     BasicConv(i2, i2, 3, 2, dilation=2))
        self.branch1 = nn.Sequential(BasicConv(c, i, 1), BasicConv(i, i2, 3, 1, relu=True),
                                     BasicConv(i2, i2, 3, 3, dilation=3))
        self.branch2 = nn.Sequential(BasicConv(c, i, 1), BasicConv(i, i // 2 * 3, 3, 1, relu=True),
                                     BasicConv(i // 2 * 3, i2, 3, 1, relu=True),
                                     BasicConv(i2, i2, 3, 5, dilation=5))
        self.ConvLinear = BasicConv(3 * i2, c, 1)
        self.shortcut = BasicConv(c, c, 1)

    def forward(self, x):
        y = torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1)
        return torch.relu(self.ConvLinear(y) + self.shortcut(x))


def separable(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cin, 3, 1, 1, groups=cin), nn.ReLU(), nn.Conv2d(cin, cout, 1))


class FaceDetector(nn.Module):
    """version-RFB-320: SSD heads on four levels (anchors 3, 2, 2, 3), 4420 priors at 320x240."""

    ANCHORS = (3, 2, 2, 3)
    MIN_BOXES = ((10, 16, 24), (32, 48), (64, 96), (128, 192, 256))

    def __init__(self):
        super().__init__()
        self.base_net = nn.Sequential(
            conv_bn(3, 16, 2), conv_dw(16, 32), conv_dw(32, 32, 2), conv_dw(32, 32), conv_dw(32, 64, 2),
            conv_dw(64, 64), conv_dw(64, 64), BasicRFB(), conv_dw(64, 128, 2), conv_dw(128, 128),
            conv_dw(128, 128), conv_dw(128, 256, 2), conv_dw(256, 256))
        self.extras = nn.ModuleList([nn.Sequential(
            nn.Conv2d(256, 64, 1), nn.ReLU(),
            nn.Sequential(nn.Conv2d(64, 64, 3, 2, 1, groups=64), nn.ReLU(), nn.Conv2d(64, 256, 1)), nn.ReLU())])
        chans = (64, 128, 256)
        self.classification_headers = nn.ModuleList(
            [separable(c, a * 2) for c, a in zip(chans, self.ANCHORS)] + [nn.Conv2d(256, self.ANCHORS[3] * 2, 3, 1, 1)])
        self.regression_headers = nn.ModuleList(
            [separable(c, a * 4) for c, a in zip(chans, self.ANCHORS)] + [nn.Conv2d(256, self.ANCHORS[3] * 4, 3, 1, 1)])
        self.register_buffer("priors", self.make_priors(320, 240), persistent=False)

    @classmethod
    def make_priors(cls, w, h):
        rows = []
        for shrink, boxes in zip((8, 16, 32, 64), cls.MIN_BOXES):
            fw, fh = math.ceil(w / shrink), math.ceil(h / shrink)
            for j in range(fh):
                for i in range(fw):
                    rows += [[(i + 0.5) / fw, (j + 0.5) / fh, m / w, m / h] for m in boxes]
        return torch.tensor(rows, dtype=torch.float32).clamp(0, 1)

    def raw(self, x):
        """Logits (N, 4420, 2) and box regressions (N, 4420, 4), before softmax and decoding."""
        feats = []
        for lo, hi in ((0, 8), (8, 11), (11, 13)):
            x = self.base_net[lo:hi](x)
            feats.append(x)
        feats.append(self.extras[0](x))
        n = x.shape[0]
        flat = lambda t, k: t.permute(0, 2, 3, 1).reshape(n, -1, k)
        logits = torch.cat([flat(h(f), 2) for h, f in zip(self.classification_headers, feats)], 1)
        locs = torch.cat([flat(h(f), 4) for h, f in zip(self.regression_headers, feats)], 1)
        return logits, locs

    def forward(self, x):
        """Test mode: face scores (softmax) and corner-form boxes normalised to 0..1."""
        logits, locs = self.raw(x)
        p = self.priors
        cxcy = locs[..., :2] * 0.1 * p[:, 2:] + p[:, :2]
        wh = torch.exp(locs[..., 2:] * 0.2) * p[:, 2:]
        return torch.softmax(logits, 2), torch.cat([cxcy - wh / 2, cxcy + wh / 2], 2)


# AnimeGANv2 generator, bryandlee/animegan2-pytorch's state-dict layout: every conv-norm-LeakyReLU
# unit is Sequential(pad, conv, GroupNorm(1, C), LeakyReLU(0.2)), hence keys like block_a.0.1.weight.

def conv_norm_lrelu(cin, cout, k=3, stride=1, groups=1, bias=False):
    pad = (0, 1, 0, 1) if stride == 2 else k // 2
    return nn.Sequential(nn.ReflectionPad2d(pad), nn.Conv2d(cin, cout, k, stride, groups=groups, bias=bias),
                         nn.GroupNorm(1, cout), nn.LeakyReLU(0.2))


class InvertedResidual(nn.Module):
    """1x1 expansion x2, depthwise 3x3 (with bias), 1x1 projection + GroupNorm; identity if widths agree."""

    def __init__(self, cin, cout):
        super().__init__()
        mid = 2 * cin
        self.layers = nn.Sequential(conv_norm_lrelu(cin, mid, 1), conv_norm_lrelu(mid, mid, groups=mid, bias=True),
                                    nn.Conv2d(mid, cout, 1, bias=False), nn.GroupNorm(1, cout))

    def forward(self, x):
        y = self.layers(x)
        return x + y if x.shape[1] == y.shape[1] else y


class AnimeGan2(nn.Module):
    def __init__(self):
        super().__init__()
        cnl = conv_norm_lrelu
        self.block_a = nn.Sequential(cnl(3, 32, 7), cnl(32, 64, stride=2), cnl(64, 64))
        self.block_b = nn.Sequential(cnl(64, 128, stride=2), cnl(128, 128))
        self.block_c = nn.Sequential(cnl(128, 128), InvertedResidual(128, 256), InvertedResidual(256, 256),
                                     InvertedResidual(256, 256), InvertedResidual(256, 256), cnl(256, 128))
        self.block_d = nn.Sequential(cnl(128, 128), cnl(128, 128))
        self.block_e = nn.Sequential(cnl(128, 64), cnl(64, 64), cnl(64, 32, 7))
        self.out_layer = nn.Sequential(nn.Conv2d(32, 3, 1, bias=False), nn.Tanh())

    def forward(self, x, align_corners=True, trace=None):
        a = self.block_a(x)
        c = self.block_c(self.block_b(a))
        if trace is not None:
            trace["block_c_out"] = c

        def up(t, size):
            if align_corners:
                return nn.functional.interpolate(t, size, mode="bilinear", align_corners=True)
            return nn.functional.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)

        d = self.block_d(up(c, a.shape[-2:]))
        return self.out_layer(self.block_e(up(d, x.shape[-2:])))


def filter_rows(runs):
    """Parity-checked filter networks; returns table rows and notes."""
    from safetensors.torch import load_file

    root = shared_dir()
    rows, notes = [], []

    face = FaceDetector().eval()
    face_dir = os.path.join(root, "models", "face_detector")
    face.load_state_dict(torch.load(os.path.join(face_dir, "version-RFB-320.pth"), map_location="cpu", weights_only=True))
    ref = load_file(os.path.join(face_dir, "reference", "face_ref.safetensors"))
    worst = (rel_l2(face.priors, ref["priors"]), "priors")
    cases = sorted(k[: -len(".input")] for k in ref if k.endswith(".input"))
    with torch.inference_mode():
        for case in cases:
            x = ref[f"{case}.input"]
            logits, locs = face.raw(x)
            scores, boxes = face(x)
            for name, out in (("logits", logits), ("locations", locs), ("scores", scores), ("boxes", boxes)):
                worst = max(worst, (rel_l2(out, ref[f"{case}.{name}"]), f"{case}.{name}"))
    notes.append(f"Parity, RFB-320 face detector: priors and raw and test-mode outputs of {len(cases)} cases,"
                 f" worst relative L2 {worst[0]:.2e} ({worst[1]})")
    if not worst[0] < TOL:
        raise SystemExit(f"{notes[-1]}: parity failed")
    x = torch.rand(1, 3, 240, 320) * 2 - 1
    with torch.inference_mode():
        rows.append(("RFB-320 face detector (test mode: scores and boxes)", (320, 240), timed(lambda: face(x), runs)))

    anime = AnimeGan2().eval()
    anime.load_state_dict(torch.load(os.path.join(root, "parity", "animegan2_generator.pth"),
                                     map_location="cpu", weights_only=True))
    ref = load_file(os.path.join(root, "parity", "animegan2.safetensors"))
    outs = {}
    with torch.inference_mode():
        outs["y_align_corners"] = anime(ref["x"], trace=outs)  # also stores block_c_out
        outs["y_odd_align_corners"] = anime(ref["x_odd"])
        outs["y_scale2"] = anime(ref["x"], align_corners=False)
    worst = max((rel_l2(out, ref[name]), name) for name, out in outs.items())
    notes.append(f"Parity, AnimeGANv2 generator: {len(outs)} tensors, worst relative L2 {worst[0]:.2e} ({worst[1]})")
    if not worst[0] < TOL:
        raise SystemExit(f"{notes[-1]}: parity failed")
    x = torch.rand(1, 3, 512, 512) * 2 - 1
    with torch.inference_mode():
        rows.append(("AnimeGANv2 generator (align_corners=True)", 512, timed(lambda: anime(x), runs)))
    return rows, notes


def classic_rows(runs):
    rows = []
    net = TransformerNet().eval()
    x = torch.rand(1, 3, 512, 512) * 255
    with torch.no_grad():
        rows.append(("TransformerNet stock (w32)", 512, timed(lambda: net(x), runs)))

    vgg = torchvision.models.vgg19().features.eval()
    for p in vgg.parameters():
        p.requires_grad_(False)
    relu4_1 = vgg[:21]
    x = torch.rand(1, 3, 512, 512)
    with torch.no_grad():
        rows.append(("VGG19 to relu4_1", 512, timed(lambda: relu4_1(x), runs)))

    names = {1: "relu1_1", 6: "relu2_1", 11: "relu3_1", 20: "relu4_1", 22: "relu4_2", 29: "relu5_1"}

    def features(img):
        out, y = {}, img
        for i, layer in enumerate(vgg[:30]):
            y = layer(y)
            if i in names:
                out[names[i]] = y
        return out

    content, style = torch.rand(1, 3, 384, 384), torch.rand(1, 3, 384, 384)
    with torch.no_grad():
        fc = features(content)["relu4_2"]
        gs = {k: gram(v) for k, v in features(style).items() if k != "relu4_2"}
    img = torch.rand(1, 3, 384, 384, requires_grad=True)

    def gatys_step():
        img.grad = None
        f = features(img)
        loss = ((f["relu4_2"] - fc) ** 2).mean()
        loss = loss + 1e5 * sum(((gram(f[k]) - g) ** 2).mean() for k, g in gs.items())
        tv = ((img[:, :, 1:] - img[:, :, :-1]) ** 2).mean() + ((img[:, :, :, 1:] - img[:, :, :, :-1]) ** 2).mean()
        (loss + 1e-2 * tv).backward()

    rows.append(("Gatys step (VGG19 to relu5_1 + gradient)", 384, timed(gatys_step, runs)))

    g = resnet_generator()
    opt = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def gan_step():
        x, target = torch.rand(1, 3, 128, 128) * 2 - 1, torch.rand(1, 3, 128, 128) * 2 - 1
        opt.zero_grad()
        (g(x) - target).abs().mean().backward()
        opt.step()

    rows.append(("CycleGAN generator training step (ngf 32, 6 blocks)", 128, timed(gan_step, runs)))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", choices=("classic", "microast", "filters"),
                    help="run only the four classic workloads, the MicroAST rows or the filter rows")
    ap.add_argument("--microast-repo", metavar="DIR", help="a checkout of EndyWon/MicroAST")
    ap.add_argument("--microast-weights", metavar="DIR", help="MicroAST weight files (default: DIR/models)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows, microast, notes = [], [], []

    # MicroAST first, so that the peak RSS read after its 4K row is its own (plus torch itself).
    if a.only in (None, "microast"):
        if a.microast_repo:
            torch.manual_seed(0)
            weights = a.microast_weights or os.path.join(a.microast_repo, "models")
            microast, rss = microast_rows(a.microast_repo, weights, a.runs)
            notes.append(f"Peak RSS after the MicroAST 4K row: {rss:.0f} MiB")
        else:
            notes.append("MicroAST rows skipped: pass --microast-repo DIR (a checkout of EndyWon/MicroAST)")
    filters = []
    if a.only in (None, "filters"):
        torch.manual_seed(0)
        filters, filter_notes = filter_rows(a.runs)
        if not microast:
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            filter_notes.append(f"Peak RSS after the filter rows: {rss:.0f} MiB")
        notes += filter_notes
    if a.only in (None, "classic"):
        torch.manual_seed(0)
        rows += classic_rows(a.runs)
    rows += microast + filters

    print(f"PyTorch {torch.__version__}, threads {a.threads}, runs {a.runs} (median)")
    print("| workload | size | ms |")
    print("|---|---|---|")
    for w, s, ms in rows:
        size = f"{s}²" if isinstance(s, int) else f"{s[0]}×{s[1]}"
        print(f"| {w} | {size} | {ms:.1f} |")
    for n in notes:
        print(n)


if __name__ == "__main__":
    main()
