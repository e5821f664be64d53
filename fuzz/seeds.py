#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (standard library only; no PyTorch needed).

    fuzz/seeds.py CORPUS_ROOT [SHARED]

decode_image: the bad-input corpus's images (tests/corpus/images) and ICC profiles taken from
its P3 and Adobe RGB PNGs ("I" + profile). weights_file: small PyTorch files in both
serialisations (the zip archive of `torch.save` and the legacy pickle stream), written here with
stand-in `torch` classes so the pickles name the same globals, the corpus's weight files, and the
MicroAST modulator from the shared data when it is there. safetensors: small files of each float
type. tf_checkpoint: a CartoonGAN-light index with the start of its data shard (shared data).
"""
import collections
import io
import json
import os
import pickle
import struct
import sys
import types
import zipfile
import zlib

root = sys.argv[1]
shared = sys.argv[2] if len(sys.argv) > 2 else None
repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def put(target, name, data):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# decode_image
images = os.path.join(repo, "tests", "corpus", "images")
for name in sorted(os.listdir(images)):
    with open(os.path.join(images, name), "rb") as f:
        data = f.read()
    if len(data) <= 8192:
        put("decode_image", name, data)
    if name.endswith(".png"):
        pos = 8
        while pos + 8 <= len(data):
            (length,) = struct.unpack(">I", data[pos:pos + 4])
            kind = data[pos + 4:pos + 8]
            body = data[pos + 8:pos + 8 + length]
            if kind == b"iCCP":
                try:
                    profile = zlib.decompress(body[body.index(b"\0") + 2:])
                    put("decode_image", "icc_" + name[:-4], b"I" + profile)
                except (ValueError, zlib.error):
                    pass
            pos += 12 + length

# Stand-in torch globals, so that pickle writes the same GLOBAL opcodes as torch.save.
torch = types.ModuleType("torch")
utils = types.ModuleType("torch._utils")


class FloatStorage:
    pass


class HalfStorage:
    pass


FloatStorage.__module__ = HalfStorage.__module__ = "torch"
torch.FloatStorage, torch.HalfStorage = FloatStorage, HalfStorage


def _rebuild_tensor_v2(*args):
    raise NotImplementedError


_rebuild_tensor_v2.__module__ = "torch._utils"
utils._rebuild_tensor_v2 = _rebuild_tensor_v2
torch._utils = utils
sys.modules["torch"], sys.modules["torch._utils"] = torch, utils


class Storage:
    def __init__(self, key, kind, values):
        self.key, self.kind, self.values = key, kind, values

    def raw(self):
        fmt = "<%d%s" % (len(self.values), "f" if self.kind is FloatStorage else "e")
        return struct.pack(fmt, *self.values)


class Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, shape

    def __reduce__(self):
        stride, acc = [], 1
        for s in reversed(self.shape):
            stride.insert(0, acc)
            acc *= s
        return (_rebuild_tensor_v2, (self.storage, 0, tuple(self.shape), tuple(stride), False, collections.OrderedDict()))


class Pickler(pickle.Pickler):
    def __init__(self, f, legacy):
        super().__init__(f, protocol=2)
        self.legacy = legacy

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            pid = ("storage", obj.kind, obj.key, "cpu", len(obj.values))
            return pid + (None,) if self.legacy else pid
        return None


def state_dict(spec):
    sd, storages = collections.OrderedDict(), []
    for i, (name, shape, kind) in enumerate(spec):
        n = 1
        for s in shape:
            n *= s
        st = Storage(str(i), kind, [((j * 7) % 11 - 5) / 4.0 for j in range(n)])
        storages.append(st)
        sd[name] = Tensor(st, shape)
    return sd, storages


def torch_zip(spec, wrap=None):
    sd, storages = state_dict(spec)
    pkl = io.BytesIO()
    Pickler(pkl, legacy=False).dump({wrap: sd} if wrap else sd)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl.getvalue())
        z.writestr("archive/byteorder", "little")
        for st in storages:
            z.writestr("archive/data/" + st.key, st.raw())
        z.writestr("archive/version", "3\n")
    return out.getvalue()


def torch_legacy(spec):
    sd, storages = state_dict(spec)
    out = io.BytesIO()
    for head in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(head, out, protocol=2)
    Pickler(out, legacy=True).dump(sd)
    pickle.dump([st.key for st in storages], out, protocol=2)
    for st in storages:
        out.write(struct.pack("<q", len(st.values)))
        out.write(st.raw())
    return out.getvalue()


conv = [("conv1.conv2d.weight", (4, 3, 3, 3), FloatStorage), ("conv1.conv2d.bias", (4,), FloatStorage), ("in1.weight", (4,), HalfStorage)]
put("weights_file", "small_zip.pth", torch_zip(conv))
put("weights_file", "small_zip_state_dict.pth", torch_zip(conv, wrap="state_dict"))
put("weights_file", "small_legacy.pth", torch_legacy(conv))
put("weights_file", "dcgan_names_zip.pth", torch_zip([("main.0.weight", (2, 2, 4, 4), FloatStorage), ("main.1.running_mean", (2,), FloatStorage), ("main.12.weight", (2, 3, 4, 4), FloatStorage)]))


def safetensors(tensors, metadata=None):
    header, blob = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob


f32 = struct.pack("<6f", *[0.5 * i for i in range(6)])
st = {
    "f32.safetensors": {"conv1.conv2d.weight": ("F32", (2, 3), f32)},
    "f16.safetensors": {"in1.weight": ("F16", (4,), struct.pack("<4e", 1, 2, 3, 4))},
    "bf16.safetensors": {"in1.bias": ("BF16", (2, 2), b"\x80\x3f" * 4)},
    "mixed.safetensors": {"a": ("F32", (6,), f32), "b": ("F16", (1, 2), struct.pack("<2e", 1, -1)), "c": ("I64", (1,), struct.pack("<q", 7))},
}
for name, tensors in st.items():
    data = safetensors(tensors, {"styleforge.kind": "fast"} if name == "mixed.safetensors" else None)
    put("safetensors", name, data)
    put("weights_file", name, data)

corpus_weights = os.path.join(repo, "tests", "corpus", "weights")
for name in sorted(os.listdir(corpus_weights)):
    with open(os.path.join(corpus_weights, name), "rb") as f:
        data = f.read()
    put("safetensors" if name.endswith(".safetensors") else "weights_file", name, data)

if shared:
    modulator = os.path.join(shared, "models", "microast", "modulator_iter_160000.pth.tar")
    if os.path.exists(modulator):
        with open(modulator, "rb") as f:
            put("weights_file", "microast_modulator_legacy.pth", f.read())
    prefix = os.path.join(shared, "models", "cartoongan_light", "paprika", "generator")
    if os.path.exists(prefix + ".index"):
        with open(prefix + ".index", "rb") as f:
            index = f.read()
        with open(prefix + ".data-00000-of-00001", "rb") as f:
            data = f.read(32768)
        put("tf_checkpoint", "cartoongan_index_only", index)
        put("tf_checkpoint", "cartoongan_index_and_shard_start", index + b"\xff\x00\xff\x00" + data)
