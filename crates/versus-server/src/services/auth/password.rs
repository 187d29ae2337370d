//! argon2id password hashing on a fixed pool of worker threads, each owning one block buffer that
//! every hash it computes reuses.
//!
//! Why a pool rather than `spawn_blocking`: each hash needs `memory_kib` (19 MiB by default) of
//! working memory. Allocated per hash on tokio's blocking pool (up to 512 threads), glibc kept the
//! freed memory in each thread's arena, and 2,000 sign-ups left the process at 1.39 GB. Here the
//! memory is claimed once, at start-up, as `workers` buffers that are never freed, so the
//! allocator has nothing to hold on to: hashing memory is `workers × memory_kib`, whatever the
//! load (a stored hash of a higher cost grows one buffer for good; see `Worker::verify`). Work beyond the workers waits in a bounded queue; beyond that the caller gets
//! [`HashError::Busy`] at once rather than a growing backlog.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use versus_core::account::Password;

use crate::config::Argon2Config;

/// Why a password could not be hashed or checked.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every worker is hashing and the queue is full: the caller should retry shortly.
    #[error("every password hashing worker is busy and the queue is full")]
    Busy,
    /// The stored PHC string cannot be read, or names an algorithm or version argon2 lacks.
    #[error("stored password hash: {0}")]
    StoredHash(String),
    /// A stored hash asks for more memory than the process can get.
    #[error("cannot allocate {kib} KiB for a password hash")]
    OutOfMemory { kib: u64 },
    #[error("argon2: {0}")]
    Argon2(String),
    /// The workers are gone: only when the process is shutting down or a worker panicked.
    #[error("the password hashing workers have stopped")]
    Stopped,
}

#[derive(Clone)]
pub struct PasswordHasher {
    jobs: mpsc::Sender<Job>,
    /// One permit per job admitted and not yet done: `workers + queue` of them, so at most
    /// `queue` jobs wait while every worker is busy.
    slots: Arc<Semaphore>,
    /// A real hash of a random password, at the configured cost, verified against when the
    /// username is unknown so that an unknown user and a wrong password cost the same time.
    decoy: Arc<Stored>,
    /// The decoy's PHC string, for the test that checks its cost.
    #[cfg(test)]
    decoy_phc: Arc<str>,
    /// argon2 verifications run, the decoy's included: what shows, without timing anything,
    /// that an unknown user is not answered sooner than a wrong password.
    verifications: Arc<AtomicU64>,
    #[cfg(test)]
    test_hooks: Arc<TestHooks>,
}

impl PasswordHasher {
    /// Starts `workers` hashing threads, each with a block buffer for `config`'s cost, and admits
    /// up to `queue` jobs waiting for one of them.
    pub fn new(config: &Argon2Config, workers: usize, queue: usize) -> anyhow::Result<Self> {
        anyhow::ensure!(
            workers > 0,
            "at least one password hashing worker is needed"
        );
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(|err| anyhow::anyhow!("argon2 parameters: {err}"))?;
        let (jobs, receiver) = mpsc::channel();
        let receiver = Arc::new(Mutex::new(receiver));
        let verifications = Arc::<AtomicU64>::default();
        #[cfg(test)]
        let test_hooks = Arc::<TestHooks>::default();

        let mut decoy = None;
        for index in 0..workers {
            let mut blocks = Vec::new();
            grow(&mut blocks, params.block_count())?;
            if decoy.is_none() {
                // The first worker's buffer computes the decoy before the thread takes it: no
                // allocation beyond the workers' own.
                let password = uuid::Uuid::new_v4().to_string();
                decoy = Some(hash_new(&params, password.as_bytes(), &mut blocks)?);
            }
            let worker = Worker {
                jobs: receiver.clone(),
                blocks,
                params: params.clone(),
                verifications: verifications.clone(),
                #[cfg(test)]
                test_hooks: test_hooks.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || worker.run())?;
            #[cfg(test)]
            test_hooks.threads.lock().unwrap().push(thread);
            #[cfg(not(test))]
            drop(thread);
        }
        let decoy = decoy.expect("at least one worker computed the decoy");
        Ok(Self {
            jobs,
            slots: Arc::new(Semaphore::new(
                workers.saturating_add(queue).min(Semaphore::MAX_PERMITS),
            )),
            decoy: Arc::new(Stored::parse(&decoy)?),
            #[cfg(test)]
            decoy_phc: decoy.into(),
            verifications,
            #[cfg(test)]
            test_hooks,
        })
    }

    /// How many argon2 verifications this hasher has run.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Hashes a password into a PHC string (`$argon2id$v=19$m=…`) with a fresh random salt.
    ///
    /// The job is admitted or refused ([`HashError::Busy`]) when this is called, not when the
    /// future is first polled; dropping the future before a worker reaches the job spares the
    /// worker.
    pub fn hash(
        &self,
        password: &Password,
    ) -> impl Future<Output = Result<String, HashError>> + Send + use<> {
        let answer = self.submit(|reply| Task::Hash {
            password: password.clone(),
            reply,
        });
        async move { answer?.await.map_err(|_| HashError::Stopped)? }
    }

    /// Checks a password against a stored PHC string, with the parameters recorded in it (so
    /// raising the cost in config does not lock out existing accounts); `None` checks against
    /// the decoy and always fails, taking the same time as a real check. Admitted or refused as
    /// [`hash`](Self::hash) is.
    pub fn verify(
        &self,
        password: &str,
        stored: Option<String>,
    ) -> impl Future<Output = Result<bool, HashError>> + Send + use<> {
        let answer = match &stored {
            Some(phc) => Stored::parse(phc).map(Arc::new),
            None => Ok(self.decoy.clone()),
        }
        .and_then(|against| {
            self.submit(|reply| Task::Verify {
                password: password.to_owned(),
                against,
                known: stored.is_some(),
                reply,
            })
        });
        async move { answer?.await.map_err(|_| HashError::Stopped)? }
    }

    fn submit<T>(
        &self,
        task: impl FnOnce(Reply<T>) -> Task,
    ) -> Result<oneshot::Receiver<Result<T, HashError>>, HashError> {
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| HashError::Busy)?;
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                task: task(reply),
                slot,
            })
            .map_err(|_| HashError::Stopped)?;
        Ok(answer)
    }
}

type Reply<T> = oneshot::Sender<Result<T, HashError>>;

struct Job {
    task: Task,
    /// Held until the answer is computed, so a queued or running job counts against the bound.
    slot: OwnedSemaphorePermit,
}

enum Task {
    Hash {
        password: Password,
        reply: Reply<String>,
    },
    Verify {
        password: String,
        against: Arc<Stored>,
        /// `false` for the decoy: the check runs in full, but the answer is always no.
        known: bool,
        reply: Reply<bool>,
    },
}

/// A stored PHC string, read before it is queued so that a worker only computes.
struct Stored {
    argon2: Argon2<'static>,
    salt: Salt,
    expected: Output,
}

impl Stored {
    fn parse(phc: &str) -> Result<Self, HashError> {
        let invalid = |err: &dyn std::fmt::Display| HashError::StoredHash(err.to_string());
        let hash = PasswordHash::new(phc).map_err(|err| invalid(&err))?;
        let algorithm = Algorithm::try_from(hash.algorithm.as_str()).map_err(|e| invalid(&e))?;
        let version = match hash.version {
            Some(version) => Version::try_from(version).map_err(|err| invalid(&err))?,
            None => Version::default(),
        };
        // Carries the output length of the stored hash as well as its costs.
        let params = Params::try_from(&hash).map_err(|err| invalid(&err))?;
        let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
            return Err(HashError::StoredHash("no salt or no hash output".into()));
        };
        Ok(Self {
            argon2: Argon2::new(algorithm, version, params),
            salt,
            expected,
        })
    }
}

/// One hashing thread and the block buffer it keeps for its whole life.
struct Worker {
    jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
    blocks: Vec<Block>,
    params: Params,
    verifications: Arc<AtomicU64>,
    #[cfg(test)]
    test_hooks: Arc<TestHooks>,
}

impl Worker {
    fn run(mut self) {
        loop {
            // The lock is held only while waiting for the next job, never while hashing.
            let next = self
                .jobs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .recv();
            // Every sender is gone: the hasher was dropped, so the thread ends.
            let Ok(Job { task, slot }) = next else { return };
            #[cfg(test)]
            self.test_hooks.gate.pass();
            match task {
                Task::Hash { password, reply } => {
                    // The requester gave up while the job waited: spare the work.
                    if reply.is_closed() {
                        continue;
                    }
                    let hashed = self.hash(password.expose().as_bytes());
                    // Free the slot before answering, so a caller that submits again right
                    // after its answer is never refused by its own finished job.
                    drop(slot);
                    let _ = reply.send(hashed);
                }
                Task::Verify {
                    password,
                    against,
                    known,
                    reply,
                } => {
                    if reply.is_closed() {
                        continue;
                    }
                    let matches = self.verify(password.as_bytes(), &against);
                    self.verifications.fetch_add(1, Ordering::Relaxed);
                    drop(slot);
                    let _ = reply.send(matches.map(|matches| known && matches));
                }
            }
        }
    }

    fn hash(&mut self, password: &[u8]) -> Result<String, HashError> {
        let grown = grow(&mut self.blocks, self.params.block_count())?;
        self.note_growth(grown);
        hash_new(&self.params, password, &mut self.blocks)
    }

    fn verify(&mut self, password: &[u8], stored: &Stored) -> Result<bool, HashError> {
        // A hash made at a higher cost than today's (the cost was lowered since) grows this
        // worker's buffer, which it then keeps: hashing memory is bounded by the workers times
        // the largest cost among the stored hashes they check, and nothing is freed and
        // reallocated per hash, which is what let the allocator's retained memory pile up.
        let needed = stored.argon2.params().block_count();
        let grown = grow(&mut self.blocks, needed)?;
        self.note_growth(grown);
        let mut out = [0u8; Output::MAX_LENGTH];
        let out = &mut out[..stored.expected.len()];
        stored
            .argon2
            .hash_password_into_with_memory(password, &stored.salt, out, &mut self.blocks[..needed])
            .map_err(argon2_error)?;
        let computed = Output::new(out).map_err(|err| HashError::StoredHash(err.to_string()))?;
        // `Output`'s equality is constant-time.
        Ok(computed == stored.expected)
    }

    fn note_growth(&self, grown: bool) {
        #[cfg(test)]
        if grown {
            self.test_hooks.growths.fetch_add(1, Ordering::Relaxed);
        }
        #[cfg(not(test))]
        let _ = grown;
    }
}

fn argon2_error(err: impl std::fmt::Display) -> HashError {
    HashError::Argon2(err.to_string())
}

/// Makes `blocks` hold at least `needed` blocks; says whether it had to grow.
fn grow(blocks: &mut Vec<Block>, needed: usize) -> Result<bool, HashError> {
    if blocks.len() >= needed {
        return Ok(false);
    }
    // A stored hash could ask for gigabytes: fail that one check rather than abort the process.
    blocks
        .try_reserve_exact(needed - blocks.len())
        .map_err(|_| HashError::OutOfMemory {
            kib: needed as u64 * (Block::SIZE as u64 / 1024),
        })?;
    blocks.resize(needed, Block::new());
    Ok(true)
}

/// Hashes `password` with a fresh salt into a PHC string, in `blocks`.
fn hash_new(params: &Params, password: &[u8], blocks: &mut [Block]) -> Result<String, HashError> {
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    // From the operating system's CSPRNG.
    let salt = Salt::generate();
    let mut out = [0u8; Output::MAX_LENGTH];
    let out = &mut out[..params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
    argon2
        .hash_password_into_with_memory(password, &salt, out, &mut blocks[..params.block_count()])
        .map_err(argon2_error)?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(argon2_error)?,
        salt: Some(salt),
        hash: Some(Output::new(out).map_err(argon2_error)?),
    };
    Ok(hash.to_string())
}

/// What the tests steer and observe inside the workers.
#[cfg(test)]
#[derive(Default)]
struct TestHooks {
    gate: Gate,
    /// How often a worker's buffer grew after start-up.
    growths: AtomicU64,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

/// Holds every worker before it starts a job while closed, so a test can fill the queue
/// without racing the workers.
#[cfg(test)]
#[derive(Default)]
struct Gate {
    closed: Mutex<bool>,
    opened: std::sync::Condvar,
}

#[cfg(test)]
impl Gate {
    fn set_closed(&self, closed: bool) {
        *self.closed.lock().unwrap() = closed;
        self.opened.notify_all();
    }

    fn pass(&self) {
        let closed = self.closed.lock().unwrap();
        drop(self.opened.wait_while(closed, |closed| *closed).unwrap());
    }
}

#[cfg(test)]
mod tests {
    use argon2::{PasswordHasher as _, PasswordVerifier as _};

    use super::*;

    fn cheap(workers: usize, queue: usize) -> PasswordHasher {
        let config = Argon2Config {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        };
        PasswordHasher::new(&config, workers, queue).unwrap()
    }

    fn password() -> Password {
        Password::parse("correct horse battery").unwrap()
    }

    /// A hash made by argon2's own allocating API, at the given cost.
    fn reference_hash(password: &str, m_cost: u32, t_cost: u32, p_cost: u32) -> String {
        let params = Params::new(m_cost, t_cost, p_cost, None).unwrap();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(password.as_bytes())
            .unwrap()
            .to_string()
    }

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let hasher = cheap(2, 8);
        let hash = hasher.hash(&password()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{hash}");
        let verify = |candidate: &str| hasher.verify(candidate, Some(hash.clone()));
        assert!(verify("correct horse battery").await.unwrap());
        assert!(!verify("wrong horse battery").await.unwrap());
        // Salted: the same password never hashes the same twice.
        assert_ne!(hash, hasher.hash(&password()).await.unwrap());
    }

    /// One worker, so every hash below runs in the buffer the previous one left dirty; argon2's
    /// own allocating implementation must agree with each.
    #[tokio::test]
    async fn a_reused_buffer_agrees_with_argon2_both_ways() {
        let hasher = cheap(1, 8);
        for round in 0..3 {
            let secret = format!("password number {round}");
            let ours = hasher
                .hash(&Password::parse(&secret).unwrap())
                .await
                .unwrap();
            let ours = PasswordHash::new(&ours).unwrap();
            Argon2::default()
                .verify_password(secret.as_bytes(), &ours)
                .unwrap();
            let theirs = reference_hash(&secret, 1024, 1, 1);
            assert!(hasher.verify(&secret, Some(theirs)).await.unwrap());
        }
        assert_eq!(hasher.test_hooks.growths.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn unknown_user_never_verifies() {
        let hasher = cheap(1, 0);
        assert!(!hasher.verify("anything at all", None).await.unwrap());
        // ...yet runs a full verification, as a wrong password does.
        assert_eq!(hasher.verifications(), 1);
        // Even the decoy's own password: an unknown user is never let in.
        assert!(!hasher.verify("", None).await.unwrap());
        assert_eq!(hasher.verifications(), 2);
    }

    /// The decoy costs what a real password does: the same algorithm and parameters.
    #[tokio::test]
    async fn the_decoy_has_the_configured_cost() {
        let config = Argon2Config {
            memory_kib: 2048,
            iterations: 2,
            parallelism: 1,
        };
        let hasher = PasswordHasher::new(&config, 2, 0).unwrap();
        let real = hasher.hash(&password()).await.unwrap();
        let cost = |phc: &str| {
            let hash = PasswordHash::new(phc).unwrap();
            (hash.algorithm, Params::try_from(&hash).unwrap())
        };
        let (algorithm, params) = cost(&hasher.decoy_phc);
        assert_eq!((algorithm, params.clone()), cost(&real));
        assert_eq!(algorithm, Algorithm::Argon2id.ident());
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (2048, 2, 1)
        );
    }

    /// Hashes stored at another cost (raised or lowered since) verify with the cost they
    /// record; one larger than the worker's buffer grows it once, and later ones reuse it.
    #[tokio::test]
    async fn the_stored_hash_sets_the_cost_of_its_check() {
        let hasher = cheap(1, 8);
        let growths = || hasher.test_hooks.growths.load(Ordering::Relaxed);
        for (m_cost, t_cost, p_cost) in [(64, 3, 1), (512, 2, 2), (4096, 2, 1), (3000, 1, 4)] {
            let stored = reference_hash("correct horse battery", m_cost, t_cost, p_cost);
            let check = |candidate: &str| hasher.verify(candidate, Some(stored.clone()));
            assert!(check("correct horse battery").await.unwrap(), "{stored}");
            assert!(!check("wrong horse battery").await.unwrap(), "{stored}");
        }
        assert_eq!(
            growths(),
            1,
            "only the 4096 KiB hash outgrew the 1024 KiB buffer"
        );
        // A buffer at the configured cost is still a good one for new hashes.
        let hash = hasher.hash(&password()).await.unwrap();
        assert!(hash.contains("$m=1024,t=1,p=1$"), "{hash}");
        assert!(
            hasher
                .verify("correct horse battery", Some(hash))
                .await
                .unwrap()
        );
        assert_eq!(growths(), 1);
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_at_once() {
        // One worker and one place in the queue: the gate holds the worker on the first job,
        // so the second waits and the third finds no room, whatever the timing.
        let hasher = cheap(1, 1);
        hasher.test_hooks.gate.set_closed(true);
        let running = hasher.hash(&password());
        let waiting = hasher.verify("correct horse battery", None);
        assert!(matches!(
            hasher.hash(&password()).await,
            Err(HashError::Busy)
        ));
        // Unknown users are refused alike, before any work.
        assert!(matches!(
            hasher.verify("correct horse battery", None).await,
            Err(HashError::Busy)
        ));
        hasher.test_hooks.gate.set_closed(false);
        let hash = running.await.unwrap();
        assert!(!waiting.await.unwrap());
        assert_eq!(hasher.verifications(), 1);
        // Room again once they are done.
        assert!(
            hasher
                .verify("correct horse battery", Some(hash))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_queue_of_zero_admits_only_what_the_workers_can_start() {
        let hasher = cheap(1, 0);
        hasher.test_hooks.gate.set_closed(true);
        let running = hasher.hash(&password());
        assert!(matches!(
            hasher.hash(&password()).await,
            Err(HashError::Busy)
        ));
        hasher.test_hooks.gate.set_closed(false);
        running.await.unwrap();
    }

    #[tokio::test]
    async fn a_job_whose_caller_gave_up_is_skipped() {
        let hasher = cheap(1, 2);
        let hash = hasher.hash(&password()).await.unwrap();
        hasher.test_hooks.gate.set_closed(true);
        let abandoned = hasher.verify("correct horse battery", Some(hash.clone()));
        let kept = hasher.verify("correct horse battery", Some(hash));
        drop(abandoned);
        hasher.test_hooks.gate.set_closed(false);
        // One worker takes jobs in order: by the time `kept` is answered, the abandoned one
        // was reached and skipped.
        assert!(kept.await.unwrap());
        assert_eq!(hasher.verifications(), 1);
    }

    #[tokio::test]
    async fn corrupt_stored_hash_is_an_error_not_a_panic() {
        let hasher = cheap(1, 0);
        for stored in [
            "not a hash",
            "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ",
            "$argon2id$v=17$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
            "$scrypt$ln=15,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
        ] {
            let result = hasher.verify("whatever1", Some(stored.into())).await;
            assert!(
                matches!(result, Err(HashError::StoredHash(_))),
                "{stored}: {result:?}"
            );
        }
        assert_eq!(hasher.verifications(), 0);
    }

    /// Dropping the hasher ends its threads: a test server's workers do not outlive it.
    #[tokio::test]
    async fn workers_stop_with_the_hasher() {
        let hasher = cheap(2, 0);
        hasher.hash(&password()).await.unwrap();
        let hooks = hasher.test_hooks.clone();
        drop(hasher);
        let threads = std::mem::take(&mut *hooks.threads.lock().unwrap());
        assert_eq!(threads.len(), 2);
        for thread in threads {
            tokio::task::spawn_blocking(move || thread.join())
                .await
                .unwrap()
                .unwrap();
        }
    }
}
