//! The store contract: revoked tokens and the revocation feed.

use super::*;

pub async fn a_revoked_token_stays_revoked_until_it_expires(store: &dyn Store) -> StoreResult<()> {
    let now = now();
    let exp = now + 900;
    assert!(!store.is_token_revoked(&tid("at1"), now).await?);
    store.revoke_token(&tid("at1"), exp).await?;
    assert!(store.is_token_revoked(&tid("at1"), now).await?);
    assert!(store.is_token_revoked(&tid("at1"), exp - 1).await?);
    assert!(!store.is_token_revoked(&tid("at1"), exp + 1).await?);
    assert!(!store.is_token_revoked(&tid("at2"), now).await?);
    let expected = RevocationEvent::Token {
        jti: "at1".to_owned(),
        exp,
    };
    assert_eq!(all_events(store, now).await?, [expected]);
    Ok(())
}

pub async fn repeating_a_revocation_adds_nothing_to_the_feed(store: &dyn Store) -> StoreResult<()> {
    let now = now();
    let exp = now + 900;
    let event = |exp| RevocationEvent::Token {
        jti: "at1".to_owned(),
        exp,
    };
    store.revoke_token(&tid("at1"), exp).await?;
    store.revoke_token(&tid("at1"), exp).await?;
    store.revoke_token(&tid("at1"), exp - 60).await?;
    assert_eq!(all_events(store, now).await?, [event(exp)]);
    assert!(store.is_token_revoked(&tid("at1"), exp - 1).await?);
    // A later expiry is news: the list keeps it and the feed says so.
    store.revoke_token(&tid("at1"), exp + 60).await?;
    assert_eq!(all_events(store, now).await?, [event(exp), event(exp + 60)]);
    assert!(store.is_token_revoked(&tid("at1"), exp + 59).await?);
    Ok(())
}

pub async fn the_feed_pages_through_events_in_order_with_cursors(
    store: &dyn Store,
) -> StoreResult<()> {
    let now = now();
    let exp = now + HOUR;
    let start = store.revocations_after(None, 10, now).await?;
    assert!(start.events.is_empty());

    store.revoke_token(&tid("at1"), exp).await?;
    store.revoke_token(&tid("at2"), exp).await?;
    store
        .revoke_subject(&user_subject("alice"), now, (exp - now) as u64)
        .await?;
    store.revoke_token(&tid("at3"), exp).await?;
    store.create_family(&family("fam", "rt1", now)).await?;
    store.revoke_family(&tid("fam"), now).await?;
    let expected = vec![
        RevocationEvent::Token {
            jti: "at1".to_owned(),
            exp,
        },
        RevocationEvent::Token {
            jti: "at2".to_owned(),
            exp,
        },
        RevocationEvent::Subject {
            sub: "alice".to_owned(),
            not_before: now + 1,
            exp: exp + 1,
        },
        RevocationEvent::Token {
            jti: "at3".to_owned(),
            exp,
        },
        RevocationEvent::Family {
            fam: "fam".to_owned(),
            exp: now + ACCESS_TTL + FAMILY_EVENT_MARGIN,
        },
    ];

    let (mut seen, mut cursors) = (Vec::new(), Vec::new());
    let mut cursor = start.next_cursor.clone();
    loop {
        let page = store.revocations_after(Some(&cursor), 2, now).await?;
        assert!(page.events.len() <= 2);
        let Some((last, _)) = page.events.last() else {
            assert_eq!(page.next_cursor, cursor, "an empty page keeps the cursor");
            break;
        };
        assert_eq!(&page.next_cursor, last);
        cursor = page.next_cursor.clone();
        for (c, event) in page.events {
            cursors.push(c);
            seen.push(event);
        }
    }
    assert_eq!(seen, expected);
    let distinct: BTreeSet<_> = cursors.iter().collect();
    assert_eq!(
        distinct.len(),
        cursors.len(),
        "every event has its own cursor"
    );

    let whole = store.revocations_after(None, 10, now).await?;
    assert_eq!(
        whole
            .events
            .iter()
            .map(|(_, e)| e.clone())
            .collect::<Vec<_>>(),
        expected
    );
    let rest = store.revocations_after(Some(&cursors[2]), 10, now).await?;
    assert_eq!(
        rest.events.iter().map(|(c, _)| c).collect::<Vec<_>>(),
        [&cursors[3], &cursors[4]]
    );
    Ok(())
}

pub async fn the_feed_leaves_out_expired_events(store: &dyn Store) -> StoreResult<()> {
    let now = now();
    store.revoke_token(&tid("short"), now + 10).await?;
    store.revoke_token(&tid("long"), now + HOUR).await?;
    store
        .revoke_subject(&user_subject("alice"), now, 19)
        .await?;
    // Just past its `exp`, a verifier's clock leeway still accepts a token, and a verifier
    // that starts then must learn that it is revoked.
    let just_after = store.revocations_after(None, 10, now + 11).await?;
    assert!(
        just_after.events.iter().any(
            |(_, event)| matches!(event, RevocationEvent::Token { jti, .. } if jti == "short")
        ),
        "{just_after:?}"
    );
    let later = now + 30 + FAMILY_EVENT_MARGIN;
    let page = store.revocations_after(None, 1, later).await?;
    let long = RevocationEvent::Token {
        jti: "long".to_owned(),
        exp: now + HOUR,
    };
    assert_eq!(
        page.events
            .iter()
            .map(|(_, e)| e.clone())
            .collect::<Vec<_>>(),
        [long]
    );
    let after = store
        .revocations_after(Some(&page.next_cursor), 10, later)
        .await?;
    assert!(after.events.is_empty());
    assert_eq!(
        all_events(store, now).await?.len(),
        3,
        "still there for an earlier `now`"
    );
    Ok(())
}

pub async fn an_unparseable_feed_cursor_is_invalid(store: &dyn Store) -> StoreResult<()> {
    store.revoke_token(&tid("at1"), now() + HOUR).await?;
    for bad in ["not-a-cursor", "", "-1", "1.5"] {
        let result = store.revocations_after(Some(bad), 10, now()).await;
        assert!(
            matches!(result, Err(StoreError::InvalidCursor)),
            "{bad:?} gave {result:?}"
        );
    }
    Ok(())
}

pub async fn a_feed_cursor_never_handed_out_is_invalid(store: &dyn Store) -> StoreResult<()> {
    store.revoke_token(&tid("at1"), now() + HOUR).await?;
    let issued = store.revocations_after(None, 10, now()).await?.next_cursor;
    // A cursor from the future of this feed, in the backend's own format: what a follower
    // holds after the store behind the issuer was replaced.
    let future = match issued.split_once('-') {
        Some((ms, _)) => format!("{}-0", ms.parse::<u64>().expect("ms") + 3_600_000),
        None => (issued.parse::<u64>().expect("decimal") + 1000).to_string(),
    };
    // And the greatest cursors the format can hold.
    let greatest = match issued.split_once('-') {
        Some(_) => [u64::MAX, u64::MAX - 1].map(|seq| format!("{}-{seq}", u64::MAX)),
        None => [i64::MAX, i64::MAX - 1].map(|seq| seq.to_string()),
    };
    for cursor in [future].iter().chain(&greatest) {
        let result = store.revocations_after(Some(cursor), 10, now()).await;
        assert!(
            matches!(result, Err(StoreError::InvalidCursor)),
            "{cursor:?} gave {result:?}"
        );
    }
    assert!(
        store
            .revocations_after(Some(&issued), 10, now())
            .await?
            .events
            .is_empty()
    );
    Ok(())
}

pub async fn a_revocation_is_remembered_as_long_as_the_longest_token_lifetime_recorded(
    store: &dyn Store,
) -> StoreResult<()> {
    let now = now();
    // A service issued month-long sessions and hour-long access tokens; then another process
    // (an operator's CLI with shorter lifetimes in its environment, a replica rolled out with
    // lowered ones) records and revokes with its own.
    let issued = TokenLifetimes {
        access: 3600,
        refresh: 30 * 86_400,
    };
    assert_eq!(store.record_token_lifetimes(issued).await?, issued);
    let lowered = TokenLifetimes {
        access: 60,
        refresh: 120,
    };
    assert_eq!(store.record_token_lifetimes(lowered).await?, issued);

    let alice = user_subject("alice");
    let cut_off = store.revoke_subject(&alice, now, 120).await?;
    let month_later = cut_off + 30 * 86_400;
    assert_eq!(
        store.subject_not_before(&alice, month_later - 1).await?,
        Some(cut_off),
        "a session issued just before the revocation is still dead a month later"
    );
    let web = client_subject("web");
    let client_cut_off = store.revoke_subject(&web, now, 120).await?;
    assert_eq!(
        store.subject_not_before(&web, month_later - 1).await?,
        Some(client_cut_off)
    );
    let bob = Username::parse("bob").expect("name");
    let access_cut_off = store.revoke_user_access(&bob, now, 60).await?;
    let (_, cut_offs) = store
        .user_and_not_before(&bob, access_cut_off + 3599)
        .await?;
    assert_eq!(cut_offs.access, Some(access_cut_off));

    let events = all_events(store, now).await?;
    let kept: Vec<_> = events
        .iter()
        .map(|event| event.expires_at() - now)
        .collect();
    assert!(
        kept.iter().take(2).all(|&kept| kept >= 30 * 86_400),
        "resource servers keep the session cut-offs as long: {events:?}"
    );
    assert!(kept[2] >= 3600, "and the access cut-off: {events:?}");
    Ok(())
}
