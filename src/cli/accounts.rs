//! `latchkey users ...` and `latchkey clients ...`: what the admin API does, against the
//! configured store, for the operator on the machine (and for the first admin).

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use super::{open_store, print_json, read_password};
use crate::accounts::{self, Change, ClientChanges, ClientSpec, UserChanges};
use crate::audit::Actor;
use crate::configuration::Settings;
use crate::credentials::PasswordHasher;
use crate::domain::{GrantType, now};
use crate::store::{ClientKeys, ClientRecord, UserRecord};

/// The `who` of the audit events the CLI causes.
static OPERATOR: Actor = Actor::Operator("cli");

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user; the password is read from standard input.
    Add {
        name: String,
        /// Read the password from standard input: one line (a trailing newline is dropped).
        #[arg(long)]
        password_stdin: bool,
        /// A role to grant; repeat for several.
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Import users with the password hashes they have elsewhere: one JSON object per line,
    /// `{"username": .., "password_hash": .., "roles": [..]}`. Werkzeug, Django, bcrypt and PHC
    /// (argon2, pbkdf2-sha256, scrypt) hashes are taken and become argon2id at each user's
    /// first login. A refused line is named by its number and nothing of it is stored.
    Import {
        /// The file to read, or `-` for standard input.
        file: String,
    },
    /// Set a user's password (read from standard input) and revoke all of the user's tokens.
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Show one user.
    Show { name: String },
    /// Replace a user's roles.
    Roles {
        name: String,
        /// A role the user is to have; repeat for several.
        #[arg(long = "role", required_unless_present = "clear")]
        roles: Vec<String>,
        /// Take every role away (instead of naming roles).
        #[arg(long, conflicts_with = "roles")]
        clear: bool,
    },
    /// Disable a user and revoke all of the user's tokens.
    Disable { name: String },
    /// Enable a disabled user again; the tokens revoked when it was disabled stay revoked.
    Enable { name: String },
}

#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// Register a client; prints its secret, this once.
    Add {
        id: String,
        /// A public client (no secret), such as a mobile or single-page app.
        #[arg(long)]
        public: bool,
        /// A grant the client may use: authorization_code, password, client_credentials,
        /// refresh_token, token-exchange.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// A redirect URI for sign-in in a browser (exact match; https, or http for a loopback
        /// host; no fragment); repeat for several. Without --grant, the client then gets
        /// authorization_code and refresh_token.
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Vec<String>,
        /// A client of this service's operator: its users are not asked for consent.
        #[arg(long)]
        first_party: bool,
        /// A scope the client may request.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// An audience the client may request besides the default one.
        #[arg(long = "audience")]
        audiences: Vec<String>,
        /// A JWK Set file of the client's public keys (RSA of 2048 bits or more, P-256 or
        /// Ed25519): the client gets no secret and authenticates with signed assertions
        /// (`private_key_jwt`). A file with a private or symmetric key is refused.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["public", "jwks_uri"])]
        jwks: Option<PathBuf>,
        /// Where the client publishes its JWK Set (https; http only for a loopback address),
        /// fetched and cached by the service; as `--jwks` otherwise.
        #[arg(long, value_name = "URL", conflicts_with = "public")]
        jwks_uri: Option<String>,
    },
    /// List clients.
    List,
    /// Show one client.
    Show { id: String },
    /// Replace a client's grants, scopes or audiences (each option given replaces that list).
    Update {
        id: String,
        /// A grant the client may use; repeat for several.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// A scope the client may request; repeat for several.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// An audience the client may request; repeat for several.
        #[arg(long = "audience")]
        audiences: Vec<String>,
        /// Take every scope away.
        #[arg(long, conflicts_with = "scopes")]
        clear_scopes: bool,
        /// Take every audience away (the default audience stays).
        #[arg(long, conflicts_with = "audiences")]
        clear_audiences: bool,
        /// Authenticate the client with the keys of this JWK Set file from now on. A client's
        /// secret is replaced: it stops working and every token issued through the client is
        /// revoked.
        #[arg(long, value_name = "FILE", conflicts_with = "jwks_uri")]
        jwks: Option<PathBuf>,
        /// As `--jwks`, with the keys published at this URL.
        #[arg(long, value_name = "URL")]
        jwks_uri: Option<String>,
        /// Replace the client's redirect URIs; repeat for several.
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Vec<String>,
    },
    /// Give a confidential client a new secret, printed this once; the old one stops working.
    RotateSecret { id: String },
    /// Remove a client.
    Remove { id: String },
}

/// A user as the CLI and the admin API show it; never the password hash.
fn user_json(user: &UserRecord) -> Value {
    json!({
        "username": user.username,
        "roles": user.roles,
        "disabled": user.disabled,
        "password_scheme": accounts::password_scheme(user),
        "password_imported": user.imported,
        "created_at": user.created_at,
        "updated_at": user.updated_at,
    })
}

/// A client as the CLI and the admin API show it; never the secret hash. The keys of a
/// `private_key_jwt` client are public, and shown.
fn client_json(client: &ClientRecord) -> Value {
    let mut shown = json!({
        "client_id": client.client_id,
        "public": client.is_public(),
        "grants": client.grants,
        "scope": client.scope,
        "audiences": client.audiences,
        "created_at": client.created_at,
    });
    if !client.redirect_uris.is_empty() {
        shown["redirect_uris"] = json!(client.redirect_uris);
    }
    if client.first_party {
        shown["first_party"] = json!(true);
    }
    match &client.keys {
        Some(ClientKeys::Jwks(set)) => shown["jwks"] = set.clone(),
        Some(ClientKeys::JwksUri(uri)) => shown["jwks_uri"] = json!(uri),
        None => {}
    }
    shown
}

/// The keys `--jwks FILE` or `--jwks-uri URL` name, if either is given.
fn keys_from(
    jwks: Option<PathBuf>,
    jwks_uri: Option<String>,
) -> anyhow::Result<Option<ClientKeys>> {
    if let Some(path) = jwks {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the JWK Set {}", path.display()))?;
        let set: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        return Ok(Some(ClientKeys::Jwks(set)));
    }
    Ok(jwks_uri.map(ClientKeys::JwksUri))
}

pub async fn users_command(settings: &Settings, command: UsersCommand) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let change = Change {
        store: store.as_ref(),
        by: &OPERATOR,
        now: now(),
    };
    match command {
        UsersCommand::Add {
            name,
            password_stdin,
            roles,
        } => {
            let password = read_password(password_stdin)?;
            let hasher = PasswordHasher::new(&settings.passwords)?;
            let roles: BTreeSet<String> = roles.into_iter().collect();
            let user = accounts::add_user(&change, &hasher, &name, password, roles)
                .await
                .with_context(|| format!("cannot add user '{name}'"))?;
            print_json(&json!({"username": user.username, "roles": user.roles}))
        }
        UsersCommand::Passwd {
            name,
            password_stdin,
        } => {
            let password = read_password(password_stdin)?;
            let hasher = PasswordHasher::new(&settings.passwords)?;
            accounts::set_password(&change, &hasher, &settings.tokens, &name, password)
                .await
                .with_context(|| format!("cannot change the password of '{name}'"))?;
            print_json(&json!({"username": name, "tokens_revoked": true}))
        }
        UsersCommand::Import { file } => super::import::import_users(&change, &file).await,
        UsersCommand::List => {
            let mut all = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = accounts::list_users(change.store, after.as_deref(), accounts::MAX_PAGE)
                    .await?;
                all.extend(page.items.iter().map(user_json));
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            print_json(&json!(all))
        }
        UsersCommand::Show { name } => {
            let user = accounts::get_user(change.store, &name).await?;
            print_json(&user_json(&user))
        }
        UsersCommand::Roles { name, roles, clear } => {
            let roles = if clear {
                BTreeSet::new()
            } else {
                roles.into_iter().collect()
            };
            let changes = UserChanges {
                roles: Some(roles),
                disabled: None,
            };
            let user = accounts::update_user(&change, &settings.tokens, &name, changes)
                .await
                .with_context(|| format!("cannot change the roles of '{name}'"))?;
            print_json(&user_json(&user))
        }
        UsersCommand::Disable { name } => set_disabled(&change, settings, &name, true).await,
        UsersCommand::Enable { name } => set_disabled(&change, settings, &name, false).await,
    }
}

async fn set_disabled(
    change: &Change<'_>,
    settings: &Settings,
    name: &str,
    disabled: bool,
) -> anyhow::Result<()> {
    let changes = UserChanges {
        roles: None,
        disabled: Some(disabled),
    };
    let user = accounts::update_user(change, &settings.tokens, name, changes)
        .await
        .with_context(|| format!("cannot change user '{name}'"))?;
    let mut output = user_json(&user);
    if disabled {
        output["tokens_revoked"] = json!(true);
    }
    print_json(&output)
}

pub async fn clients_command(settings: &Settings, command: ClientsCommand) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let change = Change {
        store: store.as_ref(),
        by: &OPERATOR,
        now: now(),
    };
    match command {
        ClientsCommand::Add {
            id,
            public,
            grants,
            scopes,
            audiences,
            jwks,
            jwks_uri,
            redirect_uris,
            first_party,
        } => {
            let spec = ClientSpec {
                public,
                grants: parse_grants(&grants)?,
                scopes,
                audiences: audiences.into_iter().collect(),
                keys: keys_from(jwks, jwks_uri)?,
                redirect_uris,
                first_party,
            };
            accounts::check_reserved_audiences(
                &spec.audiences,
                &settings.issuer,
                &settings.admin.audience,
            )?;
            let registered = accounts::add_client(&change, &id, spec)
                .await
                .with_context(|| format!("cannot add client '{id}'"))?;
            let mut output = json!({"client_id": registered.client.client_id});
            if let Some(secret) = registered.secret {
                output["client_secret"] = json!(secret.expose());
            }
            print_json(&output)
        }
        ClientsCommand::List => {
            let mut all = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page =
                    accounts::list_clients(change.store, after.as_deref(), accounts::MAX_PAGE)
                        .await?;
                all.extend(page.items.iter().map(client_json));
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            print_json(&json!(all))
        }
        ClientsCommand::Show { id } => {
            let client = accounts::get_client(change.store, &id).await?;
            print_json(&client_json(&client))
        }
        ClientsCommand::Update {
            id,
            grants,
            scopes,
            audiences,
            clear_scopes,
            clear_audiences,
            jwks,
            jwks_uri,
            redirect_uris,
        } => {
            let changes = ClientChanges {
                keys: keys_from(jwks, jwks_uri)?,
                redirect_uris: (!redirect_uris.is_empty()).then_some(redirect_uris),
                first_party: None,
                grants: (!grants.is_empty())
                    .then(|| parse_grants(&grants))
                    .transpose()?,
                scopes: (clear_scopes || !scopes.is_empty()).then_some(scopes),
                audiences: (clear_audiences || !audiences.is_empty())
                    .then(|| audiences.into_iter().collect()),
            };
            if changes.grants.is_none()
                && changes.scopes.is_none()
                && changes.audiences.is_none()
                && changes.keys.is_none()
                && changes.redirect_uris.is_none()
            {
                bail!(
                    "nothing to change: give --grant, --scope, --audience, --jwks, --jwks-uri or \
                     --redirect-uri"
                );
            }
            if let Some(audiences) = &changes.audiences {
                accounts::check_reserved_audiences(
                    audiences,
                    &settings.issuer,
                    &settings.admin.audience,
                )?;
            }
            let client = accounts::update_client(&change, &settings.tokens, &id, changes)
                .await
                .with_context(|| format!("cannot update client '{id}'"))?;
            print_json(&client_json(&client))
        }
        ClientsCommand::RotateSecret { id } => {
            let secret = accounts::rotate_secret(&change, &settings.tokens, &id)
                .await
                .with_context(|| format!("cannot rotate the secret of client '{id}'"))?;
            print_json(&json!({"client_id": id, "client_secret": secret.expose()}))
        }
        ClientsCommand::Remove { id } => {
            accounts::delete_client(&change, &settings.tokens, &id)
                .await
                .with_context(|| format!("cannot remove client '{id}'"))?;
            print_json(&json!({"client_id": id, "removed": true}))
        }
    }
}

fn parse_grants(grants: &[String]) -> anyhow::Result<BTreeSet<GrantType>> {
    grants
        .iter()
        .map(|g| GrantType::from_name(g).with_context(|| format!("unknown grant '{g}'")))
        .collect()
}
