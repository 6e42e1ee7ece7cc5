"""Plain HTML views of the JSON resources, for people opening the API in a browser."""

from __future__ import annotations

import html
import json
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse

from geoapi.deps import base_url
from geoapi.i18n import LANGUAGE_NAMES, LANGUAGES, PageLanguage, catalogue, text
from urbis_core.attribution import ATTRIBUTION
from urbis_core.catalog import LayerEntry
from urbis_core.names import namer

_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{title} - URBIS GeoService</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; padding: 0 1rem;
       color: #1b1b1b; }}
table {{ border-collapse: collapse; width: 100%; font-size: .9rem; }}
th, td {{ border: 1px solid #ccc; padding: .3rem .5rem; text-align: left; vertical-align: top; }}
th {{ background: #f0f0f0; }}
nav {{ display: flex; flex-wrap: wrap; gap: 1rem; align-items: baseline; }}
nav .languages {{ margin-left: auto; }}
nav .languages a[aria-current] {{ font-weight: bold; color: inherit; text-decoration: none; }}
.scroll {{ overflow-x: auto; }}
.subtitle {{ color: #555; margin-top: -.5rem; }}
footer {{ margin-top: 2rem; color: #555; font-size: .85rem; }}
pre {{ white-space: pre-wrap; word-break: break-all; max-height: 12rem; overflow-y: auto; }}
details > summary {{ cursor: pointer; font-weight: bold; margin: .5rem 0; }}
.map {{ height: 24rem; margin: 1rem 0; background: #eef1f4; border: 1px solid #ccc; }}
form.filter fieldset {{ border: 1px solid #ccc; margin: 1rem 0; }}
form.filter .fields {{ display: grid; gap: .4rem 1rem;
  grid-template-columns: repeat(auto-fill, minmax(14rem, 1fr)); }}
form.filter label {{ display: flex; flex-direction: column; font-size: .85rem; }}
form.filter textarea {{ width: 100%; font-family: monospace; }}
form.filter input[name=limit] {{ max-width: 8rem; }}
form.inline {{ display: flex; gap: .5rem; align-items: end; flex-wrap: wrap; margin: 1rem 0; }}
form.inline label {{ display: flex; flex-direction: column; font-size: .85rem; }}
</style></head>
<body><nav><a href="{base}/?f=html&amp;lang={lang}">{home}</a>
<a href="{base}/collections?f=html&amp;lang={lang}">{collections}</a>
<a href="{base}/map">{map}</a><a href="{base}/docs">{docs}</a>
<span class="languages" aria-label="{language}">{switcher}</span></nav>
<h1>{title}</h1>
{body}
<footer>{data} {attribution}. <a href="{json_href}">{json}</a>.</footer>
</body></html>"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _switcher(request: Request, current: str) -> str:
    """Links to this page in each language: the same query with its `lang` replaced.

    Relative links, so that they hold behind a proxy's prefix.
    """
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    links = []
    for code in LANGUAGES:
        href = "?" + urlencode([*kept, ("lang", code)])
        mark = ' aria-current="true"' if code == current else ""
        links.append(
            f'<a href="{esc(href)}" hreflang="{code}" lang="{code}"{mark} '
            f'title="{esc(LANGUAGE_NAMES[code])}">{code.upper()}</a>'
        )
    return " ".join(links)


def page(
    request: Request, lang: PageLanguage, title: str, body: str, json_href: str
) -> HTMLResponse:
    """A page of the service in `lang`; its links start from the public URL.

    Content-Language names the language, and Vary Accept-Language when that header chose it.
    """
    code = lang.code
    headers = {"Content-Language": code}
    if lang.negotiated:
        headers["Vary"] = "Accept-Language"
    return HTMLResponse(
        _PAGE.format(
            lang=code,
            title=esc(title),
            body=body,
            attribution=esc(ATTRIBUTION),
            json_href=esc(json_href),
            base=esc(base_url(request)),
            switcher=_switcher(request, code),
            **{
                name: esc(text(code, key))
                for name, key in (
                    ("home", "nav.home"),
                    ("collections", "nav.collections"),
                    ("map", "nav.map"),
                    ("docs", "nav.docs"),
                    ("language", "nav.language"),
                    ("data", "footer.data"),
                    ("json", "footer.json"),
                )
            },
        ),
        headers=headers,
    )


def link_list(links: list[tuple[str, str]]) -> str:
    """A list of (href, title) links."""
    items = "".join(f"<li>{anchor(href, title)}</li>" for href, title in links)
    return f"<ul>{items}</ul>"


def anchor(href: str, label: str) -> str:
    """A link whose address and label are text (both escaped here)."""
    return f'<a href="{esc(href)}">{esc(label)}</a>'


def table(headers: list[str], rows: list[list[str]], *, none: str | None = None) -> str:
    """A table: `headers` are text (escaped here), cells already markup.

    With no rows, the sentence `none` (text) stands in its place, when given.
    """
    if not rows and none is not None:
        return f"<p>{esc(none)}</p>"
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def facts(rows: list[tuple[str, Any]]) -> str:
    """A two-column table of (label, value) pairs, both text."""
    body = "".join(f'<tr><th scope="row">{esc(k)}</th><td>{esc(v)}</td></tr>' for k, v in rows)
    return f'<div class="scroll"><table><tbody>{body}</tbody></table></div>'


def page_href(href: str, lang: str) -> str:
    """The page of the resource at `href` (which may have a query already) in `lang`."""
    joiner = "&" if "?" in href else "?"
    return f"{href}{joiner}f=html&lang={lang}"


def feature_href(base: str, layer: LayerEntry, key: Any, lang: str) -> str:
    return f"{base}/collections/{layer.id}/items/{quote(str(key), safe='')}?f=html&lang={lang}"


def features_table(
    features: list[dict[str, Any]],
    layer: LayerEntry,
    base: str,
    lang: str,
    first: tuple[str, ...] = (),
) -> str:
    """The features, each named in `lang` and linking to its page, then their properties.

    Those in `first` come first (a distance the query measured).
    """
    if not features:
        return f"<p>{esc(text(lang, 'items.none'))}</p>"
    names = list(features[0]["properties"])
    names = [n for n in first if n in names] + [n for n in names if n not in first]
    name_of = namer(layer, lang)
    rows = []
    for feature in features:
        name = esc(name_of(feature["properties"]))
        if feature.get("id") is not None:
            name = f'<a href="{esc(feature_href(base, layer, feature["id"], lang))}">{name}</a>'
        cells = [name]
        cells += [esc(feature["properties"].get(n)) for n in names]
        rows.append(cells)
    return table([text(lang, "col.name"), *names], rows)


def feature_body(feature: dict[str, Any], lang: str) -> str:
    rows = [(k, v) for k, v in feature["properties"].items()]
    rows.append((text(lang, "feature.geometry_type"), feature["geometry"]["type"]))
    geometry = json.dumps(feature["geometry"])
    preview = geometry if len(geometry) < 2000 else geometry[:2000] + " ..."
    return facts(rows) + f"<h2>{esc(text(lang, 'feature.geometry'))}</h2><pre>{esc(preview)}</pre>"


def json_in_script(value: Any) -> str:
    """A value as JSON inside a <script> element.

    A '<' (only ever inside a string) could end the element early: it is written escaped.
    """
    return json.dumps(value).replace("<", "\\u003c")


def error_page(
    request: Request, lang: PageLanguage, status: int, detail: str, retry_after: int | None
) -> HTMLResponse:
    """A problem told to a browser: the status in the reader's language, the service's detail."""
    code = lang.code
    key = f"error.{status}" if f"error.{status}" in catalogue() else "error.other"
    title = text(code, "error.title", status=status, phrase=text(code, key))
    retry = f"<p>{esc(text(code, 'error.retry', seconds=retry_after))}</p>" if retry_after else ""
    base = base_url(request)
    body = (
        f"<p>{esc(text(code, 'error.detail'))}</p><blockquote>{esc(detail)}</blockquote>"
        + retry
        + link_list([(f"{base}/?f=html&lang={code}", text(code, "error.start"))])
    )
    json_href = f"{request.url.path}?{urlencode([*_without_f(request), ('f', 'json')])}"
    answer = page(request, lang, title, body, f"{base}{json_href}")
    answer.status_code = status
    if retry_after:
        answer.headers["Retry-After"] = str(retry_after)
    return answer


def _without_f(request: Request) -> list[tuple[str, str]]:
    return [(k, v) for k, v in request.query_params.multi_items() if k != "f"]
