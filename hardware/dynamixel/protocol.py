"""Dynamixel Protocol 2.0 packets: CRC-16, byte stuffing, encoding and an incremental parser.

Every packet, instruction or status, has the layout (multi-byte fields little-endian)::

    FF FF FD 00 | ID | LEN_L LEN_H | INST | PARAM_0 … PARAM_N-1 | CRC_L CRC_H
    header        id   length        payload (byte-stuffed)       CRC-16

- ``LEN`` counts the bytes after itself: the stuffed payload (instruction and parameters) plus the
  two CRC bytes, so a packet is ``7 + LEN`` bytes long.
- The CRC-16 (polynomial 0x8005, initial value 0, no reflection, no final XOR) covers every byte
  from the header up to the last stuffed parameter byte.
- Byte stuffing keeps the header pattern out of the payload: every ``FF FF FD`` in the payload is
  sent as ``FF FF FD FD``; the receiver drops that extra ``FD``.
- A status packet (instruction 0x55) carries the servo's error byte as its first parameter; in
  :class:`Packet` it stays the first byte of ``params``.
"""

from dataclasses import dataclass
from enum import IntEnum

HEADER = b"\xff\xff\xfd\x00"
"""The four bytes that open every packet: the ``FF FF FD`` marker and the reserved ``00``."""

BROADCAST_ID = 0xFE
"""Packets to this ID reach every servo; only PING, SYNC_READ and SYNC_WRITE are answered."""

MAX_ID = 0xFC
"""The highest ID a servo may have (0xFD is reserved, 0xFE is the broadcast ID)."""

MAX_LENGTH = 1024
"""The largest ``LEN`` field the parser accepts (as large as dynamixel_sdk's packet buffers)."""

ALERT_BIT = 0x80
"""Set in a status packet's error byte when the servo has a hardware error (see register 70)."""

_STUFF_MARKER = b"\xff\xff\xfd"
_STUFFED_MARKER = b"\xff\xff\xfd\xfd"
_PREFIX_LENGTH = 7  # header (4), ID (1), LEN (2)
_CRC_POLYNOMIAL = 0x8005


class Instruction(IntEnum):
    """The instruction byte of a packet."""

    PING = 0x01
    READ = 0x02
    WRITE = 0x03
    SYNC_READ = 0x82
    SYNC_WRITE = 0x83
    STATUS = 0x55


class StatusError(IntEnum):
    """The error number in the low 7 bits of a status packet's error byte."""

    NONE = 0x00
    RESULT_FAIL = 0x01  # the instruction could not be processed
    INSTRUCTION = 0x02  # undefined instruction, or an instruction out of place
    CRC = 0x03  # the instruction packet's CRC does not match
    DATA_RANGE = 0x04  # the data to write is out of the register's range
    DATA_LENGTH = 0x05  # the parameters are shorter or longer than the instruction needs
    DATA_LIMIT = 0x06  # the data to write exceeds a limit register
    ACCESS = 0x07  # read-only, undefined, or (torque on) EEPROM address


@dataclass(frozen=True)
class Packet:
    """One packet, un-stuffed: for a status packet ``params[0]`` is the error byte."""

    servo_id: int
    instruction: int
    params: bytes = b""


def _crc_table() -> tuple[int, ...]:
    """The 256 CRC-16 remainders of ``byte << 8`` for polynomial 0x8005 (MSB first)."""
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = (crc << 1) ^ _CRC_POLYNOMIAL if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """The Dynamixel CRC-16 of ``data``: polynomial x¹⁶ + x¹⁵ + x² + 1 (0x8005), initial value 0,
    most significant bit first, no final XOR (the e-manual's ``update_crc``)."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) ^ _CRC_TABLE[((crc >> 8) ^ byte) & 0xFF]) & 0xFFFF
    return crc


def stuff(payload: bytes) -> bytes:
    """``payload`` with an ``FD`` added after every ``FF FF FD``.

    Occurrences of ``FF FF FD`` cannot overlap, so a left-to-right replace is exact."""
    return payload.replace(_STUFF_MARKER, _STUFFED_MARKER)


def unstuff(payload: bytes) -> bytes:
    """The inverse of :func:`stuff`: every ``FF FF FD FD`` becomes ``FF FF FD`` again."""
    return payload.replace(_STUFFED_MARKER, _STUFF_MARKER)


def encode_packet(servo_id: int, instruction: int, params: bytes = b"") -> bytes:
    """The wire bytes of one packet: header, ID, ``LEN = len(stuffed payload) + 2``, the stuffed
    payload ``instruction + params``, and the CRC-16 of everything before it (little-endian)."""
    if not 0 <= servo_id <= 0xFF:
        raise ValueError(f"servo_id must be in [0, 255], got {servo_id}")
    if not 0 <= instruction <= 0xFF:
        raise ValueError(f"instruction must be in [0, 255], got {instruction}")
    payload = stuff(bytes([instruction]) + bytes(params))
    length = len(payload) + 2
    if length > MAX_LENGTH:
        raise ValueError(f"packet LEN must be at most {MAX_LENGTH}, got {length}")
    body = HEADER + bytes([servo_id]) + length.to_bytes(2, "little") + payload
    return body + crc16(body).to_bytes(2, "little")


def encode_status(servo_id: int, error: int, data: bytes = b"") -> bytes:
    """The wire bytes of a status packet: instruction 0x55, parameters ``error + data``."""
    return encode_packet(servo_id, Instruction.STATUS, bytes([error]) + bytes(data))


class PacketParser:
    """Finds packets in a byte stream fed in arbitrary chunks.

    Bytes before a header are skipped. A candidate whose ``LEN`` is impossible (below 3, the
    instruction and CRC, or above :data:`MAX_LENGTH`) or whose CRC does not match is dropped,
    and the search resumes one byte after its header; CRC failures are counted in
    :attr:`bad_crc`. A packet whose bytes have not all arrived waits for the next :meth:`feed`.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.bad_crc = 0
        """Candidate packets dropped because their CRC did not match."""

    def feed(self, data: bytes) -> list[Packet]:
        """Appends ``data`` to the stream and returns the packets it completes, in order."""
        self._buffer += data
        packets = []
        while (packet := self._next_packet()) is not None:
            packets.append(packet)
        return packets

    def _next_packet(self) -> Packet | None:
        """Takes the first valid complete packet off the buffer; ``None`` if there is none yet."""
        while True:
            start = self._buffer.find(HEADER)
            if start < 0:
                # Keep a tail that may be the start of a header split across chunks.
                del self._buffer[: max(0, len(self._buffer) - (len(HEADER) - 1))]
                return None
            del self._buffer[:start]
            if len(self._buffer) < _PREFIX_LENGTH:
                return None
            length = int.from_bytes(self._buffer[5:7], "little")
            if not 3 <= length <= MAX_LENGTH:
                del self._buffer[0]
                continue
            end = _PREFIX_LENGTH + length
            if len(self._buffer) < end:
                return None
            frame = bytes(self._buffer[:end])
            if crc16(frame[:-2]) != int.from_bytes(frame[-2:], "little"):
                self.bad_crc += 1
                del self._buffer[0]
                continue
            del self._buffer[:end]
            payload = unstuff(frame[_PREFIX_LENGTH:-2])
            return Packet(servo_id=frame[4], instruction=payload[0], params=payload[1:])
