//! Builds a crate of the workspace into a `wasm32-wasip2` component, for a
//! build script: `host/build.rs` bundles the connector, `tests/kit/build.rs`
//! the sandbox tests' hostile component.
//!
//! The component is built by a nested `cargo build` with a target directory
//! of its own (beside the calling build's), in a release profile tuned for
//! speed and size.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `package` (its lib is `lib_name`) and copies the component into
/// this build's `OUT_DIR`; returns its path there. `watched` (paths from the
/// workspace root) rebuild it when they change.
pub fn build(package: &str, lib_name: &str, watched: &[&str]) -> PathBuf {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .ancestors()
        .find(|d| d.join("Cargo.lock").exists())
        .expect("a crate of the workspace");
    for watched in watched.iter().chain(&["wit", "Cargo.lock"]) {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    let wasm = out_dir.join(format!("{lib_name}.wasm"));
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out: put the
    // components' own target directory beside <profile>, so it stays warm
    // across builds (and both build scripts share it).
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .map(|t| t.join("guest"))
        .unwrap_or_else(|| root.join("target").join("guest"));
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            "wasm32-wasip2",
            "-p",
            package,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "3")
        .env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo")
        .env("CARGO_PROFILE_RELEASE_INCREMENTAL", "false");
    // Flags and wrappers meant for the calling build (clippy, coverage, the
    // host's RUSTFLAGS) must not leak into the wasm build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    // A call costs more in wasm than natively: Wasmtime checks its epoch
    // deadline (the sandbox's compute limit) on entry to every function. LLVM
    // inlining more of the small parse functions measured ~12% off the
    // machine's time (BENCHMARKS.md, section 3), for a component ~0.6 MB
    // larger; 400 gained little, 3000 no more than 1000.
    cmd.env("RUSTFLAGS", "-C llvm-args=-inline-threshold=1000");
    let status = cmd.status().expect("run cargo to build a component");
    assert!(
        status.success(),
        "building the {package} component failed; is the target installed? run `rustup target add wasm32-wasip2`"
    );
    let built = target_dir
        .join("wasm32-wasip2/release")
        .join(format!("{lib_name}.wasm"));
    copy(&built, &wasm);
    wasm
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
}
