//! Declares `cfg(tokio_unstable)`, which the simulation's runner uses to seed tokio's
//! thread-local random generator (see `src/runner.rs`, `with_seeded_tokio_rng`).
fn main() {
    println!("cargo::rustc-check-cfg=cfg(tokio_unstable)");
}
