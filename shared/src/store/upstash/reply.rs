//! Decoding of Upstash REST replies, and the mapping of HTTP and transport failures to
//! [`StoreError`].

use serde_json::Value;

use crate::store::StoreError;

/// Longest `{"error": ...}` message copied into a [`StoreError`], in characters.
const MAX_MESSAGE_CHARS: usize = 300;

/// Maps an HTTP response to the reply's `result` or to a [`StoreError`].
pub(super) fn parse_reply(status: reqwest::StatusCode, body: &[u8]) -> Result<Value, StoreError> {
    let code = status.as_u16();
    if code == 401 || code == 403 {
        return Err(StoreError::Unauthorized { status: code });
    }

    let reply: Option<Value> = serde_json::from_slice(body).ok();
    let error = reply
        .as_ref()
        .and_then(|reply| reply.get("error"))
        .and_then(Value::as_str)
        .map(clean_message);

    if code == 429 || status.is_server_error() {
        let detail = error.map(|error| format!(": {error}")).unwrap_or_default();
        return Err(StoreError::Unavailable(format!("HTTP {code}{detail}")));
    }
    if let Some(error) = error {
        return Err(StoreError::Backend(error));
    }

    match reply {
        Some(Value::Object(mut fields)) if status.is_success() && fields.contains_key("result") => {
            Ok(fields.remove("result").unwrap_or(Value::Null))
        }
        _ => Err(StoreError::Backend(format!(
            "unexpected reply with HTTP {code}: expected {{\"result\": ...}} or {{\"error\": ...}}"
        ))),
    }
}

/// Maps a failure to send a request or read its response.
pub(super) fn request_error(error: reqwest::Error) -> StoreError {
    let error = error.without_url();
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }

    if error.is_builder() {
        StoreError::Backend(format!(
            "invalid request to Upstash, check the REST URL and token: {message}"
        ))
    } else {
        StoreError::Unavailable(message)
    }
}

pub(super) fn unexpected(expected: &str, reply: &Value) -> StoreError {
    StoreError::Backend(format!(
        "unexpected reply: expected {expected}, got {}",
        kind(reply)
    ))
}

/// Names the JSON type of a reply. Error messages name the type, never the value, because a
/// value may be a webhook secret.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads a non-negative integer sent as a JSON number or as a decimal string, because Redis
/// integer replies arrive as numbers and stored values as strings.
pub(super) fn integer(value: &Value) -> Result<u64, StoreError> {
    let parsed = match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| unexpected("a non-negative integer", value))
}

pub(super) fn optional_string(value: &Value) -> Result<Option<String>, StoreError> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => Ok(Some(text.clone())),
        _ => Err(unexpected("a string or null", value)),
    }
}

pub(super) fn string_array(value: &Value) -> Result<Vec<String>, StoreError> {
    let items = value
        .as_array()
        .ok_or_else(|| unexpected("an array", value))?;
    items
        .iter()
        .map(|item| {
            item.as_str()
                .map(str::to_owned)
                .ok_or_else(|| unexpected("an array of strings", value))
        })
        .collect()
}

/// Shortens an error message to [`MAX_MESSAGE_CHARS`] and drops the arguments that Redis quotes
/// after an unknown command, because an argument may be a webhook secret.
fn clean_message(message: &str) -> String {
    let message = match message.find(", with args beginning with") {
        Some(end) => &message[..end],
        None => message,
    };
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((end, _)) => format!("{}...", &message[..end]),
        None => message.to_owned(),
    }
}
