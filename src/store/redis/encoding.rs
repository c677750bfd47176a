//! How families and feed cursors are written in Redis: a family as a hash of decimal strings,
//! a cursor as a stream id.

use std::collections::HashMap;

use super::{Op, internal};
use crate::domain::{ClientId, Scope, TokenId};
use crate::store::{Family, RefreshGeneration};

pub(super) fn family_fields(family: &Family) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("id", family.id.as_str().to_owned()),
        ("sub", family.subject.clone()),
        ("cid", family.client_id.as_str().to_owned()),
        ("scope", family.scope.to_string()),
        ("aud", family.audience.clone()),
        ("jti", family.current.jti.as_str().to_owned()),
        ("iat", family.current.issued_at.to_string()),
        ("exp", family.current.expires_at.to_string()),
        ("rev", if family.revoked { "1" } else { "0" }.to_owned()),
    ];
    if let Some(access_lifetime) = family.current.access_lifetime {
        fields.push(("attl", access_lifetime.to_string()));
        fields.push(("ajti", family.current.jti.as_str().to_owned()));
    }
    if let Some(previous) = &family.previous {
        fields.push(("prev", previous.as_str().to_owned()));
    }
    if let Some(rotated_at_ms) = family.rotated_at_ms {
        fields.push(("rot", rotated_at_ms.to_string()));
    }
    fields
}

/// Rebuilds a family from its hash, given as flat field/value pairs.
pub(super) fn family_from_pairs(pairs: &[String]) -> Op<Family> {
    let map: HashMap<&str, &str> = pairs
        .chunks_exact(2)
        .map(|pair| (pair[0].as_str(), pair[1].as_str()))
        .collect();
    let text = |name: &str| {
        map.get(name)
            .copied()
            .ok_or_else(|| internal(format!("family hash lacks field {name}")))
    };
    let number = |name: &str| -> Op<i64> {
        text(name)?
            .parse()
            .map_err(|_| internal(format!("family field {name} is not an integer")))
    };
    Ok(Family {
        id: TokenId::from_trusted(text("id")?),
        subject: text("sub")?.to_owned(),
        client_id: ClientId::parse(text("cid")?).map_err(internal)?,
        scope: Scope::parse(text("scope")?).map_err(internal)?,
        audience: text("aud")?.to_owned(),
        current: RefreshGeneration {
            jti: TokenId::from_trusted(text("jti")?),
            issued_at: number("iat")?,
            expires_at: number("exp")?,
            // Only for the generation it was recorded with (see `family_rotate.lua`).
            access_lifetime: match map.get("attl") {
                Some(_) if map.get("ajti") == map.get("jti") => Some(number("attl")?),
                _ => None,
            },
        },
        previous: map.get("prev").map(|p| TokenId::from_trusted(*p)),
        rotated_at_ms: match map.get("rot") {
            Some(_) => Some(number("rot")?),
            None => None,
        },
        revoked: map.get("rev").is_some_and(|r| *r == "1"),
    })
}

/// A feed cursor is a stream id `<ms>-<seq>` as handed out; `0` and `0-0` mean the start.
pub(super) fn parse_cursor(cursor: &str) -> Option<(u64, u64)> {
    if cursor == "0" {
        return Some((0, 0));
    }
    let (ms, seq) = cursor.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(ms) || !digits(seq) {
        return None;
    }
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

pub(super) const START_CURSOR: &str = "0";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_stream_ids() {
        assert_eq!(
            parse_cursor("1700000000000-3"),
            Some((1_700_000_000_000, 3))
        );
        assert_eq!(parse_cursor("0"), Some((0, 0)));
        assert_eq!(parse_cursor("0-0"), Some((0, 0)));
        for bad in [
            "",
            "-",
            "12",
            "a-1",
            "1-",
            "-1",
            "1-2-3",
            "1 -2",
            "+",
            "99999999999999999999999-0",
        ] {
            assert_eq!(parse_cursor(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_family_survives_its_hash_encoding() {
        let family = Family {
            id: TokenId::from_trusted("fam"),
            subject: "alice".into(),
            client_id: ClientId::parse("web").unwrap(),
            scope: Scope::parse("read write").unwrap(),
            audience: "api".into(),
            current: RefreshGeneration {
                jti: TokenId::from_trusted("j2"),
                issued_at: 1_700_000_000,
                expires_at: i64::MAX,
                access_lifetime: Some(900),
            },
            previous: Some(TokenId::from_trusted("j1")),
            rotated_at_ms: Some(1_700_000_000_123),
            revoked: false,
        };
        let pairs: Vec<String> = family_fields(&family)
            .into_iter()
            .flat_map(|(k, v)| [k.to_owned(), v])
            .collect();
        assert_eq!(family_from_pairs(&pairs).ok(), Some(family));
    }
}
