//! Fuzz target: `ringway::tls::fuzz_logic` (the TLS listener's entry: rustls server config
//! as the workers build it, peer-certificate identity extraction, ClientHello inspection;
//! the assertions live in the library).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ringway::tls::fuzz_logic::fuzz_logic(data);
});
