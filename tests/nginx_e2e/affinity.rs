//! Ported from ingress-nginx `test/e2e/annotations/affinity.go`.

use crate::common::Resp;
use crate::{path_entry, single, with_rules, Site};
use serde_json::json;

const COOKIE: &str = "SERVERID";

fn sticky(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut a = vec![("affinity", "cookie"), ("session-cookie-name", COOKIE)];
    a.extend_from_slice(extra);
    a
}

fn set_cookie(r: &Resp) -> String {
    assert_eq!(r.status, 200, "{}", r.summary());
    r.header("set-cookie")
        .unwrap_or_else(|| panic!("no Set-Cookie: {:?}", r.headers))
}

#[tokio::test]
async fn should_set_sticky_cookie_serverid() {
    let host = "sticky.foo.com";
    let site = Site::start(vec![single(host, "/", host, &sticky(&[]))]).await;
    assert!(set_cookie(&site.get(host, "/", &[]).await).contains("SERVERID="));
}

#[tokio::test]
async fn should_set_the_path_to_something_on_the_generated_cookie() {
    let host = "path.foo.com";
    let site = Site::start(vec![single(host, "/something", host, &sticky(&[]))]).await;
    let c = set_cookie(&site.get(host, "/something", &[]).await);
    assert!(c.contains("Path=/something"), "{c}");
}

#[tokio::test]
async fn does_not_set_the_path_to_slash_on_the_generated_cookie_if_theres_more_than_one_rule_referring_to_the_same_backend(
) {
    let host = "morethanonerule.foo.com";
    let ing = with_rules(
        host,
        &sticky(&[]),
        vec![json!({"host": host, "http": {"paths": [
            path_entry("/something", "Prefix"),
            path_entry("/somewhereelse", "Prefix"),
        ]}})],
    );
    let site = Site::start(vec![ing]).await;
    let c = set_cookie(&site.get(host, "/something", &[]).await);
    assert!(c.contains("Path=/something"), "{c}");
    let c = set_cookie(&site.get(host, "/somewhereelse", &[]).await);
    assert!(c.contains("Path=/somewhereelse"), "{c}");
}

#[tokio::test]
async fn should_set_cookie_with_expires() {
    let host = "cookieexpires.foo.com";
    let annotations = [
        ("affinity", "cookie"),
        ("session-cookie-name", "ExpiresCookie"),
        ("session-cookie-expires", "172800"),
        ("session-cookie-max-age", "259200"),
    ];
    let site = Site::start(vec![single(host, "/", host, &annotations)]).await;
    let c = set_cookie(&site.get(host, "/", &[]).await);
    // `Expires` is 48h from now in nginx's cookie_time format.
    let expires = c
        .split("; ")
        .find_map(|a| a.strip_prefix("Expires="))
        .unwrap_or_else(|| panic!("no Expires: {c}"));
    assert!(
        expires.ends_with(" GMT") && expires.len() == 27,
        "{expires}"
    );
    assert!(c.contains("Max-Age=259200"), "{c}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let day = |t: u64| t / 86_400;
    // The day of month of now + 48h (or a second later) is the cookie's.
    let dd: u64 = expires[5..7].parse().unwrap();
    let candidates = [day(now + 172_800), day(now + 172_801)];
    assert!(
        candidates.iter().any(|d| civil_day(*d) == dd),
        "{expires} is not 48h from now"
    );
}

/// Day of month of a day number since 1970-01-01.
fn civil_day(days: u64) -> u64 {
    let z = days as i64 + 719_468;
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    (doy - (153 * mp + 2) / 5 + 1) as u64
}

#[tokio::test]
async fn should_set_cookie_with_domain() {
    let host = "cookiedomain.foo.com";
    let annotations = [
        ("affinity", "cookie"),
        ("session-cookie-name", "DomainCookie"),
        ("session-cookie-domain", "foo.bar"),
    ];
    let site = Site::start(vec![single(host, "/", host, &annotations)]).await;
    let c = set_cookie(&site.get(host, "/", &[]).await);
    assert!(c.contains("Domain=foo.bar"), "{c}");
}

#[tokio::test]
async fn should_not_set_cookie_without_domain_annotation() {
    let host = "cookienodomain.foo.com";
    let annotations = [
        ("affinity", "cookie"),
        ("session-cookie-name", "NoDomainCookie"),
    ];
    let site = Site::start(vec![single(host, "/", host, &annotations)]).await;
    let c = set_cookie(&site.get(host, "/", &[]).await);
    assert!(!c.contains("; Domain"), "{c}");
}

#[tokio::test]
async fn should_work_with_use_regex_annotation_and_session_cookie_path() {
    let host = "useregex.foo.com";
    let annotations = sticky(&[("use-regex", "true"), ("session-cookie-path", "/foo/bar")]);
    let site = Site::start(vec![single(host, "/foo/.*", host, &annotations)]).await;
    let c = set_cookie(&site.get(host, "/foo/bar", &[]).await);
    assert!(
        c.contains("Path=/foo/bar") && c.contains("SERVERID="),
        "{c}"
    );
}

#[tokio::test]
async fn should_warn_user_when_use_regex_is_true_and_session_cookie_path_is_not_set() {
    let host = "useregexwarn.foo.com";
    let annotations = sticky(&[("use-regex", "true")]);
    let site = Site::start(vec![single(host, "/foo/.*", host, &annotations)]).await;
    assert_eq!(site.get(host, "/foo/bar", &[]).await.status, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !site
        .tg
        .proc_
        .logs()
        .contains("session-cookie-path should be set when use-regex is true")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            site.tg.proc_.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn should_not_set_affinity_across_all_server_locations_when_using_separate_ingresses() {
    let host = "separate.foo.com";
    let site = Site::start(vec![
        single("ingress1", "/foo/bar", host, &[("affinity", "cookie")]),
        single("ingress2", "/foo", host, &[]),
    ])
    .await;
    let r = site.get(host, "/foo", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("set-cookie"), None);
    let c = set_cookie(&site.get(host, "/foo/bar", &[]).await);
    assert!(c.contains("Path=/foo/bar"), "{c}");
}

#[tokio::test]
async fn should_set_sticky_cookie_without_host() {
    let site = Site::start(vec![single("default-no-host", "/", "", &sticky(&[]))]).await;
    let c = set_cookie(&site.get("anything.example", "/", &[]).await);
    assert!(c.contains("SERVERID="), "{c}");
}

#[tokio::test]
async fn should_set_secure_in_cookie_with_provided_true_annotation_on_http() {
    let host = "foo.com";
    let annotations = sticky(&[("session-cookie-secure", "true")]);
    let site = Site::start(vec![single(host, "/bar", host, &annotations)]).await;
    let c = set_cookie(&site.get(host, "/bar", &[]).await);
    assert!(c.contains("; Secure"), "{c}");
}

#[tokio::test]
async fn should_not_set_secure_in_cookie_with_provided_false_annotation_on_http() {
    let host = "foo.com";
    let annotations = sticky(&[("session-cookie-secure", "false")]);
    let site = Site::start(vec![single(host, "/bar", host, &annotations)]).await;
    let c = set_cookie(&site.get(host, "/bar", &[]).await);
    assert!(!c.contains("; Secure"), "{c}");
}

/// Not a Go case (the balancer's `set_cookie`): SameSite, and
/// `conditional-samesite-none` leaving it out for old Chrome.
#[tokio::test]
async fn balancer_sets_samesite_unless_the_client_mishandles_none() {
    let host = "samesite.foo.com";
    let annotations = sticky(&[
        ("session-cookie-samesite", "None"),
        ("session-cookie-conditional-samesite-none", "true"),
    ]);
    let site = Site::start(vec![single(host, "/", host, &annotations)]).await;
    let c = set_cookie(&site.get(host, "/", &[]).await);
    assert!(
        c.contains("; SameSite=None") && c.contains("HttpOnly"),
        "{c}"
    );
    let old = [(
        "User-Agent",
        "Mozilla/5.0 Chrome/51.0.2704.103 Safari/537.36",
    )];
    let c = set_cookie(&site.get(host, "/", &old).await);
    assert!(!c.contains("SameSite"), "{c}");
}

/// Not a Go case (the balancer's `balance`): a cookie naming no endpoint
/// gets a fresh `Set-Cookie`; a good one gets none.
#[tokio::test]
async fn balancer_replaces_an_unknown_cookie_and_keeps_a_good_one() {
    let host = "stale.foo.com";
    let annotations = sticky(&[("affinity-mode", "persistent")]);
    let site = Site::start(vec![single(host, "/", host, &annotations)]).await;
    let c = set_cookie(&site.get(host, "/", &[("Cookie", "SERVERID=zzzz")]).await);
    let value = c
        .split(';')
        .next()
        .and_then(|kv| kv.strip_prefix("SERVERID="))
        .unwrap()
        .to_string();
    assert_ne!(value, "zzzz");
    let again = site
        .get(host, "/", &[("Cookie", &format!("SERVERID={value}"))])
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.header("set-cookie"), None);
}
