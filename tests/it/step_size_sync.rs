//! Step-size sync end to end: id ranges, gaps, and ids that appear later.

use incsync_testkit::World;
use serde_json::json;

#[test]
fn gaps_do_not_end_the_scan_and_new_ids_are_synced_next_time() {
    let w = World::strategy(
        "step_size",
        3000,
        json!({"step_size": 500, "max_id": 10000}),
    );
    // A gap wider than a step.
    w.api
        .with_data(|d| d.delete(&(1200..=1900).collect::<Vec<_>>()));
    let first = w.sync();
    assert_eq!(w.warehouse_rows("user"), w.api_rows());
    // Every range up to max_id; two answers stopped short of their range
    // (before the gap, and at the last id) and were asked again from the
    // highest id seen, which shifted the ranges after them: 21 in all.
    assert_eq!(first["requests"], 21);
    assert_eq!(
        w.saved(&first, "current_id"),
        3001,
        "the highest id seen + 1"
    );

    w.api.with_data(|d| {
        d.insert(40);
    });
    let second = w.sync();
    assert_eq!(w.warehouse_rows("user"), w.api_rows());
    assert_eq!(w.saved(&second, "current_id"), 3041);
}
