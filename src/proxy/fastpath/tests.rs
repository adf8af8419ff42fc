use super::request::{parse, write_upstream, NotFast, MAX_HEADERS};
use crate::proxy::headers::ClientInfo;
use http::HeaderValue;
use std::mem::MaybeUninit;

fn client() -> ClientInfo {
    ClientInfo {
        tls: false,
        sni: None,
        peer: std::net::IpAddr::from([127, 0, 0, 9]),
        peer_ip: HeaderValue::from_static("127.0.0.9"),
        trusted: false,
        proto: HeaderValue::from_static("http"),
        port: HeaderValue::from_static("80"),
    }
}

#[test]
fn plain_gets_qualify_and_go_upstream_with_forwarding_headers() {
    let raw = b"GET /a/b?q=1 HTTP/1.1\r\nHost: A.test\r\nUser-Agent: ua\r\nX-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nAccept: */*\r\n\r\nGET /next";
    let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let head = parse(raw, &mut fields).unwrap().unwrap();
    assert_eq!(
        (head.target, head.path, head.host),
        ("/a/b?q=1", "/a/b", "A.test")
    );
    assert_eq!(head.len, raw.len() - 9);
    assert_eq!(head.user_agent, b"ua");
    assert!(head.request_id.is_none());
    // The canonical head: request line + fields + CRLF.
    let canonical = "GET /a/b?q=1 HTTP/1.1\r\nHost: A.test\r\nUser-Agent: ua\r\nX-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nAccept: */*\r\n\r\n";
    assert_eq!(head.canonical_len, canonical.len());
    let mut out = Vec::new();
    let id = HeaderValue::from_static("0123456789abcdef0123456789abcdef");
    write_upstream(&mut out, &head, &client(), Some(&id));
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "GET /a/b?q=1 HTTP/1.1\r\nhost: A.test\r\nuser-agent: ua\r\naccept: */*\r\n\
         x-request-id: 0123456789abcdef0123456789abcdef\r\nx-forwarded-for: 127.0.0.9\r\n\
         x-real-ip: 127.0.0.9\r\nx-forwarded-proto: http\r\nx-forwarded-host: A.test\r\n\
         x-forwarded-port: 80\r\n\r\n"
    );
}

#[test]
fn a_valid_request_id_is_kept_and_an_invalid_one_replaced() {
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: abc-1\r\n\r\n";
    let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let head = parse(raw, &mut fields).unwrap().unwrap();
    assert_eq!(head.request_id, Some(&b"abc-1"[..]));
    let mut out = Vec::new();
    write_upstream(&mut out, &head, &client(), None);
    assert!(String::from_utf8(out)
        .unwrap()
        .contains("x-request-id: abc-1\r\n"));
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: a b\r\n\r\n";
    let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let head = parse(raw, &mut fields).unwrap().unwrap();
    assert!(head.request_id.is_none());
    let mut out = Vec::new();
    let id = HeaderValue::from_static("new");
    write_upstream(&mut out, &head, &client(), Some(&id));
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("x-request-id: new\r\n") && !text.contains("a b"),
        "{text}"
    );
}

#[test]
fn anything_else_goes_to_hyper() {
    let not_fast: &[&[u8]] = &[
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx",
        b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
        b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: 1\r\nX-Request-Id: 2\r\n\r\n",
        b"GET /{x} HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /a#f HTTP/1.1\r\nHost: a\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
    ];
    for raw in not_fast {
        let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        assert_eq!(
            parse(raw, &mut fields).map(|h| h.is_some()),
            Err(NotFast),
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
    let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..MAX_HEADERS {
        many.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    assert_eq!(parse(&many, &mut fields).map(|h| h.is_some()), Err(NotFast));
    let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    assert!(parse(b"GET / HTTP/1.1\r\nHos", &mut fields)
        .unwrap()
        .is_none());
}
