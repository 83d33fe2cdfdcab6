//! Config tests of `[listeners.routes.headers]`: header edits, their name and value rules, and
//! the framing and routing fields no rule may touch.

use super::assert_error;
use super::policy::{check_all, parse_ok, with_route};

#[test]
fn header_rules() {
    let headers = |body: &str| {
        with_route(&format!(
            "  match = {{ path_prefix = \"/a/\" }}\n  cluster = \"c\"\n  [listeners.routes.headers]\n{body}"
        ))
    };
    check_all(&[
        (headers("  request_add = { \"bad name\" = \"1\" }\n"), 14, "headers.request_add: \"bad name\" is not a valid header name"),
        (headers("  request_set = { \"x\" = \"a\\r\\nb\" }\n"), 14, "headers.request_set.x: \"a\\r\\nb\" contains '\\r'; header values are visible ASCII"),
        (headers("  response_add = { \"x\" = \" a\" }\n"), 14, "headers.response_add.x: \" a\": leading or trailing whitespace"),
        (headers("  response_set = { \"x\" = \"é\" }\n"), 14, "contains 'é'"),
        (headers(&format!("  request_add = {{ \"x\" = \"{}\" }}\n", "a".repeat(8193))), 14, "headers.request_add.x: must be at most 8192 bytes, got 8193"),
        (headers("  request_remove = [\"x\", \"X\"]\n"), 14, "headers.request_remove: header \"x\" is listed twice (names are case-insensitive)"),
        (headers("  request_add = { \"X-A\" = \"1\", \"x-a\" = \"2\" }\n"), 14, "header \"x-a\" is listed twice"),
        (headers("  request_set = { \"x-a\" = \"1\" }\n  request_remove = [\"X-A\"]\n"), 15, "headers.request_remove: header \"x-a\" is also in request_set; a header goes in at most one of add, set and remove"),
        (headers("  response_set = { \"x-a\" = \"1\" }\n  response_add = { \"x-a\" = \"2\" }\n"), 15, "headers.response_add: header \"x-a\" is also in response_set"),
        (headers("  request_path = \"/\"\n"), 14, "headers: unknown key `request_path`"),
        (headers("  path_prefix_rewrite = \"v2/\"\n"), 14, "headers.path_prefix_rewrite: \"v2/\" must start with '/'"),
        (headers("  path_prefix_rewrite = \"/v2?x\"\n"), 14, "contains '?'; a path prefix is visible ASCII"),
        (
            with_route("  cluster = \"c\"\n  [listeners.routes.headers]\n  path_prefix_rewrite = \"/v2/\"\n"),
            13,
            "headers.path_prefix_rewrite: needs the route to match a path_prefix",
        ),
        (
            with_route("  direct = { status = 200 }\n  [listeners.routes.headers]\n  request_add = { \"x\" = \"1\" }\n"),
            13,
            "headers.request_add: a direct route sends no upstream request; only response_* edits apply",
        ),
        (
            with_route("  direct = { status = 200 }\n  [listeners.routes.headers]\n  request_remove = []\n"),
            10,
            "headers.request_remove: a direct route sends no upstream request",
        ),
    ]);
    // The same name may be edited on both sides.
    parse_ok(&headers(
        "  request_set = { \"x-a\" = \"1\" }\n  response_remove = [\"x-a\"]\n",
    ));
}

#[test]
fn managed_headers_cannot_be_edited() {
    for name in [
        "host",
        "Content-Length",
        "transfer-encoding",
        "connection",
        "upgrade",
        "te",
        "trailer",
        "keep-alive",
        "proxy-connection",
    ] {
        for (key, value) in [
            ("request_add", format!("{{ \"{name}\" = \"x\" }}")),
            ("request_set", format!("{{ \"{name}\" = \"x\" }}")),
            ("request_remove", format!("[\"{name}\"]")),
            ("response_set", format!("{{ \"{name}\" = \"x\" }}")),
            ("response_remove", format!("[\"{name}\"]")),
        ] {
            let text = with_route(&format!(
                "  cluster = \"c\"\n  [listeners.routes.headers]\n  {key} = {value}\n"
            ));
            assert_error(
                &text,
                13,
                &format!(
                    "headers.{key}: {:?} cannot be added, set or removed: Ringway manages the hop-by-hop, framing and Host headers itself",
                    name.to_ascii_lowercase()
                ),
            );
        }
    }
}
