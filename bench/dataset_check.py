"""Time the dataset check on a COCO-val-sized synthetic dataset (5,000 images, 36,000 boxes).

    OMP_NUM_THREADS=1 python bench/dataset_check.py [--images 5000 --boxes 36000]

Prints the seconds of ``register_coco_json``: the layout, ids, category references, boxes inside
their image, every annotation's optional fields (``ignore``, ``keypoints``, ``segmentation``),
every ``file_name`` inside the image folder, and every image's header within the limits (file
size, pixels, no decoding) with the width and height its record states; then Detectron2's
``load_coco_json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from PIL import Image


def make(root: Path, images: int, boxes: int) -> tuple[Path, Path]:
    img_dir = root / "images"
    img_dir.mkdir()
    tiny = img_dir / "000000.jpg"
    Image.new("RGB", (64, 48), (120, 30, 200)).save(tiny)
    data = tiny.read_bytes()
    ims, anns = [], []
    for i in range(images):
        name = f"{i:06d}.jpg"
        (img_dir / name).write_bytes(data)
        ims.append({"id": i + 1, "file_name": name, "width": 64, "height": 48})
    for k in range(boxes):
        anns.append({"id": k + 1, "image_id": k % images + 1, "category_id": k % 80 + 1,
                     "bbox": [2.0, 3.0, 20.0, 15.0], "area": 300.0, "iscrowd": 0})  # fmt: skip
    cats = [{"id": c + 1, "name": f"class{c}"} for c in range(80)]
    ann = root / "instances.json"
    ann.write_text(json.dumps({"images": ims, "annotations": anns, "categories": cats}))
    return ann, img_dir


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=5000)
    p.add_argument("--boxes", type=int, default=36000)
    args = p.parse_args()
    from nasnet_det.detection.datasets import register_coco_json

    with tempfile.TemporaryDirectory() as tmp:
        ann, img_dir = make(Path(tmp), args.images, args.boxes)
        t0 = time.perf_counter()
        register_coco_json("bench_val", str(ann), str(img_dir))
        t1 = time.perf_counter()
    print(f"register_coco_json (every check): {t1 - t0:.2f} s "
          f"({args.images} images, {args.boxes} boxes)")  # fmt: skip


if __name__ == "__main__":
    main()
