// "What is here": a click (or Enter on the map) asks /lookup over every layer and the address
// collection's /nearest, and the panel names each feature in the reader's language, with
// links to its page, its JSON and its layer's history, and the point in Lambert 72 and WGS84.
// Each raster layer shown (the imagery background, the overlays) is asked its bands' values
// there (/coverages/{id}/point): nodata and a point off the raster are said as such.

import { coverageTitle, withUnits } from "./coverages.js";
import { language, number, onLanguage, t } from "./i18n.js";
import { toLambert } from "./lambert.js";
import { featureLinks } from "./names.js";

// The nearest address is said only this near (m): farther, it names another neighbourhood
// (the sample's addresses lie in Saint-Gilles only), which would mislead more than inform.
const NEAREST_MAX_M = 250;

async function json(url) {
  const answer = await fetch(url, { headers: { Accept: "application/json" } });
  if (!answer.ok) {
    const problem = await answer.json().catch(() => ({}));
    throw new Error(problem.detail || `HTTP ${answer.status}`);
  }
  return answer.json();
}

function element(name, text, attributes = {}) {
  const made = document.createElement(name);
  if (text != null) made.textContent = text;
  for (const [key, value] of Object.entries(attributes)) made.setAttribute(key, value);
  return made;
}

export class WhatIsHere {
  constructor(app) {
    this.app = app;
    this.panel = document.getElementById("panel");
    this.body = document.getElementById("panel-body");
    this.answer = null; // {lngLat, results, nearest} of the last click, written again on a switch
    this.asked = 0;
    document.getElementById("panel-close").addEventListener("click", () => this.close());
    this.panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.close();
    });
    onLanguage(() => {
      if (this.answer && !this.panel.hidden) this.render();
    });
  }

  close() {
    this.panel.hidden = true;
    this.app.marks.highlight([]);
    this.app.map.getCanvas().focus();
  }

  async open(lngLat) {
    const turn = ++this.asked;
    const { api, addressCollection } = this.app.settings;
    const [x, y] = lngLat.map((v) => v.toFixed(7));
    const coverages = this.app.shownCoverages();
    this.answer = { lngLat, results: null, nearest: null, error: null, rasters: [] };
    this.panel.hidden = false;
    this.panel.dataset.state = "loading";
    this.render();
    this.panel.focus();
    try {
      const nearest = addressCollection
        ? json(`${api}/collections/${encodeURIComponent(addressCollection)}/nearest?x=${x}&y=${y}&k=1`)
        : Promise.resolve({ features: [] });
      // A raster that does not answer is said in its own section; the rest of the panel stands.
      const rasters = Promise.all(
        coverages.map((coverage) =>
          json(`${api}/coverages/${encodeURIComponent(coverage.id)}/point?x=${x}&y=${y}`).then(
            (values) => ({ coverage, values: values.values, error: null }),
            (error) => ({ coverage, values: null, error: error.message }),
          ),
        ),
      );
      const [lookup, near, raster] = await Promise.all([
        json(`${api}/lookup?x=${x}&y=${y}`),
        nearest,
        rasters,
      ]);
      if (turn !== this.asked) return; // a later click won
      this.answer.results = lookup.results;
      this.answer.rasters = raster;
      const found = near.features[0];
      this.answer.nearest = found && found.properties.distance <= NEAREST_MAX_M ? found : null;
      this.app.marks.highlight(Object.values(lookup.results).flat());
    } catch (error) {
      if (turn !== this.asked) return;
      this.answer.error = error.message;
    }
    this.panel.dataset.state = "done";
    this.render();
  }

  render() {
    const { lngLat, results, nearest, error, rasters } = this.answer;
    const { api } = this.app.settings;
    const collections = this.app.collections;
    const parts = [];
    if (error) parts.push(element("p", t("error", { e: error }), { class: "status" }));
    else if (!results) parts.push(element("p", t("loading"), { class: "status" }));
    else {
      let any = false;
      for (const [id, features] of Object.entries(results)) {
        if (!features.length) continue;
        any = true;
        const section = element("section", null, { "data-collection": id });
        section.append(element("h3", collections.title(id)));
        const list = element("ul");
        for (const feature of features) list.append(this.item(api, id, feature));
        section.append(list);
        parts.push(section);
      }
      if (!any) parts.push(element("p", t("nothingHere"), { class: "status" }));
      for (const answer of rasters) parts.push(this.rasterValues(answer));
      if (nearest) {
        const id = this.app.settings.addressCollection;
        const section = element("section", null, { "data-collection": "nearest" });
        section.append(element("h3", t("nearestAddress")));
        const list = element("ul");
        const distance = t("atDistance", { d: nearest.properties.distance });
        list.append(this.item(api, id, nearest, distance));
        section.append(list);
        parts.push(section);
      }
    }
    parts.push(this.coordinates(lngLat));
    this.body.replaceChildren(...parts);
  }

  /** A raster layer's bands at the point: a value (with the layer's unit), no data, or outside. */
  rasterValues({ coverage, values, error }) {
    const section = element("section", null, { class: "raster", "data-coverage": coverage.id });
    section.append(element("h3", coverageTitle(coverage, language())));
    if (error) {
      section.append(element("p", t("error", { e: error }), { class: "status" }));
      return section;
    }
    if (values.every((v) => v.outside)) {
      section.append(element("p", t("rasterOutside"), { class: "status", "data-outside": "true" }));
      return section;
    }
    const units = coverage.style && coverage.style.units;
    const list = element("dl", null, { class: "bands" });
    for (const value of values) {
      const band = coverage.bands[value.band - 1];
      const integral = band && /int/.test(band.dtype);
      const text = value.nodata
        ? t("rasterNoData")
        : withUnits(number(value.value, integral ? 0 : 2), units);
      // One band needs no name (its catalog name is often a bare "band1").
      list.append(
        element("dt", values.length === 1 ? t("rasterValue") : value.name),
        element("dd", text, {
          "data-band": String(value.band),
          "data-value": value.nodata ? "nodata" : String(value.value),
          ...(value.nodata ? { class: "nodata" } : {}),
        }),
      );
    }
    section.append(list);
    return section;
  }

  item(api, id, feature, note = null) {
    const key = feature.id;
    const links = featureLinks(api, id, key);
    const item = element("li", null, { "data-key": String(key) });
    item.append(element("strong", this.app.collections.featureName(id, feature), { class: "name" }));
    if (note) item.append(" ", element("span", note, { class: "note" }));
    const nav = element("span", null, { class: "links" });
    for (const [which, href] of [
      ["page", links.html],
      ["json", links.json],
      ["history", links.history],
    ]) {
      nav.append(" ", element("a", t(which), { href, "data-link": which, target: "_blank", rel: "noopener" }));
    }
    item.append(nav);
    return item;
  }

  coordinates(lngLat) {
    const [easting, northing] = toLambert(lngLat);
    const section = element("section", null, { class: "coordinates" });
    section.append(element("h3", t("coordinates")));
    const list = element("dl");
    list.append(
      element("dt", t("lambert")),
      element("dd", `x ${number(easting, 2)}  y ${number(northing, 2)}`, {
        "data-crs": "31370",
        "data-x": easting.toFixed(2),
        "data-y": northing.toFixed(2),
      }),
      element("dt", t("wgs84")),
      element("dd", `${lngLat[1].toFixed(6)}° N  ${lngLat[0].toFixed(6)}° E`, {
        "data-crs": "4326",
        "data-lon": lngLat[0].toFixed(7),
        "data-lat": lngLat[1].toFixed(7),
      }),
    );
    section.append(list);
    return section;
  }
}
