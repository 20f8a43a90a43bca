//! Configuration from the environment, parsed once at start.
//!
//! The variable names are the earlier Python implementation's (`ASANA_PERSONAL_KEY`,
//! `UPSTASH_REDIS_REST_URL`, `UPSTASH_REDIS_REST_TOKEN`) plus `ASANA_API_URL`. A missing or
//! invalid value is a [`ConfigError`] naming the variable and what to set. Secret values are
//! wrapped in [`Secret`], whose `Debug` and `Display` never show the value.

use std::fmt;

use crate::asana::DEFAULT_API_URL;

pub const ASANA_PERSONAL_KEY: &str = "ASANA_PERSONAL_KEY";
pub const ASANA_API_URL: &str = "ASANA_API_URL";
pub const UPSTASH_URL: &str = "UPSTASH_REDIS_REST_URL";
pub const UPSTASH_TOKEN: &str = "UPSTASH_REDIS_REST_TOKEN";
pub const QUEUE_URL: &str = "AUTONUMBER_QUEUE_URL";
pub const DLQ_URL: &str = "AUTONUMBER_DLQ_URL";
pub const NAME_FORMAT: &str = "AUTONUMBER_NAME_FORMAT";
pub const REQUESTS_PER_MINUTE: &str = "AUTONUMBER_ASANA_REQUESTS_PER_MINUTE";

/// A value that must not reach logs: formatting shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.chars().count() {
            1 => write!(f, "<set, 1 character>"),
            count => write!(f, "<set, {count} characters>"),
        }
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable} {problem}: {fix}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
    pub fix: String,
}

impl ConfigError {
    fn missing(variable: &'static str, fix: &str) -> Self {
        Self {
            variable,
            problem: "is not set".into(),
            fix: fix.into(),
        }
    }

    fn invalid(variable: &'static str, problem: impl Into<String>, fix: &str) -> Self {
        Self {
            variable,
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

/// How to reach Asana.
#[derive(Debug, Clone)]
pub struct AsanaConfig {
    pub token: Secret,
    pub api_url: String,
}

/// How to reach Upstash Redis over REST.
#[derive(Debug, Clone)]
pub struct UpstashConfig {
    pub url: String,
    pub token: Secret,
}

/// Reads a variable; an empty value counts as unset.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Reads `ASANA_PERSONAL_KEY` and `ASANA_API_URL`.
pub fn asana_from_env() -> Result<AsanaConfig, ConfigError> {
    let token = var(ASANA_PERSONAL_KEY).ok_or_else(|| {
        ConfigError::missing(
            ASANA_PERSONAL_KEY,
            "set it to an Asana personal access token (Asana: My Settings > Apps > Developer apps)",
        )
    })?;
    let api_url = var(ASANA_API_URL).unwrap_or_else(|| DEFAULT_API_URL.to_string());
    check_http_url(ASANA_API_URL, &api_url)?;
    Ok(AsanaConfig {
        token: Secret::new(token),
        api_url,
    })
}

/// Reads `UPSTASH_REDIS_REST_URL` and `UPSTASH_REDIS_REST_TOKEN`: both or neither.
pub fn upstash_from_env() -> Result<Option<UpstashConfig>, ConfigError> {
    match (var(UPSTASH_URL), var(UPSTASH_TOKEN)) {
        (None, None) => Ok(None),
        (Some(url), Some(token)) => {
            check_http_url(UPSTASH_URL, &url)?;
            Ok(Some(UpstashConfig {
                url,
                token: Secret::new(token),
            }))
        }
        (Some(_), None) => Err(ConfigError::missing(
            UPSTASH_TOKEN,
            "set it to the REST token of the Upstash database, or unset UPSTASH_REDIS_REST_URL",
        )),
        (None, Some(_)) => Err(ConfigError::missing(
            UPSTASH_URL,
            "set it to the REST URL of the Upstash database, or unset UPSTASH_REDIS_REST_TOKEN",
        )),
    }
}

/// Reads a positive whole number, or `default` when unset.
pub fn positive_from_env(variable: &'static str, default: u32) -> Result<u32, ConfigError> {
    match var(variable) {
        None => Ok(default),
        Some(value) => value.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
            ConfigError::invalid(
                variable,
                format!("is {value:?}, not a positive whole number"),
                "set a number such as 1500",
            )
        }),
    }
}

/// Checks that `value` is an http or https URL.
pub fn check_http_url(variable: &'static str, value: &str) -> Result<(), ConfigError> {
    match reqwest::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        _ => Err(ConfigError::invalid(
            variable,
            format!("is {value:?}, not an http(s) URL"),
            match variable {
                ASANA_API_URL => "set a URL such as https://app.asana.com/api/1.0, or unset it",
                _ => "set a URL such as https://example.upstash.io",
            },
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_formatting_hides_value() {
        let secret = Secret::new("abcdef");
        assert_eq!(format!("{secret:?}"), "<set, 6 characters>");
        assert!(!format!("{secret}").contains("abc"));
    }

    #[test]
    fn url_check_rejects_non_http() {
        assert!(check_http_url(UPSTASH_URL, "https://x.upstash.io").is_ok());
        assert!(check_http_url(UPSTASH_URL, "http://127.0.0.1:8080").is_ok());
        let error = check_http_url(UPSTASH_URL, "redis://x").unwrap_err();
        assert_eq!(error.variable, UPSTASH_URL);
        assert!(check_http_url(UPSTASH_URL, "not a url").is_err());
    }
}
