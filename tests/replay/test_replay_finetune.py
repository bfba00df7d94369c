"""robot-rl finetune: bundle -> offline learning on a replayed dataset -> new bundle whose provenance names the
data; online SAC in the simulated A1 with the safety chain in the loop."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from robot_rl.bundle import load_bundle
from robot_rl.cli import main
from robot_rl.logs import a1_contract, simulate_ticks, write_tick_bag
from robot_rl.networks import Policy
from robot_rl.offline.finetune import dataset_digest

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray]:
    tmp = tmp_path_factory.mktemp("ft")
    contract = a1_contract()
    # trained on one forward command: online fine-tuning must keep it (provenance config.task_overrides)
    contract = contract.replace(provenance={**contract.provenance, "task": "a1_walk",
                                            "config": {"task_overrides": ["commands.vx=[0.3, 0.3]"]}})
    policy = Policy(contract.obs_dim, contract.act_dim, (32, 32))
    policy.set_statistics(np.random.default_rng(0).standard_normal((64, contract.obs_dim)))
    bundle = policy.export(tmp / "bundle", contract, {"task": "a1_walk"}, {})
    w = np.random.default_rng(1).standard_normal((contract.obs_dim, contract.act_dim)) * 0.05
    rng = np.random.default_rng(2)
    log = simulate_ticks(contract, lambda o: np.clip(o @ w + 0.02 * rng.standard_normal(12), -1, 1), 120,
                         reset_every=60)
    bag = write_tick_bag(tmp / "bag", log, contract)
    assert main(["replay", str(bag), "--out", str(tmp / "ds")]) == 0
    return bundle, tmp / "ds", w


def test_finetune_offline_writes_bundle_pointing_to_data(setup: tuple[Path, Path, np.ndarray], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    bundle, ds, w = setup
    out = tmp_path / "bc"
    assert main(["finetune", str(bundle), "--data", str(ds), "--algo", "bc", "--steps", "300", "--out", str(out)]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["dataset_transitions"] == 118
    new, old = load_bundle(out), load_bundle(bundle)
    prov = new.contract.provenance["finetune"]
    assert prov["dataset"] == str(ds.resolve()) and prov["dataset_sha256"] == dataset_digest(ds)
    assert prov["algo"] == "bc" and prov["from_bundle"] == str(bundle.resolve())
    from robot_rl.dataset import load_dataset

    data = load_dataset(ds).transitions()
    err_new = np.abs(new.act(data.obs) - data.action).mean()
    err_old = np.abs(old.act(data.obs) - data.action).mean()
    assert err_new < 0.5 * err_old, (err_new, err_old)


def test_finetune_online_runs_with_safety_chain(setup: tuple[Path, Path, np.ndarray], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    bundle, ds, _ = setup
    out = tmp_path / "online"
    assert main(["finetune", str(bundle), "--data", str(ds), "--algo", "iql", "--steps", "50", "--online",
                 "--online-steps", "48", "--num-envs", "4", "--critic-warmup", "20", "--set", "init_std=1.0",
                 "--out", str(out)]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["online/transitions"] == 48
    # exploration of std 1 asks for target jumps the chain's rate limit corrects: it is in the loop and counted
    # (a rate between 0 and 1 held with no chain at all, and the calm bundle alone is never corrected)
    assert metrics["online/intervention_rate"] > 0.0, metrics
    prov = load_bundle(out).contract.provenance["finetune"]
    assert prov["online_steps"] == 48 and prov["online_algo"] == "iql"
    assert "rewards.safety_intervened=-1.0" in prov["env_overrides"]  # and each correction costs reward


def test_finetune_evaluates_on_the_task_not_in_the_online_training_env(setup: tuple[Path, Path, np.ndarray],
                                                                      tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Online episodes are capped (0.2 s here) and penalize interventions; the before/after evaluation runs the task
    as the bundle was trained (2 s episodes), so its returns compare with the bundle's own evaluation."""
    source, ds, _ = setup
    bundle = tmp_path / "bundle_2s"
    shutil.copytree(source, bundle)
    contract_file = bundle / "contract.json"
    contract = json.loads(contract_file.read_text())
    contract["provenance"]["config"]["task_overrides"].append("termination.episode_length_s=2.0")
    contract_file.write_text(json.dumps(contract))
    assert main(["finetune", str(bundle), "--data", str(ds), "--algo", "iql", "--steps", "20", "--online",
                 "--online-steps", "40", "--num-envs", "2", "--critic-warmup", "0", "--online-episode-s", "0.2",
                 "--eval-episodes", "2",
                 "--out", str(tmp_path / "eval")]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    policy_rate = load_bundle(bundle).contract.policy_rate_hz
    assert metrics["online/transitions"] == 40
    for phase in ("before", "after"):
        assert metrics[f"{phase}/episodes"] == 2
        # a standing start lasts the task's 2 s unless it falls; a fall ends it early, never at the 0.2 s cap
        assert metrics[f"{phase}/length_mean"] > 0.2 * policy_rate, metrics
        if metrics[f"{phase}/fell_rate"] == 0.0:
            assert metrics[f"{phase}/length_mean"] == 2.0 * policy_rate


def test_finetune_from_policy_actions_anchored_to_the_bundle(setup: tuple[Path, Path, np.ndarray], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """--actions policy learns the policy's logged output (what the safety chain received), not the certified
    action; --learner anchor=... keeps IQL's actor near the bundle's: the anchored actor moves far less."""
    bundle, ds, _ = setup
    from robot_rl.dataset import load_dataset

    data = load_dataset(ds)
    raw, applied = data.transitions("policy"), data.transitions()
    assert raw.action.shape == applied.action.shape
    ep = data.episodes[0]
    assert np.array_equal(raw.action[:len(ep)], ep.infos["policy_action"][:-1].astype(np.float32))
    old = load_bundle(bundle)
    moved = {}
    for anchor in (0.0, 30.0):
        out = tmp_path / f"anchor{anchor:g}"
        assert main(["finetune", str(bundle), "--data", str(ds), "--algo", "iql", "--steps", "300", "--actions",
                     "policy", "--learner", "temperature=3", f"anchor={anchor:g}", "--out", str(out)]) == 0
        metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        # IQL's rewards are scaled to unit per-step std, so the advantage weights are not all 1
        assert metrics["offline/reward_scale"] == pytest.approx(1.0 / float(np.std(raw.reward)), rel=1e-5)
        prov = load_bundle(out).contract.provenance["finetune"]
        assert prov["actions"] == "policy" and prov["learner"] == {"temperature": 3, "anchor": anchor}
        moved[anchor] = float(np.abs(load_bundle(out).act(raw.obs) - old.act(raw.obs)).mean())
    assert moved[30.0] < 0.5 * moved[0.0], moved
    capsys.readouterr()
    assert main(["finetune", str(bundle), "--data", str(ds), "--learner", "expectil=0.9", "--out",
                 str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "iql has no setting expectil" in err and not (tmp_path / "bad").exists()


def test_finetune_refuses_dataset_of_other_layout(setup: tuple[Path, Path, np.ndarray], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _, ds, _ = setup
    contract = a1_contract()
    small = Policy(contract.obs_dim, contract.act_dim, (8,))
    other = small.export(tmp_path / "other", contract.replace(robot="go1"), {}, {})
    out = tmp_path / "x"
    assert main(["finetune", str(other), "--data", str(ds), "--steps", "10", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'a1', not 'go1'" in err
    assert not out.exists()


def test_policy_from_onnx_only_bundle(tmp_path: Path) -> None:
    """A deployment bundle may ship ONNX only (tests/ros/data/a1_walk does): the learner reads the actor from its
    initializers and reproduces onnxruntime's actions; a bundle without policy.onnx is refused by name, whatever
    else it holds."""
    fixture = Path(__file__).resolve().parents[1] / "ros" / "data" / "a1_walk"
    assert not (fixture / "policy.pt").exists()
    policy, contract = Policy.from_bundle(fixture)
    obs = np.random.default_rng(0).standard_normal((16, contract.obs_dim)).astype(np.float32)
    runtime = load_bundle(fixture)
    np.testing.assert_allclose(policy.act(obs), np.stack([runtime.act(o) for o in obs]), atol=1e-4)
    # an exported bundle without its TorchScript file loads the same weights from ONNX
    exported = policy.export(tmp_path / "b", contract, {}, {})
    (exported / "policy.pt").unlink()
    again, _ = Policy.from_bundle(exported)
    np.testing.assert_allclose(again.act(obs), policy.act(obs), atol=1e-5)
    (exported / "policy.onnx").unlink()
    from robot_rl.errors import BundleError

    (exported / "policy.pt").write_bytes(b"TorchScript is never read")
    with pytest.raises(BundleError, match="missing policy.onnx"):
        Policy.from_bundle(exported)


def test_finetune_online_ppo_in_the_simulated_a1_with_safety_chain(setup: tuple[Path, Path, np.ndarray],
                                                                   tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    bundle, ds, _ = setup
    out = tmp_path / "ppo"
    assert main(["finetune", str(bundle), "--data", str(ds), "--steps", "0", "--online", "--online-algo", "ppo",
                 "--online-steps", "96", "--num-envs", "2", "--set", "init_std=1.0", "--out", str(out)]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["online/transitions"] == 96  # 2 iterations of 2 robots x 24 steps
    assert metrics["online/intervention_rate"] > 0.0, metrics  # the chain corrects PPO's exploration too
    prov = load_bundle(out).contract.provenance["finetune"]
    assert prov["online_algo"] == "ppo" and prov["online_steps"] == 96 and prov["offline_steps"] == 0


def test_finetune_online_reads_sysid_config_and_penalizes_interventions(setup: tuple[Path, Path, np.ndarray],
                                                                         tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    bundle, ds, _ = setup
    cfg = tmp_path / "rand.yaml"
    cfg.write_text("# robot-rl sysid\ntask: a1_walk\ntask_overrides:\n- randomization.friction.low=0.55\n"
                   "- randomization.friction.high=0.65\n")
    out = tmp_path / "ppo_cfg"
    assert main(["finetune", str(bundle), "--data", str(ds), "--steps", "0", "--online", "--online-algo", "ppo",
                 "--online-steps", "48", "--num-envs", "2", "--sim-config", str(cfg), "--set",
                 "task_overrides=[randomization.friction.high=0.6]", "--intervention-penalty", "0.8",
                 "--out", str(out)]) == 0
    prov = load_bundle(out).contract.provenance["finetune"]
    # the file's overrides first, --set after them (and so winning)
    assert prov["task_overrides"] == ["randomization.friction.low=0.55", "randomization.friction.high=0.65",
                                      "randomization.friction.high=0.6"]
    # the online phase: the bundle's training overrides, the penalty and the 5 s episode cap, the user's overrides
    assert prov["env_overrides"] == ["commands.vx=[0.3, 0.3]", "rewards.safety_intervened=-0.8",
                                     "termination.episode_length_s=5.0", *prov["task_overrides"]]
    from robot_rl.sim import make_vec_env

    env = make_vec_env("a1_walk", 1, 0, overrides=prov["env_overrides"])
    assert env.task.cfg.rewards.safety_intervened == -0.8 and env.cfg.randomization.friction.high == 0.6
    assert env.task.max_episode_steps == 250 and env.cfg.commands.vx == (0.3, 0.3)


@pytest.mark.parametrize("text", ["[1, 2", "- just\n- a list\n", "task_overrides: 3\n"])
def test_finetune_refuses_unreadable_sim_config(setup: tuple[Path, Path, np.ndarray], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str], text: str) -> None:
    bundle, ds, _ = setup
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    out = tmp_path / "never"
    assert main(["finetune", str(bundle), "--data", str(ds), "--steps", "0", "--online", "--online-algo", "ppo",
                 "--sim-config", str(cfg), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--sim-config" in err[0] and str(cfg) in err[0]
    assert not out.exists()


def test_offline_rewards_lose_the_intervention_penalty_on_flagged_steps() -> None:
    """Offline fine-tuning optimizes what online fine-tuning does: every logged step on which the safety chain
    changed the action loses the penalty (per second, times the policy period), the others keep their reward."""
    from robot_rl.offline.buffer import Transitions
    from robot_rl.offline.finetune import penalize_interventions

    rng = np.random.default_rng(0)
    n = 200
    flags = rng.random(n) < 0.3
    data = Transitions(obs=rng.standard_normal((n, 3)).astype(np.float32),
                       action=rng.standard_normal((n, 2)).astype(np.float32),
                       reward=rng.random(n).astype(np.float32), next_obs=rng.standard_normal((n, 3)).astype(np.float32),
                       terminated=np.zeros(n, bool), truncated=np.zeros(n, bool), intervened=flags)
    out = penalize_interventions(data, 1.0 / 50.0)
    np.testing.assert_allclose(data.reward - out.reward, np.where(flags, 0.02, 0.0), atol=1e-6)
    assert out.reward.dtype == np.float32 and np.array_equal(out.obs, data.obs)
    assert penalize_interventions(data, 0.0) is data


def test_finetune_closes_its_environments_when_it_fails(setup: tuple[Path, Path, np.ndarray],
                                                        tmp_path: Path) -> None:
    """An exception after the simulated robots are built (here the output stream is gone: a broken pipe on the
    first log line, as with `robot-rl finetune ... | head -1`) closes them: their physics threads stop at once."""
    import os

    from robot_rl.offline.finetune import FinetuneConfig, finetune

    def threads() -> int:
        return len(os.listdir("/proc/self/task"))  # native threads too: mujoco.rollout's pool

    bundle, ds, _ = setup

    def broken_pipe(line: str) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    cfg = FinetuneConfig(bundle=str(bundle), data=str(ds), out=str(tmp_path / "never"), algo="bc", offline_steps=1,
                         online=True, num_envs=2, task_overrides=["num_threads=2"])
    # one-time lazy threads (not the environments') start in a first run
    finetune(dataclasses.replace(cfg, online=False, out=str(tmp_path / "warm")), log=lambda line: None)
    before = threads()
    with pytest.raises(BrokenPipeError) as failed:
        finetune(cfg, log=broken_pipe)
    assert threads() == before, failed.value
    assert not (tmp_path / "never").exists()


def _script_that_runs_when_loaded(path: Path) -> None:
    """A TorchScript file whose __setstate__ runs during torch.jit.load (as an attacker's code would) and fails."""
    from torch import nn

    class Trap(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(3, 2))
            self.armed = torch.ones(1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        @torch.jit.export
        def __getstate__(self) -> tuple[torch.Tensor, bool]:
            return (self.armed, self.training)

        @torch.jit.export
        def __setstate__(self, state: tuple[torch.Tensor, bool]) -> None:
            self.armed = state[0]
            self.training = state[1]
            raise RuntimeError("code from policy.pt ran")

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated, and still what robots load
        torch.jit.script(Trap()).save(str(path))
        with pytest.raises(torch.jit.Error, match="code from policy.pt ran"):
            torch.jit.load(str(path))  # loading it does run its code


def test_finetune_reads_weights_from_onnx_only(setup: tuple[Path, Path, np.ndarray], tmp_path: Path) -> None:
    """Fine-tuning an untrusted bundle runs no code from it: policy.pt (TorchScript, which carries code) is never
    loaded, the weights come from the ONNX graph's initializers. A bundle whose policy.pt runs code when loaded
    fine-tunes from the same actor as the original: identical initial actions."""
    source, ds, _ = setup
    bundle = tmp_path / "tampered"
    shutil.copytree(source, bundle)
    _script_that_runs_when_loaded(bundle / "policy.pt")
    obs = np.random.default_rng(3).standard_normal((32, load_bundle(source).contract.obs_dim)).astype(np.float32)
    expected = load_bundle(source).act(obs)  # onnxruntime on the original bundle
    policy, _ = Policy.from_bundle(bundle)
    np.testing.assert_allclose(policy.act(obs), expected, atol=1e-5)
    out = tmp_path / "out"
    assert main(["finetune", str(bundle), "--data", str(ds), "--steps", "0", "--out", str(out)]) == 0
    np.testing.assert_allclose(load_bundle(out).act(obs), expected, atol=1e-5)


@pytest.mark.parametrize("algo", ["iql", "bc"])
def test_online_batches_mix_logged_and_fresh_transitions(setup: tuple[Path, Path, np.ndarray], tmp_path: Path,
                                                         algo: str) -> None:
    """--online without --online-algo: the learner that runs online (IQL itself; a SAC after BC) draws every batch
    as update() does from the logged data and the fresh transitions, replay.offline_fraction of it logged; the fresh
    ones hold the actions the safety chain let through."""
    from robot_rl.dataset import load_dataset
    from robot_rl.offline.finetune import FinetuneConfig, offline_learner, online_learner
    from robot_rl.offline.loop import run_online
    from robot_rl.offline.offpolicy import ReplayLearner
    from robot_rl.sim import make_vec_env

    bundle, ds, _ = setup
    policy, contract = Policy.from_bundle(bundle, init_std=1.0)  # explores enough for the chain to correct it
    data = load_dataset(ds).transitions("policy")
    cfg = FinetuneConfig(bundle=str(bundle), data=str(ds), out=str(tmp_path / "x"), algo=algo, online=True,
                         num_envs=2, batch_size=64, critic_warmup_steps=5)
    learner, setup_, _ = offline_learner(cfg, policy, data, contract.action.clip)
    online, steps, _ = online_learner(cfg, policy, data, learner, setup_)
    assert isinstance(online, ReplayLearner) and (online is learner) == (algo == "iql")
    env = make_vec_env("a1_walk", 2, 0, safety=True)
    try:
        stats = run_online(online, env, 30)
        # five more steps by hand: the learner stores the action the safety chain let through, not its sample
        obs = env.reset(seed=1)
        differ = []
        for _ in range(5):
            sampled = online.act(obs)
            obs, rew, term, trunc, info = env.step(sampled)
            online.process_env_step(obs, rew, term, trunc, info)
            stored = online.feed.online.all().action[-2:]
            np.testing.assert_array_equal(stored, np.clip(info["applied_action"], -1, 1).astype(np.float32))
            corrected = np.asarray(info["safety"]["safety/intervened"], bool)
            differ += [not np.allclose(stored[i], sampled[i]) for i in np.flatnonzero(corrected)]
    finally:
        env.close()
    assert stats["transitions"] == 30 and len(online.feed.online) == 40
    assert differ and all(differ)
    logged = {row.tobytes() for row in data.obs}
    fresh = {row.tobytes() for row in online.feed.online.all().obs}
    assert not logged & fresh
    for _ in range(5):
        obs = online.feed.sample().obs.numpy()
        origin = [row.tobytes() in logged for row in obs]
        assert sum(origin) == 32, origin  # offline_fraction 0.5 of 64
        assert all(row.tobytes() in fresh for row, was_logged in zip(obs, origin) if not was_logged)
