//! `ringway-load`: the project's HTTP/1.1 load generator. All logic lives in
//! `ringway_tools::load`; this is only the CLI entry point.
use clap::Parser;
use mimalloc::MiMalloc;

#[used]
#[link_section = ".init_array.00101"]
static LAZY_ARENA_COMMIT: extern "C" fn() = ringway_tools::alloc::lazy_arena_commit;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() {
    let opts = ringway_tools::load::Options::parse();
    std::process::exit(ringway_tools::load::main_with(&opts));
}
