//! Access to the services that `scripts/with-services` starts, and names that keep tests
//! sharing one Redis or one moto server apart.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Returns the variable's value, or panics naming it and how to set it: a test never skips a
/// service it needs.
pub fn env_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests through scripts/test or scripts/with-services")
    })
}

/// Returns a prefix that no other test run uses: `first` (an uppercase letter) and at most 12
/// hexadecimal digits mixed from the clock, the process id and a counter, so it matches
/// `[A-Z][A-Z0-9]{0,15}`.
pub fn unique_prefix(first: char) -> String {
    static SEQUENCE: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let sequence = u64::from(SEQUENCE.fetch_add(1, Ordering::Relaxed));
    let mixed = (nanos ^ (u64::from(std::process::id()) << 40)).wrapping_add(sequence);
    format!("{first}{:X}", mixed % 0xFFFF_FFFF_FFFF)
}

/// Sends one Redis command to the Upstash REST stand-in, bypassing the stores under test, and
/// returns its `result`. Panics when the stand-in is unreachable or rejects the command.
pub async fn upstash_command(args: &[&str]) -> serde_json::Value {
    let response = reqwest::Client::new()
        .post(env_var("AUTONUMBER_TEST_UPSTASH_URL"))
        .bearer_auth(env_var("AUTONUMBER_TEST_UPSTASH_TOKEN"))
        .json(args)
        .send()
        .await
        .expect("Upstash REST stand-in reachable");
    assert!(
        response.status().is_success(),
        "{args:?} failed: {}",
        response.status()
    );

    let mut reply: serde_json::Value = response.json().await.expect("JSON reply");
    reply["result"].take()
}
