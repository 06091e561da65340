//! Builds the guest crate into a `wasm32-wasip2` component and hands its path
//! to the host as `INCSYNC_GUEST_WASM`, so that the `incsync` binary bundles it.
//!
//! The guest is built by a nested `cargo build` with a target directory of its
//! own (beside this build's), in a release profile tuned for speed and size.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir.parent().expect("host/ sits in the workspace");
    for watched in [
        "guest/src",
        "guest/Cargo.toml",
        "tests/hostile/src",
        "tests/hostile/Cargo.toml",
        "wit",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=INCSYNC_GUEST_PREBUILT");

    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    let wasm = out_dir.join("incsync_guest.wasm");
    let hostile = out_dir.join("incsync_hostile.wasm");
    if let Ok(prebuilt) = env::var("INCSYNC_GUEST_PREBUILT") {
        std::fs::copy(&prebuilt, &wasm).expect("copy INCSYNC_GUEST_PREBUILT");
    } else {
        build_components(root, &out_dir, &wasm, &hostile);
    }
    println!("cargo:rustc-env=INCSYNC_GUEST_WASM={}", wasm.display());
    // The sandbox tests' misbehaving component (tests/hostile).
    println!("cargo:rustc-env=INCSYNC_HOSTILE_WASM={}", hostile.display());
}

fn build_components(root: &Path, out_dir: &Path, wasm: &Path, hostile: &Path) {
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out: put the guest's
    // own target directory beside <profile>, so it stays warm across builds.
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
            "incsync-guest",
            "-p",
            "incsync-hostile",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "3")
        .env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo")
        .env("CARGO_PROFILE_RELEASE_INCREMENTAL", "false");
    // Flags and wrappers meant for the host build (clippy, coverage, the
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
    let status = cmd
        .status()
        .expect("run cargo to build the guest component");
    assert!(
        status.success(),
        "building the guest component failed; is the target installed? run `rustup target add wasm32-wasip2`"
    );
    let built = target_dir.join("wasm32-wasip2/release");
    std::fs::copy(built.join("incsync_guest.wasm"), wasm).expect("copy the built guest component");
    std::fs::copy(built.join("incsync_hostile.wasm"), hostile).expect("copy the hostile component");
}
