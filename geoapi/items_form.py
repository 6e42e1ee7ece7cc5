"""The items page's filter form: what the API's items parameters already filter, as fields.

One field per queryable property (a `<property>=<value>` equality filter), a CQL2 `filter`, a
page size, and a box taken from the little map's current view. The form is a plain GET of the
items page, so its answer is a page with the same address a link would give; a small script
leaves out the fields left empty (an empty value would filter on the empty string) and fills
`bbox` from the map when asked to. Every value shown comes from the query string and is
escaped.
"""

from __future__ import annotations

from fastapi import Request

from geoapi.html import esc
from geoapi.i18n import text
from geoapi.json_schema import queryables_doc
from urbis_core.catalog import LayerEntry

_INPUT_TYPES = {"integer": ("number", "1"), "number": ("number", "any")}
_KEPT = ("filter-lang", "filter-crs", "sortby", "properties", "datetime")
_CQL_EXAMPLE = "PZNC = '1060' AND S_INTERSECTS(geom, BBOX(4.34, 50.82, 4.36, 50.84))"

_SCRIPT = """
(function () {
  const form = document.getElementById("filter-form");
  form.addEventListener("submit", () => {
    const view = document.getElementById("filter-bbox");
    const map = window.urbisItemsMap;
    if (document.getElementById("filter-use-view").checked && map) {
      const b = map.getBounds();
      view.value = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]
        .map((v) => v.toFixed(6)).join(",");
    } else {
      view.value = "";
    }
    for (const field of form.elements) {
      if (field.name && field.value === "") field.disabled = true;
    }
  });
})();
"""


def filter_form(
    request: Request, layer: LayerEntry, items_href: str, lang: str, limit: int, in_view: bool
) -> str:
    """The form; `in_view` ticks "within the map's view" (the page was asked with a bbox)."""
    asked = request.query_params
    properties = queryables_doc(layer, "")["properties"]
    fields = []
    for name, spec in properties.items():
        if name == "geometry":
            continue
        kind, step = _INPUT_TYPES.get(spec.get("type", ""), ("text", ""))
        step_attr = f' step="{step}"' if step else ""
        fields.append(
            f'<label>{esc(name)}<input name="{esc(name)}" type="{kind}"{step_attr} '
            f'value="{esc(asked.get(name, ""))}"></label>'
        )
    # what else selected the page is kept as it was asked
    kept = "".join(
        f'<input type="hidden" name="{name}" value="{esc(asked[name])}">'
        for name in _KEPT
        if asked.get(name)
    )
    checked = " checked" if in_view else ""
    # open when the page is filtered, so that what filters it shows
    filtered = in_view or any(k in asked for k in ("filter", *properties))
    opened = " open" if filtered else ""
    hint = text(lang, "form.cql_hint", example=_CQL_EXAMPLE)
    return (
        f'<form id="filter-form" class="filter" method="get" action="{esc(items_href)}">'
        '<input type="hidden" name="f" value="html">'
        f'<input type="hidden" name="lang" value="{esc(lang)}">'
        '<input type="hidden" id="filter-bbox" name="bbox" value="">'
        + kept
        + f"<details{opened}><summary>{esc(text(lang, 'form.legend'))}</summary><fieldset>"
        f"<p>{esc(text(lang, 'form.equals'))}</p>"
        f'<div class="fields">{"".join(fields)}</div>'
        f"<p><label>{esc(text(lang, 'form.cql'))}"
        f'<textarea name="filter" rows="2" placeholder="{esc(hint)}">'
        f"{esc(asked.get('filter', ''))}</textarea></label></p>"
        f'<p><label class="check"><span><input type="checkbox" id="filter-use-view"{checked}> '
        f"{esc(text(lang, 'form.bbox'))}</span></label></p>"
        f"<p><label>{esc(text(lang, 'form.limit'))}"
        f'<input name="limit" type="number" min="1" step="1" value="{esc(limit)}"></label></p>'
        f'<p><button type="submit">{esc(text(lang, "form.submit"))}</button> '
        f'<a href="{esc(items_href)}?f=html&amp;lang={esc(lang)}">'
        f"{esc(text(lang, 'form.clear'))}</a></p>"
        f"</fieldset></details></form><script>{_SCRIPT}</script>"
    )
