//! `incsync serve`: the sample API.

use crate::shared::Result;
use incsync_sample_api::{Api, SampleApi, ServeOptions};

#[derive(clap::Args)]
pub struct Args {
    /// Which API to serve.
    #[arg(long, value_enum, default_value_t = Api::Seeds)]
    pub api: Api,
    /// Turn the replicas' rate limits off.
    #[arg(long)]
    pub no_rate_limits: bool,
    /// HubSpot's search result cap.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub result_cap: usize,
    /// Zendesk leaves out tickets changed within this many seconds.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub zendesk_lag_seconds: u32,
    /// Every answer waits this many milliseconds first, as a distant API does.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub latency_ms: u64,
    /// The port.
    #[arg(long, default_value_t = 5001)]
    pub port: u16,
    /// How many records to serve.
    #[arg(long, default_value_t = 1000)]
    pub records: u32,
    /// The data's seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The most records one answer holds (the `limit` cap).
    #[arg(long, default_value_t = 50)]
    pub max_page: usize,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Every this many consecutive ids share one updatedAt.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub ties: u32,
    /// Delete every N-th id, leaving gaps for step-size sync.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub id_gap_every: u32,
    /// Every N requests, update one record and insert one (writes during a sync).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub write_every: u64,
    /// Every N requests, insert a row stamped an hour in the past (a late replica row).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub late_every: u64,
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        api,
        no_rate_limits,
        result_cap,
        zendesk_lag_seconds,
        latency_ms,
        port,
        records,
        seed,
        max_page,
        threads,
        ties,
        id_gap_every,
        write_every,
        late_every,
    } = args;
    let server = SampleApi::start(&ServeOptions {
        port,
        records,
        seed,
        max_page,
        threads,
        ties,
        id_gap_every,
        write_every,
        late_every,
        api,
        rate_limits: !no_rate_limits,
        result_cap,
        zendesk_lag_seconds,
        latency_ms,
    })?;
    println!(
        "sample API ({api}): {records} records (seed {seed}) at {}",
        server.url()
    );
    for (name, value) in SampleApi::credentials(api) {
        println!("export {name}={value}");
    }
    server.wait();
    Ok(())
}
