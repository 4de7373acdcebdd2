"""Runs inside the peers' own virtualenv (see ``bench/compare.py``): encodes photos with the
``face_recognition`` library (dlib's HOG detector + 68 landmarks + ResNet, 128-d).

    python face_recognition_worker.py IN.npz OUT.npz

IN holds ``image_0 .. image_{n-1}`` (RGB uint8 arrays) or ``paths`` (image files to read, as
a user of the library would: ``face_recognition.load_image_file``). OUT holds ``encodings``
(n, 128; zeros where no face was found), ``found`` (bool) and ``seconds`` (per photo, read +
detect + encode). The first face found is encoded, like the library's examples.
This file imports nothing from the project: the project's environment has no dlib.
"""

from __future__ import annotations

import sys
import time

import face_recognition
import numpy as np


def encode(image: np.ndarray) -> np.ndarray | None:
    found = face_recognition.face_encodings(image)
    return found[0] if found else None


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    data = np.load(src, allow_pickle=False)
    if "paths" in data:
        items = [str(p) for p in data["paths"]]
    else:
        items = [f"image_{i}" for i in range(sum(k.startswith("image_") for k in data.files))]
    encodings = np.zeros((len(items), 128), np.float32)
    found = np.zeros(len(items), bool)
    seconds = np.zeros(len(items), np.float64)
    for i, item in enumerate(items):
        start = time.perf_counter()
        image = face_recognition.load_image_file(item) if "paths" in data else data[item]
        vector = encode(image)
        seconds[i] = time.perf_counter() - start
        if vector is not None:
            encodings[i] = vector
            found[i] = True
    np.savez(dst, encodings=encodings, found=found, seconds=seconds)


if __name__ == "__main__":
    main()
