"""MP4 video of a policy: frames from `VecEnv.render(0, ...)`, encoded with OpenCV (mp4v)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np


def record_video(env: Any, policy: Callable[[np.ndarray], np.ndarray], path: str | Path, seconds: float,
                 fps: float, width: int = 640, height: int = 480, seed: int = 0) -> Path:
    """Run `policy` (raw obs (N, obs_dim) -> actions) in `env` and write environment 0's frames, one per step."""
    path = Path(path)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    try:
        obs = env.reset(seed=seed)
        for _ in range(max(1, int(round(seconds * fps)))):
            frame = np.asarray(env.render(0, width=width, height=height), np.uint8)
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            obs, *_ = env.step(policy(obs))
    finally:
        writer.release()
    return path
