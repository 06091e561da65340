//! Compiled components kept on disk, so that a second start skips Cranelift.
//!
//! A cache entry is keyed by the SHA-256 of the component's bytes and by the
//! engine's compatibility hash (wasmtime's version and every compilation
//! setting), so a new wasmtime or another config never loads a stale entry.
//!
//! Loading an entry runs native code from disk (wasmtime's `unsafe`
//! deserialize), so the cache trusts nothing it did not check: the directory
//! is created `0700` and refused if another user owns it or others may write
//! to it; entries are opened without following symlinks, must be regular
//! files of this user, and must match the SHA-256 written beside them. On
//! any doubt the component is compiled instead.

use anyhow::{Context, Result, bail};
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
    /// Compiled; the cache is off (or its directory was refused).
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

    /// Loads `wasm` as a component, from the cache when it holds a verified
    /// entry of it.
    pub fn load(&self, engine: &Engine, wasm: &[u8]) -> Result<(Component, CacheOutcome)> {
        let ComponentCache::Dir(dir) = self else {
            return Ok((compile(engine, wasm)?, CacheOutcome::Off));
        };
        if let Err(e) = trusted_dir(dir) {
            tracing::warn!("not using the component cache {}: {e:#}", dir.display());
            return Ok((compile(engine, wasm)?, CacheOutcome::Off));
        }
        let path = dir.join(entry_name(engine, wasm));
        match read_verified(&path) {
            Ok(bytes) => {
                // SAFETY: the bytes were written by `Component::serialize` of
                // an engine with the same compatibility hash (the name says
                // so), into a directory only this user may write, as a regular
                // file of this user, and they match the digest written beside
                // them; wasmtime checks the header again.
                match unsafe { Component::deserialize(engine, &bytes) } {
                    Ok(component) => return Ok((component, CacheOutcome::Hit)),
                    Err(e) => tracing::debug!("ignoring cache entry {}: {e}", path.display()),
                }
            }
            Err(e) => tracing::debug!("not loading cache entry {}: {e:#}", path.display()),
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

/// The file beside an entry that holds its SHA-256, in hex.
fn digest_path(entry: &Path) -> PathBuf {
    let mut name = entry.as_os_str().to_owned();
    name.push(".sha256");
    PathBuf::from(name)
}

use crate::files::{read_own, trusted_dir};

/// An entry's bytes, if they match the digest beside them.
fn read_verified(path: &Path) -> Result<Vec<u8>> {
    let bytes = read_own(path)?;
    let digest = read_own(&digest_path(path))?;
    if hex::encode(Sha256::digest(&bytes)).as_bytes() != digest.trim_ascii() {
        bail!("it does not match its digest");
    }
    Ok(bytes)
}

fn store(path: &Path, component: &Component) -> Result<()> {
    let bytes = component
        .serialize()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    // Written new and renamed into place: a killed writer leaves no
    // truncated entry, and a symlink there is replaced, not written through.
    crate::files::replace(path, &bytes)?;
    crate::files::replace(
        &digest_path(path),
        hex::encode(Sha256::digest(&bytes)).as_bytes(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::euid;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// The smallest component: compiles in no time.
    const EMPTY: &[u8] = b"\0asm\x0d\0\x01\0";

    fn load(dir: &Path) -> CacheOutcome {
        let engine = Engine::default();
        ComponentCache::Dir(dir.to_owned())
            .load(&engine, EMPTY)
            .unwrap()
            .1
    }

    fn entry(dir: &Path) -> PathBuf {
        dir.join(entry_name(&Engine::default(), EMPTY))
    }

    #[test]
    fn the_directory_is_private_and_a_second_load_hits() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/cache");
        assert_eq!(load(&dir), CacheOutcome::Miss);
        let mode = std::fs::metadata(&dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700, "{mode:o}");
        let mode = std::fs::metadata(entry(&dir)).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
        assert_eq!(load(&dir), CacheOutcome::Hit);
    }

    #[test]
    fn a_tampered_entry_is_compiled_again_not_loaded() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("cache");
        load(&dir);
        let mut bytes = std::fs::read(entry(&dir)).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(entry(&dir), &bytes).unwrap();
        assert_eq!(load(&dir), CacheOutcome::Miss);
        assert_eq!(load(&dir), CacheOutcome::Hit, "rewritten");
    }

    #[test]
    fn a_symlinked_entry_is_neither_loaded_nor_written_through() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("cache");
        load(&dir);
        let elsewhere = root.path().join("elsewhere.cwasm");
        std::fs::rename(entry(&dir), &elsewhere).unwrap();
        let before = std::fs::read(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, entry(&dir)).unwrap();
        assert_eq!(load(&dir), CacheOutcome::Miss);
        assert!(!std::fs::symlink_metadata(entry(&dir)).unwrap().is_symlink());
        assert_eq!(std::fs::read(&elsewhere).unwrap(), before);
    }

    #[test]
    fn a_directory_others_may_write_or_own_is_not_used() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("cache");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(load(&dir), CacheOutcome::Off);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "nothing written"
        );
        if euid() == 0 {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
            std::os::unix::fs::chown(&dir, Some(4242), None).unwrap();
            assert_eq!(load(&dir), CacheOutcome::Off);
        }
    }
}
