//! The store contract for authorization codes: redeemed once, atomically, by the caller's
//! clock; a replay gets the first redemption's family back; reading one changes nothing.

use std::sync::Arc;

use latchkey::domain::{ClientId, Scope, TokenId, UnixTime, Username, now};
use latchkey::store::{
    AuthorizationCode, CodeRedemption, SharedStore, Store, StoreError, StoreResult,
};

pub fn code(now: UnixTime) -> AuthorizationCode {
    AuthorizationCode {
        client_id: ClientId::parse("spa").expect("client id"),
        redirect_uri: "https://app.example/cb".into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        scope: Scope::parse("openid read").expect("scope"),
        nonce: Some("n".into()),
        username: Username::parse("alice").expect("username"),
        auth_time: now,
        session: None,
        expires_at: now + 60,
    }
}

pub async fn a_code_is_redeemed_once_and_a_replay_gets_the_first_family(
    store: &dyn Store,
) -> StoreResult<()> {
    let now = now();
    let issued = code(now);
    store.create_code("k1", &issued).await?;
    assert!(matches!(
        store.create_code("k1", &issued).await,
        Err(StoreError::Conflict)
    ));
    assert!(!store.code_replayed("k1").await?);
    assert_eq!(store.get_code("k1").await?, Some(issued.clone()));
    let first = TokenId::generate();
    assert_eq!(
        store.redeem_code("k1", &first, now).await?,
        CodeRedemption::Redeemed(issued.clone())
    );
    assert!(!store.code_replayed("k1").await?);
    let second = TokenId::generate();
    assert_eq!(
        store.redeem_code("k1", &second, now + 1).await?,
        CodeRedemption::Spent { family: first }
    );
    assert!(store.code_replayed("k1").await?);
    assert_eq!(
        store.get_code("k1").await?,
        Some(issued),
        "a spent code is still read"
    );
    assert_eq!(store.get_code("unknown").await?, None);
    assert_eq!(
        store.redeem_code("unknown", &second, now).await?,
        CodeRedemption::Invalid
    );
    assert!(!store.code_replayed("unknown").await?);
    Ok(())
}

pub async fn a_code_expires_by_the_caller_s_clock(store: &dyn Store) -> StoreResult<()> {
    let now = now();
    let issued = code(now);
    store.create_code("late", &issued).await?;
    store.create_code("in-time", &issued).await?;
    let family = TokenId::generate();
    assert_eq!(
        store
            .redeem_code("late", &family, issued.expires_at)
            .await?,
        CodeRedemption::Invalid
    );
    assert!(matches!(
        store
            .redeem_code("in-time", &family, issued.expires_at - 1)
            .await?,
        CodeRedemption::Redeemed(_)
    ));
    Ok(())
}

pub async fn fifty_concurrent_redemptions_of_one_code_succeed_once(
    store: SharedStore,
) -> StoreResult<()> {
    let now = now();
    store.create_code("race", &code(now)).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let store = Arc::clone(&store);
        tasks.spawn(async move { store.redeem_code("race", &TokenId::generate(), now).await });
    }
    let mut redeemed = 0;
    while let Some(outcome) = tasks.join_next().await {
        match outcome.expect("task")? {
            CodeRedemption::Redeemed(_) => redeemed += 1,
            CodeRedemption::Spent { .. } => {}
            CodeRedemption::Invalid => panic!("a live code is never invalid"),
        }
    }
    assert_eq!(redeemed, 1);
    Ok(())
}
