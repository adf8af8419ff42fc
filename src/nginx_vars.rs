//! nginx-style placeholders (`$name`, `${name}`) in a configured text,
//! split once when the configuration is read: access-log formats
//! (`access_log`) and rate-limit keys (`table::global_limit`). What a name
//! means is the caller's business.
//!
//! Invariants: pure, imports nothing from the crate; never panics on any
//! input (it slices only at positions `find` returned, all at ASCII bytes).

/// One piece of a split text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    /// Text kept as it is.
    Literal(&'a str),
    /// A placeholder's name. Empty for a `$` followed by no name: the
    /// text after that `$` (a `{}` included) is split as ordinary text.
    Var(&'a str),
}

/// A `${` without its closing `}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unclosed;

/// Splits `text` into literals and placeholders, in order. A name is ASCII
/// letters, digits and `_` (`$name`) or anything up to the next `}`
/// (`${name}`).
pub fn split(text: &str) -> Result<Vec<Segment<'_>>, Unclosed> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        if at > 0 {
            out.push(Segment::Literal(&rest[..at]));
        }
        let after = &rest[at + 1..];
        let (name, next) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced.find('}').ok_or(Unclosed)?;
            (&braced[..end], &braced[end + 1..])
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        out.push(Segment::Var(name));
        rest = if name.is_empty() { after } else { next };
    }
    if !rest.is_empty() {
        out.push(Segment::Literal(rest));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{split, Segment, Unclosed};

    #[test]
    fn splits_names_braces_and_bare_dollars() {
        use Segment::{Literal as L, Var as V};
        assert_eq!(
            split("a $x-${y_z}b $ ${}c$"),
            Ok(vec![
                L("a "),
                V("x"),
                L("-"),
                V("y_z"),
                L("b "),
                V(""),
                L(" "),
                V(""),
                L("{}c"),
                V(""),
            ])
        );
        assert_eq!(split("${open"), Err(Unclosed));
        assert_eq!(split(""), Ok(vec![]));
    }
}
