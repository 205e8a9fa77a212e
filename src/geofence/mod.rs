//! Geofences: zones, where trackers are, and the enter and leave events between.

pub mod index;
