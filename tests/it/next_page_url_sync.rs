//! Next-page-URL pagination end to end: the URLs the API hands out are
//! followed, inside the sandbox's allowed origin.

use incsync_testkit::World;
use serde_json::json;

#[test]
fn first_and_incremental_sync() {
    let w = World::strategy("next_page_url", 433, json!({}));
    let (first, second) = w.first_then_incremental();
    assert_eq!(first["requests"], 9, "⌈433/50⌉ pages");
    assert_eq!(w.saved(&second, "last_updated_at"), w.api_max_updated());
}
