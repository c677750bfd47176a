//! The token lifetimes a store has seen issued against it, and so how long a revocation must be
//! remembered there.
//!
//! A cut-off kills the tokens issued before it and may be forgotten once the last of them has
//! expired. How long that is depends on the lifetimes the tokens were issued with, which are not
//! the revoking process's to know: an operator may lower `tokens.refresh_ttl` while month-old
//! sessions are out, replicas may be rolling from one configuration to another, and the CLI
//! revokes with whatever settings its own environment gives. So every service records its
//! lifetimes in the store before it issues a token ([`Store::record_token_lifetimes`]), the
//! store keeps the longest it has seen, and a revocation is remembered for the longest of those
//! and the revoker's own.
//!
//! [`Store::record_token_lifetimes`]: super::Store::record_token_lifetimes

use crate::configuration::TokenSettings;

/// Lifetimes in seconds of access and refresh tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenLifetimes {
    pub access: u64,
    pub refresh: u64,
}

/// Which tokens a cut-off kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutOffReach {
    /// Access tokens only (a change of roles: sessions go on).
    Access,
    /// Every token, sessions included.
    Every,
}

impl TokenLifetimes {
    /// The lifetimes a service with `tokens` issues with.
    pub fn of(tokens: &TokenSettings) -> TokenLifetimes {
        TokenLifetimes {
            access: tokens.access_ttl,
            refresh: tokens.refresh_ttl,
        }
    }

    /// Each lifetime the longer of the two.
    pub fn at_least(self, other: TokenLifetimes) -> TokenLifetimes {
        TokenLifetimes {
            access: self.access.max(other.access),
            refresh: self.refresh.max(other.refresh),
        }
    }

    /// How long after a cut-off of `reach` the last token it kills may still be unexpired.
    pub fn longest(self, reach: CutOffReach) -> u64 {
        match reach {
            CutOffReach::Access => self.access,
            CutOffReach::Every => self.access.max(self.refresh),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_only_grow_and_a_session_cut_off_outlives_both_kinds_of_token() {
        let recorded = TokenLifetimes {
            access: 3600,
            refresh: 60,
        };
        let own = TokenLifetimes {
            access: 900,
            refresh: 86_400,
        };
        let kept = recorded.at_least(own);
        assert_eq!(
            kept,
            TokenLifetimes {
                access: 3600,
                refresh: 86_400
            }
        );
        assert_eq!(kept.longest(CutOffReach::Access), 3600);
        assert_eq!(kept.longest(CutOffReach::Every), 86_400);
        assert_eq!(recorded.longest(CutOffReach::Every), 3600);
    }
}
