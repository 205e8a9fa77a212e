// Zones (geofences) drawn under the trails and markers, each named on the
// map, and trackers entering and leaving them: the zone flashes, and a line
// goes on top of a short list that screen readers read out as it changes.
// Only the zones in and around the view are read (`GET /zones?bbox=`), again
// when the view moves; zones change rarely and the stream carries no word
// of it, so the page also reads them when its stream (re)connects and every
// half minute.

/** How long a zone stays highlighted after a crossing, in ms. */
const FLASH_MS = 2000;
/** Lines kept in the list, newest first. */
const MAX_LINES = 20;
/** Zones drawn at most: the first by name in the view. More would make the map crawl. */
const MAX_DRAWN = 2000;
/** How long the view rests before the zones in it are read, in ms. */
const SETTLE_MS = 250;

/** `lng` brought into -180..180, as the server takes longitudes. */
const wrap = (lng) => ((((lng + 180) % 360) + 360) % 360) - 180;

/**
 * `bounds` as the server's `bbox` (west,south,east,north): every longitude
 * when the view spans the world, and a west edge east of the east edge when
 * it straddles the antimeridian.
 */
function bbox(bounds) {
  const south = Math.max(-90, bounds.getSouth());
  const north = Math.min(90, bounds.getNorth());
  const [west, east] = bounds.getEast() - bounds.getWest() >= 360
    ? [-180, 180]
    : [wrap(bounds.getWest()), wrap(bounds.getEast())];
  return [west, south, east, north].map((v) => +v.toFixed(5)).join(",");
}

const time = (at) =>
  new Date(at).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });

/** `zone` (as `GET /zones` gives it) as a Leaflet layer in `pane`. */
function shape(zone, pane) {
  const style = { pane, className: "zone", weight: 2 };
  if (zone.circle) {
    const { latitude, longitude, radius } = zone.circle;
    return L.circle([latitude, longitude], { ...style, radius });
  }
  // GeoJSON rings, [longitude, latitude]: the exterior, then its holes.
  const rings = zone.polygon.coordinates.map((ring) => ring.map(([lon, lat]) => [lat, lon]));
  return L.polygon(rings, style);
}

/** Names `layer` (on the map) just above its northern edge, where the name hides none of it. */
function label(layer, name) {
  const bounds = layer.getBounds();
  layer.bindTooltip(name, { permanent: true, direction: "top", className: "zone-label", pane: "zone-labels" });
  layer.openTooltip([bounds.getNorth(), bounds.getCenter().lng]);
}

export class Zones {
  /** Draws on `map`; the crossings go into the list `list`, inside `section` (hidden while there is nothing to show). */
  constructor(map, section, list) {
    map.createPane("zones").style.zIndex = 350; // over the basemap, under the trails (400)
    map.createPane("zone-labels").style.zIndex = 590; // under the markers (600) and their labels
    this.layer = L.layerGroup().addTo(map);
    this.section = section;
    this.list = list;
    this.map = map;
    this.drawn = new Map(); // name -> { layer, key }
    this.more = false; // more zones in the view than drawn
    this.reading = null;
    this.again = false; // the view moved during a read: read once more after it
    this.flashes = new Map(); // name -> timer
    let settling = null;
    map.on("moveend", () => {
      clearTimeout(settling);
      settling = setTimeout(() => this.refresh().catch((err) => console.error("zones:", err)), SETTLE_MS);
    });
  }

  /** The view and half as much again around it: what is read, and what a crossing must be in to be read for. */
  around() {
    return this.map.getBounds().pad(0.5);
  }

  /**
   * Reads the zones around the view and brings the map up to date; one
   * read at a time, and one more after it when asked for meanwhile (the
   * view may have moved).
   */
  refresh() {
    if (this.reading) {
      this.again = true;
      return this.reading;
    }
    this.reading = this.read().finally(() => {
      this.reading = null;
      if (this.again) {
        this.again = false;
        this.refresh().catch((err) => console.error("zones:", err));
      }
    });
    return this.reading;
  }

  async read() {
    const response = await fetch(`/zones?bbox=${bbox(this.around())}&limit=${MAX_DRAWN}`);
    if (!response.ok) throw new Error(`zones: HTTP ${response.status}`);
    this.more = response.headers.has("link");
    this.draw(await response.json());
  }

  draw(zones) {
    const wanted = new Map(zones.map((zone) => [zone.name, zone]));
    for (const [name, { layer }] of this.drawn) {
      if (!wanted.has(name)) this.remove(name, layer);
    }
    for (const [name, zone] of wanted) {
      const key = JSON.stringify(zone.circle ?? zone.polygon);
      const old = this.drawn.get(name);
      if (old?.key === key) continue;
      if (old) this.remove(name, old.layer);
      const layer = shape(zone, "zones").addTo(this.layer);
      label(layer, name);
      layer.getElement().dataset.zone = name;
      this.drawn.set(name, { layer, key });
    }
    const count = this.section.querySelector(".count");
    count.textContent = this.more ? `${zones.length}+` : String(zones.length);
    count.title = this.more ? `the first ${zones.length} by name in view` : "in view";
    this.section.hidden = zones.length === 0 && this.list.children.length === 0;
  }

  /** The bounds of every zone drawn, or null when there is none. */
  bounds() {
    if (this.drawn.size === 0) return null;
    const bounds = L.latLngBounds([]);
    for (const { layer } of this.drawn.values()) bounds.extend(layer.getBounds());
    return bounds;
  }

  remove(name, layer) {
    this.layer.removeLayer(layer);
    this.drawn.delete(name);
  }

  /** A zone event (`enter` or `leave`) from the stream: flash the zone, say it in the list. */
  crossed(event) {
    const entered = event.type === "enter";
    const line = document.createElement("li");
    line.dataset.type = event.type;
    line.dataset.zone = event.zone;
    line.dataset.tracker = event.tracker;
    const when = Object.assign(document.createElement("time"), { dateTime: event.at, textContent: time(event.at) });
    line.append(`${event.tracker} ${entered ? "entered" : "left"} ${event.zone} · `, when);
    this.add(line);
    if (this.drawn.has(event.zone)) this.flash(event.zone, event.type);
    // In view yet not drawn: put since the last read.
    else if (!this.more && this.around().contains([event.position.latitude, event.position.longitude])) this.readFor(event);
  }

  async readFor(event) {
    await this.refresh().catch((err) => console.error("zones:", err));
    if (this.drawn.has(event.zone)) this.flash(event.zone, event.type);
  }

  /** A gap in the zone events: the list says lines may be missing rather than skip them silently. */
  missed(gap) {
    // A page that never had a zone to show has no zone events to miss.
    if (this.drawn.size === 0 && this.list.children.length === 0) return;
    const line = document.createElement("li");
    line.dataset.type = "gap";
    line.textContent = gap.reason === "cursor-too-old"
      ? "The server no longer has every zone event since the last one shown: some may be missing"
      : "This page fell behind and missed some zone events";
    this.add(line);
  }

  add(line) {
    this.list.prepend(line);
    while (this.list.children.length > MAX_LINES) this.list.lastElementChild.remove();
    this.section.hidden = false;
  }

  flash(name, type) {
    const path = this.drawn.get(name).layer.getElement();
    clearTimeout(this.flashes.get(name));
    path.dataset.flash = type;
    this.flashes.set(name, setTimeout(() => {
      delete path.dataset.flash;
      this.flashes.delete(name);
    }, FLASH_MS));
  }
}
