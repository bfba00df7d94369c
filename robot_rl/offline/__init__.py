"""Learning from logged data: behaviour cloning, TD3+BC, IQL (offline) and SAC (online, high update-to-data ratio,
RLPD-style symmetric sampling of logged and fresh data for offline-to-online fine-tuning).

Every learner shares the PPO actor architecture (`robot_rl.networks.mlp` on normalized observations, a
state-independent log standard deviation), so a policy bundle can initialize any of them and each exports a bundle
(`robot_rl.offline.policy`). One algorithm per file, each with `update(batch) -> dict of losses`; the online
learner adds `act` / `process_env_step` in the rsl_rl shape. One typed transition record
(`robot_rl.offline.buffer.Transitions`) is shared by logged datasets and online replay.
"""

from __future__ import annotations

from robot_rl.offline.buffer import ReplayBuffer, Transitions, sample_symmetric
from robot_rl.offline.policy import Policy

__all__ = ["Policy", "ReplayBuffer", "Transitions", "sample_symmetric", "ALGORITHMS"]

ALGORITHMS = ("bc", "td3bc", "iql", "sac")
"""Names accepted by `robot-rl finetune --algo`."""
