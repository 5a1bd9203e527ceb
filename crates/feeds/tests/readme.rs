//! The README's table of provider columns says what the code reads.

// Test code: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::panic)]

use epitrace_feeds::Feed;

#[test]
fn the_readme_documents_every_column_of_every_feed() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    for feed in Feed::ALL {
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", feed.name())))
            .unwrap_or_else(|| panic!("no README row for {}", feed.name()));
        for c in feed.columns() {
            let italic = format!("*`{}`*", c.name);
            if c.optional {
                assert!(
                    row.contains(&italic),
                    "{}: {} should be marked optional",
                    feed.name(),
                    c.name
                );
            } else {
                assert!(
                    row.contains(&format!("`{}`", c.name)) && !row.contains(&italic),
                    "{}: {} missing or marked optional",
                    feed.name(),
                    c.name
                );
            }
        }
    }
}
