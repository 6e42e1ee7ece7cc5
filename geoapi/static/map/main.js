// The planners' map: starts MapLibre on the service's default style and wires the parts
// (search, what is here, layers and legend, raster backgrounds and overlays, radius and
// measure tools, language, address).

import {
  AttributionControl,
  Map as MapLibreMap,
  NavigationControl,
  ScaleControl,
} from "../maplibre/maplibre-gl.mjs";
import { loadCoverages, Overlays } from "./coverages.js";
import { initialLanguage, language, onLanguage, setLanguage } from "./i18n.js";
import { LayerList } from "./layers.js";
import { Marks } from "./marks.js";
import { MeasureTool } from "./measure.js";
import { Collections } from "./names.js";
import { RadiusTool } from "./radius.js";
import { Search } from "./search.js";
import { readState, writeState } from "./state.js";
import { WhatIsHere } from "./whatishere.js";

const settings = JSON.parse(document.getElementById("map-settings").textContent);
const asked = readState(location.hash);
setLanguage(initialLanguage(asked.lang));

async function start() {
  const [collections, style, coverages] = await Promise.all([
    Collections.load(settings.api),
    fetch(settings.style).then((answer) => {
      if (!answer.ok) throw new Error(`style: HTTP ${answer.status}`);
      return answer.json();
    }),
    loadCoverages(settings.api),
  ]);
  const camera = asked.view || {
    zoom: style.zoom ?? settings.home.zoom,
    lat: style.center ? style.center[1] : settings.home.lat,
    lon: style.center ? style.center[0] : settings.home.lon,
  };
  const map = new MapLibreMap({
    container: "map",
    style,
    center: [camera.lon, camera.lat],
    zoom: camera.zoom,
    attributionControl: false,
    keyboard: true,
  });
  window.urbisMap = map;
  map.addControl(new NavigationControl(), "top-right");
  map.addControl(new ScaleControl({ unit: "metric" }), "bottom-right");
  map.addControl(new AttributionControl({ compact: false }), "bottom-right");
  map.getCanvas().setAttribute("aria-label", "Map");
  await new Promise((resolve) => map.once("load", resolve));

  const marks = new Marks(map);
  const layers = new LayerList(map, style, collections, settings, asked, coverages);
  const app = {
    map,
    settings,
    collections,
    coverages,
    marks,
    layers,
    mode: null, // the tool that takes the next clicks, or null: clicks ask what is here
  };
  app.overlays = new Overlays(app, coverages, asked.overlays);
  /** The raster layers drawn now: the imagery background (if one), then the overlays. */
  app.shownCoverages = () => {
    const background = layers.background.coverage();
    return [...(background ? [background] : []), ...app.overlays.shown()];
  };
  app.share = () => {
    const hash = writeState(
      map,
      language(),
      layers.visibleState(),
      layers.backgroundState(),
      app.overlays.state(),
    );
    history.replaceState(null, "", hash);
    document.getElementById("share-link").href = location.href;
  };
  app.search = new Search(app);
  app.whatIsHere = new WhatIsHere(app);
  app.radius = new RadiusTool(app);
  app.measure = new MeasureTool(app);
  window.urbisApp = app;

  map.on("click", (event) => {
    const lngLat = [event.lngLat.lng, event.lngLat.lat];
    if (app.mode) app.mode.click(lngLat);
    else app.whatIsHere.open(lngLat);
  });
  // Keyboard users ask what is at the map's centre with Enter (the arrows pan the map).
  map.getCanvas().addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !app.mode) {
      const centre = map.getCenter();
      app.whatIsHere.open([centre.lng, centre.lat]);
    }
  });
  map.on("moveend", app.share);
  layers.onChange(app.share);
  app.overlays.onChange(app.share);
  const chooser = document.getElementById("language");
  chooser.value = language();
  chooser.addEventListener("change", () => setLanguage(chooser.value));
  onLanguage((lang) => {
    chooser.value = lang;
    app.share();
  });
  window.addEventListener("hashchange", () => {
    const state = readState(location.hash);
    if (state.view) map.jumpTo({ center: [state.view.lon, state.view.lat], zoom: state.view.zoom });
    if (state.lang && state.lang !== language()) setLanguage(state.lang);
  });
  app.share();
  document.body.dataset.ready = "true";
}

start().catch((error) => {
  const status = document.getElementById("search-status");
  status.textContent = `The map could not start: ${error.message}`;
  console.error(error);
});
