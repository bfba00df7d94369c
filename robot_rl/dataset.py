"""Offline-RL datasets in the Minari format (HDF5 storage), with the policy contract inside, and their report.

Layout of a dataset folder (the same as one dataset in Minari's local store, so a user can copy it into
`$MINARI_DATASETS_PATH/robot_rl/<name>-v0` and call `minari.load_dataset`, or open it in place with
`minari.MinariDataset(folder / "data")`):

    DATASET/data/main_data.hdf5      episodes: observations (T+1), actions (T), rewards, terminations, truncations,
                                      infos (T+1 per tick: seq, stamp, robot state, command, policy action,
                                      targets, safe targets, intervened, reward terms)
    DATASET/data/metadata.json       Minari metadata + robot_rl.robot, robot_rl.contract (JSON), robot_rl.sources
    DATASET/report.json, report.md, plots/*.png

`actions` are the APPLIED actions, decoded from the certified (safe) targets through the contract: what the robot
executed, what a learner must store (as in training). The policy's raw output is in infos["policy_action"].
Writing goes to a temporary sibling folder renamed into place, so a failure leaves nothing at the output path.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.atomic import replace_dir
from robot_rl.contract import PolicyContract
from robot_rl.errors import ContractError, RobotRLError

DATA_DIR = "data"
FORMAT_VERSION = 1
REWARD_TERMS_KEY = "reward_terms"
"""Metadata entry (`robot_rl.reward_terms`) of the dataset's reward: {"rebuilt": [term, ...], "left_out":
{term: why}}, the weighted terms of the task that replay rebuilt from the log and those it could not."""


class DatasetError(RobotRLError):
    """A dataset is missing, unreadable, or does not fit the robot / contract it is used with."""


@dataclass
class Episode:
    """One episode: T transitions, T+1 observations and per-tick infos."""

    observations: np.ndarray
    """(T+1, obs_dim) float32 raw observations."""
    actions: np.ndarray
    """(T, act_dim) float32 applied actions."""
    rewards: np.ndarray
    """(T,) float32 rewards recomputed from the task's reward terms."""
    terminations: np.ndarray
    """(T,) bool."""
    truncations: np.ndarray
    """(T,) bool."""
    infos: dict[str, np.ndarray] = field(default_factory=dict)
    """Per-tick arrays with T+1 rows."""

    def __len__(self) -> int:
        return len(self.rewards)


@dataclass
class Dataset:
    path: Path
    contract: PolicyContract
    episodes: list[Episode]
    metadata: dict[str, Any]

    @property
    def num_transitions(self) -> int:
        return sum(len(e) for e in self.episodes)

    def check_robot(self, robot: str | None = None, contract: PolicyContract | None = None) -> None:
        """Refuse a dataset recorded on another robot or with another observation/action layout."""
        if robot is not None and robot != self.contract.robot:
            raise DatasetError(f"dataset {self.path} is from robot '{self.contract.robot}', not '{robot}'")
        if contract is not None:
            try:
                contract.check_robot(self.contract.robot, self.contract.joint_names)
            except ContractError as exc:
                raise DatasetError(f"dataset {self.path} does not match the contract: {exc}") from None
            if contract.obs_dim != self.contract.obs_dim or contract.act_dim != self.contract.act_dim:
                raise DatasetError(f"dataset {self.path} has obs/act dims {self.contract.obs_dim}/"
                                   f"{self.contract.act_dim}, the contract {contract.obs_dim}/{contract.act_dim}")

    def transitions(self, actions: str = "applied") -> Any:
        """All episodes as one `robot_rl.offline.buffer.Transitions` (next_obs of the last step = final obs).

        actions="applied": the actions the robot executed (decoded from the certified targets; what the trainer
        stores); "policy": the policy's output as the safety chain received it (with any deployment exploration
        noise; `infos["policy_action"]`). A learner of "policy" actions learns what to ask the chain for, which is
        what its actor outputs when deployed behind the same chain."""
        from robot_rl.offline.buffer import Transitions

        if actions not in ("applied", "policy"):
            raise DatasetError(f"actions must be 'applied' or 'policy', not '{actions}'")
        parts = []
        for ep in self.episodes:
            intervened = ep.infos.get("intervened", np.zeros(len(ep) + 1))[:-1].astype(bool)
            act = ep.actions
            if actions == "policy":
                if "policy_action" not in ep.infos:
                    raise DatasetError(f"dataset {self.path}: no policy actions (infos['policy_action'])")
                act = np.asarray(ep.infos["policy_action"][:-1], np.float32)
            parts.append(Transitions(obs=ep.observations[:-1], action=act,
                                     reward=ep.rewards.astype(np.float32), next_obs=ep.observations[1:],
                                     terminated=ep.terminations.astype(bool),
                                     truncated=ep.truncations.astype(bool), intervened=intervened))
        if not parts:
            return Transitions.empty(self.contract.obs_dim, self.contract.act_dim)
        return Transitions.concat(parts)


def write_dataset(path: str | Path, episodes: list[Episode], contract: PolicyContract, name: str,
                  metadata: dict[str, Any] | None = None, report: bool = True) -> Path:
    """Write a dataset folder atomically (temporary sibling, then rename); refuses an existing non-empty path."""
    import gymnasium as gym
    import minari
    from minari.data_collector import EpisodeBuffer
    from minari.dataset.minari_storage import MinariStorage

    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise DatasetError(f"output {path} already exists")
    if not episodes:
        raise DatasetError("no episodes to write (every tick was filtered out)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        clip = contract.action.clip
        obs_space = gym.spaces.Box(-np.inf, np.inf, (contract.obs_dim,), np.float32)
        act_space = gym.spaces.Box(-np.inf, np.inf, (contract.act_dim,), np.float32)
        (tmp / DATA_DIR).mkdir()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            storage = MinariStorage.new(tmp / DATA_DIR, observation_space=obs_space, action_space=act_space,
                                        data_format="hdf5")
            meta = {"dataset_id": f"robot_rl/{_slug(name)}-v0", "algorithm_name": "robot_rl deployment log",
                    "author": {"robot_rl"}, "description": f"robot_rl replay of {name} ({contract.robot}); "
                    f"actions are applied (certified) actions, contract clip {clip}",
                    "minari_version": minari.__version__,
                    "robot_rl.format_version": FORMAT_VERSION, "robot_rl.robot": contract.robot,
                    "robot_rl.contract": contract.to_json()}
            meta.update({f"robot_rl.{k}": v if isinstance(v, (str, int, float)) else json.dumps(v)
                         for k, v in (metadata or {}).items()})
            storage.update_metadata(meta)
            buffers = [EpisodeBuffer(id=i, observations=e.observations.astype(np.float32),
                                     actions=e.actions.astype(np.float32), rewards=e.rewards.astype(np.float64),
                                     terminations=e.terminations.astype(bool), truncations=e.truncations.astype(bool),
                                     infos={k: np.asarray(v) for k, v in e.infos.items()})
                       for i, e in enumerate(episodes)]
            storage.update_episodes(buffers)
        if report:
            ds = Dataset(path=path, contract=contract, episodes=episodes, metadata=meta)
            write_report(ds, tmp)
        tmp.chmod(0o755)
        replace_dir(tmp, path)  # `path` is absent or an empty folder (checked above)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _slug(name: str) -> str:
    out = "".join(c if c.isalnum() else "_" for c in name).strip("_")
    return out or "log"


def load_dataset(path: str | Path) -> Dataset:
    """Read a dataset folder written by `write_dataset` (any Minari dataset carrying a robot_rl contract)."""
    from minari import MinariDataset

    path = Path(path)
    data = path / DATA_DIR
    if not (data / "metadata.json").is_file():
        raise DatasetError(f"dataset not found: {path} has no {DATA_DIR}/metadata.json "
                           "(write one with robot-rl replay)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mds = MinariDataset(data)
            meta = dict(mds.storage.metadata)
            raw = list(mds.iterate_episodes())
    except Exception as exc:  # noqa: BLE001 - h5py / minari raise many types on a damaged file
        raise DatasetError(f"dataset {path}: unreadable ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") \
            from None
    if "robot_rl.contract" not in meta:
        raise DatasetError(f"dataset {path} carries no robot_rl contract (robot_rl.contract metadata)")
    try:
        contract = PolicyContract.from_dict(json.loads(meta["robot_rl.contract"]))
    except (ValueError, TypeError, RobotRLError) as exc:  # truncated JSON, a field of the wrong type or value
        raise DatasetError(f"dataset {path}: its contract (robot_rl.contract metadata) is corrupt "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]})") from None
    episodes = [Episode(observations=np.asarray(e.observations, np.float32),
                        actions=np.asarray(e.actions, np.float32), rewards=np.asarray(e.rewards, np.float32),
                        terminations=np.asarray(e.terminations, bool), truncations=np.asarray(e.truncations, bool),
                        infos={k: np.asarray(v) for k, v in e.infos.items()})
                for e in raw]
    return Dataset(path=path, contract=contract, episodes=episodes, metadata=meta)


def reward_terms(metadata: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """(rebuilt terms, left-out term -> why) of a dataset's rewards from its metadata (REWARD_TERMS_KEY). A dataset
    written before the entry existed lists its left-out terms as `reward_terms_skipped`."""
    raw = metadata.get(f"robot_rl.{REWARD_TERMS_KEY}")
    if raw is None:
        old = json.loads(metadata.get("robot_rl.reward_terms_skipped", "[]"))
        return [], {str(k): "left out by replay (no reason recorded)" for k in old}
    tree = json.loads(raw) if isinstance(raw, str) else raw
    return [str(k) for k in tree.get("rebuilt", [])], {str(k): str(v) for k, v in tree.get("left_out", {}).items()}


# ---- report ----------------------------------------------------------------------------------------------------
def dataset_report(ds: Dataset) -> dict[str, Any]:
    """Episodes, transitions, return statistics, action coverage and safety-intervention rate."""
    returns = np.array([float(e.rewards.sum()) for e in ds.episodes])
    lengths = np.array([len(e) for e in ds.episodes])
    actions = np.concatenate([e.actions for e in ds.episodes]) if ds.episodes else np.zeros((0, ds.contract.act_dim))
    intervened = np.concatenate([e.infos["intervened"][:-1] for e in ds.episodes if "intervened" in e.infos]) \
        if ds.episodes else np.zeros(0)
    clip = ds.contract.action.clip
    bins = np.linspace(-clip, clip, 11)
    coverage = [float(np.mean(np.histogram(np.clip(actions[:, j], -clip, clip), bins)[0] > 0))
                for j in range(actions.shape[1])] if len(actions) else []
    return {
        "episodes": len(ds.episodes), "transitions": int(lengths.sum()),
        "return_mean": float(returns.mean()) if len(returns) else 0.0,
        "return_std": float(returns.std()) if len(returns) else 0.0,
        "return_min": float(returns.min()) if len(returns) else 0.0,
        "return_max": float(returns.max()) if len(returns) else 0.0,
        "length_mean": float(lengths.mean()) if len(lengths) else 0.0,
        "terminated_episodes": int(sum(bool(e.terminations.any()) for e in ds.episodes)),
        "action_mean": actions.mean(0).round(4).tolist() if len(actions) else [],
        "action_std": actions.std(0).round(4).tolist() if len(actions) else [],
        "action_coverage": coverage,
        "action_coverage_mean": float(np.mean(coverage)) if coverage else 0.0,
        "action_outside_clip": float(np.mean(np.abs(actions) > clip + 1e-6)) if len(actions) else 0.0,
        "intervention_rate": float(np.mean(intervened)) if len(intervened) else 0.0,
    }


def write_report(ds: Dataset, folder: Path) -> dict[str, Any]:
    """report.json, report.md and plots/{returns,actions,interventions}.png in `folder`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rep = dataset_report(ds)
    extra = {k.removeprefix("robot_rl."): v for k, v in ds.metadata.items()
             if k.startswith("robot_rl.") and k not in ("robot_rl.contract",)}
    rebuilt, left_out = reward_terms(ds.metadata)
    extra[REWARD_TERMS_KEY] = {"rebuilt": rebuilt, "left_out": left_out}
    (folder / "report.json").write_text(json.dumps({**rep, **extra}, indent=2))
    plots = folder / "plots"
    plots.mkdir(exist_ok=True)
    returns = [float(e.rewards.sum()) for e in ds.episodes]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    ax[0].hist(returns, bins=min(20, max(1, len(returns))))
    ax[0].set_xlabel("episode return")
    ax[0].set_ylabel("episodes")
    ax[1].plot([len(e) for e in ds.episodes], "o-")
    ax[1].set_xlabel("episode")
    ax[1].set_ylabel("length [ticks]")
    fig.tight_layout()
    fig.savefig(plots / "returns.png", dpi=80)
    plt.close(fig)
    actions = np.concatenate([e.actions for e in ds.episodes])
    fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * actions.shape[1] + 2), 3.2))
    ax.boxplot(actions, whis=(1, 99), showfliers=False)
    clip = ds.contract.action.clip
    ax.axhline(clip, color="r", lw=0.8)
    ax.axhline(-clip, color="r", lw=0.8)
    ax.set_xlabel("action dimension")
    ax.set_ylabel("applied action")
    fig.tight_layout()
    fig.savefig(plots / "actions.png", dpi=80)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    rates = [float(np.mean(e.infos["intervened"][:-1])) if "intervened" in e.infos and len(e) else 0.0
             for e in ds.episodes]
    ax.bar(range(len(rates)), rates)
    ax.set_xlabel("episode")
    ax.set_ylabel("safety interventions / tick")
    fig.tight_layout()
    fig.savefig(plots / "interventions.png", dpi=80)
    plt.close(fig)
    lines = [f"# Dataset report: {ds.metadata.get('dataset_id', ds.path.name)}", "",
             f"Robot `{ds.contract.robot}`, {rep['episodes']} episodes, {rep['transitions']} transitions.", "",
             "| statistic | value |", "| --- | --- |"]
    for key in ("return_mean", "return_std", "return_min", "return_max", "length_mean", "terminated_episodes",
                "action_coverage_mean", "action_outside_clip", "intervention_rate"):
        value = rep[key]
        lines.append(f"| {key} | {value:.4g} |" if isinstance(value, float) else f"| {key} | {value} |")
    lines += ["", "## Reward", "", f"Rebuilt from the log: {', '.join(rebuilt) or 'none'}."]
    if left_out:
        lines += ["", "Left out (weight 0 online when fine-tuning on this dataset too):", ""]
        lines += [f"- `{name}`: {why}" for name, why in left_out.items()]
    lines += ["", "![returns](plots/returns.png)", "![actions](plots/actions.png)",
              "![interventions](plots/interventions.png)", ""]
    (folder / "report.md").write_text("\n".join(lines))
    return rep
