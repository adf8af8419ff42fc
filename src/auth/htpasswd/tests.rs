use super::*;

/// The OpenBSD / John the Ripper bcrypt test vector for "U*U" (cost 5).
const U_STAR_U: &str = "CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";

fn bcrypt_line(user: &str, version: &str) -> String {
    format!("{user}:$2{version}$05${U_STAR_U}")
}

fn basic(credentials: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Basic {}", BASE64.encode(credentials))).unwrap()
}

#[test]
fn bcrypt_in_all_three_prefixes_verifies() {
    for version in ["y", "a", "b"] {
        let file = Htpasswd::parse(&bcrypt_line("u", version)).unwrap();
        assert!(file.verify("u", "U*U"), "$2{version}$");
        assert!(!file.verify("u", "U*U*"), "$2{version}$");
        assert!(!file.verify("v", "U*U"), "unknown user, $2{version}$");
    }
}

#[test]
fn apr1_and_md5_crypt_match_openssl_vectors() {
    // Produced by `openssl passwd -apr1 -salt ...` and `openssl passwd -1`.
    let file = Htpasswd::parse(
        "plain:$apr1$r31....$gnsoqlxyxQQ0Ot5JCwiei.\n\
         utf8:$apr1$abcdefgh$rGvTEBKFfTmcm9dL0t9pQ/\n\
         sixteen:$apr1$12345678$ybauQxVeGww9PwjYezC2G/\n\
         empty:$apr1$x$tMwYqBfQwi3FYAr0aJc8M/\n\
         md5:$1$saltsalt$ZliGyAN3DciDHEkDboonh/\n",
    )
    .unwrap();
    assert_eq!(file.len(), 5);
    assert!(file.verify("plain", "secret"));
    assert!(file.verify("utf8", "pässwörd-with-a-long-tail-0123456789"));
    assert!(file.verify("sixteen", "exactly-sixteen!"));
    assert!(!file.verify("sixteen", "exactly-sixteen?"));
    assert!(file.verify("empty", ""));
    assert!(file.verify("md5", "hunter2"));
    assert!(!file.verify("plain", "Secret"));
    assert!(!file.verify("md5", "secret"), "magic is part of the hash");
}

#[test]
fn sha1_verifies() {
    // printf secret | openssl dgst -sha1 -binary | base64
    let file = Htpasswd::parse("s:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=").unwrap();
    assert!(file.verify("s", "secret"));
    assert!(!file.verify("s", "secret "));
}

#[test]
fn comments_blank_lines_crlf_and_trailing_comment_fields() {
    let text = "# users\r\n\r\n   \n  # indented comment\nplain:$apr1$r31....$gnsoqlxyxQQ0Ot5JCwiei.:Some Comment\r\n";
    let file = Htpasswd::parse(text).unwrap();
    assert_eq!(file.len(), 1);
    assert!(file.verify("plain", "secret"));
}

#[test]
fn first_entry_of_a_duplicated_user_wins() {
    let file = Htpasswd::parse(
        "s:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\ns:$apr1$12345678$ybauQxVeGww9PwjYezC2G/",
    )
    .unwrap();
    assert!(file.verify("s", "secret"));
    assert!(!file.verify("s", "exactly-sixteen!"));
}

#[test]
fn errors_name_the_line_and_the_reason() {
    let cases: &[(&str, usize, HtpasswdErrorKind)] = &[
        ("# c\nnocolon", 2, HtpasswdErrorKind::NoColon),
        (
            "\n\n:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=",
            3,
            HtpasswdErrorKind::EmptyUser,
        ),
        (
            "a:",
            1,
            HtpasswdErrorKind::EmptyHash {
                user: "a".to_string(),
            },
        ),
        (
            "a:{SHA}not base64!",
            1,
            HtpasswdErrorKind::Malformed {
                user: "a".to_string(),
                scheme: "{SHA}",
                reason: "not base64",
            },
        ),
        (
            "a:$apr1$12345678$short",
            1,
            HtpasswdErrorKind::Malformed {
                user: "a".to_string(),
                scheme: "$apr1$",
                reason: "digest is not 22 characters",
            },
        ),
        (
            "a:$2y$05$tooshort",
            1,
            HtpasswdErrorKind::Malformed {
                user: "a".to_string(),
                scheme: "bcrypt",
                reason: "expected $2y$NN$ and 53 base64 characters",
            },
        ),
        (
            &format!("a:$2y$31${U_STAR_U}"),
            1,
            HtpasswdErrorKind::BcryptCost {
                user: "a".to_string(),
                cost: 31,
            },
        ),
    ];
    for (text, line, kind) in cases {
        let err = Htpasswd::parse(text).unwrap_err();
        assert_eq!(err.location, Location::Line(*line), "{text:?}");
        assert_eq!(&err.kind, kind, "{text:?}");
    }
    let message = Htpasswd::parse("x:y\n\nbad").unwrap_err().to_string();
    assert!(message.starts_with("line 1: "), "{message}");
}

#[test]
fn unsupported_schemes_are_refused_without_echoing_the_hash() {
    let cases = [
        ("a:rl5sQVSbkuh5.", "crypt(3) DES"),
        ("a:hunter2-is-my-password", "plain text"),
        ("a:$6$salt$abcdef", "$6$ (SHA-512 crypt)"),
        ("a:$5$salt$abcdef", "$5$ (SHA-256 crypt)"),
        ("a:{SSHA}c2VjcmV0", "{SSHA}"),
        ("a:{PLAIN}hunter2", "{PLAIN}"),
        (&format!("a:$2x$05${U_STAR_U}"), "$2x$"),
    ];
    for (text, scheme) in cases {
        let err = Htpasswd::parse(text).unwrap_err();
        let HtpasswdErrorKind::UnsupportedScheme { scheme: got, .. } = &err.kind else {
            panic!("{text}: {err}");
        };
        assert!(got.starts_with(scheme), "{text}: {got}");
        let message = err.to_string();
        let hash = text.split_once(':').unwrap().1;
        assert!(!message.contains(hash), "hash leaked: {message}");
        assert!(!message.contains("hunter2"), "password leaked: {message}");
    }
}

/// Found by the fuzz target: a "hash" that is only a scheme label
/// (`$3a$`, `{PLAIN}`) was echoed whole as the scheme's name, and an
/// unknown `$word$...` echoed its first word.
#[test]
fn a_field_that_is_only_a_label_is_not_echoed() {
    for text in [
        "u:$3a$",
        "u:$6$",
        "u:{PLAIN}",
        "u:$hunter2$x",
        "u:{hunter2}x",
    ] {
        let err = Htpasswd::parse(text).unwrap_err();
        let hash = text.split_once(':').unwrap().1;
        assert!(!err.to_string().contains(hash), "{text}: {err}");
        assert!(!err.to_string().contains("hunter2"), "{text}: {err}");
        let HtpasswdErrorKind::UnsupportedScheme { scheme, .. } = &err.kind else {
            panic!("{text}: {err}");
        };
        assert_eq!(scheme, "plain text (or unknown)", "{text}");
    }
}

#[test]
fn auth_map_pairs_trim_hashes_and_name_the_key() {
    let file = Htpasswd::from_pairs([
        ("plain", "$apr1$r31....$gnsoqlxyxQQ0Ot5JCwiei.\n"),
        ("s", " {SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="),
    ])
    .unwrap();
    assert!(file.verify("plain", "secret"));
    assert!(file.verify("s", "secret"));
    let err = Htpasswd::from_pairs([("carol", "hunter2")]).unwrap_err();
    assert_eq!(err.location, Location::Key("carol".to_string()));
    assert!(err.to_string().starts_with("key \"carol\": "), "{err}");
    let err = Htpasswd::from_pairs([("", "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=")]).unwrap_err();
    assert_eq!(err.kind, HtpasswdErrorKind::EmptyUser);
}

#[test]
fn basic_header_parsing() {
    let file = Htpasswd::parse(
        "s:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\nplain:$apr1$r31....$gnsoqlxyxQQ0Ot5JCwiei.",
    )
    .unwrap();
    assert!(file.check_header(Some(&basic("s:secret"))));
    assert!(file.check_header(Some(&basic("plain:secret"))));
    // Scheme is case-insensitive; padding optional; extra spaces tolerated.
    let unpadded = BASE64.encode("s:secret").trim_end_matches('=').to_string();
    for value in [
        format!("basic {}", BASE64.encode("s:secret")),
        format!("BASIC   {}", BASE64.encode("s:secret")),
        format!("Basic {unpadded}"),
    ] {
        assert!(
            file.check_header(Some(&HeaderValue::from_str(&value).unwrap())),
            "{value}"
        );
    }
    let refused = [
        None,
        Some(HeaderValue::from_static("")),
        Some(HeaderValue::from_static("Basic")),
        Some(HeaderValue::from_static("Basic ")),
        Some(HeaderValue::from_static("Basic !!!!")),
        Some(HeaderValue::from_static("Bearer czpzZWNyZXQ=")),
        Some(HeaderValue::from_static("Basicczpzb2NyZXQ=")),
        // "ssecret": no colon.
        Some(HeaderValue::from_static("Basic c3NlY3JldA==")),
        Some(basic("s:wrong")),
        Some(basic("s:secret:")),
        Some(basic("nobody:secret")),
        Some(basic(":secret")),
        // Invalid UTF-8 user name.
        Some(HeaderValue::from_str(&format!("Basic {}", BASE64.encode(b"\xff:secret"))).unwrap()),
        // Very long credentials go the heap route and still fail cleanly.
        Some(basic(&format!("s:{}", "x".repeat(10_000)))),
    ];
    for value in refused {
        assert!(!file.check_header(value.as_ref()), "{value:?}");
        assert_eq!(
            file.check_header_cached(value.as_ref()),
            CachedCheck::Decided(false),
            "{value:?}"
        );
    }
}

#[test]
fn passwords_may_contain_colons_and_arbitrary_bytes() {
    let digest = BASE64.encode(<[u8; 20]>::from(Sha1::digest(b"pa:ss\xff")));
    let file = Htpasswd::parse(&format!("bob:{{SHA}}{digest}")).unwrap();
    let header =
        HeaderValue::from_str(&format!("Basic {}", BASE64.encode(b"bob:pa:ss\xff"))).unwrap();
    assert!(file.check_header(Some(&header)));
}

#[test]
fn slow_successes_are_cached_and_failures_are_not() {
    let file = Htpasswd::parse(&bcrypt_line("u", "y")).unwrap();
    let good = basic("u:U*U");
    let bad = basic("u:nope");
    assert_eq!(file.check_header_cached(Some(&good)), CachedCheck::Slow);
    assert!(!file.check_header(Some(&bad)));
    assert_eq!(
        file.check_header_cached(Some(&bad)),
        CachedCheck::Slow,
        "a failure must not be cached"
    );
    assert!(file.check_header(Some(&good)));
    assert_eq!(
        file.check_header_cached(Some(&good)),
        CachedCheck::Decided(true)
    );
    // Other credentials for the same user still need the slow path.
    assert_eq!(file.check_header_cached(Some(&bad)), CachedCheck::Slow);
    // SHA-1 users never need the slow path.
    let sha = Htpasswd::parse("s:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=").unwrap();
    assert_eq!(
        sha.check_header_cached(Some(&basic("s:secret"))),
        CachedCheck::Decided(true)
    );
}

#[test]
fn cache_hits_are_much_faster_than_bcrypt() {
    let file = Htpasswd::parse(&bcrypt_line("u", "y")).unwrap();
    let started = std::time::Instant::now();
    assert!(file.verify("u", "U*U"));
    let miss = started.elapsed();
    let started = std::time::Instant::now();
    for _ in 0..10 {
        assert!(file.verify("u", "U*U"));
    }
    let ten_hits = started.elapsed();
    assert!(ten_hits < miss, "10 hits {ten_hits:?} vs one miss {miss:?}");
}

#[test]
fn cache_stays_bounded_and_correct_under_churn() {
    // Many distinct successful credentials (different users, same slow
    // scheme) overflow the cache; every one still verifies and wrong
    // passwords never pass.
    let lines: Vec<String> = (0..CACHE_SLOTS * 2)
        .map(|i| format!("user{i}:$apr1$12345678$ybauQxVeGww9PwjYezC2G/"))
        .collect();
    let file = Htpasswd::parse(&lines.join("\n")).unwrap();
    for i in 0..CACHE_SLOTS * 2 {
        assert!(file.verify(&format!("user{i}"), "exactly-sixteen!"));
    }
    assert_eq!(file.cache.slots.len(), CACHE_SLOTS);
    let cached = file
        .cache
        .slots
        .iter()
        .filter(|s| s.load().is_some())
        .count();
    assert!(cached <= CACHE_SLOTS);
    for i in 0..CACHE_SLOTS * 2 {
        assert!(!file.verify(&format!("user{i}"), "exactly-sixteen?"));
    }
}

#[test]
fn debug_output_has_no_hashes() {
    let file = Htpasswd::parse("s:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=").unwrap();
    let debug = format!("{file:?}");
    assert!(!debug.contains("5en6G6"), "{debug}");
}
