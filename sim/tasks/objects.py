"""MJCF fragments for the objects tasks put on the table. Units: metres, kilograms.

Free objects (cubes, blocks, the peg, the socket) have a free joint and collide with the table,
each other and both arms. Fixtures (bins) are mocap bodies: static, but movable between episodes
with ``AlohaSim.set_mocap_position``.

Example:
    >>> xml = box_object("cube", half_size_m=0.02, rgba=(1, 0, 0, 1))
    >>> xml.startswith('<body name="cube"')
    True
"""

from collections.abc import Sequence

PARKED_Z_M = -0.72
"""Height of the floor spot where objects unused in an episode wait, out of every camera's view."""


def _rgba(rgba: Sequence[float]) -> str:
    return " ".join(f"{c:g}" for c in rgba)


def box_object(name: str, half_size_m: float, rgba: Sequence[float], mass_kg: float = 0.05) -> str:
    """A free cube of edge ``2 * half_size_m`` named ``name`` (its geom is ``name``/geom)."""
    return (
        f'<body name="{name}" pos="0 0 {half_size_m}">'
        f'<freejoint name="{name}/joint"/>'
        f'<geom name="{name}/geom" class="object" type="box" size="{half_size_m} {half_size_m} '
        f'{half_size_m}" mass="{mass_kg}" rgba="{_rgba(rgba)}"/>'
        "</body>"
    )


def peg_object(name: str, rgba: Sequence[float]) -> str:
    """A free peg: a bar 0.12 m long along its x axis with a 0.02 m square section."""
    return (
        f'<body name="{name}" pos="0 0 0.01">'
        f'<freejoint name="{name}/joint"/>'
        f'<geom name="{name}/geom" class="object" type="box" size="0.06 0.01 0.01" mass="0.05" '
        f'rgba="{_rgba(rgba)}"/>'
        "</body>"
    )


SOCKET_INNER_HALF_M = 0.014
"""Half the inner width of the socket's square tube (peg half width is 0.01 m)."""


def socket_object(name: str, rgba: Sequence[float]) -> str:
    """A free socket: a square tube 0.1 m long along its x axis, open at both ends, inner width
    0.028 m, walls 0.008 m thick, with a pin across its middle (geom ``name``/pin) that a fully
    inserted peg touches."""
    inner = SOCKET_INNER_HALF_M
    wall = 0.004  # half thickness
    offset = inner + wall
    half_len = 0.05
    walls = [
        ("bottom", f"0 0 {-offset}", f"{half_len} {offset + wall} {wall}"),
        ("top", f"0 0 {offset}", f"{half_len} {offset + wall} {wall}"),
        ("front", f"0 {-offset} 0", f"{half_len} {wall} {inner}"),
        ("back", f"0 {offset} 0", f"{half_len} {wall} {inner}"),
    ]
    geoms = "".join(
        f'<geom name="{name}/{side}" class="object" type="box" pos="{pos}" size="{size}" '
        f'mass="0.02" rgba="{_rgba(rgba)}"/>'
        for side, pos, size in walls
    )
    pin = (
        f'<geom name="{name}/pin" class="object" type="box" pos="0 0 0" size="0.004 {inner} '
        f'{inner}" mass="0.005" rgba="1 0.85 0.2 1"/>'
    )
    return (
        f'<body name="{name}" pos="0 0 {offset + wall}">'
        f'<freejoint name="{name}/joint"/>{geoms}{pin}</body>'
    )


BIN_INNER_HALF_M = 0.05
"""Half the inner width of a bin (square), in metres."""
BIN_WALL_HEIGHT_M = 0.035


def bin_fixture(name: str, rgba: Sequence[float]) -> str:
    """A static open bin (mocap body): square floor with inner half width ``BIN_INNER_HALF_M``
    and walls ``BIN_WALL_HEIGHT_M`` high; its frame sits on the table at the floor's centre."""
    inner = BIN_INNER_HALF_M
    wall = 0.004
    h = BIN_WALL_HEIGHT_M / 2
    parts = [
        (f"0 0 {wall}", f"{inner + 2 * wall} {inner + 2 * wall} {wall}"),
        (f"{inner + wall} 0 {h}", f"{wall} {inner + 2 * wall} {h}"),
        (f"{-inner - wall} 0 {h}", f"{wall} {inner + 2 * wall} {h}"),
        (f"0 {inner + wall} {h}", f"{inner} {wall} {h}"),
        (f"0 {-inner - wall} {h}", f"{inner} {wall} {h}"),
    ]
    geoms = "".join(
        f'<geom class="object" type="box" pos="{pos}" size="{size}" rgba="{_rgba(rgba)}"/>'
        for pos, size in parts
    )
    return f'<body name="{name}" mocap="true" pos="0 0 0">{geoms}</body>'
