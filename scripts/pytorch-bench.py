#!/usr/bin/env python3
"""The PyTorch side of `styleforge bench`: the same four workloads, timed the same way (median of
5 runs after a warm-up, float32, 2 threads by default), for anyone with PyTorch and torchvision
installed. Not run in CI (the project does not depend on Python packages beyond its test tools).

    python3 scripts/pytorch-bench.py [--threads 2] [--runs 5] [--only classic|microast]
        [--microast-repo DIR [--microast-weights DIR]]

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
MicroAST's own (plus PyTorch itself). `--only classic|microast` runs one group.
"""

import argparse
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
    ap.add_argument("--only", choices=("classic", "microast"),
                    help="run only the four classic workloads, or only the MicroAST rows")
    ap.add_argument("--microast-repo", metavar="DIR", help="a checkout of EndyWon/MicroAST")
    ap.add_argument("--microast-weights", metavar="DIR", help="MicroAST weight files (default: DIR/models)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows, microast, notes = [], [], []

    # MicroAST first, so that the peak RSS read after its 4K row is its own (plus torch itself).
    if a.only != "classic":
        if a.microast_repo:
            torch.manual_seed(0)
            weights = a.microast_weights or os.path.join(a.microast_repo, "models")
            microast, rss = microast_rows(a.microast_repo, weights, a.runs)
            notes.append(f"Peak RSS after the MicroAST 4K row: {rss:.0f} MiB")
        else:
            notes.append("MicroAST rows skipped: pass --microast-repo DIR (a checkout of EndyWon/MicroAST)")
    if a.only != "microast":
        torch.manual_seed(0)
        rows += classic_rows(a.runs)
    rows += microast

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
