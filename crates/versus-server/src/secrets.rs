//! The server's keys: each from configuration when given, otherwise generated once and kept in
//! the data dir (mode 0600) so that what was signed or handed out with it survives a restart of
//! the embedded default. Every node of a cluster needs the same keys, so there they are set.
//!
//! - `jwt-secret`: the HMAC key of players' access tokens (64 random bytes).
//! - `server-key`: what game servers present as `Authorization: Bearer …`. Operators copy it
//!   into a game server's settings and it travels in a header, so it is text: 32 random bytes
//!   as 43 characters of URL-safe base64.
//! - `session-token-key`: the HMAC key of the session tokens players present to their game
//!   server (64 random bytes).
//!
//! A key is never logged; where a generated server key lives is, for the operator to find it.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use secrecy::{ExposeSecret, SecretSlice, SecretString};

use crate::config::Config;

/// A key kept in the data dir.
struct KeyFile {
    name: &'static str,
    /// What the key is, for messages.
    what: &'static str,
    form: KeyForm,
}

#[derive(Clone, Copy)]
enum KeyForm {
    /// 64 random bytes, stored as they are.
    Bytes,
    /// 32 random bytes as URL-safe base64: printable, fit for a header and a settings file.
    Text,
}

const JWT_SECRET: KeyFile = KeyFile {
    name: "jwt-secret",
    what: "token signing key",
    form: KeyForm::Bytes,
};
const SERVER_KEY: KeyFile = KeyFile {
    name: "server-key",
    what: "game server key",
    form: KeyForm::Text,
};
const SESSION_TOKEN_KEY: KeyFile = KeyFile {
    name: "session-token-key",
    what: "session token key",
    form: KeyForm::Bytes,
};

pub fn jwt_secret(config: &Config) -> anyhow::Result<SecretSlice<u8>> {
    if let Some(secret) = &config.auth.jwt_secret {
        return Ok(SecretSlice::from(
            secret.expose_secret().as_bytes().to_vec(),
        ));
    }
    warn_if_clustered(config, "auth.jwt_secret", "VERSUS_AUTH__JWT_SECRET");
    let (key, _) = load_or_create(&config.data_dir, &JWT_SECRET)?;
    Ok(key)
}

/// The key game servers authenticate with, and the file it is kept in when it came from the
/// data dir rather than from configuration (`None`).
pub fn server_key(config: &Config) -> anyhow::Result<(SecretString, Option<PathBuf>)> {
    if let Some(key) = &config.sessions.server_key {
        return Ok((key.clone(), None));
    }
    warn_if_clustered(config, "sessions.server_key", "VERSUS_SESSIONS__SERVER_KEY");
    let (key, path) = load_or_create(&config.data_dir, &SERVER_KEY)?;
    // `load_or_create` has checked a text key is printable ASCII.
    let text = String::from_utf8(key.expose_secret().to_vec())
        .map_err(|_| anyhow::anyhow!("{} is not text", path.display()))?;
    Ok((SecretString::from(text), Some(path)))
}

/// The HMAC key of session tokens.
pub fn session_token_key(config: &Config) -> anyhow::Result<SecretSlice<u8>> {
    if let Some(key) = &config.sessions.token_key {
        return Ok(SecretSlice::from(key.expose_secret().as_bytes().to_vec()));
    }
    warn_if_clustered(config, "sessions.token_key", "VERSUS_SESSIONS__TOKEN_KEY");
    let (key, _) = load_or_create(&config.data_dir, &SESSION_TOKEN_KEY)?;
    Ok(key)
}

fn warn_if_clustered(config: &Config, key: &str, env: &str) {
    if config.database_url.is_some() {
        tracing::warn!(
            "{key} is not set: using a key kept in the data dir; every node of a cluster must \
             share one key, so set {env}"
        );
    }
}

fn load_or_create(data_dir: &Path, file: &KeyFile) -> anyhow::Result<(SecretSlice<u8>, PathBuf)> {
    let path = data_dir.join(file.name);
    match fs::read(&path) {
        Ok(mut bytes) => {
            if let KeyForm::Text = file.form {
                // An operator may have written the file with a trailing newline.
                let len = bytes.trim_ascii_end().len();
                bytes.truncate(len);
                if !bytes.iter().all(u8::is_ascii_graphic) {
                    anyhow::bail!(
                        "{} holds more than printable ASCII; delete it to generate a new {}",
                        path.display(),
                        file.what
                    );
                }
            }
            if bytes.len() < 32 {
                anyhow::bail!(
                    "{} is shorter than 32 bytes; delete it to generate a new {}",
                    path.display(),
                    file.what
                );
            }
            return Ok((SecretSlice::from(bytes), path));
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    }
    fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let key = match file.form {
        KeyForm::Bytes => {
            let mut key = vec![0u8; 64];
            rand::rng().fill_bytes(&mut key);
            key
        }
        KeyForm::Text => {
            let mut random = [0u8; 32];
            rand::rng().fill_bytes(&mut random);
            URL_SAFE_NO_PAD.encode(random).into_bytes()
        }
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = options
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    out.write_all(&key)?;
    out.sync_all()?;
    tracing::info!(path = %path.display(), "generated a new {}", file.what);
    Ok((SecretSlice::from(key), path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        std::env::temp_dir().join(format!("versus-secret-{}", uuid::Uuid::new_v4()))
    }

    #[cfg(unix)]
    fn assert_owner_only(path: &Path) {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn generated_once_then_reused() {
        let dir = temp_dir();
        let (first, path) = load_or_create(&dir, &JWT_SECRET).unwrap();
        let (second, _) = load_or_create(&dir, &JWT_SECRET).unwrap();
        assert_eq!(first.expose_secret(), second.expose_secret());
        assert_eq!(first.expose_secret().len(), 64);
        assert_eq!(path, dir.join("jwt-secret"));
        #[cfg(unix)]
        assert_owner_only(&path);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_generated_server_key_is_printable_and_its_file_is_named() {
        let config = Config {
            data_dir: temp_dir(),
            ..Config::default()
        };
        let (key, path) = server_key(&config).unwrap();
        let path = path.expect("a generated key has a file");
        assert_eq!(path, config.data_dir.join("server-key"));
        let text = key.expose_secret();
        assert_eq!(text.len(), 43);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "not URL-safe base64"
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), text);
        #[cfg(unix)]
        assert_owner_only(&path);
        let (again, _) = server_key(&config).unwrap();
        assert_eq!(again.expose_secret(), text);

        // An operator's edit leaving a trailing newline does not change the key.
        fs::write(&path, format!("{text}\n")).unwrap();
        let (edited, _) = server_key(&config).unwrap();
        assert_eq!(edited.expose_secret(), text);
        fs::write(&path, "tooshort\n").unwrap();
        let err = server_key(&config).unwrap_err().to_string();
        assert!(
            err.contains("server-key") && err.contains("32 bytes"),
            "{err}"
        );
        fs::write(&path, format!("{text} {text}")).unwrap();
        let err = server_key(&config).unwrap_err().to_string();
        assert!(
            err.contains("server-key") && err.contains("printable"),
            "{err}"
        );

        let (token_key, _) = load_or_create(&config.data_dir, &SESSION_TOKEN_KEY).unwrap();
        assert_eq!(token_key.expose_secret().len(), 64);
        assert_eq!(
            session_token_key(&config).unwrap().expose_secret(),
            token_key.expose_secret()
        );
        fs::remove_dir_all(&config.data_dir).unwrap();
    }

    #[test]
    fn configured_keys_win_and_touch_no_file() {
        let mut config = Config {
            data_dir: temp_dir(),
            ..Config::default()
        };
        config.sessions.server_key = Some(SecretString::from("s".repeat(40)));
        config.sessions.token_key = Some(SecretString::from("t".repeat(40)));
        let (key, path) = server_key(&config).unwrap();
        assert_eq!(key.expose_secret(), "s".repeat(40));
        assert!(path.is_none());
        assert_eq!(
            session_token_key(&config).unwrap().expose_secret(),
            "t".repeat(40).as_bytes()
        );
        assert!(!config.data_dir.exists());
    }
}
