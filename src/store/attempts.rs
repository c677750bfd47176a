//! Attempt limits as the store enforces them: each attempt is reserved before the credential
//! is checked, in one atomic step that both counts it and decides whether it may go ahead, so
//! attempts racing in parallel cannot all slip past a limit. A success gives its reservation
//! back.
//!
//! The decision is a pure function of the stored state and the time, here, so that it is
//! tested with a fixed clock; the embedded store runs it inside its write transaction and the
//! Redis script mirrors it line by line (`attempt_reserve.lua`).

use crate::domain::UnixTime;

/// How attempts on one key are limited within a window that starts at the first attempt:
/// `free` attempts go ahead at once; after them each further attempt must wait, since the
/// previous one, `base` seconds doubled per attempt beyond `free`, at most `cap`. A lock is
/// the special case `base = cap = window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptRule {
    pub free: u64,
    pub base: u64,
    pub cap: u64,
    pub window: u64,
}

impl AttemptRule {
    /// `free` attempts per window, then none until the window ends.
    pub fn lock(free: u64, window: u64) -> AttemptRule {
        AttemptRule {
            free,
            base: window,
            cap: window,
            window,
        }
    }

    /// The wait after the previous attempt, given `count` attempts so far in the window.
    pub fn delay(&self, count: u64) -> u64 {
        let Some(beyond) = count.checked_sub(self.free) else {
            return 0;
        };
        let doubled = self
            .base
            .checked_shl(u32::try_from(beyond).unwrap_or(u32::MAX))
            .filter(|d| d >> beyond.min(63) == self.base)
            .unwrap_or(u64::MAX);
        doubled.min(self.cap)
    }
}

/// One key's stored state: attempts in the current window, when it ends, and when the last
/// attempt was made (Unix seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptState {
    pub count: u64,
    pub window_ends: UnixTime,
    pub last: UnixTime,
}

/// Whether an attempt may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Counted; give it back with `release_attempt` if the credential turns out right.
    Granted,
    /// Not counted; ask again after this many seconds.
    Refused { retry_after: u64 },
}

/// The decision and the state to store: a window that has ended starts over; past the free
/// attempts, one that comes before its delay is refused and changes nothing.
pub fn reserve(
    rule: &AttemptRule,
    state: Option<AttemptState>,
    now: UnixTime,
) -> (Reservation, Option<AttemptState>) {
    let window = i64::try_from(rule.window).unwrap_or(i64::MAX);
    let state = state
        .filter(|s| s.window_ends > now)
        .unwrap_or(AttemptState {
            count: 0,
            window_ends: now.saturating_add(window),
            last: now,
        });
    let delay = i64::try_from(rule.delay(state.count)).unwrap_or(i64::MAX);
    let allowed_at = state.last.saturating_add(delay).min(state.window_ends);
    // A window's first attempt always goes ahead (a rule with no free attempts is no rule).
    if state.count >= rule.free && state.count > 0 && now < allowed_at {
        let retry_after = u64::try_from(allowed_at - now).unwrap_or(1).max(1);
        return (Reservation::Refused { retry_after }, None);
    }
    let next = AttemptState {
        count: state.count + 1,
        last: now,
        ..state
    };
    (Reservation::Granted, Some(next))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: UnixTime = 1_700_000_000;

    fn run(rule: &AttemptRule, times: &[UnixTime]) -> Vec<Reservation> {
        let mut state = None;
        times
            .iter()
            .map(|&now| {
                let (decision, next) = reserve(rule, state, now);
                if next.is_some() {
                    state = next;
                }
                decision
            })
            .collect()
    }

    #[test]
    fn a_lock_lets_the_free_attempts_through_then_none_until_the_window_ends() {
        let rule = AttemptRule::lock(2, 600);
        let answers = run(&rule, &[T0, T0, T0 + 1, T0 + 599, T0 + 600]);
        assert_eq!(answers[..2], [Reservation::Granted, Reservation::Granted]);
        assert_eq!(answers[2], Reservation::Refused { retry_after: 599 });
        assert_eq!(answers[3], Reservation::Refused { retry_after: 1 });
        assert_eq!(answers[4], Reservation::Granted, "a new window");
    }

    #[test]
    fn past_the_free_attempts_the_wait_doubles_up_to_the_cap() {
        let rule = AttemptRule {
            free: 1,
            base: 2,
            cap: 5,
            window: 900,
        };
        assert_eq!(
            (0..5).map(|n| rule.delay(n)).collect::<Vec<_>>(),
            [0, 2, 4, 5, 5]
        );
        // Granted at T0; the second must wait 2 s; the third 4 s after the second; then 5 s.
        let answers = run(&rule, &[T0, T0 + 1, T0 + 2, T0 + 5, T0 + 6, T0 + 11]);
        assert_eq!(
            answers,
            [
                Reservation::Granted,
                Reservation::Refused { retry_after: 1 },
                Reservation::Granted,
                Reservation::Refused { retry_after: 1 },
                Reservation::Granted,
                Reservation::Granted,
            ]
        );
    }

    #[test]
    fn huge_counts_and_bases_saturate_at_the_cap() {
        let rule = AttemptRule {
            free: 0,
            base: u64::MAX / 2,
            cap: 60,
            window: 900,
        };
        assert_eq!(rule.delay(200), 60);
        assert_eq!(rule.delay(u64::MAX), 60);
    }

    #[test]
    fn a_refused_attempt_changes_nothing() {
        let rule = AttemptRule::lock(0, 60);
        let state = AttemptState {
            count: 3,
            window_ends: T0 + 30,
            last: T0,
        };
        let (decision, next) = reserve(&rule, Some(state), T0 + 1);
        assert_eq!(decision, Reservation::Refused { retry_after: 29 });
        assert_eq!(next, None);
    }
}
