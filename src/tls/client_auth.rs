//! Client certificates on the HTTPS listener (`auth-tls-*`), nginx's way:
//! the handshake of a client-auth host *requests* a certificate and
//! accepts any ([`RequestAny`]), and each request is then checked against
//! its route's CA ([`PeerCert::verify`]), so that the Host decides, not the
//! SNI.
//!
//! [`accept`] reads the ClientHello and picks the configuration that
//! requests a certificate for those hosts only.
//!
//! Invariants:
//! - [`RequestAny`] never makes a certificate mandatory and never trusts
//!   one: it only checks the proof of possession (the CertificateVerify
//!   signature, with the provider's algorithms). Trust is decided per
//!   request, against the route's CAs, by rustls's webpki verifier.
//! - A chain is verified once per connection for a given CA and depth
//!   (the first one asked; another CA is verified each time it is asked):
//!   the verdict is kept in a `OnceLock`, no lock on the request path.
//! - The depth limit holds by construction: only the first
//!   `depth - 1` intermediates the client sent are offered to the
//!   verifier, so a longer path cannot be built (fail closed).
//! - What reaches upstream headers is computed once per connection and
//!   is always a valid header value (control bytes escaped).

use std::sync::{Arc, OnceLock};

use http::HeaderValue;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

/// Requests a client certificate, requires none, trusts any whose holder
/// proves possession of its key.
#[derive(Debug)]
pub struct RequestAny {
    algorithms: WebPkiSupportedAlgorithms,
}

impl RequestAny {
    pub fn new(provider: &rustls::crypto::CryptoProvider) -> RequestAny {
        RequestAny {
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for RequestAny {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Trust is decided per request, against the route's CAs.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// nginx's `$ssl_client_verify`: `SUCCESS`, or `FAILED:` and OpenSSL's
/// words for the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Success,
    Failed(&'static str),
}

impl Verdict {
    /// The `ssl-client-verify` header value.
    pub fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Verdict::Success => "SUCCESS",
            Verdict::Failed(reason) => reason,
        })
    }
}

/// `FAILED:` reasons, as OpenSSL words them (what nginx reports).
fn failure(error: &rustls::Error) -> &'static str {
    match error {
        rustls::Error::InvalidCertificate(e) => match e {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "FAILED:certificate has expired"
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "FAILED:certificate is not yet valid"
            }
            CertificateError::UnknownIssuer => "FAILED:unable to get local issuer certificate",
            CertificateError::BadSignature => "FAILED:certificate signature failure",
            CertificateError::Revoked => "FAILED:certificate revoked",
            CertificateError::BadEncoding => "FAILED:unable to decode issuer public key",
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                "FAILED:unsupported certificate purpose"
            }
            _ => "FAILED:certificate verify error",
        },
        _ => "FAILED:certificate verify error",
    }
}

/// Header values describing the client certificate.
#[derive(Debug, Clone)]
pub struct Details {
    /// `ssl-client-subject-dn` (RFC 2253, as nginx's `$ssl_client_s_dn`).
    pub subject: HeaderValue,
    /// `ssl-client-issuer-dn`.
    pub issuer: HeaderValue,
    /// `ssl-client-cert`: the PEM, URL-escaped (`$ssl_client_escaped_cert`).
    pub escaped_pem: HeaderValue,
}

/// The certificate chain a client presented on a connection (leaf first),
/// with what requests have asked of it so far.
pub struct PeerCert {
    chain: Vec<CertificateDer<'static>>,
    details: OnceLock<Option<Details>>,
    /// The verdict for the first CA (and depth) a request asked about; the
    /// verifier is kept alive so its address cannot be reused.
    verdict: OnceLock<(Arc<dyn ClientCertVerifier>, u8, Verdict)>,
}

impl std::fmt::Debug for PeerCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerCert")
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl PeerCert {
    /// The chain of a finished handshake; `None` when the client sent none.
    pub fn of(chain: Option<&[CertificateDer<'static>]>) -> Option<Box<PeerCert>> {
        let chain = chain.filter(|c| !c.is_empty())?;
        Some(Box::new(PeerCert {
            chain: chain.to_vec(),
            details: OnceLock::new(),
            verdict: OnceLock::new(),
        }))
    }

    /// Verifies the chain against `verifier`'s CAs, with at most `depth`
    /// certificates above the client's (the CA included).
    pub fn verify(&self, verifier: &Arc<dyn ClientCertVerifier>, depth: u8) -> Verdict {
        if let Some((cached, d, verdict)) = self.verdict.get() {
            if same(cached, verifier) && *d == depth {
                return *verdict;
            }
        }
        let verdict = self.compute(verifier.as_ref(), depth);
        let _ = self.verdict.set((verifier.clone(), depth, verdict));
        verdict
    }

    fn compute(&self, verifier: &dyn ClientCertVerifier, depth: u8) -> Verdict {
        let Some((leaf, rest)) = self.chain.split_first() else {
            return Verdict::Failed("FAILED:certificate verify error");
        };
        let allowed = usize::from(depth.saturating_sub(1)).min(rest.len());
        let intermediates = rest.get(..allowed).unwrap_or_default();
        match verifier.verify_client_cert(leaf, intermediates, UnixTime::now()) {
            Ok(_) => Verdict::Success,
            Err(e) => Verdict::Failed(failure(&e)),
        }
    }

    /// Subject, issuer and escaped PEM of the client's certificate;
    /// `None` when it is not X.509 a parser can read.
    pub fn details(&self) -> Option<&Details> {
        self.details
            .get_or_init(|| {
                let leaf = self.chain.first()?;
                let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
                Some(Details {
                    subject: header(&rfc2253(cert.subject()))?,
                    issuer: header(&rfc2253(cert.issuer()))?,
                    escaped_pem: header(&escaped_pem(leaf.as_ref()))?,
                })
            })
            .as_ref()
    }
}

/// Whether two verifiers are the same object (data pointers only: the
/// vtable half of a `dyn` pointer may differ for one object).
fn same(a: &Arc<dyn ClientCertVerifier>, b: &Arc<dyn ClientCertVerifier>) -> bool {
    std::ptr::eq(Arc::as_ptr(a).cast::<()>(), Arc::as_ptr(b).cast::<()>())
}

fn header(text: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(text).ok()
}

/// A distinguished name as RFC 2253 text, as OpenSSL prints it for nginx
/// (`XN_FLAG_RFC2253`): the last RDN first, `,` between RDNs, `+` inside
/// one, special characters escaped with `\`, and bytes that are not
/// printable ASCII as `\XX`.
pub fn rfc2253(name: &x509_parser::x509::X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let mut out = String::new();
    let rdns: Vec<_> = name.iter_rdn().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            match x509_parser::objects::oid2abbrev(attr.attr_type(), registry) {
                Ok(short) => out.push_str(short),
                Err(_) => out.push_str(&attr.attr_type().to_id_string()),
            }
            out.push('=');
            match attr.as_str() {
                Ok(value) => escape_value(value, &mut out),
                Err(_) => {
                    out.push('#');
                    for b in attr.attr_value().data.iter() {
                        out.push_str(&format!("{b:02X}"));
                    }
                }
            }
        }
    }
    out
}

fn escape_value(value: &str, out: &mut String) {
    let last = value.len().saturating_sub(1);
    for (i, c) in value.char_indices() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && matches!(c, '#' | ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
            out.push(c);
        } else if c.is_ascii_graphic() || c == ' ' {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\{b:02X}"));
            }
        }
    }
}

/// A certificate as PEM, URL-escaped as nginx's `$ssl_client_escaped_cert`
/// (every byte but letters, digits and `-._~` as `%XX`).
pub fn escaped_pem(der: &[u8]) -> String {
    use base64::Engine;
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::with_capacity(b64.len() + b64.len() / 64 + 64);
    pem.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    percent_encoding::utf8_percent_encode(&pem, KEEP).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(dn: &[(rcgen::DnType, &str)]) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in dn {
            params.distinguished_name.push(t.clone(), *v);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn subject_is_rfc2253_last_rdn_first_and_escaped() {
        let der = cert(&[
            (rcgen::DnType::CountryName, "US"),
            (rcgen::DnType::OrganizationName, "Acme, Inc."),
            (rcgen::DnType::CommonName, "authtls"),
        ]);
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(rfc2253(parsed.subject()), "CN=authtls,O=Acme\\, Inc.,C=US");
    }

    #[test]
    fn escaped_pem_is_nginx_s() {
        let der = cert(&[(rcgen::DnType::CommonName, "x")]);
        let escaped = escaped_pem(&der);
        assert!(escaped.starts_with("-----BEGIN%20CERTIFICATE-----%0A"));
        assert!(escaped.ends_with("-----END%20CERTIFICATE-----%0A"));
        assert!(!escaped.contains(['/', '+', '=', '\n', ' ']));
    }

    #[test]
    fn no_chain_no_peer() {
        assert!(PeerCert::of(None).is_none());
        assert!(PeerCert::of(Some(&[])).is_none());
    }
}
