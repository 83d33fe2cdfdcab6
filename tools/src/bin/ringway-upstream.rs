//! `ringway-upstream`: the project's HTTP/1.1 test and fault upstream. All logic lives in
//! `ringway_tools::upstream`; this is only the CLI entry point.
use clap::Parser;
use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() {
    let opts = ringway_tools::upstream::Options::parse();
    let listen = opts.listen;
    if let Err(e) = ringway_tools::upstream::run(opts) {
        eprintln!("ringway-upstream: cannot serve on {listen}: {e}");
        std::process::exit(1);
    }
}
