//! Read scopes: which trackers a bearer may read.
//!
//! A position is personal data, so a credential may carry a read scope
//! (`read=` in a token file, a `read` claim in a JWT): a list of patterns,
//! each an exact tracker name (`bus-1`), a prefix ending in `*`
//! (`fleet-a.*`, `alice/*`), `*` for every tracker, or `-` for positions
//! published without a tracker (which a scoped reader sees only when its
//! scope says `-`). A reader without a scope reads everything. Patterns are
//! compared byte for byte, so they work with any character a tracker name
//! may hold.
//!
//! The scope rides in the reader's [`Filter`](super::Filter), so the one
//! check every delivery makes enforces it on every transport; it is parsed
//! once, when the credential is read, and shared by all of the bearer's
//! streams.

use std::fmt;
use std::sync::Arc;

/// The pattern for positions without a tracker.
pub const UNTRACKED: &str = "-";

/// Longest pattern, in bytes: a tracker name's longest, a `*`, and room
/// for names that grow.
const PATTERN_MAX_LEN: usize = 256;

/// The trackers a bearer may read; cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReadScope(Arc<Patterns>);

#[derive(Debug, PartialEq, Eq, Hash)]
struct Patterns {
    /// Exact names, sorted: found by binary search.
    exact: Box<[Box<str>]>,
    /// Prefixes (the pattern without its `*`), sorted.
    prefixes: Box<[Box<str>]>,
    /// `*`: every tracker.
    every_tracker: bool,
    /// `-`: positions without a tracker.
    untracked: bool,
}

/// A read scope pattern that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidScope(String);

impl ReadScope {
    /// The scope of these patterns (see the module documentation); refused
    /// when there are none or one is malformed.
    pub fn parse<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Result<Self, InvalidScope> {
        let (mut exact, mut prefixes) = (Vec::new(), Vec::new());
        let (mut every_tracker, mut untracked) = (false, false);
        for pattern in patterns {
            check_pattern(pattern)?;
            match pattern {
                "*" => every_tracker = true,
                UNTRACKED => untracked = true,
                _ => match pattern.strip_suffix('*') {
                    Some(prefix) => prefixes.push(prefix.into()),
                    None => exact.push(pattern.into()),
                },
            }
        }
        if exact.is_empty() && prefixes.is_empty() && !every_tracker && !untracked {
            return Err(InvalidScope(
                "a read scope needs at least one pattern (a tracker name, a prefix ending in *, * or -)"
                    .into(),
            ));
        }
        exact.sort_unstable();
        exact.dedup();
        prefixes.sort_unstable();
        prefixes.dedup();
        Ok(Self(Arc::new(Patterns {
            exact: exact.into(),
            prefixes: prefixes.into(),
            every_tracker,
            untracked,
        })))
    }

    /// The scope of a comma-separated list of patterns (`read=` in a
    /// token file).
    pub fn parse_list(list: &str) -> Result<Self, InvalidScope> {
        Self::parse(list.split(','))
    }

    /// Whether a position from `tracker` (`None`: without one) is in scope.
    #[inline]
    pub fn allows(&self, tracker: Option<&str>) -> bool {
        let patterns = &*self.0;
        match tracker {
            None => patterns.untracked,
            Some(name) => {
                patterns.every_tracker
                    || patterns.exact.binary_search_by(|e| (**e).cmp(name)).is_ok()
                    || patterns.prefixes.iter().any(|p| name.starts_with(&**p))
            }
        }
    }
}

/// Refuses a pattern that could not have been meant: empty, with blanks or
/// control characters, a `*` other than at the end, or too long.
fn check_pattern(pattern: &str) -> Result<(), InvalidScope> {
    let shown: String = pattern.chars().take(PATTERN_MAX_LEN).collect();
    let refuse = |why: &str| Err(InvalidScope(format!("read scope pattern {shown:?} {why}")));
    if pattern.is_empty() {
        return refuse("is empty");
    }
    if pattern.len() > PATTERN_MAX_LEN {
        return refuse(&format!("is longer than {PATTERN_MAX_LEN} bytes"));
    }
    if pattern
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == ',')
    {
        return refuse("holds a blank, a comma or a control character");
    }
    if pattern.find('*').is_some_and(|at| at + 1 != pattern.len()) {
        return refuse("has a * that is not its last character");
    }
    Ok(())
}

impl fmt::Display for ReadScope {
    /// The patterns, comma-separated, in a canonical order: equal scopes
    /// print the same.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let patterns = &*self.0;
        let every = patterns.every_tracker.then_some("*");
        let untracked = patterns.untracked.then_some(UNTRACKED);
        let prefixes = patterns.prefixes.iter().map(|p| format!("{p}*"));
        let all: Vec<String> = every
            .into_iter()
            .chain(untracked)
            .map(str::to_owned)
            .chain(patterns.exact.iter().map(|e| e.to_string()))
            .chain(prefixes)
            .collect();
        f.write_str(&all.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(list: &str) -> ReadScope {
        ReadScope::parse_list(list).expect("a valid scope")
    }

    #[test]
    fn exact_names_prefixes_and_every_tracker_are_in_scope() {
        let fleet = scope("fleet-a.*,bus-1");
        assert!(fleet.allows(Some("fleet-a.van-1")));
        assert!(fleet.allows(Some("fleet-a.")));
        assert!(fleet.allows(Some("bus-1")));
        assert!(
            !fleet.allows(Some("bus-10")),
            "an exact name is not a prefix"
        );
        assert!(!fleet.allows(Some("fleet-b.van-1")));
        assert!(!fleet.allows(None), "untracked needs -");

        let family = scope("alice/*,bob/*");
        assert!(family.allows(Some("alice/phone")));
        assert!(!family.allows(Some("carol/phone")));

        let everything_tracked = scope("*");
        assert!(everything_tracked.allows(Some("anything")));
        assert!(!everything_tracked.allows(None));
        assert!(scope("-").allows(None));
        assert!(!scope("-").allows(Some("bus-1")));
    }

    #[test]
    fn malformed_patterns_are_refused_and_name_the_pattern() {
        for bad in ["", "a,,b", "fle*et", "*a", "a b", "a\tb"] {
            let err = ReadScope::parse_list(bad).expect_err(bad);
            assert!(!err.to_string().is_empty());
        }
        let err = ReadScope::parse_list("ok,fle*et").unwrap_err().to_string();
        assert!(err.contains("fle*et"), "{err}");
        assert!(ReadScope::parse(std::iter::empty()).is_err());
    }

    #[test]
    fn equal_scopes_compare_and_print_the_same_whatever_the_order() {
        let a = scope("bus-2,fleet-a.*,-,bus-1,bus-1");
        let b = scope("-,bus-1,fleet-a.*,bus-2");
        assert_eq!(a, b);
        assert_eq!(a.to_string(), b.to_string());
        assert_eq!(a.to_string(), "-,bus-1,bus-2,fleet-a.*");
        assert_ne!(a, scope("bus-1"));
    }
}
