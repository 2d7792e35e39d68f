"""Scripted experts: demonstrators that solve each task from the true object poses.

``run_expert_episode(env, task, seed)`` runs one demonstration through the cerebellum (WBC and
MPC at 500 Hz) and returns its outcome and its 50 Hz joint actions.
"""

from kinema.sim.experts.runner import EXPERTS, ExpertDriver, ExpertEpisode, run_expert_episode

__all__ = ["EXPERTS", "ExpertDriver", "ExpertEpisode", "run_expert_episode"]
