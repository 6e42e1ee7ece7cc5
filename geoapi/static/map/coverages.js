// The raster layers (GET /coverages) on the map: imagery as background choices (beside the
// URBIS base map, layers.js), single-band data as overlays, each a checkbox with an opacity
// slider and, while shown, a legend from the coverage's style document (the stops the tiles
// are drawn with). Both are our raster tiles on WebMercatorQuad, read through TileJSON, and
// drawn under every vector layer.

import { language, number, onLanguage, t } from "./i18n.js";

export const DEFAULT_OPACITY = 80; // % : the vectors and the ground still read through data

/** The catalog's coverages (an empty list when the service cannot say: the map still opens). */
export async function loadCoverages(api) {
  try {
    const answer = await fetch(`${api}/coverages?f=json`, { headers: { Accept: "application/json" } });
    if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
    return (await answer.json()).coverages;
  } catch (error) {
    console.warn(`/coverages: ${error.message}; the map shows no raster layer`);
    return [];
  }
}

/** A coverage's title in the current language. */
export function coverageTitle(coverage, lang) {
  return (coverage.titles && (coverage.titles[lang] || coverage.titles.en)) || coverage.title || coverage.id;
}

/** The map's source and layer id of a coverage (one each: a coverage is drawn once). */
export function coverageLayerId(id) {
  return `coverage-${id}`;
}

/** Add a coverage's tiles to the map, before the style layer `before` (or on top). */
export function addCoverageLayer(map, api, coverage, before, opacity = 1) {
  const id = coverageLayerId(coverage.id);
  map.addSource(id, {
    type: "raster",
    url: `${api}/coverages/${encodeURIComponent(coverage.id)}/tiles/WebMercatorQuad/tilejson.json`,
    tileSize: 256,
  });
  map.addLayer(
    { id, type: "raster", source: id, paint: { "raster-opacity": opacity, "raster-fade-duration": 0 } },
    before,
  );
}

export function removeCoverageLayer(map, coverageId) {
  const id = coverageLayerId(coverageId);
  if (map.getLayer(id)) map.removeLayer(id);
  if (map.getSource(id)) map.removeSource(id);
}

/** The first of the style's vector layers: rasters go under it (and over the ground). */
function firstVectorLayer(map) {
  const found = map.getStyle().layers.find((l) => l.type !== "background" && l.type !== "raster");
  return found ? found.id : undefined;
}

/** Digits enough to tell a legend's ends apart, without noise (1 234 m, 12.5 m, 0.25). */
function digitsFor(low, high) {
  const span = Math.abs(high - low);
  if (span >= 100) return 0;
  return span >= 1 ? 1 : 2;
}

/** A value with the layer's unit, written the reader's way. */
export function withUnits(text, units) {
  return units ? `${text} ${units}` : text;
}

/** The overlays: a checkbox, an opacity slider and a legend per single-band coverage. */
export class Overlays {
  constructor(app, coverages, asked) {
    this.map = app.map;
    this.api = app.settings.api;
    this.listeners = [];
    this.coverages = coverages.filter((c) => !c.imagery);
    this.opacity = new Map(this.coverages.map((c) => [c.id, DEFAULT_OPACITY]));
    this.visible = new Set();
    this.list = document.getElementById("overlay-list");
    document.getElementById("overlays").hidden = this.coverages.length === 0;
    for (const [id, opacity] of asked || []) {
      if (!this.opacity.has(id)) continue; // not (or no longer) in the catalog
      if (Number.isFinite(opacity)) this.opacity.set(id, Math.min(100, Math.max(0, Math.round(opacity))));
      this.visible.add(id);
    }
    this.render();
    for (const c of this.coverages) if (this.visible.has(c.id)) this.draw(c);
    onLanguage(() => this.render());
  }

  onChange(fn) {
    this.listeners.push(fn);
  }

  /** The shown overlays as [id, opacity %] in the catalog's order (for the address). */
  state() {
    return this.coverages.filter((c) => this.visible.has(c.id)).map((c) => [c.id, this.opacity.get(c.id)]);
  }

  /** The coverages shown, in the catalog's order. */
  shown() {
    return this.coverages.filter((c) => this.visible.has(c.id));
  }

  setVisible(id, on) {
    const coverage = this.coverages.find((c) => c.id === id);
    if (!coverage) return;
    if (on && !this.visible.has(id)) {
      this.visible.add(id);
      this.draw(coverage);
    } else if (!on && this.visible.has(id)) {
      this.visible.delete(id);
      removeCoverageLayer(this.map, id);
    }
    this.render();
    for (const fn of this.listeners) fn();
  }

  setOpacity(id, percent) {
    this.opacity.set(id, percent);
    const layer = coverageLayerId(id);
    if (this.map.getLayer(layer)) this.map.setPaintProperty(layer, "raster-opacity", percent / 100);
    for (const fn of this.listeners) fn();
  }

  draw(coverage) {
    addCoverageLayer(this.map, this.api, coverage, firstVectorLayer(this.map), this.opacity.get(coverage.id) / 100);
  }

  render() {
    const lang = language();
    this.list.replaceChildren(...this.coverages.map((c) => this.item(c, lang)));
  }

  item(coverage, lang) {
    const title = coverageTitle(coverage, lang);
    const on = this.visible.has(coverage.id);
    const item = document.createElement("li");
    item.dataset.coverage = coverage.id;
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.id = `overlay-${coverage.id}`;
    box.checked = on;
    box.addEventListener("change", () => {
      this.setVisible(coverage.id, box.checked);
      // The list was written anew: the keyboard stays on this layer's (new) checkbox.
      document.getElementById(box.id).focus();
    });
    const name = document.createElement("span");
    name.className = "title";
    name.textContent = title;
    label.append(box, name);
    item.append(label);
    if (!on) return item;

    const slider = document.createElement("label");
    slider.className = "opacity";
    const words = document.createElement("span");
    words.textContent = t("opacity");
    const range = document.createElement("input");
    range.type = "range";
    range.id = `opacity-${coverage.id}`;
    range.min = "0";
    range.max = "100";
    range.step = "5";
    range.value = String(this.opacity.get(coverage.id));
    range.setAttribute("aria-label", t("opacityOf", { layer: title }));
    const shown = document.createElement("output");
    shown.htmlFor = range.id;
    shown.textContent = `${range.value} %`;
    range.addEventListener("input", () => {
      shown.textContent = `${range.value} %`;
      this.setOpacity(coverage.id, Number(range.value));
    });
    slider.append(words, range, shown);
    item.append(slider, this.legend(coverage, title));
    return item;
  }

  /** The ramp the tiles use, its two ends (the style's rescale) and the unit. */
  legend(coverage, title) {
    const style = coverage.style;
    const box = document.createElement("div");
    box.className = "ramp-legend";
    if (!style || !style.ramp || !style.rescale) return box;
    const [low, high] = style.rescale;
    const digits = digitsFor(low, high);
    const lowText = withUnits(number(low, digits), style.units);
    const highText = withUnits(number(high, digits), style.units);
    const bar = document.createElement("div");
    bar.className = "ramp";
    bar.setAttribute("role", "img");
    bar.setAttribute("aria-label", t("rampLegend", { layer: title, low: lowText, high: highText }));
    const stops = style.ramp.map(([where, colour]) => `${colour} ${where * 100}%`).join(", ");
    bar.style.background = `linear-gradient(to right, ${stops})`;
    const ends = document.createElement("div");
    ends.className = "ends";
    const lowEnd = document.createElement("span");
    lowEnd.className = "low";
    lowEnd.textContent = lowText;
    lowEnd.dataset.value = String(low);
    const highEnd = document.createElement("span");
    highEnd.className = "high";
    highEnd.textContent = highText;
    highEnd.dataset.value = String(high);
    ends.append(lowEnd, highEnd);
    box.append(bar, ends);
    if (style.hillshade) {
      const note = document.createElement("p");
      note.className = "note";
      note.textContent = t("hillshaded");
      box.append(note);
    }
    return box;
  }
}
