//! Page-number pagination end to end, including writes while the sync pages.

use incsync_testkit::World;
use serde_json::json;

#[test]
fn rows_moved_by_updates_during_the_sync_are_not_lost() {
    let w = World::strategy("page_number", 800, json!({}));
    w.api.on_request(|n, d| {
        if n % 2 == 0 {
            d.update(&[(n as u32 * 13) % 300 + 1]);
        }
    });
    w.sync();
    assert_eq!(w.warehouse_rows("user"), w.api_rows());
}
