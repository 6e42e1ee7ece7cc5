"""What is wrong with a raster layer's files, said per file: the sync and `config check` use it.

A file must open as a raster, carry a CRS or have one declared (`srid`), carry a nodata value
or have one declared (`nodata`), and have bands of a type a COG keeps. The files of a mosaic
must agree on bands, types, CRS and nodata: a tile of another product caught by a glob fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import rasterio
from pyproj import CRS
from rasterio.errors import RasterioError

from urbis_core.config import RasterLayerConfig
from urbis_sync.normalize import same_crs

# Types a GeoTIFF stores and statistics and tiles read as numbers (no complex values).
BAND_TYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64")


@dataclass(frozen=True)
class RasterFacts:
    """What the files agree on, declarations applied: the COG is written from this."""

    crs: CRS
    nodata: float
    dtypes: tuple[str, ...]
    crs_declared: bool  # the files carry no CRS: `srid` gives it
    nodata_declared: bool  # the files carry no nodata: `nodata` gives it


class RasterInvalid(Exception):
    """The files cannot make a COG; `problems` says why, one line per file and thing."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def check_files(layer: RasterLayerConfig, files: list[Path], labels: list[str]) -> RasterFacts:
    """The files' common facts, or RasterInvalid naming each file and what is wrong with it."""
    problems: list[str] = []
    seen: list[tuple[str, CRS | None, float | None, tuple[str, ...]]] = []
    for path, label in zip(files, labels, strict=True):
        try:
            with rasterio.open(path) as ds:
                crs = CRS.from_wkt(ds.crs.to_wkt()) if ds.crs else None
                nodata, dtypes = ds.nodata, tuple(ds.dtypes)
        except (RasterioError, OSError) as exc:
            problems.append(f"{label}: not a raster GDAL can read ({_first_line(exc)})")
            continue
        problems += _file_problems(layer, label, crs, nodata, dtypes)
        seen.append((label, crs, nodata, dtypes))
    if problems:
        raise RasterInvalid(problems)
    first_label, crs, nodata, dtypes = seen[0]
    for label, other_crs, other_nodata, other_dtypes in seen[1:]:
        if other_dtypes != dtypes:
            problems.append(
                f"{label}: bands {', '.join(other_dtypes)} differ from {first_label}'s "
                f"({', '.join(dtypes)}): a mosaic needs the same bands"
            )
        if (other_crs is None) != (crs is None) or (
            crs is not None and other_crs is not None and not same_crs(crs, other_crs)
        ):
            problems.append(f"{label}: its CRS differs from {first_label}'s")
        if not _same_nodata(other_nodata, nodata):
            problems.append(f"{label}: nodata {other_nodata} differs from {first_label}'s {nodata}")
    if problems:
        raise RasterInvalid(problems)
    resolved_crs = crs if crs is not None else CRS.from_epsg(layer.srid or 0)
    resolved_nodata = nodata if nodata is not None else layer.nodata
    assert resolved_nodata is not None  # _file_problems said so otherwise
    return RasterFacts(resolved_crs, resolved_nodata, dtypes, crs is None, nodata is None)


def _file_problems(
    layer: RasterLayerConfig,
    label: str,
    crs: CRS | None,
    nodata: float | None,
    dtypes: tuple[str, ...],
) -> list[str]:
    problems: list[str] = []
    if crs is None and layer.srid is None:
        problems.append(f"{label}: the file carries no CRS; declare it with 'srid' (e.g. 31370)")
    if crs is not None and layer.srid is not None and not same_crs(crs, CRS.from_epsg(layer.srid)):
        problems.append(
            f"{label}: srid: {layer.srid} is declared but the file says {crs.name}; "
            "'srid' is for files that carry no CRS"
        )
    if nodata is None and layer.nodata is None:
        problems.append(
            f"{label}: the file declares no nodata value; declare it with 'nodata' "
            "(the value of pixels with no data)"
        )
    if nodata is not None and layer.nodata is not None and not _same_nodata(nodata, layer.nodata):
        problems.append(
            f"{label}: nodata: {layer.nodata} is declared but the file says {nodata}; "
            "'nodata' is for files that declare none"
        )
    odd = sorted({t for t in dtypes if t not in BAND_TYPES})
    if odd:
        problems.append(
            f"{label}: band type {', '.join(odd)} not supported ({', '.join(BAND_TYPES)})"
        )
    return problems


def _same_nodata(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (a != a and b != b)  # NaN equals NaN here


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
