"""What `urbis tiles seed` is asked: the archive, the grid, the zooms, the collections, the area.

Each option checked and parsed here, before any database work; InvalidParameter names the bad
one as the command line spells it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tiles.archive import archive_format, check_format_fits
from tiles.plan import Box
from tiles.tms import MAX_ZOOM, TileMatrixSet, get_tms
from urbis_core.bbox import LON_LAT, parse_bbox
from urbis_core.errors import InvalidParameter, NotFound
from urbis_core.layer_ids import parse_layer_ids

DEFAULT_CONCURRENCY = 4  # connections rendering at once: 2 per core keeps PostgreSQL busy


@dataclass(frozen=True)
class SeedRequest:
    out: Path
    tms: TileMatrixSet
    zooms: range
    collections: tuple[str, ...] = ()  # empty: every synced layer
    bbox: Box | None = None  # CRS84 lon/lat; None: the layers' extent
    force: bool = False
    concurrency: int = DEFAULT_CONCURRENCY

    @property
    def format(self) -> str:
        return archive_format(self.out)

    @property
    def work_path(self) -> Path:
        return self.out.with_name(self.out.name + ".seeding")


def parse_zooms(text: str) -> range:
    """`10-16` or `14`: the zoom levels to seed, both ends included."""
    first, _, last = text.strip().partition("-")
    try:
        low, high = int(first), int(last or first)
    except ValueError:
        raise InvalidParameter(
            "--zooms", f"{text!r} is not a zoom (14) or a range (10-16)"
        ) from None
    if not 0 <= low <= high <= MAX_ZOOM:
        raise InvalidParameter(
            "--zooms",
            f"{text!r}: zooms run from 0 to {MAX_ZOOM}, the first no larger than the last",
        )
    return range(low, high + 1)


def zooms_text(zooms: range) -> str:
    last = zooms.stop - 1
    return f"zoom {last}" if zooms.start == last else f"zooms {zooms.start}-{last}"


def seed_request(
    out: Path,
    tms_id: str,
    zooms: str,
    collections: str | None = None,
    bbox: str | None = None,
    force: bool = False,
) -> SeedRequest:
    """The command line's options checked and parsed; InvalidParameter names the bad one."""
    try:
        tms = get_tms(tms_id)
    except NotFound as exc:
        raise InvalidParameter("--tms", str(exc)) from None
    check_format_fits(archive_format(out), tms)
    if not out.parent.is_dir():
        raise InvalidParameter("--out", f"there is no folder {out.parent}")
    return SeedRequest(
        out=out,
        tms=tms,
        zooms=parse_zooms(zooms),
        collections=parse_layer_ids(collections, "--collections"),
        bbox=parse_bbox(bbox, LON_LAT, "--bbox"),
        force=force,
    )
