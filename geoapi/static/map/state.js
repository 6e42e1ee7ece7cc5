// The shareable address of a view: #zoom/lat/lon, then &layers=a,b (when not all are shown),
// &lang=fr|nl|en and &bg=<background> (when one is shown).

/** What an address's hash asks for: {view: {zoom, lat, lon} | null, layers, lang, bg}. */
export function readState(hash) {
  const [view, ...pairs] = hash.replace(/^#/, "").split("&");
  const state = { view: null, layers: null, lang: null, bg: null };
  const numbers = view.split("/").slice(0, 3).map(Number);
  if (numbers.length === 3 && numbers.every(Number.isFinite)) {
    const [zoom, lat, lon] = numbers;
    if (zoom >= 0 && zoom <= 24 && Math.abs(lat) <= 85 && Math.abs(lon) <= 180) {
      state.view = { zoom, lat, lon };
    }
  }
  for (const pair of pairs) {
    const [name, value = ""] = pair.split("=").map(decodeURIComponent);
    if (name === "layers") state.layers = value.split(",").filter(Boolean);
    else if (name === "lang") state.lang = value;
    else if (name === "bg") state.bg = value;
  }
  return state;
}

/** The hash of the map's view, language, shown layers (null: all) and background (or null). */
export function writeState(map, lang, layers, background) {
  const centre = map.getCenter();
  const zoom = map.getZoom();
  // As many decimals as the zoom makes visible (MapLibre's own hash does the same).
  const digits = Math.ceil((zoom * Math.LN2 + Math.log(512 / 360 / 0.5)) / Math.LN10);
  const parts = [`#${Math.round(zoom * 100) / 100}/${centre.lat.toFixed(digits)}/${centre.lng.toFixed(digits)}`];
  if (layers) parts.push(`layers=${layers.map(encodeURIComponent).join(",")}`);
  parts.push(`lang=${lang}`);
  if (background) parts.push(`bg=${encodeURIComponent(background)}`);
  return parts.join("&");
}
