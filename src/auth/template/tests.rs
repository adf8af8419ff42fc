use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
    let mut builder = http::Request::builder().method("POST").uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

fn render(template: &str, parts: &Parts) -> String {
    let vars = RequestVars::new(parts, "https", IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)));
    Template::parse(template).unwrap().render(&vars)
}

#[test]
fn every_variable_renders_from_the_request() {
    let p = parts(
        "/a/b?x=1&Rd=%2Fnext&empty",
        &[
            ("host", "App.Example.COM:8443"),
            ("x-auth-tenant", "blue"),
            ("cookie", "a=1; session=abc ; other=2"),
        ],
    );
    let cases = [
        ("$host", "app.example.com"),
        ("$scheme", "https"),
        ("$request_method", "POST"),
        ("$remote_addr", "10.1.2.3"),
        ("$request_uri", "/a/b?x=1&Rd=%2Fnext&empty"),
        (
            "$escaped_request_uri",
            "%2Fa%2Fb%3Fx%3D1%26Rd%3D%252Fnext%26empty",
        ),
        ("$http_x_auth_tenant", "blue"),
        ("$cookie_session", "abc"),
        ("$cookie_SESSION", "abc"),
        ("$arg_x", "1"),
        ("$arg_rd", "%2Fnext"),
        ("$arg_empty", ""),
        ("$arg_missing", ""),
        ("$http_missing", ""),
        ("$cookie_missing", ""),
    ];
    for (template, want) in cases {
        assert_eq!(render(template, &p), want, "{template}");
    }
}

#[test]
fn braces_literals_and_adjacent_variables() {
    let p = parts("/x?q=1", &[("host", "h.test")]);
    assert_eq!(
        render(
            "https://auth.test/check?u=${host}path&m=$request_method",
            &p
        ),
        "https://auth.test/check?u=h.testpath&m=POST"
    );
    assert_eq!(
        render("$scheme://$host$request_uri", &p),
        "https://h.test/x?q=1"
    );
    assert_eq!(render("no variables", &p), "no variables");
    assert_eq!(render("", &p), "");
}

#[test]
fn unknown_or_malformed_variables_are_refused_by_name() {
    for (template, needle) in [
        ("https://a/$hostname", "$hostname"),
        ("https://a/$uri", "$uri"),
        ("https://a/${server_name}", "$server_name"),
        ("https://a/$http_", "$http_"),
        ("https://a/$arg_", "$arg_"),
        ("https://a/$cookie_", "$cookie_"),
        ("https://a/$", "'$'"),
        ("https://a/$/x", "'$'"),
        ("https://a/${host", "unclosed"),
        ("https://a/${}", "${}"),
        ("https://a/${ho-st}", "${ho-st}"),
    ] {
        let err = Template::parse(template).unwrap_err();
        assert!(err.contains(needle), "{template}: {err}");
    }
}

#[test]
fn values_cannot_change_the_url_structure() {
    let p = parts(
        "/p?next=a&b",
        &[
            ("host", "evil.example/steal?x=1#"),
            ("x-user", "a&admin=true/../#x?y= z%"),
            ("cookie", "c=v&w=1"),
        ],
    );
    let out = render("https://auth/?h=$host&u=$http_x_user&c=$cookie_c", &p);
    assert_eq!(
        out,
        "https://auth/?h=evil.example%2Fsteal%3Fx%3D1%23\
         &u=a%26admin%3Dtrue%2F..%2F%23x%3Fy%3D%20z%25&c=v%26w%3D1"
    );
    // Exactly the template's own three arguments.
    let query = out.split_once('?').unwrap().1;
    assert_eq!(query.split('&').count(), 3, "{out}");
}

#[test]
fn request_uri_keeps_its_structure_but_not_bytes_foreign_to_uris() {
    // http::Uri refuses most such bytes already; a Vars implementation
    // might not, so render escapes them itself.
    struct Raw;
    impl Vars for Raw {
        fn get(&self, var: &Var) -> Option<Cow<'_, str>> {
            match var {
                Var::RequestUri => Some(Cow::Borrowed("/a b?c=d#frag\r\nX-Evil: 1")),
                Var::Arg(_) => Some(Cow::Borrowed("v&injected=1#f")),
                Var::Host => Some(Cow::Borrowed("h@x:80")),
                _ => None,
            }
        }
    }
    let t = Template::parse("http://a$request_uri|$arg_x|$host|$scheme|").unwrap();
    assert_eq!(
        t.render(&Raw),
        "http://a/a%20b?c=d%23frag%0D%0AX-Evil:%201|v%26injected=1%23f|h%40x:80||"
    );
}

#[test]
fn host_comes_from_the_authority_without_port_or_userinfo() {
    let cases = [
        ("http://User@Abs.Example:81/x", &[][..], "abs.example"),
        ("/x", &[("host", "[::1]:8080")][..], "[::1]"),
        ("/x", &[("host", "plain.test")][..], "plain.test"),
        ("/x", &[][..], ""),
    ];
    for (uri, headers, want) in cases {
        assert_eq!(
            render("$host", &parts(uri, headers)),
            want,
            "{uri} {headers:?}"
        );
    }
}

#[test]
fn repeated_headers_join_and_ipv6_peers_render() {
    let p = parts("/", &[("x-a", "1"), ("x-a", "2")]);
    let vars = RequestVars::new(&p, "http", IpAddr::V6(Ipv6Addr::LOCALHOST));
    assert_eq!(
        Template::parse("$http_x_a|$remote_addr|$scheme")
            .unwrap()
            .render(&vars),
        "1%2C%202|::1|http"
    );
}

#[test]
fn query_arg_detection_looks_at_the_template_query_only() {
    let has = |t: &str| Template::parse(t).unwrap().has_query_arg("rd");
    assert!(has("https://s/start?rd=$escaped_request_uri"));
    assert!(has("https://s/start?a=1&rd=x"));
    assert!(has("https://s/start?rd"));
    assert!(!has("https://s/start?guard=1"));
    assert!(!has("https://s/rd=/start"));
    assert!(!has("https://s/start"));
}

#[test]
fn vars_lists_the_variables_in_order() {
    let t = Template::parse("$scheme://x/$http_a?$arg_b").unwrap();
    let vars: Vec<&Var> = t.vars().collect();
    assert_eq!(
        vars,
        [
            &Var::Scheme,
            &Var::Http(HeaderName::from_static("a")),
            &Var::Arg("b".into())
        ]
    );
    assert_eq!(t.as_str(), "$scheme://x/$http_a?$arg_b");
}
