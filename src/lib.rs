#![forbid(unsafe_code)]
//! Latchkey: a standalone OAuth2-style token issuer.

pub mod credentials;
pub mod domain;
pub mod store;
pub mod configuration;
pub mod security;
pub mod slow_clients;
pub mod tls;
pub mod keys;
pub mod telemetry;
pub mod metrics;
pub mod shutdown;
pub mod healthcheck;
pub mod tokens;
pub mod oauth;
pub mod accounts;
pub mod audit;
pub mod api;
pub mod startup;
pub mod cli;
