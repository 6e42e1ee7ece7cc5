"""Plain HTML views of the JSON resources, for people opening the API in a browser."""

from __future__ import annotations

import html
import json
from typing import Any

from fastapi.responses import HTMLResponse

ATTRIBUTION = "Brussels UrbIS®© - Distribution & Copyright CIRB / Paradigm"

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - URBIS GeoService</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; padding: 0 1rem;
       color: #1b1b1b; }}
table {{ border-collapse: collapse; width: 100%; font-size: .9rem; }}
th, td {{ border: 1px solid #ccc; padding: .3rem .5rem; text-align: left; vertical-align: top; }}
th {{ background: #f0f0f0; }}
nav a {{ margin-right: 1rem; }}
.scroll {{ overflow-x: auto; }}
footer {{ margin-top: 2rem; color: #555; font-size: .85rem; }}
</style></head>
<body><nav><a href="/?f=html">Home</a><a href="/collections?f=html">Collections</a>
<a href="/docs">API documentation</a></nav>
<h1>{title}</h1>
{body}
<footer>Data: {attribution}. <a href="{json_href}">This page as JSON</a>.</footer>
</body></html>"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def page(title: str, body: str, json_href: str) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=esc(title), body=body, attribution=esc(ATTRIBUTION),
                                     json_href=esc(json_href)))


def link_list(links: list[dict[str, Any]]) -> str:
    items = "".join(f'<li><a href="{esc(link["href"])}">{esc(link.get("title") or link["rel"])}'
                    f"</a></li>" for link in links)
    return f"<ul>{items}</ul>"


def table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def features_table(features: list[dict[str, Any]], collection_href: str) -> str:
    if not features:
        return "<p>No features.</p>"
    names = list(features[0]["properties"])
    rows = []
    for feature in features:
        href = f"{collection_href}/items/{feature['id']}?f=html"
        cells = [f'<a href="{esc(href)}">{esc(feature["id"])}</a>']
        cells += [esc(feature["properties"].get(n)) for n in names]
        rows.append(cells)
    return table(["id", *names], rows)


def feature_body(feature: dict[str, Any]) -> str:
    rows = [[esc(k), esc(v)] for k, v in feature["properties"].items()]
    rows.append(["geometry type", esc(feature["geometry"]["type"])])
    geometry = json.dumps(feature["geometry"])
    preview = geometry if len(geometry) < 2000 else geometry[:2000] + " ..."
    return (table(["property", "value"], rows)
            + f"<h2>Geometry (CRS84)</h2><pre>{esc(preview)}</pre>")
