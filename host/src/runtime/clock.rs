//! The guest's monotonic clock and its waits. A guest that sleeps (WASI's
//! `subscribe-duration` or `subscribe-instant`, then `block` or `poll`)
//! waits inside the host, where epoch interruption cannot stop it; so every
//! wait is cut to the time the sandbox's limits leave (`deadline_seconds`
//! since the last progress, `max_run_seconds` since the run began). A wait
//! counts as computing: once it ends, the guest is stopped at its next tick.

use super::HostState;
use std::time::{Duration, Instant};
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::HostMonotonicClock;
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};

/// The WASI interface whose waits are replaced: the version
/// `wasmtime-wasi` links (a guest importing an older 0.2 version is served
/// by it too).
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// The guest's monotonic clock: nanoseconds since `start`.
#[derive(Clone, Copy)]
pub struct GuestClock {
    /// The clock's zero.
    pub start: Instant,
}

impl GuestClock {
    fn now_nanos(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl HostMonotonicClock for GuestClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        self.now_nanos()
    }
}

/// A wait, ready at `until` (`None`: at once, after yielding once to the
/// executor as `wasmtime-wasi`'s own zero wait does).
struct Wait {
    until: Option<tokio::time::Instant>,
    yielded: bool,
}

#[wasmtime_wasi::async_trait]
impl Pollable for Wait {
    async fn ready(&mut self) {
        match self.until {
            Some(until) => tokio::time::sleep_until(until).await,
            None if !self.yielded => {
                self.yielded = true;
                tokio::task::yield_now().await
            }
            None => {}
        }
    }
}

/// A wait of `asked`, cut to the time the guest's limits leave.
fn wait(
    store: &mut StoreContextMut<'_, HostState>,
    asked: Duration,
) -> wasmtime::Result<Resource<DynPollable>> {
    let data = store.data_mut();
    let granted = asked.min(data.time_left());
    let until = (!granted.is_zero())
        .then(|| tokio::time::Instant::now().checked_add(granted))
        .flatten();
    let wait = data.table.push(Wait {
        until,
        yielded: false,
    })?;
    subscribe(&mut data.table, wait)
}

/// Replaces WASI's `subscribe-duration` and `subscribe-instant` in `linker`
/// (which must already hold WASI) with waits cut to the guest's limits.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap(
        "subscribe-duration",
        |mut store: StoreContextMut<'_, HostState>, (nanos,): (u64,)| {
            Ok((wait(&mut store, Duration::from_nanos(nanos))?,))
        },
    )?;
    clock.func_wrap(
        "subscribe-instant",
        |mut store: StoreContextMut<'_, HostState>, (when,): (u64,)| {
            let now = store.data().clock.now_nanos();
            Ok((wait(
                &mut store,
                Duration::from_nanos(when.saturating_sub(now)),
            )?,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
