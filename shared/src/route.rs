//! Routing of webhook requests to a prefix and a counter.
//!
//! Two forms are accepted:
//! - `/webhooks/{PREFIX}`, where PREFIX matches `[A-Z][A-Z0-9]{0,15}`; the counter key is the
//!   prefix.
//! - any path with the query `?prefix=P&counter_key=K`, the earlier Python implementation's form.
//!   `counter_key` defaults to the prefix. The path form wins when both are present.

use std::fmt;

/// The destination of a delivery: the prefix in task names and the key of its counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub prefix: String,
    pub counter_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// Neither a `/webhooks/{PREFIX}` path nor a `prefix` query parameter.
    #[error("no webhook route at this path: use /webhooks/{{PREFIX}}")]
    NotFound,
    /// A prefix that does not match `[A-Z][A-Z0-9]{0,15}`.
    #[error("invalid prefix {0:?}: use 1 to 16 characters A-Z and 0-9, starting with a letter")]
    InvalidPrefix(String),
    /// A counter key that is empty, too long or contains characters other than `[A-Za-z0-9_:.-]`.
    #[error("invalid counter_key {0:?}: use 1 to 64 characters A-Z, a-z, 0-9, _ : . -")]
    InvalidCounterKey(String),
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == self.counter_key {
            write!(f, "{}", self.prefix)
        } else {
            write!(f, "{} (counter {})", self.prefix, self.counter_key)
        }
    }
}

/// Returns true when `prefix` matches `[A-Z][A-Z0-9]{0,15}`.
pub fn is_valid_prefix(prefix: &str) -> bool {
    let mut chars = prefix.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    prefix.len() <= 16
        && first.is_ascii_uppercase()
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// Returns true when `key` has 1 to 64 characters of `[A-Za-z0-9_:.-]`.
pub fn is_valid_counter_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.' | '-'))
}

/// Parses the route from a request path and its raw query string (without `?`).
pub fn parse_route(path: &str, query: Option<&str>) -> Result<Route, RouteError> {
    let params = parse_query(query.unwrap_or(""));
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };

    let prefix = match path.trim_end_matches('/').strip_prefix("/webhooks/") {
        Some(prefix) => prefix.to_string(),
        None => param("prefix").ok_or(RouteError::NotFound)?,
    };
    if !is_valid_prefix(&prefix) {
        return Err(RouteError::InvalidPrefix(prefix));
    }

    let counter_key = param("counter_key").unwrap_or_else(|| prefix.clone());
    if !is_valid_counter_key(&counter_key) {
        return Err(RouteError::InvalidCounterKey(counter_key));
    }
    Ok(Route {
        prefix,
        counter_key,
    })
}

/// Splits a query string into percent-decoded pairs.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| Some(hex_value(bytes[i + 1])? * 16 + hex_value(bytes[i + 2])?))
            .flatten();
        match (bytes[i], escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 2;
            }
            (b'+', None) => out.push(b' '),
            (byte, None) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|value| value as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, counter_key: &str) -> Route {
        Route {
            prefix: prefix.into(),
            counter_key: counter_key.into(),
        }
    }

    #[test]
    fn route_from_path() {
        assert_eq!(parse_route("/webhooks/BUG", None), Ok(route("BUG", "BUG")));
        assert_eq!(parse_route("/webhooks/BUG/", None), Ok(route("BUG", "BUG")));
        assert_eq!(
            parse_route("/webhooks/A1234567890ABCDE", None),
            Ok(route("A1234567890ABCDE", "A1234567890ABCDE"))
        );
    }

    #[test]
    fn route_from_legacy_query() {
        assert_eq!(
            parse_route("/", Some("counter_key=plat_counter&prefix=PLAT")),
            Ok(route("PLAT", "plat_counter"))
        );
        assert_eq!(
            parse_route("/anything", Some("prefix=OPS")),
            Ok(route("OPS", "OPS"))
        );
        assert_eq!(
            parse_route("/webhooks/BUG", Some("counter_key=bugs")),
            Ok(route("BUG", "bugs"))
        );
    }

    #[test]
    fn route_rejects_invalid_prefixes() {
        for prefix in ["bug", "1BUG", "BUG-1", "ABCDEFGHIJKLMNOPQ", "B%20G"] {
            let path = format!("/webhooks/{prefix}");
            assert!(
                matches!(parse_route(&path, None), Err(RouteError::InvalidPrefix(_))),
                "prefix {prefix:?} was accepted"
            );
        }
        assert!(matches!(
            parse_route("/", Some("prefix=low")),
            Err(RouteError::InvalidPrefix(_))
        ));
    }

    #[test]
    fn route_rejects_missing_prefix_and_bad_counter() {
        assert_eq!(parse_route("/", None), Err(RouteError::NotFound));
        assert_eq!(parse_route("/webhooks/", None), Err(RouteError::NotFound));
        assert_eq!(
            parse_route("/hooks/BUG", Some("counter_key=x")),
            Err(RouteError::NotFound)
        );
        assert!(matches!(
            parse_route("/webhooks/BUG", Some("counter_key=a%20b")),
            Err(RouteError::InvalidCounterKey(_))
        ));
    }

    #[test]
    fn query_is_percent_decoded() {
        assert_eq!(
            parse_query("a=%41b&c"),
            vec![("a".into(), "Ab".into()), ("c".into(), "".into())]
        );
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
