//! Configuration: the TOML file of CONFIG.md, parsed (`raw`), validated with line numbers
//! (`validate`) into the typed, immutable [`Config`] of `model`, and rendered back (`render`).
//!
//! Invariant: a [`Config`] that exists is valid — every cluster reference resolved to a
//! [`ClusterId`], every duration and size parsed and bounded. Nothing downstream re-checks.
//! [`parse`] reports every problem it finds (not only the first), each with its line where
//! the file has one. Unknown keys are all reported at once; a syntax or type error stops
//! parsing, so only the first of those is reported.

mod address;
mod duration;
pub mod fuzz_logic;
mod keys;
pub mod model;
mod paths;
mod raw;
mod render;
mod validate;

use std::fmt;
use std::path::Path;

pub use duration::DurationError;
pub use model::*;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", display_error(*.line, .message))]
pub struct ConfigError {
    /// 1-based line of the offending key or value, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters), when known.
    pub col: Option<usize>,
    /// What is wrong, prefixed with the key path (`listeners[0].routes[1]: ...`) where useful.
    pub message: String,
}

fn display_error(line: Option<usize>, message: &str) -> String {
    match line {
        Some(line) => format!("line {line}: {message}"),
        None => message.to_string(),
    }
}

impl ConfigError {
    /// An error without a position (e.g. a missing file, a missing table).
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError {
            line: None,
            col: None,
            message: message.into(),
        }
    }

    /// An error at byte offset `offset` of `text`.
    pub(crate) fn at(text: &str, offset: usize, message: impl Into<String>) -> Self {
        let (line, col) = line_col(text, offset);
        ConfigError {
            line: Some(line),
            col: Some(col),
            message: message.into(),
        }
    }
}

/// 1-based (line, column) of byte `offset` in `text`; offsets past the end clamp to the end.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let bytes = text.as_bytes();
    let offset = offset.min(bytes.len());
    let before = bytes.get(..offset).unwrap_or(bytes);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let col = match text.get(line_start..offset) {
        Some(s) => s.chars().count(),
        None => offset - line_start,
    };
    (line, col + 1)
}

/// Every problem found in a config file; never empty. `Display` prints one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(Vec<ConfigError>);

impl ConfigErrors {
    /// `None` when `errors` is empty. Errors are ordered by line (positionless ones first),
    /// keeping discovery order within a line.
    pub fn from_vec(mut errors: Vec<ConfigError>) -> Option<Self> {
        if errors.is_empty() {
            return None;
        }
        errors.sort_by_key(|e| e.line);
        Some(ConfigErrors(errors))
    }

    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }

    pub fn into_vec(self) -> Vec<ConfigError> {
        self.0
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Parses and validates the text of a config file.
pub fn parse(text: &str) -> Result<Config, ConfigErrors> {
    match toml::from_str::<raw::RawConfig>(text) {
        Ok(raw) => validate::validate(text, raw),
        Err(e) => {
            // serde stops at the first unknown key; the key scan finds all of them.
            let mut errors = keys::unknown_keys(text);
            if errors.is_empty() || !e.message().starts_with("unknown field") {
                errors.push(toml_error(text, &e));
            }
            Err(ConfigErrors::from_vec(errors).unwrap_or_else(|| toml_error(text, &e).into()))
        }
    }
}

/// Reads, parses and validates the config file at `path`; relative TLS file paths are
/// resolved against the file's directory ([`Config::resolve_paths`]). No TLS file is read.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(format!("cannot read {}: {e}", path.display())))?;
    let mut cfg = parse(&text)?;
    cfg.resolve_paths(path.parent().unwrap_or(Path::new("")));
    Ok(cfg)
}

impl Config {
    /// The effective configuration (every default filled in) as TOML that [`parse`]s back
    /// to an equal `Config`. Served by the admin `/config` endpoint.
    pub fn render_toml(&self) -> String {
        render::render(self)
    }

    /// Names of clusters that no listener or route sends traffic to (valid, but worth a
    /// warning in the log).
    pub fn unused_clusters(&self) -> Vec<&str> {
        let mut used = vec![false; self.clusters.len()];
        let mut mark = |id: ClusterId| {
            if let Some(u) = usize::try_from(id.0).ok().and_then(|i| used.get_mut(i)) {
                *u = true;
            }
        };
        for l in &self.listeners {
            l.cluster.into_iter().for_each(&mut mark);
            l.sni_routes.iter().for_each(|r| mark(r.cluster));
            for r in &l.routes {
                match &r.action {
                    RouteAction::Cluster(id) => mark(*id),
                    RouteAction::Split(ws) => ws.iter().for_each(|w| mark(w.cluster)),
                    RouteAction::Direct { .. } => {}
                }
            }
        }
        self.clusters
            .iter()
            .zip(used)
            .filter(|(_, used)| !used)
            .map(|(c, _)| c.name.as_str())
            .collect()
    }
}

/// A syntax or type error from the TOML deserializer, positioned at its span.
fn toml_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let message = e.message().trim_end();
    let message = match message.strip_prefix("unknown field") {
        Some(rest) => format!("unknown key{rest}"),
        None => message.to_string(),
    };
    match e.span() {
        Some(span) => ConfigError::at(text, span.start, message),
        None => ConfigError::new(message),
    }
}

#[cfg(test)]
mod tests;
