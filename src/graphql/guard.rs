//! Bounds on a GraphQL document, checked before anything expands its
//! fragments.
//!
//! async-graphql's own checks (recursion depth, the depth and complexity
//! limits, validation) walk each fragment spread into its fragment, so a
//! document of n fragments that each spread the next one twice costs 2^n
//! steps before a limit refuses it: 1 KB of text can hold a worker thread
//! for ever. [`DocumentGuard`] runs first, as a schema extension, so every
//! transport (HTTP `GET` and `POST`, both WebSocket protocols) goes through
//! it. It makes one pass over the text (size, tokens, bracket nesting),
//! refusing before the parser sees a document too big or too deep to parse
//! cheaply; then one pass over the parsed document that sizes each fragment
//! once (memoised), refusing a document whose selections, fragments
//! expanded, are too many or nest too deep, and a subscription with more
//! than one root field. Both passes are linear in the document, so a
//! refused document costs what reading it costs.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::{ErrorExtensions, Name, ServerError, ServerResult, Variables};

use crate::error::Error;

/// Largest document, in bytes (a request body is also bounded by
/// `--max-body-bytes`; a WebSocket message by `--max-message-bytes`).
pub const MAX_DOCUMENT_BYTES: usize = 12 * 1024;

/// Most lexical tokens in a document (names, punctuation, values).
pub const MAX_TOKENS: usize = 4_000;

/// Deepest nesting of `{`, `[` and `(` in the text.
pub const MAX_NESTING: usize = 64;

/// Most fragment definitions in a document.
pub const MAX_FRAGMENTS: usize = 64;

/// Most selections (fields, spreads and inline fragments) the document's
/// operations make, with every spread counted as the fragment it brings in.
pub const MAX_EXPANDED_SELECTIONS: usize = 2_000;

/// Deepest selection, with every spread counted as one level (async-graphql
/// refuses more than 32 such levels; the depth limit of fields is
/// [`super::MAX_DEPTH`]).
pub const MAX_EXPANDED_DEPTH: usize = 32;

/// The schema extension that checks every document before it is parsed
/// for execution.
pub struct DocumentGuard;

impl ExtensionFactory for DocumentGuard {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DocumentGuard)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for DocumentGuard {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        check(query).map_err(|refused| server_error(&refused))?;
        next.run(ctx, query, variables).await
    }
}

/// A refusal as a GraphQL request error: the message and
/// `extensions.code`, and no location (it is about the whole document).
pub fn server_error(refused: &Error) -> ServerError {
    crate::stats::rejected(refused.code());
    let mut error = ServerError::new(refused.to_string(), None);
    error.extensions = refused.extend().extensions;
    error
}

/// Refuses `query` unless it is within every limit above, in time linear
/// in its length; otherwise gives its parsed document back, or `None` when
/// it does not parse (that is reported by the parse that runs it, with its
/// position, as any syntax error is).
pub fn check(query: &str) -> Result<Option<ExecutableDocument>, Error> {
    check_text(query)?;
    let Ok(document) = async_graphql::parser::parse_query(query) else {
        return Ok(None);
    };
    check_document(&document)?;
    Ok(Some(document))
}

fn refuse(detail: String) -> Error {
    Error::DocumentRefused(detail)
}

/// Size, tokens and nesting, read off the text without parsing it.
fn check_text(query: &str) -> Result<(), Error> {
    if query.len() > MAX_DOCUMENT_BYTES {
        return Err(refuse(format!(
            "the document is larger than {MAX_DOCUMENT_BYTES} bytes"
        )));
    }
    let scan = scan(query.as_bytes());
    if scan.tokens > MAX_TOKENS {
        return Err(refuse(format!(
            "the document has more than {MAX_TOKENS} tokens"
        )));
    }
    if scan.deepest > MAX_NESTING {
        return Err(refuse(format!(
            "the document nests brackets more than {MAX_NESTING} deep"
        )));
    }
    Ok(())
}

/// What one pass over a document's text counts.
#[derive(Debug, Default, PartialEq)]
struct Scan {
    tokens: usize,
    deepest: usize,
}

/// Counts GraphQL's lexical tokens and the deepest bracket nesting. Only
/// as exact as a limit needs: a name or number is one token, a string
/// (block strings included) one, `...` one, any other punctuation one;
/// whitespace, commas and comments none.
fn scan(text: &[u8]) -> Scan {
    let mut scan = Scan::default();
    let mut depth = 0usize;
    let mut i = 0;
    while i < text.len() {
        let byte = text[i];
        i += 1;
        match byte {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => continue,
            b'#' => {
                while i < text.len() && text[i] != b'\n' && text[i] != b'\r' {
                    i += 1;
                }
                continue;
            }
            b'"' if text[i..].starts_with(b"\"\"") => i = after_block_string(text, i + 2),
            b'"' => i = after_string(text, i),
            b'.' if text[i..].starts_with(b"..") => i += 2,
            b'{' | b'[' | b'(' => {
                depth += 1;
                scan.deepest = scan.deepest.max(depth);
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            b'_' | b'-' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' => {
                while i < text.len()
                    && matches!(text[i], b'_' | b'.' | b'+' | b'-' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
                {
                    i += 1;
                }
            }
            _ => {}
        }
        scan.tokens += 1;
    }
    scan
}

/// Where a `"…"` string that opened before `i` ends.
fn after_string(text: &[u8], mut i: usize) -> usize {
    while i < text.len() {
        match text[i] {
            b'\\' => i += 2,
            b'"' | b'\n' | b'\r' => return i + 1,
            _ => i += 1,
        }
    }
    text.len()
}

/// Where a `"""…"""` block string that opened before `i` ends.
fn after_block_string(text: &[u8], mut i: usize) -> usize {
    while i < text.len() {
        if text[i..].starts_with(b"\\\"\"\"") {
            i += 4;
        } else if text[i..].starts_with(b"\"\"\"") {
            return i + 3;
        } else {
            i += 1;
        }
    }
    text.len()
}

/// Fragments, expanded selections and subscriptions' root fields.
fn check_document(document: &ExecutableDocument) -> Result<(), Error> {
    if document.fragments.len() > MAX_FRAGMENTS {
        return Err(refuse(format!(
            "the document defines more than {MAX_FRAGMENTS} fragments"
        )));
    }
    let mut sizer = Sizer {
        document,
        sizes: HashMap::new(),
    };
    // Every fragment, used or not: validation reads them all.
    for name in document.fragments.keys() {
        sizer.fragment(name, 0)?;
    }
    let mut total = 0usize;
    for (_, operation) in document.operations.iter() {
        let size = sizer.selection_set(&operation.node.selection_set.node, 0)?;
        total = total.saturating_add(size.selections);
        if total > MAX_EXPANDED_SELECTIONS {
            return Err(too_many_selections());
        }
        if size.depth > MAX_EXPANDED_DEPTH {
            return Err(too_deep());
        }
        if operation.node.ty == OperationType::Subscription {
            let mut fields = HashSet::new();
            root_fields(document, &operation.node.selection_set.node, &mut fields);
            if fields.len() != 1 {
                return Err(refuse(format!(
                    "a subscription selects exactly one root field; this one selects {}",
                    fields.len()
                )));
            }
        }
    }
    Ok(())
}

fn too_many_selections() -> Error {
    refuse(format!(
        "the document is too complex: more than {MAX_EXPANDED_SELECTIONS} selections with its fragments expanded"
    ))
}

fn too_deep() -> Error {
    refuse(format!(
        "the document is nested too deep: more than {MAX_EXPANDED_DEPTH} levels with its fragments expanded"
    ))
}

/// The size of a selection set with its fragments expanded.
#[derive(Debug, Clone, Copy, Default)]
struct Size {
    selections: usize,
    depth: usize,
}

/// Sizes selection sets, each fragment once.
struct Sizer<'a> {
    document: &'a ExecutableDocument,
    /// A fragment's size, or `None` while it is being sized (a spread
    /// that meets it then is a cycle).
    sizes: HashMap<&'a Name, Option<Size>>,
}

impl<'a> Sizer<'a> {
    /// `level` is how deep the walk is, to bound its own recursion.
    fn selection_set(&mut self, set: &'a SelectionSet, level: usize) -> Result<Size, Error> {
        if level > MAX_EXPANDED_DEPTH {
            return Err(too_deep());
        }
        let mut size = Size::default();
        for item in &set.items {
            let inner = match &item.node {
                Selection::Field(field) => {
                    self.selection_set(&field.node.selection_set.node, level + 1)?
                }
                Selection::InlineFragment(inline) => {
                    self.selection_set(&inline.node.selection_set.node, level + 1)?
                }
                Selection::FragmentSpread(spread) => {
                    self.fragment(&spread.node.fragment_name.node, level + 1)?
                }
            };
            size.selections = size.selections.saturating_add(1 + inner.selections);
            size.depth = size.depth.max(1 + inner.depth);
            if size.selections > MAX_EXPANDED_SELECTIONS {
                return Err(too_many_selections());
            }
        }
        Ok(size)
    }

    fn fragment(&mut self, name: &'a Name, level: usize) -> Result<Size, Error> {
        match self.sizes.get(name) {
            Some(Some(size)) => return Ok(*size),
            Some(None) => {
                return Err(refuse(format!(
                    "fragment {name} spreads itself, directly or through others"
                )));
            }
            None => {}
        }
        // An unknown fragment is reported by validation.
        let Some(definition) = self.document.fragments.get(name) else {
            return Ok(Size::default());
        };
        self.sizes.insert(name, None);
        let size = self.selection_set(&definition.node.selection_set.node, level)?;
        self.sizes.insert(name, Some(size));
        Ok(size)
    }
}

/// The response keys a selection set yields at its own level, through
/// fragments. Only called once the document is known to be small when
/// expanded.
fn root_fields<'a>(
    document: &'a ExecutableDocument,
    set: &'a SelectionSet,
    keys: &mut HashSet<&'a str>,
) {
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => {
                keys.insert(field.node.response_key().node.as_str());
            }
            Selection::InlineFragment(inline) => {
                root_fields(document, &inline.node.selection_set.node, keys);
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node) {
                    root_fields(document, &fragment.node.selection_set.node, keys);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_counts_tokens_and_nesting_without_parsing() {
        let scan =
            scan(br#"query Q($a: [ID!]) { x: f(s: "a { b", t: """ {{ \""" """) { ...F } } # {{{"#);
        // query Q ( $ a : [ ID ! ] ) { x : f ( s : "…" t : """…""" ) { ... F } }
        assert_eq!(scan.tokens, 28);
        assert_eq!(scan.deepest, 2);
    }

    #[test]
    fn fragments_that_double_at_each_level_are_refused_in_linear_time() {
        let mut document = String::from("query { ...F0 }");
        for level in 0..30 {
            document.push_str(&format!(
                " fragment F{level} on Query {{ ...F{next} ...F{next} }}",
                next = level + 1
            ));
        }
        document.push_str(" fragment F30 on Query { latest { id } }");
        let err = check(&document).unwrap_err();
        assert!(err.to_string().contains("too complex"), "{err}");
    }

    #[test]
    fn a_fragment_cycle_is_refused() {
        let err = check("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }")
            .unwrap_err();
        assert!(err.to_string().contains("spreads itself"), "{err}");
    }

    #[test]
    fn a_subscription_has_one_root_field() {
        assert!(check("subscription { positions { id } }").is_ok());
        assert!(check("subscription { a: positions { id } b: positions { id } }").is_err());
        assert!(
            check(
                "subscription { ...F } fragment F on Subscription { positions { id } __typename }"
            )
            .is_err()
        );
    }

    #[test]
    fn a_document_that_does_not_parse_is_left_to_the_parser() {
        assert!(matches!(check("{ latest { id }"), Ok(None)));
    }
}
