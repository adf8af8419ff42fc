use super::*;

static UPSTREAM: std::net::SocketAddr = std::net::SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(10, 0, 0, 5),
    8080,
));

fn line() -> Line<'static> {
    Line {
        time: SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_643_778_123),
        remote_addr: "203.0.113.7".parse().unwrap(),
        request_id: b"rid-1",
        method: "GET",
        target: "/a/b?x=1",
        protocol: "HTTP/1.1",
        scheme: "https",
        host: b"shop.test",
        status: 200,
        request_length: 120,
        bytes_sent: 300,
        body_bytes_sent: 200,
        request_time: Duration::from_micros(12_345),
        user_agent: b"curl/8 \"quoted\"",
        referer: b"",
        upstream_addr: Some(&UPSTREAM),
        upstream_status: Some(200),
        upstream_response_time: Some(Duration::from_millis(11)),
        upstream_connect_time: None,
        tls_version: Some("TLSv1.3"),
        route_kind: "Ingress",
        route: "shop/web",
        service: "shop/web:80",
        canary: false,
    }
}

fn text(template: &str, line: &Line<'_>) -> String {
    let mut out = Vec::new();
    Template::parse(template).unwrap().write(&mut out, line);
    String::from_utf8(out).unwrap()
}

#[test]
fn upstreaminfo_matches_ingress_nginx() {
    assert_eq!(
        text(UPSTREAMINFO, &line()),
        "203.0.113.7 - - [07/Dec/2026:11:42:58 +0000] \"GET /a/b?x=1 HTTP/1.1\" 200 200 \"-\" \
         \"curl/8 \\x22quoted\\x22\" 120 0.012 [upstream-shop-web-80] [] 10.0.0.5:8080 200 0.011 \
         200 rid-1\n"
    );
}

#[test]
fn braces_names_and_unknowns() {
    assert_eq!(
        text("${status}x $ssl_protocol $route_kind/$namespace/$ingress_name $service_name:$service_port $args $uri $$", &line()),
        "200x TLSv1.3 Ingress/shop/web web:80 x=1 /a/b $$\n"
    );
    assert!(matches!(
        Template::parse("$nope"),
        Err(TemplateError::UnknownVariable(name, _)) if name == "nope"
    ));
    assert_eq!(Template::parse("${status"), Err(TemplateError::Unclosed));
}

#[test]
fn json_is_one_valid_object_per_line() {
    let mut l = line();
    l.user_agent = b"evil\n\"agent\"\xff";
    let mut out = Vec::new();
    Format::Json.write(&mut out, &l);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.matches('\n').count(), 1);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["target"], "access");
    assert_eq!(v["user_agent"], "evil\n\"agent\"\u{fffd}");
    assert_eq!(v["status"], 200);
    assert_eq!(v["ingress"], "shop/web");
    assert_eq!(v["upstream_status"], 200);
    assert_eq!(v["upstream_connect_ms"], serde_json::Value::Null);
    assert_eq!(v["duration_ms"], 12.345);
    assert_eq!(v["timestamp"], "2026-12-07T11:42:58.123Z");
}

#[test]
fn canary_is_the_alternative_upstream() {
    let mut l = line();
    l.canary = true;
    assert_eq!(
        text(
            "[$proxy_upstream_name] [$proxy_alternative_upstream_name] $canary",
            &l
        ),
        "[] [upstream-shop-web-80] true\n"
    );
}

#[test]
fn escape_check_finds_every_special_byte_at_every_offset() {
    for len in [1usize, 7, 8, 9, 16, 17, 23] {
        for at in 0..len {
            for b in 0..=255u8 {
                let mut value = vec![b'a'; len];
                value[at] = b;
                let special = !plain(b);
                assert_eq!(
                    needs_escape(&value),
                    special,
                    "byte {b:#x} at {at} of {len}"
                );
                let mut fast = Vec::new();
                escaped(&mut fast, &value);
                let mut slow = Vec::new();
                escaped_slow(&mut slow, &value);
                assert_eq!(fast, slow);
            }
        }
    }
    assert!(!needs_escape(b""));
    assert!(!needs_escape(b"Mozilla/5.0 (X11; Linux x86_64) ~}|{"));
}
