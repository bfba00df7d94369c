"""Safety layer: shields, CBF-QP filter, energy-tank passivity filter, the chain and its telemetry."""
