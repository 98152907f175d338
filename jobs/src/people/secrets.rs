//! Passwords (argon2id) and opaque tokens (random, stored as SHA-256): what sign-in stores
//! instead of secrets.

use std::sync::LazyLock;

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier, password_hash::SaltString};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// A password that passed the policy; does not print.
#[derive(Clone)]
pub struct Password(SecretString);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

impl Password {
    pub const MIN_CHARS: usize = 12;
    /// argon2 hashes any length, but a megabyte password is a denial of service, not a secret.
    pub const MAX_BYTES: usize = 1024;

    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.len() > Self::MAX_BYTES {
            return Err(format!(
                "a password must be at most {} bytes",
                Self::MAX_BYTES
            ));
        }
        if raw.chars().count() < Self::MIN_CHARS || raw.trim().is_empty() {
            return Err(format!(
                "a password must be at least {} characters",
                Self::MIN_CHARS
            ));
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    /// A fresh random password (24 URL-safe characters), for `worker admin create-user`.
    pub fn generate() -> Self {
        Self(SecretString::from(random_part(18)))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// argon2id with the crate's defaults (19 MiB, 2 passes, OWASP's minimum). CPU-heavy:
    /// call from a blocking thread.
    pub fn hash(&self) -> String {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let salt = SaltString::encode_b64(&bytes)
            .unwrap_or_else(|e| unreachable!("16 bytes make a valid salt: {e}"));
        Argon2::default()
            .hash_password(self.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_else(|e| unreachable!("argon2 default parameters are valid: {e}"))
    }
}

/// Checks `password` against a stored PHC string; `None` (no user, or no password set yet) is
/// checked against a fixed hash, so the answer takes as long either way. CPU-heavy.
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    static DECOY: LazyLock<String> = LazyLock::new(|| {
        Password(SecretString::from(
            "decoy-password-never-matches".to_owned(),
        ))
        .hash()
    });
    let (phc, real) = match stored {
        Some(phc) => (phc, true),
        None => (DECOY.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
        && real
}

/// What kind of opaque token; the prefix tells a reader (and a secret scanner) what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Refresh,
    Device,
    Invite,
    /// An organization's API key, for machine clients (a deploy pipeline).
    ApiKey,
}

impl TokenKind {
    fn prefix(self) -> &'static str {
        match self {
            TokenKind::Refresh => "dpr_",
            TokenKind::Device => "dpd_",
            TokenKind::Invite => "dpi_",
            TokenKind::ApiKey => "dpk_",
        }
    }
}

/// A freshly made opaque token: the text goes to the client once, the hash to the database.
#[derive(Clone)]
pub struct NewToken {
    pub text: SecretString,
    pub hash: Vec<u8>,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewToken([redacted])")
    }
}

impl NewToken {
    /// 256 random bits.
    pub fn generate(kind: TokenKind) -> Self {
        let text = format!("{}{}", kind.prefix(), random_part(32));
        let hash = token_hash(&text);
        Self {
            text: SecretString::from(text),
            hash,
        }
    }
}

/// The stored form of an opaque token. A fast hash is right here: the token carries 256 random
/// bits, so there is nothing to guess, only a database leak to make useless.
pub fn token_hash(text: &str) -> Vec<u8> {
    Sha256::digest(text.as_bytes()).to_vec()
}

/// True when `text` looks like a token of `kind` (prefix), before any database lookup.
pub fn is_token_of(kind: TokenKind, text: &str) -> bool {
    text.starts_with(kind.prefix())
}

fn random_part(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_policy() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse("            ").is_err());
        assert!(Password::parse(&"x".repeat(2000)).is_err());
        assert!(Password::parse("correct horse battery").is_ok());
        assert!(!format!("{:?}", Password::generate()).contains(Password::generate().expose()));
    }

    #[test]
    fn hashes_verify_only_their_password() {
        let password = Password::parse("correct horse battery").expect("valid");
        let phc = password.hash();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify_password("correct horse battery", Some(&phc)));
        assert!(!verify_password("correct horse batterY", Some(&phc)));
        assert!(!verify_password("decoy-password-never-matches", None));
        assert!(!verify_password("anything", Some("not a phc string")));
    }

    #[test]
    fn tokens_are_prefixed_random_and_hashed() {
        let a = NewToken::generate(TokenKind::Device);
        let b = NewToken::generate(TokenKind::Device);
        assert!(is_token_of(TokenKind::Device, a.text.expose_secret()));
        assert!(!is_token_of(TokenKind::Refresh, a.text.expose_secret()));
        assert_ne!(a.text.expose_secret(), b.text.expose_secret());
        assert_eq!(a.hash, token_hash(a.text.expose_secret()));
        assert_eq!(a.hash.len(), 32);
    }
}
