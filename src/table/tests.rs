use super::*;

fn route(id: u32) -> Route {
    Route {
        ingress: "ns/ing".into(),
        kind: RouteKind::Ingress,
        guard: None,
        host: "".into(),
        path: "".into(),
        path_type: None,
        service: format!("ns/svc{id}:80").into(),
        upstream: id,
        redirect_https: false,
        policy: Default::default(),
        canary: None,
        plain: true,
    }
}

fn table(entries: &[(&str, &str, PathType)]) -> RoutingTable {
    let mut t = RoutingTable::default();
    for (i, (host, path, ty)) in entries.iter().enumerate() {
        let id = t.push_route(route(i as u32));
        assert_eq!(t.host_mut(host).insert(path, *ty, id), Insert::Added);
    }
    t
}

#[test]
fn prefix_matches_whole_segments_only() {
    let t = table(&[("h", "/foo", PathType::Prefix)]);
    assert_eq!(t.lookup("h", "/foo"), Some(0));
    assert_eq!(t.lookup("h", "/foo/"), Some(0));
    assert_eq!(t.lookup("h", "/foo/bar"), Some(0));
    assert_eq!(t.lookup("h", "/foobar"), None);
    assert_eq!(t.lookup("h", "/FOO"), None);
}

#[test]
fn trailing_slash_in_prefix_rule_is_ignored() {
    let t = table(&[("h", "/aaa/bbb/", PathType::Prefix)]);
    assert_eq!(t.lookup("h", "/aaa/bbb"), Some(0));
    assert_eq!(t.lookup("h", "/aaa/bbb/"), Some(0));
    assert_eq!(t.lookup("h", "/aaa/bbbc"), None);
}

#[test]
fn exact_is_exact() {
    let t = table(&[
        ("h", "/foo", PathType::Exact),
        ("h", "/bar/", PathType::Exact),
    ]);
    assert_eq!(t.lookup("h", "/foo"), Some(0));
    assert_eq!(t.lookup("h", "/foo/"), None);
    assert_eq!(t.lookup("h", "/bar"), None);
    assert_eq!(t.lookup("h", "/bar/"), Some(1));
}

#[test]
fn longest_prefix_wins_and_exact_beats_prefix() {
    let t = table(&[
        ("h", "/aaa", PathType::Prefix),
        ("h", "/aaa/bbb", PathType::Prefix),
        ("h", "/foo", PathType::Prefix),
        ("h", "/foo", PathType::Exact),
        ("h", "/", PathType::Prefix),
    ]);
    assert_eq!(t.lookup("h", "/aaa/ccc"), Some(0));
    assert_eq!(t.lookup("h", "/aaa/bbb/ccc"), Some(1));
    assert_eq!(t.lookup("h", "/foo"), Some(3));
    assert_eq!(t.lookup("h", "/foo/x"), Some(2));
    assert_eq!(t.lookup("h", "/zzz"), Some(4));
}

#[test]
fn wildcard_covers_exactly_one_label_and_exact_host_wins() {
    let t = table(&[
        ("*.foo.com", "/", PathType::Prefix),
        ("a.foo.com", "/", PathType::Prefix),
    ]);
    assert_eq!(t.lookup("bar.foo.com", "/"), Some(0));
    assert_eq!(t.lookup("a.foo.com", "/"), Some(1));
    assert_eq!(t.lookup("baz.bar.foo.com", "/"), None);
    assert_eq!(t.lookup("foo.com", "/"), None);
}

#[test]
fn hostless_rules_apply_only_when_no_host_matched() {
    let t = table(&[("", "/", PathType::Prefix), ("h", "/x", PathType::Exact)]);
    assert_eq!(t.lookup("other", "/y"), Some(0));
    assert_eq!(t.lookup("h", "/x"), Some(1));
    assert_eq!(
        t.lookup("h", "/y"),
        None,
        "a matched host never falls through"
    );
}

#[test]
fn fallback_and_default_route() {
    let mut t = table(&[("h", "/x", PathType::Exact)]);
    let fb = t.push_route(route(7));
    assert!(t.host_mut("h").set_fallback(fb));
    assert!(!t.host_mut("h").set_fallback(0), "first fallback is kept");
    assert_eq!(t.lookup("h", "/nope"), Some(fb));
    assert_eq!(t.lookup("other", "/"), None);
    let def = t.push_route(route(8));
    t.set_default_route(def);
    assert_eq!(t.lookup("other", "/"), Some(def));
}

#[test]
fn duplicate_paths_report_the_holder() {
    let mut t = table(&[("h", "/x", PathType::Prefix)]);
    assert_eq!(
        t.host_mut("h").insert("/x/", PathType::Prefix, 5),
        Insert::Taken(0)
    );
    assert_eq!(
        t.host_mut("h").insert("/x", PathType::Exact, 5),
        Insert::Added
    );
}

#[test]
fn many_children_and_long_exact_paths_still_match() {
    // More children than the inline vector holds: the node switches to a map.
    let mut entries: Vec<(String, String, PathType)> = (0..20)
        .map(|i| ("h".to_string(), format!("/svc{i}"), PathType::Prefix))
        .collect();
    // Exact paths whose lengths collide modulo 64.
    let long = format!("/{}", "x".repeat(64));
    entries.push(("h".into(), "/y".into(), PathType::Exact));
    entries.push(("h".into(), long.clone(), PathType::Exact));
    let refs: Vec<(&str, &str, PathType)> = entries
        .iter()
        .map(|(h, p, t)| (h.as_str(), p.as_str(), *t))
        .collect();
    let mut t = table(&refs);
    for i in 0..20u32 {
        assert_eq!(t.lookup("h", &format!("/svc{i}/deeper")), Some(i));
    }
    assert_eq!(t.lookup("h", "/svc20"), None);
    assert_eq!(t.lookup("h", "/y"), Some(20));
    assert_eq!(t.lookup("h", &long), Some(21));
    assert_eq!(t.lookup("h", &format!("/{}", "z".repeat(64))), None);
    assert_eq!(t.host_mut("h").len(), 22);
}

#[test]
fn rule_paths_are_normalized_like_requests() {
    let t = table(&[
        ("h", "/%61pi", PathType::Prefix),
        ("h", "/%7Ex", PathType::Exact),
    ]);
    assert_eq!(t.lookup("h", &path::normalize("/api/v1")), Some(0));
    assert_eq!(t.lookup("h", &path::normalize("/%61pi")), Some(0));
    assert_eq!(t.lookup("h", &path::normalize("/~x")), Some(1));
}

mod candidates {
    use super::*;
    use crate::table::guard::{anchored, Guard, HeaderCond, ValueMatch};

    fn gateway_route(id: u32, guard: Option<Guard>) -> Route {
        Route {
            kind: RouteKind::HttpRoute,
            guard: guard.map(Box::new),
            ..route(id)
        }
    }

    fn header(name: &'static str, value: &str) -> Guard {
        Guard {
            headers: vec![HeaderCond {
                name: http::HeaderName::from_static(name),
                value: ValueMatch::Exact(value.into()),
            }]
            .into(),
            ..Default::default()
        }
    }

    fn parts(method: http::Method, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().method(method).uri("/");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn get(headers: &[(&str, &str)]) -> http::request::Parts {
        parts(http::Method::GET, headers)
    }

    #[test]
    fn candidates_at_one_path_in_insertion_order() {
        let mut t = RoutingTable::default();
        let v2 = t.push_route(gateway_route(0, Some(header("version", "two"))));
        let post = t.push_route(gateway_route(
            1,
            Some(Guard {
                method: Some(http::Method::POST),
                ..Default::default()
            }),
        ));
        let any = t.push_route(gateway_route(2, None));
        for id in [v2, post, any] {
            t.host_mut("h").insert_candidate("/", PathType::Prefix, id);
        }
        let t = t.compacted();
        assert_eq!(
            t.lookup_request("h", "/x", &get(&[("version", "two")])),
            Some(v2)
        );
        assert_eq!(
            t.lookup_request("h", "/x", &parts(http::Method::POST, &[])),
            Some(post)
        );
        assert_eq!(t.lookup_request("h", "/x", &get(&[])), Some(any));
        // Without the request, the first candidate (guards unknown).
        assert_eq!(t.lookup("h", "/x"), Some(v2));
    }

    #[test]
    fn precedence_exact_regex_longest_prefix_then_shorter() {
        let mut t = RoutingTable::default();
        let exact = t.push_route(gateway_route(0, Some(header("x", "exact"))));
        let regex = t.push_route(gateway_route(1, Some(header("x", "regex"))));
        let long = t.push_route(gateway_route(2, Some(header("x", "long"))));
        let short = t.push_route(gateway_route(3, None));
        let h = t.host_mut("h");
        h.insert_candidate("/a/b", PathType::Exact, exact);
        h.insert_regex_candidate("/a/[a-z]+", anchored("/a/[a-z]+").unwrap(), regex);
        h.insert_candidate("/a/b", PathType::Prefix, long);
        h.insert_candidate("/a", PathType::Prefix, short);
        assert_eq!(
            t.lookup_request("h", "/a/b", &get(&[("x", "exact")])),
            Some(exact)
        );
        assert_eq!(
            t.lookup_request("h", "/a/b", &get(&[("x", "regex")])),
            Some(regex)
        );
        assert_eq!(
            t.lookup_request("h", "/a/b", &get(&[("x", "long")])),
            Some(long)
        );
        assert_eq!(
            t.lookup_request("h", "/a/b/c", &get(&[("x", "long")])),
            Some(long)
        );
        assert_eq!(t.lookup_request("h", "/a/b", &get(&[])), Some(short));
        // The regex must match the whole path.
        assert_eq!(
            t.lookup_request("h", "/a/b/c", &get(&[("x", "regex")])),
            Some(short)
        );
        assert_eq!(t.lookup_request("h", "/z", &get(&[])), None);
    }

    #[test]
    fn unmatched_gateway_host_falls_through_to_wildcards_then_hostless() {
        let mut t = RoutingTable::default();
        let exact = t.push_route(gateway_route(0, Some(header("x", "1"))));
        let wild = t.push_route(gateway_route(1, Some(header("x", "2"))));
        let hostless = t.push_route(gateway_route(2, None));
        t.host_mut("a.b.example.com")
            .insert_candidate("/", PathType::Prefix, exact);
        t.host_mut("*.example.com")
            .insert_candidate("/", PathType::Prefix, wild);
        t.host_mut("")
            .insert_candidate("/", PathType::Prefix, hostless);
        let h = "a.b.example.com";
        assert_eq!(t.lookup_request(h, "/", &get(&[("x", "1")])), Some(exact));
        // Gateway wildcards cover any number of labels.
        assert_eq!(t.lookup_request(h, "/", &get(&[("x", "2")])), Some(wild));
        assert_eq!(t.lookup_request(h, "/", &get(&[])), Some(hostless));
        assert_eq!(
            t.lookup_request("example.com", "/", &get(&[("x", "2")])),
            Some(hostless)
        );
    }

    #[test]
    fn ingress_semantics_kept_beside_gateway_routes() {
        let mut t = RoutingTable::default();
        let ing = t.push_route(route(0));
        let wild_ing = t.push_route(route(1));
        let gw = t.push_route(gateway_route(2, None));
        assert_eq!(
            t.host_mut("i.example")
                .insert("/only", PathType::Prefix, ing),
            Insert::Added
        );
        assert_eq!(
            t.host_mut("*.example.org")
                .insert("/", PathType::Prefix, wild_ing),
            Insert::Added
        );
        t.host_mut("").insert_candidate("/", PathType::Prefix, gw);
        // An Ingress host never falls through to the hostless rules.
        assert_eq!(t.lookup_request("i.example", "/other", &get(&[])), None);
        // An Ingress wildcard covers exactly one label.
        assert_eq!(
            t.lookup_request("a.example.org", "/", &get(&[])),
            Some(wild_ing)
        );
        assert_eq!(
            t.lookup_request("a.b.example.org", "/", &get(&[])),
            Some(gw)
        );
        // An Ingress path inserted after a candidate is taken by it.
        assert_eq!(
            t.host_mut("").insert("/", PathType::Prefix, ing),
            Insert::Taken(gw)
        );
    }

    #[test]
    fn the_longest_gateway_wildcard_suffix_wins_at_any_depth() {
        let mut t = RoutingTable::default();
        let short = t.push_route(gateway_route(0, None));
        let long = t.push_route(gateway_route(1, None));
        let ing = t.push_route(route(2));
        t.host_mut("*.example.com")
            .insert_candidate("/", PathType::Prefix, short);
        t.host_mut("*.deep.example.com")
            .insert_candidate("/", PathType::Prefix, long);
        assert_eq!(
            t.host_mut("*.ingress.example.com")
                .insert("/", PathType::Prefix, ing),
            Insert::Added
        );
        for (host, want) in [
            ("a.example.com", Some(short)),
            ("a.b.c.example.com", Some(short)),
            ("deep.example.com", Some(short)),
            ("a.deep.example.com", Some(long)),
            ("a.b.c.deep.example.com", Some(long)),
            // One label under an Ingress wildcard: the Ingress; deeper,
            // the Ingress wildcard does not match, the Gateway's does.
            ("a.ingress.example.com", Some(ing)),
            ("a.b.ingress.example.com", Some(short)),
            ("example.com", None),
        ] {
            assert_eq!(t.lookup_request(host, "/", &get(&[])), want, "{host}");
        }
        // Without the request head (Ingress-only resolution), one label.
        assert_eq!(t.lookup("a.b.c.deep.example.com", "/"), None);
    }

    #[test]
    fn tables_without_gateway_routes_resolve_as_lookup() {
        let t = table(&[
            ("h", "/a", PathType::Prefix),
            ("*.x", "/", PathType::Prefix),
        ]);
        for (host, path) in [("h", "/a/b"), ("h", "/b"), ("q.x", "/"), ("q.r.x", "/")] {
            assert_eq!(
                t.lookup_request(host, path, &get(&[])),
                t.lookup(host, path)
            );
        }
    }
}

#[test]
fn retry_backoff_doubles_up_to_its_cap() {
    use crate::table::policy::RetryPacing;
    use std::time::Duration;
    let ms = Duration::from_millis;
    let p = RetryPacing { backoff: ms(100) };
    assert_eq!(p.wait_before(1), ms(100));
    assert_eq!(p.wait_before(2), ms(200));
    assert_eq!(p.wait_before(3), ms(400));
    assert_eq!(p.wait_before(40), RetryPacing::MAX_BACKOFF);
    let long = RetryPacing {
        backoff: Duration::from_secs(30),
    };
    assert_eq!(
        long.wait_before(3),
        Duration::from_secs(30),
        "never below backoff"
    );
    let none = RetryPacing {
        backoff: Duration::ZERO,
    };
    assert_eq!(none.wait_before(5), Duration::ZERO);
}
