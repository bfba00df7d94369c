"""One folder per robot; each registers its model and tasks on import (see robot_rl.sim.registry)."""
