//! Fuzz target: `ringway::transport::proxy_protocol::fuzz_logic` (PROXY protocol v1/v2 header
//! parsing; the assertions live in the library).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ringway::transport::proxy_protocol::fuzz_logic(data);
});
