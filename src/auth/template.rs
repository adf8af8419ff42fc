//! URL templates of `auth-url` and `auth-signin`, with a fixed whitelist of
//! nginx-style variables.
//!
//! Owns parsing a template (once, in the compiler) and rendering it for a
//! request. Pure: no IO.
//!
//! Syntax: literal text with `$name` or `${name}` variables; a name is
//! `[A-Za-z0-9_]+` (so `$hostname` is the variable `hostname`, refused, and
//! `${host}name` is `$host` followed by `name`). The only variables are:
//!
//! | variable | value | substituted as |
//! |---|---|---|
//! | `$host` | request host, lowercase, without port | *strict* |
//! | `$scheme` | `http` or `https` | *strict* |
//! | `$request_method` | `GET`, ... | *strict* |
//! | `$remote_addr` | client IP address | *strict* |
//! | `$request_uri` | original path and query | *uri* |
//! | `$escaped_request_uri` | the same | *component* |
//! | `$http_NAME` | request header `NAME` (`_` → `-`, any case); several joined with `, ` | *component* |
//! | `$cookie_NAME` | value of cookie `NAME` (name case-insensitive, as nginx) | *component* |
//! | `$arg_NAME` | raw value of query argument `NAME` (case-insensitive, as nginx) | *arg* |
//!
//! Invariants — a value never changes the structure of the URL it lands in:
//! - *strict*: everything except `A-Za-z0-9-._~:[]` is percent-encoded, so a
//!   well-formed host, scheme, method or IP passes unchanged while a Host
//!   header like `evil.example/x?` cannot add a path, query or userinfo.
//! - *uri*: `$request_uri` is inserted as the URI it already is, except that
//!   bytes which may not appear in a URI (controls, space, non-ASCII,
//!   `"#<>\^`{|}`) are percent-encoded: it can add path and query but not a
//!   fragment, and nothing that would break a header.
//! - *component*: everything except `A-Za-z0-9-._~` is percent-encoded
//!   (like `encodeURIComponent` / `set_escape_uri`), including `%`, `&`,
//!   `=`, `/`, `?`, `#`: safe as a query value or a path segment.
//! - *arg*: a query argument is already URL-encoded; it is inserted as is
//!   but with *uri*'s set plus `&` encoded, so it cannot add arguments.
//! - Unknown variables are refused at parse time, naming the variable. A
//!   variable the request lacks renders as the empty string.
//!
//! Templates cannot protect against a variable placed in the host part on
//! purpose (`https://$http_x_target/`): keep request-controlled variables in
//! the path and query.

use std::borrow::Cow;
use std::net::IpAddr;

use http::header::{HeaderName, COOKIE, HOST};
use http::request::Parts;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};

#[cfg(test)]
mod tests;

/// Everything but `A-Za-z0-9-._~`.
pub(super) const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// Host, scheme, method, IP address characters survive.
const STRICT: &AsciiSet = &COMPONENT.remove(b':').remove(b'[').remove(b']');
/// What may not appear in a URI (non-ASCII is always encoded).
const URI: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');
/// A query argument's raw value must not start another argument.
const ARG: &AsciiSet = &URI.add(b'&');

/// A variable a template may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    Host,
    Scheme,
    RequestUri,
    /// Rendered from [`Var::RequestUri`]'s value; [`Vars`] is never asked
    /// for it.
    EscapedRequestUri,
    RequestMethod,
    RemoteAddr,
    /// `$http_NAME`: the header name, lowercase with `_` turned into `-`.
    Http(HeaderName),
    /// `$arg_NAME`: the argument name as written.
    Arg(Box<str>),
    /// `$cookie_NAME`: the cookie name as written.
    Cookie(Box<str>),
}

/// Where a template's variables get their values: one request.
pub trait Vars {
    /// The raw (unescaped) value of `var`; `None` renders as "".
    fn get(&self, var: &Var) -> Option<Cow<'_, str>>;
}

/// A parsed URL template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: Box<str>,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(Box<str>),
    Var(Var),
}

/// [`Vars`] of a request as the proxy sees it.
#[derive(Debug, Clone, Copy)]
pub struct RequestVars<'a> {
    parts: &'a Parts,
    scheme: &'a str,
    remote_addr: IpAddr,
}

impl Var {
    /// The variable called `name` (without `$`), or why there is none.
    pub fn from_name(name: &str) -> Result<Var, String> {
        let var = match name {
            "host" => Var::Host,
            "scheme" => Var::Scheme,
            "request_uri" => Var::RequestUri,
            "escaped_request_uri" => Var::EscapedRequestUri,
            "request_method" => Var::RequestMethod,
            "remote_addr" => Var::RemoteAddr,
            _ => {
                if let Some(header) = name.strip_prefix("http_").filter(|h| !h.is_empty()) {
                    let header = header.to_ascii_lowercase().replace('_', "-");
                    let header = HeaderName::from_bytes(header.as_bytes())
                        .map_err(|_| format!("${name} does not name a valid header"))?;
                    Var::Http(header)
                } else if let Some(arg) = name.strip_prefix("arg_").filter(|a| !a.is_empty()) {
                    Var::Arg(arg.into())
                } else if let Some(c) = name.strip_prefix("cookie_").filter(|c| !c.is_empty()) {
                    Var::Cookie(c.into())
                } else {
                    return Err(format!(
                        "unknown variable ${name}; only $host, $scheme, $request_uri, \
                         $escaped_request_uri, $request_method, $remote_addr, \
                         $http_NAME, $arg_NAME and $cookie_NAME exist"
                    ));
                }
            }
        };
        Ok(var)
    }
}

impl Template {
    /// Parses `source`; the error names the offending variable or `$`.
    pub fn parse(source: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = source;
        while let Some((before, after)) = rest.split_once('$') {
            literal.push_str(before);
            let (name, remainder) = if let Some(braced) = after.strip_prefix('{') {
                let (name, remainder) = braced
                    .split_once('}')
                    .ok_or_else(|| format!("unclosed ${{ in {source:?}"))?;
                if name.is_empty() || !name.bytes().all(is_name_byte) {
                    return Err(format!("invalid variable name ${{{name}}}"));
                }
                (name, remainder)
            } else {
                let end = after
                    .bytes()
                    .position(|b| !is_name_byte(b))
                    .unwrap_or(after.len());
                // `end` is at an ASCII byte (or the end): a char boundary.
                let (name, remainder) = after.split_at(end);
                if name.is_empty() {
                    return Err(format!(
                        "'$' not followed by a variable name in {source:?} \
                         (a literal '$' must be written %24)"
                    ));
                }
                (name, remainder)
            };
            let var = Var::from_name(name)?;
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal).into()));
            }
            parts.push(Part::Var(var));
            rest = remainder;
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal.into()));
        }
        Ok(Template {
            source: source.into(),
            parts,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The variables used, in order.
    pub fn vars(&self) -> impl Iterator<Item = &Var> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v),
            Part::Literal(_) => None,
        })
    }

    /// Whether the template's own query (after the first literal `?`)
    /// has an argument called `name`.
    pub fn has_query_arg(&self, name: &str) -> bool {
        let Some((_, query)) = self.source.split_once('?') else {
            return false;
        };
        let query = query.split_once('#').map_or(query, |(q, _)| q);
        query
            .split('&')
            .any(|pair| pair.split_once('=').map_or(pair, |(k, _)| k) == name)
    }

    /// Renders for one request; every value is escaped as the module
    /// documentation describes.
    pub fn render(&self, vars: &dyn Vars) -> String {
        let mut out = String::with_capacity(self.source.len() + 64);
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Var(var) => {
                    let (lookup, set) = match var {
                        Var::Host | Var::Scheme | Var::RequestMethod | Var::RemoteAddr => {
                            (var, STRICT)
                        }
                        Var::RequestUri => (var, URI),
                        Var::EscapedRequestUri => (&Var::RequestUri, COMPONENT),
                        Var::Http(_) | Var::Cookie(_) => (var, COMPONENT),
                        Var::Arg(_) => (var, ARG),
                    };
                    if let Some(value) = vars.get(lookup) {
                        out.extend(utf8_percent_encode(&value, set));
                    }
                }
            }
        }
        out
    }
}

impl<'a> RequestVars<'a> {
    /// `scheme` is how the client reached us (`http`/`https`).
    pub fn new(parts: &'a Parts, scheme: &'a str, remote_addr: IpAddr) -> RequestVars<'a> {
        RequestVars {
            parts,
            scheme,
            remote_addr,
        }
    }

    /// The request host: the target's authority, else the Host header;
    /// without port, lowercase.
    fn host(&self) -> Option<Cow<'a, str>> {
        let authority = match self.parts.uri.authority() {
            Some(a) => a.as_str(),
            None => self.parts.headers.get(HOST)?.to_str().ok()?,
        };
        // Drop userinfo (absolute-form targets may carry it) and the port.
        let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = if authority.starts_with('[') {
            authority.split_once(']').map_or(authority, |(h, _)| {
                authority.get(..h.len() + 1).unwrap_or(h)
            })
        } else {
            authority.split_once(':').map_or(authority, |(h, _)| h)
        };
        Some(if host.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(host.to_ascii_lowercase())
        } else {
            Cow::Borrowed(host)
        })
    }

    fn header(&self, name: &HeaderName) -> Option<Cow<'a, str>> {
        let mut values = self.parts.headers.get_all(name).iter();
        let first = values.next()?;
        let mut joined = String::from_utf8_lossy(first.as_bytes());
        for more in values {
            let text = joined.to_mut();
            text.push_str(", ");
            text.push_str(&String::from_utf8_lossy(more.as_bytes()));
        }
        Some(joined)
    }

    fn arg(&self, name: &str) -> Option<Cow<'a, str>> {
        self.parts
            .uri
            .query()?
            .split('&')
            .find_map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                key.eq_ignore_ascii_case(name).then_some(value)
            })
            .map(Cow::Borrowed)
    }

    fn cookie(&self, name: &str) -> Option<Cow<'a, str>> {
        self.parts
            .headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                key.trim()
                    .eq_ignore_ascii_case(name)
                    .then_some(value.trim())
            })
            .map(Cow::Borrowed)
    }
}

impl Vars for RequestVars<'_> {
    fn get(&self, var: &Var) -> Option<Cow<'_, str>> {
        match var {
            Var::Host => self.host(),
            Var::Scheme => Some(Cow::Borrowed(self.scheme)),
            Var::RequestUri | Var::EscapedRequestUri => Some(Cow::Borrowed(
                self.parts
                    .uri
                    .path_and_query()
                    .map_or("/", |pq| pq.as_str()),
            )),
            Var::RequestMethod => Some(Cow::Borrowed(self.parts.method.as_str())),
            Var::RemoteAddr => Some(Cow::Owned(self.remote_addr.to_string())),
            Var::Http(name) => self.header(name),
            Var::Arg(name) => self.arg(name),
            Var::Cookie(name) => self.cookie(name),
        }
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}
