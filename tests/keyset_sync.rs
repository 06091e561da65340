//! Keyset pagination end to end: `updated_since`, then only `scroll_param`.

mod common;

use common::World;
use serde_json::json;

#[test]
fn first_and_incremental_sync() {
    let w = World::strategy("keyset", 777, json!({}));
    let (first, second) = w.first_then_incremental();
    assert_eq!(first["requests"], 16, "⌈777/50⌉ pages");
    assert_eq!(w.saved(&second, "last_updated_at"), w.api_max_updated());
    // The 9 changed rows sit after the saved cursor: one page.
    assert_eq!(second["requests"], 1);
}

#[test]
fn a_tie_group_larger_than_a_page_is_not_cut() {
    let w = World::strategy("keyset", 300, json!({}));
    w.api
        .with_data(|d| d.update(&(1..=120).collect::<Vec<_>>()));
    w.sync();
    assert_eq!(w.warehouse_rows("user"), w.api_rows());
}
