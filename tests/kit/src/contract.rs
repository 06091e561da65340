//! The destination contract: what every warehouse (SQLite, PostgreSQL, JSON
//! lines) promises through the `Destination` trait, checked the same way for
//! each. `tests/it/warehouse_contract.rs` runs [`every_check`] against each
//! warehouse; a new warehouse passes it before anything else.

use incsync_host::destination::WriteError;
use incsync_host::destination::{Batch, Cell, Destination, Lease};
use incsync_host::runtime::bindings::{Column, DataType, Table};
use std::time::Duration;

/// Opens the warehouse under test, anew each call (one connection per
/// worker), on the same storage, ready for leases (`create_tables(&[])`).
pub type Open = dyn Fn() -> Box<dyn Destination>;

/// Every check, in turn, each on fresh tables or streams of its own.
pub fn every_check(open: &Open) {
    rows_commit_only_with_their_checkpoint(open);
    state_is_kept_and_forgotten_per_stream(open);
    the_guests_mistakes_are_refused_as_its_own(open);
    a_held_lease_is_refused_to_others_until_it_expires_or_its_holder_dies(open);
    a_stalled_holder_is_fenced_out_after_a_release(open);
}

fn table(name: &str) -> Table {
    Table {
        name: name.into(),
        primary_key: vec!["id".into()],
        columns: vec![
            Column {
                name: "id".into(),
                data_type: DataType::String,
            },
            Column {
                name: "n".into(),
                data_type: DataType::Integer,
            },
        ],
    }
}

fn rows(ids: &[&'static str]) -> Batch {
    Batch::from_rows(
        vec!["id".into(), "n".into()],
        ids.iter().map(|id| [Cell::String(id), Cell::Integer(1)]),
    )
    .unwrap()
}

/// Rows upserted before a checkpoint are kept with its state; rows after
/// it, rolled back, are not, and neither is a later state.
pub fn rows_commit_only_with_their_checkpoint(open: &Open) {
    let mut w = open();
    w.create_tables(&[table("committed")]).unwrap();
    w.upsert("committed", rows(&["1", "2"])).unwrap();
    w.checkpoint(r#"{"streams":{"committed":{"n":1}}}"#)
        .unwrap();
    w.upsert("committed", rows(&["3"])).unwrap();
    w.rollback().unwrap();
    w.finish().unwrap();
    let mut again = open();
    again.create_tables(&[table("committed")]).unwrap();
    let state = again.saved_state().unwrap().unwrap();
    assert!(state.contains(r#""committed":{"n":1}"#), "{state}");
    if let Some(n) = again.row_count("committed").unwrap() {
        assert_eq!(n, 2, "the rolled-back row is not kept");
    }
}

/// Each stream's state is its own: forgetting one keeps the others', and
/// a reset forgets them all.
pub fn state_is_kept_and_forgotten_per_stream(open: &Open) {
    let mut w = open();
    w.create_tables(&[table("streams")]).unwrap();
    w.checkpoint(r#"{"streams":{"a":{"n":1},"b":{"n":2}}}"#)
        .unwrap();
    assert!(w.forget_stream("a").unwrap(), "a had a state");
    assert!(!w.forget_stream("a").unwrap(), "a has none any more");
    let state = w.saved_state().unwrap().unwrap_or_default();
    assert!(
        !state.contains(r#""a":"#) && state.contains(r#""b":{"n":2}"#),
        "{state}"
    );
    assert!(w.reset_state().unwrap());
    assert_eq!(w.saved_state().unwrap(), None);
}

/// An unknown table, a column named twice, a missing or null primary key
/// reach the guest as its own mistakes (`unknown-table`, `invalid-batch`),
/// not as a failed warehouse.
pub fn the_guests_mistakes_are_refused_as_its_own(open: &Open) {
    let mut w = open();
    w.create_tables(&[table("mistakes")]).unwrap();
    assert!(matches!(
        w.upsert("nowhere", rows(&["1"])),
        Err(WriteError::UnknownTable(t)) if t == "nowhere"
    ));
    let twice = Batch::from_rows(
        vec!["id".into(), "id".into()],
        [[Cell::String("1"), Cell::String("1")]],
    )
    .unwrap();
    let no_key = Batch::from_rows(vec!["n".into()], [[Cell::Integer(1)]]).unwrap();
    let null_key = Batch::from_rows(vec!["id".into()], [[Cell::Null]]).unwrap();
    for (what, batch) in [("twice", twice), ("no key", no_key), ("null key", null_key)] {
        assert!(
            matches!(
                w.upsert("mistakes", batch),
                Err(WriteError::InvalidBatch(_))
            ),
            "{what}"
        );
    }
    assert!(matches!(
        w.delete("nowhere", rows(&["1"])),
        Err(WriteError::UnknownTable(_))
    ));
    w.rollback().unwrap();
}

/// A lease held by one worker is refused to another (who is told who holds
/// it) until it expires, or unless the other knows the holder is dead; the
/// new holder's token is larger.
pub fn a_held_lease_is_refused_to_others_until_it_expires_or_its_holder_dies(open: &Open) {
    let long = Duration::from_secs(60);
    let mut a = open();
    a.create_tables(&[]).unwrap();
    let first = a
        .acquire_lease("held", "host:1:a", long, None)
        .unwrap()
        .unwrap();
    let mut b = open();
    let held = b
        .acquire_lease("held", "host:2:b", long, None)
        .unwrap()
        .unwrap_err();
    assert_eq!(held.holder, "host:1:a");
    let again = a
        .acquire_lease("held", "host:1:a", long, None)
        .unwrap()
        .unwrap();
    assert!(
        again > first,
        "a holder that takes its lease again gets a new token"
    );
    let stolen = b
        .acquire_lease("held", "host:2:b", long, Some("host:1:a"))
        .unwrap()
        .unwrap();
    assert!(stolen > again, "{stolen} after {again}");
    let mut c = open();
    let short = c
        .acquire_lease("brief", "host:3:c", Duration::from_millis(1), None)
        .unwrap()
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let after = b
        .acquire_lease("brief", "host:2:b", long, None)
        .unwrap()
        .unwrap();
    assert!(
        after > short,
        "an expired lease is taken with a larger token"
    );
}

/// A stalled worker holds token `a`; its lease expires, a second worker
/// takes it and gives it up, a third takes it. The third's token must be
/// larger than the first's, so the first, waking up, commits nothing
/// (its checkpoint is fenced out) and the third commits. `open` opens the
/// warehouse under test, once per worker.
pub fn a_stalled_holder_is_fenced_out_after_a_release(open: &Open) {
    let lease = |holder: &str, token: u64, ttl: Duration| Lease {
        stream: "s".into(),
        holder: holder.into(),
        token,
        ttl,
    };
    let long = Duration::from_secs(60);
    let mut first = open();
    let a = first
        .acquire_lease("s", "host:1:a", Duration::from_millis(1), None)
        .unwrap()
        .unwrap();
    first.hold_lease(lease("host:1:a", a, Duration::from_millis(1)));
    std::thread::sleep(Duration::from_millis(20));
    let mut second = open();
    let b = second
        .acquire_lease("s", "host:2:b", long, None)
        .unwrap()
        .unwrap();
    assert!(b > a, "{b} after {a}");
    second.release_lease(&lease("host:2:b", b, long)).unwrap();
    let mut third = open();
    let c = third
        .acquire_lease("s", "host:3:c", long, None)
        .unwrap()
        .unwrap();
    assert!(c > b, "tokens only grow: {c} after {b}");
    third.hold_lease(lease("host:3:c", c, long));
    let fenced = first.checkpoint(r#"{"streams":{"s":{"by":"a"}}}"#);
    assert!(
        matches!(&fenced, Err(WriteError::LeaseLost(l))
            if l.stream == "s" && l.holder.as_deref() == Some("host:3:c")),
        "the stalled holder is told its lease was lost, and to whom: {fenced:?}"
    );
    let _ = first.rollback();
    third.checkpoint(r#"{"streams":{"s":{"by":"c"}}}"#).unwrap();
    assert_eq!(
        open().saved_state().unwrap().as_deref(),
        Some(r#"{"streams":{"s":{"by":"c"}}}"#)
    );
}
