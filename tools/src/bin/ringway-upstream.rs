//! Placeholder; replaced by the test and fault upstream.
fn main() {}
