//! Files only their owner may read: the embedded store's data directory and database (which
//! hold password and secret hashes) and the private keys. Modes are set explicitly, never left
//! to the umask, and made strict again on files an older build or another tool left open.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// A directory only its owner may enter.
pub const PRIVATE_DIR: u32 = 0o700;
/// A file only its owner may read and write.
pub const PRIVATE_FILE: u32 = 0o600;

/// Creates `dir` (and missing parents) with mode 0700, or makes an existing one 0700. A
/// directory shared by every user (the sticky bit, as `/tmp` has) is refused rather than taken
/// over: the store needs a directory of its own.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR)
        .create(dir)?;
    let mode = fs::metadata(dir)?.permissions().mode();
    if mode & 0o1000 != 0 {
        return Err(io::Error::other(format!(
            "{} is a directory shared by every user (mode {:04o}); give the store a directory \
             of its own",
            dir.display(),
            mode & 0o7777
        )));
    }
    restrict(dir, PRIVATE_DIR);
    Ok(())
}

/// Creates `file` empty with mode 0600 if it does not exist, or makes an existing one 0600.
pub fn private_file(file: &Path) -> io::Result<()> {
    fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(PRIVATE_FILE)
        .open(file)?;
    restrict(file, PRIVATE_FILE);
    Ok(())
}

/// Makes each of the files `names` in `dir` that exists 0600.
pub fn restrict_files(dir: &Path, names: &[&str]) {
    for name in names {
        let file = dir.join(name);
        if file.exists() {
            restrict(&file, PRIVATE_FILE);
        }
    }
}

/// Sets `path`'s mode to `mode` unless it is that already. A failure (a file owned by someone
/// else, a read-only mount) is logged; the start-up check reports what stays open.
fn restrict(path: &Path, mode: u32) {
    let result = fs::metadata(path).and_then(|meta| {
        if meta.permissions().mode() & 0o7777 == mode {
            return Ok(());
        }
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
    });
    if let Err(error) = result {
        tracing::warn!(
            path = %path.display(),
            %error,
            "cannot make the file private to its owner"
        );
    }
}

/// The permission bits of `path` if users other than its owner have any access to it.
pub fn open_to_others(path: &Path) -> Option<u32> {
    let mode = fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    (mode & 0o077 != 0).then_some(mode)
}

/// Logs a warning, naming the path and its mode, for each of `paths` that users other than its
/// owner can access.
pub fn warn_if_open<P: AsRef<Path>>(what: &str, paths: impl IntoIterator<Item = P>) {
    for path in paths {
        let path = path.as_ref();
        if let Some(mode) = open_to_others(path) {
            tracing::warn!(
                path = %path.display(),
                mode = %format!("{mode:04o}"),
                "{what} is open to users other than its owner; only the service's user should \
                 read it (chmod go-rwx)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn directories_and_files_are_made_private_whether_new_or_left_open() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/data");
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("db");
        private_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(open_to_others(&file), None);

        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        fs::write(&file, "kept").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(open_to_others(&file), Some(0o644));
        private_dir(&dir).unwrap();
        private_file(&file).unwrap();
        assert_eq!((mode(&dir), mode(&file)), (0o700, 0o600));
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            "kept",
            "never truncated"
        );

        let other = dir.join("db-wal");
        fs::write(&other, "").unwrap();
        fs::set_permissions(&other, fs::Permissions::from_mode(0o666)).unwrap();
        restrict_files(&dir, &["db-wal", "absent"]);
        assert_eq!(mode(&other), 0o600);
    }

    #[test]
    fn a_directory_shared_by_every_user_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let shared = root.path().join("tmp");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
        let error = private_dir(&shared).unwrap_err().to_string();
        assert!(error.contains("1777"), "{error}");
        assert_eq!(mode(&shared), 0o1777, "left alone");
    }
}
