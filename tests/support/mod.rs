//! Shared test harness: the service spawned on a free port with its own data and key
//! directories, and helpers that speak HTTP to it.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

pub mod app;
pub mod process;
pub mod redis_server;
pub mod script;
pub mod sign_in;

pub use app::*;
