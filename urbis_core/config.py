"""The layer configuration (YAML), validated with messages that name the file, layer and field.

Structural checks live here. Checks that need to open a source (does the file exist, is the
key one of its fields) live in `urbis_sync.check`, because only the sync knows how to read one.

About 400 lines: one file's schema (service, vector and raster layers, their sources and
styles), validated together because a layer's fields refer to its source's and the service's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from urbis_core.errors import ConfigError
from urbis_core.ramps import RAMPS

LAYER_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
SOURCE_KINDS = ("file", "wfs", "ogcapi", "feed")


_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """`15m`, `6h`, `1d`, `30s` -> timedelta; ValueError for anything else."""
    match = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"'{text}' is not a duration such as 15m, 6h or 1d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _schedule_format(value: str | None) -> str | None:
    if value is not None:
        parse_duration(value)
    return value


# how often `urbis sync` runs a layer (`30s`, `15m`, `6h`, `1d`), checked when read
Schedule = Annotated[str | None, AfterValidator(_schedule_format)]


class Title(_Strict):
    fr: str | None = None
    nl: str | None = None
    en: str | None = None


class Label(_Strict):
    """The field that names a feature, per language (`{fr: NAME_FRE, nl: NAME_DUT}`).

    English falls back to French, as Brussels' bilingual labels put French first.
    """

    fr: str | None = None
    nl: str | None = None
    en: str | None = None

    def fields(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v}


class FileSource(_Strict):
    """A GeoPackage, shapefile, GML or GeoJSON file, zipped or not, local or at a URL.

    `paths` reads several files as one layer (URBIS comes in tiles too): a list of files or
    glob patterns, expanded at each run. `drop_fields` are fields not stored, e.g. `id`, the
    GeoJSON feature id GDAL turns into a field (GeoServer's transient `Buildings.fid-...`).
    """

    kind: Literal["file"]
    path: Path | None = None
    paths: list[Path] | None = None
    url: str | None = None
    layer: str | None = None
    srid: int | None = None
    drop_fields: list[str] = []

    @field_validator("paths", mode="before")
    @classmethod
    def _one_pattern_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_location(self) -> FileSource:
        if sum(x is not None for x in (self.path, self.paths, self.url)) != 1:
            raise ValueError("a file source needs exactly one of 'path', 'paths' or 'url'")
        if self.paths is not None and not self.paths:
            raise ValueError("'paths' is empty: list the files or glob patterns to read")
        return self


class WfsSource(_Strict):
    """A WFS 2.0 feature type.

    `format` forces GeoJSON or GML 3.2; unset, the run takes the one the server offers for the
    type (GeoJSON when offered, else GML 3.2).
    """

    kind: Literal["wfs"]
    url: str
    typename: str
    format: Literal["geojson", "gml"] | None = None
    srid: int | None = None
    page_size: int | None = Field(default=None, gt=0)
    bbox: tuple[float, float, float, float] | None = None
    cql_filter: str | None = None


class OgcApiSource(_Strict):
    kind: Literal["ogcapi"]
    url: str
    collection: str
    srid: int | None = None


class FeedSource(_Strict):
    """The newest entry of an Atom feed (URBIS download feeds): a zip holding the layer."""

    kind: Literal["feed"]
    url: str
    layer: str | None = None  # the layer inside the downloaded GeoPackage (or dataset in the zip)
    srid: int | None = None


Source = Annotated[FileSource | WfsSource | OgcApiSource | FeedSource, Field(discriminator="kind")]


class TileSettings(_Strict):
    """How a layer is cut into vector tiles (OGC API Tiles, TileJSON, seeding).

    `properties` is either one list for every zoom, or lists keyed by the zoom from which they
    apply (`{0: [NAMEFRE], 15: [NAMEFRE, AREA]}`); the key is always in a tile's features.
    `priority` orders the features kept when a tile would exceed `max_bytes` (a property,
    `-` for descending; default: larger geometries first). Polygons and lines whose extent
    is smaller than `min_size_px` pixels are left out (small features drop at low zoom); with
    `small: merge`, such polygons are instead gathered per pixel of the tile into one square
    of their summed area, with the property `merged` (how many it stands for).
    """

    minzoom: int = Field(default=0, ge=0, le=24)
    maxzoom: int = Field(default=22, ge=0, le=24)
    properties: list[str] | dict[int, list[str]] | None = None
    priority: str | None = None
    max_bytes: int = Field(default=500_000, gt=1000)
    min_size_px: float = Field(default=0.5, ge=0)
    small: Literal["drop", "merge"] = "drop"

    @model_validator(mode="after")
    def _zoom_order(self) -> TileSettings:
        if self.minzoom > self.maxzoom:
            raise ValueError(f"minzoom {self.minzoom} is above maxzoom {self.maxzoom}")
        return self

    @classmethod
    def stored(cls, raw: Mapping[str, Any]) -> TileSettings:
        """The settings as the catalog keeps them (JSON: zoom keys are text; older keys go)."""
        return cls.model_validate({k: v for k, v in raw.items() if k in cls.model_fields})

    def properties_at(self, z: int, columns: Sequence[str]) -> list[str]:
        """The properties a tile at zoom `z` carries, of these columns (default: all)."""
        if self.properties is None:
            names = list(columns)
        elif isinstance(self.properties, list):
            names = list(self.properties)
        else:
            steps = [zoom for zoom in self.properties if zoom <= z]
            names = list(self.properties[max(steps)]) if steps else []
        known = set(columns)
        return [n for n in names if n in known]


class LayerConfig(_Strict):
    title: Title = Title()
    description: str | None = None
    source: Source
    key: str = Field(min_length=1)
    schedule: Schedule = None
    tiles: TileSettings = TileSettings()
    label: Label = Label()
    # properties filters use often: each gets a B-tree (urbis_sync.filter_indexes)
    indexes: list[str] = []


class RasterStyle(_Strict):
    """How raster tiles draw a layer (used by the API): a ramp, its range, a hillshade.

    `units` (e.g. m) is not drawn: the map's legend and values write it after their numbers.
    """

    colormap: str | None = None
    rescale: tuple[float, float] | None = None
    hillshade: bool = False
    units: str | None = Field(default=None, min_length=1, max_length=20, pattern=r"^[^\x00-\x1f]+$")

    @model_validator(mode="after")
    def _range_order(self) -> RasterStyle:
        if self.colormap is not None and self.colormap not in RAMPS:
            raise ValueError(
                f"colormap: unknown colour ramp '{self.colormap}'; one of {', '.join(RAMPS)}"
            )
        if self.rescale is not None and not self.rescale[0] < self.rescale[1]:
            raise ValueError(f"rescale {list(self.rescale)}: the minimum must be below the maximum")
        return self


class RasterLayerConfig(_Strict):
    """A raster layer (`type: raster`): GeoTIFF or COG files, kept as one COG in EPSG:31370.

    The layer id is the coverage id. `srid` declares the CRS of files that carry none and
    `nodata` the value of files that declare none; a file's own CRS and nodata win otherwise
    (declaring a different one is a configuration error found by `urbis config check`).
    """

    type: Literal["raster"]
    title: Title = Title()
    description: str | None = None
    source: FileSource
    srid: int | None = Field(default=None, gt=0)
    nodata: float | None = None
    style: RasterStyle = RasterStyle()
    schedule: Schedule = None

    @model_validator(mode="after")
    def _source_fields(self) -> RasterLayerConfig:
        if self.source.layer is not None or self.source.srid is not None:
            field = "layer" if self.source.layer is not None else "srid"
            hint = " (a raster layer declares 'srid' beside 'source')" if field == "srid" else ""
            raise ValueError(f"source.{field}: not used by a raster layer{hint}")
        if self.source.drop_fields:
            raise ValueError("source.drop_fields: not used by a raster layer (it has no fields)")
        return self


# Vector-layer fields a raster layer refuses by name, with the reason said once.
_VECTOR_ONLY = ("key", "tiles", "label", "indexes")


class ServiceConfig(_Strict):
    """The whole file: the layers to keep, keyed by their id.

    Vector layers (`layers`) go to PostGIS; raster layers (`rasters`, `type: raster` in the
    file) become Cloud-Optimized GeoTIFFs (urbis_sync.raster). Ids are unique across both.
    """

    path: Path
    layers: dict[str, LayerConfig]
    rasters: dict[str, RasterLayerConfig] = {}

    def layer(self, layer_id: str) -> LayerConfig:
        self.select([layer_id])
        if layer_id in self.rasters:
            raise ConfigError(f"{self.path}: layer '{layer_id}' is a raster layer")
        return self.layers[layer_id]

    def raster(self, layer_id: str) -> RasterLayerConfig:
        self.select([layer_id])
        if layer_id not in self.rasters:
            raise ConfigError(f"{self.path}: layer '{layer_id}' is not a raster layer")
        return self.rasters[layer_id]

    def all_ids(self) -> list[str]:
        """Every layer id, vector and raster, in the file's order within each kind."""
        return [*self.layers, *self.rasters]

    def select(self, layer_ids: Sequence[str]) -> list[str]:
        """The layer ids asked for, checked, in order; every layer when none is asked for."""
        every = self.all_ids()
        unknown = [layer_id for layer_id in layer_ids if layer_id not in every]
        if unknown:
            known = ", ".join(sorted(every)) or "none"
            names = ", ".join(f"'{layer_id}'" for layer_id in unknown)
            raise ConfigError(f"{self.path}: no layer {names} (configured layers: {known})")
        return list(dict.fromkeys(layer_ids)) or every


def load_config(path: Path) -> ServiceConfig:
    """Read and validate the YAML file; relative source paths resolve against its folder."""
    config, problems = read_config(path)
    if problems:
        raise ConfigError("\n".join(problems))
    return config


def read_config(path: Path) -> tuple[ServiceConfig, list[str]]:
    """The layers that are valid, and every problem of the file.

    Each problem is one line naming the file, the layer and the field, so that
    `urbis config check` reports them all in one pass.
    """
    path = path.resolve()
    nothing = ServiceConfig(path=path, layers={})
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return nothing, [f"{path}: configuration file not found"]
    except yaml.YAMLError as exc:
        return nothing, [f"{path}: not valid YAML: {exc}".replace("\n", " ")]
    if not isinstance(raw, dict) or not isinstance(raw.get("layers"), dict) or not raw["layers"]:
        return nothing, [f"{path}: expected a mapping with a non-empty 'layers' mapping"]

    layers: dict[str, LayerConfig] = {}
    rasters: dict[str, RasterLayerConfig] = {}
    problems: list[str] = []
    for layer_id, body in raw["layers"].items():
        if not isinstance(layer_id, str) or not LAYER_ID.match(layer_id):
            problems.append(
                f"{path}: layer '{layer_id}': the id must be lower case letters, digits and _ "
                "(it names the table and the collection)"
            )
            continue
        kind = body.get("type", "vector") if isinstance(body, dict) else "vector"
        if kind == "raster":
            raster, raster_problems = _read_raster(path, layer_id, body)
            problems += raster_problems
            if raster is not None:
                rasters[layer_id] = raster
            continue
        if kind != "vector":
            problems.append(
                f"{path}: layer '{layer_id}': type: unknown type '{kind}' "
                "(expected vector, the default, or raster)"
            )
            continue
        if isinstance(body, dict):
            body = {k: v for k, v in body.items() if k != "type"}
        try:
            layer = LayerConfig.model_validate(body)
        except ValidationError as exc:
            problems.extend(f"{path}: layer '{layer_id}': {_describe(e)}" for e in exc.errors())
            continue
        source = layer.source
        if isinstance(source, FileSource) and layer.key in source.drop_fields:
            problems.append(f"{path}: layer '{layer_id}': source.drop_fields: drops the key")
            continue
        if isinstance(source, FileSource) and source.path is not None:
            resolved = (path.parent / source.path).resolve()
            source = source.model_copy(update={"path": resolved})
            layer = layer.model_copy(update={"source": source})
        if isinstance(source, FileSource) and source.paths is not None:
            # Patterns too: `resolve` keeps `*` and `?` as they are.
            patterns = [(path.parent / p).resolve() for p in source.paths]
            source = source.model_copy(update={"paths": patterns})
            layer = layer.model_copy(update={"source": source})
        layers[layer_id] = layer
    unknown_top = sorted(set(raw) - {"layers"})
    problems.extend(f"{path}: unknown top-level key '{k}'" for k in unknown_top)
    return ServiceConfig(path=path, layers=layers, rasters=rasters), problems


def _read_raster(
    path: Path, layer_id: str, body: dict[str, Any]
) -> tuple[RasterLayerConfig | None, list[str]]:
    """One raster layer, its relative paths resolved against the file's folder; or its problems."""
    where = f"{path}: layer '{layer_id}'"
    refused = [
        f"{where}: {name}: not used by a raster layer" for name in _VECTOR_ONLY if name in body
    ]
    rest = {k: v for k, v in body.items() if k not in _VECTOR_ONLY}
    source = rest.get("source")
    if isinstance(source, dict) and source.get("kind", "file") != "file":
        refused.append(
            f"{where}: source.kind: a raster layer reads files (kind: file), "
            f"not '{source.get('kind')}'"
        )
        return None, refused
    try:
        layer = RasterLayerConfig.model_validate(rest)
    except ValidationError as exc:
        return None, refused + [f"{where}: {_describe(e)}" for e in exc.errors()]
    if refused:
        return None, refused
    located = layer.source
    if located.path is not None:
        located = located.model_copy(update={"path": (path.parent / located.path).resolve()})
    if located.paths is not None:
        located = located.model_copy(
            update={"paths": [(path.parent / p).resolve() for p in located.paths]}
        )
    return layer.model_copy(update={"source": located}), []


def _describe(error: Any) -> str:
    """Turn one pydantic error into 'field: problem' in plain words."""
    loc = [str(p) for p in error["loc"] if p not in SOURCE_KINDS]
    where = ".".join(loc) or "layer"
    kind = error["type"]
    if kind == "missing":
        return f"{where}: missing (required)"
    if kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag")
        return f"{where}.kind: unknown kind '{tag}' (expected one of: {', '.join(SOURCE_KINDS)})"
    if kind == "union_tag_not_found":
        return f"{where}.kind: missing (expected one of: {', '.join(SOURCE_KINDS)})"
    if kind == "extra_forbidden":
        return f"{where}: unknown field"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}"
