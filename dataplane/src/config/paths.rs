//! [`Config::resolve_paths`]: the file paths of a config (TLS `cert`, `key`, `client_ca`,
//! `ca`, and access-log `path`), as written relative to the config file, made absolute.
//!
//! Invariant: nothing here touches the file system; [`super::parse`] keeps paths as written
//! and [`super::load`] resolves them against the config file's directory.

use std::path::{Path, PathBuf};

use super::model::*;

impl Config {
    /// Makes every relative TLS and access-log file path absolute against `base_dir` (the
    /// directory of the config file); absolute paths are kept. Idempotent when `base_dir` is
    /// absolute.
    pub fn resolve_paths(&mut self, base_dir: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base_dir.join(&*p);
            }
        };
        let resolve_files = |f: &mut CertFiles| {
            resolve(&mut f.cert);
            resolve(&mut f.key);
        };
        for l in &mut self.listeners {
            if let Some(tls) = &mut l.tls {
                resolve_files(&mut tls.default_cert);
                for s in &mut tls.sni {
                    resolve_files(&mut s.files);
                }
                if let Some(ca) = &mut tls.client_ca {
                    resolve(ca);
                }
            }
            if let Some(LogSink::File(p)) = l.access_log.as_mut().map(|a| &mut a.sink) {
                resolve(p);
            }
        }
        for c in &mut self.clusters {
            if let Some(tls) = &mut c.tls {
                resolve(&mut tls.ca);
                if let Some(f) = &mut tls.client_cert {
                    resolve_files(f);
                }
            }
        }
    }
}
