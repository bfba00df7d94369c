"""Serial-chain kinematics read from a URDF with xml.etree: forward kinematics and the geometric Jacobian.

Runs on the robot computer, so it imports no simulator. Batched over leading dimensions of q.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robot_rl.errors import AssetError, ConfigError


def _floats(text: str | None, default: tuple[float, ...]) -> np.ndarray:
    return np.array([float(x) for x in text.split()]) if text else np.array(default, dtype=float)


def _rpy(r: float, p: float, y: float) -> np.ndarray:
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.array([[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                     [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                     [-sp, cp * sr, cp * cr]])


@dataclass
class _Joint:
    name: str
    kind: str
    origin: np.ndarray
    """(4, 4) parent-link -> joint frame at q = 0."""
    axis: np.ndarray


class SerialChain:
    """Kinematic chain from `base_link` to `ee_link` of a URDF; `joint_names` gives the order of q."""

    def __init__(self, urdf: str | Path, ee_link: str, joint_names: list[str], base_link: str | None = None,
                 ee_offset: tuple[float, float, float] | list[float] = (0.0, 0.0, 0.0)) -> None:
        path = Path(urdf)
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as exc:
            raise AssetError(f"cannot read URDF {path}: {exc}") from None
        by_child: dict[str, tuple[str, _Joint]] = {}
        children: set[str] = set()
        for j in root.findall("joint"):
            origin = j.find("origin")
            t = np.eye(4)
            if origin is not None:
                t[:3, :3] = _rpy(*_floats(origin.get("rpy"), (0.0, 0.0, 0.0)))
                t[:3, 3] = _floats(origin.get("xyz"), (0.0, 0.0, 0.0))
            axis_el = j.find("axis")
            axis = _floats(axis_el.get("xyz") if axis_el is not None else None, (1.0, 0.0, 0.0))
            parent, child = j.find("parent").get("link"), j.find("child").get("link")  # type: ignore[union-attr]
            by_child[child] = (parent, _Joint(j.get("name", ""), j.get("type", "fixed"), t,
                                              axis / np.linalg.norm(axis)))
            children.add(child)
        links = [lk.get("name") for lk in root.findall("link")]
        if ee_link not in links:
            raise ConfigError(f"workspace.ee_link: '{ee_link}' is not a link of {path.name}")
        if base_link is None:
            roots = [lk for lk in links if lk not in children]
            base_link = roots[0] if roots else links[0]
        chain: list[_Joint] = []
        link = ee_link
        while link != base_link:
            if link not in by_child:
                raise ConfigError(f"workspace.base_link: '{base_link}' is not an ancestor of '{ee_link}'")
            link, joint = by_child[link]
            chain.append(joint)
        chain.reverse()
        self.joints = chain
        movable = [j for j in chain if j.kind in ("revolute", "continuous", "prismatic")]
        missing = [j.name for j in movable if j.name not in joint_names]
        if missing:
            raise ConfigError(f"workspace: chain joints {', '.join(missing)} are not contract joints")
        self.index = [joint_names.index(j.name) for j in movable]
        """Contract index of each movable chain joint, in chain order."""
        self.num_joints = len(joint_names)
        self.ee_offset = np.asarray(ee_offset, dtype=float)

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """End-effector position (..., 3) and positional geometric Jacobian (..., 3, n) w.r.t. contract q."""
        q = np.asarray(q, dtype=float)
        batch = q.shape[:-1]
        t = np.broadcast_to(np.eye(4), (*batch, 4, 4)).copy()
        origins, axes, kinds = [], [], []
        k = 0
        for joint in self.joints:
            t = t @ joint.origin
            if joint.kind == "fixed":
                continue
            qi = q[..., self.index[k]]
            k += 1
            axis_w = t[..., :3, :3] @ joint.axis
            origins.append(t[..., :3, 3].copy())
            axes.append(axis_w)
            kinds.append(joint.kind)
            motion = np.broadcast_to(np.eye(4), (*batch, 4, 4)).copy()
            if joint.kind == "prismatic":
                motion[..., :3, 3] = qi[..., None] * joint.axis
            else:
                motion[..., :3, :3] = _rotation(joint.axis, qi)
            t = t @ motion
        p = t[..., :3, :3] @ self.ee_offset + t[..., :3, 3]
        jac = np.zeros((*batch, 3, self.num_joints))
        for i, (o, z, kind) in enumerate(zip(origins, axes, kinds)):
            col = z if kind == "prismatic" else np.cross(z, p - o)
            jac[..., :, self.index[i]] = col
        return p, jac


def _rotation(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rodrigues rotation about a unit axis, batched over angle."""
    x, y, z = axis
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    s, c = np.sin(angle)[..., None, None], np.cos(angle)[..., None, None]
    return np.eye(3) + s * k + (1.0 - c) * (k @ k)
