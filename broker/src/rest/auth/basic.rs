//! `rest.authentication=basic`: users of a file of `user:hash` lines (bcrypt `$2b$...` or
//! argon2 `$argon2id$...`). Checking a password costs tens of milliseconds of CPU by design,
//! so it runs on the blocking pool, a few at a time (`VERIFY_SLOTS`), never on the runtime's
//! workers that move Kafka traffic; and a caller who proved their password recently is let in
//! on a keyed digest of the same password (`VerifiedCache`) without paying it again.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use parking_lot::Mutex;
use tokio::sync::Semaphore;

use super::{Principal, Refusal};

/// How long a proven password is let in on its digest alone.
const VERIFIED_TTL: Duration = Duration::from_secs(300);
/// Most callers remembered; past it the oldest entry goes.
const VERIFIED_CAPACITY: usize = 1024;
/// Longest user name and password looked at.
const MAX_FIELD: usize = 1024;

/// A stored hash, parsed at start-up so that a bad line stops it.
#[derive(Debug, Clone)]
enum StoredHash {
    Bcrypt(String),
    Argon2(String),
}

impl StoredHash {
    fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with("$2") {
            text.parse::<bcrypt::HashParts>().map_err(|e| format!("not a bcrypt hash: {e}"))?;
            Ok(Self::Bcrypt(text.to_string()))
        } else if text.starts_with("$argon2") {
            argon2::PasswordHash::new(text).map_err(|e| format!("not an argon2 hash: {e}"))?;
            Ok(Self::Argon2(text.to_string()))
        } else {
            Err("expected a bcrypt ($2b$...) or argon2 ($argon2id$...) hash".into())
        }
    }

    /// CPU-heavy: call from the blocking pool.
    fn verify(&self, password: &[u8]) -> bool {
        match self {
            Self::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
            Self::Argon2(h) => {
                use argon2::PasswordVerifier;
                argon2::PasswordHash::new(h).is_ok_and(|parsed| argon2::Argon2::default().verify_password(password, &parsed).is_ok())
            }
        }
    }
}

/// Parses the users file; the error names the line.
fn parse_users(text: &str) -> Result<HashMap<String, StoredHash>, String> {
    let mut users = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, hash)) = line.split_once(':') else { return Err(format!("line {}: expected user:hash", n + 1)) };
        if user.is_empty() {
            return Err(format!("line {}: empty user name", n + 1));
        }
        let hash = StoredHash::parse(hash.trim()).map_err(|e| format!("line {} (user {user}): {e}", n + 1))?;
        if users.insert(user.to_string(), hash).is_some() {
            return Err(format!("line {}: user {user} is listed twice", n + 1));
        }
    }
    if users.is_empty() {
        return Err("no users".into());
    }
    Ok(users)
}

/// Callers who proved their password: user -> (keyed digest of that password, when proven).
/// Time is passed in, so expiry is tested without waiting.
pub struct VerifiedCache {
    entries: HashMap<String, ([u8; 32], Instant)>,
    ttl: Duration,
    capacity: usize,
}

impl VerifiedCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self { entries: HashMap::new(), ttl, capacity: capacity.max(1) }
    }

    pub fn hit(&self, user: &str, digest: &[u8; 32], now: Instant) -> bool {
        self.entries.get(user).is_some_and(|(d, at)| {
            now.saturating_duration_since(*at) < self.ttl && same(d, digest)
        })
    }

    pub fn remember(&mut self, user: &str, digest: [u8; 32], now: Instant) {
        if !self.entries.contains_key(user) && self.entries.len() >= self.capacity {
            let ttl = self.ttl;
            self.entries.retain(|_, (_, at)| now.saturating_duration_since(*at) < ttl);
            if self.entries.len() >= self.capacity {
                if let Some(oldest) = self.entries.iter().min_by_key(|(_, (_, at))| *at).map(|(u, _)| u.clone()) {
                    self.entries.remove(&oldest);
                }
            }
        }
        self.entries.insert(user.to_string(), (digest, now));
    }
}

/// Compares digests in time that does not depend on where they differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub struct BasicAuth {
    users: Arc<HashMap<String, StoredHash>>,
    cache: Mutex<VerifiedCache>,
    /// A per-process key: the cache holds HMACs of passwords, useless outside this process.
    digest_key: ring::hmac::Key,
    /// Password checks running at once.
    slots: Arc<Semaphore>,
    /// Checked for unknown users, so that they cost what known ones do.
    decoy: StoredHash,
}

impl BasicAuth {
    pub fn load(path: &str) -> anyhow::Result<Self> {
        const SETTING: &str = "rest.authentication.basic.users.file";
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{SETTING}={path}: cannot read: {e}"))?;
        let users = parse_users(&text).map_err(|e| anyhow::anyhow!("{SETTING}={path}: {e}"))?;
        Self::new(users)
    }

    fn new(users: HashMap<String, StoredHash>) -> anyhow::Result<Self> {
        let rng = ring::rand::SystemRandom::new();
        let slots = std::thread::available_parallelism().map_or(1, |n| n.get() / 2).max(1);
        // bcrypt of an unguessable password at the usual cost.
        let decoy = StoredHash::Bcrypt("$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy".into());
        let digest_key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng).map_err(|_| anyhow::anyhow!("no system randomness for the password cache's key"))?;
        Ok(Self {
            users: Arc::new(users),
            cache: Mutex::new(VerifiedCache::new(VERIFIED_TTL, VERIFIED_CAPACITY)),
            digest_key,
            slots: Arc::new(Semaphore::new(slots)),
            decoy,
        })
    }

    /// Checks `Basic` credentials (base64 of `user:password`).
    pub async fn check(&self, credentials: &str, now: Instant) -> Result<Principal, Refusal> {
        let malformed = || Refusal::unauthenticated("malformed", "Malformed Basic credentials: expected base64 of user:password.");
        if credentials.len() > 4 * MAX_FIELD {
            return Err(malformed());
        }
        let decoded = base64::engine::general_purpose::STANDARD.decode(credentials).map_err(|_| malformed())?;
        let text = String::from_utf8(decoded).map_err(|_| malformed())?;
        let (user, password) = text.split_once(':').ok_or_else(malformed)?;
        if user.is_empty() || user.len() > MAX_FIELD || password.len() > MAX_FIELD {
            return Err(malformed());
        }
        let mut message = Vec::with_capacity(user.len() + 1 + password.len());
        message.extend_from_slice(user.as_bytes());
        message.push(0);
        message.extend_from_slice(password.as_bytes());
        let mut digest = [0u8; 32];
        digest.copy_from_slice(ring::hmac::sign(&self.digest_key, &message).as_ref());
        if self.cache.lock().hit(user, &digest, now) {
            return Ok(Principal::user(user));
        }
        let hash = self.users.get(user).cloned();
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.decoy.clone());
        let wrong = || Refusal::unauthenticated("bad_credentials", "Unknown user or wrong password.");
        let Ok(_slot) = self.slots.clone().acquire_owned().await else { return Err(wrong()) };
        let password = password.as_bytes().to_vec();
        let verified = tokio::task::spawn_blocking(move || hash.verify(&password)).await.unwrap_or(false);
        if !(known && verified) {
            return Err(wrong());
        }
        self.cache.lock().remember(user, digest, now);
        Ok(Principal::user(user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordHasher;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn auth() -> BasicAuth {
        let bcrypt = bcrypt::hash_with_salt("s3cret", 4, *b"0123456789abcdef").unwrap().format_for_version(bcrypt::Version::TwoB);
        let salt = argon2::password_hash::SaltString::from_b64("c2FsdHNhbHRzYWx0").unwrap();
        let argon = argon2::Argon2::default().hash_password(b"hunter2", &salt).unwrap().to_string();
        assert!(argon.starts_with("$argon2id$"), "{argon}");
        BasicAuth::new(parse_users(&format!("# users\nalice:{bcrypt}\n\nbob: {argon}\n")).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn bcrypt_and_argon2_users_are_checked() {
        let a = auth();
        let now = Instant::now();
        assert_eq!(a.check(&b64("alice:s3cret"), now).await.unwrap(), Principal::user("alice"));
        assert_eq!(a.check(&b64("bob:hunter2"), now).await.unwrap(), Principal::user("bob"));
        for bad in ["alice:hunter2", "bob:s3cret", "carol:s3cret", "alice:", "bob:hunter2 "] {
            assert_eq!(a.check(&b64(bad), now).await.unwrap_err().reason(), "bad_credentials", "{bad}");
        }
        for bad in ["not base64!".to_string(), b64("no colon"), b64(":empty user")] {
            assert_eq!(a.check(&bad, now).await.unwrap_err().reason(), "malformed", "{bad}");
        }
    }

    #[tokio::test]
    async fn a_wrong_password_is_not_let_in_by_the_cache() {
        let a = auth();
        let now = Instant::now();
        a.check(&b64("alice:s3cret"), now).await.unwrap();
        assert!(a.check(&b64("alice:s3cret!"), now).await.is_err());
        assert!(a.check(&b64("alice:s3cret"), now).await.is_ok());
    }

    #[test]
    fn the_cache_forgets_after_its_ttl_and_past_its_capacity() {
        let t0 = Instant::now();
        let mut c = VerifiedCache::new(Duration::from_secs(10), 2);
        c.remember("a", [1; 32], t0);
        assert!(c.hit("a", &[1; 32], t0 + Duration::from_secs(9)));
        assert!(!c.hit("a", &[2; 32], t0));
        assert!(!c.hit("b", &[1; 32], t0));
        assert!(!c.hit("a", &[1; 32], t0 + Duration::from_secs(10)));
        c.remember("b", [2; 32], t0 + Duration::from_secs(1));
        c.remember("c", [3; 32], t0 + Duration::from_secs(2));
        assert!(!c.hit("a", &[1; 32], t0 + Duration::from_secs(2)), "the oldest went");
        assert!(c.hit("b", &[2; 32], t0 + Duration::from_secs(2)));
        assert!(c.hit("c", &[3; 32], t0 + Duration::from_secs(2)));
    }

    #[test]
    fn a_bad_users_file_names_the_line() {
        assert!(parse_users("alice:plaintext").unwrap_err().contains("line 1"));
        assert!(parse_users("# only a comment\n").unwrap_err().contains("no users"));
        assert!(parse_users("\nnocolon").unwrap_err().contains("line 2"));
        assert!(parse_users("a:$2b$10$short").unwrap_err().contains("bcrypt"));
    }
}
