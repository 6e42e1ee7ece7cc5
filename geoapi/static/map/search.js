// The search box: suggestions from /geocode as one types (a combobox: arrows choose, Enter
// goes, Escape closes), Enter alone flying to the best answer and marking it.

import { Marker } from "../maplibre/maplibre-gl.mjs";
import { say } from "./i18n.js";

const WAIT_MS = 250; // a pause in typing before suggestions are asked for
// Both complete an unfinished last word (`complete`). Suggestions show near misses too;
// Enter alone takes the API's default threshold, where a weaker answer is "no result" rather
// than a wrong one.
const SUGGEST_MIN_SCORE = 0.6;
const SUGGESTIONS = 6;

export class Search {
  constructor(app) {
    this.app = app;
    this.input = document.getElementById("search");
    this.list = document.getElementById("suggestions");
    this.status = document.getElementById("search-status");
    this.options = []; // the features suggested
    this.active = -1;
    this.timer = null;
    this.pending = null; // the request in flight (aborted by the next one)
    this.marker = null;
    this.found = null; // the feature last gone to
    this.input.addEventListener("input", () => this.typed());
    this.input.addEventListener("keydown", (event) => this.key(event));
    // Leaving the box closes the list (a suggestion's mousedown keeps the focus in the box).
    this.input.addEventListener("blur", () => this.show([]));
    document.getElementById("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.enter();
    });
  }

  async ask(q, params) {
    if (this.pending) this.pending.abort();
    this.pending = new AbortController();
    const query = new URLSearchParams({ q, ...params });
    const answer = await fetch(`${this.app.settings.api}/geocode?${query}`, {
      signal: this.pending.signal,
      headers: { Accept: "application/geo+json" },
    });
    if (!answer.ok) {
      const problem = await answer.json().catch(() => ({}));
      throw new Error(problem.detail || `HTTP ${answer.status}`);
    }
    return (await answer.json()).features;
  }

  typed() {
    clearTimeout(this.timer);
    const q = this.input.value.trim();
    if (q.length < 2) {
      this.show([]);
      say(this.status, "");
      return;
    }
    this.timer = setTimeout(async () => {
      try {
        const features = await this.ask(q, {
          limit: SUGGESTIONS,
          min_score: SUGGEST_MIN_SCORE,
          complete: "true", // the last word may be unfinished
        });
        if (this.input.value.trim() !== q) return; // typed on meanwhile
        this.show(features);
        if (features.length) say(this.status, "suggestions", { n: features.length });
        else say(this.status, "noResult", { q });
      } catch (error) {
        if (error.name !== "AbortError") say(this.status, "error", { e: error.message });
      }
    }, WAIT_MS);
  }

  show(features) {
    this.options = features;
    this.active = -1;
    this.list.replaceChildren(
      ...features.map((feature, i) => {
        const option = document.createElement("li");
        option.id = `suggestion-${i}`;
        option.setAttribute("role", "option");
        option.setAttribute("aria-selected", "false");
        option.textContent = feature.properties.label;
        option.addEventListener("mousedown", (event) => {
          event.preventDefault(); // keep the focus in the box
          this.go(feature);
        });
        return option;
      }),
    );
    this.list.hidden = features.length === 0;
    this.input.setAttribute("aria-expanded", String(features.length > 0));
    this.input.removeAttribute("aria-activedescendant");
  }

  key(event) {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (!this.options.length) return;
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      this.active = (this.active + step + this.options.length) % this.options.length;
      [...this.list.children].forEach((option, i) =>
        option.setAttribute("aria-selected", String(i === this.active)),
      );
      this.input.setAttribute("aria-activedescendant", `suggestion-${this.active}`);
    } else if (event.key === "Escape") {
      this.show([]);
    }
  }

  async enter() {
    clearTimeout(this.timer);
    const q = this.input.value.trim();
    if (this.active >= 0 && this.options[this.active]) {
      this.go(this.options[this.active]);
      return;
    }
    if (!q) return;
    say(this.status, "searching");
    try {
      const [best] = await this.ask(q, { limit: 1, complete: "true" });
      if (best) this.go(best);
      else {
        this.show([]);
        say(this.status, "noResult", { q });
      }
    } catch (error) {
      if (error.name !== "AbortError") say(this.status, "error", { e: error.message });
    }
  }

  /** Fly to an answer (its extent for a street or a place) and mark it. */
  go(feature) {
    this.show([]);
    this.found = feature;
    const [lon, lat] = feature.geometry.coordinates;
    if (!this.marker) {
      this.marker = new Marker({ color: "#c2185b" });
      this.marker.getElement().setAttribute("role", "img");
      this.marker.getElement().classList.add("search-marker");
    }
    this.marker.getElement().setAttribute("aria-label", feature.properties.label);
    this.marker.setLngLat([lon, lat]).addTo(this.app.map);
    if (feature.bbox && feature.bbox[0] !== feature.bbox[2]) {
      this.app.map.fitBounds(
        [
          [feature.bbox[0], feature.bbox[1]],
          [feature.bbox[2], feature.bbox[3]],
        ],
        { padding: 60, maxZoom: 18 },
      );
    } else {
      this.app.map.flyTo({ center: [lon, lat], zoom: 18, essential: true });
    }
    this.input.value = feature.properties.label;
    say(this.status, "found", { label: feature.properties.label });
  }
}
