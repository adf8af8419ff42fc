//! The snippet subset tollgate reads (and `custom-headers`, read beside
//! it by [`Parser::headers`]): a `configuration-snippet` or
//! `server-snippet` made only of header directives with literal values
//! becomes typed header rules ([`HeaderRules`]); anything else refuses the
//! snippet, naming what was found.
//!
//! Read (nginx's own token rules: whitespace separates, `;` ends a
//! directive, `#` starts a comment, `"…"` and `'…'` quote with `\`
//! escapes):
//! - `more_set_headers "Name: value" …` → response set (an empty value
//!   clears the header, as headers-more does);
//! - `more_clear_headers Name …` → response remove;
//! - `add_header Name value [always]` → response add;
//! - `proxy_set_header Name value` → request set (an empty value removes
//!   it, as nginx does not send it);
//! - `proxy_hide_header Name` → response remove.
//!
//! Invariants:
//! - Nothing is ever executed or passed on: the text only becomes header
//!   names and values, checked like TrafficPolicy `headers`.
//! - Refused, with the directive or token named: any other directive,
//!   blocks (`{`, `}`), variables (`$…`: tollgate defines none), headers-more
//!   options (`-s`, `-t`), wildcards, an unterminated quote or directive,
//!   more than [`MAX_DIRECTIVES`] directives or [`MAX_LEN`] bytes.
//! - A `;` inside quotes is part of the value; outside it ends the
//!   directive, so what follows is read as a directive of its own (and
//!   refused unless it is one of the above).

use super::headers::{header_name, header_value, HeaderAnnotations, HeaderRules};
use super::parser::{Parser, NGINX};

/// The snippet annotations read as header rules, in the order applied.
pub const SNIPPETS: [&str; 2] = ["server-snippet", "configuration-snippet"];

/// Longest snippet read.
pub const MAX_LEN: usize = 16 * 1024;
/// Most directives in one snippet.
pub const MAX_DIRECTIVES: usize = 64;

/// One token: its text and whether it was quoted (a quoted `;` or `{` is
/// text, not syntax).
#[derive(Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Semicolon,
    Brace(char),
}

/// nginx's token rules (`ngx_conf_read_token`).
fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            ';' => {
                chars.next();
                out.push(Token::Semicolon);
            }
            '{' | '}' => {
                chars.next();
                out.push(Token::Brace(c));
            }
            '"' | '\'' => {
                chars.next();
                let mut word = String::new();
                let mut closed = false;
                while let Some(c2) = chars.next() {
                    match c2 {
                        '\\' => match chars.next() {
                            Some(e) => unescape(e, &mut word),
                            None => break,
                        },
                        q if q == c => {
                            closed = true;
                            break;
                        }
                        other => word.push(other),
                    }
                }
                if !closed {
                    return Err(format!("unterminated quote `{c}`"));
                }
                // nginx wants a separator after a closing quote.
                if let Some(&next) = chars.peek() {
                    if !(next.is_whitespace() || next == ';' || next == '{' || next == '}') {
                        return Err(format!("unexpected `{next}` after a quoted value"));
                    }
                }
                out.push(Token::Word(word));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c2) = chars.peek() {
                    if c2.is_whitespace() || matches!(c2, ';' | '{' | '}' | '"' | '\'') {
                        break;
                    }
                    chars.next();
                    if c2 == '\\' {
                        match chars.next() {
                            Some(e) => unescape(e, &mut word),
                            None => word.push('\\'),
                        }
                    } else {
                        word.push(c2);
                    }
                }
                out.push(Token::Word(word));
            }
        }
    }
    Ok(out)
}

/// nginx's escapes: `\"`, `\'`, `\\`, `\t`, `\r`, `\n`; any other `\x`
/// stays as written.
fn unescape(e: char, word: &mut String) {
    match e {
        '"' | '\'' | '\\' => word.push(e),
        't' => word.push('\t'),
        'r' => word.push('\r'),
        'n' => word.push('\n'),
        other => {
            word.push('\\');
            word.push(other);
        }
    }
}

/// The directives of a snippet: name and arguments.
fn directives(text: &str) -> Result<Vec<(String, Vec<String>)>, String> {
    if text.len() > MAX_LEN {
        return Err(format!("a snippet longer than {MAX_LEN} bytes"));
    }
    let mut out = Vec::new();
    let mut current: Vec<String> = Vec::new();
    for token in tokenize(text)? {
        match token {
            Token::Word(w) => current.push(w),
            Token::Semicolon => {
                let mut words = std::mem::take(&mut current).into_iter();
                let Some(name) = words.next() else {
                    return Err("an empty directive (`;` alone)".into());
                };
                out.push((name, words.collect()));
                if out.len() > MAX_DIRECTIVES {
                    return Err(format!("more than {MAX_DIRECTIVES} directives"));
                }
            }
            Token::Brace(b) => {
                let what = current.first().map(String::as_str).unwrap_or("a block");
                return Err(format!("`{b}` (blocks are not read; in `{what}`)"));
            }
        }
    }
    if let Some(name) = current.first() {
        return Err(format!("directive `{name}` is not terminated by `;`"));
    }
    Ok(out)
}

/// A literal argument: no variable.
fn literal<'a>(directive: &str, arg: &'a str) -> Result<&'a str, String> {
    if let Some(at) = arg.find('$') {
        let var: String = arg[at..]
            .chars()
            .take_while(|c| *c == '$' || *c == '{' || c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        return Err(format!(
            "variable `{var}` in `{directive}` is not defined (values must be literal)"
        ));
    }
    Ok(arg)
}

/// A header name argument: literal, no wildcard.
fn name_arg(directive: &str, arg: &str) -> Result<http::HeaderName, String> {
    let arg = literal(directive, arg)?;
    if arg.contains('*') {
        return Err(format!("the wildcard `{arg}` in `{directive}`"));
    }
    if arg.starts_with('-') {
        return Err(format!("the option `{arg}` of `{directive}`"));
    }
    header_name(arg).map_err(|e| format!("{e} (in `{directive}`)"))
}

/// A snippet's header rules, or why it is refused.
pub fn parse(text: &str) -> Result<HeaderRules, String> {
    let mut rules = HeaderRules::default();
    for (name, args) in directives(text)? {
        let d = name.as_str();
        let arity = |ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(format!("`{d}` with {} arguments", args.len()))
            }
        };
        match d {
            "more_set_headers" => {
                arity(!args.is_empty())?;
                for arg in &args {
                    if arg.starts_with('-') {
                        return Err(format!("the option `{arg}` of `{d}`"));
                    }
                    let arg = literal(d, arg)?;
                    let Some((n, value)) = arg.split_once(':') else {
                        return Err(format!("`{arg}` in `{d}` is not `Name: value`"));
                    };
                    let header = name_arg(d, n.trim())?;
                    let value = value.trim();
                    if value.is_empty() {
                        rules.response.remove(header);
                    } else {
                        let value = header_value(n.trim(), value)?;
                        rules.response.set(header, value);
                    }
                }
            }
            "more_clear_headers" | "proxy_hide_header" => {
                arity(!args.is_empty() && (d == "more_clear_headers" || args.len() == 1))?;
                for arg in &args {
                    rules.response.remove(name_arg(d, arg)?);
                }
            }
            "add_header" => {
                arity(args.len() == 2 || (args.len() == 3 && args[2] == "always"))?;
                let header = name_arg(d, &args[0])?;
                let value = literal(d, &args[1])?;
                // nginx adds nothing for an empty value.
                if !value.is_empty() {
                    rules.response.add(header, header_value(&args[0], value)?);
                }
            }
            "proxy_set_header" => {
                arity(args.len() == 2)?;
                let header = name_arg(d, &args[0])?;
                let value = literal(d, &args[1])?;
                if value.is_empty() {
                    rules.request.remove(header);
                } else {
                    rules.request.set(header, header_value(&args[0], value)?);
                }
            }
            other => return Err(format!("directive `{other}` is not supported")),
        }
    }
    Ok(rules)
}

impl Parser<'_> {
    /// `custom-headers` and the snippet annotations. A snippet that is not
    /// made only of literal header directives rejects the Ingress.
    pub(super) fn headers(&mut self) -> HeaderAnnotations {
        let mut out = HeaderAnnotations {
            custom_headers: self
                .nginx("custom-headers")
                .filter(|v| !v.is_empty())
                .map(str::to_string),
            ..HeaderAnnotations::default()
        };
        for suffix in SNIPPETS {
            let name = format!("{NGINX}{suffix}");
            let Some(text) = self.get(&name) else {
                continue;
            };
            out.snippet_names.push(name.clone());
            match parse(text) {
                Ok(rules) => out.snippets.extend(&rules),
                Err(e) => self.reject(
                    &name,
                    format!(
                        "refused: {e}; a snippet is never executed: only more_set_headers, more_clear_headers, add_header, proxy_set_header and proxy_hide_header with literal values are read from it (see docs/annotations.md)"
                    ),
                ),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
