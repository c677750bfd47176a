//! JSON bodies with a member given twice are refused, whatever endpoint reads them.
//!
//! `serde_json` (and poem-openapi's `Json`, which parses through a `serde_json::Value`) keeps
//! the last of two members with the same name, while other parsers keep the first: a proxy or
//! WAF in front could then check one request and Latchkey act on another. Form bodies refuse
//! duplicates already; this is the JSON side. The check walks the body once with serde's
//! streaming visitor, building nothing but one set of member names per object, so it costs
//! about as much as skipping the body with `serde::de::IgnoredAny`.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Whether a `Content-Type` is one that poem-openapi's `Json` payload reads:
/// `application/json` or `application/*+json`, with any parameters.
pub fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype
                .rsplit_once('+')
                .is_some_and(|(_, suffix)| suffix.eq_ignore_ascii_case("json")))
}

/// The name of the first member that an object of `body` holds twice, at any depth; `None` when
/// there is none, or when `body` is not JSON at all (the endpoint reading it says so itself).
pub fn duplicate_member(body: &[u8]) -> Option<String> {
    let mut found = None;
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    // A syntax error ends the walk: what was found before it still counts.
    let _ = Walk { found: &mut found }.deserialize(&mut deserializer);
    found
}

/// Visits one JSON value, recording in `found` the first duplicated member name.
struct Walk<'a> {
    found: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        while items
            .next_element_seed(Walk {
                found: &mut *self.found,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<(), A::Error> {
        let mut names = HashSet::new();
        while let Some(Name(name)) = members.next_key()? {
            if names.contains(&name) {
                *self.found = Some(name.into_owned());
                return Err(de::Error::custom("duplicate member"));
            }
            members.next_value_seed(Walk {
                found: &mut *self.found,
            })?;
            names.insert(name);
        }
        Ok(())
    }
}

/// A member name, borrowed from the body unless it holds escapes (`"\u0061"` is `"a"`).
struct Name<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }

            fn visit_borrowed_str<E>(self, name: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(name)))
            }

            fn visit_str<E>(self, name: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(name.to_owned())))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_given_twice_is_found_at_any_depth() {
        let cases = [
            (
                r#"{"grant_type":"password","grant_type":"client_credentials"}"#,
                "grant_type",
            ),
            (r#"{"a":1,"b":{"c":[{"d":1,"d":2}]}}"#, "d"),
            (r#"[{"x":1},{"y":{"z":{"x":1,"x":1}}}]"#, "x"),
            (r#"{"roles":["a"],"roles":[]}"#, "roles"),
            // The same name once plain and once escaped.
            (r#"{"username":"a","\u0075sername":"b"}"#, "username"),
        ];
        for (body, name) in cases {
            assert_eq!(
                duplicate_member(body.as_bytes()).as_deref(),
                Some(name),
                "{body}"
            );
        }
    }

    #[test]
    fn the_same_name_in_different_objects_is_fine() {
        for body in [
            r#"{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}"#,
            r#"{"grant_type":"password","username":"alice","password":"x","client_id":"web"}"#,
            r#"{"roles":["admin","admin"]}"#,
            "[]",
            "null",
            "\"text\"",
            "",
        ] {
            assert_eq!(duplicate_member(body.as_bytes()), None, "{body}");
        }
    }

    #[test]
    fn a_body_that_is_not_json_is_left_to_the_endpoint() {
        for body in ["{\"a\":", "{a:1}", "\u{1}", "{\"a\":1}}"] {
            assert_eq!(duplicate_member(body.as_bytes()), None, "{body}");
        }
        // What came before a syntax error still counts.
        assert_eq!(duplicate_member(br#"{"a":1,"a":2,"#).as_deref(), Some("a"));
    }

    #[test]
    fn json_media_types_are_recognised_as_poem_openapi_reads_them() {
        for json in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/merge-patch+json",
            " application/json ;charset=UTF-8",
        ] {
            assert!(is_json(json), "{json}");
        }
        for other in [
            "application/x-www-form-urlencoded",
            "text/json",
            "text/plain",
            "application/jsonx",
            "json",
            "",
        ] {
            assert!(!is_json(other), "{other}");
        }
    }
}
