"""The shape of the incoming layer: its column types and geometry type, and how it drifted.

Decided from what the normalizer saw of the source; compared with the live layer's shape to
tell schema drift (which makes the apply rebuild the table instead of diffing it).
"""

from __future__ import annotations

from dataclasses import dataclass

from urbis_core.catalog import ColumnInfo, LayerEntry
from urbis_core.errors import SourceError
from urbis_sync.normalize import FAMILIES, LayerFacts
from urbis_sync.sources import Field


@dataclass(frozen=True)
class LayerShape:
    """The typed columns and geometry type of the incoming layer."""

    columns: list[ColumnInfo]
    geometry_type: str


def decide_shape(
    fields: list[Field],
    facts: LayerFacts,
    layer_id: str,
    current: LayerEntry | None = None,
    complete: bool = True,
) -> LayerShape:
    """Final column types and the geometry type, from what the normalizer saw.

    Real numbers that are all whole become bigint: shapefiles store identifiers as reals. When
    only changed features were seen (`complete` false), the live layer's types stand unless
    those features do not fit them.
    """
    live_types = {c.name: c.sql_type for c in current.columns} if current else {}
    if not complete and current is not None and not facts.kinds:
        return LayerShape(list(current.columns), current.geometry_type)
    columns = [
        ColumnInfo(
            f.name, _column_type(f, facts.whole.get(f.name), live_types.get(f.name), complete)
        )
        for f in fields
    ]
    if not complete and current is not None and _fits(current.geometry_type, facts.kinds):
        return LayerShape(columns, current.geometry_type)
    families = {FAMILIES.get(k, k) for k in facts.kinds}
    if len(families) > 1:
        raise SourceError(
            f"layer '{layer_id}': the source mixes geometry types "
            f"({', '.join(sorted(families))}); one layer holds one type"
        )
    family = next(iter(families), "Geometry")
    multi = any(k.startswith("Multi") for k in facts.kinds)
    return LayerShape(columns, ("Multi" + family) if multi and family != "Geometry" else family)


def _column_type(field: Field, whole: bool | None, live_type: str | None, complete: bool) -> str:
    if field.sql_type != "double precision":
        return field.sql_type
    if whole is None and not complete and live_type in ("bigint", "double precision"):
        return live_type  # the changed features have no value here: nothing to go by
    if whole and (complete or live_type != "double precision"):
        return "bigint"
    return "double precision"


def _fits(geometry_type: str, kinds: set[str]) -> bool:
    """Tell whether features of these kinds fit a column of `geometry_type`."""
    family = FAMILIES.get(geometry_type)
    if family is None:
        return False
    multi = geometry_type.startswith("Multi")
    return all(FAMILIES.get(k) == family and (multi or not k.startswith("Multi")) for k in kinds)


def describe_drift(current: LayerEntry | None, shape: LayerShape) -> str | None:
    if current is None:
        return None
    before = {c.name: c.sql_type for c in current.columns}
    after = {c.name: c.sql_type for c in shape.columns}
    notes = [f"added {n} ({t})" for n, t in after.items() if n not in before]
    notes += [f"dropped {n}" for n in before if n not in after]
    notes += [
        f"{n}: {before[n]} -> {t}" for n, t in after.items() if n in before and before[n] != t
    ]
    if current.geometry_type != shape.geometry_type:
        notes.append(f"geometry: {current.geometry_type} -> {shape.geometry_type}")
    return "; ".join(notes) or None
