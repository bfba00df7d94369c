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


_MOVABLE = ("revolute", "continuous", "prismatic")


@dataclass
class _Joint:
    name: str
    kind: str
    origin: np.ndarray
    """(4, 4) parent-link -> joint frame at q = 0."""
    axis: np.ndarray


@dataclass
class _Link:
    name: str
    mass: float
    com: np.ndarray
    """(3,) centre of mass in the link frame."""
    inertia: np.ndarray
    """(3, 3) rotational inertia about the centre of mass, in the link frame."""


@dataclass
class _Urdf:
    """The parsed tree: joints by child link, children by parent link, link inertials."""

    path: Path
    by_child: dict[str, tuple[str, _Joint]]
    children: dict[str, list[str]]
    links: dict[str, _Link]
    root: str

    @classmethod
    def read(cls, urdf: str | Path) -> _Urdf:
        path = Path(urdf)
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as exc:
            raise AssetError(f"cannot read URDF {path}: {exc}") from None
        by_child: dict[str, tuple[str, _Joint]] = {}
        children: dict[str, list[str]] = {}
        for j in root.findall("joint"):
            axis_el = j.find("axis")
            axis = _floats(axis_el.get("xyz") if axis_el is not None else None, (1.0, 0.0, 0.0))
            parent = str(j.find("parent").get("link"))  # type: ignore[union-attr]
            child = str(j.find("child").get("link"))  # type: ignore[union-attr]
            by_child[child] = (parent, _Joint(j.get("name", ""), j.get("type", "fixed"), _origin(j.find("origin")),
                                              axis / np.linalg.norm(axis)))
            children.setdefault(parent, []).append(child)
        links: dict[str, _Link] = {}
        for lk in root.findall("link"):
            name = lk.get("name", "")
            inertial = lk.find("inertial")
            mass, com, rot, inertia = 0.0, np.zeros(3), np.eye(3), np.zeros((3, 3))
            if inertial is not None:
                mass_el, in_el = inertial.find("mass"), inertial.find("inertia")
                mass = float(mass_el.get("value", 0.0)) if mass_el is not None else 0.0
                t = _origin(inertial.find("origin"))
                com, rot = t[:3, 3], t[:3, :3]
                if in_el is not None:
                    g = {k: float(in_el.get(k, 0.0)) for k in ("ixx", "ixy", "ixz", "iyy", "iyz", "izz")}
                    inertia = np.array([[g["ixx"], g["ixy"], g["ixz"]], [g["ixy"], g["iyy"], g["iyz"]],
                                        [g["ixz"], g["iyz"], g["izz"]]])
            links[name] = _Link(name, mass, com, rot @ inertia @ rot.T)
        roots = [lk for lk in links if lk not in by_child]
        return cls(path, by_child, children, links, roots[0] if roots else next(iter(links)))


def _origin(el: ET.Element | None) -> np.ndarray:
    """(4, 4) transform of an URDF <origin> element (identity when absent)."""
    t = np.eye(4)
    if el is not None:
        t[:3, :3] = _rpy(*_floats(el.get("rpy"), (0.0, 0.0, 0.0)))
        t[:3, 3] = _floats(el.get("xyz"), (0.0, 0.0, 0.0))
    return t


class SerialChain:
    """Kinematic chain from `base_link` to `ee_link` of a URDF; `joint_names` gives the order of q."""

    def __init__(self, urdf: str | Path, ee_link: str, joint_names: list[str], base_link: str | None = None,
                 ee_offset: tuple[float, float, float] | list[float] = (0.0, 0.0, 0.0)) -> None:
        tree = _Urdf.read(urdf)
        if ee_link not in tree.links:
            raise ConfigError(f"workspace.ee_link: '{ee_link}' is not a link of {tree.path.name}")
        if base_link is None:
            base_link = tree.root
        chain: list[_Joint] = []
        link = ee_link
        while link != base_link:
            if link not in tree.by_child:
                raise ConfigError(f"workspace.base_link: '{base_link}' is not an ancestor of '{ee_link}'")
            link, joint = tree.by_child[link]
            chain.append(joint)
        chain.reverse()
        self.joints = chain
        movable = [j for j in chain if j.kind in _MOVABLE]
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
    return _EYE3 + s * k + (1.0 - c) * (k @ k)


_EYE3, _EYE4 = np.eye(3), np.eye(4)


def _skew(v: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def _crm(m: np.ndarray) -> np.ndarray:
    """Spatial motion cross-product matrix of m = [w; v] (Plücker, base frame at its origin)."""
    out = np.zeros((6, 6))
    w = _skew(m[:3])
    out[:3, :3] = w
    out[3:, 3:] = w
    out[3:, :3] = _skew(m[3:])
    return out


class JointSpaceDynamics:
    """Joint-space mass matrix M(q) and bias torques c(q, q') + g(q) of a fixed-base arm, from the URDF inertials.

    The rigid bodies are every link below `base_link`; a joint that is not a contract joint is held at 0 (its
    child is welded to the parent). All spatial quantities are written in the base frame (Featherstone's
    algorithms with Plücker coordinates at the base origin), so the composite rigid body algorithm (M) and the
    recursive Newton-Euler algorithm (bias) need no frame changes between links. Armature (reflected rotor
    inertia) is added to the diagonal, as MuJoCo does. No simulator is imported: this runs on the robot.
    """

    def __init__(self, urdf: str | Path, joint_names: list[str], base_link: str | None = None,
                 armature: float | list[float] = 0.0, gravity: list[float] | None = None) -> None:
        tree = _Urdf.read(urdf)
        base = tree.root if base_link is None else base_link
        if base not in tree.links:
            raise ConfigError(f"cbf.base_link: '{base}' is not a link of {tree.path.name}")
        self.n = n = len(joint_names)
        order: list[str] = []
        frontier = [base]
        while frontier:
            link = frontier.pop(0)
            order.append(link)
            frontier.extend(tree.children.get(link, []))
        self.parent: list[int] = []
        self.joints: list[_Joint | None] = []
        self.dof: list[int] = []
        """Contract index of each body's joint (-1: fixed or base)."""
        pos = {name: i for i, name in enumerate(order)}
        for link in order:
            if link == base:
                self.parent.append(-1)
                self.joints.append(None)
                self.dof.append(-1)
                continue
            parent, joint = tree.by_child[link]
            self.parent.append(pos[parent])
            self.joints.append(joint)
            movable = joint.kind in _MOVABLE and joint.name in joint_names
            self.dof.append(joint_names.index(joint.name) if movable else -1)
        missing = [j for j in joint_names if j not in {jt.name for jt in self.joints if jt is not None}]
        if missing:
            raise ConfigError(f"cbf: joints {', '.join(missing)} are not below '{base}' in {tree.path.name}")
        self.mass = np.array([tree.links[lk].mass for lk in order])
        self.com = [tree.links[lk].com for lk in order]
        self.inertia = [tree.links[lk].inertia for lk in order]
        self.armature = np.broadcast_to(np.asarray(armature, float), (n,)).copy()
        self.gravity = None if gravity is None else np.asarray(gravity, float)
        """Gravity in the base frame that the joint controller does not compensate (None: compensated)."""
        self.body_of = [self.dof.index(i) for i in range(n)]
        """Body moved by each contract joint."""

    def _kinematics(self, q: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Spatial inertia (6, 6) and motion subspace (6,) (zeros when fixed) of every body, in the base frame."""
        tf: list[np.ndarray] = []
        inertias: list[np.ndarray] = []
        subspaces: list[np.ndarray] = []
        for b, joint in enumerate(self.joints):
            s = np.zeros(6)
            if joint is None:
                t = _EYE4
            else:
                t = tf[self.parent[b]] @ joint.origin
                if self.dof[b] >= 0:
                    z = t[:3, :3] @ joint.axis
                    motion = _EYE4.copy()
                    qi = q[self.dof[b]]
                    if joint.kind == "prismatic":
                        s[3:] = z
                        motion[:3, 3] = qi * joint.axis
                    else:
                        s[:3] = z
                        o = t[:3, 3]
                        s[3:] = (o[1] * z[2] - o[2] * z[1], o[2] * z[0] - o[0] * z[2], o[0] * z[1] - o[1] * z[0])
                        motion[:3, :3] = _rotation(joint.axis, np.asarray(qi))
                    t = t @ motion
            tf.append(t)
            subspaces.append(s)
            m, rot = self.mass[b], t[:3, :3]
            c = rot @ self.com[b] + t[:3, 3]
            cx = _skew(c)
            spatial = np.empty((6, 6))
            spatial[:3, :3] = rot @ self.inertia[b] @ rot.T + m * cx @ cx.T
            spatial[:3, 3:] = m * cx
            spatial[3:, :3] = m * cx.T
            spatial[3:, 3:] = m * _EYE3
            inertias.append(spatial)
        return inertias, subspaces

    def mass_matrix(self, q: np.ndarray) -> np.ndarray:
        """(n, n) joint-space mass matrix at q (composite rigid body algorithm), armature on the diagonal."""
        inertias, subspaces = self._kinematics(np.asarray(q, dtype=float))
        return self._crba(inertias, subspaces)

    def _crba(self, inertias: list[np.ndarray], subspaces: list[np.ndarray]) -> np.ndarray:
        comp = [i.copy() for i in inertias]
        for b in range(len(comp) - 1, 0, -1):
            comp[self.parent[b]] += comp[b]
        mass = np.diag(self.armature)
        for b, i in enumerate(self.dof):
            if i < 0:
                continue
            force = comp[b] @ subspaces[b]
            a = b
            while a >= 0:
                j = self.dof[a]
                if j >= 0:
                    mass[i, j] += subspaces[a] @ force
                    if j != i:
                        mass[j, i] = mass[i, j]
                a = self.parent[a]
        return mass

    def _rnea(self, inertias: list[np.ndarray], subspaces: list[np.ndarray], v: np.ndarray) -> np.ndarray:
        nb = len(inertias)
        vel = [np.zeros(6)] * nb
        acc = [np.zeros(6)] * nb
        if self.gravity is not None:
            acc[0] = np.concatenate([np.zeros(3), -self.gravity])
        forces: list[np.ndarray] = []
        for b in range(nb):
            p = self.parent[b]
            if p >= 0:
                j = self.dof[b]
                vj = subspaces[b] * v[j] if j >= 0 else np.zeros(6)
                vel[b] = vel[p] + vj
                acc[b] = acc[p] + _crm(vel[b]) @ vj
            h = inertias[b] @ vel[b]
            forces.append(inertias[b] @ acc[b] - _crm(vel[b]).T @ h)
        tau = np.zeros(self.n)
        for b in range(nb - 1, 0, -1):
            forces[self.parent[b]] = forces[self.parent[b]] + forces[b]
            if self.dof[b] >= 0:
                tau[self.dof[b]] = subspaces[b] @ forces[b]
        return tau

    def bias(self, q: np.ndarray, v: np.ndarray) -> np.ndarray:
        """(n,) Coriolis, centrifugal and (uncompensated) gravity torques c(q, q') + g(q) (Newton-Euler)."""
        inertias, subspaces = self._kinematics(np.asarray(q, dtype=float))
        return self._rnea(inertias, subspaces, np.asarray(v, dtype=float))

    def evaluate(self, q: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """M(q) and the bias torques in one pass over the kinematics."""
        inertias, subspaces = self._kinematics(np.asarray(q, dtype=float))
        return self._crba(inertias, subspaces), self._rnea(inertias, subspaces, np.asarray(v, dtype=float))
