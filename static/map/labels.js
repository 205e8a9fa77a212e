// Label placement: each visible tracker's name goes beside its dot, on the
// first side where it covers no other dot and no label already placed, so
// trackers close together stay readable. Markers closer still are grouped by
// the cluster layer, which splits them as the map zooms in.

const GAP = 4;      // px between a dot's edge and its label
const DOT = 7;      // px, a dot's radius plus its outline

/** Candidate offsets of a label's top-left corner from its dot's centre. */
function candidates(w, h) {
  const near = DOT + GAP;
  const sides = [];
  for (const reach of [near, near + 14, near + 30]) {
    sides.push(
      [reach, -h / 2],               // right
      [-reach - w, -h / 2],          // left
      [-w / 2, -reach - h],          // above
      [-w / 2, reach],               // below
      [reach - 4, -reach - h + 4],   // upper right
      [reach - 4, reach - 4],        // lower right
      [-reach - w + 4, -reach - h + 4], // upper left
      [-reach - w + 4, reach - 4],   // lower left
    );
  }
  return sides;
}

const overlap = (a, b) =>
  Math.max(0, Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x)) *
  Math.max(0, Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y));

/**
 * Places the labels of `trackers` (each with `marker` and `label`) shown on
 * `map`, `first` (the followed tracker) first. Positions are set as
 * `left`/`top` relative to the marker's icon, whose centre is its dot.
 */
export function placeLabels(map, trackers, first) {
  const shown = [];
  for (const tracker of trackers) {
    const icon = tracker.marker.getElement();
    if (!icon || !icon.isConnected || !tracker.label) continue;
    const point = map.latLngToContainerPoint(tracker.marker.getLatLng());
    shown.push({ tracker, point, icon });
  }
  shown.sort((a, b) => (b.tracker.name === first) - (a.tracker.name === first) || a.point.y - b.point.y);
  const taken = shown.map(({ point }) => ({ x: point.x - DOT, y: point.y - DOT, w: 2 * DOT, h: 2 * DOT }));
  for (const { tracker, point, icon } of shown) {
    const label = tracker.label;
    const w = label.offsetWidth;
    const h = label.offsetHeight;
    let best = null;
    for (const [dx, dy] of candidates(w, h)) {
      const box = { x: point.x + dx, y: point.y + dy, w, h };
      const cost = taken.reduce((sum, other) => sum + overlap(box, other), 0);
      if (!best || cost < best.cost) best = { box, dx, dy, cost };
      if (cost === 0) break;
    }
    taken.push(best.box);
    const half = icon.offsetWidth / 2;
    label.style.left = `${Math.round(best.dx + half)}px`;
    label.style.top = `${Math.round(best.dy + half)}px`;
  }
}
