"""Learning from logged data: behaviour cloning, TD3+BC, IQL (offline) and SAC (online, high update-to-data ratio,
RLPD-style symmetric sampling of logged and fresh data for offline-to-online fine-tuning).

Every learner follows the one learner protocol (robot_rl.learner) and shares the one Gaussian actor
(robot_rl.networks.Policy), so a policy bundle can initialize any of them and each exports a bundle. One algorithm
per file. One typed transition record (`robot_rl.offline.buffer.Transitions`) is shared by logged datasets and
online replay.
"""

from __future__ import annotations

from robot_rl.offline.buffer import ReplayBuffer, Transitions, sample_symmetric

__all__ = ["ReplayBuffer", "Transitions", "sample_symmetric"]
