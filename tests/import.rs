//! Users brought from another system with the password hashes they have there (design §9):
//! imported with `latchkey users import`, signed in with their old passwords, and moved to
//! argon2id by their first login, on both stores.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use support::decode_jwt;
use support::process::{Service, Workdir};
use support::redis_server::RedisServer;

const PASSWORD: &str = "correct horse";

/// The same password, "correct horse", as Werkzeug 3.1 (its pbkdf2 and scrypt forms), bcrypt,
/// Django and passlib hash it.
const USERS: [(&str, &str, &str); 6] = [
    (
        "werkzeug-pbkdf2",
        "pbkdf2:sha256:1000$5TLlvcP1iVirdSsn$40325dcf67e0185c6699fa646de2f8c86abf7ab7ad4e60296b4513d0737c059a",
        "pbkdf2-sha256",
    ),
    (
        "werkzeug-scrypt",
        "scrypt:1024:8:1$VwnpFJ6CUixCi3eU$20de068f89c9584aebc73d09354297b9f79f5c17dd0f70d309b94cab9d1889c17a1b05751c059ed4119ee56690d9faab68b7b7f3a6640ac154b9ca7cf65ce869",
        "scrypt",
    ),
    (
        "bcrypt-user",
        "$2b$04$Eoj89ramYZP0krHAwqsg/uvBCvWNlyMoJ4HMBSSeIRVoSHptvAZoO",
        "bcrypt",
    ),
    (
        "django-user",
        "pbkdf2_sha256$1000$abcdefghijklmnop$Ja730/3PvAVIEeMB2cAvpe/sLE4qsHOhJF2cTv/kqps=",
        "pbkdf2-sha256",
    ),
    (
        "passlib-scrypt",
        "$scrypt$ln=10,r=8,p=1$lPJ+L2UsJWTsnbNWKuX8Xw$2jPH0kUT9Ef2UxWSoTvUFDCfPVVe2Xo+V5/Is5Vx/NQ",
        "scrypt",
    ),
    // argon2id of far less than the configured cost: replaced all the same.
    (
        "argon2-cffi",
        "$argon2id$v=19$m=64,t=1,p=1$yzmHMMb4X4sx5pwTonSuNQ$+Usd7QvmhfDo61K+xtiB7Pn8bu6NoCqzrWwpqPvYmT8",
        "argon2id",
    ),
];

fn import_file(dir: &Workdir, lines: &[String]) -> String {
    let path = dir.join("users.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path.display().to_string()
}

fn user_line(username: &str, hash: &str) -> String {
    serde_json::json!({"username": username, "password_hash": hash, "roles": ["user"]}).to_string()
}

fn scheme_of(dir: &Workdir, username: &str) -> String {
    let user = dir.run(&["users", "show", username]).json();
    user["password_scheme"].as_str().unwrap().to_owned()
}

fn still_imported(dir: &Workdir, username: &str) -> bool {
    let user = dir.run(&["users", "show", username]).json();
    user["password_imported"].as_bool().unwrap()
}

/// The status of a password grant for `username`; on success, checks the token names them.
async fn sign_in(service: &Service, username: &str, password: &str) -> u16 {
    let response = reqwest::Client::new()
        .post(service.url("/oauth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
            ("client_id", "web"),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    if status == 200 {
        let body: Value = response.json().await.unwrap();
        let (_, claims) = decode_jwt(body["access_token"].as_str().unwrap());
        assert_eq!(claims["sub"], username);
    }
    status
}

/// Imports every kind, signs each user in with a wrong and then the right password, and checks
/// that the right one moved the hash to argon2id and that it still signs in.
async fn imported_users_sign_in_and_move_to_argon2id(dir: Workdir) {
    dir.run(&["clients", "add", "web", "--public", "--grant", "password"])
        .json();
    let lines: Vec<String> = USERS
        .iter()
        .map(|(name, hash, _)| user_line(name, hash))
        .collect();
    let file = import_file(&dir, &lines);
    let imported = dir.run(&["users", "import", &file]).json();
    assert_eq!(imported["imported"], USERS.len());
    assert_eq!(imported["refused"], 0);
    let listed = dir.run(&["users", "list"]).json();
    for (name, _, scheme) in USERS {
        let user = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == name)
            .unwrap_or_else(|| panic!("{name} is listed: {listed}"));
        assert_eq!(user["password_scheme"], scheme, "{user}");
        assert_eq!(user["roles"], serde_json::json!(["user"]));
        assert_eq!(user["password_imported"], true, "{user}");
    }

    let service = dir.serve();
    for (name, _, scheme) in USERS {
        assert_eq!(sign_in(&service, name, "wrong horse").await, 400, "{name}");
        assert_eq!(
            scheme_of(&dir, name),
            scheme,
            "a wrong password changes nothing"
        );
        assert!(still_imported(&dir, name), "{name}");
        assert_eq!(sign_in(&service, name, PASSWORD).await, 200, "{name}");
        assert_eq!(
            scheme_of(&dir, name),
            "argon2id",
            "{name} upgraded at sign-in"
        );
        assert!(!still_imported(&dir, name), "{name} upgraded at sign-in");
        assert_eq!(sign_in(&service, name, PASSWORD).await, 200, "{name} after");
        assert_eq!(
            sign_in(&service, name, "wrong horse").await,
            400,
            "{name} after"
        );
    }
}

#[tokio::test]
async fn imported_users_sign_in_with_their_old_passwords_and_move_to_argon2id_on_the_embedded_store()
 {
    imported_users_sign_in_and_move_to_argon2id(Workdir::new()).await;
}

#[tokio::test]
async fn imported_users_sign_in_with_their_old_passwords_and_move_to_argon2id_on_redis() {
    let redis = RedisServer::start();
    let dir = Workdir::new()
        .env("LATCHKEY_STORE__BACKEND", "redis")
        .env("LATCHKEY_STORE__URL", &redis.url());
    imported_users_sign_in_and_move_to_argon2id(dir).await;
}

#[test]
fn a_refused_line_is_named_by_its_number_and_nothing_of_it_is_stored() {
    let dir = Workdir::new();
    let (_, werkzeug, _) = USERS[0];
    let lines = [
        user_line("first", werkzeug),
        user_line("md5-user", "5f4dcc3b5aa765d61d8327deb882cf99"),
        "{not json".to_owned(),
        user_line("costly", &werkzeug.replace(":1000$", ":5000000$")),
        String::new(),
        user_line("last", werkzeug),
        user_line("first", werkzeug),
    ];
    let file = import_file(&dir, &lines);
    let output = dir.run(&["users", "import", &file]);
    let stderr = output.failure();
    for (line, why) in [
        (2, "not a password hash format"),
        (3, "not a JSON object"),
        (4, "costs more"),
        (7, "taken"),
    ] {
        assert!(
            stderr.contains(&format!("line {line}: refused")) && stderr.contains(why),
            "line {line} ({why}): {stderr}"
        );
    }
    let summary: Value = serde_json::from_str(output.stdout().trim()).unwrap();
    assert_eq!(summary["imported"], 2);
    assert_eq!(summary["refused"], 4);
    let listed = dir.run(&["users", "list"]).json();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["first", "last"]);
}

#[test]
fn users_are_imported_from_standard_input_and_their_hashes_never_shown() {
    let dir = Workdir::new();
    let (name, hash, scheme) = USERS[2];
    let output = dir.run_with_stdin(&["users", "import", "-"], Some(&user_line(name, hash)));
    assert_eq!(output.json()["imported"], 1);
    let shown = dir.run(&["users", "show", name]);
    assert_eq!(shown.json()["password_scheme"], scheme);
    assert!(!shown.stdout().contains(&hash[7..]), "{}", shown.stdout());
}

#[test]
fn a_hundred_thousand_users_import_in_bounded_memory_with_progress_on_standard_error() {
    use nix::sys::resource::{UsageWho, getrusage};
    let dir = Workdir::new();
    let (_, werkzeug, _) = USERS[0];
    let lines: String = (0..100_000)
        .map(|i| user_line(&format!("user{i}"), werkzeug) + "\n")
        .collect();
    let output = dir.run_with_stdin(&["users", "import", "-"], Some(&lines));
    assert_eq!(output.json()["imported"], 100_000, "{}", output.failure());
    let progress: Vec<String> = output
        .stderr()
        .lines()
        .filter(|line| line.contains("lines read"))
        .map(str::to_owned)
        .collect();
    assert_eq!(progress.len(), 10, "{progress:?}");
    assert_eq!(
        progress[9],
        "100000 lines read: 100000 users imported, 0 refused"
    );
    // The input alone is 17 MB; read whole, with a user record per line, it would be far more.
    let peak_kib = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap().max_rss();
    println!("peak resident memory of the import: {} KiB", peak_kib);
    assert!(peak_kib < 40 * 1024, "{peak_kib} KiB");
    assert_eq!(
        dir.run(&["users", "show", "user99999"]).json()["password_scheme"],
        "pbkdf2-sha256"
    );
}

/// The value of `latchkey_legacy_password_hashes` on a scrape of `service`.
async fn legacy_hashes(service: &Service) -> Option<u64> {
    let text = reqwest::get(service.url("/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("latchkey_legacy_password_hashes "))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test]
async fn the_metrics_count_the_users_left_with_an_imported_hash() {
    let dir = Workdir::new();
    dir.run(&["clients", "add", "web", "--public", "--grant", "password"])
        .json();
    let lines: Vec<String> = USERS
        .iter()
        .map(|(name, hash, _)| user_line(name, hash))
        .collect();
    dir.run(&["users", "import", &import_file(&dir, &lines)])
        .json();
    let service = dir.serve();
    // Counted from the store once the service has started.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while legacy_hashes(&service).await != Some(USERS.len() as u64) {
        assert!(
            std::time::Instant::now() < deadline,
            "the count never reached {}: {:?}",
            USERS.len(),
            legacy_hashes(&service).await
        );
        tokio::task::yield_now().await;
    }
    let (name, _, _) = USERS[0];
    assert_eq!(sign_in(&service, name, PASSWORD).await, 200);
    assert_eq!(legacy_hashes(&service).await, Some(USERS.len() as u64 - 1));
}
