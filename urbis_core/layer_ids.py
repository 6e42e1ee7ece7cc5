"""Comma-separated collection ids to catalog layers: one rule for the API and the seeder.

The rule (README, "Several collections at once"):
- omitted, empty or blank: every layer, in the catalog's order (by id);
- otherwise the ids in the order given, each once (a repeated id is drawn or searched once);
- an empty id between commas (`a,,b`, `a,`, `,`) is an InvalidParameter: a typo, not "all";
- an id the catalog does not hold is an UnknownCollection naming it (a 400 in the API, the
  parameter being wrong; the seeder's command line refuses it like any bad option).

Reading the ids needs no database (a cached tile's key is made of them); matching them to
layers takes the catalog's layers as read by `urbis_core.catalog.list_layers`.
"""

from __future__ import annotations

from collections.abc import Iterable

from urbis_core.catalog import LayerEntry
from urbis_core.errors import InvalidParameter, UnknownCollection


def parse_layer_ids(text: str | None, parameter: str = "collections") -> tuple[str, ...]:
    """The ids listed in `text`, in order, each once; () (every layer) when there are none."""
    if text is None or not text.strip():
        return ()
    ids = [part.strip() for part in text.split(",")]
    if not all(ids):
        raise InvalidParameter(
            parameter,
            f"'{text}' has an empty id; expected comma-separated ids, "
            "e.g. municipalities,addresses",
        )
    return tuple(dict.fromkeys(ids))


def layers_by_ids(
    ids: tuple[str, ...], layers: Iterable[LayerEntry], parameter: str = "collections"
) -> list[LayerEntry]:
    """The `layers` with these ids, in the order of `ids`; all of them when `ids` is empty."""
    by_id = {layer.id: layer for layer in layers}
    if not ids:
        return list(by_id.values())
    unknown = tuple(i for i in ids if i not in by_id)
    if unknown:
        raise UnknownCollection(parameter, unknown, tuple(by_id))
    return [by_id[i] for i in ids]
