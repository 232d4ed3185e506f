"""Image maths for the two visual encoders, with numpy and PIL only.

The scene encoder (CLIP) gets exactly what transformers' `CLIPImageProcessor`
produces: shortest side resized to 224 with bicubic filtering (the long side
truncated to an integer as transformers does), a centred 224x224 crop, rescaling
by 1/255 and normalisation with the CLIP mean/std. The face encoder gets the same
pixels normalised with the ImageNet mean/std (FaceXFormer was trained that way).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _as_image(img: np.ndarray | Image.Image) -> Image.Image:
    if isinstance(img, Image.Image):
        return img.convert("RGB")
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"expected an HxWx3 image, got shape {arr.shape}")
    return Image.fromarray(np.ascontiguousarray(arr[:, :, :3]).astype(np.uint8, copy=False))


def resize_shortest_center_crop(img: np.ndarray | Image.Image, size: int = 224) -> np.ndarray:
    """Shortest side to `size` (bicubic), then a centred `size` x `size` crop -> uint8 [size, size, 3]."""
    image = _as_image(img)
    width, height = image.size
    if width <= height:
        new_w, new_h = size, int(size * height / width)
    else:
        new_w, new_h = int(size * width / height), size
    if (new_w, new_h) != (width, height):
        image = image.resize((new_w, new_h), resample=Image.Resampling.BICUBIC)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)))


def resize_square(img: np.ndarray | Image.Image, size: int = 224) -> np.ndarray:
    """Resize the whole image to `size` x `size` (bicubic), for face crops -> uint8 [size, size, 3]."""
    image = _as_image(img)
    if image.size != (size, size):
        image = image.resize((size, size), resample=Image.Resampling.BICUBIC)
    return np.asarray(image)


def normalize(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 [N, H, W, 3] -> float32 [N, 3, H, W]: rescale by 1/255, subtract mean, divide by std."""
    x = images.astype(np.float32) * np.float32(1 / 255)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # [N, H, W, 3] -> [N, 3, H, W]
