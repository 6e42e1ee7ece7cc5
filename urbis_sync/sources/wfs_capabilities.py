"""What a WFS 2.0 server says about itself (GetCapabilities), and the choices made from it.

Read once per run: the service title and version, the default page size (`CountDefault`), the
feature types with the output formats each offers, and the formats of the GetFeature operation.
From these the reader takes the output format (GeoJSON when offered, else GML 3.2, which WFS 2.0
requires of every server), spelled exactly as the server advertises it: servers spell the same
format many ways, and some accept only their own spelling.
"""

from __future__ import annotations

import difflib
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from urbis_sync.sources.http import PermanentError

FormatKind = Literal["geojson", "gml"]
# Recognised spellings, compared without case, spaces or quotes; the first ones are preferred
# when a server offers several.
GEOJSON_SPELLINGS = (
    "application/json",
    "application/geo+json",
    "application/json;subtype=geojson",
    "application/vnd.geo+json",
    "json",
    "geojson",
)
GML32_SPELLINGS = (
    "application/gml+xml;version=3.2",
    "text/xml;subtype=gml/3.2.1",
    "text/xml;subtype=gml/3.2",
    "application/gml+xml;version=3.2.1",
    "gml32",
)
KIND_NAMES = {"geojson": "GeoJSON", "gml": "GML 3.2"}
# Sent when a server lists no format at all: the names WFS 2.0 gives them.
STANDARD_SPELLING = {"geojson": "application/json", "gml": "application/gml+xml; version=3.2"}
CLOSEST_SHOWN = 5


def _normal(spelling: str) -> str:
    return "".join(spelling.split()).replace('"', "").replace("'", "").lower()


def format_kind(spelling: str) -> FormatKind | None:
    """`geojson` or `gml` (GML 3.2) for a format name a server advertises; None for others."""
    normal = _normal(spelling)
    if normal in GEOJSON_SPELLINGS:
        return "geojson"
    if normal in GML32_SPELLINGS:
        return "gml"
    return None


@dataclass(frozen=True)
class OutputFormat:
    kind: FormatKind
    value: str  # exactly as the server advertises it: what OUTPUTFORMAT carries
    why: str

    def __str__(self) -> str:
        return f"{self.value} ({KIND_NAMES[self.kind]}, {self.why})"


def choose_format(offered: Sequence[str], forced: FormatKind | None, what: str) -> OutputFormat:
    """The output format to ask for; PermanentError when the server cannot give a usable one."""
    if not offered:
        if forced is not None:
            return OutputFormat(
                forced,
                STANDARD_SPELLING[forced],
                f"`format: {forced}` in the config; the server lists no formats",
            )
        return OutputFormat(
            "gml", STANDARD_SPELLING["gml"], "the server lists no formats; WFS 2.0 requires GML 3.2"
        )
    by_kind: dict[str, list[str]] = {"geojson": [], "gml": []}
    for spelling in offered:
        kind_of = format_kind(spelling)
        if kind_of is not None:
            by_kind[kind_of].append(spelling)
    listed = ", ".join(offered)
    if forced is not None:
        if not by_kind[forced]:
            other = "gml" if forced == "geojson" else "geojson"
            hint = (
                f"; remove `format` (or set `format: {other}`) to use {KIND_NAMES[other]}"
                if by_kind[other]
                else ""
            )
            raise PermanentError(
                f"{what}: format: {forced}, but the server does not offer "
                f"{KIND_NAMES[forced]} (it offers: {listed}){hint}"
            )
        return OutputFormat(
            forced, _preferred(by_kind[forced], forced), f"`format: {forced}` in the config"
        )
    if by_kind["geojson"]:
        return OutputFormat(
            "geojson", _preferred(by_kind["geojson"], "geojson"), "offered by the server"
        )
    if by_kind["gml"]:
        return OutputFormat(
            "gml", _preferred(by_kind["gml"], "gml"), "the server offers no GeoJSON"
        )
    raise PermanentError(
        f"{what}: the server offers neither GeoJSON nor GML 3.2 (it offers: "
        f"{listed}); is it a WFS 2.0 server?"
    )


def _preferred(spellings: list[str], kind: FormatKind) -> str:
    order = GEOJSON_SPELLINGS if kind == "geojson" else GML32_SPELLINGS
    return min(spellings, key=lambda s: order.index(_normal(s)))


@dataclass(frozen=True)
class FeatureType:
    name: str
    title: str
    formats: tuple[str, ...]  # the type's own list (`OutputFormats`); often absent


@dataclass(frozen=True)
class WfsCapabilities:
    title: str
    version: str
    count_default: int | None
    getfeature_formats: tuple[str, ...]  # the GetFeature operation's `outputFormat` values
    feature_types: tuple[FeatureType, ...]

    @classmethod
    def parse(cls, root: ET.Element) -> WfsCapabilities:
        count_default = None
        getfeature_formats: list[str] = []
        for element in root.iter():
            tag = _local(element.tag)
            if tag == "Constraint" and element.get("name") == "CountDefault":
                value = _child_text(element, "DefaultValue")
                if value.isdigit():
                    count_default = int(value)
            elif tag == "Operation" and element.get("name") == "GetFeature":
                for parameter in element:
                    if (
                        _local(parameter.tag) == "Parameter"
                        and parameter.get("name", "").lower() == "outputformat"
                    ):
                        getfeature_formats += [
                            (v.text or "").strip()
                            for v in parameter.iter()
                            if _local(v.tag) == "Value" and v.text
                        ]
        types = []
        for element in root.iter():
            if _local(element.tag) != "FeatureType":
                continue
            formats = [
                (f.text or "").strip()
                for child in element
                if _local(child.tag) == "OutputFormats"
                for f in child
                if _local(f.tag) == "Format" and f.text
            ]
            types.append(
                FeatureType(
                    _child_text(element, "Name"), _child_text(element, "Title"), tuple(formats)
                )
            )
        identification = next(
            (e for e in root.iter() if _local(e.tag) in ("ServiceIdentification", "Service")), None
        )
        return cls(
            title=_child_text(identification, "Title"),
            version=root.get("version", ""),
            count_default=count_default,
            getfeature_formats=tuple(getfeature_formats),
            feature_types=tuple(t for t in types if t.name),
        )

    def find_type(self, typename: str) -> FeatureType | None:
        """The feature type named `typename`, with or without its namespace prefix."""
        for feature_type in self.feature_types:
            if feature_type.name == typename:
                return feature_type
        prefix, _, local = typename.rpartition(":")
        same_local = [
            t
            for t in self.feature_types
            if t.name.rpartition(":")[2] == local and (not prefix or ":" not in t.name)
        ]
        return same_local[0] if len(same_local) == 1 else None

    def require_type(self, typename: str, what: str) -> FeatureType:
        found = self.find_type(typename)
        if found is not None:
            return found
        names = [t.name for t in self.feature_types]
        if not names:
            raise PermanentError(
                f"{what}: the server offers no feature type at all, so not '{typename}'"
            )
        raise PermanentError(
            f"{what}: the server has no feature type '{typename}' (closest of the "
            f"{len(names)} it offers: {', '.join(self.closest_names(typename))})"
        )

    def closest_names(self, typename: str, count: int = CLOSEST_SHOWN) -> list[str]:
        wanted = typename.rpartition(":")[2].lower()

        def likeness(name: str) -> float:
            return difflib.SequenceMatcher(None, wanted, name.rpartition(":")[2].lower()).ratio()

        ranked = sorted(self.feature_types, key=lambda t: -likeness(t.name))
        return [t.name for t in ranked[:count]]

    def formats_for(self, feature_type: FeatureType) -> tuple[str, ...]:
        """The formats a type can be read in.

        Its own list when it has one (it may lack what the operation lists), else the
        GetFeature operation's.
        """
        return feature_type.formats or self.getfeature_formats


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child_text(element: ET.Element | None, name: str) -> str:
    if element is None:
        return ""
    for child in element:
        if _local(child.tag) == name:
            return " ".join((child.text or "").split())
    return ""
