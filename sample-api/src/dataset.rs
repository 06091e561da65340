//! The sample API's data: N deterministic `user` records for a seed, kept as
//! compact numbers and rendered to JSON only when asked for, so millions fit.

use serde::Serialize;

/// The first `createdAt`: 2024-01-01T00:00:00Z.
const BASE: i64 = 1_704_067_200;

/// One record's changing parts; everything else derives from (seed, id, version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rec {
    /// `createdAt`, seconds since the epoch.
    pub created: i64,
    /// `updatedAt`, seconds since the epoch.
    pub updated: i64,
    /// Bumped by every update, and part of the rendered fields.
    pub version: u32,
    /// Deleted records keep their slot, so ids stay stable.
    pub deleted: bool,
}

/// The whole table, indexed by `updatedAt`.
#[derive(Debug, Clone)]
pub struct Dataset {
    seed: u64,
    /// Record `id` sits at index `id - 1`.
    records: Vec<Rec>,
    /// `(updated, id)`, ascending: the order every `updatedAt` endpoint uses.
    by_updated: Vec<(i64, u32)>,
    /// The source's clock: the last timestamp given to a write.
    clock: i64,
}

/// A record as the API renders it, fields in the seeds' order.
#[derive(Debug, Serialize)]
pub struct UserJson<'a> {
    pub id: &'a str,
    pub name: String,
    pub email: String,
    pub address: String,
    pub company: &'static str,
    pub job: &'static str,
    #[serde(rename = "createdAt")]
    pub created_at: String,
    #[serde(rename = "updatedAt")]
    pub updated_at: String,
}

pub(crate) fn mix(mut x: u64) -> u64 {
    // splitmix64
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

const FIRST: &[&str] = &[
    "Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Dennis",
    "Margaret", "Tony", "Leslie", "Niklaus", "Shafi", "John",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Turing",
    "Hopper",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Perlman",
    "Ritchie",
    "Hamilton",
    "Hoare",
    "Lamport",
    "Wirth",
    "Goldwasser",
    "Backus",
];
const STREETS: &[&str] = &[
    "Main", "Oak", "Pine", "Maple", "Cedar", "Elm", "Lake", "Hill",
];
const CITIES: &[&str] = &[
    "Springfield",
    "Riverton",
    "Fairview",
    "Greenville",
    "Madison",
    "Georgetown",
    "Salem",
    "Franklin",
];
const COMPANIES: &[&str] = &[
    "Acme Corp",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Stark Industries",
    "Wayne Enterprises",
    "Cyberdyne",
];
const JOBS: &[&str] = &[
    "Data Engineer",
    "Analyst",
    "Designer",
    "Accountant",
    "Nurse",
    "Teacher",
    "Pilot",
    "Chemist",
];

/// The seeds' timestamps (`2024-01-15T10:30:00Z`), from their contract.
pub use incsync_seeds::{format_ts, parse_ts};

impl Dataset {
    /// `n` records for `seed`: one created about every minute from 2024-01-01,
    /// each updated up to two hours after its creation.
    pub fn generate(n: u32, seed: u64) -> Dataset {
        Dataset::generate_with_ties(n, seed, 1)
    }

    /// As [`generate`](Dataset::generate), with every `ties` consecutive ids
    /// sharing one `updatedAt` (the latest of theirs).
    pub fn generate_with_ties(n: u32, seed: u64, ties: u32) -> Dataset {
        let mut records: Vec<Rec> = (1..=n)
            .map(|id| {
                let h = mix(seed ^ mix(u64::from(id)));
                let created = BASE + i64::from(id - 1) * 60 + (h % 60) as i64;
                let updated = created + ((h >> 16) % 7200) as i64;
                Rec {
                    created,
                    updated,
                    version: 0,
                    deleted: false,
                }
            })
            .collect();
        for group in records.chunks_mut(ties.max(1) as usize) {
            let t = group.iter().map(|r| r.updated).max().unwrap_or(BASE);
            group.iter_mut().for_each(|r| r.updated = t);
        }
        let mut by_updated: Vec<(i64, u32)> = records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.updated, i as u32 + 1))
            .collect();
        by_updated.sort_unstable();
        let clock = by_updated.last().map_or(BASE, |&(t, _)| t);
        Dataset {
            seed,
            records,
            by_updated,
            clock,
        }
    }

    /// The number of records.
    pub fn len(&self) -> usize {
        self.by_updated.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_updated.is_empty()
    }

    /// The record with `id`, if it exists (and was not deleted).
    pub fn get(&self, id: u32) -> Option<&Rec> {
        self.records
            .get((id as usize).checked_sub(1)?)
            .filter(|r| !r.deleted)
    }

    /// The largest id ever handed out.
    pub fn max_id(&self) -> u32 {
        self.records.len() as u32
    }

    /// Deletes records (hard deletes, as an API that leaves gaps in its ids).
    pub fn delete(&mut self, ids: &[u32]) {
        for &id in ids {
            let Some(rec) = self.records.get_mut((id as usize).wrapping_sub(1)) else {
                continue;
            };
            if !rec.deleted {
                rec.deleted = true;
                if let Ok(i) = self.by_updated.binary_search(&(rec.updated, id)) {
                    self.by_updated.remove(i);
                }
            }
        }
    }

    /// `(updated, id)` of every record, oldest first.
    pub fn by_updated(&self) -> &[(i64, u32)] {
        &self.by_updated
    }

    /// The records updated at or after `since`, oldest first.
    pub fn updated_since(&self, since: i64) -> &[(i64, u32)] {
        let start = self.by_updated.partition_point(|&(t, _)| t < since);
        &self.by_updated[start..]
    }

    /// The largest `updatedAt`.
    pub fn max_updated(&self) -> Option<i64> {
        self.by_updated.last().map(|&(t, _)| t)
    }

    /// The next timestamp of the source's clock, `step` seconds on.
    fn tick(&mut self, step: i64) -> i64 {
        self.clock += step.max(0);
        self.clock
    }

    /// Updates `ids` (each gets a new version) at the clock's next second,
    /// all with the same `updatedAt`. Unknown ids are skipped.
    pub fn update(&mut self, ids: &[u32]) -> i64 {
        let at = self.tick(1);
        for &id in ids {
            self.set_updated(id, at);
        }
        at
    }

    /// Moves record `id` to `updatedAt = at` (any time, even in the past: a
    /// row that a replica shows late), with a new version.
    pub fn set_updated(&mut self, id: u32, at: i64) {
        let Some(rec) = self.records.get_mut((id as usize).wrapping_sub(1)) else {
            return;
        };
        if rec.deleted {
            return;
        }
        let old = (rec.updated, id);
        rec.updated = at;
        rec.version += 1;
        if let Ok(i) = self.by_updated.binary_search(&old) {
            self.by_updated.remove(i);
        }
        let j = self.by_updated.partition_point(|&k| k < (at, id));
        self.by_updated.insert(j, (at, id));
        self.clock = self.clock.max(at);
    }

    /// Appends `k` new records, created and updated at the clock's next
    /// second. Returns their ids.
    pub fn insert(&mut self, k: u32) -> std::ops::RangeInclusive<u32> {
        let at = self.tick(1);
        let first = self.records.len() as u32 + 1;
        for id in first..first + k {
            self.records.push(Rec {
                created: at,
                updated: at,
                version: 0,
                deleted: false,
            });
            self.by_updated.push((at, id));
        }
        first..=first + k - 1
    }

    /// Renders record `id` (which must exist) as the API shows it; `id_text`
    /// is its id as text.
    pub fn render<'a>(&self, id: u32, id_text: &'a str) -> UserJson<'a> {
        let rec = self.records[id as usize - 1];
        let h = mix(self.seed
            ^ mix(u64::from(id))
            ^ u64::from(rec.version).wrapping_mul(0x2545_f491_4f6c_dd1d));
        let pick =
            |list: &'static [&'static str], shift: u32| list[((h >> shift) as usize) % list.len()];
        let (first, last) = (pick(FIRST, 0), pick(LAST, 8));
        UserJson {
            id: id_text,
            name: format!("{first} {last}"),
            email: format!(
                "{}.{}{id}@example.com",
                first.to_ascii_lowercase(),
                last.to_ascii_lowercase()
            ),
            address: format!(
                "{} {} St, {} {:05}",
                (h >> 16) % 9000 + 100,
                pick(STREETS, 28),
                pick(CITIES, 32),
                (h >> 40) % 100_000
            ),
            company: pick(COMPANIES, 36),
            job: pick(JOBS, 44),
            created_at: format_ts(rec.created),
            updated_at: format_ts(rec.updated),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_data() {
        let a = Dataset::generate(1000, 7);
        let b = Dataset::generate(1000, 7);
        let c = Dataset::generate(1000, 8);
        assert_eq!(a.by_updated(), b.by_updated());
        assert_ne!(a.by_updated(), c.by_updated());
        assert_eq!(
            serde_json::to_string(&a.render(5, "5")).unwrap(),
            serde_json::to_string(&b.render(5, "5")).unwrap()
        );
    }

    #[test]
    fn writes_keep_the_index_sorted_and_move_forward() {
        let mut d = Dataset::generate(100, 1);
        let max = d.max_updated().unwrap();
        let at = d.update(&[3, 4]);
        assert!(at > max);
        let ids = d.insert(2);
        assert_eq!(ids, 101..=102);
        assert!(d.by_updated().windows(2).all(|w| w[0] < w[1]));
        assert_eq!(d.len(), 102);
        assert_eq!(d.updated_since(at).len(), 4);
        assert_eq!(d.get(3).unwrap().version, 1);
        d.set_updated(5, BASE);
        assert_eq!(d.by_updated()[0], (BASE, 5));
    }

    #[test]
    fn ties_share_one_timestamp() {
        let d = Dataset::generate_with_ties(100, 1, 10);
        let mut counts = std::collections::BTreeMap::new();
        for &(t, _) in d.by_updated() {
            *counts.entry(t).or_insert(0) += 1;
        }
        assert!(counts.values().all(|&c| c % 10 == 0), "{counts:?}");
        assert!(
            d.by_updated()
                .iter()
                .all(|&(t, id)| t >= d.get(id).unwrap().created)
        );
    }

    #[test]
    fn timestamps_round_trip_and_are_strict() {
        assert_eq!(parse_ts(&format_ts(BASE)), Some(BASE));
        assert_eq!(parse_ts("2024-01-01T00:00:00"), None);
        assert_eq!(parse_ts("2024-01-01 00:00:00Z"), None);
    }
}
