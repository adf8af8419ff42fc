use super::*;

fn head(raw: &[u8]) -> (Result<Option<Head>, HeadError>, String) {
    let mut out = Vec::new();
    let server = HeaderValue::from_static("tollgate");
    let added = Added {
        server: &server,
        hsts: None,
    };
    let parsed = parse(raw, &mut out, &added);
    (parsed, String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn length_body_keeps_its_length_and_gets_server_and_date() {
    let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\nConnection: x-gone\r\nX-Gone: 1\r\nKeep-Alive: timeout=5\r\n\r\nhello";
    let (parsed, out) = head(raw);
    let h = parsed.unwrap().unwrap();
    assert_eq!(h.len, raw.len() - 5);
    assert_eq!(
        (h.status, h.framing, h.keep_alive),
        (200, Framing::Length(5), true)
    );
    assert!(
        out.starts_with(
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: b\r\nserver: tollgate\r\ndate: "
        ),
        "{out}"
    );
    assert!(
        !out.contains("gone") && !out.contains("keep-alive"),
        "{out}"
    );
    // content-length (14+1+4) + x-a (3+1+4) + server (6+8+4) + 19
    assert_eq!(h.counted, 19 + 8 + 18 + 19);
}

#[test]
fn informational_heads_are_skipped_and_101_is_refused() {
    let raw = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\nServer: b\r\nDate: x\r\n\r\n";
    let (parsed, out) = head(raw);
    let h = parsed.unwrap().unwrap();
    assert_eq!(
        (h.len, h.status, h.framing),
        (raw.len(), 204, Framing::Empty)
    );
    assert_eq!(out, "HTTP/1.1 204 No Content\r\nserver: b\r\ndate: x\r\n");
    let (parsed, _) = head(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
    assert_eq!(parsed.unwrap_err(), HeadError::UnaskedUpgrade);
}

#[test]
fn framing_follows_rfc_9112() {
    let framing = |raw: &[u8]| head(raw).0.unwrap().unwrap().framing;
    assert_eq!(
        framing(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        Framing::Chunked
    );
    assert_eq!(
        framing(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
        Framing::Close
    );
    assert_eq!(framing(b"HTTP/1.1 200 OK\r\n\r\n"), Framing::Close);
    assert_eq!(
        framing(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        Framing::Empty
    );
    assert_eq!(
        framing(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"),
        Framing::Empty
    );
    assert_eq!(
        framing(b"HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n"),
        Framing::Length(7)
    );
    assert_eq!(
        head(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n")
            .0
            .unwrap_err(),
        HeadError::Malformed
    );
    assert_eq!(
        head(b"HTTP/1.1 200 OK\r\nContent-Length: +7\r\n\r\n")
            .0
            .unwrap_err(),
        HeadError::Malformed
    );
    assert!(head(b"HTTP/1.1 200 OK\r\nContent-Le").0.unwrap().is_none());
    let old = head(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n")
        .0
        .unwrap()
        .unwrap();
    assert!(!old.keep_alive);
    let closing = head(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n");
    assert!(!closing.0.unwrap().unwrap().keep_alive);
    assert!(!closing.1.contains("close"));
}

#[test]
fn chunked_bodies_are_decoded_and_re_encoded_in_any_split() {
    let body = b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
    for split in 0..body.len() {
        let mut chunk = Chunk::start();
        let mut out = Vec::new();
        let mut data = 0;
        let mut consumed = 0;
        for part in [&body[..split], &body[split..]] {
            let mut at = 0;
            while at < part.len() && chunk != Chunk::Done {
                match chunk.decode(&part[at..], &mut out, &mut data) {
                    Decoded::Consumed(n) => at += n,
                    Decoded::Malformed => panic!("malformed at split {split}"),
                }
            }
            consumed += at;
        }
        assert_eq!(chunk, Chunk::Done, "split {split}");
        assert_eq!(consumed, body.len() - 4, "split {split}");
        assert_eq!(data, 12);
        let text = String::from_utf8(out).unwrap();
        let decoded: String = text
            .split("\r\n")
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s)
            .collect();
        assert_eq!(decoded, "hello, world", "split {split}: {text}");
    }
    let mut chunk = Chunk::start();
    let mut data = 0;
    assert_eq!(
        chunk.decode(b"zz\r\n", &mut Vec::new(), &mut data),
        Decoded::Malformed
    );
    let mut chunk = Chunk::start();
    assert_eq!(
        chunk.decode(b"ffffffffffffffffff\r\n", &mut Vec::new(), &mut data),
        Decoded::Malformed
    );
}

#[test]
fn hex_and_digits() {
    let mut b = [0u8; 16];
    assert_eq!(hex_of(0, &mut b), b"0");
    assert_eq!(hex_of(0x1a2f, &mut b), b"1a2f");
    assert_eq!(hex_of(u64::MAX, &mut b), b"ffffffffffffffff");
    assert_eq!(digits(b"18446744073709551615"), Some(u64::MAX));
    assert_eq!(digits(b"18446744073709551616"), None);
    assert_eq!(digits(b""), None);
}

#[test]
fn hsts_replaces_the_upstream_one() {
    let server = HeaderValue::from_static("tollgate");
    let hsts = HeaderValue::from_static("max-age=60");
    let added = Added {
        server: &server,
        hsts: Some(&hsts),
    };
    let mut out = Vec::new();
    let raw =
        b"HTTP/1.1 200 OK\r\nStrict-Transport-Security: max-age=1\r\nContent-Length: 0\r\n\r\n";
    let h = parse(raw, &mut out, &added).unwrap().unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("strict-transport-security: max-age=60\r\n"),
        "{out}"
    );
    assert!(!out.contains("max-age=1\r"), "{out}");
    // content-length (14+1+4) + server (6+8+4) + hsts (25+10+4) + 19
    assert_eq!(h.counted, 19 + 18 + 39 + 19);
}
