//! The newtypes' validation: what each accepts and what it refuses.

use super::*;

#[test]
fn usernames_with_spaces_or_slashes_are_refused() {
    assert!(Username::parse("alice").is_ok());
    assert!(Username::parse("alice smith").is_err());
    assert!(Username::parse("../etc").is_err());
}

#[test]
fn a_username_may_be_an_email_address_with_a_tag_and_a_client_id_or_role_may_not() {
    let user = Username::parse("Ann+Work@Example.com").unwrap();
    assert_eq!(user.as_str(), "ann+work@example.com");
    assert!(ClientId::parse("ann+work@example.com").is_err());
    assert!(Role::parse("ops+admin").is_err());
    assert!(Username::parse("+ann").is_err());
    assert!(Username::parse("ann work@example.com").is_err());
    assert!(Username::parse("").is_err());
    assert!(Username::parse("a".repeat(65)).is_err());
}

#[test]
fn usernames_are_folded_to_lowercase() {
    assert_eq!(Username::parse("Alice").unwrap().as_str(), "alice");
    assert_eq!(
        Username::parse("ALICE").unwrap(),
        Username::parse("alice").unwrap()
    );
    assert_eq!(ClientId::parse("Web").unwrap().as_str(), "Web");
}

#[test]
fn path_segments_and_option_like_names_are_refused() {
    for name in [".", "..", ".hidden", "-rf", "_x", "@home"] {
        assert!(Username::parse(name).is_err(), "{name}");
        assert!(ClientId::parse(name).is_err(), "{name}");
    }
    assert!(Username::parse("a.b-c_d@e").is_ok());
    assert!(Username::parse("1st").is_ok());
}

#[test]
fn scopes_are_sorted_and_deduplicated() {
    let scope = Scope::parse("write  read read").unwrap();
    assert_eq!(scope.to_string(), "read write");
}

#[test]
fn scope_tokens_with_quotes_are_refused() {
    assert_eq!(Scope::parse("read \"x\""), Err(InvalidScope::Characters));
}

#[test]
fn a_narrower_scope_is_a_subset() {
    let wide = Scope::parse("read write").unwrap();
    let narrow = Scope::parse("read").unwrap();
    assert!(narrow.is_subset(&wide));
    assert!(!wide.is_subset(&narrow));
}

#[test]
fn roles_are_bounded_in_number_and_length() {
    let name = |i: usize, len: usize| format!("r{i:0>width$}", width = len - 1);
    let at_limit: Vec<String> = (0..limits::MAX_ROLES)
        .map(|i| name(i, limits::MAX_NAME_LEN))
        .collect();
    assert_eq!(check_roles(&at_limit), Ok(()));
    let mut one_more = at_limit.clone();
    one_more.push(name(99, 8));
    let error = check_roles(&one_more).unwrap_err().to_string();
    assert!(error.contains("at most 32 roles"), "{error}");
    let too_long = [name(0, limits::MAX_NAME_LEN + 1)];
    let error = check_roles(&too_long).unwrap_err().to_string();
    assert!(error.contains("not a valid role name"), "{error}");
    assert!(error.contains("at most 64 characters"), "{error}");
    // A huge name is echoed only in part.
    let huge = ["r".repeat(100_000)];
    assert!(check_roles(&huge).unwrap_err().to_string().len() < 300);
    for bad in ["ops team", "", "a/b", "\u{e9}"] {
        assert!(check_roles(&[bad.to_owned()]).is_err(), "{bad:?}");
    }
}

#[test]
fn scope_sets_set_by_administrators_are_bounded() {
    let tokens = |n: usize, len: usize| -> Vec<String> {
        (0..n)
            .map(|i| format!("s{i:0>width$}", width = len - 1))
            .collect()
    };
    let at_limit = tokens(limits::MAX_SCOPES, limits::MAX_SCOPE_LEN);
    assert_eq!(Scope::from_tokens(&at_limit).unwrap().iter().count(), 32);
    let mut one_more = at_limit.clone();
    one_more.push("extra".into());
    assert_eq!(
        Scope::from_tokens(&one_more),
        Err(InvalidScope::TooMany(33))
    );
    let long = tokens(1, limits::MAX_SCOPE_LEN + 1);
    assert!(matches!(
        Scope::from_tokens(&long),
        Err(InvalidScope::TooLong(_))
    ));
    // Duplicates are one token.
    let repeated = vec!["read".to_owned(); 100];
    assert_eq!(Scope::from_tokens(&repeated).unwrap().to_string(), "read");
    // Parsing a request or a token checks only the grammar: a request can only narrow
    // what an administrator set.
    assert!(Scope::parse(&tokens(100, 100).join(" ")).is_ok());
}

#[test]
fn audiences_are_bounded_and_need_no_escaping() {
    assert_eq!(
        check_audience("https://reports.example.com/api?v=1"),
        Ok(())
    );
    assert_eq!(
        check_audience(&"a".repeat(limits::MAX_AUDIENCE_LEN)),
        Ok(())
    );
    for bad in [
        String::new(),
        "a".repeat(limits::MAX_AUDIENCE_LEN + 1),
        "my api".into(),
        "a\"b".into(),
        "a\\b".into(),
        "tab\there".into(),
        "caf\u{e9}".into(),
    ] {
        assert!(check_audience(&bad).is_err(), "{bad:?}");
    }
    let many: Vec<String> = (0..=limits::MAX_AUDIENCES)
        .map(|i| format!("aud{i}"))
        .collect();
    let error = check_audiences(&many).unwrap_err().to_string();
    assert!(error.contains("at most 32 audiences"), "{error}");
    assert_eq!(check_audiences(&many[..limits::MAX_AUDIENCES]), Ok(()));
}

#[test]
fn grant_types_round_trip_through_their_names() {
    for grant in GrantType::ALL {
        assert_eq!(GrantType::parse(grant.as_str()), Some(grant));
    }
    assert_eq!(GrantType::parse("implicit"), None);
}

#[test]
fn the_issuer_and_the_endpoints_assertions_may_name_are_its_own_audiences_other_paths_are_not() {
    let issuer = "https://auth.example.com";
    for own in [
        "https://auth.example.com",
        "https://auth.example.com/",
        "https://auth.example.com/oauth/token",
        "https://auth.example.com/oauth/revoke/",
        "https://auth.example.com/oauth/introspect",
    ] {
        assert!(is_issuers_own_audience(own, issuer), "{own}");
        assert!(
            is_issuers_own_audience(own, "https://auth.example.com/"),
            "{own}"
        );
    }
    for other in [
        "https://auth.example.com/api",
        "https://auth.example.com/oauth/tokens",
        "https://auth.example.com.evil",
        "https://auth.example.comx/oauth/token",
        "orders",
    ] {
        assert!(!is_issuers_own_audience(other, issuer), "{other}");
    }
}
