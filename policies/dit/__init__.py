"""The DiT policy: a diffusion transformer from observations and a subtask to action chunks."""
