"""Simulator backends, robot models, tasks, domain randomization and vectorized environments."""
