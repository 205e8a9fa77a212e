//! Files generated from the code and checked in. A stale file is rewritten
//! and the test fails, so `cargo test --test api generated` regenerates them
//! and the diff is reviewed and committed like any change.

use std::path::Path;

/// Rewrites `relative` with `fresh` when it differs, then fails.
fn check_generated(relative: &str, fresh: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current != fresh {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create the schema directory");
        }
        std::fs::write(&path, fresh).expect("write the regenerated file");
        panic!("{relative} was stale and has been regenerated from the code: review and commit it");
    }
}

#[test]
fn generated_schema_graphql_is_the_schema_the_server_serves() {
    check_generated("schema/schema.graphql", &longlat::graphql::sdl());
}
