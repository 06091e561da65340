//! Offset pagination end to end, including writes while the sync pages.

use incsync_testkit::World;
use serde_json::json;

#[test]
fn rows_moved_by_updates_during_the_sync_are_not_lost() {
    let w = World::strategy("offset", 1000, json!({}));
    // While the sync pages, rows it has read are updated (they move to the
    // end and shift every later row left), and new rows arrive.
    w.api.on_request(|n, d| {
        if n % 3 == 0 {
            let id = (n as u32 * 7) % 400 + 1;
            d.update(&[id, id + 1]);
            d.insert(1);
        }
    });
    w.sync();
    assert_eq!(w.warehouse_rows("user"), w.api_rows());
}
