"""kinema.hardware: the Robot interface, the simulated robot, real ALOHA arms and safety."""
