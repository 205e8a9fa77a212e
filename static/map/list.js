// The tracker list: one row per tracker in name order, kept in place between
// updates (so its scroll position and focus survive live events), filtered by
// the text box; a row's button picks the tracker to zoom to and follow.

const $ = (id) => document.getElementById(id);
const rows = new Map(); // name -> <li>

export function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

function row(tracker, onPick) {
  const item = document.createElement("li");
  item.dataset.tracker = tracker.name;
  item.innerHTML = `<button type="button" class="pick"><span class="swatch"></span><span class="name"></span>` +
    `<span class="seen"></span><span class="where"></span></button>`;
  item.querySelector(".swatch").style.background = tracker.colour;
  item.querySelector(".name").textContent = tracker.name;
  item.querySelector("button").addEventListener("click", () => onPick(tracker.name));
  return item;
}

function matches(name) {
  const text = $("filter").value.trim().toLowerCase();
  return !text || name.toLowerCase().includes(text);
}

/** Brings the list up to date with `trackers` (a Map name -> tracker). */
export function renderList(trackers, selected, onPick) {
  const list = $("trackers");
  const names = [...trackers.keys()].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  if (names.length && list.querySelector(".empty")) list.replaceChildren();
  let previous = null;
  for (const name of names) {
    const tracker = trackers.get(name);
    let item = rows.get(name);
    if (!item) {
      item = row(tracker, onPick);
      rows.set(name, item);
    }
    const { lat, lon } = tracker.points[tracker.points.length - 1];
    const seen = item.querySelector(".seen");
    seen.dataset.at = tracker.seenAt;
    seen.textContent = ago(tracker.seenAt);
    item.querySelector(".where").textContent = `${lat.toFixed(5)}, ${lon.toFixed(5)}`;
    item.classList.toggle("selected", name === selected);
    item.hidden = !matches(name);
    // Only rows out of place move, so the list keeps its scroll position.
    const wanted = previous ? previous.nextSibling : list.firstChild;
    if (wanted !== item) list.insertBefore(item, wanted);
    previous = item;
  }
  $("tracker-count").textContent = trackers.size;
}

/** Re-applies the filter after the text box changed. */
export function applyFilter() {
  for (const [name, item] of rows) item.hidden = !matches(name);
}

/** Refreshes every "… ago". */
export function refreshAges() {
  for (const seen of document.querySelectorAll("#trackers .seen")) seen.textContent = ago(Number(seen.dataset.at));
}
