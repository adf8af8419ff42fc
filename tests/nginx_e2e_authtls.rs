//! ingress-nginx's `test/e2e/annotations/authtls.go` (client-certificate
//! authentication, the `auth-tls-*` annotations) ported against the real
//! `tollgate run` binary (standalone mode, echo backend), plus what a
//! migration must be able to rely on: a certificate of another CA, an
//! expired one, chain depth, the SNI of an unprotected host with the Host
//! of a protected one, an unprotected host on the same port (no
//! CertificateRequest), forged `ssl-client-*` headers, a missing Secret
//! (fails closed, with a `tollgate check` diagnostic), HTTP/2 and plain
//! HTTP.
//!
//! Each test named after a Go case quotes it; where the Go case only reads
//! nginx.conf (`ssl_verify_client on;`), the port asserts the behaviour
//! that configuration produces. The client is rustls over tokio-rustls,
//! presenting a certificate made in the test with rcgen.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use serde_json::{json, Value};

const NS: &str = "authtls";
/// ingress-nginx's `authTLSFooHost`.
const HOST: &str = "authtls.foo.com";
/// A host on the same port and certificate, without client auth.
const OPEN: &str = "open.foo.com";
/// The CA Secret (ingress-nginx's `CreateIngressMASecret` names it after
/// the host).
const CA_SECRET: &str = "authtls.foo.com";
const SERVER_SECRET: &str = "server-tls";

type Issuer = rcgen::CertifiedIssuer<'static, rcgen::KeyPair>;

/// The certificates of one test: the server's (for both hosts) and the
/// client CAs with their certificates.
struct Pki {
    server_ca: TestCa,
    server: TestCert,
    ca: Issuer,
    other_ca: Issuer,
    intermediate: Issuer,
}

/// A client identity: the chain it sends (leaf first) and its key.
#[derive(Clone)]
struct Identity(Arc<CertifiedKey>);

fn ca_params(cn: &str) -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    params
}

impl Pki {
    fn new() -> Pki {
        let server_ca = TestCa::new("authtls server CA");
        let server = server_ca.leaf(HOST, &[HOST, OPEN]);
        let ca = Issuer::self_signed(ca_params("authtls CA"), rcgen::KeyPair::generate().unwrap())
            .unwrap();
        let other_ca =
            Issuer::self_signed(ca_params("other CA"), rcgen::KeyPair::generate().unwrap())
                .unwrap();
        let intermediate = Issuer::signed_by(
            ca_params("authtls intermediate"),
            rcgen::KeyPair::generate().unwrap(),
            &ca,
        )
        .unwrap();
        Pki {
            server_ca,
            server,
            ca,
            other_ca,
            intermediate,
        }
    }

    /// A client certificate with subject `CN=cn` signed by `issuer`; the
    /// chain sent is the leaf, then `extra`.
    fn client(
        issuer: &Issuer,
        cn: &str,
        extra: &[&Issuer],
        edit: impl FnOnce(&mut rcgen::CertificateParams),
    ) -> Identity {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        edit(&mut params);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, issuer).unwrap();
        let mut chain = vec![cert.der().clone()];
        chain.extend(extra.iter().map(|i| i.der().clone()));
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing = rustls::crypto::ring::sign::any_supported_type(&private).unwrap();
        Identity(Arc::new(CertifiedKey::new(chain, signing)))
    }

    /// ingress-nginx's client certificate (`CN=authtls`), from the CA.
    fn valid(&self) -> Identity {
        Pki::client(&self.ca, "authtls", &[], |_| {})
    }

    /// The CA Secret: `ca.crt` only, type Opaque (as `CreateIngressMASecret`
    /// makes a generic one).
    fn ca_secret(&self) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": CA_SECRET, "namespace": NS},
            "type": "Opaque",
            "stringData": {"ca.crt": self.ca.pem()},
        })
    }

    fn server_secret(&self) -> Value {
        tls_secret(
            NS,
            SERVER_SECRET,
            &self.server.chain_pem,
            &self.server.key_pem,
        )
    }
}

/// ingress-nginx's `NewSingleIngressWithTLS`: `host` `/` → echo, TLS for
/// `host` from the server Secret, with `nginx.ingress.kubernetes.io/`
/// annotations.
fn single_with_tls(name: &str, host: &str, annotations: &[(&str, &str)]) -> Value {
    let mut v = annotated_ingress(NS, name, host, ("/", "Prefix"), "echo", annotations);
    v["spec"]["tls"] = json!([{"hosts": [host], "secretName": SERVER_SECRET}]);
    v
}

fn secret_annotation() -> String {
    format!("{NS}/{CA_SECRET}")
}

/// tollgate serving `objects` (plus the echo backend and both Secrets).
async fn site(echo: &Echo, pki: &Pki, objects: Vec<Value>) -> Tollgate {
    Tollgate::builder()
        .file("manifests.yaml", &yaml_docs(&docs(echo, pki, objects)))
        .start()
        .await
}

fn docs(echo: &Echo, pki: &Pki, objects: Vec<Value>) -> Vec<Value> {
    let mut docs = vec![ingress_class("tollgate", false)];
    docs.extend(echo.backends(NS));
    docs.push(pki.server_secret());
    docs.push(pki.ca_secret());
    docs.extend(objects);
    docs
}

/// Replaces the manifests (the Ingress updated, as `f.UpdateIngress`).
fn update(tg: &Tollgate, echo: &Echo, pki: &Pki, objects: Vec<Value>) {
    tg.write("manifests.yaml", &yaml_docs(&docs(echo, pki, objects)));
}

/// Presents `identity` when asked, and notes whether it was asked (a
/// CertificateRequest arrived).
#[derive(Debug)]
struct Presenter {
    identity: Option<Arc<CertifiedKey>>,
    asked: Arc<AtomicBool>,
}

impl rustls::client::ResolvesClientCert for Presenter {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.asked.store(true, Ordering::SeqCst);
        self.identity.clone()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// How a test connects: the client certificate (if any) and ALPN.
#[derive(Clone, Default)]
struct Client {
    identity: Option<Identity>,
    h2: bool,
}

impl Client {
    fn with(identity: Identity) -> Client {
        Client {
            identity: Some(identity),
            h2: false,
        }
    }

    fn none() -> Client {
        Client::default()
    }

    fn h2(mut self) -> Client {
        self.h2 = true;
        self
    }
}

/// One GET over a fresh TLS connection (SNI `sni`, Host `host`), with
/// extra request headers; also says whether the server asked for a
/// certificate. `Err` when the handshake or the request failed.
async fn get_full(
    tg: &Tollgate,
    pki: &Pki,
    client: &Client,
    sni: &str,
    host: &str,
    headers: &[(&str, &str)],
) -> Result<(Resp, bool), String> {
    get_at(tg, pki, client, (sni, host, "/"), headers).await
}

/// GET `path` on HOST (SNI = Host).
async fn get_path(tg: &Tollgate, pki: &Pki, client: &Client, path: &str) -> (Resp, bool) {
    get_at(tg, pki, client, (HOST, HOST, path), &[])
        .await
        .unwrap_or_else(|e| panic!("GET https://{HOST}{path}: {e}"))
}

/// One GET over a fresh TLS connection with SNI, Host and path as given.
async fn get_at(
    tg: &Tollgate,
    pki: &Pki,
    client: &Client,
    (sni, host, path): (&str, &str, &str),
    headers: &[(&str, &str)],
) -> Result<(Resp, bool), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(pki.server_ca.der()))
        .unwrap();
    let asked = Arc::new(AtomicBool::new(false));
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(Presenter {
            identity: client.identity.as_ref().map(|i| i.0.clone()),
            asked: asked.clone(),
        }));
    config.alpn_protocols = if client.h2 {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let addr = tg.https_addr();
    let resp = tokio::time::timeout(Duration::from_secs(10), async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        let mut request = if h2 {
            Request::builder()
                .uri(format!("https://{host}{path}"))
                .body(Full::<Bytes>::default())
                .unwrap()
        } else {
            req("GET", host, path).body(Full::default()).unwrap()
        };
        for (k, v) in headers {
            request.headers_mut().append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        let response = if h2 {
            let (mut sender, conn) = hyper::client::conn::http2::handshake(executor(), io)
                .await
                .map_err(|e| format!("h2 handshake: {e}"))?;
            tokio::spawn(conn);
            sender
                .send_request(request)
                .await
                .map_err(|e| format!("send: {e}"))?
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| format!("http1 handshake: {e}"))?;
            tokio::spawn(conn);
            sender
                .send_request(request)
                .await
                .map_err(|e| format!("send: {e}"))?
        };
        collect(response).await
    })
    .await
    .map_err(|_| "timed out".to_string())??;
    Ok((resp, asked.load(Ordering::SeqCst)))
}

/// GET `https://HOST/` with SNI = Host = HOST.
async fn get(tg: &Tollgate, pki: &Pki, client: &Client) -> Resp {
    get_full(tg, pki, client, HOST, HOST, &[])
        .await
        .unwrap_or_else(|e| panic!("GET https://{HOST}/: {e}"))
        .0
}

/// Polls until a GET gives `status` (the configuration is reloaded).
async fn eventually_status(tg: &Tollgate, pki: &Pki, client: &Client, status: u16) -> Resp {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get_full(tg, pki, client, HOST, HOST, &[]).await;
        match r {
            Ok((r, _)) if r.status == status => return r,
            _ if Instant::now() > deadline => panic!("never got {status}: last {r:?}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

// ------------------------------------------------------------------ authtls.go

/// `It("should set sslClientCertificate, sslVerifyClient and
/// sslVerifyDepth with auth-tls-secret")`: without the annotation the host
/// serves anyone; with `auth-tls-secret` added, a request without a
/// client certificate gets 400 and one with it 200.
#[tokio::test]
async fn should_set_ssl_client_certificate_ssl_verify_client_and_ssl_verify_depth_with_auth_tls_secret(
) {
    let echo = Echo::services(&["echo"]).await;
    let pki = Pki::new();
    let tg = site(&echo, &pki, vec![single_with_tls("authtls", HOST, &[])]).await;
    assert_eq!(get(&tg, &pki, &Client::none()).await.status, 200);

    let secret = secret_annotation();
    let annotated = single_with_tls("authtls", HOST, &[("auth-tls-secret", &secret)]);
    update(&tg, &echo, &pki, vec![annotated]);
    eventually_status(&tg, &pki, &Client::none(), 400).await;
    let ok = get(&tg, &pki, &Client::with(pki.valid())).await;
    assert_eq!(ok.status, 200, "{ok:?}");
}

/// `It("should set valid auth-tls-secret, sslVerify to off, and
/// sslVerifyDepth to 2")`: with `auth-tls-verify-client: off` a request
/// without a certificate is served.
#[tokio::test]
async fn should_set_valid_auth_tls_secret_ssl_verify_to_off_and_ssl_verify_depth_to_2() {
    let echo = Echo::services(&["echo"]).await;
    let pki = Pki::new();
    let secret = secret_annotation();
    let ing = single_with_tls(
        "authtls",
        HOST,
        &[
            ("auth-tls-secret", &secret),
            ("auth-tls-verify-client", "off"),
            ("auth-tls-verify-depth", "2"),
        ],
    );
    let tg = site(&echo, &pki, vec![ing]).await;
    let (r, asked) = get_full(&tg, &pki, &Client::none(), HOST, HOST, &[])
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(!asked, "verify-client off: no certificate is requested");
    assert_eq!(
        r.echo().header("ssl-client-verify").as_deref(),
        Some("NONE")
    );
}

/// `It("should 302 redirect to error page instead of 400 when
/// auth-tls-error-page is set")`: without a certificate, a 302 to the
/// error page; with it, 200.
#[tokio::test]
async fn should_302_redirect_to_error_page_instead_of_400_when_auth_tls_error_page_is_set() {
    let echo = Echo::services(&["echo"]).await;
    let pki = Pki::new();
    let secret = secret_annotation();
    let error_page = "http://127.0.0.1/error";
    let ing = single_with_tls(
        "authtls",
        HOST,
        &[
            ("auth-tls-secret", &secret),
            ("auth-tls-error-page", error_page),
        ],
    );
    let tg = site(&echo, &pki, vec![ing]).await;
    let r = get(&tg, &pki, &Client::none()).await;
    assert_eq!(r.status, 302, "{r:?}");
    assert_eq!(r.header("location").as_deref(), Some(error_page));
    let wrong = Pki::client(&pki.other_ca, "authtls", &[], |_| {});
    let r = get(&tg, &pki, &Client::with(wrong)).await;
    assert_eq!(
        (r.status, r.header("location").as_deref()),
        (302, Some(error_page))
    );
    let r = get(&tg, &pki, &Client::with(pki.valid())).await;
    assert_eq!(r.status, 200, "{r:?}");
}

/// `It("should pass URL-encoded certificate to upstream")`: without a
/// certificate 400; with it 200 and the upstream gets `ssl-client-cert`
/// starting `-----BEGIN%20CERTIFICATE-----%0A`.
#[tokio::test]
async fn should_pass_url_encoded_certificate_to_upstream() {
    let echo = Echo::services(&["echo"]).await;
    let pki = Pki::new();
    let secret = secret_annotation();
    let ing = single_with_tls(
        "authtls",
        HOST,
        &[
            ("auth-tls-secret", &secret),
            ("auth-tls-pass-certificate-to-upstream", "true"),
        ],
    );
    let tg = site(&echo, &pki, vec![ing]).await;
    assert_eq!(get(&tg, &pki, &Client::none()).await.status, 400);
    let r = get(&tg, &pki, &Client::with(pki.valid())).await;
    assert_eq!(r.status, 200, "{r:?}");
    let cert = r.echo().header("ssl-client-cert").unwrap_or_default();
    assert!(
        cert.starts_with("-----BEGIN%20CERTIFICATE-----%0A"),
        "ssl-client-cert: {cert}"
    );
    assert!(cert.ends_with("-----END%20CERTIFICATE-----%0A"), "{cert}");
}

/// `It("should validate auth-tls-verify-client")`: `on` → 200 with the
/// certificate, 400 without; updated to `off` → 200 both ways.
#[tokio::test]
async fn should_validate_auth_tls_verify_client() {
    let echo = Echo::services(&["echo"]).await;
    let pki = Pki::new();
    let secret = secret_annotation();
    let with_verify = |v: &str| {
        single_with_tls(
            "authtls",
            HOST,
            &[("auth-tls-secret", &secret), ("auth-tls-verify-client", v)],
        )
    };
    let tg = site(&echo, &pki, vec![with_verify("on")]).await;
    assert_eq!(get(&tg, &pki, &Client::with(pki.valid())).await.status, 200);
    assert_eq!(get(&tg, &pki, &Client::none()).await.status, 400);

    update(&tg, &echo, &pki, vec![with_verify("off")]);
    eventually_status(&tg, &pki, &Client::none(), 200).await;
    assert_eq!(get(&tg, &pki, &Client::with(pki.valid())).await.status, 200);
}

fn match_cn(pattern: &str) -> Value {
    let secret = secret_annotation();
    single_with_tls(
        "authtls",
        HOST,
        &[
            ("auth-tls-secret", &secret),
            ("auth-tls-verify-client", "on"),
            ("auth-tls-match-cn", pattern),
        ],
    )
}

/// `It("should return 403 using auth-tls-match-cn with no matching CN
/// from client")`.
#[tokio::test]
async fn should_return_403_using_auth_tls_match_cn_with_no_matching_cn_from_client() {
    let echo = Echo::services(&["echo"]).await;
    let pki = Pki::new();
    let tg = site(&echo, &pki, vec![match_cn("CN=notgonnamatch")]).await;
    let r = get(&tg, &pki, &Client::with(pki.valid())).await;
    assert_eq!(r.status, 403, "{r:?}");
}

/// `It("should return 200 using auth-tls-match-cn with matching CN from
/// client")`.
#[tokio::test]
async fn should_return_200_using_auth_tls_match_cn_with_matching_cn_from_client() {
    let echo = Echo::services(&["echo"]).await;
    let pki = Pki::new();
    let tg = site(&echo, &pki, vec![match_cn("CN=authtls")]).await;
    let r = get(&tg, &pki, &Client::with(pki.valid())).await;
    assert_eq!(r.status, 200, "{r:?}");
}

/// `It("should reload the nginx config when auth-tls-match-cn is
/// updated")`: 403 with `CN=notvalid`, then 200 once updated to
/// `CN=authtls`.
#[tokio::test]
async fn should_reload_the_nginx_config_when_auth_tls_match_cn_is_updated() {
    let echo = Echo::services(&["echo"]).await;
    let pki = Pki::new();
    let tg = site(&echo, &pki, vec![match_cn("CN=notvalid")]).await;
    let client = Client::with(pki.valid());
    assert_eq!(get(&tg, &pki, &client).await.status, 403);
    update(&tg, &echo, &pki, vec![match_cn("CN=authtls")]);
    eventually_status(&tg, &pki, &client, 200).await;
}

/// `It("should return 200 using auth-tls-match-cn where atleast one of the
/// regex options matches CN from client")`.
#[tokio::test]
async fn should_return_200_using_auth_tls_match_cn_where_atleast_one_of_the_regex_options_matches_cn_from_client(
) {
    let echo = Echo::services(&["echo"]).await;
    let pki = Pki::new();
    let tg = site(
        &echo,
        &pki,
        vec![match_cn("CN=(itwillmatch|withthenextoption|authtls)")],
    )
    .await;
    let r = get(&tg, &pki, &Client::with(pki.valid())).await;
    assert_eq!(r.status, 200, "{r:?}");
}

// ------------------------------------------------------------- beyond the Go file

/// The upstream learns who the client is: `ssl-client-verify: SUCCESS`
/// and the subject and issuer DNs as nginx prints them (RFC 2253); no
/// `ssl-client-cert` unless asked.
#[tokio::test]
async fn upstream_gets_verify_result_and_distinguished_names() {
    let echo = Echo::services(&["echo"]).await;
    let pki = Pki::new();
    let secret = secret_annotation();
    let ing = single_with_tls("authtls", HOST, &[("auth-tls-secret", &secret)]);
    let tg = site(&echo, &pki, vec![ing]).await;
    let r = get(&tg, &pki, &Client::with(pki.valid())).await;
    assert_eq!(r.status, 200, "{r:?}");
    let e = r.echo();
    assert_eq!(e.header("ssl-client-verify").as_deref(), Some("SUCCESS"));
    assert_eq!(
        e.header("ssl-client-subject-dn").as_deref(),
        Some("CN=authtls")
    );
    assert_eq!(
        e.header("ssl-client-issuer-dn").as_deref(),
        Some("CN=authtls CA")
    );
    assert_eq!(e.header("ssl-client-cert"), None);
}

/// A certificate of another CA, and an expired one, get 400 ("The SSL
/// certificate error"), never the upstream.
#[tokio::test]
async fn wrong_ca_and_expired_certificates_get_400() {
    let echo = Echo::services(&["echo"]).await;
    let pki = Pki::new();
    let secret = secret_annotation();
    let ing = single_with_tls("authtls", HOST, &[("auth-tls-secret", &secret)]);
    let tg = site(&echo, &pki, vec![ing]).await;
    let wrong = Pki::client(&pki.other_ca, "authtls", &[], |_| {});
    let r = get(&tg, &pki, &Client::with(wrong)).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.text().contains("The SSL certificate error"), "{r:?}");
    let expired = Pki::client(&pki.ca, "authtls", &[], |p| {
        p.not_before = rcgen::date_time_ymd(2000, 1, 1);
        p.not_after = rcgen::date_time_ymd(2001, 1, 1);
    });
    assert_eq!(get(&tg, &pki, &Client::with(expired)).await.status, 400);
    let r = get(&tg, &pki, &Client::none()).await;
    assert!(
        r.text().contains("No required SSL certificate was sent"),
        "{r:?}"
    );
}

/// `auth-tls-verify-depth`: a certificate signed by an intermediate (sent
/// in the chain) is refused at the default depth 1 and accepted at 2.
#[tokio::test]
async fn verify_depth_limits_the_chain() {
    let echo = Echo::services(&["echo"]).await;
    let pki = Pki::new();
    let secret = secret_annotation();
    let with_depth = |d: &str| {
        single_with_tls(
            "authtls",
            HOST,
            &[("auth-tls-secret", &secret), ("auth-tls-verify-depth", d)],
        )
    };
    let deep = Pki::client(&pki.intermediate, "authtls", &[&pki.intermediate], |_| {});
    let tg = site(&echo, &pki, vec![with_depth("1")]).await;
    assert_eq!(
        get(&tg, &pki, &Client::with(deep.clone())).await.status,
        400
    );
    update(&tg, &echo, &pki, vec![with_depth("2")]);
    eventually_status(&tg, &pki, &Client::with(deep), 200).await;
}

/// `optional`: no certificate is served (`ssl-client-verify: NONE`), a bad
/// one is refused; `optional_no_ca`: a certificate of another CA is
/// served, reported as `FAILED:...`.
#[tokio::test]
async fn optional_modes() {
    let echo = Echo::services(&["echo"]).await;
    let pki = Pki::new();
    let secret = secret_annotation();
    let with_verify = |v: &str| {
        single_with_tls(
            "authtls",
            HOST,
            &[("auth-tls-secret", &secret), ("auth-tls-verify-client", v)],
        )
    };
    let wrong = Pki::client(&pki.other_ca, "authtls", &[], |_| {});
    let tg = site(&echo, &pki, vec![with_verify("optional")]).await;
    let r = get(&tg, &pki, &Client::none()).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.echo().header("ssl-client-verify").as_deref(),
        Some("NONE")
    );
    assert_eq!(
        get(&tg, &pki, &Client::with(wrong.clone())).await.status,
        400
    );

    update(&tg, &echo, &pki, vec![with_verify("optional_no_ca")]);
    let r = eventually_status(&tg, &pki, &Client::with(wrong), 200).await;
    let verify = r.echo().header("ssl-client-verify").unwrap_or_default();
    assert!(verify.starts_with("FAILED:"), "{verify}");
}

/// The SNI of an unprotected host and the Host of a protected one, on a
/// certificate that covers both (so no 421): no certificate was requested
/// for that SNI, so the protected host refuses, even though the client
/// holds a valid certificate. The unprotected host is served as before:
/// no CertificateRequest, no `ssl-client-*` headers.
#[tokio::test]
async fn sni_of_an_unprotected_host_does_not_open_a_protected_one() {
    let echo = Echo::services(&["echo"]).await;
    let pki = Pki::new();
    let secret = secret_annotation();
    let protected = single_with_tls("authtls", HOST, &[("auth-tls-secret", &secret)]);
    let open = single_with_tls("open", OPEN, &[]);
    let tg = site(&echo, &pki, vec![protected, open]).await;
    let client = Client::with(pki.valid());

    let (r, asked) = get_full(&tg, &pki, &client, OPEN, HOST, &[]).await.unwrap();
    assert!(!asked, "the unprotected SNI requests no certificate");
    assert_eq!(r.status, 400, "{r:?}");

    let (r, asked) = get_full(&tg, &pki, &Client::none(), OPEN, OPEN, &[])
        .await
        .unwrap();
    assert!(!asked);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.echo().header("ssl-client-verify"), None);

    let (r, asked) = get_full(&tg, &pki, &client, HOST, HOST, &[]).await.unwrap();
    assert!(asked, "the protected SNI requests a certificate");
    assert_eq!(r.status, 200, "{r:?}");
}

/// Headers a client sends under the `ssl-client-*` names never reach the
/// upstream: they are replaced by what the proxy verified.
#[tokio::test]
async fn forged_ssl_client_headers_are_stripped() {
    let echo = Echo::services(&["echo"]).await;
    let pki = Pki::new();
    let secret = secret_annotation();
    let ing = single_with_tls(
        "authtls",
        HOST,
        &[
            ("auth-tls-secret", &secret),
            ("auth-tls-verify-client", "optional"),
        ],
    );
    let tg = site(&echo, &pki, vec![ing]).await;
    let forged = [
        ("ssl-client-verify", "SUCCESS"),
        ("ssl-client-subject-dn", "CN=admin"),
        ("ssl-client-issuer-dn", "CN=authtls CA"),
        ("ssl-client-cert", "forged"),
    ];
    let (r, _) = get_full(&tg, &pki, &Client::none(), HOST, HOST, &forged)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let e = r.echo();
    assert_eq!(e.header_values("ssl-client-verify"), ["NONE"]);
    assert_eq!(e.header("ssl-client-subject-dn"), None);
    assert_eq!(e.header("ssl-client-issuer-dn"), None);
    assert_eq!(e.header("ssl-client-cert"), None);

    let (r, _) = get_full(&tg, &pki, &Client::with(pki.valid()), HOST, HOST, &forged)
        .await
        .unwrap();
    let e = r.echo();
    assert_eq!(e.header_values("ssl-client-subject-dn"), ["CN=authtls"]);
    assert_eq!(e.header("ssl-client-cert"), None);
}

/// A missing CA Secret fails closed: `tollgate check` names the Ingress,
/// the annotation and the Secret, and the running proxy refuses every
/// request of the Ingress (403), certificate or not.
#[tokio::test]
async fn missing_secret_fails_closed_with_a_diagnostic() {
    let echo = Echo::services(&["echo"]).await;
    let pki = Pki::new();
    let ing = single_with_tls(
        "authtls",
        HOST,
        &[("auth-tls-secret", &format!("{NS}/missing"))],
    );
    let tg = site(&echo, &pki, vec![ing]).await;
    assert_eq!(get(&tg, &pki, &Client::none()).await.status, 403);
    assert_eq!(get(&tg, &pki, &Client::with(pki.valid())).await.status, 403);

    let (code, out, err) = check(&tg.manifests_dir(), &[]).await;
    let all = format!("{out}{err}");
    assert!(
        all.contains("authtls/authtls")
            && all.contains("auth-tls-secret")
            && all.contains("authtls/missing")
            && all.contains("refused"),
        "exit {code}: {all}"
    );
}

/// HTTP/2: the certificate is checked per request on an h2 connection too.
#[tokio::test]
async fn http2_requests_are_checked() {
    let echo = Echo::services(&["echo"]).await;
    let pki = Pki::new();
    let secret = secret_annotation();
    let ing = single_with_tls("authtls", HOST, &[("auth-tls-secret", &secret)]);
    let tg = site(&echo, &pki, vec![ing]).await;
    let r = get(&tg, &pki, &Client::with(pki.valid()).h2()).await;
    assert_eq!((r.status, r.version), (200, http::Version::HTTP_2), "{r:?}");
    assert_eq!(
        r.echo().header("ssl-client-verify").as_deref(),
        Some("SUCCESS")
    );
    let r = get(&tg, &pki, &Client::none().h2()).await;
    assert_eq!((r.status, r.version), (400, http::Version::HTTP_2), "{r:?}");
}

/// Plain HTTP to a client-auth host: redirected to HTTPS as any TLS host;
/// with `ssl-redirect: "false"`, refused (no certificate on plain HTTP:
/// never served unauthenticated).
#[tokio::test]
async fn plain_http_is_redirected_or_refused() {
    let echo = Echo::services(&["echo"]).await;
    let pki = Pki::new();
    let secret = secret_annotation();
    let redirecting = single_with_tls("authtls", HOST, &[("auth-tls-secret", &secret)]);
    let not_redirecting = single_with_tls(
        "plain",
        "plain.foo.com",
        &[("auth-tls-secret", &secret), ("ssl-redirect", "false")],
    );
    let tg = site(&echo, &pki, vec![redirecting, not_redirecting]).await;
    assert_eq!(tg.get(HOST, "/").await.status, 308);
    assert_eq!(tg.get("plain.foo.com", "/").await.status, 400);
}

/// As ingress-nginx (the server block's setting): another Ingress's path on
/// a host with client-certificate authentication is protected too.
#[tokio::test]
async fn other_ingresses_of_the_host_are_protected_too() {
    let echo = Echo::services(&["echo"]).await;
    let pki = Pki::new();
    let secret = secret_annotation();
    let protected = single_with_tls("authtls", HOST, &[("auth-tls-secret", &secret)]);
    let mut other = annotated_ingress(NS, "other", HOST, ("/other", "Prefix"), "echo", &[]);
    other["spec"]["tls"] = json!([{"hosts": [HOST], "secretName": SERVER_SECRET}]);
    let tg = site(&echo, &pki, vec![protected, other]).await;
    let client = Client::with(pki.valid());
    let (r, _) = get_path(&tg, &pki, &Client::none(), "/other").await;
    assert_eq!(r.status, 400, "{r:?}");
    let (r, _) = get_path(&tg, &pki, &client, "/other").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.echo().path(), "/other");
    assert_eq!(
        r.echo().header("ssl-client-verify").as_deref(),
        Some("SUCCESS")
    );
}

/// A CA Secret edited into something unusable keeps its last good CAs:
/// the valid client is still served, a client without a certificate is
/// still refused (never opened by a broken edit).
#[tokio::test]
async fn broken_ca_secret_keeps_its_last_good_cas() {
    let echo = Echo::services(&["echo"]).await;
    let pki = Pki::new();
    let secret = secret_annotation();
    let ing = single_with_tls("authtls", HOST, &[("auth-tls-secret", &secret)]);
    let tg = site(&echo, &pki, vec![ing.clone()]).await;
    let client = Client::with(pki.valid());
    assert_eq!(get(&tg, &pki, &client).await.status, 200);

    let mut docs = vec![ingress_class("tollgate", false)];
    docs.extend(echo.backends(NS));
    docs.push(pki.server_secret());
    docs.push(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": CA_SECRET, "namespace": NS},
        "type": "Opaque",
        "stringData": {"ca.crt": "not a certificate"},
    }));
    // A marker Ingress shows when the edit is in force.
    docs.push(single_with_tls("marker", OPEN, &[]));
    docs.push(ing);
    tg.write("manifests.yaml", &yaml_docs(&docs));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Before the edit OPEN has no certificate (the handshake fails).
        let r = get_full(&tg, &pki, &Client::none(), OPEN, OPEN, &[]).await;
        if matches!(&r, Ok((r, _)) if r.status == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "the edit never applied: {r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get(&tg, &pki, &client).await.status, 200);
    assert_eq!(get(&tg, &pki, &Client::none()).await.status, 400);
}
