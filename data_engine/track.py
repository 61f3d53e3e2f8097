"""Video trackers that extend a first-frame box through a video: transformers' SAM 2 video family
(`Sam2VideoModel`, `EdgeTamVideoModel`, `Sam3TrackerVideoModel`) in place of the paper's MixFormer.

Confidence and the paper's 0.8: MixFormer's score head outputs a probability (a sigmoid, trained against
"the predicted box overlaps the target") and the paper keeps trajectories whose score stays above 0.8. SAM 2's
counterpart is its object-score head: a logit per object and frame, trained to say whether the object is present
in the frame, read as a probability through a sigmoid. We use `sigmoid(object_score_logit)` as the per-frame
confidence (0.8 is a logit of ln 4 = 1.39) and set it to 0 on a frame where the mask is empty (no box: the
object is lost), so `--tracker-threshold 0.8` keeps what the paper kept: trajectories the tracker is sure of on
every frame. (SAM 2's IoU head, its mask-quality score, is not returned by the video model's output.)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

# What Sam2VideoVideoProcessor does (resize to the model's square input, bilinear; rescale; ImageNet mean/std).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Trajectory:
    """One object through a video: pixel boxes `(T, 4)` (NaN where lost) and a confidence per frame in 0..1."""

    boxes: np.ndarray
    confidence: np.ndarray


class Tracker(Protocol):
    """Frames `(T, H, W, 3)` uint8 and first-frame pixel boxes -> one `Trajectory` per box (all tracked together).

    `key` is the video id (stand-ins that replay known boxes look it up)."""

    name: str

    def __call__(
        self, frames: np.ndarray, first_boxes: Sequence[Sequence[float]], key: str = ""
    ) -> list[Trajectory]: ...


def _session_class(model: Any) -> Any:
    from transformers.models.edgetam_video.modeling_edgetam_video import EdgeTamVideoInferenceSession
    from transformers.models.sam2_video.modeling_sam2_video import Sam2VideoInferenceSession
    from transformers.models.sam3_tracker_video.modeling_sam3_tracker_video import Sam3TrackerVideoInferenceSession

    sessions = {
        "sam2_video": Sam2VideoInferenceSession,
        "edgetam_video": EdgeTamVideoInferenceSession,
        "sam3_tracker_video": Sam3TrackerVideoInferenceSession,
    }
    model_type = model.config.model_type
    if model_type not in sessions:
        raise ValueError(
            f"tracker model type {model_type!r} is not a video tracker this engine drives; "
            f"use one of {', '.join(sessions)} (e.g. facebook/sam2.1-hiera-tiny)"
        )
    return sessions[model_type]


class TransformersVideoTracker:
    """SAM 2 video (or EdgeTAM) from a box prompt on frame 0, every object of a video in one inference session.

    Frames are prepared here as `Sam2VideoVideoProcessor` prepares them (square resize, bilinear, ImageNet mean/std,
    or the mean/std of the model folder's processor config) but on the model's device in one batch: the processor
    classes import torchvision, which the CPU torch builds this package supports lack. The box prompt is added to
    the session as `Sam2VideoProcessor.add_inputs_to_inference_session` adds it (the corners scaled to the square
    input, labelled 2 and 3).
    """

    def __init__(self, model: Any, *, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        self.model = model.eval()
        self.session_class = _session_class(model)
        self.mean, self.std = tuple(mean), tuple(std)
        self.name = getattr(model.config, "_name_or_path", "") or model.config.model_type

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, device: Any = None, dtype: Any = None) -> TransformersVideoTracker:
        from transformers import AutoModel

        model = AutoModel.from_pretrained(name_or_path, dtype=dtype)
        if device is not None:
            model = model.to(device)
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        for name in ("video_preprocessor_config.json", "preprocessor_config.json"):
            path = Path(name_or_path) / name
            if path.is_file():
                config = json.loads(path.read_text())
                mean, std = config.get("image_mean", mean), config.get("image_std", std)
                break
        return cls(model, mean=mean, std=std)

    def _pixels(self, frames: np.ndarray) -> Any:
        import torch
        import torch.nn.functional as F

        size = self.model.config.image_size
        size = size if isinstance(size, int) else size[0]
        device, dtype = self.model.device, self.model.dtype
        video = torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).float()
        video = F.interpolate(video, size=(size, size), mode="bilinear", align_corners=False, antialias=True) / 255.0
        mean = torch.tensor(self.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, 3, 1, 1)
        return ((video - mean) / std).to(dtype), size

    def __call__(self, frames: np.ndarray, first_boxes: Sequence[Sequence[float]], key: str = "") -> list[Trajectory]:
        import torch
        import torch.nn.functional as F

        num_frames, height, width = frames.shape[:3]
        boxes = np.full((len(first_boxes), num_frames, 4), np.nan)
        confidence = np.zeros((len(first_boxes), num_frames))
        if not len(first_boxes):
            return []
        pixels, size = self._pixels(frames)
        device = self.model.device
        session = self.session_class(
            video=pixels,
            video_height=height,
            video_width=width,
            inference_device=device,
            inference_state_device=device,
            video_storage_device=device,
            dtype=self.model.dtype,
        )
        obj_ids = list(range(len(first_boxes)))
        scale = torch.tensor([size / width, size / height], dtype=torch.float32)
        for obj_id, box in zip(obj_ids, first_boxes):
            corners = torch.tensor(box, dtype=torch.float32).view(1, 1, 2, 2) * scale
            session.add_point_inputs(
                session.obj_id_to_idx(obj_id),
                0,
                {"point_coords": corners, "point_labels": torch.tensor([[[2, 3]]], dtype=torch.int32)},
            )
        session.obj_with_new_inputs = list(obj_ids)
        with torch.inference_mode():
            self.model(inference_session=session, frame_idx=0)
            for output in self.model.propagate_in_video_iterator(session, start_frame_idx=0):
                t = output.frame_idx
                masks = F.interpolate(output.pred_masks.float(), size=(height, width), mode="bilinear") > 0
                present = torch.sigmoid(output.object_score_logits.float().view(-1)).cpu().numpy()
                masks = masks[:, 0].cpu().numpy()
                for k, obj_id in enumerate(output.object_ids):
                    ys, xs = np.nonzero(masks[k])
                    if xs.size:
                        boxes[obj_id, t] = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
                        confidence[obj_id, t] = present[k]
        return [Trajectory(boxes[k], confidence[k]) for k in obj_ids]
