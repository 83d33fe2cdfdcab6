//! Differential fuzz target: `ringway::proxy::fuzz_logic::exchange` drives the real proxy loop
//! (runtime, io_uring driver, exchange, pool) in this process against a recording upstream and
//! checks what both sides receive with an independent strict reader.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ringway::proxy::fuzz_logic::exchange(data);
});
