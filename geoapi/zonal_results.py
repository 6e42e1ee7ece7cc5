"""A zonal job's result files: one CSV and one GeoPackage, each whole or not there at all.

Rows are appended as the statistics come, to files under temporary names in the job's folder;
`commit` fsyncs them and renames them to their final names, so the API (which serves only the
final names, and only once the job says it succeeded) never hands out half a file. A job that
fails or is dismissed leaves only temporary files, which its folder's removal takes.

Columns: the feature's key (named as the collection's key field), `count`, `nodata_count`,
`min`, `max`, `mean`, `std`, then `p<q>` per percentile asked (`p5`, `p50`, `p12.5`). A
statistic of no cells is empty in the CSV and null in the GeoPackage. The GeoPackage also holds
each feature's geometry, in EPSG:31370, in a layer named after the collection.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

STAT_COLUMNS = ("count", "nodata_count", "min", "max", "mean", "std")
CSV_NAME = "zonal.csv"
GPKG_NAME = "zonal.gpkg"
GPKG_GEOMETRY = "geom"
GPKG_SRID = 31370
_PART = "part-"  # the prefix of a file still being written


def percentile_column(value: float) -> str:
    """`p50` for 50.0, `p12.5` for 12.5."""
    return f"p{int(value)}" if value.is_integer() else f"p{value!r}"


def key_column(key_field: str, percentiles: Sequence[float]) -> str:
    """The key's column: the key field's name, unless a statistic's column has it."""
    taken = {*STAT_COLUMNS, *(percentile_column(p) for p in percentiles), GPKG_GEOMETRY}
    return "feature_key" if key_field.lower() in {t.lower() for t in taken} else key_field


def columns(key_field: str, percentiles: Sequence[float]) -> list[str]:
    return [
        key_column(key_field, percentiles),
        *STAT_COLUMNS,
        *(percentile_column(p) for p in percentiles),
    ]


def _csv_text(value: Any) -> Any:
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else value


class ResultWriter:
    """Appends (key, statistics, geometry WKB) rows to the job's CSV and GeoPackage."""

    def __init__(
        self,
        folder: Path,
        layer_name: str,
        key_field: str,
        key_is_integer: bool,
        geometry_type: str,
        percentiles: Sequence[float],
    ) -> None:
        self.folder = folder
        self.layer_name = layer_name
        self.percentiles = list(percentiles)
        self.names = columns(key_field, percentiles)
        self.key_is_integer = key_is_integer
        self.geometry_type = geometry_type
        self._csv_path = folder / f"{_PART}{CSV_NAME}"
        self._gpkg_path = folder / f"{_PART}{GPKG_NAME}"
        self._csv_file = self._csv_path.open("w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._csv_file)
        self._csv.writerow(self.names)
        self._gpkg_written = False

    def _values(self, key: Any, stats: dict[str, Any]) -> list[Any]:
        return [
            key,
            *(stats[c] for c in STAT_COLUMNS),
            *(stats["percentiles"][p] for p in self.percentiles),
        ]

    def append(self, rows: list[tuple[Any, dict[str, Any], bytes | None]]) -> None:
        self._csv.writerows([_csv_text(v) for v in self._values(k, s)] for k, s, _ in rows)
        self._append_gpkg(rows)

    def _append_gpkg(self, rows: list[tuple[Any, dict[str, Any], bytes | None]]) -> None:
        import pyarrow as pa
        import pyogrio

        values = [self._values(k, s) for k, s, _ in rows]
        key_type = pa.int64() if self.key_is_integer else pa.string()
        arrays: dict[str, Any] = {
            self.names[0]: pa.array(
                [v[0] if self.key_is_integer else str(v[0]) for v in values], type=key_type
            ),
            "count": pa.array([v[1] for v in values], type=pa.int64()),
            "nodata_count": pa.array([v[2] for v in values], type=pa.int64()),
        }
        for i, name in enumerate(self.names[3:], start=3):
            arrays[name] = pa.array([v[i] for v in values], type=pa.float64())
        arrays[GPKG_GEOMETRY] = pa.array([g for _, _, g in rows], type=pa.binary())
        pyogrio.write_arrow(
            pa.table(arrays),
            str(self._gpkg_path),
            layer=self.layer_name,
            driver="GPKG",
            geometry_name=GPKG_GEOMETRY,
            geometry_type=self.geometry_type,
            crs=f"EPSG:{GPKG_SRID}",
            append=self._gpkg_written,
            # GeoPackage's own row id must not take a key field's name
            layer_options=None if self._gpkg_written else {"FID": "gpkg_fid"},
        )
        self._gpkg_written = True

    def commit(self) -> None:
        """Both files complete on disk, then under their final names."""
        if not self._gpkg_written:  # no feature at all: still a GeoPackage with its layer
            self._append_gpkg([])
        self._csv_file.flush()
        os.fsync(self._csv_file.fileno())
        self._csv_file.close()
        with self._gpkg_path.open("rb") as written:
            os.fsync(written.fileno())
        os.replace(self._csv_path, self.folder / CSV_NAME)
        os.replace(self._gpkg_path, self.folder / GPKG_NAME)
        directory = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def close(self) -> None:
        if not self._csv_file.closed:
            self._csv_file.close()
