//! Every registered strategy with an endpoint in the seeds' API, end to end,
//! table-driven over the registry (`incsync_guest::STRATEGIES`): a full
//! sync, then changes (updates and inserts), then an incremental sync, each
//! leaving the warehouse equal to the API, with the saved cursor at the
//! API's newest record. A strategy that sees updates must have its row in
//! [`EXPECTED`]; what only one strategy does has a module of its own
//! (`keyset_sync.rs`, `offset_sync.rs`, …).

use incsync_testkit::World;
use serde_json::json;

/// What one strategy's sync must show beyond the warehouse equal to the API.
struct Expected {
    strategy: &'static str,
    /// The records the API serves (pages of 50).
    records: u32,
    /// The field of the saved state that holds the cursor.
    cursor: &'static str,
    /// Requests of the first sync, where the strategy fixes them.
    first_requests: Option<u64>,
    /// Requests of the incremental sync, where the strategy fixes them.
    second_requests: Option<(u64, &'static str)>,
}

const EXPECTED: &[Expected] = &[
    Expected {
        strategy: "timestamp",
        records: 612,
        cursor: "last_timestamp",
        first_requests: None,
        second_requests: None,
    },
    Expected {
        strategy: "keyset",
        records: 777,
        cursor: "last_updated_at",
        first_requests: Some(16), // ⌈777/50⌉ pages
        second_requests: Some((1, "the 9 changed rows sit after the saved cursor: one page")),
    },
    Expected {
        strategy: "offset",
        records: 640,
        cursor: "last_updated_at",
        first_requests: None,
        second_requests: Some((
            1,
            "the boundary and 9 changes fit one page; `total` ends it",
        )),
    },
    Expected {
        strategy: "page_number",
        records: 555,
        cursor: "last_updated_at",
        first_requests: None,
        second_requests: None,
    },
    Expected {
        strategy: "next_page_url",
        records: 433,
        cursor: "last_updated_at",
        first_requests: Some(9), // ⌈433/50⌉ pages
        second_requests: None,
    },
    Expected {
        strategy: "replay",
        records: 400,
        cursor: "last_timestamp",
        first_requests: None,
        second_requests: None,
    },
];

#[test]
fn every_seeded_strategy_syncs_in_full_then_incrementally() {
    let seeded = incsync_guest::STRATEGIES
        .iter()
        .filter(|s| s.seed_path.is_some() && s.sees_updates);
    let mut ran = 0;
    for info in seeded {
        let e = EXPECTED
            .iter()
            .find(|e| e.strategy == info.name)
            .unwrap_or_else(|| {
                panic!(
                    "strategy `{}` has a seed endpoint but no row in EXPECTED",
                    info.name
                )
            });
        let w = World::strategy(info.name, e.records, json!({}));
        let (first, second) = w.first_then_incremental();
        assert_eq!(
            w.saved(&second, e.cursor),
            w.api_max_updated(),
            "{}: the saved cursor is the newest record's",
            info.name
        );
        if let Some(n) = e.first_requests {
            assert_eq!(first["requests"], n, "{}: first sync", info.name);
        }
        if let Some((n, why)) = e.second_requests {
            assert_eq!(second["requests"], n, "{}: {why}", info.name);
        }
        ran += 1;
    }
    assert_eq!(
        ran,
        EXPECTED.len(),
        "every row of EXPECTED is a registered strategy"
    );
}
