//! Small text helpers for command output.

use std::time::Duration;

/// Formats a count with its noun, adding `s` unless the count is 1: `1 message`, `3 messages`.
pub fn count(number: u64, noun: &str) -> String {
    match number {
        1 => format!("1 {noun}"),
        _ => format!("{number} {noun}s"),
    }
}

/// Formats a duration in its two largest units: `45s`, `12m 5s`, `3h 5m`, `2d 4h`.
pub fn format_age(age: Duration) -> String {
    let seconds = age.as_secs();
    let (days, hours, minutes) = (seconds / 86_400, seconds / 3_600 % 24, seconds / 60 % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) => format!("{minutes}m {}s", seconds % 60),
        (0, _, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_adds_plural_s() {
        assert_eq!(count(0, "message"), "0 messages");
        assert_eq!(count(1, "message"), "1 message");
        assert_eq!(count(2, "webhook secret"), "2 webhook secrets");
    }

    #[test]
    fn format_age_keeps_two_units() {
        assert_eq!(format_age(Duration::from_secs(45)), "45s");
        assert_eq!(format_age(Duration::from_secs(12 * 60 + 5)), "12m 5s");
        assert_eq!(
            format_age(Duration::from_secs(3 * 3600 + 5 * 60 + 9)),
            "3h 5m"
        );
        assert_eq!(
            format_age(Duration::from_secs(2 * 86_400 + 4 * 3600 + 7)),
            "2d 4h"
        );
    }
}
