//! Request routing: the per-listener [`RouteTable`] compiled from `config::ListenerConfig`,
//! and [`RouteTable::resolve`], which picks what serves a request.
//!
//! Matching follows CONFIG.md exactly: routes are tried in file order and the first match
//! wins; every field of `match` is optional and all given fields must hold — `host` exact or
//! `*.suffix` (ASCII case-insensitive, port ignored), `path_prefix` a byte prefix of the path
//! before `?`, `headers` exact values (names case-insensitive); a route without fields matches
//! everything. No match falls back to the listener's default cluster, else 404.
//! Host and path normalisation lives in `matcher`, weighted splits in `split`.
//!
//! Invariants: a table is built once per config snapshot, off the hot path, and is
//! immutable afterwards (`Sync`; shared read-only by all workers). `select`/`resolve` and
//! [`WeightedSplit::pick_cluster`] never allocate, format or lock; the only mutable state
//! they touch is the caller's per-core [`FastRng`](crate::base::FastRng), owned by
//! one worker and never shared.

mod matcher;
mod split;
#[cfg(test)]
mod tests;

use std::time::Duration;

use bytes::Bytes;

use crate::config::{ClusterId, ListenerConfig, RouteAction, RouteConfig};
pub use crate::http::{RequestParts, RequestView};
use matcher::Matcher;
pub use matcher::{match_path, normalize_host};
pub use split::WeightedSplit;

/// The outcome of routing one request.
#[derive(Debug, Clone, Copy)]
pub enum Selection<'a> {
    /// A route matched; act on [`Route::action`].
    Route(&'a Route),
    /// No route matched; forward to the listener's default cluster.
    Default(ClusterId),
    /// No route matched and there is no default cluster: answer 404.
    NotFound,
}

/// A proxy-generated response (`direct = { status, body }`).
#[derive(Debug, Clone)]
pub struct DirectResponse {
    pub status: u16,
    /// INVARIANT: already promoted to shared storage, so `clone()` is a reference-count
    /// increment, never an allocation.
    pub body: Bytes,
}

/// What a matched route does.
#[derive(Debug, Clone)]
pub enum Action {
    Cluster(ClusterId),
    Split(WeightedSplit),
    Direct(DirectResponse),
}

/// One compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    matcher: Matcher,
    /// Position in the listener's `routes` (file order), for logs and metrics.
    pub index: usize,
    pub action: Action,
    /// Whole upstream exchange, until the last response byte; `None` = no limit.
    pub timeout: Option<Duration>,
}

/// The routes of one listener, in file order, plus its default cluster.
#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Box<[Route]>,
    default_cluster: Option<ClusterId>,
}

impl RouteTable {
    /// Compiles the listener's routes. Allocates; call once per config snapshot.
    pub fn new(listener: &ListenerConfig) -> RouteTable {
        let routes = listener
            .routes
            .iter()
            .enumerate()
            .map(|(index, r)| compile_route(index, r, &listener.name))
            .collect();
        RouteTable {
            routes,
            default_cluster: listener.cluster,
        }
    }

    /// The first route (file order) that matches `req`, if any.
    #[inline]
    pub fn select<R: RequestView>(&self, req: &R) -> Option<&Route> {
        let host = req.host().map(normalize_host);
        let path = match_path(req.path());
        self.routes
            .iter()
            .find(|r| r.matcher.matches(host, path, req))
    }

    /// Routes `req`: a matching route, else the default cluster, else not found (404).
    #[inline]
    pub fn resolve<R: RequestView>(&self, req: &R) -> Selection<'_> {
        match (self.select(req), self.default_cluster) {
            (Some(route), _) => Selection::Route(route),
            (None, Some(cluster)) => Selection::Default(cluster),
            (None, None) => Selection::NotFound,
        }
    }

    /// The listener's `cluster`: where unmatched requests go.
    pub fn default_cluster(&self) -> Option<ClusterId> {
        self.default_cluster
    }

    /// The compiled routes in file order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

fn compile_route(index: usize, config: &RouteConfig, listener: &str) -> Route {
    let action = match &config.action {
        RouteAction::Cluster(id) => Action::Cluster(*id),
        RouteAction::Split(weights) => match WeightedSplit::new(weights) {
            Some(split) => Action::Split(split),
            None => {
                // Validation rejects empty splits; answer 503 rather than panic if one slips by.
                tracing::warn!(
                    listener,
                    route = index,
                    "route has an empty split; answering 503"
                );
                Action::Direct(direct(503, b"no upstream cluster\n".to_vec()))
            }
        },
        RouteAction::Direct { status, body } => {
            Action::Direct(direct(*status, body.as_bytes().to_vec()))
        }
    };
    Route {
        matcher: Matcher::new(&config.matcher),
        index,
        action,
        timeout: config.timeout,
    }
}

fn direct(status: u16, body: Vec<u8>) -> DirectResponse {
    let body = Bytes::from(body);
    // The first clone of a Vec-backed `Bytes` allocates its shared header and switches the
    // original to it; do that now so clones on the hot path never allocate.
    drop(body.clone());
    DirectResponse { status, body }
}
