"""The X-series control table (XM430-W350, XM540-W270, XL430-W250) and a servo's factory memory.

A servo's memory is a ``bytearray`` of :data:`TABLE_SIZE` bytes addressed as in the ROBOTIS
e-manual (and lerobot's ``X_SERIES_CONTROL_TABLE``); a register of ``size`` bytes at ``address``
holds a little-endian integer, two's complement where :attr:`Register.signed`. Addresses below
:data:`EEPROM_END` are EEPROM: a servo refuses writes there while its torque is enabled. Bytes
between registers are undefined: reading them gives 0, writing them is an access error.

The three models share one table, as in lerobot (the XL430-W250 has no current sensing, so on the
real servo Current_Limit, Goal_Current and Present_Current read 0; here they are plain memory).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from .protocol import MAX_ID, StatusError


@dataclass(frozen=True)
class Register:
    """One entry of the control table: ``size`` bytes (1, 2 or 4) at ``address``."""

    name: str
    address: int
    size: int
    writable: bool
    signed: bool = False


_RW, _R = True, False

REGISTERS: tuple[Register, ...] = (
    Register("Model_Number", 0, 2, _R),
    Register("Model_Information", 2, 4, _R),
    Register("Firmware_Version", 6, 1, _R),
    Register("ID", 7, 1, _RW),
    Register("Baud_Rate", 8, 1, _RW),
    Register("Return_Delay_Time", 9, 1, _RW),  # units of 2 µs
    Register("Drive_Mode", 10, 1, _RW),
    Register("Operating_Mode", 11, 1, _RW),
    Register("Secondary_ID", 12, 1, _RW),
    Register("Protocol_Type", 13, 1, _RW),
    Register("Homing_Offset", 20, 4, _RW, signed=True),  # ticks
    Register("Moving_Threshold", 24, 4, _RW),
    Register("Temperature_Limit", 31, 1, _RW),  # °C
    Register("Max_Voltage_Limit", 32, 2, _RW),  # 0.1 V
    Register("Min_Voltage_Limit", 34, 2, _RW),  # 0.1 V
    Register("PWM_Limit", 36, 2, _RW),
    Register("Current_Limit", 38, 2, _RW),
    Register("Acceleration_Limit", 40, 4, _RW),
    Register("Velocity_Limit", 44, 4, _RW),
    Register("Max_Position_Limit", 48, 4, _RW),  # ticks
    Register("Min_Position_Limit", 52, 4, _RW),  # ticks
    Register("Shutdown", 63, 1, _RW),
    Register("Torque_Enable", 64, 1, _RW),
    Register("LED", 65, 1, _RW),
    Register("Status_Return_Level", 68, 1, _RW),
    Register("Registered_Instruction", 69, 1, _R),
    Register("Hardware_Error_Status", 70, 1, _R),
    Register("Velocity_I_Gain", 76, 2, _RW),
    Register("Velocity_P_Gain", 78, 2, _RW),
    Register("Position_D_Gain", 80, 2, _RW),
    Register("Position_I_Gain", 82, 2, _RW),
    Register("Position_P_Gain", 84, 2, _RW),
    Register("Feedforward_2nd_Gain", 88, 2, _RW),
    Register("Feedforward_1st_Gain", 90, 2, _RW),
    Register("Bus_Watchdog", 98, 1, _RW),
    Register("Goal_PWM", 100, 2, _RW, signed=True),
    Register("Goal_Current", 102, 2, _RW, signed=True),
    Register("Goal_Velocity", 104, 4, _RW, signed=True),
    Register("Profile_Acceleration", 108, 4, _RW),
    Register("Profile_Velocity", 112, 4, _RW),
    Register("Goal_Position", 116, 4, _RW, signed=True),  # ticks, 4096 a turn
    Register("Realtime_Tick", 120, 2, _R),  # ms
    Register("Moving", 122, 1, _R),
    Register("Moving_Status", 123, 1, _R),
    Register("Present_PWM", 124, 2, _R, signed=True),
    Register("Present_Current", 126, 2, _R, signed=True),
    Register("Present_Velocity", 128, 4, _R, signed=True),
    Register("Present_Position", 132, 4, _R, signed=True),  # ticks, 4096 a turn
    Register("Velocity_Trajectory", 136, 4, _R, signed=True),
    Register("Position_Trajectory", 140, 4, _R, signed=True),
    Register("Present_Input_Voltage", 144, 2, _R),  # 0.1 V
    Register("Present_Temperature", 146, 1, _R),  # °C
)

BY_NAME: Mapping[str, Register] = MappingProxyType({r.name: r for r in REGISTERS})
"""The registers by name."""

TABLE_SIZE = max(r.address + r.size for r in REGISTERS)
"""Bytes of servo memory: up to and including Present_Temperature."""

EEPROM_END = BY_NAME["Torque_Enable"].address
"""The first RAM address; writes below it are refused while torque is enabled."""

MODEL_NUMBERS: Mapping[str, int] = MappingProxyType(
    {"xm430-w350": 1020, "xm540-w270": 1120, "xl430-w250": 1060}
)
"""Model numbers (register 0) by lerobot model name."""

BAUD_RATE_INDEX: Mapping[int, int] = MappingProxyType(
    {9_600: 0, 57_600: 1, 115_200: 2, 1_000_000: 3, 2_000_000: 4, 3_000_000: 5, 4_000_000: 6}
)
"""Baud_Rate register values by line speed in bit/s."""

FIRMWARE_VERSION = 46

_WRITABLE = frozenset(
    address for r in REGISTERS if r.writable for address in range(r.address, r.address + r.size)
)

_FACTORY_VALUES: Mapping[str, int] = MappingProxyType(
    {
        "Firmware_Version": FIRMWARE_VERSION,
        "Baud_Rate": BAUD_RATE_INDEX[1_000_000],
        "Return_Delay_Time": 250,  # 500 µs
        "Operating_Mode": 3,  # position control
        "Protocol_Type": 2,
        "Moving_Threshold": 10,
        "Temperature_Limit": 80,
        "Max_Voltage_Limit": 160,
        "Min_Voltage_Limit": 95,
        "PWM_Limit": 885,
        "Current_Limit": 1193,
        "Acceleration_Limit": 32767,
        "Velocity_Limit": 200,
        "Max_Position_Limit": 4095,
        "Min_Position_Limit": 0,
        "Shutdown": 52,
        "Status_Return_Level": 2,
        "Velocity_I_Gain": 1920,
        "Velocity_P_Gain": 100,
        "Position_P_Gain": 800,
        "Goal_Position": 2048,
        "Present_Position": 2048,
        "Present_Input_Voltage": 120,
        "Present_Temperature": 35,
    }
)


def read_value(memory: bytes | bytearray, register: Register) -> int:
    """The integer in ``register`` of ``memory`` (little-endian, signed where the register is)."""
    raw = memory[register.address : register.address + register.size]
    return int.from_bytes(raw, "little", signed=register.signed)


def write_value(memory: bytearray, register: Register, value: int) -> None:
    """Stores ``value`` in ``register`` (little-endian, two's complement where signed).

    Raises ``OverflowError`` if ``value`` does not fit in the register."""
    raw = value.to_bytes(register.size, "little", signed=register.signed)
    memory[register.address : register.address + register.size] = raw


def factory_memory(servo_id: int, model_number: int) -> bytearray:
    """A fresh servo's memory: the model number, ``servo_id`` and factory defaults (1 Mbps, position
    mode, limits 0…4095 ticks, torque off, Present_Position 2048 ticks, 12.0 V, 35 °C)."""
    if not 0 <= servo_id <= MAX_ID:
        raise ValueError(f"servo_id must be in [0, {MAX_ID}], got {servo_id}")
    memory = bytearray(TABLE_SIZE)
    write_value(memory, BY_NAME["Model_Number"], model_number)
    write_value(memory, BY_NAME["ID"], servo_id)
    for name, value in _FACTORY_VALUES.items():
        write_value(memory, BY_NAME[name], value)
    return memory


def check_read(address: int, size: int) -> StatusError:
    """The error a servo answers to a READ of ``size`` bytes at ``address``: ACCESS if any byte is
    outside the table, else NONE."""
    if size < 1 or address < 0 or address + size > TABLE_SIZE:
        return StatusError.ACCESS
    return StatusError.NONE


def check_write(address: int, size: int, torque_enabled: bool) -> StatusError:
    """The error a servo answers to a WRITE of ``size`` bytes at ``address``: ACCESS if any byte is
    read-only or undefined, or in EEPROM while torque is enabled, else NONE."""
    span = range(address, address + size)
    if size < 1 or any(a not in _WRITABLE for a in span):
        return StatusError.ACCESS
    if torque_enabled and address < EEPROM_END:
        return StatusError.ACCESS
    return StatusError.NONE
