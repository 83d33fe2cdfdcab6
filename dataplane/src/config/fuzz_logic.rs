//! Bodies of the fuzz targets that read config text (`fuzz/fuzz_targets/config.rs`).
//!
//! Invariant checked: `parse` never panics on any input, and whatever it accepts renders to
//! TOML that parses back to an equal config.

/// Parses arbitrary bytes as a config file; on success, checks the render round trip.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = super::parse(text) {
        let rendered = cfg.render_toml();
        match super::parse(&rendered) {
            Ok(again) => assert_eq!(
                cfg, again,
                "render round trip changed the config:\n{rendered}"
            ),
            Err(e) => panic!("rendered config does not parse: {e}\n{rendered}"),
        }
    }
}
