//! `ringway-upstream`: the project's HTTP/1.1 test and fault upstream. All logic lives in
//! `ringway_tools::upstream`; this is only the CLI entry point.
//!
//! The system allocator on purpose: with a thread per connection, mimalloc's per-thread
//! heaps cost ~750 KiB of RSS per connection (2.2 GB at 3,000 connections vs 143 MB).
use clap::Parser;

fn main() {
    let opts = ringway_tools::upstream::Options::parse();
    let listen = opts.listen;
    if let Err(e) = ringway_tools::upstream::run(opts) {
        eprintln!("ringway-upstream: cannot serve on {listen}: {e}");
        std::process::exit(1);
    }
}
