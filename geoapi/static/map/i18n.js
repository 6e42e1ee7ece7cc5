// The interface's words in French, Dutch and English, and which language the reader chose.
// The choice comes from the address (#...&lang=nl), else what was remembered, else the
// browser's languages; English is the fallback.

export const LANGUAGES = ["fr", "nl", "en"];
const STORE = "urbis-map-language";

const WORDS = {
  fr: {
    title: "Carte URBIS",
    language: "Langue",
    searchLabel: "Rechercher une adresse",
    searchPlaceholder: "p. ex. Rue de la Victoire 2, 1060 Saint-Gilles",
    noResult: "Aucun résultat pour « {q} ».",
    suggestions: "{n} suggestion(s) ; flèches pour choisir, Entrée pour aller.",
    found: "Trouvé : {label}",
    searching: "Recherche…",
    layers: "Couches",
    bilingual: "Étiquettes bilingues (FR/NL)",
    background: "Fond de plan",
    backgroundNone: "Aucun (nos couches seules)",
    backgroundFr: "Plan URBIS (FR)",
    backgroundNl: "Plan URBIS (NL)",
    backgroundGrey: "Plan URBIS (gris)",
    backgroundOne: "Plan URBIS",
    tools: "Outils",
    radiusTool: "Dans un rayon",
    radiusLayer: "Couche",
    radiusDistance: "Distance (m)",
    radiusPick: "Choisir un point sur la carte",
    radiusPicking: "Cliquez sur la carte pour choisir le centre.",
    radiusCount: "{n} objet(s) de « {layer} » à moins de {d} m.",
    radiusShown: "{n} affiché(s) ci-dessous.",
    radiusBadDistance: "La distance doit être comprise entre 1 et 10 000 m.",
    csv: "Télécharger la liste (CSV)",
    name: "Nom",
    distance: "Distance (m)",
    measureTool: "Mesurer",
    measureDistance: "Distance",
    measureArea: "Surface",
    measureClear: "Effacer",
    measureNote: "Plane, en Lambert belge 72 (EPSG:31370).",
    measureStart: "Cliquez des points sur la carte ; double-clic pour finir.",
    measureLength: "Longueur : {v}",
    measureSurface: "Surface : {v} (périmètre {p})",
    share: "Lien vers cette vue",
    whatIsHere: "Qu'y a-t-il ici ?",
    close: "Fermer",
    loading: "Chargement…",
    nothingHere: "Rien dans les couches à cet endroit.",
    nearestAddress: "Adresse la plus proche",
    atDistance: "à {d} m",
    page: "page",
    json: "JSON",
    history: "historique",
    coordinates: "Coordonnées",
    lambert: "Lambert belge 72 (EPSG:31370)",
    wgs84: "WGS84 (EPSG:4326)",
    error: "Le service n'a pas répondu : {e}",
    legend: "Légende",
    show: "Afficher « {layer} »",
    overlays: "Couches raster",
    opacity: "Opacité",
    opacityOf: "Opacité de « {layer} »",
    rampLegend: "Légende de « {layer} » : de {low} à {high}",
    hillshaded: "Avec estompage du relief.",
    rasterValue: "Valeur",
    rasterNoData: "pas de donnée",
    rasterOutside: "Hors de cette couche.",
  },
  nl: {
    title: "URBIS-kaart",
    language: "Taal",
    searchLabel: "Een adres zoeken",
    searchPlaceholder: "bv. Overwinningsstraat 2, 1060 Sint-Gillis",
    noResult: "Geen resultaat voor ‘{q}’.",
    suggestions: "{n} suggestie(s); pijltjes om te kiezen, Enter om te gaan.",
    found: "Gevonden: {label}",
    searching: "Zoeken…",
    layers: "Lagen",
    bilingual: "Tweetalige labels (FR/NL)",
    background: "Achtergrond",
    backgroundNone: "Geen (enkel onze lagen)",
    backgroundFr: "URBIS-kaart (FR)",
    backgroundNl: "URBIS-kaart (NL)",
    backgroundGrey: "URBIS-kaart (grijs)",
    backgroundOne: "URBIS-kaart",
    tools: "Gereedschap",
    radiusTool: "Binnen een afstand",
    radiusLayer: "Laag",
    radiusDistance: "Afstand (m)",
    radiusPick: "Kies een punt op de kaart",
    radiusPicking: "Klik op de kaart om het middelpunt te kiezen.",
    radiusCount: "{n} object(en) van ‘{layer}’ binnen {d} m.",
    radiusShown: "{n} hieronder getoond.",
    radiusBadDistance: "De afstand moet tussen 1 en 10.000 m liggen.",
    csv: "De lijst downloaden (CSV)",
    name: "Naam",
    distance: "Afstand (m)",
    measureTool: "Meten",
    measureDistance: "Afstand",
    measureArea: "Oppervlakte",
    measureClear: "Wissen",
    measureNote: "Vlak, in Belgische Lambert 72 (EPSG:31370).",
    measureStart: "Klik punten op de kaart; dubbelklik om te eindigen.",
    measureLength: "Lengte: {v}",
    measureSurface: "Oppervlakte: {v} (omtrek {p})",
    share: "Link naar deze weergave",
    whatIsHere: "Wat is hier?",
    close: "Sluiten",
    loading: "Laden…",
    nothingHere: "Niets in de lagen op deze plek.",
    nearestAddress: "Dichtstbijzijnde adres",
    atDistance: "op {d} m",
    page: "pagina",
    json: "JSON",
    history: "geschiedenis",
    coordinates: "Coördinaten",
    lambert: "Belgische Lambert 72 (EPSG:31370)",
    wgs84: "WGS84 (EPSG:4326)",
    error: "De dienst antwoordde niet: {e}",
    legend: "Legende",
    show: "‘{layer}’ tonen",
    overlays: "Rasterlagen",
    opacity: "Dekking",
    opacityOf: "Dekking van ‘{layer}’",
    rampLegend: "Legende van ‘{layer}’: van {low} tot {high}",
    hillshaded: "Met reliëfschaduw.",
    rasterValue: "Waarde",
    rasterNoData: "geen gegevens",
    rasterOutside: "Buiten deze laag.",
  },
  en: {
    title: "URBIS map",
    language: "Language",
    searchLabel: "Search an address",
    searchPlaceholder: "e.g. Rue de la Victoire 2, 1060 Saint-Gilles",
    noResult: "No result for “{q}”.",
    suggestions: "{n} suggestion(s); arrows to choose, Enter to go.",
    found: "Found: {label}",
    searching: "Searching…",
    layers: "Layers",
    bilingual: "Bilingual labels (FR/NL)",
    background: "Background",
    backgroundNone: "None (our layers alone)",
    backgroundFr: "URBIS map (FR)",
    backgroundNl: "URBIS map (NL)",
    backgroundGrey: "URBIS map (grey)",
    backgroundOne: "URBIS map",
    tools: "Tools",
    radiusTool: "Within a distance",
    radiusLayer: "Layer",
    radiusDistance: "Distance (m)",
    radiusPick: "Pick a point on the map",
    radiusPicking: "Click the map to choose the centre.",
    radiusCount: "{n} feature(s) of “{layer}” within {d} m.",
    radiusShown: "{n} listed below.",
    radiusBadDistance: "The distance must be between 1 and 10,000 m.",
    csv: "Download the list (CSV)",
    name: "Name",
    distance: "Distance (m)",
    measureTool: "Measure",
    measureDistance: "Distance",
    measureArea: "Area",
    measureClear: "Clear",
    measureNote: "Planar, in Belgian Lambert 72 (EPSG:31370).",
    measureStart: "Click points on the map; double-click to finish.",
    measureLength: "Length: {v}",
    measureSurface: "Area: {v} (perimeter {p})",
    share: "Link to this view",
    whatIsHere: "What is here",
    close: "Close",
    loading: "Loading…",
    nothingHere: "Nothing in the layers at this place.",
    nearestAddress: "Nearest address",
    atDistance: "at {d} m",
    page: "page",
    json: "JSON",
    history: "history",
    coordinates: "Coordinates",
    lambert: "Belgian Lambert 72 (EPSG:31370)",
    wgs84: "WGS84 (EPSG:4326)",
    error: "The service did not answer: {e}",
    legend: "Legend",
    show: "Show “{layer}”",
    overlays: "Raster overlays",
    opacity: "Opacity",
    opacityOf: "Opacity of “{layer}”",
    rampLegend: "Legend of “{layer}”: from {low} to {high}",
    hillshaded: "With hillshading.",
    rasterValue: "Value",
    rasterNoData: "no data",
    rasterOutside: "Outside this layer.",
  },
};

let current = "en";
const listeners = [];

/** Call `fn` after each switch of language (to write again what it wrote). */
export function onLanguage(fn) {
  listeners.push(fn);
}

/** Write `key`'s words into `element`, and again in each language switched to. */
export function say(element, key, values = {}) {
  element.dataset.say = key;
  element.dataset.sayValues = JSON.stringify(values);
  element.textContent = key ? t(key, values) : "";
}

/** The words of `key` in the current language, with {name} replaced from `values`. */
export function t(key, values = {}) {
  const text = WORDS[current][key] ?? WORDS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => {
    const value = values[name];
    if (typeof value === "number") return number(value, Number.isInteger(value) ? 0 : 1);
    return value == null ? "" : String(value);
  });
}

export function language() {
  return current;
}

/** The language to start in: asked for (the address), remembered, else the browser's. */
export function initialLanguage(asked) {
  if (LANGUAGES.includes(asked)) return asked;
  let stored = null;
  try {
    stored = localStorage.getItem(STORE);
  } catch {
    stored = null; // storage refused (private mode): the browser's language then
  }
  if (LANGUAGES.includes(stored)) return stored;
  for (const tag of navigator.languages || [navigator.language || "en"]) {
    const primary = tag.toLowerCase().split("-")[0];
    if (LANGUAGES.includes(primary)) return primary;
  }
  return "en";
}

/** Switch the interface: the words of every [data-t] element, <html lang>, remembered. */
export function setLanguage(lang) {
  current = LANGUAGES.includes(lang) ? lang : "en";
  document.documentElement.lang = current;
  try {
    localStorage.setItem(STORE, current);
  } catch {
    // not remembered: the choice still holds for this page
  }
  for (const element of document.querySelectorAll("[data-t]")) {
    element.textContent = t(element.dataset.t);
  }
  for (const element of document.querySelectorAll("[data-t-label]")) {
    element.setAttribute("aria-label", t(element.dataset.tLabel));
  }
  for (const element of document.querySelectorAll("[data-t-placeholder]")) {
    element.placeholder = t(element.dataset.tPlaceholder);
  }
  for (const element of document.querySelectorAll("[data-say]")) {
    const key = element.dataset.say;
    element.textContent = key ? t(key, JSON.parse(element.dataset.sayValues || "{}")) : "";
  }
  document.title = `${t("title")} - URBIS GeoService`;
  for (const fn of listeners) fn(current);
}

/** A number written the reader's way (1 234,5 / 1.234,5 / 1,234.5). */
export function number(value, digits = 0) {
  const locale = { fr: "fr-BE", nl: "nl-BE", en: "en-GB" }[current];
  return value.toLocaleString(locale, {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}
