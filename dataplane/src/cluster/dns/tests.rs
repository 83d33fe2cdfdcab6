//! Resolution (system and injected) and refresher change detection.

use std::sync::mpsc;

use super::*;

fn ip(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn name(host: &str, port: u16) -> EndpointAddr {
    EndpointAddr::Dns {
        host: host.into(),
        port,
    }
}

#[test]
fn localhost_resolves_to_a_loopback_address() {
    let addrs = resolve(&[name("localhost", 80)]).unwrap();
    assert!(!addrs.is_empty());
    assert!(
        addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 80),
        "{addrs:?}"
    );
}

#[test]
fn ip_endpoints_are_kept_as_they_are_and_deduplicated() {
    let endpoints = [
        EndpointAddr::Ip(ip("10.0.0.2:80")),
        EndpointAddr::Ip(ip("[::1]:9000")),
        EndpointAddr::Ip(ip("10.0.0.2:80")),
        EndpointAddr::Ip(ip("10.0.0.1:80")),
    ];
    assert_eq!(
        resolve(&endpoints).unwrap(),
        vec![ip("10.0.0.2:80"), ip("[::1]:9000"), ip("10.0.0.1:80")]
    );
    assert_eq!(resolve(&[]).unwrap(), vec![]);
}

#[test]
fn unknown_name_is_an_error() {
    let err = resolve(&[name("nonexistent.invalid", 80)]).unwrap_err();
    assert!(matches!(err, DnsError::Lookup { port: 80, .. }), "{err:?}");
    assert!(err.to_string().contains("nonexistent.invalid:80"), "{err}");
}

#[test]
fn a_name_yields_all_its_addresses_sorted_and_deduplicated() {
    let mut resolver = |host: &str, port: u16| -> io::Result<Vec<SocketAddr>> {
        assert_eq!((host, port), ("svc", 80));
        Ok(vec![
            ip("10.0.0.3:80"),
            ip("10.0.0.1:80"),
            ip("10.0.0.3:80"),
        ])
    };
    let got = resolve_with(
        &[
            EndpointAddr::Ip(ip("10.0.0.9:80")),
            name("svc", 80),
            EndpointAddr::Ip(ip("10.0.0.1:80")),
        ],
        &mut resolver,
    )
    .unwrap();
    assert_eq!(
        got,
        vec![ip("10.0.0.9:80"), ip("10.0.0.1:80"), ip("10.0.0.3:80")]
    );
    let mut empty = |_: &str, _: u16| -> io::Result<Vec<SocketAddr>> { Ok(vec![]) };
    assert!(matches!(
        resolve_with(&[name("svc", 80)], &mut empty),
        Err(DnsError::NoAddresses { .. })
    ));
}

#[test]
fn refresher_reports_only_changes_and_keeps_the_last_good_set_on_failure() {
    let a = vec![ip("10.0.0.1:80")];
    let b = vec![ip("10.0.0.2:80"), ip("10.0.0.1:80")];
    // Lookup results in order; after the script runs out, keep answering `b`.
    let script: Vec<io::Result<Vec<SocketAddr>>> = vec![
        Ok(a.clone()),
        Ok(b.clone()),
        Err(io::Error::other("servfail")),
        Ok(b.iter().rev().copied().collect()), // same set, other order: not a change
    ];
    let (calls_tx, calls) = mpsc::channel();
    let mut script = script.into_iter();
    let fallback = b.clone();
    let resolver: Resolver = Box::new(move |_, _| {
        let _ = calls_tx.send(());
        script.next().unwrap_or_else(|| Ok(fallback.clone()))
    });
    let (changes_tx, changes) = mpsc::channel();
    let on_change: OnChange = Box::new(move |cluster, addrs| {
        let _ = changes_tx.send((cluster, addrs));
    });
    let target = DnsTarget {
        cluster: ClusterId(3),
        endpoints: vec![name("svc", 80)],
        refresh: Duration::from_millis(1),
        current: a.clone(),
    };
    let refresher = DnsRefresher::spawn_with(vec![target], resolver, on_change).unwrap();
    for _ in 0..6 {
        calls.recv_timeout(Duration::from_secs(5)).unwrap();
    }
    refresher.stop();
    let got: Vec<_> = changes.try_iter().collect();
    let mut sorted_b = b.clone();
    sorted_b.sort();
    assert_eq!(got, vec![(ClusterId(3), sorted_b)]);
}

#[test]
fn refresher_stops_promptly_and_without_targets_starts_no_thread() {
    let target = DnsTarget {
        cluster: ClusterId(0),
        endpoints: vec![name("svc", 80)],
        refresh: Duration::from_secs(3600),
        current: vec![],
    };
    let resolver: Resolver = Box::new(|_, _| Ok(vec![]));
    let refresher = DnsRefresher::spawn_with(vec![target], resolver, Box::new(|_, _| {})).unwrap();
    assert!(refresher.is_running());
    let started = Instant::now();
    drop(refresher);
    assert!(started.elapsed() < Duration::from_secs(1));
    let idle = DnsRefresher::spawn(vec![], Box::new(|_, _| {})).unwrap();
    assert!(!idle.is_running());
}

#[test]
fn targets_are_only_clusters_with_names() {
    use crate::config::{ClusterConfig, HashKey, IoConfig, LbPolicy, PoolConfig, RuntimeConfig};
    let cluster = |name: &str, endpoints: Vec<EndpointAddr>| ClusterConfig {
        name: name.into(),
        kind: crate::config::ClusterKind::Static,
        endpoints,
        proxy_protocol: None,
        lb: LbPolicy::RoundRobin,
        connect_timeout: Duration::from_secs(1),
        pool: PoolConfig::default(),
        hash_key: HashKey::ClientIp,
        dns_refresh: Duration::from_secs(30),
        resilience: Default::default(),
        tls: None,
        service: None,
    };
    let config = Config {
        runtime: RuntimeConfig {
            workers: None,
            drain_timeout: Duration::from_secs(10),
            io: IoConfig {
                ring_entries: 1024,
                recv_buffers: 1024,
                recv_buffer_size: 16384,
            },
        },
        admin: None,
        listeners: vec![],
        clusters: vec![
            cluster("ips", vec![EndpointAddr::Ip(ip("10.0.0.1:80"))]),
            cluster("named", vec![name("svc", 80)]),
        ],
        telemetry: Default::default(),
    };
    let loaded = vec![vec![ip("10.0.0.1:80")], vec![ip("10.0.0.7:80")]];
    let targets = DnsTarget::from_config(&config, &loaded);
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].cluster, ClusterId(1));
    assert_eq!(targets[0].current, vec![ip("10.0.0.7:80")]);
    assert_eq!(targets[0].refresh, Duration::from_secs(30));
}
