// The shareable address of a view: #zoom/lat/lon, then &layers=a,b (when not all are shown),
// &lang=fr|nl|en, &bg=<background> (when one is shown: fr, nl, grey, urbis, or
// coverage:<id> for an imagery coverage) and &overlays=<id>[:<opacity %>],... (the raster
// overlays shown; the opacity said when it is not the default).

import { DEFAULT_OPACITY } from "./coverages.js";

/** What an address's hash asks for: {view: {zoom, lat, lon} | null, layers, lang, bg, overlays}. */
export function readState(hash) {
  const [view, ...pairs] = hash.replace(/^#/, "").split("&");
  const state = { view: null, layers: null, lang: null, bg: null, overlays: null };
  const numbers = view.split("/").slice(0, 3).map(Number);
  if (numbers.length === 3 && numbers.every(Number.isFinite)) {
    const [zoom, lat, lon] = numbers;
    if (zoom >= 0 && zoom <= 24 && Math.abs(lat) <= 85 && Math.abs(lon) <= 180) {
      state.view = { zoom, lat, lon };
    }
  }
  for (const pair of pairs) {
    const [name, raw = ""] = pair.split("=");
    const value = safeDecode(raw);
    if (name === "layers") state.layers = value.split(",").filter(Boolean);
    else if (name === "lang") state.lang = value;
    else if (name === "bg") state.bg = value;
    else if (name === "overlays") state.overlays = raw.split(",").filter(Boolean).map(overlay);
  }
  return state;
}

function safeDecode(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return ""; // a hand-edited address with a broken escape asks for nothing
  }
}

/** "terrain:60" -> ["terrain", 60]; "terrain" -> ["terrain", null] (the default). */
function overlay(text) {
  const [id, opacity] = text.split(":");
  return [safeDecode(id), opacity === undefined ? null : Number(opacity)];
}

/** The hash of the map's view, language, shown layers (null: all), background (or null)
 * and overlays ([id, opacity %] each). */
export function writeState(map, lang, layers, background, overlays = []) {
  const centre = map.getCenter();
  const zoom = map.getZoom();
  // As many decimals as the zoom makes visible (MapLibre's own hash does the same).
  const digits = Math.ceil((zoom * Math.LN2 + Math.log(512 / 360 / 0.5)) / Math.LN10);
  const parts = [`#${Math.round(zoom * 100) / 100}/${centre.lat.toFixed(digits)}/${centre.lng.toFixed(digits)}`];
  if (layers) parts.push(`layers=${layers.map(encodeURIComponent).join(",")}`);
  parts.push(`lang=${lang}`);
  // ":" may stand in a fragment as it is (RFC 3986): coverage:ortho stays readable.
  if (background) parts.push(`bg=${encodeURIComponent(background).replaceAll("%3A", ":")}`);
  if (overlays.length) {
    const listed = overlays.map(([id, opacity]) =>
      opacity === DEFAULT_OPACITY ? encodeURIComponent(id) : `${encodeURIComponent(id)}:${opacity}`,
    );
    parts.push(`overlays=${listed.join(",")}`);
  }
  return parts.join("&");
}
