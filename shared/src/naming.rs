//! Task names: whether a name already carries a number, and the numbered name.
//!
//! A name carries a number when it starts with `{PREFIX}-{digits}` followed by `:`, whitespace or
//! the end, or when it matches the configured [`NameFormat`] with any number. A number in the
//! middle of a name does not count, and an existing number is never changed.

use regex::Regex;

/// The default format, the same as the earlier Python implementation's.
pub const DEFAULT_NAME_FORMAT: &str = "{prefix}-{number}: {name}";

/// A validated name template with `{prefix}`, `{number}` and `{name}` placeholders.
#[derive(Debug, Clone)]
pub struct NameFormat {
    template: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameFormatError {
    #[error("name format {0:?} must contain {{number}} exactly once")]
    Number(String),
    #[error("name format {0:?} must contain {{name}} exactly once")]
    Name(String),
}

impl NameFormat {
    /// Parses a template. `{number}` and `{name}` must each appear exactly once.
    pub fn parse(template: &str) -> Result<Self, NameFormatError> {
        if template.matches("{number}").count() != 1 {
            return Err(NameFormatError::Number(template.to_string()));
        }
        if template.matches("{name}").count() != 1 {
            return Err(NameFormatError::Name(template.to_string()));
        }
        Ok(Self {
            template: template.to_string(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.template
    }

    /// Renders the numbered name.
    pub fn render(&self, prefix: &str, number: u64, name: &str) -> String {
        self.template
            .replace("{prefix}", prefix)
            .replace("{number}", &number.to_string())
            .replace("{name}", name)
    }

    /// Returns true when `name` is this format rendered for `prefix` with some number.
    fn matches(&self, prefix: &str, name: &str) -> bool {
        let mut pattern = String::from("^");
        let mut rest = self.template.as_str();
        while let Some(start) = rest.find('{') {
            pattern.push_str(&regex::escape(&rest[..start]));
            let tail = &rest[start..];
            let (piece, len) = if tail.starts_with("{prefix}") {
                (regex::escape(prefix), "{prefix}".len())
            } else if tail.starts_with("{number}") {
                (r"\d+".to_string(), "{number}".len())
            } else if tail.starts_with("{name}") {
                ("(?s:.*)".to_string(), "{name}".len())
            } else {
                (regex::escape("{"), 1)
            };
            pattern.push_str(&piece);
            rest = &tail[len..];
        }
        pattern.push_str(&regex::escape(rest));
        pattern.push('$');
        Regex::new(&pattern).is_ok_and(|re| re.is_match(name))
    }
}

impl Default for NameFormat {
    fn default() -> Self {
        Self {
            template: DEFAULT_NAME_FORMAT.to_string(),
        }
    }
}

/// Returns true when `name` already carries a number under `prefix`.
pub fn has_number(prefix: &str, format: &NameFormat, name: &str) -> bool {
    starts_with_number(prefix, name) || format.matches(prefix, name)
}

/// Returns true when `name` starts with `{prefix}-{digits}` followed by `:`, whitespace or the
/// end.
pub fn starts_with_number(prefix: &str, name: &str) -> bool {
    let Some(rest) = name
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
    else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return false;
    }
    match rest[digits..].chars().next() {
        None => true,
        Some(next) => next == ':' || next.is_whitespace(),
    }
}

/// Returns true when `name` contains `{prefix}-{number}` as a whole token: not preceded by a
/// letter, digit or `-`, and not followed by a digit (so `BUG-1` is not found in `XBUG-1` or
/// `BUG-12`).
pub fn contains_number(prefix: &str, number: u64, name: &str) -> bool {
    let needle = format!("{prefix}-{number}");
    name.match_indices(&needle).any(|(start, _)| {
        let before = name[..start].chars().next_back();
        let after = name[start + needle.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '-')
            && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

/// Returns the number at the start of `name` under `prefix`, as `starts_with_number` finds it.
pub fn leading_number(prefix: &str, name: &str) -> Option<u64> {
    if !starts_with_number(prefix, name) {
        return None;
    }
    let rest = &name[prefix.len() + 1..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Returns true when the name is empty or whitespace, so the task waits for a real name.
pub fn is_blank(name: &str) -> bool {
    name.trim().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_rule_accepts_leading_numbers() {
        let format = NameFormat::default();
        for name in [
            "BUG-42: Fix login",
            "BUG-1",
            "BUG-7 Fix",
            "BUG-7\tFix",
            "BUG-007:x",
        ] {
            assert!(
                has_number("BUG", &format, name),
                "{name:?} counts as numbered"
            );
        }
    }

    #[test]
    fn name_rule_rejects_other_names() {
        let format = NameFormat::default();
        for name in [
            "Fix BUG-42 login",
            "BUG-: x",
            "BUG-42x: y",
            "BUGS-4: x",
            "OPS-4: x",
            "bug-4: x",
            "BUG42: x",
            " BUG-4: x",
            "",
        ] {
            assert!(
                !has_number("BUG", &format, name),
                "{name:?} counts as unnumbered"
            );
        }
    }

    #[test]
    fn name_rule_uses_custom_format() {
        let format = NameFormat::parse("[{prefix} #{number}] {name}").unwrap();
        assert!(has_number("BUG", &format, "[BUG #12] Fix"));
        assert!(!has_number("BUG", &format, "[OPS #12] Fix"));
        assert!(!has_number("BUG", &format, "Fix [BUG #12]"));
    }

    #[test]
    fn name_format_renders_placeholders() {
        let default = NameFormat::default();
        assert_eq!(default.render("BUG", 42, "Fix login"), "BUG-42: Fix login");

        let custom = NameFormat::parse("{name} ({prefix}#{number})").unwrap();
        assert_eq!(custom.render("OPS", 3, "Deploy"), "Deploy (OPS#3)");
        assert!(has_number("OPS", &custom, "Deploy (OPS#3)"));
    }

    #[test]
    fn name_format_requires_number_and_name() {
        assert!(matches!(
            NameFormat::parse("{prefix}: {name}"),
            Err(NameFormatError::Number(_))
        ));
        assert!(matches!(
            NameFormat::parse("{prefix}-{number}"),
            Err(NameFormatError::Name(_))
        ));
        assert!(matches!(
            NameFormat::parse("{number}{number} {name}"),
            Err(NameFormatError::Number(_))
        ));
    }

    #[test]
    fn contains_number_finds_whole_tokens() {
        assert!(contains_number("BUG", 1, "OPS-1: BUG-1: Fix"));
        assert!(contains_number("BUG", 1, "BUG-1"));
        assert!(contains_number("BUG", 7, "[BUG-7] x"));
        assert!(!contains_number("BUG", 1, "BUG-12: Fix"));
        assert!(!contains_number("BUG", 1, "XBUG-1: Fix"));
        assert!(!contains_number("BUG", 1, "Fix"));
    }

    #[test]
    fn blank_names() {
        assert!(is_blank(""));
        assert!(is_blank("  \t\n"));
        assert!(!is_blank(" x "));
    }

    #[test]
    fn leading_number_parses_digits() {
        assert_eq!(leading_number("PLAT", "PLAT-7: Old task"), Some(7));
        assert_eq!(leading_number("PLAT", "Old PLAT-7"), None);
    }
}
