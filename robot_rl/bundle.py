"""Policy bundle: a folder with `contract.json`, the deterministic actor as TorchScript (`policy.pt`) and ONNX
(`policy.onnx`), and a `README.md` with the evaluation metrics.

The networks take NORMALIZED observations; the statistics live in the contract (`obs_mean`, `obs_std`), so
`Bundle.act(raw_obs)` = network(contract.normalize(raw_obs)). Loading never unpickles arbitrary objects, and the ONNX
runtime path needs only numpy and onnxruntime: this module imports torch only inside `export_bundle` and the
TorchScript runtime.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from robot_rl.atomic import replace_dir
from robot_rl.contract import PolicyContract
from robot_rl.errors import BundleError, ContractError

if TYPE_CHECKING:
    import torch

CONTRACT_FILE = "contract.json"
TORCHSCRIPT_FILE = "policy.pt"
ONNX_FILE = "policy.onnx"
README_FILE = "README.md"
INPUT_NAME = "obs"
OUTPUT_NAME = "action"


@dataclass
class Bundle:
    """A loaded policy bundle: `act(raw_obs) -> action` through the contract's normalization and the network."""

    path: Path
    contract: PolicyContract
    runtime: str
    _run: Callable[[np.ndarray], np.ndarray]

    @property
    def metadata(self) -> dict[str, Any]:
        """Provenance recorded at export: task, resolved config, git commit, randomization ranges, metrics."""
        return dict(self.contract.provenance)

    def __post_init__(self) -> None:
        # normalization statistics as float32 arrays once, not converted from the contract's lists on every call
        c = self.contract
        self._mean = None if c.obs_mean is None else np.asarray(c.obs_mean, np.float32)
        self._inv_std = None if c.obs_std is None else (1.0 / np.asarray(c.obs_std, np.float32)).astype(np.float32)
        self._one = np.zeros((1, c.obs_dim), np.float32)

    def act(self, obs_raw: np.ndarray) -> np.ndarray:
        """Deterministic action for raw observations of shape (obs_dim,) or (N, obs_dim); float32 output.

        Single observations go through one preallocated buffer: call from one thread at a time."""
        obs = np.asarray(obs_raw, dtype=np.float32)
        single = obs.ndim == 1
        if single and obs.shape[0] == self.contract.obs_dim:
            # one robot, one tick: normalize into a preallocated buffer (the control loop's hot path)
            norm = self._one
            norm[0] = obs
        else:
            batch = obs[None] if single else obs
            if batch.ndim != 2 or batch.shape[1] != self.contract.obs_dim:
                raise BundleError(f"observation shape {obs.shape} does not match the bundle's obs_dim "
                                  f"{self.contract.obs_dim}")
            norm = np.array(batch, dtype=np.float32, order="C")
        if self._mean is not None and self._inv_std is not None:
            norm -= self._mean
            norm *= self._inv_std
        action = self._run(norm)
        return action[0] if single else action


def _git_commit() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def _readme(contract: PolicyContract, metrics: dict[str, Any]) -> str:
    prov = contract.provenance
    lines = [
        f"# Policy bundle: {prov.get('task', contract.robot)}",
        "",
        f"- robot: `{contract.robot}` ({contract.num_joints} joints), policy {contract.policy_rate_hz:g} Hz, "
        f"physics {contract.physics_rate_hz:g} Hz",
        f"- observation: {contract.obs_dim} values ({', '.join(t.name for t in contract.obs_terms)}); "
        f"action: {contract.act_dim} values ({contract.action.type}, scale {contract.action.scale:g})",
        f"- git commit: `{prov.get('git_commit')}`",
        "",
        "Files: `contract.json` (the policy contract, with normalization statistics and provenance), "
        "`policy.onnx` and `policy.pt` (TorchScript): the deterministic actor on normalized observations.",
        "",
        "```python",
        "from robot_rl.bundle import load_bundle",
        "bundle = load_bundle('.')            # onnxruntime only",
        "action = bundle.act(raw_observation)  # normalizes with the contract statistics",
        "targets = bundle.contract.act(action)",
        "```",
        "",
        "## Evaluation metrics",
        "",
        "| metric | value |",
        "| --- | --- |",
    ]
    for key, value in sorted(metrics.items()):
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        lines.append(f"| {key} | {text} |")
    return "\n".join(lines) + "\n"


def export_bundle(path: str | Path, contract: PolicyContract, actor: torch.nn.Module,
                  metrics: dict[str, Any]) -> Path:
    """Write a bundle folder at `path` (replaced atomically if it exists) and return it.

    `actor` maps normalized observations (N, obs_dim) to deterministic actions (N, act_dim); `contract` must carry
    `obs_mean`/`obs_std` when the actor was trained on normalized observations. `metrics` (JSON-able scalars) go
    into the contract provenance and the README.
    """
    import torch

    path = Path(path)
    provenance = dict(contract.provenance)
    provenance.setdefault("git_commit", _git_commit())
    provenance["metrics"] = metrics
    contract = contract.replace(provenance=provenance)
    try:
        json.dumps(contract.to_dict())
    except TypeError as exc:
        raise BundleError(f"contract provenance or metrics are not JSON-serializable: {exc}") from None

    actor = actor.eval()
    example = torch.zeros(1, contract.obs_dim)
    with torch.no_grad():
        out = actor(example)
    if tuple(out.shape) != (1, contract.act_dim):
        raise BundleError(f"actor output shape {tuple(out.shape)} != (1, act_dim={contract.act_dim})")

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    tmp.chmod(0o755)
    try:
        contract.to_json(tmp / CONTRACT_FILE)
        with warnings.catch_warnings():
            # TorchScript and the TorchScript-based ONNX exporter are deprecated in torch 2.9+ but remain the
            # formats robots load (libtorch, onnxruntime); the dynamo exporter needs onnxscript and gives the same
            # graph for a plain MLP.
            warnings.simplefilter("ignore", DeprecationWarning)
            with torch.no_grad():
                scripted = torch.jit.trace(actor, example)
            scripted.save(str(tmp / TORCHSCRIPT_FILE))
            torch.onnx.export(actor, (example,), str(tmp / ONNX_FILE), dynamo=False, input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], opset_version=17,
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
        (tmp / README_FILE).write_text(_readme(contract, metrics))
        replace_dir(tmp, path)  # durable, and an existing bundle at `path` is swapped, never missing
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _onnx_runner(file: Path, contract: PolicyContract) -> Callable[[np.ndarray], np.ndarray]:
    try:
        import onnxruntime as ort
    except ImportError:
        raise BundleError("runtime 'onnx' needs the onnxruntime package (pip install onnxruntime)") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(file), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
        raise BundleError(f"{file}: not a loadable ONNX model ({str(exc).splitlines()[0][:200]})") from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1:
        raise BundleError(f"{file}: expected one input and one output, got {len(inputs)} and {len(outputs)}")
    in_dim, out_dim = inputs[0].shape[-1], outputs[0].shape[-1]
    if in_dim != contract.obs_dim or out_dim != contract.act_dim:
        raise BundleError(f"{file}: network maps {in_dim} -> {out_dim}, contract says obs_dim "
                          f"{contract.obs_dim} -> act_dim {contract.act_dim}")
    name = inputs[0].name

    def run(obs: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {name: obs})[0], dtype=np.float32)

    return run


def _torchscript_runner(file: Path, contract: PolicyContract) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(file), map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - torch.jit.load raises RuntimeError/ValueError/zip errors
        raise BundleError(f"{file}: not a loadable TorchScript module ({str(exc).splitlines()[0][:200]})") from None
    module.eval()
    try:
        with torch.no_grad():
            out = module(torch.zeros(1, contract.obs_dim))
    except Exception as exc:  # noqa: BLE001
        raise BundleError(f"{file}: does not accept obs_dim {contract.obs_dim} ({str(exc).splitlines()[0]})") from None
    if tuple(out.shape) != (1, contract.act_dim):
        raise BundleError(f"{file}: output shape {tuple(out.shape)}, contract says act_dim {contract.act_dim}")

    def run(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(obs)).numpy().astype(np.float32, copy=False)

    return run


TASK_CONFIG_KEY = "task_config"
"""Where a bundle keeps the task config its policy was trained with: `contract.provenance[TASK_CONFIG_KEY]`, the
resolved config of the task as a plain dict (`provenance["task"]` names the task)."""


def task_provenance(task: str, cfg: Any) -> dict[str, Any]:
    """The provenance entries that record a task and its resolved config dataclass (what `task_config_of` reads)."""
    from robot_rl.config import to_dict

    return {"task": task, TASK_CONFIG_KEY: to_dict(cfg)}


def task_config_of(contract: PolicyContract) -> tuple[str, Any] | None:
    """(task name, resolved config dataclass) a contract's policy was trained with: the recorded task config, else
    the task's defaults with the training's `task_overrides` (a bundle exported from a checkpoint records only
    those); None when the provenance names no registered task."""
    prov = contract.provenance if isinstance(contract.provenance, dict) else {}
    task = prov.get("task")
    if not task:
        return None
    from robot_rl.sim import resolve_config, task_names

    if task not in task_names():
        return None
    recorded = prov.get(TASK_CONFIG_KEY)
    if isinstance(recorded, dict):
        return str(task), resolve_config(task, recorded)
    overrides = (prov.get("config") or {}).get("task_overrides") or []
    return str(task), resolve_config(task, None, [str(o) for o in overrides])


ACTIVATIONS = {"Elu": 1, "Relu": 2, "Tanh": 3}
"""Activation after a Gemm layer of an MLP graph -> its code in `MlpLayer` (0: none)."""
MlpLayer = tuple[np.ndarray, np.ndarray, int]
"""(W^T as (in, out) float32, bias (out,) float32, activation code) of one layer."""


def read_mlp(onnx_path: Path) -> list[MlpLayer]:
    """The layers of an ONNX graph that is a plain chain of Gemm (+ Elu / Relu / Tanh) nodes from its input to its
    output: the one reader of a bundle's network weights (the compiled tick, learners initialized from a bundle).
    Any other graph raises BundleError saying what is not an MLP. Reads initializers only: no code runs."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(onnx_path))
    except Exception as exc:  # noqa: BLE001 - protobuf decode errors are untyped
        raise BundleError(f"{onnx_path}: not a loadable ONNX model ({str(exc).splitlines()[0][:200]})") from None
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in init:
            # the exporter stores equal weights once (e.g. two zero biases of one width) and aliases the copy
            init[node.output[0]] = init[node.input[0]]
        else:
            nodes.append(node)
    layers: list[MlpLayer] = []
    current = model.graph.input[0].name
    for node in nodes:
        if node.input[0] != current:
            raise BundleError(f"{onnx_path}: node {node.name or node.op_type} is not a chain step (not an MLP)")
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Gemm":
            if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0 or attrs.get("transA", 0) or \
                    len(node.input) != 3 or node.input[1] not in init or node.input[2] not in init:
                raise BundleError(f"{onnx_path}: Gemm {node.name} is not y = W x + b with stored weights")
            w = init[node.input[1]].astype(np.float32)
            w_t = np.ascontiguousarray(w.T if attrs.get("transB", 0) else w)
            layers.append((w_t, init[node.input[2]].astype(np.float32).reshape(-1), 0))
        elif node.op_type in ACTIVATIONS and layers and layers[-1][2] == 0 and attrs.get("alpha", 1.0) == 1.0:
            w_t, b, _ = layers[-1]
            layers[-1] = (w_t, b, ACTIVATIONS[node.op_type])
        else:
            raise BundleError(f"{onnx_path}: operator {node.op_type} is not a Gemm or one of "
                              f"{', '.join(ACTIVATIONS)} after one (not an MLP)")
        current = node.output[0]
    if not layers or current != model.graph.output[0].name:
        raise BundleError(f"{onnx_path}: the graph's output is not its last layer (not an MLP)")
    return layers


def load_bundle(path: str | Path, runtime: Literal["onnx", "torchscript"] = "onnx") -> Bundle:
    """Load a bundle folder; malformed bundles raise BundleError naming the missing or bad file."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"bundle not found: {path} is not a directory")
    contract_file = path / CONTRACT_FILE
    if not contract_file.is_file():
        raise BundleError(f"bundle {path} is missing {CONTRACT_FILE}")
    try:
        contract = PolicyContract.load(contract_file)
    except ContractError as exc:
        raise BundleError(f"bundle {contract_file}: {exc}") from None
    if contract.obs_mean is None or contract.obs_std is None:
        raise BundleError(f"bundle {contract_file}: obs_mean/obs_std are not set")
    if not np.all(np.asarray(contract.obs_std) > 0):
        raise BundleError(f"bundle {contract_file}: obs_std must be positive")
    runners = {"onnx": (ONNX_FILE, _onnx_runner), "torchscript": (TORCHSCRIPT_FILE, _torchscript_runner)}
    if runtime not in runners:
        raise BundleError(f"unknown bundle runtime '{runtime}' (choose from {', '.join(runners)})")
    file_name, make = runners[runtime]
    file = path / file_name
    if not file.is_file():
        raise BundleError(f"bundle {path} is missing {file_name}")
    return Bundle(path=path, contract=contract, runtime=runtime, _run=make(file, contract))
