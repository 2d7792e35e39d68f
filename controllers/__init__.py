"""kinema.controllers: kinematics, the task-priority whole-body controller and the MPC."""
