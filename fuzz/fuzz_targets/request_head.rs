//! Fuzz target: `ringway::http::fuzz_logic::request_head` (the assertions live in the library).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ringway::http::fuzz_logic::request_head(data);
});
