//! Fuzz target: `ringway::http::fuzz_logic::chunked` (the assertions live in the library).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ringway::http::fuzz_logic::chunked(data);
});
