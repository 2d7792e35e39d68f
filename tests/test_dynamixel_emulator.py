"""The Dynamixel Protocol 2.0 packets, and the X-series emulator driven by the real driver stack:
dynamixel_sdk's PortHandler / PacketHandler / GroupSync*, and lerobot's DynamixelMotorsBus.

dynamixel_sdk waits for a status packet ``bytes × 0.01 ms + 2 × 16 ms + 2 ms`` at 1 Mbps (about
34 ms), so a missing answer costs each test only that long. The emulator answers within a
millisecond, but on a loaded machine its thread may wait longer than that for a core: tests that
expect answers use :class:`PatientPortHandler`, which waits a little longer."""

import os
import random
import threading
import time
from collections.abc import Iterator

import dynamixel_sdk as dxl
import pytest
import serial
from lerobot.motors import Motor, MotorNormMode
from lerobot.motors.dynamixel import DynamixelMotorsBus
from lerobot.motors.dynamixel.tables import MODEL_NUMBER_TABLE, X_SERIES_CONTROL_TABLE

from kinema.hardware.dynamixel.control_table import (
    BY_NAME,
    MODEL_NUMBERS,
    REGISTERS,
    factory_memory,
    read_value,
)
from kinema.hardware.dynamixel.emulator import DynamixelEmulator, EmulatorConfig
from kinema.hardware.dynamixel.protocol import (
    BROADCAST_ID,
    Instruction,
    Packet,
    PacketParser,
    StatusError,
    crc16,
    encode_packet,
    stuff,
    unstuff,
)

SERVOS = {1: 1020, 2: 1120, 3: 1060}  # XM430-W350, XM540-W270, XL430-W250
GOAL = BY_NAME["Goal_Position"].address
PRESENT = BY_NAME["Present_Position"].address
TORQUE = BY_NAME["Torque_Enable"].address

# Packets from the ROBOTIS e-manual (Protocol 2.0): PING ID 1; READ 4 bytes at 132 from ID 1,
# and its status (Present_Position 166); WRITE 512 to Goal_Position (116) of ID 1.
EMANUAL_PING = bytes.fromhex("FF FF FD 00 01 03 00 01 19 4E")
EMANUAL_READ = bytes.fromhex("FF FF FD 00 01 07 00 02 84 00 04 00 1D 15")
EMANUAL_READ_STATUS = bytes.fromhex("FF FF FD 00 01 08 00 55 00 A6 00 00 00 8C C0")
EMANUAL_WRITE = bytes.fromhex("FF FF FD 00 01 09 00 03 74 00 00 02 00 00 CA 89")


class PatientPortHandler(dxl.PortHandler):
    """dynamixel_sdk's port handler, waiting ``EXTRA_WAIT_MS`` longer for every status packet."""

    EXTRA_WAIT_MS = 100.0

    def setPacketTimeout(self, packet_length: int) -> None:
        super().setPacketTimeout(packet_length)
        self.packet_timeout += self.EXTRA_WAIT_MS


@pytest.fixture
def emulator() -> Iterator[DynamixelEmulator]:
    with DynamixelEmulator(SERVOS) as emulator:
        yield emulator


@pytest.fixture
def sdk(emulator: DynamixelEmulator) -> Iterator[tuple[dxl.PortHandler, dxl.PacketHandler]]:
    """dynamixel_sdk's port (opened at 1 Mbps) and Protocol 2.0 packet handler on the emulator."""
    port = PatientPortHandler(emulator.port)
    assert port.openPort()
    yield port, dxl.PacketHandler(2.0)
    port.closePort()


def exchange(
    emulator: DynamixelEmulator, packet: bytes, answers: int, wait_s: float = 0.1
) -> list[Packet]:
    """Sends raw bytes over pyserial; the status packets parsed until ``answers`` have come or
    ``wait_s`` seconds have passed."""
    parser, received = PacketParser(), []
    with serial.Serial(emulator.port, 1_000_000, timeout=0.01) as port:
        port.write(packet)
        deadline = time.monotonic() + wait_s
        while len(received) < answers and time.monotonic() < deadline:
            received += parser.feed(port.read(64))
    return received


# Packets


def test_crc_and_encoding_match_the_emanual_packets():
    assert crc16(EMANUAL_PING[:-2]) == 0x4E19
    assert encode_packet(1, Instruction.PING) == EMANUAL_PING
    assert encode_packet(1, Instruction.READ, bytes([0x84, 0, 4, 0])) == EMANUAL_READ
    assert encode_packet(1, Instruction.WRITE, bytes([0x74, 0, 0, 2, 0, 0])) == EMANUAL_WRITE
    status = encode_packet(1, Instruction.STATUS, bytes([0, 0xA6, 0, 0, 0]))
    assert status == EMANUAL_READ_STATUS


def test_stuffing_adds_fd_after_the_header_pattern_and_round_trips():
    payload = bytes.fromhex("03 FF FF FD 01 FF FF FD FD 02")
    assert stuff(payload) == bytes.fromhex("03 FF FF FD FD 01 FF FF FD FD FD 02")
    assert unstuff(stuff(payload)) == payload

    params = bytes.fromhex("74 00 FF FF FD 00")
    wire = encode_packet(7, Instruction.WRITE, params)
    assert int.from_bytes(wire[5:7], "little") == 1 + len(params) + 1 + 2  # one FD added
    assert PacketParser().feed(wire) == [Packet(7, Instruction.WRITE, params)]


def test_parser_finds_packets_split_anyhow_and_skips_garbage_and_bad_crc():
    first = encode_packet(1, Instruction.READ, bytes([0x84, 0, 4, 0]))
    second = encode_packet(2, Instruction.WRITE, bytes.fromhex("74 00 FF FF FD 00"))
    bad = bytearray(encode_packet(3, Instruction.PING))
    bad[-1] ^= 0x01
    impossible_length = bytes.fromhex("FF FF FD 00 05 01 00")  # LEN 1 < instruction + CRC
    stream = b"\x00\xff\xff" + first + impossible_length + bytes(bad) + b"\xfd" + second + b"\xff"
    expected = [
        Packet(1, Instruction.READ, bytes([0x84, 0, 4, 0])),
        Packet(2, Instruction.WRITE, bytes.fromhex("74 00 FF FF FD 00")),
    ]
    rng = random.Random(0)
    for _ in range(50):
        parser, packets, start = PacketParser(), [], 0
        while start < len(stream):
            end = start + rng.randint(1, 9)
            packets += parser.feed(stream[start:end])
            start = end
        assert packets == expected
        assert parser.bad_crc == 1


# Control table


def test_control_table_matches_lerobot_and_factory_defaults():
    assert {r.name: (r.address, r.size) for r in REGISTERS} == X_SERIES_CONTROL_TABLE
    for model, number in MODEL_NUMBERS.items():
        assert MODEL_NUMBER_TABLE[model] == number
    memory = factory_memory(5, 1120)
    values = {r.name: read_value(memory, r) for r in REGISTERS}
    assert values["Model_Number"] == 1120 and values["ID"] == 5 and values["Baud_Rate"] == 3
    assert (values["Min_Position_Limit"], values["Max_Position_Limit"]) == (0, 4095)
    assert (values["Present_Position"], values["Present_Temperature"]) == (2048, 35)
    assert values["Torque_Enable"] == 0


# The emulator through raw bytes


def test_broadcast_ping_is_answered_by_every_servo_in_id_order(emulator):
    answers = exchange(emulator, encode_packet(BROADCAST_ID, Instruction.PING), len(SERVOS))
    assert [(p.servo_id, p.instruction) for p in answers] == [(i, 0x55) for i in sorted(SERVOS)]
    models = [int.from_bytes(p.params[1:3], "little") for p in answers]
    assert models == [SERVOS[i] for i in sorted(SERVOS)]


def test_bad_crc_and_unknown_ids_are_not_answered(emulator):
    bad = bytearray(encode_packet(1, Instruction.PING))
    bad[-2] ^= 0xFF
    assert exchange(emulator, bytes(bad), 1) == []
    assert exchange(emulator, encode_packet(9, Instruction.PING), 1) == []
    assert emulator.stats.bad_crc == 1
    assert emulator.stats.answered == 0
    (status,) = exchange(emulator, encode_packet(1, 0x7F), 1)  # undefined instruction
    assert status.params == bytes([StatusError.INSTRUCTION])


# The emulator through dynamixel_sdk


def test_sdk_ping_returns_the_model_numbers(sdk):
    port, packets = sdk
    for servo_id, model in SERVOS.items():
        assert packets.ping(port, servo_id) == (model, dxl.COMM_SUCCESS, 0)
    assert packets.ping(port, 9)[1] == dxl.COMM_RX_TIMEOUT


def test_sdk_write_and_read_goal_position(emulator, sdk):
    port, packets = sdk
    assert packets.write4ByteTxRx(port, 1, GOAL, 1000) == (dxl.COMM_SUCCESS, 0)
    assert packets.read4ByteTxRx(port, 1, GOAL) == (1000, dxl.COMM_SUCCESS, 0)
    assert emulator.present_position(1) == 2048  # torque off: the servo does not move

    assert packets.write1ByteTxRx(port, 1, TORQUE, 1) == (dxl.COMM_SUCCESS, 0)
    assert packets.write4ByteTxRx(port, 1, GOAL, -300 & 0xFFFFFFFF) == (dxl.COMM_SUCCESS, 0)
    assert emulator.goal_position(1) == emulator.present_position(1) == -300
    assert packets.read4ByteTxRx(port, 1, PRESENT)[0] == -300 & 0xFFFFFFFF


def test_sdk_refused_accesses_get_the_access_error(emulator, sdk):
    port, packets = sdk
    assert packets.write4ByteTxRx(port, 2, PRESENT, 5) == (dxl.COMM_SUCCESS, StatusError.ACCESS)
    assert packets.readTxRx(port, 2, 140, 10)[2] == StatusError.ACCESS  # past the table
    packets.write1ByteTxRx(port, 2, TORQUE, 1)
    # EEPROM (below 64) is locked while torque is on.
    assert packets.write1ByteTxRx(port, 2, 9, 0) == (dxl.COMM_SUCCESS, StatusError.ACCESS)
    assert emulator.register(2, 9, 1) == 250
    assert emulator.present_position(2) == 2048


def test_sdk_group_sync_read_and_write(emulator, sdk):
    port, packets = sdk
    for servo_id in SERVOS:
        emulator.set_present_position(servo_id, 100 * servo_id)
    reader = dxl.GroupSyncRead(port, packets, PRESENT, 4)
    for servo_id in SERVOS:
        reader.addParam(servo_id)
    assert reader.txRxPacket() == dxl.COMM_SUCCESS
    assert {i: reader.getData(i, PRESENT, 4) for i in SERVOS} == {1: 100, 2: 200, 3: 300}

    writer = dxl.GroupSyncWrite(port, packets, GOAL, 4)
    for servo_id in SERVOS:
        writer.addParam(servo_id, list((1000 + servo_id).to_bytes(4, "little")))
    assert writer.txPacket() == dxl.COMM_SUCCESS
    reader = dxl.GroupSyncRead(port, packets, GOAL, 4)
    for servo_id in SERVOS:
        reader.addParam(servo_id)
    assert reader.txRxPacket() == dxl.COMM_SUCCESS  # handled after the write: it has landed
    assert {i: reader.getData(i, GOAL, 4) for i in SERVOS} == {1: 1001, 2: 1002, 3: 1003}


def test_sdk_id_change_renames_the_servo(emulator, sdk):
    port, packets = sdk
    assert packets.write1ByteTxRx(port, 3, BY_NAME["ID"].address, 7) == (dxl.COMM_SUCCESS, 0)
    assert packets.ping(port, 7)[:2] == (1060, dxl.COMM_SUCCESS)
    assert packets.ping(port, 3)[1] == dxl.COMM_RX_TIMEOUT
    assert packets.write1ByteTxRx(port, 7, 7, 1) == (dxl.COMM_SUCCESS, StatusError.DATA_RANGE)


# The emulator through lerobot's DynamixelMotorsBus


def lerobot_bus(port: str, models: dict[int, str]) -> DynamixelMotorsBus:
    motors = {f"joint_{i}": Motor(i, model, MotorNormMode.DEGREES) for i, model in models.items()}
    return DynamixelMotorsBus(port=port, motors=motors)


def test_lerobot_bus_reads_and_writes_through_the_emulator(emulator):
    goals = []
    emulator.on_goal(lambda servo_id, ticks: goals.append((servo_id, ticks)))
    bus = lerobot_bus(emulator.port, {1: "xm430-w350", 2: "xm540-w270", 3: "xl430-w250"})
    bus.connect()  # pings every ID and checks its model number
    bus.configure_motors()  # Return_Delay_Time 0, written while torque is off
    assert emulator.register(1, 9, 1) == 0

    for servo_id, ticks in {1: 1500, 2: -20, 3: 4000}.items():
        emulator.set_present_position(servo_id, ticks)
    positions = bus.sync_read("Present_Position", normalize=False)
    assert positions == {"joint_1": 1500, "joint_2": -20, "joint_3": 4000}

    bus.write("Torque_Enable", "joint_2", 1)
    assert emulator.torque_enabled(2)
    bus.sync_write("Goal_Position", {"joint_1": 10, "joint_2": 2100}, normalize=False)
    assert bus.read("Goal_Position", "joint_2", normalize=False) == 2100  # after the write
    assert (emulator.goal_position(1), emulator.goal_position(2)) == (10, 2100)
    assert goals == [(1, 10), (2, 2100)]
    assert emulator.present_position(2) == -20  # the owner, not the emulator, moves servos

    bus.disconnect()  # disables torque on every motor first
    assert not emulator.torque_enabled(2)


def test_lerobot_connect_finds_missing_and_wrong_motors(emulator):
    wrong_model = lerobot_bus(emulator.port, {1: "xm430-w350", 2: "xm430-w350"})
    with pytest.raises(RuntimeError, match="incorrect model numbers"):
        wrong_model.connect()
    wrong_model.port_handler.closePort()

    emulator.update_config(dead_servos={3})
    missing = lerobot_bus(emulator.port, {1: "xm430-w350", 3: "xl430-w250"})
    with pytest.raises(RuntimeError, match="Missing motor IDs"):
        missing.connect()
    missing.port_handler.closePort()


# Faults


def test_dropped_answers_are_recovered_by_retrying():
    config = EmulatorConfig(drop_probability=0.05, seed=0)
    with DynamixelEmulator({1: 1020, 2: 1120}, config) as emulator:
        port = dxl.PortHandler(emulator.port)
        assert port.openPort()
        reader = dxl.GroupSyncRead(port, dxl.PacketHandler(2.0), PRESENT, 4)
        reader.addParam(1)
        reader.addParam(2)
        failures = 0
        for _ in range(200):
            for _ in range(3):
                if reader.txRxPacket() == dxl.COMM_SUCCESS:
                    break
                failures += 1
            else:
                pytest.fail("a sync read failed three times in a row")
            assert reader.getData(2, PRESENT, 4) == 2048
        port.closePort()
        stats = emulator.stats
    assert failures > 0
    assert stats.dropped >= failures
    assert stats.answered + stats.dropped == 2 * (200 + failures)


def test_a_dead_servo_fails_sync_read_and_ping_fast(emulator, sdk):
    port, packets = sdk
    emulator.update_config(dead_servos={2})
    reader = dxl.GroupSyncRead(port, packets, PRESENT, 4)
    for servo_id in SERVOS:
        reader.addParam(servo_id)
    started = time.monotonic()
    assert reader.txRxPacket() == dxl.COMM_RX_TIMEOUT
    assert not reader.isAvailable(2, PRESENT, 4)
    assert packets.ping(port, 2)[1] == dxl.COMM_RX_TIMEOUT
    assert time.monotonic() - started < 2.0  # two waits of about 34 + 100 ms, and slack
    # The live servo still answers (a busy machine may starve one wait: a bounded retry).
    assert any(packets.ping(port, 1)[1] == dxl.COMM_SUCCESS for _ in range(3))


def test_corrupted_and_late_answers_are_rejected(emulator, sdk):
    port, packets = sdk
    emulator.update_config(corrupt_probability=1.0)
    assert packets.read4ByteTxRx(port, 1, PRESENT)[1] == dxl.COMM_RX_CORRUPT
    assert emulator.stats.corrupted == 1

    emulator.update_config(corrupt_probability=0.0, latency_s=0.3)  # past the 134 ms wait
    assert packets.ping(port, 1)[1] == dxl.COMM_RX_TIMEOUT
    emulator.update_config(latency_s=0.0)
    time.sleep(0.3)  # the late answer lands in the input buffer; the sdk skips it by ID
    assert packets.ping(port, 3) == (1060, dxl.COMM_SUCCESS, 0)


def test_config_is_validated():
    with pytest.raises(ValueError, match=r"drop_probability must be in \[0, 1\], got 1.5"):
        EmulatorConfig(drop_probability=1.5)
    with pytest.raises(ValueError, match="latency_s must be >= 0 s"):
        EmulatorConfig(latency_s=-0.1)
    assert EmulatorConfig(dead_servos={1, 2}).dead_servos == frozenset({1, 2})


def test_stop_ends_the_thread_and_closes_the_pty():
    threads, fds = threading.active_count(), len(os.listdir("/proc/self/fd"))
    emulator = DynamixelEmulator(SERVOS).start()
    port = emulator.port
    assert threading.active_count() == threads + 1 and os.path.exists(port)
    emulator.stop()
    emulator.stop()
    assert threading.active_count() == threads
    assert len(os.listdir("/proc/self/fd")) == fds
    assert not os.path.exists(port)
    with pytest.raises(RuntimeError, match="once"):
        emulator.start()
