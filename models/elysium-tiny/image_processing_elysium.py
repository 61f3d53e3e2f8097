"""Frames to CLIP pixel values: resize to 336x336 (no crop, no pad) and normalize with CLIP's mean and std.

Written here rather than taken from `CLIPImageProcessor` because transformers 5 gives that class a torchvision
backend (torchvision does not import beside this project's CPU torch) and its PIL fallback works one image at a
time; this one resizes only frames not already at size (PyAV scales while decoding) and normalizes the whole
clip as one tensor operation. It also rejects bad frames with a message naming which frame and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import PIL.Image
import torch
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD


class ElysiumImageProcessor(BaseImageProcessor):
    """Resizes each frame to `size` (bicubic, as the released model) and normalizes with CLIP statistics."""

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        size: dict[str, int] | None = None,
        image_mean: Sequence[float] = OPENAI_CLIP_MEAN,
        image_std: Sequence[float] = OPENAI_CLIP_STD,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.size = dict(size) if size is not None else {"height": 336, "width": 336}
        self.image_mean = list(image_mean)
        self.image_std = list(image_std)

    def to_rgb_array(self, image: Any, index: int = 0) -> np.ndarray:
        """One frame (PIL, numpy HWC/CHW, torch CHW/HWC; uint8 or float 0..1) as uint8 `(H, W, 3)`."""
        if isinstance(image, PIL.Image.Image):
            if image.width == 0 or image.height == 0:
                raise ValueError(f"Frame {index} is empty ({image.width}x{image.height}); give frames with pixels.")
            return np.asarray(image.convert("RGB"))
        if isinstance(image, torch.Tensor):
            image = image.detach().cpu().numpy()
        if not isinstance(image, np.ndarray):
            raise TypeError(
                f"Frame {index} is a {type(image).__name__}; give PIL images, numpy arrays or torch tensors."
            )
        if image.ndim == 3 and image.shape[0] == 3 and image.shape[-1] != 3:
            image = image.transpose(1, 2, 0)
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(
                f"Frame {index} has shape {image.shape}; frames must be RGB, (height, width, 3) or (3, height, "
                "width). Convert grayscale or RGBA frames with PIL's `.convert('RGB')`."
            )
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"Frame {index} is empty (shape {image.shape}); give frames with pixels.")
        if image.dtype != np.uint8:
            image = np.clip(np.rint(image.astype(np.float32) * (255.0 if image.max() <= 1.0 else 1.0)), 0, 255)
            image = image.astype(np.uint8)
        return image

    def preprocess(self, images: Any, return_tensors: str | None = "pt", **kwargs: Any) -> BatchFeature:
        """A frame or a list of frames -> `pixel_values` `(frames, 3, H, W)` and `frame_sizes` `(w, h)` each."""
        frames = list(images) if isinstance(images, (list, tuple)) else [images]
        if not frames:
            raise ValueError("No frames were given; give at least one frame.")
        height, width = self.size["height"], self.size["width"]
        arrays, frame_sizes = [], []
        for index, frame in enumerate(frames):
            array = self.to_rgb_array(frame, index)
            frame_sizes.append((array.shape[1], array.shape[0]))
            if array.shape[:2] != (height, width):
                array = np.asarray(PIL.Image.fromarray(array).resize((width, height), PIL.Image.BICUBIC))
            arrays.append(array)
        pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(self.image_mean).view(1, 3, 1, 1)
        std = torch.tensor(self.image_std).view(1, 3, 1, 1)
        pixels = (pixels - mean) / std
        return BatchFeature({"pixel_values": pixels, "frame_sizes": frame_sizes}, tensor_type=None)


__all__ = ["ElysiumImageProcessor"]
