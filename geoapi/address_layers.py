"""Which synced layer holds addresses, where it keeps their parts, and how one is written."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from urbis_core.catalog import LayerEntry
from urbis_core.errors import InvalidParameter, NotFound


@dataclass(frozen=True)
class AddressFields:
    """Where an address layer keeps its parts (French and Dutch names)."""

    street_fr: str
    street_nl: str
    number: str
    postcode: str
    municipality_fr: str
    municipality_nl: str
    box: str | None = None
    street_id: str | None = None

    def required(self) -> set[str]:
        return {
            self.street_fr,
            self.street_nl,
            self.number,
            self.postcode,
            self.municipality_fr,
            self.municipality_nl,
        }

    def street_fields(self) -> list[str]:
        """The fields a street's addresses share: its id (if any), names, postcode, municipality."""
        return [
            n
            for n in (
                self.street_id,
                self.street_fr,
                self.street_nl,
                self.postcode,
                self.municipality_fr,
                self.municipality_nl,
            )
            if n is not None
        ]

    def all(self) -> list[str]:
        return [*self.street_fields(), self.number, *([self.box] if self.box else [])]


# The URBIS address schemas: UrbIS-Vector (current) and UrbAdm (legacy); the box and the
# street id are used when the layer has them.
KNOWN_SCHEMAS = (
    AddressFields(
        "STRNAMEFRE",
        "STRNAMEDUT",
        "POLICENUM",
        "ZIPCODE",
        "MUNNAMEFRE",
        "MUNNAMEDUT",
        box="BOXNUMBER",
        street_id="STREET_ID",
    ),
    AddressFields(
        "PW_NAME_FR", "PW_NAME_DU", "ADRN", "PZNC", "MU_NAME_FR", "MU_NAME_DU", street_id="PW_ID"
    ),
)


def address_fields(layer: LayerEntry) -> AddressFields | None:
    names = {c.name for c in layer.columns}
    for schema in KNOWN_SCHEMAS:
        if schema.required() <= names:
            return replace(
                schema,
                box=schema.box if schema.box in names else None,
                street_id=schema.street_id if schema.street_id in names else None,
            )
    return None


def address_layer(
    layers: Iterable[LayerEntry], wanted: str | None
) -> tuple[LayerEntry, AddressFields]:
    """The layer to geocode on: `wanted`, or the first whose fields are an address schema."""
    layers = list(layers)
    if wanted is not None:
        layer = next((x for x in layers if x.id == wanted), None)
        if layer is None:
            raise NotFound(f"no collection '{wanted}'; /collections lists the available ones")
        fields = address_fields(layer)
        if fields is None:
            raise InvalidParameter(
                "collection",
                f"'{wanted}' is not an address layer (it "
                "lacks street, number, postcode and municipality fields)",
            )
        return layer, fields
    for layer in layers:
        fields = address_fields(layer)
        if fields is not None:
            return layer, fields
    raise NotFound(
        "no address layer is synced: geocoding needs a layer with URBIS address "
        "fields (e.g. STRNAMEFRE, POLICENUM, ZIPCODE, MUNNAMEFRE)"
    )


BOX_WORD = {"fr": "bte", "nl": "bus"}  # how a box is written after the number


def label(row: Mapping[str, Any], fields: AddressFields, lang: str) -> str:
    """'Rue de la Victoire 2, 1060 Saint-Gilles' ('Overwinningsstraat 2 bus 3, ...') in `lang`.

    A street or a municipality (no number, no street) is written the same way without them.
    """
    street = row.get(fields.street_fr if lang == "fr" else fields.street_nl)
    municipality = row.get(fields.municipality_fr if lang == "fr" else fields.municipality_nl)
    number = str(row.get(fields.number) or "")
    box = row.get(fields.box) if fields.box else None
    if box:
        number += f" {BOX_WORD[lang]} {box}"
    place = " ".join(str(v) for v in (row.get(fields.postcode), municipality) if v)
    head = " ".join(str(v) for v in (street, number) if v)
    return ", ".join(part for part in (head, place) if part)
