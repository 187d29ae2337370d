//! argon2id password hashing, off the async runtime and bounded in concurrency: each hash holds
//! `memory_kib` of memory and a core for tens of milliseconds, so an unbounded burst of logins
//! could exhaust the machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordVerifier, Version};
use tokio::sync::Semaphore;
use versus_core::account::Password;

use crate::config::Argon2Config;

#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
    /// A real hash of a random password, at the configured cost, verified against when the
    /// username is unknown so that an unknown user and a wrong password cost the same time.
    decoy: Arc<str>,
    /// argon2 verifications run, the decoy's included: what shows, without timing anything,
    /// that an unknown user is not answered sooner than a wrong password.
    verifications: Arc<AtomicU64>,
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
            verifications: Arc::default(),
        })
    }

    /// How many argon2 verifications this hasher has run.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
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
        let verifications = self.verifications.clone();
        let matches = tokio::task::spawn_blocking(move || {
            let hash =
                PasswordHash::new(&stored).map_err(|err| anyhow::anyhow!("stored hash: {err}"))?;
            // Verify with the parameters recorded in the hash, so raising the cost in config
            // does not lock out existing accounts.
            let matches = Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok();
            verifications.fetch_add(1, Ordering::Relaxed);
            anyhow::Ok(matches)
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
        // ...yet runs a full verification, as a wrong password does.
        assert_eq!(hasher.verifications(), 1);
    }

    /// The decoy costs what a real password does: the same algorithm and parameters.
    #[tokio::test]
    async fn the_decoy_has_the_configured_cost() {
        let config = Argon2Config {
            memory_kib: 2048,
            iterations: 2,
            parallelism: 1,
        };
        let hasher = PasswordHasher::new(&config, 2).unwrap();
        let real = (hasher.hash(&Password::parse("correct horse battery").unwrap()))
            .await
            .unwrap();
        let cost = |phc: &str| {
            let hash = PasswordHash::new(phc).unwrap();
            (hash.algorithm, Params::try_from(&hash).unwrap())
        };
        let (algorithm, params) = cost(&hasher.decoy);
        assert_eq!((algorithm, params.clone()), cost(&real));
        assert_eq!(algorithm, Algorithm::Argon2id.ident());
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (2048, 2, 1)
        );
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
