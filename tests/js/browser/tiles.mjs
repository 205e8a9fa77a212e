// Map tiles the scenarios make themselves: a PNG tile, a vector tile, and
// a PMTiles (v3) archive of such tiles, each written as its specification
// lays it out.
import { deflateSync } from "node:zlib";

function crc32(bytes) {
  let crc = ~0;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return ~crc >>> 0;
}

function chunk(type, data) {
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** A 256 px PNG tile: a checkerboard of two RGB colours, plain to see in a screenshot. */
export function tilePng(light = [236, 232, 214], dark = [214, 226, 236]) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(256, 0);
  header.writeUInt32BE(256, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const rows = [];
  for (let y = 0; y < 256; y++) {
    const row = Buffer.alloc(1 + 256 * 3);
    for (let x = 0; x < 256; x++) row.set(((x >> 5) + (y >> 5)) % 2 === 0 ? light : dark, 1 + x * 3);
    rows.push(row);
  }
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", header),
    chunk("IDAT", deflateSync(Buffer.concat(rows))), chunk("IEND", Buffer.alloc(0))]);
}

/** The tile at `zoom` holding a point, as slippy maps number them. */
export function tileAt(zoom, lat, lon) {
  const n = 2 ** zoom;
  const rad = (lat * Math.PI) / 180;
  return {
    x: Math.floor(((lon + 180) / 360) * n),
    y: Math.floor(((1 - Math.log(Math.tan(rad) + 1 / Math.cos(rad)) / Math.PI) / 2) * n),
  };
}

/** The longitude and latitude of a tile's north-west corner. */
function corner(zoom, x, y) {
  const n = 2 ** zoom;
  return { lon: (x / n) * 360 - 180, lat: (Math.atan(Math.sinh(Math.PI * (1 - (2 * y) / n))) * 180) / Math.PI };
}

/** PMTiles' tile id: the tiles of lower zooms, then the Hilbert index of (x, y) at `zoom`. */
export function tileId(zoom, x, y) {
  let id = (4 ** zoom - 1) / 3;
  for (let s = 2 ** (zoom - 1); s >= 1; s /= 2) {
    const rx = (x & s) > 0 ? 1 : 0;
    const ry = (y & s) > 0 ? 1 : 0;
    id += s * s * ((3 * rx) ^ ry);
    if (ry === 0) {
      if (rx === 1) { x = s - 1 - (x % s); y = s - 1 - (y % s); }
      [x, y] = [y, x];
    }
  }
  return id;
}

function varints(numbers) {
  const bytes = [];
  for (let n of numbers) {
    while (n >= 0x80) { bytes.push((n % 0x80) | 0x80); n = Math.floor(n / 0x80); }
    bytes.push(n);
  }
  return Buffer.from(bytes);
}

// Protocol buffers, as much as a vector tile needs.
const key = (number, wire) => varints([number * 8 + wire]);
const number = (field, value) => Buffer.concat([key(field, 0), varints([value])]);
const bytes = (field, payload) => Buffer.concat([key(field, 2), varints([payload.length]), payload]);
const zigzag = (n) => (n < 0 ? -2 * n - 1 : 2 * n);

/** A Mapbox vector tile (v2): for each name, a layer of one polygon covering the whole tile. */
export function vectorTile(layerNames) {
  const extent = 4096;
  // MoveTo (0, 0), LineTo ×3 around the square, ClosePath: clockwise with y down.
  const square = varints([9, 0, 0, 26, zigzag(extent), 0, 0, zigzag(extent), zigzag(-extent), 0, 15]);
  const feature = Buffer.concat([number(3, 3), bytes(4, square)]); // type: polygon, geometry
  return Buffer.concat(layerNames.map((name) => bytes(3, Buffer.concat([
    number(15, 2), bytes(1, Buffer.from(name)), bytes(2, feature), number(5, extent)]))));
}

/** PMTiles' tile types. */
export const MVT = 1;
export const PNG = 2;

/**
 * A PMTiles v3 archive: `tile` (of `tileType`) at every zoom from `minZoom`
 * to `maxZoom`, in a block of (2 × `radius` + 1)² tiles around (`lat`,
 * `lon`), stored once, with `metadata` as its JSON. Nothing compressed.
 */
export function pmtilesArchive({ tile, tileType = PNG, lat, lon, minZoom, maxZoom, radius, metadata = {} }) {
  const ids = [];
  for (let zoom = minZoom; zoom <= maxZoom; zoom++) {
    const { x, y } = tileAt(zoom, lat, lon);
    for (let dx = -radius; dx <= radius; dx++) for (let dy = -radius; dy <= radius; dy++) ids.push(tileId(zoom, x + dx, y + dy));
  }
  ids.sort((a, b) => a - b);
  // Directory: count, id deltas, run lengths, lengths, offsets (+1: not
  // "right after the previous tile", since every entry points at the one tile).
  const directory = varints([ids.length, ...ids.map((id, i) => id - (ids[i - 1] ?? 0)),
    ...ids.map(() => 1), ...ids.map(() => tile.length), ...ids.map(() => 1)]);
  const meta = Buffer.from(JSON.stringify(metadata));
  const header = Buffer.alloc(127);
  header.write("PMTiles", 0, "ascii");
  header[7] = 3;
  const sections = [[127, directory.length], [127 + directory.length, meta.length],
    [127 + directory.length + meta.length, 0], [127 + directory.length + meta.length, tile.length]];
  sections.forEach(([offset, length], i) => {
    header.writeBigUInt64LE(BigInt(offset), 8 + i * 16);
    header.writeBigUInt64LE(BigInt(length), 16 + i * 16);
  });
  for (const [i, count] of [ids.length, ids.length, 1].entries()) header.writeBigUInt64LE(BigInt(count), 72 + i * 8);
  header.set([0, 1, 1, tileType, minZoom, maxZoom], 96); // not clustered, no compression
  const { x, y } = tileAt(maxZoom, lat, lon);
  const nw = corner(maxZoom, x - radius, y - radius);
  const se = corner(maxZoom, x + radius + 1, y + radius + 1);
  const e7 = (degrees) => Math.round(degrees * 1e7);
  header.writeInt32LE(e7(nw.lon), 102);
  header.writeInt32LE(e7(se.lat), 106);
  header.writeInt32LE(e7(se.lon), 110);
  header.writeInt32LE(e7(nw.lat), 114);
  header[118] = maxZoom;
  header.writeInt32LE(e7((nw.lon + se.lon) / 2), 119);
  header.writeInt32LE(e7((nw.lat + se.lat) / 2), 123);
  return Buffer.concat([header, directory, meta, tile]);
}
