"""HTML views of the spatial and geocoding answers: lookup, within, nearest, stats, geocode.

Each is drawn from the document the JSON answer gives. Features are named in the reader's
language (`urbis_core.names.feature_name`) and link to their pages; every value is escaped.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse

from geoapi import html
from geoapi.crs import CRS84_URI, OutputCrs
from geoapi.deps import base_url
from geoapi.html_map import feature_map, map_of, named_features, query_point
from geoapi.i18n import PageLanguage, catalogue, number, text
from urbis_core.catalog import LayerEntry
from urbis_core.names import feature_name, namer


def _as_json(request: Request, path: str) -> str:
    """The request's resource (`path`) as JSON: its parameters but `f` and `lang`."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("f", "lang")]
    return f"{base_url(request)}{path}?{urlencode([*kept, ('f', 'json')])}"


def _map(
    request: Request, layer: LayerEntry, features: list[dict[str, Any]], crs: OutputCrs, lang: str
) -> str:
    if not crs.geographic or crs.lat_first or not features:
        return ""
    return feature_map(request, features, layer, lang)


def _point_form(request: Request, lang: str, action: str, extra: list[str]) -> str:
    """A form asking a point again (x, y) with the other parameters of the request kept."""
    asked = request.query_params
    fields = "".join(
        f'<label>{name}<input name="{name}" value="{html.esc(asked.get(name, ""))}" '
        'inputmode="decimal"></label>'
        for name in ("x", "y", *extra)
    )
    kept = "".join(
        f'<input type="hidden" name="{html.esc(k)}" value="{html.esc(v)}">'
        for k, v in asked.multi_items()
        if k not in ("x", "y", "f", "lang", *extra)
    )
    return (
        f'<form class="inline" method="get" action="{html.esc(action)}">{fields}{kept}'
        f'<input type="hidden" name="f" value="html">'
        f'<input type="hidden" name="lang" value="{lang}">'
        f'<button type="submit">{html.esc(text(lang, "geocode.search"))}</button></form>'
    )


def lookup_page(
    request: Request,
    lang: PageLanguage,
    layers: list[LayerEntry],
    doc: dict[str, Any],
) -> HTMLResponse:
    code = lang.code
    base = base_url(request)
    x, y = doc["point"]["coordinates"]
    point = text(code, "lookup.point", x=x, y=y, crs=doc["crs"])
    rows = []
    for layer in layers:
        found = doc["results"][layer.id]
        title = html.anchor(
            f"{base}/collections/{layer.id}?f=html&lang={code}", layer.display_title(code)
        )
        names = (
            "<br>".join(
                html.anchor(
                    html.feature_href(base, layer, f["id"], code),
                    feature_name(layer, f["properties"], code),
                )
                for f in found
            )
            or f"<em>{html.esc(text(code, 'lookup.nothing'))}</em>"
        )
        rows.append([title, names])
    body = (
        _point_form(request, code, f"{base}/lookup", [])
        + f"<p>{html.esc(point)} {html.esc(text(code, 'lookup.click'))}</p>"
        + _lookup_map(request, layers, doc, code)
        + html.table([text(code, "lookup.layer"), text(code, "lookup.found")], rows)
    )
    return html.page(request, lang, text(code, "lookup.title"), body, _as_json(request, "/lookup"))


def _lookup_map(request: Request, layers: list[LayerEntry], doc: dict[str, Any], lang: str) -> str:
    """What was found and the point asked, on a map where a click asks another point."""
    if doc["crs"] != CRS84_URI:
        return ""
    drawn = [
        feature
        for layer in layers
        for feature in named_features(request, layer, doc["results"][layer.id], lang)
    ]
    x, y = doc["point"]["coordinates"]
    drawn.append(query_point(x, y))
    delta = 0.003  # about 300 m around the point
    return map_of(request, drawn, lang, (x - delta, y - delta, x + delta, y + delta), lookup=True)


def _near_map(
    request: Request, layer: LayerEntry, features: list[dict[str, Any]], crs: OutputCrs, lang: str
) -> str:
    """The features found and the point they were measured from."""
    x, y = request.query_params.get("x"), request.query_params.get("y")
    if not crs.geographic or crs.lat_first or x is None or y is None:
        return ""
    here = query_point(float(x), float(y))
    return map_of(request, [*named_features(request, layer, features, lang), here], lang)


def near_page(
    request: Request,
    lang: PageLanguage,
    layer: LayerEntry,
    title: str,
    doc: dict[str, Any],
    crs: OutputCrs,
    path: str,
    extra: list[str],
) -> HTMLResponse:
    """The within and nearest answers: the point, the features nearest first, a map."""
    code = lang.code
    base = base_url(request)
    x, y = request.query_params.get("x"), request.query_params.get("y")
    features = doc["features"]
    matched = doc.get("numberMatched", len(features))
    count = text(
        code, "near.count", returned=number(len(features), code), matched=number(matched, code)
    )
    body = (
        _point_form(request, code, f"{base}{path}", extra)
        + f"<p>{html.esc(text(code, 'near.point', x=x, y=y, crs=crs.uri))} "
        f"{html.esc(count)}</p>"
        + _near_map(request, layer, features, crs, code)
        + html.features_table(features, layer, base, code, first=("distance",))
    )
    return html.page(request, lang, title, body, _as_json(request, path))


def stats_page(
    request: Request,
    lang: PageLanguage,
    layer: LayerEntry,
    group: LayerEntry,
    doc: dict[str, Any],
    names: dict[Any, dict[str, Any]],
) -> HTMLResponse:
    """The groups, each named in the reader's language (`names`: what its label reads)."""
    code = lang.code
    base = base_url(request)
    key, measure = doc["keyField"], doc["measure"]
    name_of = namer(group, code)
    headers = [key, text(code, "col.name"), text(code, "stats.count")]
    if measure:
        headers.append(text(code, f"stats.{measure}"))
    rows = []
    for row in doc["groups"]:
        cells = [html.anchor(html.feature_href(base, group, row["key"], code), row["key"])]
        cells.append(html.esc(name_of({key: row["key"], **names.get(row["key"], {})})))
        cells.append(html.esc(number(row["count"], code)))
        if measure:
            value = row[measure]
            cells.append(html.esc("" if value is None else number(round(float(value), 1), code)))
        rows.append(cells)
    csv_href = f"{base}/collections/{layer.id}/stats?{urlencode({'by': group.id, 'f': 'csv'})}"
    title = text(code, "stats.title", layer=layer.display_title(code), by=group.display_title(code))
    body = html.table(headers, rows) + html.link_list([(csv_href, text(code, "stats.csv"))])
    path = f"/collections/{layer.id}/stats"
    return html.page(request, lang, title, body, _as_json(request, path))


def _named(base: str, layer: LayerEntry, feature: dict[str, Any], lang: str, name: str) -> str:
    """A feature's name, linking to its page when it has one.

    A street or a municipality the geocoder names has none.
    """
    if feature.get("id") is None:
        return name
    return f'<a href="{html.esc(html.feature_href(base, layer, feature["id"], lang))}">{name}</a>'


def _match(how: object, lang: str) -> str:
    """How an answer matched, in words (the API's own value where the pages have none)."""
    key = f"match.{how}"
    return text(lang, key) if key in catalogue() else str(how)


def geocode_page(
    request: Request,
    lang: PageLanguage,
    layer: LayerEntry,
    q: str,
    features: list[dict[str, Any]],
    crs: OutputCrs,
) -> HTMLResponse:
    code = lang.code
    base = base_url(request)
    asked = request.query_params
    kept = "".join(
        f'<input type="hidden" name="{html.esc(k)}" value="{html.esc(v)}">'
        for k, v in asked.multi_items()
        if k not in ("q", "f", "lang")
    )
    form = (
        f'<form class="inline" method="get" action="{html.esc(f"{base}/geocode")}">'
        f"<label>{html.esc(text(code, 'geocode.query'))}"
        f'<input type="search" name="q" size="50" value="{html.esc(q)}"></label>{kept}'
        '<input type="hidden" name="f" value="html">'
        f'<input type="hidden" name="lang" value="{code}">'
        f'<button type="submit">{html.esc(text(code, "geocode.search"))}</button></form>'
    )
    if len(features) == 1:
        summary = text(code, "geocode.result", q=q)
    elif features:
        summary = text(code, "geocode.results", count=number(len(features), code), q=q)
    else:
        summary = text(code, "geocode.none", q=q)
    rows = [
        [
            _named(base, layer, f, code, html.esc(f["properties"].get("label"))),
            html.esc(f["properties"].get("score")),
            html.esc(_match(f["properties"].get("match"), code)),
        ]
        for f in features
    ]
    headers = [text(code, k) for k in ("geocode.label", "geocode.score", "geocode.match")]
    body = (
        form
        + f"<p>{html.esc(summary)}</p>"
        + _map(request, layer, features, crs, code)
        + (html.table(headers, rows) if rows else "")
    )
    title = text(code, "geocode.title")
    return html.page(request, lang, title, body, _as_json(request, "/geocode"))
