// A tracker's trail: its fixes in order, broken where two consecutive fixes
// are too far apart to have been travelled between them (a tracker switched
// off and on elsewhere, a bad fix), so the map draws no streak across the
// world. Positions without a tracker never form a trail.

/** Longest jump drawn whatever the time between the fixes, in km. */
const ALWAYS_JOINED_KM = 25;
/** Fastest plausible travel, in km/h; beyond it a longer jump breaks the trail. */
const MAX_SPEED_KMH = 200;

const toRad = (deg) => (deg * Math.PI) / 180;

/** Great-circle distance between two fixes, in km. */
export function distanceKm(a, b) {
  const dLat = toRad(b.lat - a.lat);
  const dLon = toRad(b.lon - a.lon);
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(toRad(a.lat)) * Math.cos(toRad(b.lat)) * Math.sin(dLon / 2) ** 2;
  return 2 * 6371 * Math.asin(Math.min(1, Math.sqrt(h)));
}

/** Whether the trail should break between fixes `a` and `b` ({lat, lon, at} with `at` in ms). */
export function isJump(a, b) {
  const km = distanceKm(a, b);
  if (km <= ALWAYS_JOINED_KM) return false;
  const hours = (b.at - a.at) / 3_600_000;
  return hours <= 0 || km / hours > MAX_SPEED_KMH;
}

/** The fixes split into the pieces a trail draws: [[[lat, lon], …], …]. */
export function segments(points) {
  const pieces = [];
  let piece = [];
  for (let i = 0; i < points.length; i++) {
    if (i > 0 && isJump(points[i - 1], points[i])) {
      pieces.push(piece);
      piece = [];
    }
    piece.push([points[i].lat, points[i].lon]);
  }
  if (piece.length) pieces.push(piece);
  return pieces;
}

/** Draws (or redraws) `tracker.trail` on `layer` from `tracker.points`. */
export function drawTrail(layer, tracker) {
  const pieces = segments(tracker.points).filter((piece) => piece.length > 1);
  if (!tracker.trail) {
    tracker.trail = L.polyline([], { className: "trail", color: tracker.colour, weight: 3, opacity: 0.75 });
    tracker.trail.addTo(layer);
  }
  tracker.trail.setLatLngs(pieces);
  const path = tracker.trail.getElement();
  if (path) {
    path.dataset.tracker = tracker.name;
    path.dataset.points = String(tracker.points.length);
    path.dataset.segments = String(pieces.length);
  }
}
