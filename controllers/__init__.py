"""PD / operational-space controllers and actuator models shared by simulation and robots. No simulator imports."""
