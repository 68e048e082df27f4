//! Where the encryption key comes from: `security.encryption_key`, or for SQLite a file
//! beside the database (`<database file>.key`, mode 0600) created on first start.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context};
use sqlx::sqlite::SqliteConnectOptions;

use super::sealed::SealingKey;
use crate::config::{ExposeSecret, Settings};

/// Where the key in use came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Configured,
    File(PathBuf),
}

/// The key secrets are sealed with, creating the SQLite key file if there is none.
pub fn resolve(settings: &Settings) -> anyhow::Result<(SealingKey, KeySource)> {
    let configured = settings.security.encryption_key.expose_secret();
    if !configured.trim().is_empty() {
        let key = SealingKey::from_base64(configured)
            .context("security.encryption_key (FIREHOOK__SECURITY__ENCRYPTION_KEY)")?;
        return Ok((key, KeySource::Configured));
    }
    let url = settings.database.url.expose_secret();
    if !url.starts_with("sqlite:") {
        bail!(
            "no encryption key for the signing secrets: set security.encryption_key \
             (FIREHOOK__SECURITY__ENCRYPTION_KEY) to the base64 of 32 random bytes, e.g. the \
             output of `head -c 32 /dev/urandom | base64`, and keep it safe: the stored \
             secrets cannot be read without it"
        );
    }
    let path = path_for(url)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let existed = path.exists();
    let key = read_or_create(&path)?;
    if !existed {
        tracing::info!(path = %path.display(), "created the encryption key file");
    }
    Ok((key, KeySource::File(path)))
}

/// `<database file>.key` for a `sqlite:` URL.
fn path_for(url: &str) -> anyhow::Result<PathBuf> {
    let db = SqliteConnectOptions::from_str(url)?
        .get_filename()
        .to_path_buf();
    let mut name = db.into_os_string();
    name.push(".key");
    Ok(PathBuf::from(name))
}

/// Creates `path` (never overwriting) with mode 0600 from the start, holding `key`.
fn create(path: &Path, key: &str) -> std::io::Result<SealingKey> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(format!("{key}\n").as_bytes())?;
    file.sync_all()?;
    Ok(SealingKey::from_base64(key).expect("a generated key is valid"))
}

/// Reads a key file, refusing one that other users may read or that holds no valid key.
pub fn read(path: &Path) -> anyhow::Result<SealingKey> {
    let mut file = File::open(path).with_context(|| format!("key file {}", path.display()))?;
    let mode = file.metadata()?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "key file {} has mode {mode:04o}, so other users may read it: \
             `chmod 600 {}` and start again",
            path.display(),
            path.display()
        );
    }
    let mut text = String::new();
    file.read_to_string(&mut text)
        .with_context(|| format!("key file {}", path.display()))?;
    SealingKey::from_base64(&text).with_context(|| format!("key file {}", path.display()))
}

/// Replaces the key file at `path` with `key`: a 0600 temporary file renamed over it, so
/// the file is at every moment either the old key or the new one.
pub fn replace(path: &Path, key: &str) -> anyhow::Result<()> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".new");
    let temp = PathBuf::from(temp);
    match fs::remove_file(&temp) {
        Err(e) if e.kind() != ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    create(&temp, key).with_context(|| format!("writing {}", temp.display()))?;
    fs::rename(&temp, path).with_context(|| format!("renaming onto {}", path.display()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The key in `path`, or a fresh one written there (0600) when the file does not exist.
pub fn read_or_create(path: &Path) -> anyhow::Result<SealingKey> {
    match create(path, &SealingKey::generate_base64()) {
        Ok(key) => Ok(key),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => read(path),
        Err(e) => Err(e).with_context(|| format!("creating key file {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_key_file_is_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.key");
        let key = read_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read(&path).unwrap().id(), key.id());
        assert_eq!(read_or_create(&path).unwrap().id(), key.id());
    }

    #[test]
    fn loose_permissions_and_bad_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.key");
        read_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(
            err.contains("mode 0644") && err.contains("chmod 600"),
            "{err}"
        );

        let short = dir.path().join("short.key");
        fs::write(&short, "c2hvcnQ=\n").unwrap();
        fs::set_permissions(&short, fs::Permissions::from_mode(0o600)).unwrap();
        let err = format!("{:#}", read(&short).unwrap_err());
        assert!(err.contains("exactly 32 bytes"), "{err}");
    }

    #[test]
    fn replacing_a_key_file_keeps_it_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.key");
        read_or_create(&path).unwrap();
        let new = SealingKey::generate_base64();
        replace(&path, &new).unwrap();
        assert_eq!(
            read(&path).unwrap().id(),
            SealingKey::from_base64(&new).unwrap().id()
        );
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!dir.path().join("db.key.new").exists());
    }
}
