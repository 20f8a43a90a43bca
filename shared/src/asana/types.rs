//! The Asana resources the client reads, with only the fields this project uses.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Data<T> {
    pub data: T,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    #[serde(default)]
    pub next_page: Option<NextPage>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NextPage {
    pub offset: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Compact {
    pub gid: String,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Task {
    pub gid: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub parent: Option<Compact>,
    #[serde(default)]
    pub memberships: Vec<Membership>,
    #[serde(default)]
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Membership {
    #[serde(default)]
    pub project: Option<Compact>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub gid: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub workspaces: Vec<Compact>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Project {
    pub gid: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub workspace: Option<Compact>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Webhook {
    pub gid: String,
    #[serde(default)]
    pub resource: Option<Compact>,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub last_success_at: Option<String>,
    #[serde(default)]
    pub last_failure_at: Option<String>,
    #[serde(default)]
    pub last_failure_content: Option<String>,
    #[serde(default)]
    pub delivery_retry_count: Option<u64>,
    #[serde(default)]
    pub failure_deletion_timestamp: Option<String>,
}

/// The 201 body of `POST /webhooks`: the webhook and the secret of the handshake.
#[derive(Debug, Clone, Deserialize)]
pub struct CreatedWebhook {
    pub data: Webhook,
    #[serde(rename = "X-Hook-Secret", default)]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub errors: Vec<ErrorDetail>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ErrorDetail {
    #[serde(default)]
    pub message: String,
}
