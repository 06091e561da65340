//! Compiled components kept on disk, so that a second start skips Cranelift.
//!
//! A cache entry is keyed by the SHA-256 of the component's bytes and by the
//! engine's compatibility hash (wasmtime's version and every compilation
//! setting), so a new wasmtime or another config never loads a stale entry.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where compiled components are kept, if anywhere.
#[derive(Debug, Clone)]
pub enum ComponentCache {
    /// Compile every time.
    Off,
    /// Keep compiled components in this directory.
    Dir(PathBuf),
}

/// Whether a load was served from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded a compiled component from disk.
    Hit,
    /// Compiled, and saved the result.
    Miss,
    /// Compiled; the cache is off.
    Off,
}

impl ComponentCache {
    /// The default: `$INCSYNC_CACHE_DIR`, else `$XDG_CACHE_HOME/incsync`, else
    /// `~/.cache/incsync`; off if none of them can be found.
    pub fn default_location() -> ComponentCache {
        let dir = std::env::var_os("INCSYNC_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("incsync"))
            })
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/incsync")));
        dir.map_or(ComponentCache::Off, ComponentCache::Dir)
    }

    /// Loads `wasm` as a component, from the cache when it holds it.
    pub fn load(&self, engine: &Engine, wasm: &[u8]) -> Result<(Component, CacheOutcome)> {
        let ComponentCache::Dir(dir) = self else {
            return Ok((compile(engine, wasm)?, CacheOutcome::Off));
        };
        let path = dir.join(entry_name(engine, wasm));
        if path.exists() {
            // SAFETY: the file was written by `Component::serialize` of an
            // engine with the same compatibility hash (its name says so), into
            // a directory this user owns; wasmtime checks the header again.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(e) => tracing::debug!("ignoring cache entry {}: {e}", path.display()),
            }
        }
        let component = compile(engine, wasm)?;
        if let Err(e) = store(&path, &component) {
            tracing::warn!(
                "could not cache the compiled component in {}: {e:#}",
                dir.display()
            );
        }
        Ok((component, CacheOutcome::Miss))
    }
}

fn compile(engine: &Engine, wasm: &[u8]) -> Result<Component> {
    Component::new(engine, wasm)
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .context("the component does not compile")
}

fn entry_name(engine: &Engine, wasm: &[u8]) -> String {
    let mut engine_hash = DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let digest = Sha256::digest(wasm);
    format!(
        "{}-{:016x}.cwasm",
        hex::encode(&digest[..16]),
        engine_hash.finish()
    )
}

fn store(path: &Path, component: &Component) -> Result<()> {
    let dir = path.parent().context("cache path has a parent")?;
    std::fs::create_dir_all(dir)?;
    let bytes = component
        .serialize()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    // Write then rename, so a concurrent or killed writer never leaves a
    // truncated entry behind.
    let tmp = dir.join(format!(
        ".{}.{}",
        std::process::id(),
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
