// What the collections say about themselves (GET /collections): titles per language and the
// template that names a feature (`featureLabel`, e.g. "{PW_NAME_FR} {ADRN}").

import { language } from "./i18n.js";

const FIELD = /\{([^{}]+)\}/g;

export class Collections {
  constructor(list) {
    this.list = list;
    this.byId = new Map(list.map((c) => [c.id, c]));
  }

  static async load(api) {
    const answer = await fetch(`${api}/collections?f=json`, { headers: { Accept: "application/json" } });
    if (!answer.ok) throw new Error(`/collections: HTTP ${answer.status}`);
    return new Collections((await answer.json()).collections);
  }

  /** The collection's title in the current language. */
  title(id) {
    const c = this.byId.get(id);
    if (!c) return id;
    return (c.titles && (c.titles[language()] || c.titles.en)) || c.title || id;
  }

  /** A feature's name in the current language, else its key. */
  featureName(id, feature) {
    const c = this.byId.get(id);
    const template = c && c.featureLabel && c.featureLabel[language()];
    const properties = feature.properties || {};
    if (template) {
      const name = template
        .replace(FIELD, (_, field) => (properties[field] == null ? "" : String(properties[field])))
        .replace(/\s+/g, " ")
        .trim();
      if (name) return name;
    }
    return String(feature.id ?? (c ? properties[c.keyField] : "") ?? "");
  }

  /** The single field a language's template reads, or null for a template of several. */
  labelField(id, lang) {
    const c = this.byId.get(id);
    const template = c && c.featureLabel && c.featureLabel[lang];
    const match = template && /^\{([^{}]+)\}$/.exec(template.trim());
    return match ? match[1] : null;
  }

  /** A MapLibre expression writing a language's label template (null: the layer has none). */
  labelExpression(id, lang) {
    const c = this.byId.get(id);
    const template = c && c.featureLabel && c.featureLabel[lang];
    if (!template) return null;
    const parts = [];
    let last = 0;
    for (const match of template.matchAll(FIELD)) {
      if (match.index > last) parts.push(template.slice(last, match.index));
      parts.push(["to-string", ["coalesce", ["get", match[1]], ""]]);
      last = match.index + match[0].length;
    }
    if (last < template.length) parts.push(template.slice(last));
    return parts.length === 1 ? parts[0] : ["concat", ...parts];
  }
}

/** A feature's own pages: HTML, JSON and its history (its changes since the epoch).
 *
 * The key is percent-encoded whole: URBIS' INSPIRE_ID keys are URIs, whose "/" the API takes
 * back as part of the one id.
 */
export function featureLinks(api, collection, key) {
  const layer = `${api}/collections/${encodeURIComponent(collection)}`;
  const history = `${layer}/changes?since=1970-01-01T00:00:00Z&key=${encodeURIComponent(key)}`;
  const item = `${layer}/items/${encodeURIComponent(key)}`;
  return { html: `${item}?f=html`, json: `${item}?f=json`, history };
}
