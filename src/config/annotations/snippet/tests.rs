use http::{HeaderName, HeaderValue};

use super::*;

fn edits(rules: &HeaderRules) -> (String, String) {
    let show = |e: &super::super::headers::Edits| {
        let Some(e) = e.build() else {
            return String::new();
        };
        let pairs = |l: &[(HeaderName, HeaderValue)]| {
            l.iter()
                .map(|(n, v)| format!("{n}={}", v.to_str().unwrap()))
                .collect::<Vec<_>>()
                .join(",")
        };
        let removed: Vec<&str> = e.remove.iter().map(|n| n.as_str()).collect();
        format!(
            "set[{}] add[{}] remove[{}]",
            pairs(&e.set),
            pairs(&e.add),
            removed.join(",")
        )
    };
    (show(&rules.request), show(&rules.response))
}

#[test]
fn header_directives_become_typed_rules() {
    let rules = parse(
        r#"
        # security headers
        more_set_headers "X-Frame-Options: DENY" 'X-Content-Type-Options: nosniff';
        more_set_headers "Content-Security-Policy: default-src 'self'; img-src *";
        add_header Strict-Transport-Security "max-age=31536000; includeSubDomains" always;
        add_header X-Empty "";
        more_clear_headers Server X-Powered-By;
        proxy_hide_header X-Internal;
        proxy_set_header X-Tenant "a b";
        proxy_set_header Accept-Encoding "";
        more_set_headers "X-Cleared:";
        "#,
    )
    .unwrap();
    let (request, response) = edits(&rules);
    assert_eq!(request, "set[x-tenant=a b] add[] remove[accept-encoding]");
    assert_eq!(
        response,
        "set[x-frame-options=DENY,x-content-type-options=nosniff,content-security-policy=default-src 'self'; img-src *] \
         add[strict-transport-security=max-age=31536000; includeSubDomains] \
         remove[server,x-powered-by,x-internal,x-cleared]"
    );
}

#[test]
fn escapes_follow_nginx() {
    let rules = parse(r#"more_set_headers "X-Q: say \"hi\"" 'X-S: it\'s' X-U:\;ok;"#).unwrap();
    let (_, response) = edits(&rules);
    assert_eq!(
        response,
        r#"set[x-q=say "hi",x-s=it's,x-u=\;ok] add[] remove[]"#
    );
}

#[test]
fn anything_else_is_refused_naming_it() {
    let cases = [
        ("rewrite ^ /admin break;", "`rewrite`"),
        ("return 200 'ok';", "`return`"),
        ("if ($http_x) { return 403; }", "`if`"),
        ("more_set_headers X-A;", "not `Name: value`"),
        ("access_by_lua_block { ngx.exit(403) }", "`{`"),
        ("content_by_lua 'ngx.say(1)';", "`content_by_lua`"),
        ("lua_need_request_body on;", "`lua_need_request_body`"),
        ("allow 10.0.0.0/8; deny all;", "`allow`"),
        (
            r#"more_set_headers "X-A: 1"; proxy_pass http://evil;"#,
            "`proxy_pass`",
        ),
        (r#"more_set_headers "X-A: 1"#, "unterminated quote"),
        (r#"more_set_headers "X-A: 1""#, "not terminated"),
        ("more_set_headers \"X-A: $remote_addr\";", "`$remote_addr`"),
        ("proxy_set_header X-Real-IP $remote_addr;", "`$remote_addr`"),
        ("more_set_headers -s 404 \"X-A: 1\";", "option `-s`"),
        ("more_clear_headers 'X-Hidden-*';", "wildcard"),
        ("proxy_set_header Host example.com;", "cannot be edited"),
        (
            "more_set_headers \"Connection: close\";",
            "cannot be edited",
        ),
        ("add_header X-A 1 sometimes;", "3 arguments"),
        (
            "more_set_headers \"X-A: a\nb\";",
            "not a valid header value",
        ),
        ("more_set_headers \"X A: 1\";", "not a valid header name"),
        (";", "empty directive"),
        ("more_set_headers \"X-A: 1\"x;", "unexpected `x`"),
        ("}", "`}`"),
        ("include /etc/passwd;", "`include`"),
    ];
    for (snippet, named) in cases {
        let err = parse(snippet).expect_err(snippet);
        assert!(err.contains(named), "{snippet}: {err} (want {named})");
    }
    let many = "more_clear_headers X-A;".repeat(MAX_DIRECTIVES + 1);
    assert!(parse(&many).unwrap_err().contains("directives"));
    let long = format!("more_set_headers \"X-A: {}\";", "a".repeat(MAX_LEN));
    assert!(parse(&long).unwrap_err().contains("longer"));
}

#[test]
fn empty_and_comment_only_snippets_have_no_rules() {
    assert!(parse("").unwrap().is_empty());
    assert!(parse("  # nothing here\n").unwrap().is_empty());
}

mod fuzz {
    //! Fuzz target: the snippet parser on generated snippets (header
    //! directives, other directives, quotes, escapes, braces, variables,
    //! comments, arbitrary text). Invariants: it never panics and is
    //! deterministic; without quotes, escapes or comments, a snippet it
    //! reads has no block and no variable anywhere.

    use proptest::prelude::*;

    use super::super::parse;
    use crate::fuzzing;

    fn token() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => Just("more_set_headers".to_string()),
            2 => Just("more_clear_headers".to_string()),
            2 => Just("add_header".to_string()),
            2 => Just("proxy_set_header".to_string()),
            1 => Just("proxy_hide_header".to_string()),
            1 => Just("always".to_string()),
            1 => Just("rewrite".to_string()),
            1 => Just("content_by_lua_block".to_string()),
            3 => "\"[A-Za-z-]{1,8}: ?[ -~]{0,10}\"",
            3 => "'[A-Za-z-]{1,8}:[a-z ;]{0,6}'",
            3 => "[A-Za-z-]{1,10}:?",
            1 => "\\$[a-z_]{1,8}",
            1 => prop_oneof![Just(";"), Just("{"), Just("}"), Just("#"), Just("\\"), Just("\n")]
                .prop_map(str::to_string),
            1 => any::<String>(),
        ]
    }

    fn snippet() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            (token(), prop_oneof![Just(" "), Just(";\n"), Just("")]),
            0..16,
        )
        .prop_map(|parts| parts.into_iter().map(|(t, sep)| t + sep).collect())
    }

    #[test]
    fn snippets() {
        fuzzing::run("annotations::snippet", 500, snippet(), |text| {
            let first = parse(&text);
            prop_assert_eq!(&first, &parse(&text));
            let plain = !text.contains(['"', '\'', '\\', '#']);
            if first.is_ok() && plain {
                prop_assert!(!text.contains(['{', '}', '$']), "read: {:?}", text);
            }
            Ok(())
        });
    }
}
