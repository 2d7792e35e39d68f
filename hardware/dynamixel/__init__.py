"""Dynamixel Protocol 2.0: packets, and an emulator of X-series servos on a pseudo-terminal.

- :mod:`.protocol`: packet layout, CRC-16, byte stuffing, encoding and an incremental parser.
- :mod:`.control_table`: the X-series control table and a servo's factory memory.
- :mod:`.emulator`: :class:`~.emulator.DynamixelEmulator`, servos on a pty that lerobot's
  ``DynamixelMotorsBus`` (through dynamixel_sdk and pyserial) drives as real ones.
"""
