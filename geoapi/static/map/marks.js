// What the map draws over the layers: the features found at a click, the radius circle and
// the measured line or area, in two GeoJSON sources of our own on top of the style.

const EMPTY = { type: "FeatureCollection", features: [] };
const ACCENT = "#c2185b"; // a magenta none of the style's colours uses
const TOOL = "#1a237e";

export class Marks {
  constructor(map) {
    this.map = map;
    for (const [source, colour] of [
      ["urbis-highlight", ACCENT],
      ["urbis-tool", TOOL],
    ]) {
      map.addSource(source, { type: "geojson", data: EMPTY });
      map.addLayer({
        id: `${source}-fill`,
        type: "fill",
        source,
        filter: ["in", ["geometry-type"], ["literal", ["Polygon", "MultiPolygon"]]],
        paint: { "fill-color": colour, "fill-opacity": 0.12 },
      });
      map.addLayer({
        id: `${source}-line`,
        type: "line",
        source,
        filter: ["!", ["in", ["geometry-type"], ["literal", ["Point", "MultiPoint"]]]],
        paint: { "line-color": colour, "line-width": 2.5 },
      });
      map.addLayer({
        id: `${source}-point`,
        type: "circle",
        source,
        filter: ["in", ["geometry-type"], ["literal", ["Point", "MultiPoint"]]],
        paint: {
          "circle-color": "#ffffff",
          "circle-stroke-color": colour,
          "circle-stroke-width": 3,
          "circle-radius": 6,
        },
      });
    }
  }

  /** Draw these GeoJSON features as the highlight (what is here). */
  highlight(features) {
    this.map.getSource("urbis-highlight").setData({ type: "FeatureCollection", features });
  }

  /** Draw these GeoJSON geometries as the current tool's marks. */
  tool(geometries) {
    const features = geometries.map((geometry) => ({ type: "Feature", properties: {}, geometry }));
    this.map.getSource("urbis-tool").setData({ type: "FeatureCollection", features });
  }
}
