#!/usr/bin/env python3
"""Makes the reference vectors of `crates/styleforge-core/tests/fixtures/opencv_resize/`: a
deterministic 8-bit RGB image and OpenCV's `cv2.resize(..., INTER_LINEAR)` of it at several
sizes (down, up, exactly half, one side only), which the face detector's preprocessing must
reproduce bit for bit. Needs `opencv-python-headless` and numpy.

    python3 scripts/opencv-resize-fixture.py
"""
import os

import cv2
import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "styleforge-core", "tests", "fixtures", "opencv_resize")
SIZES = [(211, 131), (41, 29), (97, 61), (194, 61), (7, 5)]  # (width, height)

os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(7)
yy, xx = np.mgrid[0:122, 0:194]
smooth = np.stack([(xx * 255) // 193, (yy * 255) // 121, ((xx + yy) * 3) % 256], axis=2)
noise = rng.integers(0, 256, size=(122, 194, 3))
image = np.where((xx // 16 + yy // 16)[..., None] % 2 == 0, smooth, noise).astype(np.uint8)
cv2.imwrite(os.path.join(OUT, "input_194x122.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
for w, h in SIZES:
    out = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    cv2.imwrite(os.path.join(OUT, f"cv2_{w}x{h}.png"), cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
print("OpenCV", cv2.__version__, "->", os.path.normpath(OUT))
