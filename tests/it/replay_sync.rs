//! Replay sync end to end: rows a replica shows late are caught.

use incsync_sample_api::dataset::format_ts;
use incsync_testkit::World;
use serde_json::json;

#[test]
fn late_rows_inside_the_buffer_are_picked_up_and_the_state_is_the_true_maximum() {
    let w = World::strategy("replay", 400, json!({"buffer_hours": 2}));
    let (_, second) = w.first_then_incremental();
    let max = w.api.with_data(|d| d.max_updated().unwrap());
    assert_eq!(w.saved(&second, "last_timestamp"), format_ts(max));

    // A row committed 90 minutes before the saved cursor shows up only now.
    w.api.with_data(|d| {
        let id = *d.insert(1).start();
        d.set_updated(id, max - 90 * 60);
    });
    let third = w.sync();
    assert_eq!(w.warehouse_rows("user"), w.api_rows());
    assert_eq!(
        w.saved(&third, "last_timestamp"),
        format_ts(max),
        "not the buffered value"
    );
}
