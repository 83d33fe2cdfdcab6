//! The `ringway` binary: CLI, logging, exit codes. The only home of `anyhow`.
use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() {
    println!("ringway {}", env!("CARGO_PKG_VERSION"));
}
