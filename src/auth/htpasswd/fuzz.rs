//! Fuzz target: the htpasswd parser ([`super::Htpasswd::parse`]) and the
//! Basic credentials check.
//!
//! Invariants, on generated files (valid `{SHA}`, `$apr1$`, `$1$` and
//! bcrypt lines with comments, blank lines, CRLF and `user:hash:comment`,
//! mixed with lines that are wrong in one way each) and on their byte
//! mutations:
//! - a file is accepted exactly when every line it was generated with is
//!   valid, and otherwise refused at the first invalid line;
//! - an accepted file has one user per distinct name, the first line wins,
//!   and every `{SHA}` and MD5 user verifies with the password it was
//!   generated from (directly and through an `Authorization` header) and
//!   not with another;
//! - an error never contains the hash field it refused.

use base64::Engine as _;
use proptest::prelude::*;
use sha1::{Digest, Sha1};

use super::{md5_crypt, CachedCheck, Htpasswd, Location, BASE64};
use crate::fuzzing::{self, mutate_text, mutations};

/// One generated line: its text, and the user and password it defines
/// (`None` for a line that is not an entry, `Err` for an invalid one).
#[derive(Debug, Clone)]
struct Line {
    text: String,
    entry: Result<Option<(String, Option<String>)>, ()>,
}

fn user() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._@-][a-zA-Z0-9._@ é-]{0,8}"
}

fn password() -> impl Strategy<Value = String> {
    "[ -~é]{0,12}"
}

fn bcrypt_hash() -> impl Strategy<Value = String> {
    let b64 = base64::engine::GeneralPurpose::new(
        &base64::alphabet::BCRYPT,
        base64::engine::general_purpose::NO_PAD,
    );
    (
        prop_oneof![Just("y"), Just("a"), Just("b")],
        4u32..=super::MAX_BCRYPT_COST,
        any::<[u8; 16]>(),
        any::<[u8; 23]>(),
    )
        .prop_map(move |(v, cost, salt, hash)| {
            format!("$2{v}${cost:02}${}{}", b64.encode(salt), b64.encode(hash))
        })
}

fn valid_entry() -> impl Strategy<Value = (String, String, Option<String>)> {
    let sha = password().prop_map(|p| {
        let digest = Sha1::digest(p.as_bytes());
        (format!("{{SHA}}{}", BASE64.encode(digest)), Some(p))
    });
    let md5 = (
        prop_oneof![Just("$apr1$"), Just("$1$")],
        "[./0-9A-Za-z]{0,8}",
        password(),
    )
        .prop_map(|(magic, salt, p)| {
            let digest = md5_crypt(p.as_bytes(), magic.as_bytes(), salt.as_bytes());
            let digest = String::from_utf8_lossy(&digest).into_owned();
            (format!("{magic}{salt}${digest}"), Some(p))
        });
    let bcrypt = bcrypt_hash().prop_map(|h| (h, None));
    (user(), prop_oneof![2 => sha, 2 => md5, 1 => bcrypt]).prop_map(|(u, (hash, p))| (u, hash, p))
}

fn invalid_hash() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("hunter2-plain".to_string()),
        Just("rl5sQVSbkuh5.".to_string()),
        "\\$[0-9a-z]{1,4}\\$[ -9;-~]{0,12}",
        "\\{[A-Z]{1,6}\\}[ -9;-~]{0,12}",
        "\\{SHA\\}[A-Za-z0-9+/=]{0,30}",
        "\\$apr1\\$[./0-9A-Za-z]{9,12}\\$[./0-9A-Za-z]{22}",
        "\\$apr1\\$[./0-9A-Za-z]{0,8}\\$[./0-9A-Za-z]{0,21}",
        "\\$1\\$[./0-9A-Za-z]{0,8}\\$[./0-9A-Za-z]{21}[!-]",
        "\\$1\\$[./0-9A-Za-z]{0,8}",
        bcrypt_hash().prop_map(|h| h.replacen("$0", "$3", 1).replacen("$1", "$2", 1)),
        bcrypt_hash().prop_map(|h| h[..59].to_string()),
    ]
    .prop_filter("not valid by accident", |h| {
        !h.starts_with("{SHA}") || BASE64.decode(&h[5..]).map_or(true, |d| d.len() != 20)
    })
}

fn line() -> impl Strategy<Value = Line> {
    let comment =
        prop_oneof![3 => Just(String::new()), 1 => "[ -~]{0,10}".prop_map(|c| format!(":{c}"))];
    prop_oneof![
        6 => (valid_entry(), comment.clone()).prop_map(|((u, h, p), c)| Line {
            text: format!("{u}:{h}{c}"),
            entry: Ok(Some((u, p))),
        }),
        1 => "(#[ -~]{0,10})?|[ \t]{0,3}(#[ -~]{0,5})?".prop_map(|text| Line { text, entry: Ok(None) }),
        1 => (user(), invalid_hash()).prop_map(|(u, h)| Line { text: format!("{u}:{h}"), entry: Err(()) }),
        1 => prop_oneof![
            user(),                                                 // no colon
            valid_entry().prop_map(|(_, h, _)| format!(":{h}")),     // empty user
        ]
        .prop_filter("not a comment", |t| !t.trim_start().starts_with('#') && !t.trim().is_empty())
        .prop_map(|text| Line { text, entry: Err(()) }),
    ]
}

fn file() -> impl Strategy<Value = (Vec<Line>, bool)> {
    (proptest::collection::vec(line(), 0..8), any::<bool>())
}

/// The hash field of a line as the parser sees it.
fn hash_field(line: &str) -> &str {
    let rest = line.trim_end().split_once(':').map_or("", |(_, r)| r);
    rest.split_once(':').map_or(rest, |(h, _)| h)
}

/// The parser's source: every fixed word an error can print is in it.
const SOURCE: &str = include_str!("../htpasswd.rs");

fn no_leak(text: &str, err: &super::HtpasswdError) -> Result<(), TestCaseError> {
    let Location::Line(n) = err.location else {
        return Err(TestCaseError::fail("a file error names a line"));
    };
    let line = text.lines().nth(n - 1).unwrap_or_default();
    let hash = hash_field(line).trim();
    let user = line.split_once(':').map_or(line, |(u, _)| u);
    // A short field may match the message's fixed words or the user name
    // by chance; what must never appear is the field itself.
    let by_chance = SOURCE.contains(hash) || user.contains(hash);
    if hash.len() >= 4 && !by_chance {
        prop_assert!(
            !err.to_string().contains(hash),
            "hash {hash:?} leaked: {err}"
        );
    }
    Ok(())
}

fn check((lines, crlf): (Vec<Line>, bool)) -> Result<(), TestCaseError> {
    let eol = if crlf { "\r\n" } else { "\n" };
    let text: String = lines.iter().map(|l| format!("{}{eol}", l.text)).collect();
    let first_bad = lines.iter().position(|l| l.entry.is_err());
    match (Htpasswd::parse(&text), first_bad) {
        (Ok(file), None) => {
            let mut first: Vec<(String, Option<String>)> = Vec::new();
            for (u, p) in lines.iter().filter_map(|l| l.entry.clone().ok().flatten()) {
                if !first.iter().any(|(seen, _)| *seen == u) {
                    first.push((u, p));
                }
            }
            prop_assert_eq!(file.len(), first.len());
            for (user, password) in first.iter().take(2) {
                let Some(password) = password else { continue };
                prop_assert!(file.verify(user, password), "{user:?} / {password:?}");
                let wrong = format!("{password}x");
                prop_assert!(!file.verify(user, &wrong));
                let header = http::HeaderValue::from_str(&format!(
                    "Basic {}",
                    BASE64.encode(format!("{user}:{password}"))
                ));
                if let Ok(header) = header {
                    prop_assert!(file.check_header(Some(&header)));
                    // Verified once: now decided without a slow hash.
                    prop_assert_eq!(
                        file.check_header_cached(Some(&header)),
                        CachedCheck::Decided(true)
                    );
                }
            }
        }
        (Err(err), Some(bad)) => {
            prop_assert_eq!(&err.location, &Location::Line(bad + 1), "{}", err);
            no_leak(&text, &err)?;
        }
        (result, bad) => {
            return Err(TestCaseError::fail(format!(
                "{text:?}: {result:?}, first bad line {bad:?}"
            )));
        }
    }
    Ok(())
}

#[test]
fn generated_files() {
    fuzzing::run("htpasswd::generated", 64, file(), check);
}

#[test]
fn mutated_files_and_headers() {
    let text = (file(), mutations()).prop_map(|((lines, _), m)| {
        let text: String = lines.iter().map(|l| format!("{}\n", l.text)).collect();
        mutate_text(&text, &m)
    });
    let header = prop_oneof![
        "[Bb][Aa][Ss][Ii][Cc][ \t]{1,2}[A-Za-z0-9+/=]{0,20}",
        proptest::collection::vec(any::<u8>(), 0..40)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ];
    fuzzing::run(
        "htpasswd::mutated",
        100,
        (text, header),
        |(text, header)| {
            match Htpasswd::parse(&text) {
                Ok(file) => {
                    if let Ok(h) = http::HeaderValue::from_str(&header) {
                        if file.check_header_cached(Some(&h)) == CachedCheck::Slow {
                            let _ = file.check_header(Some(&h));
                        }
                    }
                }
                Err(err) => no_leak(&text, &err)?,
            }
            Ok(())
        },
    );
}
