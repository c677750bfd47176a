//! The modes of the files the service keeps: its store and its keys.

use super::*;

/// The permission bits of `path`.
fn mode_of(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Asserts that the data directory is 0700 and every database file in it 0600.
fn assert_store_private(dir: &Workdir, when: &str) {
    assert_eq!(mode_of(&dir.join("data")), 0o700, "data directory {when}");
    let mut seen = 0;
    for name in ["latchkey.db", "latchkey.db-wal", "latchkey.db-shm"] {
        let path = dir.join(&format!("data/{name}"));
        if path.exists() {
            assert_eq!(mode_of(&path), 0o600, "{name} {when}");
            seen += 1;
        }
    }
    assert!(seen >= 1, "the database exists {when}");
}

/// Opens the data directory and its files to everyone, as an older build under a permissive
/// umask left them.
fn open_store_to_everyone(dir: &Workdir) {
    let set = |path: std::path::PathBuf, mode: u32| {
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    };
    set(dir.join("data"), 0o777);
    for name in ["latchkey.db", "latchkey.db-wal", "latchkey.db-shm"] {
        set(dir.join(&format!("data/{name}")), 0o666);
    }
}

#[tokio::test]
async fn the_store_and_the_keys_are_private_to_their_owner_whatever_the_umask() {
    let dir = Workdir::new().umask(0o000);
    let mut service = dir.serve();
    assert_store_private(&dir, "on a fresh start");
    for name in ["latchkey.db-wal", "latchkey.db-shm"] {
        assert!(
            dir.join(&format!("data/{name}")).exists(),
            "{name} while serving"
        );
    }
    assert_eq!(mode_of(&dir.join("keys")), 0o700, "key directory");
    for pem in pem_files(&dir) {
        assert_eq!(mode_of(&pem), 0o600, "{}", pem.display());
    }
    let warned = service
        .logs()
        .iter()
        .any(|l| l["level"] == "WARN" && l.get("mode").is_some());
    assert!(!warned, "nothing to warn about: {:#?}", service.logs());
    // The CLI, opening the store beside the service, keeps it private.
    dir.run(&["clients", "add", "web", "--public", "--grant", "password"])
        .json();
    assert_store_private(&dir, "after the CLI wrote to it");
    service.terminate().assert_clean_exit();

    // What an older build left open is made private by the CLI and by the service alike.
    open_store_to_everyone(&dir);
    dir.run(&["clients", "list"]).json();
    assert_store_private(&dir, "after the CLI opened an open store");
    open_store_to_everyone(&dir);
    let service = dir.serve();
    assert_store_private(&dir, "after the service opened an open store");
    service.terminate().assert_clean_exit();
}

#[tokio::test]
async fn a_key_file_others_can_read_is_warned_about_at_start_up() {
    let dir = Workdir::new();
    dir.serve().terminate().assert_clean_exit();
    let pem = pem_files(&dir).pop().expect("a key");
    std::fs::set_permissions(&pem, std::fs::Permissions::from_mode(0o644)).unwrap();
    let name = pem.file_name().unwrap().to_str().unwrap().to_owned();
    let mut service = dir.serve();
    // The path as configured: `./keys/NAME` by default.
    let warning = service
        .wait_for_log(Duration::from_secs(5), |l| {
            l["level"] == "WARN"
                && l["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with(&format!("keys/{name}")))
        })
        .expect("a warning naming the key file");
    assert_eq!(warning["mode"], "0644", "{warning}");
    assert_eq!(mode_of(&pem), 0o644, "the operator's file is left as it is");
}
