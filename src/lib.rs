#![forbid(unsafe_code)]
//! Latchkey: a standalone OAuth2-style token issuer.

pub mod accounts;
pub mod api;
pub mod audit;
pub mod cli;
pub mod configuration;
pub mod credentials;
pub mod domain;
pub mod error;
pub mod files;
pub mod healthcheck;
pub mod keys;
pub mod metrics;
pub mod oauth;
pub mod outbound;
pub mod security;
pub mod shutdown;
pub mod slow_clients;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod tokens;
