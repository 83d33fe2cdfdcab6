//! [`FileWatch`]: the fingerprint of every file a [`TlsSet`](super::TlsSet) was read from.
//!
//! A file's fingerprint is where its path leads after every symlink (Kubernetes mounts a
//! secret as `cert.pem -> ..data/cert.pem` with `..data -> ..2026_12_04_…`, and rotates it by
//! swapping the `..data` link) plus that file's inode, size and modification time. Polled
//! from a control thread, never from a worker.
//!
//! Invariant: `changed` reports a change once per change (it adopts what it saw).

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    target: Option<PathBuf>,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
}

fn fingerprint(path: &std::path::Path) -> Option<Fingerprint> {
    let target = std::fs::canonicalize(path).ok();
    let meta = std::fs::metadata(path).ok()?;
    Some(Fingerprint {
        target,
        ino: meta.ino(),
        len: meta.len(),
        mtime: (meta.mtime(), meta.mtime_nsec()),
    })
}

/// See the module doc.
#[derive(Debug, Default)]
pub struct FileWatch {
    files: Vec<(PathBuf, Option<Fingerprint>)>,
}

impl FileWatch {
    /// Watches `files` from their current state.
    pub fn new(files: &[PathBuf]) -> FileWatch {
        let mut files: Vec<PathBuf> = files.to_vec();
        files.sort();
        files.dedup();
        FileWatch {
            files: files
                .into_iter()
                .map(|f| {
                    let fp = fingerprint(&f);
                    (f, fp)
                })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Whether any file changed (appeared, vanished, was replaced or rewritten) since the
    /// last call.
    pub fn changed(&mut self) -> bool {
        let mut any = false;
        for (path, seen) in &mut self.files {
            let now = fingerprint(path);
            if now != *seen {
                *seen = now;
                any = true;
            }
        }
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_rewrites_and_symlink_swaps() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, "one").unwrap();
        std::fs::write(&b, "two!").unwrap();
        let link = dir.path().join("data");
        std::os::unix::fs::symlink(&a, &link).unwrap();
        let cert = dir.path().join("cert.pem");
        std::os::unix::fs::symlink(&link, &cert).unwrap();
        let mut w = FileWatch::new(&[cert.clone(), cert.clone()]);
        assert!(!w.changed());
        // The Kubernetes swap: a new link renamed over the old one.
        let tmp = dir.path().join("data.tmp");
        std::os::unix::fs::symlink(&b, &tmp).unwrap();
        std::fs::rename(&tmp, &link).unwrap();
        assert!(w.changed());
        assert!(!w.changed());
        std::fs::write(&b, "three, longer").unwrap();
        assert!(w.changed());
        std::fs::remove_file(&b).unwrap();
        assert!(w.changed());
        assert!(!w.changed());
    }
}
