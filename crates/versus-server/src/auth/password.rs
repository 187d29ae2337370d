//! argon2id password hashing, off the async runtime and bounded in concurrency: each hash holds
//! `memory_kib` of memory and a core for tens of milliseconds, so an unbounded burst of logins
//! could exhaust the machine.

use std::sync::Arc;

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordVerifier, Version};
use tokio::sync::Semaphore;
use versus_core::account::Password;

use crate::config::Argon2Config;

#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
    /// A real hash of a random password, verified against when the username is unknown so that
    /// an unknown user and a wrong password cost the same time.
    decoy: Arc<str>,
}

impl PasswordHasher {
    pub fn new(config: &Argon2Config, max_concurrent: usize) -> anyhow::Result<Self> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(|err| anyhow::anyhow!("argon2 parameters: {err}"))?;
        let decoy_password = uuid::Uuid::new_v4().to_string();
        let decoy = hash_with(&params, decoy_password.as_bytes())?;
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(max_concurrent)),
            decoy: decoy.into(),
        })
    }

    /// Hashes a password into a PHC string (`$argon2id$v=19$m=…`).
    pub async fn hash(&self, password: &Password) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await?;
        let params = self.params.clone();
        let password = password.clone();
        tokio::task::spawn_blocking(move || hash_with(&params, password.expose().as_bytes()))
            .await?
    }

    /// Checks a password against a stored PHC string; `None` checks against the decoy and
    /// always fails, taking the same time as a real check.
    pub async fn verify(&self, password: &str, stored: Option<String>) -> anyhow::Result<bool> {
        let _permit = self.permits.acquire().await?;
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.decoy.to_string());
        let password = password.to_owned();
        let matches = tokio::task::spawn_blocking(move || {
            let hash =
                PasswordHash::new(&stored).map_err(|err| anyhow::anyhow!("stored hash: {err}"))?;
            // Verify with the parameters recorded in the hash, so raising the cost in config
            // does not lock out existing accounts.
            anyhow::Ok(
                Argon2::default()
                    .verify_password(password.as_bytes(), &hash)
                    .is_ok(),
            )
        })
        .await??;
        Ok(known && matches)
    }
}

fn hash_with(params: &Params, password: &[u8]) -> anyhow::Result<String> {
    use argon2::PasswordHasher as _;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let hash = argon2
        .hash_password(password)
        .map_err(|err| anyhow::anyhow!("argon2: {err}"))?;
    Ok(hash.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHasher {
        let config = Argon2Config {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        };
        PasswordHasher::new(&config, 2).unwrap()
    }

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let hasher = cheap();
        let password = Password::parse("correct horse battery").unwrap();
        let hash = hasher.hash(&password).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{hash}");
        assert!(
            hasher
                .verify("correct horse battery", Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("wrong horse battery", Some(hash.clone()))
                .await
                .unwrap()
        );
        // Salted: the same password never hashes the same twice.
        assert_ne!(hash, hasher.hash(&password).await.unwrap());
    }

    #[tokio::test]
    async fn unknown_user_never_verifies() {
        let hasher = cheap();
        assert!(!hasher.verify("anything at all", None).await.unwrap());
    }

    #[tokio::test]
    async fn corrupt_stored_hash_is_an_error_not_a_panic() {
        let hasher = cheap();
        assert!(
            hasher
                .verify("whatever1", Some("not a hash".into()))
                .await
                .is_err()
        );
    }
}
