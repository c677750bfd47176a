//! The command line: `serve` (the default), and key, user and client management that works on
//! the configured store, also while the service runs on it.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::json;

use crate::configuration::Settings;
use crate::domain::{Secret, now};
use crate::keys::{self, Algorithm};
use crate::startup::{Application, documentation};
use crate::store::{self, SharedStore};
use crate::telemetry;

mod accounts;
mod import;

pub use accounts::{ClientsCommand, UsersCommand};

#[derive(Debug, Parser)]
#[command(
    name = "latchkey",
    version,
    about = "A standalone OAuth2-style token issuer"
)]
pub struct Cli {
    /// A configuration file (TOML, YAML or JSON); environment variables override it.
    #[arg(long, env = "LATCHKEY_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (the default).
    Serve,
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Manage clients.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Print the OpenAPI document (JSON, or YAML with `--yaml`).
    Openapi {
        /// Print YAML instead of JSON.
        #[arg(long)]
        yaml: bool,
    },
    /// Exit 0 if the service answers /healthz with 200, 1 otherwise (a container HEALTHCHECK
    /// for images without curl). With `server.tls_cert` set, it speaks TLS and trusts exactly
    /// that certificate.
    Healthcheck {
        /// What to ask; by default /healthz on the configured `server.bind` (https:// when
        /// `server.tls_cert` is set).
        #[arg(long)]
        url: Option<String>,
        /// Seconds to wait for the connection and for the answer.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a key to the key directory. Every replica publishes it within the key reload
    /// interval, and it signs once the JWKS max-age has passed after that; the key it replaces
    /// then retires.
    Generate {
        /// RS256 (the default, and the one every client handles), ES256 or EdDSA.
        #[arg(long, default_value = "RS256")]
        alg: String,
        /// RSA modulus size: 2048, 3072 or 4096.
        #[arg(long, default_value_t = 2048)]
        bits: usize,
    },
    /// Start a rotation: add a new RS256 key that takes over after the JWKS max-age and the key
    /// reload interval.
    Rotate,
    /// List the keys with their state and dates.
    List,
    /// Delete a key's file. Refused while tokens it signed may be live, unless forced.
    Retire {
        kid: String,
        /// Retire even though tokens it signed may still be live; they will fail.
        #[arg(long)]
        force: bool,
    },
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            telemetry::init(&settings.log, telemetry::Output::Stdout);
            Application::build(settings)
                .await?
                .run_until_stopped()
                .await?;
        }
        Command::Keys(command) => keys_command(&settings, command)?,
        // Changes to accounts are audited wherever they are made.
        Command::Users(command) => {
            telemetry::init(&settings.log, telemetry::Output::Stderr);
            accounts::users_command(&settings, command).await?;
        }
        Command::Clients(command) => {
            telemetry::init(&settings.log, telemetry::Output::Stderr);
            accounts::clients_command(&settings, command).await?;
        }
        Command::Openapi { yaml } => {
            let service = documentation(&settings).await?;
            let document = if yaml {
                service.spec_yaml()
            } else {
                service.spec()
            };
            println!("{}", document.trim_end());
        }
        Command::Healthcheck { url, timeout } => {
            let tls_cert = settings.server.tls_cert.as_deref();
            let url = match url {
                Some(url) => url,
                None => {
                    crate::healthcheck::default_url(settings.bind_address()?, tls_cert.is_some())
                }
            };
            crate::healthcheck::check(&url, std::time::Duration::from_secs(timeout), tls_cert)?;
        }
    }
    Ok(())
}

fn keys_command(settings: &Settings, command: KeysCommand) -> anyhow::Result<()> {
    let dir = &settings.keys.dir;
    let policy = keys::Policy::from_settings(settings);
    let now = now();
    match command {
        KeysCommand::Generate { alg, bits } => {
            let algorithm = Algorithm::parse(&alg)
                .with_context(|| format!("unknown algorithm '{alg}': use RS256, ES256 or EdDSA"))?;
            add_key(settings, algorithm, bits, now)
        }
        KeysCommand::Rotate => add_key(settings, Algorithm::RS256, 2048, now),
        KeysCommand::List => {
            let files = keys::read_dir(dir)?;
            let times: Vec<i64> = files.iter().map(|f| f.published_at).collect();
            let states = keys::lifecycle(&times, now, &policy);
            let mut listed: Vec<_> = files
                .iter()
                .zip(states)
                .map(|(file, state)| {
                    json!({
                        "kid": file.key.kid(),
                        "alg": file.key.algorithm().as_str(),
                        "state": state.as_str(),
                        "published": state.is_published(),
                        "published_at": file.published_at,
                        "file": file.file,
                    })
                })
                .collect();
            listed.sort_by_key(|k| k["published_at"].as_i64());
            print_json(&json!(listed))
        }
        KeysCommand::Retire { kid, force } => {
            let file = keys::retire(dir, &kid, now, &policy, force)?;
            print_json(&json!({"kid": kid, "removed": file}))
        }
    }
}

fn add_key(settings: &Settings, algorithm: Algorithm, bits: usize, now: i64) -> anyhow::Result<()> {
    let dir = &settings.keys.dir;
    let added = keys::generate_in(dir, algorithm, bits, now)
        .with_context(|| format!("cannot generate a key in {}", dir.display()))?;
    print_json(&json!({
        "kid": added.key.kid(),
        "alg": algorithm.as_str(),
        "file": added.file,
        "signs_from": now + keys::Policy::from_settings(settings).publish_ahead,
    }))
}

async fn open_store(settings: &Settings) -> anyhow::Result<SharedStore> {
    store::open(&settings.store)
        .await
        .context("cannot open the store")
}

/// Most of standard input read for a password: more than any password the policy takes.
const MAX_STDIN_PASSWORD: u64 = 64 * 1024;

/// The password on standard input, one line (one trailing newline is dropped; a second line is
/// refused, not silently ignored); never from the command line, where other users of the
/// machine could read it. From a terminal, the line typed; from a pipe or file, all of it.
fn read_password(from_stdin: bool) -> anyhow::Result<Secret> {
    if !from_stdin {
        bail!("pass the password on standard input with --password-stdin");
    }
    let stdin = std::io::stdin();
    let mut text = String::new();
    let read = if stdin.is_terminal() {
        stdin.lock().read_line(&mut text)
    } else {
        stdin
            .lock()
            .take(MAX_STDIN_PASSWORD)
            .read_to_string(&mut text)
    };
    read.context("cannot read the password from standard input")?;
    let password = Secret::from_line(&text)
        .map_err(|e| anyhow::anyhow!("the password on standard input {e}"))?;
    if password.expose().is_empty() {
        bail!("no password on standard input");
    }
    Ok(password)
}

fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}
