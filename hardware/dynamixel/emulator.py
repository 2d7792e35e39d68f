"""Emulated X-series servos on a pseudo-terminal, speaking Dynamixel Protocol 2.0.

The driver stack (lerobot's ``DynamixelMotorsBus`` → ``dynamixel_sdk`` → pyserial) opens
:attr:`DynamixelEmulator.port`, the slave end of a pty, exactly as it would open a USB adapter.
A daemon thread reads instruction packets from the master end and writes status packets back:

- PING: status ``[model number (2 bytes), firmware version (1 byte)]``; a broadcast PING is
  answered by every servo, in ID order.
- READ ``[address (2), size (2)]``: status with the ``size`` bytes at ``address``.
- WRITE ``[address (2), data…]``: stores ``data`` and answers an empty status; read-only or
  undefined bytes, and EEPROM while torque is on, give an ACCESS error and change nothing.
  Broadcast, it is applied to every servo and not answered.
- SYNC_READ (broadcast) ``[address (2), size (2), id…]``: each listed servo answers in turn with
  its own status packet, as READ.
- SYNC_WRITE (broadcast) ``[address (2), size (2), (id, data[size])…]``: applied, not answered.

A packet with a bad CRC, or unicast to an unknown or dead ID, gets no answer; an unknown
instruction to a live servo gets an INSTRUCTION error. Writing the ID register renames the servo
(it answers that write from its old ID). The status packets that answer one instruction are
written to the pty back to back, in one write. Servos answer at once: Return_Delay_Time and
Status_Return_Level are stored but not acted on (the factory level, 2, answers everything), and
the pty's line speed is ignored, so any baud rate reaches the servos.

Motion is left to an owner (a simulation, or a test): :meth:`DynamixelEmulator.on_goal` learns
each Goal_Position written and :meth:`DynamixelEmulator.set_present_position` sets what
Present_Position reads. Without an owner, writing Goal_Position with torque enabled moves
Present_Position there at once; with torque disabled it does not move.

:meth:`DynamixelEmulator.on_instruction` lets an owner follow the traffic itself (e.g. to advance a
simulation in lockstep with the driver's sync writes): it learns each instruction packet once it has
been fully handled, its status packets written, and before the next packet is handled.
"""

import logging
import os
import random
import select
import threading
import tty
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Self

from .control_table import (
    BY_NAME,
    check_read,
    check_write,
    factory_memory,
    read_value,
    write_value,
)
from .protocol import (
    BROADCAST_ID,
    MAX_ID,
    Instruction,
    Packet,
    PacketParser,
    StatusError,
    encode_status,
)

logger = logging.getLogger(__name__)

GoalCallback = Callable[[int, int], None]
"""Called as ``callback(servo_id, goal_ticks)`` on the emulator thread after each write that
touches Goal_Position, before the next instruction packet is handled; an exception it raises is
logged and the emulator goes on serving."""

InstructionCallback = Callable[[Instruction | int, tuple[int, ...], int | None], None]
"""Called as ``callback(instruction, ids, address)`` on the emulator thread for every instruction
packet with a valid CRC (also one that no servo acts on: dead or unknown ID), after it has been
fully handled (its Goal_Position writes reported to ``on_goal``, its status packets written) and
before the next packet is handled; the emulator serves nothing else while the callback runs.
``instruction`` is the :class:`Instruction` (the plain byte if unknown); ``ids`` are the servo IDs
the packet addresses: those listed in a SYNC_READ or SYNC_WRITE, else the packet's ID
(``BROADCAST_ID`` for a broadcast); ``address`` is the control-table address of a READ, WRITE,
SYNC_READ or SYNC_WRITE, None for other instructions. An exception it raises is logged and the
emulator goes on serving."""

_GOAL = BY_NAME["Goal_Position"]
_PRESENT = BY_NAME["Present_Position"]
_TORQUE = BY_NAME["Torque_Enable"]
_ID = BY_NAME["ID"]
_MODEL = BY_NAME["Model_Number"]
_FIRMWARE = BY_NAME["Firmware_Version"]
_READ_SIZE = 65536  # bytes taken from the pty per read


@dataclass(frozen=True)
class EmulatorConfig:
    """Fault injection, applied to each status packet independently.

    Attributes:
        drop_probability: probability in [0, 1] that a status packet is not sent.
        corrupt_probability: probability in [0, 1] that a status packet that is sent has a wrong
            CRC (its last byte inverted).
        latency_s: seconds (≥ 0) to wait after an instruction packet before answering it.
        dead_servos: IDs that neither answer nor apply anything, as if unplugged.
        seed: seed of the random faults; ``None`` seeds from the OS.
    """

    drop_probability: float = 0.0
    corrupt_probability: float = 0.0
    latency_s: float = 0.0
    dead_servos: AbstractSet[int] = frozenset()
    seed: int | None = 0

    def __post_init__(self) -> None:
        for name in ("drop_probability", "corrupt_probability"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"EmulatorConfig.{name} must be in [0, 1], got {value}")
        if not self.latency_s >= 0.0:
            raise ValueError(f"EmulatorConfig.latency_s must be >= 0 s, got {self.latency_s}")
        object.__setattr__(self, "dead_servos", frozenset(self.dead_servos))


@dataclass(frozen=True)
class EmulatorStats:
    """Packet counts of a :class:`DynamixelEmulator` over its life.

    Attributes:
        received: instruction packets with a valid CRC.
        bad_crc: instruction packets dropped, unanswered, because their CRC did not match.
        answered: status packets written to the pty, corrupted ones included.
        dropped: status packets not sent (``drop_probability``).
        corrupted: status packets sent with a wrong CRC.
    """

    received: int = 0
    bad_crc: int = 0
    answered: int = 0
    dropped: int = 0
    corrupted: int = 0


@dataclass
class _Outcome:
    """What handling one instruction packet produced: status packets ``(id, error, data)`` to
    send, and Goal_Position writes ``(id, ticks)`` to report."""

    statuses: list[tuple[int, int, bytes]] = field(default_factory=list)
    goals: list[tuple[int, int]] = field(default_factory=list)


class DynamixelEmulator:
    """X-series servos behind a pty; see the module docstring for what they answer.

    Args:
        servos: model number (e.g. 1020 for an XM430-W350) by servo ID (0…252).
        config: fault injection; change it at run time with :meth:`update_config`.

    Use ``with DynamixelEmulator({1: 1020}) as emulator:`` or :meth:`start` / :meth:`stop`, and
    give :attr:`port` to the driver. Every method is thread-safe. An emulator starts once.
    """

    def __init__(self, servos: Mapping[int, int], config: EmulatorConfig = EmulatorConfig()):
        for servo_id, model_number in servos.items():
            if not 0 <= servo_id <= MAX_ID:
                raise ValueError(f"servo IDs must be in [0, {MAX_ID}], got {servo_id}")
            if not 0 <= model_number <= 0xFFFF:
                raise ValueError(f"model numbers must be in [0, 65535], got {model_number}")
        self._lock = threading.Lock()
        self._memory = {i: factory_memory(i, model) for i, model in sorted(servos.items())}
        self._config = config
        self._rng = random.Random(config.seed)
        self._owner: GoalCallback | None = None
        self._watcher: InstructionCallback | None = None
        self._stats = EmulatorStats()
        self._parser = PacketParser()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._fds: tuple[int, int, int, int] | None = None  # master, slave, wake read, wake write
        self._port: str | None = None

    # Lifecycle

    @property
    def port(self) -> str:
        """The path of the pty's slave end (e.g. ``/dev/pts/7``), to open as a serial port."""
        if self._port is None:
            raise RuntimeError("DynamixelEmulator.port is only known after start()")
        return self._port

    def start(self) -> Self:
        """Opens the pty and starts serving it. Returns the emulator."""
        if self._thread is not None or self._stopping.is_set():
            raise RuntimeError("DynamixelEmulator.start() may be called once")
        master, slave = os.openpty()
        # Raw mode: no echo of the status packets back to us, no CR/LF or other byte rewriting.
        # pyserial sets raw mode again when it opens the port; the driver's baud rate is accepted
        # by the pty's termios and has no effect on it.
        tty.setraw(slave)
        os.set_blocking(master, False)
        wake_read, wake_write = os.pipe()
        # We keep the slave end open: while no driver has it open, reading the master would
        # otherwise fail with EIO, and the terminal settings would be lost.
        self._fds = (master, slave, wake_read, wake_write)
        self._port = os.ttyname(slave)
        self._thread = threading.Thread(
            target=self._serve, args=(master, wake_read), name="dynamixel-emulator", daemon=True
        )
        self._thread.start()
        logger.debug("Dynamixel emulator serving %s for IDs %s", self._port, list(self._memory))
        return self

    def stop(self) -> None:
        """Stops the thread and closes the pty; harmless if not running."""
        if self._thread is None or self._fds is None:
            return
        self._stopping.set()
        os.write(self._fds[3], b"\0")
        self._thread.join()
        for fd in self._fds:
            os.close(fd)
        self._thread = None
        self._fds = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # Configuration and counts

    @property
    def config(self) -> EmulatorConfig:
        """The fault injection in force."""
        with self._lock:
            return self._config

    def update_config(self, **changes: object) -> EmulatorConfig:
        """Replaces fields of the config (e.g. ``update_config(dead_servos={2})``) and returns
        the new one; a new ``seed`` restarts the random faults from it."""
        with self._lock:
            self._config = replace(self._config, **changes)
            if "seed" in changes:
                self._rng.seed(self._config.seed)
            return self._config

    @property
    def stats(self) -> EmulatorStats:
        """A snapshot of the packet counts."""
        with self._lock:
            return self._stats

    # Owner interface

    def on_goal(self, callback: GoalCallback | None) -> None:
        """Makes ``callback`` the owner of the servos' motion: it learns each Goal_Position written
        (servo ID, ticks), and Present_Position then moves only by :meth:`set_present_position`.
        ``None`` restores the default (Present_Position follows Goal_Position under torque)."""
        with self._lock:
            self._owner = callback

    def on_instruction(self, callback: InstructionCallback | None) -> None:
        """Calls ``callback`` after each instruction packet is handled (see
        :data:`InstructionCallback`); ``None`` removes it. It does not change what the servos
        do."""
        with self._lock:
            self._watcher = callback

    def set_present_position(self, servo_id: int, ticks: int) -> None:
        """Sets what Present_Position (signed 32-bit, ticks) of ``servo_id`` reads."""
        with self._lock:
            write_value(self._servo(servo_id), _PRESENT, ticks)

    def present_position(self, servo_id: int) -> int:
        """Present_Position of ``servo_id``, in ticks."""
        with self._lock:
            return read_value(self._servo(servo_id), _PRESENT)

    def goal_position(self, servo_id: int) -> int:
        """Goal_Position of ``servo_id``, in ticks."""
        with self._lock:
            return read_value(self._servo(servo_id), _GOAL)

    def torque_enabled(self, servo_id: int) -> bool:
        """Whether Torque_Enable of ``servo_id`` is set."""
        with self._lock:
            return read_value(self._servo(servo_id), _TORQUE) != 0

    def register(self, servo_id: int, address: int, size: int) -> int:
        """The unsigned little-endian integer in ``size`` bytes at ``address`` of ``servo_id``."""
        with self._lock:
            memory = self._servo(servo_id)
            if check_read(address, size) != StatusError.NONE:
                raise ValueError(f"{size} bytes at address {address} are outside the table")
            return int.from_bytes(memory[address : address + size], "little")

    def _servo(self, servo_id: int) -> bytearray:
        """The memory of ``servo_id``; the caller holds the lock."""
        try:
            return self._memory[servo_id]
        except KeyError:
            ids = list(self._memory)
            raise KeyError(f"no emulated servo has ID {servo_id}; IDs: {ids}") from None

    # Serving thread

    def _serve(self, master: int, wake_read: int) -> None:
        """Reads the pty's ``master`` end until :meth:`stop` writes to ``wake_read``, handling each
        packet in arrival order."""
        while not self._stopping.is_set():
            readable, _, _ = select.select([master, wake_read], [], [])
            if wake_read in readable:
                return
            try:
                data = os.read(master, _READ_SIZE)
            except BlockingIOError:
                continue
            except OSError as error:
                logger.error("Dynamixel emulator stops serving %s: %s", self._port, error)
                return
            packets = self._parser.feed(data)
            with self._lock:
                self._stats = replace(self._stats, bad_crc=self._parser.bad_crc)
            for packet in packets:
                self._handle(master, packet)

    def _handle(self, master: int, packet: Packet) -> None:
        """Applies one instruction packet, reports goals to the owner, answers, then reports the
        packet to the ``on_instruction`` callback."""
        with self._lock:
            self._stats = replace(self._stats, received=self._stats.received + 1)
            outcome = self._apply(packet)
            owner, watcher = self._owner, self._watcher
            latency_s = self._config.latency_s
        if owner is not None:
            for servo_id, ticks in outcome.goals:
                try:
                    owner(servo_id, ticks)
                except Exception:
                    logger.exception("on_goal callback failed for servo %d", servo_id)
        if outcome.statuses:
            if latency_s > 0.0 and self._stopping.wait(latency_s):
                return
            _write_all(master, self._with_faults(outcome.statuses))
        if watcher is not None:
            try:
                watcher(*_addressing(packet))
            except Exception:
                logger.exception("on_instruction callback failed for %s", packet)

    def _with_faults(self, statuses: list[tuple[int, int, bytes]]) -> bytes:
        """The wire bytes of the status packets ``(id, error, data)``, back to back, each dropped
        or corrupted (its last CRC byte inverted) at random as the config says."""
        wire = bytearray()
        with self._lock:
            config, stats = self._config, self._stats
            for servo_id, error, data in statuses:
                drop = self._rng.random() < config.drop_probability
                corrupt = self._rng.random() < config.corrupt_probability
                if drop:
                    stats = replace(stats, dropped=stats.dropped + 1)
                    continue
                status = encode_status(servo_id, error, data)
                if corrupt:
                    status = status[:-1] + bytes([status[-1] ^ 0xFF])
                    stats = replace(stats, corrupted=stats.corrupted + 1)
                wire += status
                stats = replace(stats, answered=stats.answered + 1)
            self._stats = stats
        return bytes(wire)

    # Instructions (the caller holds the lock)

    def _apply(self, packet: Packet) -> _Outcome:
        """Dispatches ``packet`` to its instruction."""
        outcome = _Outcome()
        broadcast = packet.servo_id == BROADCAST_ID
        if not broadcast and not self._alive(packet.servo_id):
            return outcome
        match packet.instruction:
            case Instruction.PING:
                self._ping(packet, outcome)
            case Instruction.READ if not broadcast:
                self._read(packet, outcome)
            case Instruction.WRITE:
                self._write(packet, outcome)
            case Instruction.SYNC_READ if broadcast:
                self._sync_read(packet, outcome)
            case Instruction.SYNC_WRITE if broadcast:
                self._sync_write(packet, outcome)
            case Instruction.STATUS:
                pass
            case _ if not broadcast:
                outcome.statuses.append((packet.servo_id, StatusError.INSTRUCTION, b""))
        return outcome

    def _alive(self, servo_id: int) -> bool:
        return servo_id in self._memory and servo_id not in self._config.dead_servos

    def _ping(self, packet: Packet, outcome: _Outcome) -> None:
        """PING: ``[model number (2), firmware (1)]`` from the addressed servo, or from all."""
        if packet.servo_id == BROADCAST_ID:
            ids = [i for i in self._memory if self._alive(i)]
        else:
            ids = [packet.servo_id]
        for servo_id in sorted(ids):
            memory = self._memory[servo_id]
            data = memory[_MODEL.address : _MODEL.address + _MODEL.size] + bytes(
                [memory[_FIRMWARE.address]]
            )
            outcome.statuses.append((servo_id, StatusError.NONE, bytes(data)))

    def _read(self, packet: Packet, outcome: _Outcome) -> None:
        """READ ``[address (2), size (2)]``."""
        if len(packet.params) != 4:
            outcome.statuses.append((packet.servo_id, StatusError.DATA_LENGTH, b""))
            return
        address, size = _u16(packet.params, 0), _u16(packet.params, 2)
        error, data = self._read_bytes(packet.servo_id, address, size)
        outcome.statuses.append((packet.servo_id, error, data))

    def _read_bytes(self, servo_id: int, address: int, size: int) -> tuple[int, bytes]:
        """The error and data of a read of ``size`` bytes at ``address``."""
        error = check_read(address, size)
        if error != StatusError.NONE:
            return error, b""
        return StatusError.NONE, bytes(self._memory[servo_id][address : address + size])

    def _write(self, packet: Packet, outcome: _Outcome) -> None:
        """WRITE ``[address (2), data (≥ 1)]``; answered only when unicast."""
        if packet.servo_id == BROADCAST_ID:
            if len(packet.params) >= 3:
                for servo_id in [i for i in self._memory if self._alive(i)]:
                    self._write_bytes(servo_id, _u16(packet.params, 0), packet.params[2:], outcome)
            return
        if len(packet.params) < 3:
            error = StatusError.DATA_LENGTH
        else:
            error = self._write_bytes(
                packet.servo_id, _u16(packet.params, 0), packet.params[2:], outcome
            )
        outcome.statuses.append((packet.servo_id, error, b""))

    def _sync_read(self, packet: Packet, outcome: _Outcome) -> None:
        """SYNC_READ ``[address (2), size (2), id…]``: one status per live listed servo."""
        if len(packet.params) < 5:
            return
        address, size = _u16(packet.params, 0), _u16(packet.params, 2)
        for servo_id in packet.params[4:]:
            if self._alive(servo_id):
                outcome.statuses.append((servo_id, *self._read_bytes(servo_id, address, size)))

    def _sync_write(self, packet: Packet, outcome: _Outcome) -> None:
        """SYNC_WRITE ``[address (2), size (2), (id, data[size])…]``, not answered."""
        if len(packet.params) < 4:
            return
        address, size = _u16(packet.params, 0), _u16(packet.params, 2)
        blocks = packet.params[4:]
        if size == 0 or len(blocks) % (size + 1) != 0:
            logger.debug("malformed SYNC_WRITE ignored: %s", packet.params.hex(" "))
            return
        for start in range(0, len(blocks), size + 1):
            servo_id = blocks[start]
            if self._alive(servo_id):
                data = blocks[start + 1 : start + 1 + size]
                self._write_bytes(servo_id, address, data, outcome)

    def _write_bytes(self, servo_id: int, address: int, data: bytes, outcome: _Outcome) -> int:
        """Stores ``data`` at ``address`` of ``servo_id`` unless refused; returns the error.

        A write that touches Goal_Position is reported in ``outcome.goals``; without an owner,
        Present_Position follows it if torque is on. A new ID renames the servo (the status
        still comes from the old ID, as on a real servo); an ID above 252 or already on the bus
        is refused with DATA_RANGE."""
        memory = self._memory[servo_id]
        error = check_write(address, len(data), read_value(memory, _TORQUE) != 0)
        if error != StatusError.NONE:
            return error
        span = range(address, address + len(data))
        new_id = data[_ID.address - address] if _ID.address in span else servo_id
        if new_id != servo_id and (new_id > MAX_ID or new_id in self._memory):
            return StatusError.DATA_RANGE
        memory[address : address + len(data)] = data
        if new_id != servo_id:
            self._memory[new_id] = self._memory.pop(servo_id)
            servo_id = new_id
        if _overlaps(span, _GOAL.address, _GOAL.size):
            goal = read_value(memory, _GOAL)
            outcome.goals.append((servo_id, goal))
            if self._owner is None and read_value(memory, _TORQUE) != 0:
                write_value(memory, _PRESENT, goal)
        return StatusError.NONE


def _addressing(packet: Packet) -> tuple[Instruction | int, tuple[int, ...], int | None]:
    """The ``(instruction, ids, address)`` that :data:`InstructionCallback` reports for
    ``packet``."""
    params = packet.params
    try:
        instruction: Instruction | int = Instruction(packet.instruction)
    except ValueError:
        instruction = packet.instruction
    if instruction == Instruction.SYNC_READ:
        ids = tuple(params[4:])
    elif instruction == Instruction.SYNC_WRITE and len(params) >= 4:
        ids = tuple(params[4 :: _u16(params, 2) + 1])
    else:
        ids = (packet.servo_id,)
    addressed = (Instruction.READ, Instruction.WRITE, Instruction.SYNC_READ, Instruction.SYNC_WRITE)
    address = _u16(params, 0) if instruction in addressed and len(params) >= 2 else None
    return instruction, ids, address


def _u16(params: bytes, offset: int) -> int:
    """The little-endian 16-bit integer at ``offset`` of ``params``."""
    return int.from_bytes(params[offset : offset + 2], "little")


def _overlaps(span: range, address: int, size: int) -> bool:
    """Whether ``span`` shares a byte with ``size`` bytes at ``address``."""
    return span.start < address + size and address < span.stop


def _write_all(master: int, wire: bytes) -> None:
    """Writes ``wire`` to the pty's ``master`` end in one call (the driver sees the status
    packets back to back); if the driver has left the pty's buffer full, the rest is lost."""
    if not wire:
        return
    try:
        written = os.write(master, wire)
    except BlockingIOError:
        written = 0
    if written < len(wire):
        logger.warning("pty full: %d of %d status bytes lost", len(wire) - written, len(wire))
