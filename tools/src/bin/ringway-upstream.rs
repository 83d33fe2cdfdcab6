//! `ringway-upstream`: the project's HTTP/1.1 test and fault upstream. All logic lives in
//! `ringway_tools::upstream`; this is only the CLI entry point.
//!
//! mimalloc with lazy arena commit (`ringway_tools::alloc`): with eager commit, a thread per
//! connection cost ~750 KiB of RSS per connection.
use clap::Parser;
use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

#[used]
#[link_section = ".init_array.00101"]
static LAZY_ARENA_COMMIT: extern "C" fn() = ringway_tools::alloc::lazy_arena_commit;

fn main() {
    let opts = ringway_tools::upstream::Options::parse();
    let listen = opts.listen;
    if let Err(e) = ringway_tools::upstream::run(opts) {
        eprintln!("ringway-upstream: cannot serve on {listen}: {e}");
        std::process::exit(1);
    }
}
