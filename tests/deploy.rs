//! The deploy files are checked by the tools that will consume them, offline: hadolint lints the
//! Dockerfile, Docker Compose parses the compose file, every Kubernetes manifest validates
//! against the API schemas of the oldest and the newest release we support, and systemd verifies
//! the unit and scores its hardening.
//!
//! The validators come from PyPI into `<repo>/.venv` (scripts/setup-deploy-checks, which the test
//! command runs) and from Debian (systemd). Without them these tests fail; they never pass by
//! skipping.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};

/// Kubernetes releases the manifests must be valid for: the oldest we support (the preStop
/// `sleep` action is on by default from 1.30) and the newest the validator knows.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];

/// The highest `systemd-analyze security` exposure the unit may reach, in tenths (1.2 today;
/// systemd calls anything under 2.0 "OK").
const MAX_EXPOSURE_TENTHS: u32 = 20;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy(path: &str) -> PathBuf {
    repo().join("deploy").join(path)
}

/// A validator installed in the repository's virtual environment, or a failure saying how to
/// get it.
fn tool(name: &str) -> PathBuf {
    let path = repo().join(".venv/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup-deploy-checks (scripts/test does)",
        path.display()
    );
    path
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

fn describe(output: &Output) -> String {
    format!(
        "exit: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn assert_success(command: &mut Command) -> Output {
    let output = run(command);
    assert!(
        output.status.success(),
        "{command:?} failed\n{}",
        describe(&output)
    );
    output
}

#[test]
fn the_dockerfile_passes_hadolint_without_a_single_finding() {
    assert_success(
        Command::new(tool("hadolint"))
            .args(["--no-color", "--failure-threshold", "style"])
            .arg(deploy("Dockerfile")),
    );
}

#[test]
fn hadolint_is_a_real_linter_that_rejects_a_bad_dockerfile() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("Dockerfile");
    std::fs::write(&bad, "FROM debian\nRUN apt-get install curl\n").unwrap();
    let output = run(Command::new(tool("hadolint")).arg("--no-color").arg(&bad));
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("DL3006"),
        "{}",
        describe(&output)
    );
}

#[test]
fn the_compose_file_is_accepted_by_docker_compose() {
    let output = assert_success(
        Command::new(tool("docker-compose"))
            .arg("--file")
            .arg(deploy("docker-compose.yml"))
            .args(["config", "--format", "json"])
            // Whatever the caller's shell holds must not change the outcome.
            .env_remove("LATCHKEY_ISSUER")
            .env_remove("COMPOSE_FILE")
            .env_remove("COMPOSE_PROJECT_NAME"),
    );
    let config: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let services = config["services"].as_object().unwrap();
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "latchkey",
            "latchkey-1",
            "latchkey-2",
            "redis",
            "resource-server"
        ])
    );
    for replica in ["latchkey-1", "latchkey-2"] {
        let service = &services[replica];
        assert_eq!(service["read_only"], true, "{replica}");
        assert_eq!(
            service["environment"]["LATCHKEY_STORE__BACKEND"], "redis",
            "{replica}"
        );
        assert!(
            service["environment"]["LATCHKEY_BOOTSTRAP__ADMIN_PASSWORD_FILE"]
                .as_str()
                .is_some_and(|p| p.starts_with("/run/secrets/")),
            "the admin password comes from a secret: {service}"
        );
    }
    let redis_command = services["redis"]["command"].to_string();
    assert!(
        redis_command.contains("/usr/local/etc/redis/redis.conf"),
        "{redis_command}"
    );
}

/// Every manifest in deploy/k8s except the kustomization itself (which is not a Kubernetes API
/// object).
fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy("k8s"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .filter(|path| !path.ends_with("kustomization.yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_kubernetes_manifest_validates_strictly_against_the_api_schemas() {
    let files = manifests();
    assert!(files.len() >= 8, "manifests found: {files:?}");
    for version in KUBERNETES_VERSIONS {
        let output = assert_success(
            Command::new(tool("kubernetes-validate"))
                .args(["--strict", "--kubernetes-version", version])
                .args(&files),
        );
        let report = String::from_utf8_lossy(&output.stdout);
        for kind in [
            "deployment/latchkey",
            "service/latchkey",
            "configmap/latchkey",
            "secret/latchkey-keys",
            "poddisruptionbudget/latchkey",
            "horizontalpodautoscaler/latchkey",
            "statefulset/latchkey-redis",
        ] {
            assert!(
                report.contains(&format!("passed for resource {kind}")),
                "{kind}:\n{report}"
            );
        }
    }
}

#[test]
fn kubernetes_validate_rejects_a_misspelt_field() {
    let deployment = std::fs::read_to_string(deploy("k8s/deployment.yaml")).unwrap();
    let misspelt = deployment.replace("readOnlyRootFilesystem", "readOnlyRootFileSystem");
    assert_ne!(deployment, misspelt);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deployment.yaml");
    std::fs::write(&file, misspelt).unwrap();
    let output = run(Command::new(tool("kubernetes-validate"))
        .args(["--strict", "--kubernetes-version", KUBERNETES_VERSIONS[0]])
        .arg(&file));
    assert!(!output.status.success(), "{}", describe(&output));
}

#[test]
fn the_kustomization_applies_every_manifest_but_the_secret_template() {
    let kustomization = std::fs::read_to_string(deploy("k8s/kustomization.yaml")).unwrap();
    let listed: BTreeSet<String> = kustomization
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- "))
        .map(str::to_owned)
        .collect();
    let present: BTreeSet<String> = manifests()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|name| name != "secret.yaml")
        .collect();
    assert_eq!(listed, present);
}

#[test]
fn the_redis_config_map_is_a_copy_of_deploy_redis_conf() {
    let manifest = std::fs::read_to_string(deploy("k8s/redis-config.yaml")).unwrap();
    let (_, embedded) = manifest
        .split_once("  redis.conf: |\n")
        .expect("the manifest has a redis.conf entry");
    let unindented: String = embedded
        .lines()
        .map(|line| line.strip_prefix("    ").unwrap_or(line))
        .map(|line| format!("{line}\n"))
        .collect();
    let original = std::fs::read_to_string(deploy("redis.conf")).unwrap();
    assert_eq!(
        unindented, original,
        "deploy/k8s/redis-config.yaml must embed deploy/redis.conf unchanged"
    );
}

fn systemd_analyze() -> &'static str {
    let found = Command::new("systemd-analyze").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "systemd-analyze is missing: run scripts/setup-deploy-checks (scripts/test does)"
    );
    "systemd-analyze"
}

/// `systemd-analyze verify` checks that `ExecStart=` names an executable, so the unit is
/// verified with the binary this build made in place of /usr/local/bin/latchkey; every other
/// line is verified as shipped.
#[test]
fn the_systemd_unit_verifies_without_a_warning() {
    let unit = std::fs::read_to_string(deploy("latchkey.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/latchkey serve"));
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("latchkey.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/latchkey", env!("CARGO_BIN_EXE_latchkey")),
    )
    .unwrap();
    let output = assert_success(Command::new(systemd_analyze()).arg("verify").arg(&copy));
    // It reports unknown keys and bad values as warnings and still exits 0.
    assert!(
        output.stdout.is_empty() && output.stderr.is_empty(),
        "systemd-analyze verify had remarks:\n{}",
        describe(&output)
    );
}

#[test]
fn the_systemd_unit_stays_hardened() {
    let threshold = MAX_EXPOSURE_TENTHS.to_string();
    let output = run(Command::new(systemd_analyze())
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(format!("--threshold={threshold}"))
        .arg(deploy("latchkey.service")));
    assert!(
        output.status.success(),
        "exposure above {}.{}:\n{}",
        MAX_EXPOSURE_TENTHS / 10,
        MAX_EXPOSURE_TENTHS % 10,
        describe(&output)
    );
}

/// The system calls a `SystemCallFilter=` entry names: itself, or a group's members (nested
/// groups expanded) as this machine's systemd defines them.
fn syscalls_named(entry: &str) -> std::collections::BTreeSet<String> {
    if !entry.starts_with('@') {
        return [entry.to_owned()].into();
    }
    let output = assert_success(
        Command::new(systemd_analyze())
            .args(["syscall-filter", "--no-pager"])
            .arg(entry),
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .flat_map(|name| match name {
            nested if nested.starts_with('@') => syscalls_named(nested),
            name => [name.to_owned()].into(),
        })
        .collect()
}

/// Whether the unit's `SystemCallFilter=` lines, read in order as systemd reads them (the
/// first line sets allow- or deny-listing, later ones add or remove), let `syscall` through.
fn unit_allows(unit: &str, syscall: &str) -> bool {
    let mut allowed = None;
    for line in unit.lines() {
        let Some(value) = line.strip_prefix("SystemCallFilter=") else {
            continue;
        };
        let (deny, entries) = match value.strip_prefix('~') {
            Some(rest) => (true, rest),
            None => (false, value),
        };
        let named = entries
            .split_whitespace()
            .any(|entry| syscalls_named(entry).contains(syscall));
        let before = allowed.unwrap_or(deny);
        allowed = Some(if named { !deny } else { before });
    }
    allowed.unwrap_or(true)
}

#[test]
fn the_systemd_unit_lets_the_hashing_threads_lower_their_priority() {
    let unit = std::fs::read_to_string(deploy("latchkey.service")).unwrap();
    assert!(
        unit_allows(&unit, "setpriority"),
        "the unit's SystemCallFilter denies setpriority"
    );
    // What the filter is for still holds.
    for denied in ["mount", "reboot", "sched_setattr", "setrlimit"] {
        assert!(!unit_allows(&unit, denied), "{denied} is allowed");
    }
    assert!(unit_allows(&unit, "futex"));
}

#[test]
fn every_deployment_behind_a_proxy_trusts_that_proxy_for_the_client_address() {
    for file in [
        "docker-compose.yml",
        "k8s/configmap.yaml",
        "latchkey.service",
    ] {
        let text = std::fs::read_to_string(deploy(file)).unwrap();
        assert!(
            text.contains("LATCHKEY_SECURITY__TRUSTED_PROXIES"),
            "{file} puts Latchkey behind a proxy but does not trust it: every request would \
             count against the proxy's address"
        );
    }
    let compose = std::fs::read_to_string(deploy("docker-compose.yml")).unwrap();
    let haproxy = compose
        .split("LATCHKEY_SECURITY__TRUSTED_PROXIES: ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .expect("a trusted proxy");
    assert!(
        compose.contains(&format!("ipv4_address: {haproxy}")),
        "the trusted address is haproxy's"
    );
}
