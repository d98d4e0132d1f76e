//! Argon2id password hashing, off the async executor.
//!
//! A hash costs tens of milliseconds of CPU and `memory_kib` of memory, so it runs on
//! `max_concurrent` threads of its own: a burst of sign-ins queues instead of stalling
//! every other request or exhausting memory. Not on Tokio's blocking pool: there a
//! flood of sign-ins passes the hashes over dozens of threads, each of which keeps its
//! own allocator arena with a hash's worth of memory in it (a users process was seen at
//! 845 MiB during `make bench`'s sign-in flood); a fixed set of threads reuses the same
//! few. Unknown emails are checked against a dummy hash so that a wrong email and a
//! wrong password take equally long.

use std::sync::{Arc, Mutex, PoisonError, mpsc};

use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use tokio::sync::Semaphore;

use crate::domain::{Password, PasswordHash};
use crate::settings::Settings;

/// Why hashing failed; never caused by the password itself.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Argon2 refused the parameters or ran out of memory.
    #[error("password hashing failed: {0}")]
    Argon2(String),
    /// The blocking task was lost.
    #[error("password hashing task failed")]
    Task,
}

/// The Argon2id parameters the settings ask for.
pub fn params(settings: &Settings) -> Result<Params, argon2::Error> {
    let p = &settings.password;
    Params::new(p.memory_kib, p.iterations, p.parallelism, None)
}

/// Work for the hashing threads.
type Job = Box<dyn FnOnce() + Send>;

/// The hashing threads: each takes the next job from one queue. They end when the
/// last [`Hasher`] clone is dropped (the queue closes).
struct Threads {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl Threads {
    fn start(count: usize) -> Result<Self, HashError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..count {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("password-{index}"))
                .spawn(move || {
                    loop {
                        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        match job {
                            Ok(job) => job(),
                            Err(mpsc::RecvError) => return,
                        }
                    }
                })
                .map_err(|_| HashError::Task)?;
        }
        Ok(Self {
            jobs: Mutex::new(jobs),
        })
    }

    /// Runs `work` on a hashing thread and waits for its answer.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // The caller may have gone (its request was cancelled): nothing to tell.
            let _ = answer.send(work());
        });
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(job)
            .map_err(|_| HashError::Task)?;
        answered.await.map_err(|_| HashError::Task)
    }
}

/// Hashes and verifies passwords; cheap to clone.
#[derive(Clone)]
pub struct Hasher {
    params: Params,
    permits: Arc<Semaphore>,
    threads: Arc<Threads>,
    /// A real hash of a random password, verified against when an email is unknown.
    dummy: Arc<str>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl Hasher {
    /// A hasher with `params`, computing at most `max_concurrent` hashes at once.
    pub async fn new(params: Params, max_concurrent: usize) -> Result<Self, HashError> {
        let permits = Arc::new(Semaphore::new(max_concurrent.max(1)));
        let threads = Arc::new(Threads::start(max_concurrent.max(1))?);
        let dummy_password = uuid::Uuid::new_v4().to_string();
        let dummy = {
            let params = params.clone();
            threads
                .run(move || hash_blocking(&params, dummy_password.as_bytes()))
                .await??
        };
        Ok(Self {
            params,
            permits,
            threads,
            dummy: dummy.into(),
        })
    }

    /// Hashes a new password with a fresh salt.
    pub async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        let _permit = self.permits.acquire().await.map_err(|_| HashError::Task)?;
        let params = self.params.clone();
        let secret = password.expose().as_bytes().to_vec();
        let phc = self
            .threads
            .run(move || hash_blocking(&params, &secret))
            .await??;
        Ok(PasswordHash::new(phc))
    }

    /// Whether `password` matches `hash`; with no hash (unknown account) it does the
    /// same work and answers no, and so it does for a password longer than any that can
    /// be set (the work is done on a stand-in, so a huge password buys no extra CPU).
    pub async fn verify(
        &self,
        password: &str,
        hash: Option<&PasswordHash>,
    ) -> Result<bool, HashError> {
        let _permit = self.permits.acquire().await.map_err(|_| HashError::Task)?;
        let known = hash.is_some();
        let phc = hash.map_or_else(|| self.dummy.to_string(), |h| h.as_str().to_owned());
        let too_long = password.chars().count() > Password::MAX_CHARS;
        let secret = if too_long {
            Vec::new()
        } else {
            password.as_bytes().to_vec()
        };
        let matches = self
            .threads
            .run(move || {
                // The hash carries its own parameters, so hashes made under older
                // settings still verify.
                Argon2::default()
                    .verify_password(&secret, phc.as_str())
                    .is_ok()
            })
            .await?;
        Ok(known && matches && !too_long)
    }
}

fn hash_blocking(params: &Params, secret: &[u8]) -> Result<String, HashError> {
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    argon
        .hash_password(secret)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Argon2(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn cheap() -> Hasher {
        Hasher::new(Params::new(1024, 1, 1, None).unwrap(), 2)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn hashes_verify_and_salts_differ() {
        let hasher = cheap().await;
        let pw = Password::parse("correct horse battery").unwrap();
        let a = hasher.hash(&pw).await.unwrap();
        let b = hasher.hash(&pw).await.unwrap();
        assert_ne!(a, b, "each hash has its own salt");
        assert!(a.as_str().starts_with("$argon2id$"));
        assert!(
            hasher
                .verify("correct horse battery", Some(&a))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("wrong horse battery", Some(&a))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn unknown_accounts_never_match() {
        let hasher = cheap().await;
        assert!(!hasher.verify("anything at all", None).await.unwrap());
    }
}
