// Belgian Lambert 72 (EPSG:31370) for the coordinates shown and the planar measures, with
// proj4 (npm, loaded as a classic script before the modules). The definition is PostGIS'
// spatial_ref_sys row 31370, so the map and the API place a point at the same metre.

const proj4 = window.proj4;
proj4.defs(
  "EPSG:31370",
  "+proj=lcc +lat_1=51.16666723333333 +lat_2=49.8333339 +lat_0=90 +lon_0=4.367486666666666 " +
    "+x_0=150000.013 +y_0=5400088.438 +ellps=intl " +
    "+towgs84=-106.8686,52.2978,-103.7239,0.3366,-0.457,1.8422,-1.2747 +units=m +no_defs",
);
const transform = proj4("EPSG:4326", "EPSG:31370");

/** [easting, northing] in metres of a [longitude, latitude]. */
export function toLambert(lngLat) {
  return transform.forward([lngLat[0], lngLat[1]]);
}

/** [longitude, latitude] of an [easting, northing]. */
export function fromLambert(xy) {
  return transform.inverse([xy[0], xy[1]]);
}

/** The planar length (m) of a line of [lon, lat] points, measured in Lambert 72. */
export function planarLength(points) {
  const xy = points.map(toLambert);
  let length = 0;
  for (let i = 1; i < xy.length; i += 1) {
    length += Math.hypot(xy[i][0] - xy[i - 1][0], xy[i][1] - xy[i - 1][1]);
  }
  return length;
}

/** The planar area (m²) of the ring through these [lon, lat] points (the shoelace formula). */
export function planarArea(points) {
  const xy = points.map(toLambert);
  let twice = 0;
  for (let i = 0; i < xy.length; i += 1) {
    const [x1, y1] = xy[i];
    const [x2, y2] = xy[(i + 1) % xy.length];
    twice += x1 * y2 - x2 * y1;
  }
  return Math.abs(twice) / 2;
}

/** A circle of `radius` metres around a [lon, lat], round in Lambert 72 as the API measures. */
export function circle(centre, radius, steps = 72) {
  const [x, y] = toLambert(centre);
  const ring = [];
  for (let i = 0; i <= steps; i += 1) {
    const angle = (2 * Math.PI * i) / steps;
    ring.push(fromLambert([x + radius * Math.cos(angle), y + radius * Math.sin(angle)]));
  }
  return { type: "Polygon", coordinates: [ring] };
}
