//! The destination contract (`incsync_testkit::contract`), run against every
//! warehouse: SQLite, PostgreSQL and JSON lines keep the same promises.

use incsync_host::destination::{self, Destination, Durability, JsonlTarget, Warehouse};
use incsync_testkit::contract;
use incsync_testkit::pg::Postgres;

fn check(warehouse: Warehouse) {
    contract::every_check(&move || -> Box<dyn Destination> {
        let mut w = destination::open(&warehouse, Durability::Normal).unwrap();
        w.create_tables(&[]).unwrap();
        w
    });
}

#[test]
fn sqlite_keeps_the_destination_contract() {
    let dir = tempfile::tempdir().unwrap();
    check(Warehouse::Sqlite(dir.path().join("w.db")));
}

#[test]
fn postgres_keeps_the_destination_contract() {
    let pg = Postgres::start();
    check(Warehouse::parse(&pg.database("contract")).unwrap());
}

#[test]
fn jsonl_keeps_the_destination_contract() {
    let dir = tempfile::tempdir().unwrap();
    check(Warehouse::Jsonl(JsonlTarget::Dir(dir.path().join("jsonl"))));
}
