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
