//! Wording of `counters set` when a new value would hand out numbers again.
//!
//! Two facts limit a new value. The numbers up to the highest one recorded for a task are held
//! by tasks. The numbers above it, up to the counter's value, may have been handed out without
//! a record, by the earlier Python implementation for example, so the message writes "may".

use super::CounterState;

/// The numbers that lowering a counter may hand out again, as facts for a message.
#[derive(Debug)]
pub(super) struct RepeatRisk {
    /// The facts, as sentences without the final period.
    pub(super) text: String,
    /// The lowest value that repeats nothing.
    pub(super) minimum: u64,
    /// True when tasks hold some of the numbers that would be handed out again, false when
    /// only the counter's value shows that they may have been handed out.
    certain: bool,
}

impl RepeatRisk {
    pub(super) fn force_hint(&self) -> &'static str {
        if self.certain {
            "to accept repeated numbers"
        } else {
            "if you know they were not handed out"
        }
    }
}

/// Describes the numbers that setting the counter to `value` would hand out again, if any.
pub(super) fn repeat_risk(prefix: &str, value: u64, state: &CounterState) -> Option<RepeatRisk> {
    let recorded = state.max_assigned.unwrap_or(0);
    let counter = state.value;
    let minimum = counter.max(recorded);
    if value >= minimum {
        return None;
    }
    let first = value + 1;

    let mut sentences = Vec::new();
    if value < recorded {
        sentences.push(format!(
            "tasks hold numbers up to {prefix}-{recorded}, the highest recorded for a task, so \
             setting {value} would hand out {} again",
            range(prefix, first, recorded)
        ));
    }
    if counter > recorded && value < recorded {
        sentences.push(format!(
            "{prefix}'s counter is at {counter}, so {} may have been handed out too, for \
             example by the earlier Python implementation, which kept no record of tasks",
            range(prefix, recorded + 1, counter)
        ));
    } else if counter > recorded {
        let highest = match state.max_assigned {
            Some(max) => format!("the highest recorded for a task is {prefix}-{max}"),
            None => "none is recorded for a task".to_owned(),
        };
        sentences.push(format!(
            "{prefix}'s counter is at {counter}, so numbers up to {prefix}-{counter} may have \
             been handed out ({highest}), for example by the earlier Python implementation, \
             which kept no record of tasks. Setting {value} would hand out {} again if they were",
            range(prefix, first, counter)
        ));
    }
    Some(RepeatRisk {
        text: sentences.join(". "),
        minimum,
        certain: value < recorded,
    })
}

/// Formats the numbers `first` to `last` of `prefix`: `BUG-3` or `BUG-3 to BUG-5`.
fn range(prefix: &str, first: u64, last: u64) -> String {
    if first == last {
        format!("{prefix}-{first}")
    } else {
        format!("{prefix}-{first} to {prefix}-{last}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn risk(value: u64, counter: u64, max_assigned: Option<u64>) -> Option<RepeatRisk> {
        let state = CounterState {
            value: counter,
            max_assigned,
        };
        repeat_risk("BUG", value, &state)
    }

    #[test]
    fn repeat_risk_none_at_or_above_both() {
        assert!(risk(100, 100, Some(5)).is_none());
        assert!(risk(7, 3, Some(7)).is_none());
        assert!(risk(0, 0, None).is_none());
    }

    #[test]
    fn repeat_risk_counter_only_says_may() {
        let risk = risk(50, 100, Some(5)).expect("a risk");

        assert!(!risk.certain);
        assert_eq!(risk.minimum, 100);
        assert_eq!(
            risk.text,
            "BUG's counter is at 100, so numbers up to BUG-100 may have been handed out (the \
             highest recorded for a task is BUG-5), for example by the earlier Python \
             implementation, which kept no record of tasks. Setting 50 would hand out BUG-51 to \
             BUG-100 again if they were"
        );
    }

    #[test]
    fn repeat_risk_counter_without_records() {
        let risk = risk(40, 41, None).expect("a risk");

        assert!(
            risk.text.contains("(none is recorded for a task)"),
            "{risk:?}"
        );
        assert!(
            risk.text
                .ends_with("would hand out BUG-41 again if they were"),
            "{risk:?}"
        );
    }

    #[test]
    fn repeat_risk_recorded_numbers_are_certain() {
        let risk = risk(2, 5, Some(5)).expect("a risk");

        assert!(risk.certain);
        assert_eq!(risk.minimum, 5);
        assert_eq!(
            risk.text,
            "tasks hold numbers up to BUG-5, the highest recorded for a task, so setting 2 \
             would hand out BUG-3 to BUG-5 again"
        );
    }

    #[test]
    fn repeat_risk_names_both_ranges() {
        let risk = risk(50, 100, Some(60)).expect("a risk");

        assert!(risk.certain);
        assert_eq!(risk.minimum, 100);
        assert!(
            risk.text.contains("would hand out BUG-51 to BUG-60 again"),
            "{risk:?}"
        );
        assert!(
            risk.text
                .contains("so BUG-61 to BUG-100 may have been handed out too"),
            "{risk:?}"
        );
    }

    #[test]
    fn repeat_risk_counter_behind_records() {
        let risk = risk(5, 3, Some(10)).expect("a risk");

        assert!(risk.certain);
        assert_eq!(risk.minimum, 10);
        assert!(!risk.text.contains("counter is at"), "{risk:?}");
    }
}
