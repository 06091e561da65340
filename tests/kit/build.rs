//! Builds the sandbox tests' misbehaving component (`tests/hostile`) and
//! hands its path to the kit as `INCSYNC_HOSTILE_WASM`.

#[path = "../../build-support/component.rs"]
mod component;

fn main() {
    let wasm = component::build(
        "incsync-hostile",
        "incsync_hostile",
        &[
            "tests/hostile/src",
            "tests/hostile/Cargo.toml",
            "build-support",
        ],
    );
    println!("cargo:rustc-env=INCSYNC_HOSTILE_WASM={}", wasm.display());
}
