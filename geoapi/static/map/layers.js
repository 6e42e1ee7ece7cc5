// The layer list: one toggle per collection with its legend drawn from the style's own paint,
// the map labels in the chosen language (or bilingual, as the style writes them), and the
// background: the URBIS base map (optional) or an imagery coverage of ours.

import { addCoverageLayer, coverageTitle, removeCoverageLayer } from "./coverages.js";
import { language, onLanguage, t } from "./i18n.js";

const LABELS_SUFFIX = "_labels"; // the tiles' layer of a polygon layer's label points
const SVG = "http://www.w3.org/2000/svg";
const COVERAGE_PREFIX = "coverage:"; // a background that is one of our imagery coverages

function collectionOf(styleLayer) {
  const source = styleLayer["source-layer"];
  if (!source) return null;
  return source.endsWith(LABELS_SUFFIX) ? source.slice(0, -LABELS_SUFFIX.length) : source;
}

/** A plain colour of a paint property (a literal, or an expression's first colour). */
function colour(value, fallback) {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const found = value.flat(Infinity).find((v) => typeof v === "string" && /^(#|rgb|hsl)/.test(v));
    if (found) return found;
  }
  return fallback;
}

/** A small picture of how a style layer draws (fill, line, circle, text). */
function swatch(styleLayer) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", "22");
  svg.setAttribute("height", "16");
  svg.setAttribute("aria-hidden", "true");
  const paint = styleLayer.paint || {};
  const add = (name, attributes) => {
    const shape = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attributes)) shape.setAttribute(key, value);
    svg.append(shape);
    return shape;
  };
  if (styleLayer.type === "fill") {
    add("rect", {
      x: 2, y: 2, width: 18, height: 12,
      fill: colour(paint["fill-color"], "#888"),
      "fill-opacity": String(paint["fill-opacity"] ?? 1),
    });
  } else if (styleLayer.type === "line") {
    add("line", {
      x1: 2, y1: 8, x2: 20, y2: 8,
      stroke: colour(paint["line-color"], "#444"), "stroke-width": "2.5",
    });
  } else if (styleLayer.type === "circle") {
    add("circle", {
      cx: 11, cy: 8, r: 5,
      fill: colour(paint["circle-color"], "#888"),
      stroke: colour(paint["circle-stroke-color"], "#444"), "stroke-width": "1.5",
    });
  } else if (styleLayer.type === "symbol") {
    const text = add("text", {
      x: 2, y: 13, "font-size": "12", "font-family": "sans-serif",
      fill: colour(paint["text-color"], "#222"),
    });
    text.textContent = "Aa";
  }
  return svg;
}

export class LayerList {
  constructor(map, style, collections, settings, asked, coverages = []) {
    this.map = map;
    this.collections = collections;
    this.listeners = [];
    this.styleLayers = new Map(); // collection id -> its style layers
    for (const styleLayer of style.layers) {
      const id = collectionOf(styleLayer);
      if (!id) continue;
      if (!this.styleLayers.has(id)) this.styleLayers.set(id, []);
      this.styleLayers.get(id).push(styleLayer);
    }
    const listed = (style.metadata && style.metadata["urbis:collections"]) || [];
    this.ids = listed.filter((id) => this.styleLayers.has(id));
    const shown = asked.layers ? new Set(asked.layers) : new Set(this.ids);
    this.visible = new Set(this.ids.filter((id) => shown.has(id)));
    // The style's bilingual labels, kept to come back to.
    this.bilingualFields = new Map(
      style.layers
        .filter((l) => l.type === "symbol" && l.id.endsWith("-label"))
        .map((l) => [l.id, { id: collectionOf(l), field: l.layout["text-field"] }]),
    );
    this.bilingual = document.getElementById("bilingual");
    this.bilingual.addEventListener("change", () => this.writeLabels());
    this.render();
    for (const id of this.ids) this.apply(id);
    this.writeLabels();
    this.background = new Background(map, settings, coverages, asked.bg, () => this.changed());
    onLanguage(() => {
      this.render();
      this.writeLabels();
      this.background.render();
    });
  }

  onChange(fn) {
    this.listeners.push(fn);
  }

  changed() {
    for (const fn of this.listeners) fn();
  }

  /** The ids shown, or null when all are (the address then names none). */
  visibleState() {
    return this.visible.size === this.ids.length ? null : this.ids.filter((id) => this.visible.has(id));
  }

  backgroundState() {
    return this.background.chosen;
  }

  setVisible(id, on) {
    if (on) this.visible.add(id);
    else this.visible.delete(id);
    this.apply(id);
    const box = document.getElementById(`layer-${id}`);
    if (box) box.checked = on;
    this.changed();
  }

  apply(id) {
    const visibility = this.visible.has(id) ? "visible" : "none";
    for (const styleLayer of this.styleLayers.get(id)) {
      this.map.setLayoutProperty(styleLayer.id, "visibility", visibility);
    }
  }

  /** The list: a checkbox per collection, named in the current language, with its legend. */
  render() {
    const list = document.getElementById("layer-list");
    list.replaceChildren();
    for (const id of this.ids) {
      const item = document.createElement("li");
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.id = `layer-${id}`;
      box.checked = this.visible.has(id);
      box.addEventListener("change", () => this.setVisible(id, box.checked));
      const name = document.createElement("span");
      name.textContent = this.collections.title(id);
      label.append(box, name);
      const legend = document.createElement("span");
      legend.className = "legend";
      legend.setAttribute("role", "img");
      legend.setAttribute("aria-label", `${t("legend")}: ${this.collections.title(id)}`);
      for (const styleLayer of this.styleLayers.get(id)) legend.append(swatch(styleLayer));
      item.append(label, legend);
      list.append(item);
    }
  }

  /** Map labels: the chosen language's label of each collection, or the style's bilingual. */
  writeLabels() {
    for (const [styleId, { id, field: bilingual }] of this.bilingualFields) {
      const own = this.collections.labelExpression(id, language());
      const french = this.collections.labelExpression(id, "fr");
      let field = bilingual;
      if (!this.bilingual.checked && own) {
        // A feature without the chosen language's name keeps the French one (then the key).
        field = ["case", ["!=", own, ""], own, french ?? bilingual];
      }
      this.map.setLayoutProperty(styleId, "text-field", field);
    }
  }
}

/** The ground under our layers: the URBIS base map when URBIS_BASEMAP_WMTS_URL is set, or an
 * imagery coverage of ours (an orthophoto); none by default. One at a time. */
class Background {
  constructor(map, settings, coverages, asked, changed) {
    this.map = map;
    this.api = settings.api;
    this.template = settings.basemap;
    this.changed = changed;
    const template = this.template;
    // [key, words of the interface | null, WMTS layer name | null, coverage | null]
    this.choices = !template
      ? []
      : template.includes("{layer}")
        ? [
            ["fr", "backgroundFr", "urbisFR", null],
            ["nl", "backgroundNl", "urbisNL", null],
            ["grey", "backgroundGrey", "urbisFRGray", null],
          ]
        : [["urbis", "backgroundOne", null, null]];
    for (const coverage of coverages.filter((c) => c.imagery)) {
      this.choices.push([`${COVERAGE_PREFIX}${coverage.id}`, null, null, coverage]);
    }
    this.chosen = null;
    this.select = document.getElementById("background");
    document.getElementById("background-choice").hidden = this.choices.length === 0;
    this.select.addEventListener("change", () => this.choose(this.select.value || null));
    this.render();
    if (this.choices.some(([key]) => key === asked)) this.choose(asked);
  }

  /** The imagery coverage shown, or null. */
  coverage() {
    const choice = this.choices.find(([key]) => key === this.chosen);
    return choice ? choice[3] : null;
  }

  render() {
    if (this.choices.length === 0) return;
    const options = [["", "backgroundNone", null, null], ...this.choices];
    this.select.replaceChildren(
      ...options.map(([key, words, , coverage]) => {
        const option = document.createElement("option");
        option.value = key;
        option.textContent = coverage ? coverageTitle(coverage, language()) : t(words);
        return option;
      }),
    );
    this.select.value = this.chosen || "";
  }

  choose(key) {
    if (this.map.getLayer("urbis-background")) this.map.removeLayer("urbis-background");
    if (this.map.getSource("urbis-background")) this.map.removeSource("urbis-background");
    const previous = this.coverage();
    if (previous) removeCoverageLayer(this.map, previous.id);
    const choice = this.choices.find(([k]) => k === key);
    this.chosen = choice ? key : null;
    // Right above the plain ground, under every layer of ours (and the overlays).
    const above = this.map.getStyle().layers[1];
    if (choice && choice[3]) {
      addCoverageLayer(this.map, this.api, choice[3], above ? above.id : undefined);
    } else if (choice) {
      const url = choice[2] ? this.template.replaceAll("{layer}", choice[2]) : this.template;
      this.map.addSource("urbis-background", {
        type: "raster",
        tiles: [url],
        tileSize: 256,
        attribution: "Brussels UrbIS®© - Distribution & Copyright CIRB / Paradigm",
      });
      this.map.addLayer(
        { id: "urbis-background", type: "raster", source: "urbis-background" },
        above ? above.id : undefined,
      );
    }
    this.select.value = this.chosen || "";
    this.changed();
  }
}
