//! Key files a node and its tools write: PKCS#8 PEM, readable by their owner only, synced, and
//! never written over an existing file.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use vledger_tlog::keys::SigningKey;

/// Writes `key` to a new file at `path` (mode 0600), creating its directory; an existing file
/// is an error and is left as it was.
pub fn write_new_key(path: &Path, key: &SigningKey) -> std::io::Result<()> {
    let with_path = |what: &str, e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("cannot {what} {}: {e}", path.display()))
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| with_path("create the directory of", e))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| with_path("create (an existing key is never overwritten)", e))?;
    file.write_all(key.to_pkcs8_pem().as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| with_path("write", e))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_key_file_is_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/node.pem");
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        write_new_key(&path, &key).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let pem = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            SigningKey::from_pkcs8_pem(&pem).unwrap().public_key(),
            key.public_key()
        );
        let other = SigningKey::generate(&mut rand::rngs::OsRng);
        let error = write_new_key(&path, &other).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists);
        assert!(error.to_string().contains("never overwritten"), "{error}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), pem);
    }
}
