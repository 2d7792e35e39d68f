"""Dynamixel Protocol 2.0: packets, and an emulator of X-series servos on a pseudo-terminal."""
