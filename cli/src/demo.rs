//! `incsync demo`: the sample API, a first sync and an incremental one, and a
//! check that the warehouse ends equal to the API.

use crate::shared::CacheArgs;
use anyhow::{Result, ensure};
use incsync_guest::STRATEGIES;
use incsync_host::destination::{Durability, SqliteWarehouse};
use incsync_host::sync::{self, ComponentSource, SyncJob};
use incsync_sample_api::dataset::format_ts;
use incsync_sample_api::{SampleApi, ServeOptions};
use std::path::{Path, PathBuf};

/// What the demo runs on.
#[derive(clap::Args)]
pub struct Args {
    /// The warehouse file (replaced).
    #[arg(long, default_value = "warehouse.db", value_name = "FILE.db")]
    pub warehouse: PathBuf,
    /// Records in the sample API.
    #[arg(long, default_value_t = 1000)]
    pub records: u32,
    #[command(flatten)]
    pub cache: CacheArgs,
}

/// The strategies the seeds' API has an endpoint for, with that endpoint.
fn seeded() -> impl Iterator<Item = (&'static incsync_guest::StrategyInfo, &'static str)> {
    STRATEGIES
        .iter()
        .filter_map(|s| s.seed_path.map(|path| (s, path)))
}

/// The demo's config against the sample API at `base_url`: one stream per
/// strategy, each into its own table `user_<strategy>`.
pub fn demo_config(base_url: &str) -> String {
    let streams: Vec<serde_json::Value> = seeded()
        .map(|(s, path)| {
            serde_json::json!({"table": format!("user_{}", s.name), "strategy": s.name, "path": path})
        })
        .collect();
    serde_json::json!({ "base_url": base_url, "streams": streams }).to_string()
}

fn remove_warehouse(path: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    Ok(())
}

/// Checks that every record of the API is in `table` at its current
/// `updatedAt`, and nothing else is. With `ids_only`, checks the ids alone
/// (step-size sync sees new ids, not updates to old ones).
pub fn verify(api: &SampleApi, warehouse: &Path, table: &str, ids_only: bool) -> Result<usize> {
    let w = SqliteWarehouse::open(warehouse, Durability::Normal)?;
    let mut stmt = w
        .connection()
        .prepare(&format!("SELECT id, updatedAt FROM \"{table}\""))?;
    let rows: std::collections::HashMap<String, String> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    api.with_data(|d| {
        ensure!(
            rows.len() == d.len(),
            "{table}: the warehouse has {} rows, the API {}",
            rows.len(),
            d.len()
        );
        for &(updated, id) in d.by_updated() {
            let want = format_ts(updated);
            match rows.get(&id.to_string()) {
                Some(got) if ids_only || *got == want => {}
                got => {
                    anyhow::bail!("{table}: record {id}: the warehouse has {got:?}, the API {want}")
                }
            }
        }
        Ok(d.len())
    })
}

/// Runs the demo, printing as it goes.
pub fn run(options: Args) -> Result<()> {
    let api = SampleApi::start(&ServeOptions {
        port: 0,
        records: options.records,
        ..ServeOptions::default()
    })?;
    println!("sample API: {} records at {}", options.records, api.url());
    remove_warehouse(&options.warehouse)?;
    let job = SyncJob {
        wait_for_lease: None,
        lease_ttl: None,
        parallel: None,
        config: demo_config(&api.url()),
        warehouse: incsync_host::destination::Warehouse::Sqlite(options.warehouse.clone()),
        component: ComponentSource::Bundled,
        cache: options.cache.cache(),
        durability: Durability::Normal,
        start_state: None,
    };
    println!(
        "\n1. first sync: seven streams, one per strategy, each into its table user_<strategy> of {}",
        options.warehouse.display()
    );
    let first = sync::run(&job)?;
    println!("{}", first.summary());

    let (updated, inserted) = api.with_data(|d| {
        let n = d.len() as u32;
        let ids: Vec<u32> = (1..=n).step_by((n as usize / 25).max(1)).take(25).collect();
        d.update(&ids);
        let new = d.insert(10);
        (ids.len(), new.count())
    });
    println!("\n2. the API changes: {updated} records updated, {inserted} inserted");
    println!(
        "\n3. incremental sync: only the changes, plus the rows at each saved cursor \
         (replay: its 2-hour buffer; step_size: new ids from current_id, one step back)"
    );
    let second = sync::run(&job)?;
    println!("{}", second.summary());

    let mut n = 0;
    for (strategy, _) in seeded() {
        let table = format!("user_{}", strategy.name);
        n = verify(&api, &options.warehouse, &table, !strategy.sees_updates)?;
    }
    println!(
        "\nthe warehouse matches the API: {n} rows in each of the {} tables, each at its latest \
         updatedAt (step_size: every id; it does not see updates to old ids)",
        seeded().count()
    );
    println!(
        "inspect it with: sqlite3 {} 'select * from user_offset limit 5'",
        options.warehouse.display()
    );
    Ok(())
}
