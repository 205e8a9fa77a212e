// Replay: the picked tracker's fixes between two times, played back on the
// map as a moving dot that draws its trail as it goes, in a few seconds
// whatever the real duration.

const $ = (id) => document.getElementById(id);

/** A time in ms as a datetime-local value, in the viewer's time zone. */
const toLocalInput = (ms) => new Date(ms - new Date(ms).getTimezoneOffset() * 60_000).toISOString().slice(0, 19);
const fromLocalInput = (value) => (value ? new Date(value).getTime() : NaN);

const plural = (n, what) => `${n} ${what}${n === 1 ? "" : "s"}`;

export class Replay {
  constructor(map) {
    this.map = map;
    this.tracker = null;
    this.layer = L.layerGroup().addTo(map);
    this.frame = 0;
    // Until the viewer sets an end, a replay runs to the latest position,
    // including those that arrived after the tracker was picked.
    this.toLatest = true;
    $("replay-to").addEventListener("input", () => { this.toLatest = false; });
    $("replay-play").addEventListener("click", () => this.play());
  }

  /** Makes `tracker` the one to replay, over its whole trail by default. */
  select(tracker) {
    if (this.tracker === tracker) return;
    this.stop();
    this.tracker = tracker;
    $("replay-tracker").textContent = `· ${tracker.name}`;
    $("replay-play").disabled = false;
    const first = tracker.points[0].at;
    const last = tracker.points[tracker.points.length - 1].at;
    $("replay-from").value = toLocalInput(Math.floor(first / 1000) * 1000);
    this.showEnd(last);
    this.toLatest = true;
    $("replay-status").textContent = plural(tracker.points.length, "position");
  }

  showEnd(ms) {
    $("replay-to").value = toLocalInput(Math.ceil((ms + 1) / 1000) * 1000);
  }

  stop() {
    cancelAnimationFrame(this.frame);
    this.layer.clearLayers();
  }

  play() {
    if (!this.tracker) return;
    this.stop();
    const from = fromLocalInput($("replay-from").value);
    if (this.toLatest) this.showEnd(this.tracker.points[this.tracker.points.length - 1].at);
    const to = this.toLatest ? Infinity : fromLocalInput($("replay-to").value);
    const points = this.tracker.points.filter((p) => !(p.at < from) && !(p.at > to));
    if (points.length === 0) {
      $("replay-status").textContent = "no positions in that range";
      return;
    }
    const path = points.map((p) => [p.lat, p.lon]);
    this.map.fitBounds(L.latLngBounds(path), { padding: [40, 40], maxZoom: 16 });
    const drawn = L.polyline([], { className: "replay-trail", color: "#f472b6", weight: 4 }).addTo(this.layer);
    const dot = L.circleMarker(path[0], { className: "replay-dot", radius: 7, color: "#fff", fillColor: "#f472b6", fillOpacity: 1 })
      .addTo(this.layer);
    const duration = Math.min(15_000, Math.max(2_000, points.length * 250));
    const start = performance.now();
    const step = (now) => {
      const progress = Math.min(1, Math.max(0, (now - start) / duration));
      const upto = Math.min(points.length - 1, Math.floor(progress * (points.length - 1) + 1e-9));
      drawn.setLatLngs(path.slice(0, upto + 1));
      dot.setLatLng(path[upto]);
      const at = new Date(points[upto].at).toLocaleTimeString();
      if (progress < 1) {
        $("replay-status").textContent = `playing ${upto + 1}/${points.length} · ${at}`;
        this.frame = requestAnimationFrame(step);
      } else {
        $("replay-status").textContent = `replayed ${plural(points.length, "position")} · until ${at}`;
      }
    };
    this.frame = requestAnimationFrame(step);
  }
}
