// The radius tool: a point picked on the map and a distance; /collections/{id}/within lists and
// counts the chosen layer's features that near (planar metres in Lambert 72, as the API
// measures), the circle is drawn, and the list downloads as CSV.

import { onLanguage, say, t } from "./i18n.js";
import { circle } from "./lambert.js";
import { featureLinks } from "./names.js";

const PAGE = 10000; // the API's page maximum
const LISTED = 200; // rows shown in the panel; the CSV holds them all

function csvCell(value) {
  const text = value == null ? "" : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export class RadiusTool {
  constructor(app) {
    this.app = app;
    this.button = document.getElementById("radius-pick");
    this.layer = document.getElementById("radius-layer");
    this.distance = document.getElementById("radius-distance");
    this.status = document.getElementById("radius-status");
    this.result = document.getElementById("radius-result");
    this.last = null; // {id, centre, distance, matched, features}
    this.csvUrl = null;
    this.button.addEventListener("click", () => this.toggle());
    this.fillLayers();
    onLanguage(() => {
      this.fillLayers();
      if (this.last) this.render();
    });
  }

  fillLayers() {
    const chosen = this.layer.value || this.app.settings.addressCollection;
    this.layer.replaceChildren(
      ...this.app.layers.ids.map((id) => {
        const option = document.createElement("option");
        option.value = id;
        option.textContent = this.app.collections.title(id);
        return option;
      }),
    );
    if (chosen) this.layer.value = chosen;
  }

  toggle() {
    if (this.app.mode === this) this.stop();
    else {
      if (this.app.mode) this.app.mode.stop();
      this.app.mode = this;
      this.button.setAttribute("aria-pressed", "true");
      this.app.map.getCanvas().style.cursor = "crosshair";
      say(this.status, "radiusPicking");
    }
  }

  stop() {
    this.app.mode = null;
    this.button.setAttribute("aria-pressed", "false");
    this.app.map.getCanvas().style.cursor = "";
  }

  async click(centre) {
    this.stop();
    await this.run(this.layer.value, centre, Number(this.distance.value));
  }

  /** Ask /within for every feature of `id` within `distance` m of `centre` ([lon, lat]). */
  async run(id, centre, distance) {
    if (!(distance >= 1 && distance <= 10000)) {
      say(this.status, "radiusBadDistance");
      return;
    }
    this.app.marks.tool([circle(centre, distance), { type: "Point", coordinates: centre }]);
    say(this.status, "loading");
    const { api } = this.app.settings;
    const features = [];
    let matched = 0;
    try {
      do {
        const query = new URLSearchParams({
          x: centre[0].toFixed(7),
          y: centre[1].toFixed(7),
          distance: String(distance),
          limit: String(PAGE),
          offset: String(features.length),
        });
        const answer = await fetch(`${api}/collections/${encodeURIComponent(id)}/within?${query}`, {
          headers: { Accept: "application/geo+json" },
        });
        if (!answer.ok) throw new Error((await answer.json().catch(() => ({}))).detail || answer.status);
        const page = await answer.json();
        matched = page.numberMatched;
        features.push(...page.features);
        if (page.features.length === 0) break;
      } while (features.length < matched);
    } catch (error) {
      say(this.status, "error", { e: error.message });
      return;
    }
    this.last = { id, centre, distance, matched, features };
    this.render();
  }

  render() {
    const { id, distance, matched, features } = this.last;
    const collections = this.app.collections;
    const title = collections.title(id);
    say(this.status, "radiusCount", { n: matched, layer: title, d: distance });
    this.status.dataset.count = String(matched);
    const table = document.createElement("table");
    const head = table.createTHead().insertRow();
    for (const words of ["name", "distance"]) {
      const cell = document.createElement("th");
      cell.scope = "col";
      cell.textContent = t(words);
      head.append(cell);
    }
    const body = table.createTBody();
    for (const feature of features.slice(0, LISTED)) {
      const row = body.insertRow();
      const link = document.createElement("a");
      link.href = featureLinks(this.app.settings.api, id, feature.id).html;
      link.target = "_blank";
      link.textContent = collections.featureName(id, feature);
      row.insertCell().append(link);
      row.insertCell().textContent = feature.properties.distance.toFixed(1);
    }
    const shown = document.createElement("p");
    shown.textContent = t("radiusShown", { n: Math.min(LISTED, features.length) });
    const download = document.createElement("a");
    download.id = "radius-csv";
    download.textContent = t("csv");
    download.download = `${id}-within-${distance}m.csv`;
    if (this.csvUrl) URL.revokeObjectURL(this.csvUrl);
    this.csvUrl = URL.createObjectURL(new Blob([this.csv()], { type: "text/csv" }));
    download.href = this.csvUrl;
    this.result.replaceChildren(shown, download, table);
  }

  /** Every feature found: collection, key, name in the current language, distance (m). */
  csv() {
    const { id, features } = this.last;
    const lines = [["collection", "key", "name", "distance_m"].join(",")];
    for (const feature of features) {
      lines.push(
        [id, feature.id, this.app.collections.featureName(id, feature), feature.properties.distance]
          .map(csvCell)
          .join(","),
      );
    }
    return `${lines.join("\r\n")}\r\n`;
  }
}
