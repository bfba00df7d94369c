"""The one weighted reward sum: every task family and replay score a step with it.

A reward is a set of named terms, each a pure function `term(view, cfg) -> (N,)` of what the task sees after a
policy step (`view`, the task's own view type) and its reward config (`cfg`, shape parameters), and a weight per term
(per second). The reward of a step is

    total = sum over terms with weight != 0 of  term(view, cfg) * (weight * dt)

summed in the order of `terms`, starting from zeros; `per_term` holds each weighted term (what `info["reward_terms"]`
reports and what gets logged as `reward/<name>`). Terms with weight 0 are neither evaluated nor reported.

    total, per_term = weighted_sum(task.reward_terms, task.reward_weights, view, cfg, dt, num_envs)

Weights are per second, so changing the control rate does not change the weights. A task exposes its terms and
weights (`reward_terms`, `reward_weights`) so that replay scores a log with the terms of the task it came from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

import numpy as np

View = TypeVar("View")
Cfg = TypeVar("Cfg")

def weighted_sum(terms: Mapping[str, Callable[[View, Cfg], np.ndarray]], weights: Mapping[str, float], view: View,
                 cfg: Cfg, dt: float, num: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(total (num,), weighted terms by name) of one step; see the module docstring. A term missing from `weights`
    is a KeyError: every term a task declares has a weight."""
    total = np.zeros(num)
    per_term: dict[str, np.ndarray] = {}
    for name, fn in terms.items():
        w = weights[name]
        if w != 0.0:
            per_term[name] = value = fn(view, cfg) * (w * dt)
            total += value
    return total, per_term
