//! `ringway-tcp`: TCP test peer (echo, source, sink, hold) and load driver for L4 proxying.
//! All logic lives in `ringway_tools::tcp`; this is only the CLI entry point.
use clap::Parser;
use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

#[used]
#[link_section = ".init_array.00101"]
static LAZY_ARENA_COMMIT: extern "C" fn() = ringway_tools::alloc::lazy_arena_commit;

fn main() {
    if let Err(e) = ringway_tools::tcp::run(ringway_tools::tcp::Cli::parse()) {
        eprintln!("ringway-tcp: {e:#}");
        std::process::exit(1);
    }
}
