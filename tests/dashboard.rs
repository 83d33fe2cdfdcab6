//! The admin's live dashboard (`GET /`) in a real browser: headless Chromium loads the page
//! while an open-loop load runs through the proxy, and the DOM after its scripts ran must show
//! a request rate, latency percentiles, and the endpoint table with one healthy endpoint and
//! one that fails its health check. Skipped with a note when Chromium is not installed
//! (`.ci/run` installs Debian's `chromium`). With `RINGWAY_DASHBOARD_SCREENSHOT=path.png` it
//! also saves a screenshot (how docs/dashboard.png was made).

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{free_port, upstream_bin, Proxy, Upstream};

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|n| ["/usr/bin/", "/usr/local/bin/"].map(|d| PathBuf::from(format!("{d}{n}"))))
        .find(|p| p.exists())
}

fn browser(chrome: &PathBuf, args: &[&str], url: &str) -> String {
    let out = Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1100,820",
            "--virtual-time-budget=3500",
        ])
        .args(args)
        .arg(url)
        .stderr(Stdio::null())
        .output()
        .expect("run chromium");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The text of the element with `id` in `dom`.
fn text_of(dom: &str, id: &str) -> String {
    let start = dom
        .find(&format!("id=\"{id}\">"))
        .map(|i| i + id.len() + 6)
        .unwrap_or(0);
    dom[start..].split('<').next().unwrap_or("").to_string()
}

#[test]
fn dashboard_shows_live_traffic_and_endpoint_health_in_chromium() {
    let Some(chrome) = chromium() else {
        eprintln!(
            "note: chromium not installed; dashboard test skipped (apt-get install chromium)"
        );
        return;
    };
    let app = Upstream::start(&[]);
    let (listen, admin) = (free_port(), free_port());
    let cfg = format!(
        r#"[runtime]
workers = 2
drain_timeout = "1s"

[admin]
bind = "127.0.0.1:{admin}"

[[listeners]]
name = "edge"
bind = "127.0.0.1:{listen}"
cluster = "app"

[[clusters]]
name = "app"
endpoints = ["{up}", "127.0.0.1:1"]

[clusters.health_check]
path = "/"
interval = "200ms"
unhealthy_threshold = 1
"#,
        up = app.addr()
    );
    let _proxy = Proxy::start(&cfg);
    std::thread::sleep(Duration::from_millis(600));
    let mut load = Command::new(upstream_bin().with_file_name("ringway-load"))
        .args(["-R", "800", "-c", "8", "-d", "8s"])
        .arg(format!("http://127.0.0.1:{listen}/"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ringway-load");
    std::thread::sleep(Duration::from_millis(1500));
    let url = format!("http://127.0.0.1:{admin}/");
    let dom = browser(&chrome, &["--dump-dom"], &url);
    if let Ok(path) = std::env::var("RINGWAY_DASHBOARD_SCREENSHOT") {
        browser(&chrome, &[&format!("--screenshot={path}")], &url);
    }
    let _ = load.kill();
    let _ = load.wait();
    let rps: f64 = text_of(&dom, "rps")
        .parse()
        .unwrap_or_else(|_| panic!("no rate in {dom}"));
    assert!(rps > 0.0, "request rate {rps}");
    assert!(
        text_of(&dom, "p50").parse::<f64>().is_ok(),
        "p50: {}",
        text_of(&dom, "p50")
    );
    assert!(
        text_of(&dom, "p99").parse::<f64>().is_ok(),
        "p99: {}",
        text_of(&dom, "p99")
    );
    assert!(
        dom.contains(&format!(
            "<td>{}</td><td><span class=\"ok\">healthy</span>",
            app.addr()
        )),
        "{dom}"
    );
    assert!(
        dom.contains("<td>127.0.0.1:1</td><td><span class=\"bad\">failed health check"),
        "{dom}"
    );
    assert_eq!(text_of(&dom, "err"), "", "the page reported an error");
}
