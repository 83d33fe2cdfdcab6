#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ringway::config::fuzz_logic::config(data));
