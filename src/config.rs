//! Configuration: one struct, read once at start-up from the command line or
//! `LONGLAT_…` environment variables, then passed down as values.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// longlat: a real-time location push server.
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "LONGLAT_LISTEN", default_value = "0.0.0.0:8844")]
    pub listen: SocketAddr,

    /// Serve HTTPS with this certificate chain (PEM, the server's first),
    /// with `--tls-key`: HTTP/2 and HTTP/1.1 by ALPN. Both files are read
    /// again when they change (a renewal needs no restart); a new pair
    /// that does not load is logged and the one in use kept. Unset: plain
    /// HTTP (HTTP/1.1, and HTTP/2 with prior knowledge).
    #[arg(long, env = "LONGLAT_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of `--tls-cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "LONGLAT_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Broker: `durable` (embedded, one process, events kept on disk in
    /// `--data-dir`), `memory` (embedded, nothing kept across restarts) or
    /// `redis://HOST:PORT/DB` (Redis Streams, shared by several instances).
    #[arg(long, env = "LONGLAT_BROKER", default_value = "durable")]
    pub broker: String,

    /// Directory of the durable broker's log (created if missing; one
    /// process at a time).
    #[arg(long, env = "LONGLAT_DATA_DIR", default_value = "./longlat-data")]
    pub data_dir: PathBuf,

    /// When the durable broker syncs to disk: `always` (before a publish is
    /// answered: a 201 is on disk), `<N>ms` (at most N ms after the answer:
    /// a power loss or kernel crash can lose that much) or `none` (when the
    /// operating system chooses: it can lose about 30 s).
    #[arg(long, env = "LONGLAT_SYNC", default_value = "always")]
    pub sync: crate::broker::durable::SyncPolicy,

    /// Redis stream key holding the events (with a Redis broker).
    #[arg(long, env = "LONGLAT_REDIS_STREAM", default_value = "longlat:events")]
    pub redis_stream: String,

    /// How many recent events the broker keeps for history and resume.
    #[arg(long, env = "LONGLAT_HISTORY_SIZE", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub history_size: u64,

    /// How far past a zone's border, in metres, a tracker inside it must
    /// be to leave it: a fix jittering on the border enters once and does
    /// not flap. A tracker enters with its first position inside.
    #[arg(long, env = "LONGLAT_ZONE_HYSTERESIS", default_value_t = crate::geofence::DEFAULT_HYSTERESIS,
          value_parser = hysteresis)]
    pub zone_hysteresis: f64,

    /// Most zones kept; putting one more is refused.
    #[arg(long, env = "LONGLAT_MAX_ZONES", default_value_t = 100_000)]
    pub max_zones: usize,

    /// Seconds after which an event leaves history even when there is room
    /// (0: kept until newer events push it out).
    #[arg(long, env = "LONGLAT_HISTORY_MAX_AGE_SECS", default_value_t = 0)]
    pub history_max_age_secs: u64,

    /// Seconds between keep-alive comments on idle Server-Sent Events streams.
    #[arg(long, env = "LONGLAT_SSE_KEEPALIVE_SECS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub sse_keepalive_secs: u64,

    /// Reconnection delay suggested to Server-Sent Events clients (`retry:`), in milliseconds.
    #[arg(long, env = "LONGLAT_SSE_RETRY_MS", default_value_t = 2_000)]
    pub sse_retry_ms: u64,

    /// Origins allowed to use the API from a browser (WebSockets, SSE,
    /// publishing), comma-separated, scheme included, e.g.
    /// `https://map.example.com,null` (`null`: pages opened from disk).
    /// The server's own pages opened by address (`http://localhost:PORT`,
    /// `http://<IP>:PORT`) are allowed too; under a host name, list it.
    /// Empty: every origin.
    #[arg(long, env = "LONGLAT_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Origins that may read HTTP API answers cross-site (CORS),
    /// comma-separated; `*` for any. Empty: no CORS headers.
    #[arg(long, env = "LONGLAT_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Bearer tokens that may publish and subscribe, comma-separated
    /// (prefer `--tokens-file` or the environment: command lines are visible
    /// to other users).
    #[arg(
        long,
        env = "LONGLAT_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub tokens: Vec<Secret>,

    /// File of bearer tokens, one per line: `TOKEN [publish] [subscribe]
    /// [trackers=a,b] [read=pattern,…] [name=label]` (both rights when none
    /// is named; `trackers=`: the only trackers it may publish for;
    /// `read=`: the only ones it may read, each an exact name, a prefix
    /// ending in `*`, `*` for all or `-` for positions without a tracker;
    /// `#` starts a comment).
    #[arg(long, env = "LONGLAT_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,

    /// Shared secret for JWTs signed with HS256 (HS384, HS512).
    #[arg(long, env = "LONGLAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,

    /// PEM public key for JWTs signed with RS256 (RSA key) or ES256 (P-256 key).
    #[arg(long, env = "LONGLAT_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,

    /// Required `aud` claim of JWTs.
    #[arg(long, env = "LONGLAT_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Required `iss` claim of JWTs.
    #[arg(long, env = "LONGLAT_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// What needs a credential once tokens or a JWT key are configured:
    /// `publish`, `subscribe` (the streams, history and GraphQL reads), or
    /// both, comma-separated.
    #[arg(long, env = "LONGLAT_PROTECT", value_delimiter = ',', default_value = "publish",
          value_parser = ["publish", "subscribe"])]
    pub protect: Vec<String>,

    /// Publishes per second allowed to one caller (per token subject, else
    /// per client address); over it: 429 with Retry-After. 0: no limit.
    #[arg(long, env = "LONGLAT_PUBLISH_RATE", default_value_t = 0)]
    pub publish_rate: u32,

    /// Publishes one caller may send at once above `--publish-rate`
    /// (0: as many as the rate).
    #[arg(long, env = "LONGLAT_PUBLISH_BURST", default_value_t = 0)]
    pub publish_burst: u32,

    /// Refused credentials (bearer header, `access_token`, GraphQL
    /// `connection_init`) allowed per client address per minute; over it
    /// every credential from that address gets 429 (close 4429), unchecked,
    /// until the minute allows one more. 0: no limit.
    #[arg(long, env = "LONGLAT_MAX_FAILED_AUTH_PER_MINUTE", default_value_t = 20)]
    pub max_failed_auth_per_minute: u32,

    /// Most open streams (WebSocket, SSE, GraphQL WebSocket) in total; over
    /// it SSE gets 503 and WebSockets close with 1013. 0: no limit but the
    /// open-file limit (raised to its hard limit at start), less 64
    /// descriptors kept for requests, which caps it in any case.
    #[arg(long, env = "LONGLAT_MAX_CONNECTIONS", default_value_t = 0)]
    pub max_connections: usize,

    /// Most open streams per client address. 0: no limit.
    #[arg(long, env = "LONGLAT_MAX_CONNECTIONS_PER_IP", default_value_t = 0)]
    pub max_connections_per_ip: usize,

    /// Header carrying the client's address, set by a trusted reverse proxy
    /// (e.g. `X-Forwarded-For` or `X-Real-IP`; its last address is used).
    /// Unset: the TCP peer's address.
    #[arg(long, env = "LONGLAT_CLIENT_IP_HEADER")]
    pub client_ip_header: Option<String>,

    /// Seconds between pings on idle WebSockets; a peer that has not
    /// answered by the next ping is closed (4000). 0: no pings.
    #[arg(long, env = "LONGLAT_PING_INTERVAL_SECS", default_value_t = 30)]
    pub ping_interval_secs: u64,

    /// Seconds a client has to send a request's headers, and again its body
    /// (slow clients are disconnected); also the longest an idle keep-alive
    /// connection stays open.
    #[arg(long, env = "LONGLAT_HEADER_READ_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub header_read_timeout_secs: u64,

    /// Largest WebSocket message a client may send, in bytes.
    #[arg(long, env = "LONGLAT_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024)]
    pub max_message_bytes: usize,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "LONGLAT_MAX_BODY_BYTES", default_value_t = 16 * 1024)]
    pub max_body_bytes: usize,

    /// Largest accepted body of a batch (`POST /longlat` with a JSON array
    /// or NDJSON), in bytes; a batch holds at most 1000 positions.
    #[arg(long, env = "LONGLAT_MAX_BATCH_BYTES", default_value_t = 1024 * 1024)]
    pub max_batch_bytes: usize,

    /// Seconds a subscriber may take to accept one frame before it is
    /// disconnected as stalled.
    #[arg(long, env = "LONGLAT_SEND_TIMEOUT_SECS", default_value_t = 10)]
    pub send_timeout_secs: u64,

    /// Kernel send buffer per connection, in bytes (0: the kernel's own
    /// autotuning). A smaller buffer bounds the kernel memory a stalled
    /// subscriber can hold and makes it fall behind, and be told, sooner.
    #[arg(long, env = "LONGLAT_SOCKET_SEND_BUFFER", default_value_t = 0)]
    pub socket_send_buffer: usize,

    /// Milliseconds a GraphQL WebSocket client has to send `connection_init`
    /// before it is closed with 4408; also how long a GraphQL over SSE
    /// reservation (`PUT /graphql`) waits for its event stream.
    #[arg(long, env = "LONGLAT_GRAPHQL_INIT_TIMEOUT_MS", default_value_t = 3000)]
    pub graphql_init_timeout_ms: u64,

    /// Seconds to let requests and streams finish after Ctrl-C or SIGTERM.
    #[arg(long, env = "LONGLAT_SHUTDOWN_TIMEOUT_SECS", default_value_t = 5)]
    pub shutdown_timeout_secs: u64,

    /// Worker threads serving connections (0: one per core). Where the
    /// server shares a small machine with busy local clients, fewer workers
    /// than cores leave them a core and avoid waking threads across cores.
    #[arg(long, env = "LONGLAT_WORKERS", default_value_t = 0)]
    pub workers: usize,

    /// Whether the live fan-out to `/ws`, `/events` and shared GraphQL
    /// subscriptions sends through io_uring, one submission for a batch of
    /// sockets (`on`, where the kernel allows it), or with one `send` per
    /// socket (`off`).
    #[arg(long, env = "LONGLAT_IO_URING", default_value = "on",
          value_parser = ["on", "off"])]
    pub io_uring: String,

    /// Raster tiles for the map page, for viewers who are online: a URL
    /// template as Leaflet takes it, e.g. `https://tile.example.org/{z}/{x}/{y}.png`
    /// (`{s}`, `{r}` also work). Unset: the map draws only its built-in
    /// outline and requests nothing from anywhere but this server.
    #[arg(long, env = "LONGLAT_MAP_TILES", value_parser = parse_tile_template)]
    pub map_tiles: Option<String>,

    /// Credit shown on the map under `--map-tiles` (plain text, e.g.
    /// `© OpenStreetMap contributors`), as the tile provider requires.
    #[arg(long, env = "LONGLAT_MAP_TILES_ATTRIBUTION", requires = "map_tiles")]
    pub map_tiles_attribution: Option<String>,

    /// A detailed basemap for the map page, served by longlat itself so it
    /// works offline: one PMTiles archive (v3), raster or vector tiles,
    /// e.g. a city cut from the Protomaps planet build with
    /// `pmtiles extract`. Drawn over the built-in world outline where it
    /// has tiles. Unset: the outline only (and `--map-tiles`, if set).
    #[arg(long, env = "LONGLAT_MAP_BASEMAP", value_parser = parse_basemap)]
    pub map_basemap: Option<PathBuf>,

    /// Log format: `text` for people, `json` for log collectors.
    #[arg(long, env = "LONGLAT_LOG_FORMAT", default_value = "text",
          value_parser = ["text", "json"])]
    pub log_format: String,
}

impl Config {
    /// The defaults, as if started with no options and no environment.
    pub fn defaults() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8844)),
            tls_cert: None,
            tls_key: None,
            broker: "durable".into(),
            data_dir: PathBuf::from("./longlat-data"),
            sync: crate::broker::durable::SyncPolicy::Always,
            redis_stream: "longlat:events".into(),
            history_size: 10_000,
            zone_hysteresis: crate::geofence::DEFAULT_HYSTERESIS,
            max_zones: 100_000,
            history_max_age_secs: 0,
            sse_keepalive_secs: 15,
            sse_retry_ms: 2_000,
            allowed_origins: Vec::new(),
            cors_origins: Vec::new(),
            tokens: Vec::new(),
            tokens_file: None,
            jwt_secret: None,
            jwt_public_key: None,
            jwt_audience: None,
            jwt_issuer: None,
            protect: vec!["publish".into()],
            publish_rate: 0,
            publish_burst: 0,
            max_failed_auth_per_minute: 20,
            max_connections: 0,
            max_connections_per_ip: 0,
            client_ip_header: None,
            ping_interval_secs: 30,
            header_read_timeout_secs: 10,
            max_message_bytes: 64 * 1024,
            max_body_bytes: 16 * 1024,
            max_batch_bytes: 1024 * 1024,
            send_timeout_secs: 10,
            socket_send_buffer: 0,
            graphql_init_timeout_ms: 3000,
            shutdown_timeout_secs: 5,
            workers: 0,
            io_uring: "on".into(),
            log_format: "text".into(),
            map_tiles: None,
            map_tiles_attribution: None,
            map_basemap: None,
        }
    }

    /// The maximum age of history, when one is set.
    pub fn history_max_age(&self) -> Option<Duration> {
        (self.history_max_age_secs > 0).then(|| Duration::from_secs(self.history_max_age_secs))
    }

    /// How long a subscriber may take to accept one frame.
    pub fn send_timeout(&self) -> Duration {
        Duration::from_secs(self.send_timeout_secs)
    }

    /// How long a GraphQL WebSocket client has to send `connection_init`.
    pub fn graphql_init_timeout(&self) -> Duration {
        Duration::from_millis(self.graphql_init_timeout_ms)
    }

    /// How often idle WebSockets are pinged, when they are.
    pub fn ping_interval(&self) -> Option<Duration> {
        (self.ping_interval_secs > 0).then(|| Duration::from_secs(self.ping_interval_secs))
    }

    /// Whether the live fan-out may send through io_uring.
    pub fn uses_io_uring(&self) -> bool {
        self.io_uring == "on"
    }

    /// How long shutdown waits for requests and streams.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }
}

/// Accepts an http(s) tile URL template naming `{z}`, `{x}` and `{y}`, so a
/// typo is caught at start-up rather than as a map of broken images.
fn parse_tile_template(template: &str) -> Result<String, String> {
    let web = template.starts_with("https://") || template.starts_with("http://");
    let placeholders = ["{z}", "{x}", "{y}"].iter().all(|p| template.contains(p));
    if web && placeholders {
        Ok(template.to_owned())
    } else {
        Err("expected an http:// or https:// URL with {z}, {x} and {y} in it".into())
    }
}

/// Checks `--map-basemap` names a readable PMTiles v3 archive: its first
/// bytes are `PMTiles` and the version, 3.
fn parse_basemap(path: &str) -> Result<PathBuf, String> {
    let mut start = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut start))
        .map_err(|err| format!("cannot read {path}: {err}"))?;
    match start.split_at(7) {
        (b"PMTiles", [3]) => Ok(PathBuf::from(path)),
        (b"PMTiles", [version]) => Err(format!(
            "{path} is a PMTiles archive of version {version}; only version 3 is read \
             (`pmtiles convert` upgrades it)"
        )),
        _ => Err(format!("{path} is not a PMTiles archive")),
    }
}

/// A secret setting (a token, a JWT key): kept out of `Debug` output and logs.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for checking credentials against it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// A hysteresis in metres: a number from 0 to 10,000.
fn hysteresis(value: &str) -> Result<f64, String> {
    value
        .parse::<f64>()
        .ok()
        .filter(|m| (0.0..=10_000.0).contains(m))
        .ok_or_else(|| format!("`{value}`: use a number of metres from 0 to 10000"))
}
