// The measure tool: clicked points make a line (distance) or a ring (area), measured planar in
// Belgian Lambert 72 (EPSG:31370), the plane Brussels' plans are drawn in; a double click ends.

import { number, onLanguage, say } from "./i18n.js";
import { planarArea, planarLength } from "./lambert.js";

function metres(value) {
  return value >= 1000 ? `${number(value / 1000, 3)} km` : `${number(value, 1)} m`;
}

function squareMetres(value) {
  return value >= 10000 ? `${number(value / 10000, 4)} ha` : `${number(value, 1)} m²`;
}

export class MeasureTool {
  constructor(app) {
    this.app = app;
    this.kind = null; // "distance" or "area" while measuring
    this.points = [];
    this.status = document.getElementById("measure-status");
    this.buttons = {
      distance: document.getElementById("measure-distance"),
      area: document.getElementById("measure-area"),
    };
    for (const [kind, button] of Object.entries(this.buttons)) {
      button.addEventListener("click", () => this.start(kind));
    }
    document.getElementById("measure-clear").addEventListener("click", () => this.clear());
    app.map.on("dblclick", (event) => {
      if (app.mode === this) {
        event.preventDefault(); // no zoom: the double click ends the measure
        this.stop();
      }
    });
    onLanguage(() => this.report());
  }

  start(kind) {
    if (this.app.mode && this.app.mode !== this) this.app.mode.stop();
    this.app.mode = this;
    this.kind = kind;
    this.points = [];
    for (const [k, button] of Object.entries(this.buttons)) {
      button.setAttribute("aria-pressed", String(k === kind));
    }
    this.app.map.getCanvas().style.cursor = "crosshair";
    this.draw();
    say(this.status, "measureStart");
  }

  stop() {
    this.app.mode = null;
    for (const button of Object.values(this.buttons)) button.setAttribute("aria-pressed", "false");
    this.app.map.getCanvas().style.cursor = "";
  }

  clear() {
    this.stop();
    this.points = [];
    this.kind = null;
    this.app.marks.tool([]);
    say(this.status, "");
    delete this.status.dataset.value;
  }

  click(lngLat) {
    const last = this.points[this.points.length - 1];
    if (last && last[0] === lngLat[0] && last[1] === lngLat[1]) return; // a double click's twin
    this.points.push(lngLat);
    this.draw();
    this.report();
  }

  draw() {
    const points = this.points;
    const shapes = points.map((p) => ({ type: "Point", coordinates: p }));
    if (this.kind === "area" && points.length >= 3) {
      shapes.push({ type: "Polygon", coordinates: [[...points, points[0]]] });
    } else if (points.length >= 2) {
      shapes.push({ type: "LineString", coordinates: points });
    }
    this.app.marks.tool(shapes);
  }

  /** The measure so far, written in the current language (its value in data-value, m or m²). */
  report() {
    if (!this.kind || this.points.length < 2) return;
    if (this.kind === "area" && this.points.length >= 3) {
      const area = planarArea(this.points);
      const perimeter = planarLength([...this.points, this.points[0]]);
      say(this.status, "measureSurface", { v: squareMetres(area), p: metres(perimeter) });
      this.status.dataset.value = area.toFixed(3);
    } else {
      const length = planarLength(this.points);
      say(this.status, "measureLength", { v: metres(length) });
      this.status.dataset.value = length.toFixed(3);
    }
  }
}
