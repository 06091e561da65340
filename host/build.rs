//! Builds the connector (the guest crate) into a `wasm32-wasip2` component
//! and hands its path to the host as `INCSYNC_GUEST_WASM`, so that the host
//! library bundles it (`runtime::BUNDLED_COMPONENT`).

#[path = "../build-support/component.rs"]
mod component;

fn main() {
    println!("cargo:rerun-if-env-changed=INCSYNC_GUEST_PREBUILT");
    let wasm = match std::env::var("INCSYNC_GUEST_PREBUILT") {
        Ok(prebuilt) => {
            let out = std::path::Path::new(&std::env::var("OUT_DIR").expect("set by cargo"))
                .join("incsync_guest.wasm");
            std::fs::copy(&prebuilt, &out).expect("copy INCSYNC_GUEST_PREBUILT");
            out
        }
        Err(_) => component::build(
            "incsync-guest",
            "incsync_guest",
            &["guest/src", "guest/Cargo.toml", "build-support"],
        ),
    };
    println!("cargo:rustc-env=INCSYNC_GUEST_WASM={}", wasm.display());
}
