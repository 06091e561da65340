//! incsync's benchmarks: `cargo bench -p incsync --bench sync`.
//!
//! Starts the sample API on loopback and measures, side by side in one run
//! (absolute figures are context only: these machines are shared and noisy):
//!
//! 1. end-to-end throughput of `incsync run` (the bundled component, a real
//!    SQLite warehouse at its default durability) for N = 100,000 and
//!    1,000,000 records, pages of 50 and 1,000;
//! 2. the floors against the same server: (a) a plain native loop that fetches
//!    and parses the same pages, (b) the same loop also upserting each page
//!    into SQLite with the warehouse's settings;
//! 3. wasm overhead: the same machine built natively and driven by the same
//!    host logic, against the component, in one process;
//! 4. cold start: process start to first HTTP request, with and without the
//!    compiled-component cache;
//! 5. peak RSS of `incsync run` for each N;
//! 6. incremental efficiency per strategy: requests and re-delivered rows
//!    after k of N records change.
//!
//! 8. the PostgreSQL warehouse (a throwaway server the benchmark starts, as
//!    the tests do) against (c): the native loop that binary-`COPY`s each
//!    page into the same table, one transaction per page.
//!
//! 9. the guest's parse of an answer, natively: a `serde_json` DOM against
//!    `record::Answer`.
//!
//! `INCSYNC_BENCH_QUICK=1` runs smaller sizes (for a smoke test);
//! `INCSYNC_BENCH_ONLY=1,8` runs only the sections named.

use incsync_host::destination::WriteError;
use incsync_host::destination::{Batch, Destination, Durability, SqliteWarehouse};
use incsync_host::http::{AllowList, Client, HttpSettings, Retrying};
use incsync_host::runtime::bindings::{HttpError, Request, Response, Table};
use incsync_host::runtime::{BUNDLED_COMPONENT, ComponentCache, GuestLimits, Runtime};
use incsync_host::sync::{self, ComponentSource, SyncJob};
use incsync_sample_api::{SampleApi, ServeOptions};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

mod native;

use incsync_testkit::pg;

const BIN: &str = env!("CARGO_BIN_EXE_incsync");

/// Whether `INCSYNC_BENCH_ONLY` (a comma-separated list of section numbers)
/// lets section `n` run; all run without it.
fn section(n: u32) -> bool {
    std::env::var("INCSYNC_BENCH_ONLY").map_or(true, |only| {
        only.split(',').any(|s| s.trim() == n.to_string())
    })
}

/// The `checkpoint_every_ms` of the benchmark's second `incsync run` row.
const HELD_MS: u64 = 1000;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

/// The sample API with `n` records, pages of at most `page`.
fn api_of(n: u32, page: usize) -> SampleApi {
    SampleApi::start(&ServeOptions {
        port: 0,
        records: n,
        max_page: page,
        ..ServeOptions::default()
    })
    .unwrap()
}

fn keyset_config(base_url: &str) -> String {
    keyset_config_with(base_url, json!({}))
}

/// The keyset stream with `extra` stream keys.
fn keyset_config_with(base_url: &str, extra: Value) -> String {
    let mut stream = json!({"table": "user", "strategy": "keyset", "path": "/pagination/keyset"});
    for (k, v) in extra.as_object().unwrap() {
        stream[k] = v.clone();
    }
    json!({"base_url": base_url, "streams": [stream]}).to_string()
}

/// CPU seconds (user + system) of `who` so far.
fn cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Pages of the keyset endpoint, from the start, until the token is null.
fn keyset_pages(base: &str, mut each: impl FnMut(&Value)) -> usize {
    let agent: ureq::Agent = ureq::Agent::config_builder().build().new_agent();
    let mut url = format!("{base}/pagination/keyset?updated_since=1970-01-01T00%3A00%3A00Z");
    let mut rows = 0;
    loop {
        let body = agent
            .get(&url)
            .call()
            .unwrap()
            .body_mut()
            .read_to_vec()
            .unwrap();
        let page: Value = serde_json::from_slice(&body).unwrap();
        let data = &page["data"];
        rows += data.as_array().unwrap().len();
        each(data);
        match page["scroll_param"].as_str() {
            Some(token) => {
                let token: String =
                    url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
                url = format!("{base}/pagination/keyset?scroll_param={token}");
            }
            None => return rows,
        }
    }
}

/// Floor (a): fetch and parse, nothing else.
fn floor_fetch_parse(base: &str) -> (usize, f64) {
    let started = Instant::now();
    let rows = keyset_pages(base, |_| {});
    (rows, started.elapsed().as_secs_f64())
}

/// Floor (b): fetch, parse and upsert each page into SQLite (WAL,
/// synchronous=NORMAL, a prepared statement, one transaction per page).
///
/// Returns the rows, the wall time and the CPU time of the loop's thread (the
/// server's threads in this process are not the floor's).
fn floor_fetch_parse_upsert(base: &str, db: &Path) -> (usize, f64, f64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
         CREATE TABLE user (id TEXT, name TEXT, email TEXT, address TEXT, company TEXT, job TEXT,
                            updatedAt TEXT, createdAt TEXT, PRIMARY KEY (id));",
    )
    .unwrap();
    let sql = "INSERT INTO user VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (id) DO UPDATE SET
               name = excluded.name, email = excluded.email, address = excluded.address, company = excluded.company,
               job = excluded.job, updatedAt = excluded.updatedAt, createdAt = excluded.createdAt";
    let started = Instant::now();
    let cpu = cpu_seconds(libc::RUSAGE_THREAD);
    let rows = keyset_pages(base, |data| {
        conn.execute_batch("BEGIN").unwrap();
        {
            let mut stmt = conn.prepare_cached(sql).unwrap();
            for r in data.as_array().unwrap() {
                let f = |k: &str| r[k].as_str().unwrap_or_default();
                stmt.execute([
                    f("id"),
                    f("name"),
                    f("email"),
                    f("address"),
                    f("company"),
                    f("job"),
                    f("updatedAt"),
                    f("createdAt"),
                ])
                .unwrap();
            }
        }
        conn.execute_batch("COMMIT").unwrap();
    });
    let cpu = cpu_seconds(libc::RUSAGE_THREAD) - cpu;
    (rows, started.elapsed().as_secs_f64(), cpu)
}

/// Floor (c): fetch, parse and binary-`COPY` each page into a PostgreSQL
/// table typed as incsync types it (text, and `timestamptz` for the two
/// times), one transaction per page. Wall time and the loop thread's CPU.
fn floor_fetch_parse_copy(base: &str, url: &str) -> (usize, f64, f64) {
    use chrono::{DateTime, Utc};
    use postgres::binary_copy::BinaryCopyInWriter;
    use postgres::types::Type;
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    client
        .batch_execute(
            "CREATE TABLE \"user\" (id text PRIMARY KEY, name text, email text, address text,
             company text, job text, \"updatedAt\" timestamptz, \"createdAt\" timestamptz)",
        )
        .unwrap();
    let types = [
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
    ];
    let started = Instant::now();
    let cpu = cpu_seconds(libc::RUSAGE_THREAD);
    let rows = keyset_pages(base, |data| {
        let mut tx = client.transaction().unwrap();
        let sink = tx
            .copy_in(
                "COPY \"user\" (id, name, email, address, company, job, \"updatedAt\", \"createdAt\")
                 FROM STDIN BINARY",
            )
            .unwrap();
        let mut writer = BinaryCopyInWriter::new(sink, &types);
        for r in data.as_array().unwrap() {
            let f = |k: &str| r[k].as_str();
            let t = |k: &str| {
                r[k].as_str()
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map(|d| d.with_timezone(&Utc))
            };
            writer
                .write(&[
                    &f("id"),
                    &f("name"),
                    &f("email"),
                    &f("address"),
                    &f("company"),
                    &f("job"),
                    &t("updatedAt"),
                    &t("createdAt"),
                ])
                .unwrap();
        }
        writer.finish().unwrap();
        tx.commit().unwrap();
    });
    let cpu = cpu_seconds(libc::RUSAGE_THREAD) - cpu;
    (rows, started.elapsed().as_secs_f64(), cpu)
}

/// Runs `incsync run` to completion: wall time, peak RSS (KiB) and the
/// process's CPU seconds (user + system, all its threads).
///
/// The peak is the process's own high-water mark (`VmHWM`, reset by exec),
/// sampled every few milliseconds: `wait4`'s `ru_maxrss` would also count the
/// moment between fork and exec, when the child is a copy of this benchmark.
fn incsync_run(
    config: &Path,
    warehouse: impl AsRef<std::ffi::OsStr>,
    cache: &Path,
    extra: &[&str],
) -> (f64, u64, f64) {
    let started = Instant::now();
    // Children are run one at a time: the delta is this one's.
    let cpu = cpu_seconds(libc::RUSAGE_CHILDREN);
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(config)
        .arg("--warehouse")
        .arg(warehouse)
        .arg("--cache-dir")
        .arg(cache)
        .args(extra)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(3));
    };
    assert!(status.success(), "incsync run failed");
    let elapsed = started.elapsed().as_secs_f64();
    (elapsed, peak, cpu_seconds(libc::RUSAGE_CHILDREN) - cpu)
}

/// Answers recorded from the sample API, served from memory.
#[derive(Clone)]
struct Canned(Arc<std::collections::HashMap<String, Vec<u8>>>);

impl Canned {
    fn record(config: &str, base: &str) -> Canned {
        let mut pages = std::collections::HashMap::new();
        let mut http = Client::new(AllowList::new(base, &[]).unwrap(), HttpSettings::default());
        let mut recorder = Recorder(&mut http, &mut pages);
        native::update(config, None, &mut recorder, &mut Discard).unwrap();
        Canned(Arc::new(pages))
    }
}

struct Recorder<'a>(
    &'a mut Client,
    &'a mut std::collections::HashMap<String, Vec<u8>>,
);

impl incsync_host::http::HttpBackend for Recorder<'_> {
    fn fetch(&mut self, request: Request) -> Result<Response, HttpError> {
        let url = request.url.clone();
        let r = self.0.fetch(request)?;
        self.1.insert(url, r.body.clone());
        Ok(r)
    }
}

impl incsync_host::http::HttpBackend for Canned {
    fn fetch(&mut self, request: Request) -> Result<Response, HttpError> {
        let body = self.0.get(&request.url).cloned().expect("a recorded page");
        Ok(Response {
            status: 200,
            headers: vec![],
            body,
        })
    }
}

/// Accepts every write and keeps nothing.
struct Discard;

impl Destination for Discard {
    fn create_tables(&mut self, _: &[Table]) -> anyhow::Result<()> {
        Ok(())
    }
    fn upsert(&mut self, _: &str, batch: Batch) -> Result<(), WriteError> {
        std::hint::black_box(batch);
        Ok(())
    }
    fn checkpoint(&mut self, _: &str) -> Result<(), WriteError> {
        Ok(())
    }
    fn rollback(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
    fn saved_state(&mut self) -> anyhow::Result<Option<String>> {
        Ok(None)
    }
}

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("incsync-bench-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn file(&self, name: &str) -> PathBuf {
        let p = self.0.join(name);
        for suffix in ["", "-wal", "-shm"] {
            let mut q = p.clone().into_os_string();
            q.push(suffix);
            let _ = std::fs::remove_file(q);
        }
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn main() {
    let quick = std::env::var_os("INCSYNC_BENCH_QUICK").is_some();
    let sizes: &[u32] = if quick {
        &[20_000, 100_000]
    } else {
        &[100_000, 1_000_000]
    };
    let dir = Dir::new("main");
    let cache = dir.0.join("cache");
    println!(
        "# incsync benchmarks ({} cores; medians; ratios measured side by side)\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // Warm the compiled-component cache once.
    {
        let api = SampleApi::start(&ServeOptions {
            port: 0,
            records: 10,
            ..ServeOptions::default()
        })
        .unwrap();
        let config = dir.0.join("warm.json");
        std::fs::write(&config, keyset_config(&api.url())).unwrap();
        incsync_run(&config, dir.file("warm.db"), &cache, &[]);
    }

    if section(1) {
        println!("## 1–2, 5. Full sync throughput (keyset endpoint), CPU and peak memory\n");
        println!(
            "`incsync run` as configured by default (a checkpoint per page) and with \
         `\"checkpoint_every_ms\": {HELD_MS}` (T); CPU is user + system seconds per \
         100,000 rows: the whole `incsync run` process, floor (b)'s own thread.\n"
        );
        println!(
            "| N | page | floor (a) rows/s | floor (b) rows/s | incsync rows/s | incsync T rows/s | incsync / (b) | T / (b) | incsync / (a) | (b) CPU s | incsync CPU s | T CPU s | CPU incsync / (b) | CPU T / (b) | peak RSS MiB |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for &n in sizes {
            for page in [50usize, 1000] {
                let api = api_of(n, page);
                let config = dir.0.join("keyset.json");
                std::fs::write(&config, keyset_config(&api.url())).unwrap();
                let held = dir.0.join("keyset-held.json");
                std::fs::write(
                    &held,
                    keyset_config_with(&api.url(), json!({"checkpoint_every_ms": HELD_MS})),
                )
                .unwrap();
                let rounds = if n >= 1_000_000 { 3 } else { 5 };
                let per_100k = 100_000.0 / n as f64;
                let (mut a, mut b, mut c, mut k, mut rss) = (vec![], vec![], vec![], vec![], 0u64);
                let (mut b_cpu, mut c_cpu, mut k_cpu) = (vec![], vec![], vec![]);
                for _ in 0..rounds {
                    // Interleaved, so drift in the machine's load hits all alike.
                    let (rows, t) = floor_fetch_parse(&api.url());
                    assert_eq!(rows, n as usize);
                    a.push(rows as f64 / t);
                    let (rows, t, cpu) =
                        floor_fetch_parse_upsert(&api.url(), &dir.file("floor.db"));
                    b.push(rows as f64 / t);
                    b_cpu.push(cpu * per_100k);
                    let (t, kib, cpu) = incsync_run(&config, dir.file("incsync.db"), &cache, &[]);
                    c.push(n as f64 / t);
                    c_cpu.push(cpu * per_100k);
                    rss = rss.max(kib);
                    let (t, kib, cpu) = incsync_run(&held, dir.file("incsync.db"), &cache, &[]);
                    k.push(n as f64 / t);
                    k_cpu.push(cpu * per_100k);
                    rss = rss.max(kib);
                }
                let (a, b, c, k) = (median(a), median(b), median(c), median(k));
                let (b_cpu, c_cpu, k_cpu) = (median(b_cpu), median(c_cpu), median(k_cpu));
                println!(
                    "| {n} | {page} | {a:.0} | {b:.0} | {c:.0} | {k:.0} | {:.2} | {:.2} | {:.2} | {b_cpu:.2} | {c_cpu:.2} | {k_cpu:.2} | {:.2} | {:.2} | {:.1} |",
                    c / b,
                    k / b,
                    c / a,
                    c_cpu / b_cpu,
                    k_cpu / b_cpu,
                    rss as f64 / 1024.0
                );
            }
        }
    }

    if section(3) {
        println!(
            "\n## 3. Wasm overhead: the same machine, native vs component, same host logic (in process)\n"
        );
        println!("| N | page | native s | component s | component / native |");
        println!("|---:|---:|---:|---:|---:|");
        let runtime = Runtime::new(
            BUNDLED_COMPONENT,
            &ComponentCache::Dir(cache.clone()),
            GuestLimits::default(),
        )
        .unwrap();
        for (n, page) in [(sizes[0], 50usize), (sizes[0], 1000)] {
            let api = api_of(n, page);
            let config = keyset_config(&api.url());
            let tables = runtime.schema(&config).unwrap();
            let backends = || {
                let http = Retrying::new(
                    Client::new(
                        AllowList::new(&api.url(), &[]).unwrap(),
                        HttpSettings::default(),
                    ),
                    Default::default(),
                );
                let mut w =
                    SqliteWarehouse::open(&dir.file("overhead.db"), Durability::Normal).unwrap();
                w.create_tables(&tables).unwrap();
                (http, w)
            };
            let (mut native, mut wasm) = (vec![], vec![]);
            for _ in 0..5 {
                let (mut http, mut w) = backends();
                let started = Instant::now();
                native::update(&config, None, &mut http, &mut w).unwrap();
                native.push(started.elapsed().as_secs_f64());
                let (http, w) = backends();
                let started = Instant::now();
                let (result, _) = runtime.update(&config, None, Box::new(http), Box::new(w));
                result.unwrap();
                wasm.push(started.elapsed().as_secs_f64());
            }
            let (native, wasm) = (median(native), median(wasm));
            println!(
                "| {n} | {page} | {native:.3} | {wasm:.3} | {:.2} |",
                wasm / native
            );
        }

        println!(
            "\nThe machine alone: canned answers from memory, writes discarded (no network, no SQLite):\n"
        );
        println!("| N | page | native s | component s | component / native |");
        println!("|---:|---:|---:|---:|---:|");
        for (n, page) in [(sizes[0], 50usize), (sizes[0], 1000)] {
            let api = api_of(n, page);
            let config = keyset_config(&api.url());
            let canned = Canned::record(&config, &api.url());
            let (mut native, mut wasm) = (vec![], vec![]);
            for _ in 0..5 {
                let started = Instant::now();
                native::update(&config, None, &mut canned.clone(), &mut Discard).unwrap();
                native.push(started.elapsed().as_secs_f64());
                let started = Instant::now();
                let (result, _) =
                    runtime.update(&config, None, Box::new(canned.clone()), Box::new(Discard));
                result.unwrap();
                wasm.push(started.elapsed().as_secs_f64());
            }
            let (native, wasm) = (median(native), median(wasm));
            println!(
                "| {n} | {page} | {native:.3} | {wasm:.3} | {:.2} |",
                wasm / native
            );
        }
    }

    if section(7) {
        println!("\n## 7. Parallel streams: 4 streams, 20 ms a request\n");
        {
            let records = if quick { 1_000 } else { 2_000 };
            let api = SampleApi::start(&ServeOptions {
                port: 0,
                records,
                latency_ms: 20,
                threads: 2,
                ..ServeOptions::default()
            })
            .unwrap();
            let config = dir.0.join("parallel.json");
            std::fs::write(
                &config,
                json!({"base_url": api.url(), "streams": [
                {"table": "a", "strategy": "keyset", "path": "/pagination/keyset"},
                {"table": "b", "strategy": "offset", "path": "/pagination/offset"},
                {"table": "c", "strategy": "timestamp", "path": "/incremental/timestamp"},
                {"table": "d", "strategy": "next_page_url", "path": "/pagination/next_page_url"}]})
                .to_string(),
            )
            .unwrap();
            let mut serial = Vec::new();
            let mut parallel = Vec::new();
            for round in 0..3 {
                for (times, flag) in [(&mut serial, "1"), (&mut parallel, "4")] {
                    let db = dir.file(&format!("parallel-{flag}-{round}.db"));
                    times.push(incsync_run(&config, &db, &cache, &["--parallel", flag]).0);
                }
            }
            let (s, p) = (median(serial), median(parallel));
            println!(
                "| N per stream | serial s (`--parallel 1`) | parallel s (`--parallel 4`) | parallel / serial |"
            );
            println!("|---:|---:|---:|---:|");
            println!("| {records} | {s:.2} | {p:.2} | {:.2} |", p / s);
            println!("\nTarget: parallel / serial ≤ 0.35.");
        }
    }

    if section(4) {
        println!("\n## 4. Cold start: process start to first HTTP request\n");
        println!("| compiled-component cache | median ms | min ms |");
        println!("|---|---:|---:|");
        let api = SampleApi::start(&ServeOptions {
            port: 0,
            records: 100,
            ..ServeOptions::default()
        })
        .unwrap();
        let first: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
        let seen = first.clone();
        api.inject_faults(move |_| {
            seen.lock().unwrap().get_or_insert_with(Instant::now);
            None
        });
        let config = dir.0.join("cold.json");
        std::fs::write(&config, keyset_config(&api.url())).unwrap();
        for (label, extra) in [
            ("warm (second start)", &[][..]),
            ("off (`--no-cache`)", &["--no-cache"][..]),
        ] {
            let mut times = vec![];
            for _ in 0..7 {
                *first.lock().unwrap() = None;
                let started = Instant::now();
                let (args, cache_args): (&[&str], Vec<std::ffi::OsString>) = if extra.is_empty() {
                    (
                        &[],
                        vec!["--cache-dir".into(), cache.clone().into_os_string()],
                    )
                } else {
                    (extra, vec![])
                };
                let status = Command::new(BIN)
                    .args(["run", "--config"])
                    .arg(&config)
                    .arg("--warehouse")
                    .arg(dir.file("cold.db"))
                    .args(args)
                    .args(cache_args)
                    .stdout(std::process::Stdio::null())
                    .status()
                    .unwrap();
                assert!(status.success());
                let at = first.lock().unwrap().expect("a request arrived");
                times.push(at.duration_since(started).as_secs_f64() * 1000.0);
            }
            let min = times.iter().cloned().fold(f64::MAX, f64::min);
            println!("| {label} | {:.1} | {min:.1} |", median(times));
        }
    }

    if section(6) {
        println!("\n## 6. Incremental efficiency: after k of N records change\n");
        let (n, k, page) = (20_000u32, 500u32, 50usize);
        println!(
            "N = {n}, k = {k}, page = {page}: target ⌈k/page⌉ + 1 = {} requests, re-delivered rows only at the cursor boundary (replay: its buffer).\n",
            k.div_ceil(page as u32) + 1
        );
        println!("| strategy | requests | rows upserted | re-delivered | note |");
        println!("|---|---:|---:|---:|---|");
        for info in incsync_guest::STRATEGIES {
            let (strategy, Some(path)) = (info.name, info.seed_path) else {
                continue;
            };
            let api = api_of(n, page);
            let mut stream = json!({"table": "user", "strategy": strategy, "path": path});
            if !info.sees_updates {
                stream["max_id"] = json!(n + k);
                stream["step_size"] = json!(1000);
                stream["max_empty_ranges"] = json!(1);
            }
            let job = SyncJob {
                wait_for_lease: None,
                lease_ttl: None,
                parallel: None,
                config: json!({"base_url": api.url(), "streams": [stream]}).to_string(),
                warehouse: incsync_host::destination::Warehouse::Sqlite(
                    dir.file(&format!("incr-{strategy}.db")),
                ),
                component: ComponentSource::Bundled,
                cache: ComponentCache::Dir(cache.clone()),
                durability: Durability::Normal,
                start_state: None,
            };
            sync::run(&job).unwrap();
            let note = api.with_data(|d| {
                if !info.sees_updates {
                    d.insert(k);
                    "k new ids (it sees no updates); rescans one step"
                } else {
                    // One write per second of the source's clock, as a busy
                    // table sees them (a burst of 500 in one second would be a
                    // tie group larger than a page: the timestamp strategy stops
                    // on that by design).
                    for i in 0..k {
                        d.update(&[i * (n / k) + 1]);
                    }
                    ""
                }
            });
            let report = sync::run(&job).unwrap();
            let upserted: u64 = report.stats.rows.values().sum();
            println!(
                "| {strategy} | {} | {upserted} | {} | {note} |",
                report.stats.requests,
                upserted.saturating_sub(u64::from(k))
            );
        }
    }

    if section(8) {
        postgres_section(sizes, &dir, &cache);
    }

    if section(9) {
        parse_section();
    }
}

/// Section 9: the guest's parse of one answer, natively, into a
/// `serde_json::Value` DOM against `record::Answer` (the records taken out
/// as they are parsed, no map per record), per 100,000 records.
fn parse_section() {
    use incsync_guest::record::Answer;
    println!("\n## 9. Parsing an answer, natively: a DOM against records without a map\n");
    println!("| page | DOM s / 100k records | Answer s / 100k records | Answer / DOM |");
    println!("|---:|---:|---:|---:|");
    for page in [50usize, 1000] {
        let api = api_of(page as u32, page);
        let agent: ureq::Agent = ureq::Agent::config_builder().build().new_agent();
        let body = agent
            .get(format!(
                "{}/pagination/keyset?updated_since=1970-01-01T00%3A00%3A00Z",
                api.url()
            ))
            .call()
            .unwrap()
            .body_mut()
            .read_to_vec()
            .unwrap();
        let path = ["data".to_owned()];
        let times = 100_000 / page;
        let (mut dom, mut flat) = (vec![], vec![]);
        for _ in 0..5 {
            let started = Instant::now();
            for _ in 0..times {
                let v: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(v["data"].as_array().unwrap().len(), page);
            }
            dom.push(started.elapsed().as_secs_f64());
            let started = Instant::now();
            for _ in 0..times {
                let a = Answer::parse(&body, &path).unwrap();
                assert!(a.records.is_some());
            }
            flat.push(started.elapsed().as_secs_f64());
        }
        let (dom, flat) = (median(dom), median(flat));
        println!("| {page} | {dom:.3} | {flat:.3} | {:.2} |", flat / dom);
    }
}

/// Section 8: `incsync run --warehouse postgres://…` against floor (c), on a
/// throwaway server started here (fsync off, as in the tests: the disk is
/// not what is compared), a fresh database for every run.
fn postgres_section(sizes: &[u32], dir: &Dir, cache: &Path) {
    println!("\n## 8. PostgreSQL: `incsync run` against a native COPY loop\n");
    println!(
        "Floor (c) fetches and parses the same pages and binary-`COPY`s each into the \
         table, one transaction per page; CPU as in section 1 (the server's is not counted).\n"
    );
    println!(
        "| N | page | floor (c) rows/s | incsync rows/s | incsync / (c) | (c) CPU s | incsync CPU s | CPU incsync / (c) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let server = pg::Postgres::start();
    let n = sizes[0];
    let mut fresh = 0;
    let mut database = || {
        fresh += 1;
        server.database(&format!("bench{fresh}"))
    };
    for page in [50usize, 1000] {
        let api = api_of(n, page);
        let config = dir.0.join("pg.json");
        std::fs::write(&config, keyset_config(&api.url())).unwrap();
        let per_100k = 100_000.0 / n as f64;
        let (mut c, mut i, mut c_cpu, mut i_cpu) = (vec![], vec![], vec![], vec![]);
        for _ in 0..3 {
            let (rows, t, cpu) = floor_fetch_parse_copy(&api.url(), &database());
            assert_eq!(rows, n as usize);
            c.push(rows as f64 / t);
            c_cpu.push(cpu * per_100k);
            let (t, _, cpu) = incsync_run(&config, database(), cache, &[]);
            i.push(n as f64 / t);
            i_cpu.push(cpu * per_100k);
        }
        let (c, i, c_cpu, i_cpu) = (median(c), median(i), median(c_cpu), median(i_cpu));
        println!(
            "| {n} | {page} | {c:.0} | {i:.0} | {:.2} | {c_cpu:.2} | {i_cpu:.2} | {:.2} |",
            i / c,
            i_cpu / c_cpu
        );
    }
    println!("\nTarget: incsync / (c) ≥ 0.8.");
}
