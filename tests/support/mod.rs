//! Shared test harness: the service spawned on a free port with its own data and key
//! directories, and helpers that speak HTTP to it.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

/// Each named check, an `async fn(&TestApp)` of the test file, as a test on the embedded store
/// and on a Redis of its own. `configure = crate::f, setup = crate::g;` before the names spawns
/// the app with the settings `f` makes and runs `g(&app)` before each check (either may be left
/// out). The file imports `TestApp` and `RedisServer`.
#[allow(unused_macros)]
macro_rules! on_both_stores {
    ($($check:ident),* $(,)?) => {
        on_both_stores!(
            configure = crate::support::unchanged,
            setup = crate::support::no_setup;
            $($check),*
        );
    };
    (setup = $setup:path; $($check:ident),* $(,)?) => {
        on_both_stores!(configure = crate::support::unchanged, setup = $setup; $($check),*);
    };
    (configure = $configure:path, setup = $setup:path; $($check:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let app = super::TestApp::spawn_with($configure).await;
                    $setup(&app).await;
                    super::$check(&app).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let server = super::RedisServer::start();
                    let app = super::TestApp::spawn_on_redis(&server.url(), $configure).await;
                    $setup(&app).await;
                    super::$check(&app).await;
                }
            )*
        }
    };
}

pub mod app;
pub mod process;
pub mod redis_server;
pub mod script;
pub mod sign_in;

pub use app::*;

/// Settings as the harness makes them, for [`on_both_stores`].
pub fn unchanged(_: &mut latchkey::configuration::Settings) {}

/// No preparation before a check, for [`on_both_stores`].
pub async fn no_setup(_: &app::TestApp) {}
