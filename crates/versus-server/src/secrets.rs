//! The JWT signing key: from configuration when given, otherwise generated once and kept in the
//! data dir so that tokens survive a restart of the embedded default.

use std::fs;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use rand::RngCore as _;
use secrecy::{ExposeSecret, SecretSlice};

use crate::config::Config;

const KEY_FILE: &str = "jwt-secret";

pub fn jwt_secret(config: &Config) -> anyhow::Result<SecretSlice<u8>> {
    if let Some(secret) = &config.auth.jwt_secret {
        return Ok(SecretSlice::from(
            secret.expose_secret().as_bytes().to_vec(),
        ));
    }
    if config.database_url.is_some() {
        tracing::warn!(
            "auth.jwt_secret is not set: using a key kept in the data dir; every node of a cluster \
             must share one key, so set VERSUS_AUTH__JWT_SECRET"
        );
    }
    load_or_create(&config.data_dir)
}

fn load_or_create(data_dir: &Path) -> anyhow::Result<SecretSlice<u8>> {
    let path = data_dir.join(KEY_FILE);
    match fs::read(&path) {
        Ok(bytes) if bytes.len() >= 32 => return Ok(SecretSlice::from(bytes)),
        Ok(_) => anyhow::bail!(
            "{} is shorter than 32 bytes; delete it to generate a new key",
            path.display()
        ),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    }
    fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let mut key = vec![0u8; 64];
    rand::rng().fill_bytes(&mut key);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(&key)?;
    file.sync_all()?;
    tracing::info!(path = %path.display(), "generated a new token signing key");
    Ok(SecretSlice::from(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused() {
        let dir = std::env::temp_dir().join(format!("versus-secret-{}", uuid::Uuid::new_v4()));
        let first = load_or_create(&dir).unwrap();
        let second = load_or_create(&dir).unwrap();
        assert_eq!(first.expose_secret(), second.expose_secret());
        assert_eq!(first.expose_secret().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(dir.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs::remove_dir_all(dir).unwrap();
    }
}
