//! Keyset pagination end to end: `updated_since`, then only `scroll_param`.

use incsync_testkit::World;
use serde_json::json;

#[test]
fn a_tie_group_larger_than_a_page_is_not_cut() {
    let w = World::strategy("keyset", 300, json!({}));
    w.api
        .with_data(|d| d.update(&(1..=120).collect::<Vec<_>>()));
    w.sync();
    assert_eq!(w.warehouse_rows("user"), w.api_rows());
}

/// `checkpoint_every_ms` in the real component, on its WASI clock: a period
/// longer than the sync commits once, at the end; a period of 1 ms, with
/// requests that take longer, commits after about every page.
#[test]
fn checkpoints_follow_the_clock_with_checkpoint_every_ms() {
    let w = World::strategy("keyset", 500, json!({"checkpoint_every_ms": 600_000}));
    let (first, second) = w.first_then_incremental();
    assert_eq!(first["requests"], 10);
    assert_eq!(first["checkpoints"], 1, "{first}");
    assert_eq!(second["checkpoints"], 1, "{second}");
    assert_eq!(w.saved(&second, "last_updated_at"), w.api_max_updated());

    let w = World::strategy("keyset", 500, json!({"checkpoint_every_ms": 1}));
    w.api.inject_faults(|_| {
        std::thread::sleep(std::time::Duration::from_millis(3));
        None
    });
    let first = w.sync();
    assert_eq!(w.warehouse_rows("user"), w.api_rows());
    let n = first["checkpoints"].as_u64().unwrap();
    assert!(
        n >= 9,
        "a checkpoint after every page that took over 1 ms: {first}"
    );
}
