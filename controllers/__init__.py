"""kinema.controllers: the cerebellum, from what a policy or planner wants to motor commands.

- ``kinematics``: poses and Jacobians of named frames, read from the MuJoCo model.
- ``tasks`` / ``limits``: what the whole-body controller tracks and what it must respect.
- ``wbc``: the task-priority whole-body controller (strict hierarchy or weighted).
- ``mpc``: the joint-space MPC that smooths a reference under position, velocity and
  acceleration limits.
- ``qp``: the small dense QPs both solve (DAQP directly, or any cvxpy solver).
- ``action_spaces``: the joint and end-effector action spaces (6-D rotations).
- ``cerebellum``: MPC and WBC together, for joint references or gripper-pose targets.
"""
