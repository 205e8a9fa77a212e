//! The delivery engine: how a live subscriber that has caught up is written
//! to without a task of its own.
//!
//! See [`fanout`] for the shards that follow the hub and write each event's
//! ready-made frame to every parked `/ws` and `/events` socket.

pub mod fanout;
