//! Basic authentication against htpasswd credentials (`auth-type: basic`).
//!
//! Owns the parsed credentials of one `auth-secret` and the check of an
//! `Authorization: Basic ...` header against them. Pure: no IO, no clock.
//!
//! Two sources, as in ingress-nginx:
//! - `auth-secret-type: auth-file` (the default): the Secret's `auth` key is
//!   an htpasswd file, parsed by [`Htpasswd::parse`]. Lines are
//!   `user:hash[:comment]`; blank lines and lines starting with `#` are
//!   skipped.
//! - `auth-secret-type: auth-map`: every key of the Secret is a user and its
//!   value the hash, given to [`Htpasswd::from_pairs`].
//!
//! Invariants:
//! - Only hashes that can be verified are accepted: bcrypt (`$2y$`, `$2a$`,
//!   `$2b$`, cost 4..=[`MAX_BCRYPT_COST`]), `{SHA}` (base64 SHA-1) and
//!   Apache's MD5 (`$apr1$`, and its twin `$1$` md5-crypt). Anything else —
//!   crypt(3) DES, plain text, SHA-crypt, `{SSHA}`... — is refused at parse
//!   time with the line (or key) and the reason, so a file is either fully
//!   understood or not used at all.
//! - Errors name users and schemes but never contain the hash field itself:
//!   a "hash" we refuse may well be a plain text password.
//! - Digests are compared in constant time (`subtle`); bcrypt's own
//!   comparison is constant time as well.
//! - When a user appears twice, the first line wins (as in nginx/Apache).
//! - Successful bcrypt/MD5 verifications are remembered in a small,
//!   bounded cache keyed by SHA-256 of (user, password, stored hash), so a
//!   client repeating the same credentials pays the slow hash once. Failed
//!   attempts are never cached. A lookup in the cache takes no lock: each
//!   slot is an `ArcSwapOption` read with one `load()`; a success replaces a
//!   slot with one `store()`.
//! - An unknown user is rejected without hashing anything, so response
//!   timing tells whether a user exists (as with nginx); rate limiting is
//!   the defence against guessing.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use http::HeaderValue;
use md5::Md5;
use sha1::{Digest, Sha1};
use sha2::Sha256;
use subtle::ConstantTimeEq;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;

/// Highest bcrypt cost accepted (the maximum `htpasswd -B -C` produces).
/// Each step doubles the work of a verification; a Secret asking for cost
/// 31 would otherwise make every login take hours of CPU.
pub const MAX_BCRYPT_COST: u32 = 17;

/// Number of slots in the cache of successful slow verifications.
pub const CACHE_SLOTS: usize = 256;

/// Decoded credentials up to this size are decoded on the stack.
const STACK_CREDENTIALS: usize = 512;

/// Standard base64, padding optional (some clients omit it).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The alphabet of crypt(3)-style base64 (md5-crypt, DES).
const CRYPT64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Where in the Secret a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// 1-based line of an htpasswd file.
    Line(usize),
    /// The key (user) of an `auth-map` Secret.
    Key(String),
}

/// Why an htpasswd file or auth map was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {kind}")]
pub struct HtpasswdError {
    pub location: Location,
    pub kind: HtpasswdErrorKind,
}

/// What is wrong with one entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HtpasswdErrorKind {
    #[error("no ':' between user name and password hash")]
    NoColon,
    #[error("empty user name")]
    EmptyUser,
    #[error("user {user:?}: empty password hash")]
    EmptyHash { user: String },
    #[error(
        "user {user:?}: {scheme} password hashes are not supported \
         (use bcrypt: htpasswd -B; or {{SHA}} / $apr1$)"
    )]
    UnsupportedScheme { user: String, scheme: String },
    #[error("user {user:?}: malformed {scheme} hash: {reason}")]
    Malformed {
        user: String,
        scheme: &'static str,
        reason: &'static str,
    },
    #[error("user {user:?}: bcrypt cost {cost} is above the maximum of {MAX_BCRYPT_COST}")]
    BcryptCost { user: String, cost: u32 },
}

/// The credentials of one auth Secret. Build once (compiler), share behind
/// an `Arc`, verify from any thread.
pub struct Htpasswd {
    users: HashMap<Box<str>, Entry>,
    cache: SuccessCache,
}

/// One user's stored hash.
struct Entry {
    /// The hash as written in the Secret; part of the cache key, so a
    /// changed hash never matches an old cache entry.
    stored: Box<str>,
    hash: Hash,
}

enum Hash {
    /// A validated bcrypt hash string (`bcrypt::verify` re-parses it).
    Bcrypt,
    /// `{SHA}`: the SHA-1 digest of the password.
    Sha1([u8; 20]),
    /// `$apr1$` / `$1$`: md5-crypt with its magic, salt and 22-character
    /// encoded digest.
    Md5Crypt {
        magic: &'static [u8],
        salt: Box<[u8]>,
        digest: [u8; 22],
    },
}

/// The outcome of [`Htpasswd::check_header_cached`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachedCheck {
    /// Decided without a slow hash: `true` allows.
    Decided(bool),
    /// A bcrypt or MD5 computation is needed: call
    /// [`Htpasswd::check_header`], e.g. in `spawn_blocking`.
    Slow,
}

/// A bounded cache of SHA-256 keys of successful slow verifications.
/// Two-way set associative over [`CACHE_SLOTS`] slots; a success evicts
/// whatever occupied its slot. Readers never block writers or each other.
struct SuccessCache {
    slots: Box<[ArcSwapOption<[u8; 32]>]>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(n) => write!(f, "line {n}"),
            Location::Key(user) => write!(f, "key {user:?}"),
        }
    }
}

/// No users: every request is refused (the fail-closed value).
impl Default for Htpasswd {
    fn default() -> Self {
        Htpasswd {
            users: HashMap::new(),
            cache: SuccessCache::new(CACHE_SLOTS),
        }
    }
}

impl fmt::Debug for Htpasswd {
    // Never print hashes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Htpasswd")
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

impl Htpasswd {
    /// Parses the text of an htpasswd file (`auth-secret-type: auth-file`).
    /// Fails on the first line that is not understood; see the module
    /// documentation for the accepted schemes.
    pub fn parse(text: &str) -> Result<Htpasswd, HtpasswdError> {
        let mut users = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let location = || Location::Line(index + 1);
            let line = raw.trim_end();
            if line.trim_start().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let Some((user, rest)) = line.split_once(':') else {
                return Err(HtpasswdError {
                    location: location(),
                    kind: HtpasswdErrorKind::NoColon,
                });
            };
            // nginx's format is `user:hash:comment`; no accepted hash
            // contains ':'.
            let stored = rest.split_once(':').map_or(rest, |(hash, _comment)| hash);
            let entry = parse_entry(user, stored).map_err(|kind| HtpasswdError {
                location: location(),
                kind,
            })?;
            users.entry(Box::from(user)).or_insert(entry);
        }
        Ok(Htpasswd::with_users(users))
    }

    /// Builds from `(user, hash)` pairs: the keys and values of an
    /// `auth-secret-type: auth-map` Secret. Surrounding whitespace of a hash
    /// (a trailing newline from `kubectl create secret --from-file`) is
    /// ignored.
    pub fn from_pairs<I, U, H>(pairs: I) -> Result<Htpasswd, HtpasswdError>
    where
        I: IntoIterator<Item = (U, H)>,
        U: AsRef<str>,
        H: AsRef<str>,
    {
        let mut users = HashMap::new();
        for (user, hash) in pairs {
            let user = user.as_ref();
            let entry = parse_entry(user, hash.as_ref().trim()).map_err(|kind| HtpasswdError {
                location: Location::Key(user.to_string()),
                kind,
            })?;
            users.entry(Box::from(user)).or_insert(entry);
        }
        Ok(Htpasswd::with_users(users))
    }

    fn with_users(users: HashMap<Box<str>, Entry>) -> Htpasswd {
        Htpasswd {
            users,
            cache: SuccessCache::new(CACHE_SLOTS),
        }
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there are no users (every request is then denied).
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether `user` exists and `password` matches its hash.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        self.verify_bytes(user, password.as_bytes())
    }

    /// Whether an `Authorization` header carries valid Basic credentials.
    /// The scheme is case-insensitive; anything missing or malformed
    /// (other scheme, bad base64, no ':', non-UTF-8 user) is `false`.
    ///
    /// A cache miss on a bcrypt user costs 2^cost bcrypt rounds
    /// (milliseconds at cost 5, ~100 ms at cost 12) on the calling thread;
    /// see [`Htpasswd::check_header_cached`] to keep that off a reactor.
    pub fn check_header(&self, authorization: Option<&HeaderValue>) -> bool {
        with_credentials(authorization, |user, password| {
            self.verify_bytes(user, password)
        })
        .unwrap_or(false)
    }

    /// Like [`Htpasswd::check_header`] but never runs a slow hash: returns
    /// [`CachedCheck::Slow`] when only bcrypt/MD5 can decide. Everything
    /// else (malformed header, unknown user, `{SHA}` users, cache hits) is
    /// decided here.
    pub fn check_header_cached(&self, authorization: Option<&HeaderValue>) -> CachedCheck {
        with_credentials(authorization, |user, password| {
            let Some(entry) = self.users.get(user) else {
                return CachedCheck::Decided(false);
            };
            match &entry.hash {
                Hash::Sha1(digest) => CachedCheck::Decided(sha1_matches(digest, password)),
                Hash::Bcrypt | Hash::Md5Crypt { .. } => {
                    if self
                        .cache
                        .contains(&cache_key(user, password, &entry.stored))
                    {
                        CachedCheck::Decided(true)
                    } else {
                        CachedCheck::Slow
                    }
                }
            }
        })
        .unwrap_or(CachedCheck::Decided(false))
    }

    fn verify_bytes(&self, user: &str, password: &[u8]) -> bool {
        let Some(entry) = self.users.get(user) else {
            return false;
        };
        match &entry.hash {
            Hash::Sha1(digest) => sha1_matches(digest, password),
            slow => {
                let key = cache_key(user, password, &entry.stored);
                if self.cache.contains(&key) {
                    return true;
                }
                let ok = match slow {
                    Hash::Bcrypt => bcrypt::verify(password, &entry.stored).unwrap_or(false),
                    Hash::Md5Crypt {
                        magic,
                        salt,
                        digest,
                    } => bool::from(md5_crypt(password, magic, salt).ct_eq(digest)),
                    Hash::Sha1(_) => false,
                };
                if ok {
                    self.cache.insert(key);
                }
                ok
            }
        }
    }
}

impl SuccessCache {
    fn new(slots: usize) -> SuccessCache {
        SuccessCache {
            slots: (0..slots.max(2)).map(|_| ArcSwapOption::empty()).collect(),
        }
    }

    /// The two slots a key may live in.
    fn ways(&self, key: &[u8; 32]) -> [usize; 2] {
        let [a, b, c, d, e, f, g, h, ..] = *key;
        let n = self.slots.len();
        // `n` is at least 2; the key is uniformly distributed.
        let first = (u64::from_le_bytes([a, b, c, d, e, f, g, h]) % n as u64) as usize;
        [first, (first + 1) % n]
    }

    fn contains(&self, key: &[u8; 32]) -> bool {
        self.ways(key).iter().any(|&i| {
            self.slots.get(i).is_some_and(|slot| {
                slot.load()
                    .as_deref()
                    .is_some_and(|cached| bool::from(cached.ct_eq(key)))
            })
        })
    }

    fn insert(&self, key: [u8; 32]) {
        let [first, second] = self.ways(&key);
        let target = match (self.slots.get(first), self.slots.get(second)) {
            (Some(a), _) if a.load().is_none() => a,
            (_, Some(b)) if b.load().is_none() => b,
            // Both taken: a key bit picks the victim.
            (Some(a), Some(b)) => {
                if key.last().is_some_and(|byte| byte & 1 == 0) {
                    a
                } else {
                    b
                }
            }
            _ => return,
        };
        target.store(Some(Arc::new(key)));
    }
}

/// Decodes `Basic base64(user:password)` and hands the parts to `f`;
/// `None` when the header is missing or malformed.
fn with_credentials<T>(
    authorization: Option<&HeaderValue>,
    f: impl FnOnce(&str, &[u8]) -> T,
) -> Option<T> {
    let value = authorization?.as_bytes().trim_ascii();
    let split = value.iter().position(|&b| b == b' ' || b == b'\t')?;
    let (scheme, token) = value.split_at(split);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let token = token.trim_ascii();
    let mut stack = [0u8; STACK_CREDENTIALS];
    let heap;
    let decoded: &[u8] = if token.len() / 4 * 3 + 3 <= STACK_CREDENTIALS {
        let n = BASE64.decode_slice(token, &mut stack).ok()?;
        stack.get(..n)?
    } else {
        heap = BASE64.decode(token).ok()?;
        &heap
    };
    let colon = decoded.iter().position(|&b| b == b':')?;
    let (user, rest) = decoded.split_at(colon);
    let password = rest.get(1..)?;
    let user = std::str::from_utf8(user).ok()?;
    Some(f(user, password))
}

fn sha1_matches(digest: &[u8; 20], password: &[u8]) -> bool {
    let got: [u8; 20] = Sha1::digest(password).into();
    got.ct_eq(digest).into()
}

/// SHA-256 over length-prefixed user and password, then the stored hash.
fn cache_key(user: &str, password: &[u8], stored: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((user.len() as u64).to_le_bytes());
    h.update(user.as_bytes());
    h.update((password.len() as u64).to_le_bytes());
    h.update(password);
    h.update(stored.as_bytes());
    h.finalize().into()
}

/// Validates one `user` / `stored` hash pair.
fn parse_entry(user: &str, stored: &str) -> Result<Entry, HtpasswdErrorKind> {
    if user.is_empty() {
        return Err(HtpasswdErrorKind::EmptyUser);
    }
    if stored.is_empty() {
        return Err(HtpasswdErrorKind::EmptyHash {
            user: user.to_string(),
        });
    }
    let malformed = |scheme: &'static str, reason: &'static str| HtpasswdErrorKind::Malformed {
        user: user.to_string(),
        scheme,
        reason,
    };
    let hash =
        if stored.starts_with("$2y$") || stored.starts_with("$2a$") || stored.starts_with("$2b$") {
            let parts: bcrypt::HashParts = stored
                .parse()
                .map_err(|_| malformed("bcrypt", "expected $2y$NN$ and 53 base64 characters"))?;
            let cost = parts.get_cost();
            if cost < 4 {
                return Err(malformed("bcrypt", "cost below 4"));
            }
            if cost > MAX_BCRYPT_COST {
                return Err(HtpasswdErrorKind::BcryptCost {
                    user: user.to_string(),
                    cost,
                });
            }
            Hash::Bcrypt
        } else if let Some(b64) = stored.strip_prefix("{SHA}") {
            let bytes = BASE64
                .decode(b64)
                .map_err(|_| malformed("{SHA}", "not base64"))?;
            let digest: [u8; 20] = bytes
                .try_into()
                .map_err(|_| malformed("{SHA}", "not a 20-byte SHA-1 digest"))?;
            Hash::Sha1(digest)
        } else if let Some((magic, scheme, rest)) =
            [(&b"$apr1$"[..], "$apr1$"), (&b"$1$"[..], "$1$ (md5-crypt)")]
                .into_iter()
                .find_map(|(magic, name)| {
                    stored
                        .as_bytes()
                        .strip_prefix(magic)
                        .map(|rest| (magic, name, rest))
                })
        {
            let split = rest
                .iter()
                .position(|&b| b == b'$')
                .ok_or_else(|| malformed(scheme, "no '$' after the salt"))?;
            let (salt, digest) = rest.split_at(split);
            let digest = digest.get(1..).unwrap_or_default();
            if salt.len() > 8 {
                return Err(malformed(scheme, "salt longer than 8 characters"));
            }
            let digest: [u8; 22] = digest
                .try_into()
                .map_err(|_| malformed(scheme, "digest is not 22 characters"))?;
            if !digest.iter().all(|b| CRYPT64.contains(b)) {
                return Err(malformed(
                    scheme,
                    "digest has characters outside ./0-9A-Za-z",
                ));
            }
            Hash::Md5Crypt {
                magic,
                salt: salt.into(),
                digest,
            }
        } else {
            return Err(HtpasswdErrorKind::UnsupportedScheme {
                user: user.to_string(),
                scheme: scheme_name(stored),
            });
        };
    Ok(Entry {
        stored: stored.into(),
        hash,
    })
}

/// A name for a refused hash that never reveals the hash itself: only a
/// well-known scheme id is named, and only when more follows it (a field
/// that is just `$6$` or `{PLAIN}`, or `$word$...` with an id nobody uses,
/// may be a password, so it is not echoed).
fn scheme_name(stored: &str) -> String {
    const DOLLAR_IDS: &[&str] = &[
        "1",
        "2",
        "2a",
        "2b",
        "2x",
        "2y",
        "3",
        "5",
        "6",
        "7",
        "y",
        "gy",
        "md5",
        "sha1",
        "apr1",
        "argon2i",
        "argon2d",
        "argon2id",
        "pbkdf2",
        "pbkdf2-sha256",
        "pbkdf2-sha512",
        "scrypt",
    ];
    const BRACE_IDS: &[&str] = &[
        "SHA",
        "SSHA",
        "MD5",
        "SMD5",
        "CRYPT",
        "PLAIN",
        "CLEARTEXT",
        "SHA256",
        "SHA512",
        "SSHA256",
        "SSHA512",
        "PBKDF2",
        "ARGON2",
    ];
    let named = |rest: &str, close: char, ids: &[&str]| {
        rest.split_once(close)
            .filter(|(id, after)| !after.is_empty() && ids.contains(id))
            .map(|(id, _)| id.to_string())
    };
    if let Some(id) = stored
        .strip_prefix('$')
        .and_then(|rest| named(rest, '$', DOLLAR_IDS))
    {
        let known = match id.as_str() {
            "5" => " (SHA-256 crypt)",
            "6" => " (SHA-512 crypt)",
            "y" => " (yescrypt)",
            "2x" => " (bcrypt with the 2x bug flag)",
            _ => "",
        };
        return format!("${id}${known}");
    }
    if let Some(id) = stored
        .strip_prefix('{')
        .and_then(|rest| named(rest, '}', BRACE_IDS))
    {
        return format!("{{{id}}}");
    }
    if stored.len() == 13 && stored.bytes().all(|b| CRYPT64.contains(&b)) {
        return "crypt(3) DES".to_string();
    }
    "plain text (or unknown)".to_string()
}

/// Apache's MD5 (`$apr1$`) and md5-crypt (`$1$`): the same algorithm with
/// a different magic. Returns the 22-character encoded digest.
fn md5_crypt(password: &[u8], magic: &[u8], salt: &[u8]) -> [u8; 22] {
    let alternate: [u8; 16] = Md5::new()
        .chain_update(password)
        .chain_update(salt)
        .chain_update(password)
        .finalize()
        .into();
    let mut ctx = Md5::new();
    ctx.update(password);
    ctx.update(magic);
    ctx.update(salt);
    for chunk in password.chunks(16) {
        ctx.update(alternate.get(..chunk.len()).unwrap_or_default());
    }
    let first = password.get(..1).unwrap_or_default();
    let mut bits = password.len();
    while bits > 0 {
        if bits & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(first);
        }
        bits >>= 1;
    }
    let mut digest: [u8; 16] = ctx.finalize().into();
    for round in 0..1000 {
        let mut ctx = Md5::new();
        if round % 2 == 1 {
            ctx.update(password);
        } else {
            ctx.update(digest);
        }
        if round % 3 != 0 {
            ctx.update(salt);
        }
        if round % 7 != 0 {
            ctx.update(password);
        }
        if round % 2 == 1 {
            ctx.update(digest);
        } else {
            ctx.update(password);
        }
        digest = ctx.finalize().into();
    }
    let [d0, d1, d2, d3, d4, d5, d6, d7, d8, d9, d10, d11, d12, d13, d14, d15] = digest;
    let mut out = [0u8; 22];
    let groups = [
        (d0, d6, d12),
        (d1, d7, d13),
        (d2, d8, d14),
        (d3, d9, d15),
        (d4, d10, d5),
    ];
    let mut chars = out.iter_mut();
    let mut emit = |mut value: u32, count: usize| {
        for _ in 0..count {
            if let (Some(slot), Some(&c)) = (chars.next(), CRYPT64.get((value & 0x3f) as usize)) {
                *slot = c;
            }
            value >>= 6;
        }
    };
    for (a, b, c) in groups {
        emit(u32::from(a) << 16 | u32::from(b) << 8 | u32::from(c), 4);
    }
    emit(u32::from(d11), 2);
    out
}
